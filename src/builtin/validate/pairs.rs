//! The pairs of copies validate's two detectors found (the difference hash with exact copies, and the
//! embedding's nearest neighbours), which detector found each, and the duplicate groups they link.

use std::collections::BTreeMap;

use polars::prelude::{Column, DataFrame};
use rayon::prelude::*;
use serde_json::{Value, json};

use super::embedding;
use crate::images::dhash::{Dhash, Nearness};
use crate::tables::image_rows::ImageRow;
use crate::util::disjoint_sets::DisjointSets;

/// Pairs (i < j) of kept images that are byte-identical or `near` each other by their difference
/// hashes (within its bits under rotation and flips, fine grids correlated at its least).
pub(super) fn hash_pairs(
    rows: &[ImageRow],
    hashes: &[Dhash],
    near: Nearness,
) -> Vec<(usize, usize)> {
    // In order of i, then j, each pair once: byte copies are found by the same scan.
    (0..hashes.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            (i + 1..hashes.len())
                .filter(move |&j| {
                    rows[i].hash == rows[j].hash || hashes[i].is_near(&hashes[j], near)
                })
                .map(move |j| (i, j))
        })
        .collect()
}

/// Groups of 2 or more kept images linked by `pairs`, directly or through others, as (id, member
/// indices), ids in order of first member.
pub(super) fn duplicate_groups<'a>(
    rows: &[ImageRow],
    pairs: impl Iterator<Item = &'a (usize, usize)>,
) -> Vec<(String, Vec<usize>)> {
    let mut sets = DisjointSets::new(rows.len());
    for &(i, j) in pairs {
        sets.union(i, j);
    }
    let mut groups: Vec<Vec<usize>> = sets.sets().into_iter().filter(|m| m.len() > 1).collect();
    groups.sort_by(|a, b| rows[a[0]].path.cmp(&rows[b[0]].path));
    groups
        .into_iter()
        .enumerate()
        .map(|(n, m)| (format!("dup-{:04}", n + 1), m))
        .collect()
}

/// A pair of copies and the detectors that found it.
pub(super) struct CopyPair {
    a: usize,
    b: usize,
    by_hash: bool,
    /// The embedding similarity, when the embedding detector found the pair.
    similarity: Option<f32>,
}

/// Every pair either detector found, in order, each once.
pub(super) fn copy_pairs(
    hash_pairs: &[(usize, usize)],
    found: Option<&embedding::Found>,
) -> Vec<CopyPair> {
    let mut pairs: BTreeMap<(usize, usize), CopyPair> = hash_pairs
        .iter()
        .map(|&(a, b)| {
            let pair = CopyPair {
                a,
                b,
                by_hash: true,
                similarity: None,
            };
            ((a, b), pair)
        })
        .collect();
    for &(a, b, s) in found.iter().flat_map(|f| &f.pairs) {
        pairs
            .entry((a, b))
            .or_insert(CopyPair {
                a,
                b,
                by_hash: false,
                similarity: None,
            })
            .similarity = Some(s);
    }
    pairs.into_values().collect()
}

/// Pairs found by each detector and by both, the same for pairs whose images have different labels
/// (a pair both detectors call copies is one film labelled twice; one only the hash finds is more
/// likely two look-alikes), and the embedding detector's calibration.
pub(super) fn detectors_summary(
    rows: &[ImageRow],
    pairs: &[CopyPair],
    found: Option<&embedding::Found>,
) -> Value {
    let count = |f: &dyn Fn(&CopyPair) -> bool| pairs.iter().filter(|p| f(p)).count();
    let across = |p: &CopyPair| rows[p.a].class != rows[p.b].class;
    let by_embedding = |p: &CopyPair| p.similarity.is_some();
    json!({
        "cross_class_pairs": {
            "hash_only": count(&|p| across(p) && p.by_hash && !by_embedding(p)),
            "embedding_only": found.map(|_| count(&|p| across(p) && !p.by_hash)),
            "both": found.map(|_| count(&|p| across(p) && p.by_hash && by_embedding(p))),
        },
        "hash_pairs": count(&|p| p.by_hash),
        "embedding_pairs": found.map(|_| count(&|p| p.similarity.is_some())),
        "both": found.map(|_| count(&|p| p.by_hash && p.similarity.is_some())),
        "embedding": found.map(embedding::Found::summary),
    })
}

pub(super) fn pairs_frame(rows: &[ImageRow], pairs: &[CopyPair]) -> DataFrame {
    let text = |name: &str, f: &dyn Fn(&CopyPair) -> String| {
        Column::new(name.into(), pairs.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new(
        pairs.len(),
        vec![
            text("path_a", &|p| rows[p.a].path.clone()),
            text("path_b", &|p| rows[p.b].path.clone()),
            text("class_a", &|p| rows[p.a].class.clone()),
            text("class_b", &|p| rows[p.b].class.clone()),
            text("found_by", &|p| {
                match (p.by_hash, p.similarity.is_some()) {
                    (true, true) => "both",
                    (true, false) => "hash",
                    _ => "embedding",
                }
                .to_string()
            }),
            Column::new(
                "similarity".into(),
                pairs.iter().map(|p| p.similarity).collect::<Vec<_>>(),
            ),
        ],
    )
    .expect("equal columns")
}
