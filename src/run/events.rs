//! A run as a stream of events: the scheduler (and, for a Slurm run, the watcher of its jobs) emits
//! one event as each stage starts and one as it finishes, and a stage at work reports its progress;
//! observers (the terminal, a test) consume them.

use super::outcome::StageResult;
use crate::builtin::Progress;
use crate::pipeline::Stage;

/// Something that happened in a run.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A stage was handed to a worker: it is being hashed, restored or run.
    Started(&'a Stage),
    /// A stage is done, in any way (ran, restored, failed, skipped, queued as a job).
    Finished(&'a StageResult),
    /// A stage at work says how far it has come.
    Progress {
        /// The stage.
        stage: &'a str,
        /// How far.
        progress: &'a Progress,
    },
    /// Something went wrong that does not fail the stage (its log could not be written).
    Warning {
        /// The stage.
        stage: &'a str,
        /// What went wrong.
        message: &'a str,
    },
}

/// Receives a run's events, from any worker thread.
pub trait Observer: Sync {
    /// Called once per event, in the order they happen to each stage.
    fn on(&self, event: Event<'_>);
}
