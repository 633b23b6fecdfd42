//! Where a stage that must run is run. The scheduler decides what runs and in which order; an
//! executor carries out one stage, given only a small environment ([`StageEnv`]): [`super::local::Local`]
//! in the scheduler's worker thread, `slurm::Slurm` as a cluster job that starts after the jobs of its
//! upstream stages.

use std::path::Path;

use super::events::Observer;
use crate::pipeline::{ExecutorKind, Stage};
use crate::records::RunDir;
use crate::store::Store;

/// What an executor needs to carry out a stage: the workspace root, where the stage's logs go, and
/// the run it belongs to.
#[derive(Clone, Copy)]
pub struct StageEnv<'a> {
    /// The workspace root: stage paths are relative to it.
    pub root: &'a Path,
    /// The run's folder: where the stage's logs go.
    pub run_dir: &'a RunDir,
    /// The run id, passed to commands as `PIPE_RUN_ID`.
    pub run_id: &'a str,
    /// Where a stage's progress goes.
    pub events: &'a dyn Observer,
    /// The store, where running commands' process groups are recorded.
    pub store: &'a Store,
}

/// Why a stage failed: what went wrong and, for a command, its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFailure {
    /// What went wrong (for a command: which one, how it ended, the tail of its stderr).
    pub message: String,
    /// The failed command's exit code (none for a built-in, a signal, or a failure to start).
    pub exit_code: Option<i32>,
}

impl StageFailure {
    /// A failure with no exit code.
    pub fn new(message: String) -> StageFailure {
        StageFailure {
            message,
            exit_code: None,
        }
    }
}

/// What became of a stage handed to an executor.
pub enum Launch {
    /// It ran to completion here.
    Finished(Result<(), StageFailure>),
    /// It was queued as this cluster job; the job reports its outcome later.
    Queued(String),
}

/// Runs the stages whose key is not in the store.
pub trait Executor: Sync {
    /// Which executor this is (recorded in `run.json`).
    fn kind(&self) -> ExecutorKind;
    /// Runs `stage`, or queues it to start once the jobs in `after` have succeeded.
    fn launch(&self, env: &StageEnv, stage: &Stage, after: &[String]) -> Launch;
}
