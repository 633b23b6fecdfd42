//! Where a stage that must run is run. The scheduler (`exec`) decides what runs and in which order;
//! an executor runs one stage: [`Local`] in the scheduler's worker thread, `slurm::Slurm` as a
//! cluster job that starts after the jobs of its upstream stages.

use crate::exec::Runner;
use crate::spec::{ExecutorKind, Stage};

/// What became of a stage handed to an executor.
pub enum Launch {
    /// It ran to completion here: `Ok`, or the error and the command's exit code.
    Finished(Result<(), (String, Option<i32>)>),
    /// It was queued as this cluster job; the job reports its outcome later.
    Queued(String),
}

/// Runs the stages whose key is not in the store.
pub trait Executor: Sync {
    /// Which executor this is (recorded in `run.json`).
    fn kind(&self) -> ExecutorKind;
    /// Runs `stage`, or queues it to start once the jobs in `after` have succeeded.
    fn launch(&self, runner: &Runner, stage: &Stage, after: &[String]) -> Launch;
}

/// Runs stages in this process, in the scheduler's worker threads.
pub struct Local;

impl Executor for Local {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Local
    }

    fn launch(&self, runner: &Runner, stage: &Stage, _after: &[String]) -> Launch {
        Launch::Finished(runner.execute(stage))
    }
}
