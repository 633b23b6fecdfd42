//! A pool of slots that runs going at once (a sweep's) share, so that however many runs are at work,
//! the stages at work across them use at most `--jobs` cores.
//!
//! A command stage takes one slot (or `resources: cpus`); a built-in stage takes them all, since it
//! spreads its own work over every core (two trainings side by side on two cores are slower than
//! one after the other).

use std::sync::{Condvar, Mutex};

use crate::pipeline::{Action, Stage};

/// A pool of slots shared by runs that go at once.
pub struct Slots {
    size: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

/// Slots taken from [`Slots`], given back when dropped.
pub struct Taken<'a> {
    pool: &'a Slots,
    n: usize,
}

impl Slots {
    /// A pool of `n` slots (at least one).
    pub fn new(n: usize) -> Slots {
        Slots {
            size: n.max(1),
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    /// How many slots `stage` needs: its `cpus` (one by default) for a command, every slot for a
    /// built-in kind; never more than the pool has.
    pub fn needed_by(&self, stage: &Stage) -> usize {
        let wanted = match stage.action {
            Action::Builtin { .. } => self.size,
            Action::Command(_) => stage.resources.cpus.map_or(1, |c| c as usize),
        };
        wanted.clamp(1, self.size)
    }

    /// Waits until `stage`'s slots are free and takes them.
    pub fn take_for(&self, stage: &Stage) -> Taken<'_> {
        let n = self.needed_by(stage);
        let mut free = self.free.lock().expect("slot lock");
        while *free < n {
            free = self.freed.wait(free).expect("slot lock");
        }
        *free -= n;
        Taken { pool: self, n }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        *self.pool.free.lock().expect("slot lock") += self.n;
        self.pool.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_shared_out_by_what_each_stage_needs() {
        let yaml =
            "stages:\n  a:\n    cmd: 'true'\n  b:\n    cmd: 'true'\n    resources: {cpus: 8}\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), yaml).unwrap();
        let pipeline = crate::pipeline::load("p.yaml", dir.path(), &[]).unwrap();
        let pool = Slots::new(4);
        assert_eq!(pool.needed_by(&pipeline.stages[0]), 1);
        assert_eq!(pool.needed_by(&pipeline.stages[1]), 4, "capped at the pool");
        let one = pool.take_for(&pipeline.stages[0]);
        assert_eq!(*pool.free.lock().unwrap(), 3);
        drop(one);
        let all = pool.take_for(&pipeline.stages[1]);
        assert_eq!(*pool.free.lock().unwrap(), 0);
        drop(all);
        assert_eq!(*pool.free.lock().unwrap(), 4);
    }
}
