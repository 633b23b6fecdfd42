//! Disjoint sets (union-find) over indices: which items end up linked, directly or through others.
//! Used to group duplicates (validate) and to keep linked images in one split (split).

/// A partition of `0..n` that merges as links are added.
pub struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    /// Every item in a set of its own.
    pub fn new(n: usize) -> DisjointSets {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }

    /// The smallest item of `i`'s set stands for the set.
    pub fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    /// Merges the sets of `a` and `b`.
    pub fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }

    /// Every set, each in increasing order, sets in order of their smallest item.
    pub fn sets(&mut self) -> Vec<Vec<usize>> {
        let mut by_root: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for i in 0..self.parent.len() {
            let root = self.find(i);
            by_root.entry(root).or_default().push(i);
        }
        by_root.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_transitive() {
        let mut sets = DisjointSets::new(6);
        sets.union(4, 1);
        sets.union(1, 3);
        sets.union(5, 2);
        assert_eq!(sets.sets(), vec![vec![0], vec![1, 3, 4], vec![2, 5]]);
        assert_eq!(sets.find(4), 1);
    }
}
