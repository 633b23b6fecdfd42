//! A pool of slots that runs going at once (a sweep's) share, so that however many runs are at work,
//! the stages running across them use at most `--jobs` cores; a run with a remote cache, whose
//! workers outnumber `--jobs`, has a pool of its own. A stage holds its slots while it runs (not while
//! it is hashed, looked up or restored).
//!
//! A command stage takes one slot (or `resources: cpus`); a built-in stage takes them all, since it
//! spreads its own work over every core (two trainings side by side on two cores are slower than
//! one after the other). Stages are served in the order they ask, so one that needs every slot is
//! not passed over for ever by stages that need one.

use std::sync::{Condvar, Mutex};

use crate::pipeline::{Action, Stage};

/// A pool of slots shared by runs that go at once.
pub struct Slots {
    size: usize,
    state: Mutex<Queue>,
    freed: Condvar,
}

/// The free slots and the line of stages waiting for them (tickets, served in order).
struct Queue {
    free: usize,
    next_ticket: u64,
    serving: u64,
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
            state: Mutex::new(Queue {
                free: n.max(1),
                next_ticket: 0,
                serving: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// How many slots `stage` needs: its `cpus` (one by default) for a command, every slot for a
    /// built-in kind; never more than the pool has.
    fn needed_by(&self, stage: &Stage) -> usize {
        let wanted = match stage.action {
            Action::Builtin { .. } => self.size,
            Action::Command(_) => stage.resources.cpus.map_or(1, |c| c as usize),
        };
        wanted.clamp(1, self.size)
    }

    /// Waits for `stage`'s turn and slots, and takes them.
    pub fn take_for(&self, stage: &Stage) -> Taken<'_> {
        self.take(self.needed_by(stage))
    }

    fn take(&self, n: usize) -> Taken<'_> {
        let mut queue = self.state.lock().expect("slot lock");
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        while queue.serving != ticket || queue.free < n {
            queue = self.freed.wait(queue).expect("slot lock");
        }
        queue.free -= n;
        queue.serving += 1;
        // The next in line may fit in what is left.
        self.freed.notify_all();
        Taken { pool: self, n }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.pool.state.lock().expect("slot lock").free += self.n;
        self.pool.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(pool: &Slots) -> usize {
        pool.state.lock().unwrap().free
    }

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
        assert_eq!(free(&pool), 3);
        drop(one);
        let all = pool.take_for(&pipeline.stages[1]);
        assert_eq!(free(&pool), 0);
        drop(all);
        assert_eq!(free(&pool), 4);
    }

    #[test]
    fn a_stage_needing_every_slot_is_not_passed_over() {
        use std::sync::mpsc;
        use std::time::Duration;
        let pool = Slots::new(2);
        let first = pool.take(1);
        let (done, order) = mpsc::channel();
        let pool = &pool;
        std::thread::scope(|scope| {
            let wide = done.clone();
            scope.spawn(move || {
                let _all = pool.take(2);
                wide.send("all").unwrap();
                std::thread::sleep(Duration::from_millis(50));
            });
            // Let the wide stage queue first, then a narrow one that would fit in the free slot.
            while pool.state.lock().unwrap().next_ticket < 2 {
                std::thread::yield_now();
            }
            let narrow = done.clone();
            scope.spawn(move || {
                let _one = pool.take(1);
                narrow.send("one").unwrap();
            });
            while pool.state.lock().unwrap().next_ticket < 3 {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                order.try_recv().is_err(),
                "both wait while the first holds a slot"
            );
            drop(first);
        });
        let served: Vec<&str> = order.try_iter().collect();
        assert_eq!(served, ["all", "one"]);
    }
}
