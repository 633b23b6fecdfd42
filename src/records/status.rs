//! The words a run record uses for where a run is ([`RunStatus`]) and what became of each of its
//! stages ([`Status`]); `run.json`, the terminal and the reports all spell them the same way.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A sweep's combination whose run has not started yet.
    Queued,
    /// Stages are being evaluated (or its cluster jobs are queued or running).
    Running,
    /// Every selected stage ran, was restored, or was skipped as frozen.
    Succeeded,
    /// A stage failed.
    Failed,
    /// Cancelled (`pipe cancel`, or Ctrl-C while a Slurm run was being submitted).
    Cancelled,
    /// Never written: shown for a local run still `running` whose process is gone.
    Interrupted,
}

impl RunStatus {
    /// The word used in tables and records.
    pub fn word(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// What became of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran and its outputs were committed.
    Ran,
    /// Its key was in the store; outputs restored or already in place.
    Cached,
    /// It failed; nothing was committed.
    Failed,
    /// It did not run (upstream failed, run stopped, or frozen).
    Skipped,
    /// Plan mode: it would run.
    WillRun,
    /// It was queued as a cluster job, which reports its outcome later.
    Queued,
    /// Its cluster job is running (only ever shown live, never recorded as final).
    Running,
}

impl Status {
    /// The word used in tables and records.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ran => "ran",
            Status::Cached => "cached",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::WillRun => "will run",
            Status::Queued => "queued",
            Status::Running => "running",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}
