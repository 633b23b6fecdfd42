//! What became of a stage: everything known about it after evaluation ([`StageResult`], also what a
//! cluster job hands back as JSON), with its [`Status`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::Stage;
pub use crate::records::Status;
use crate::store::hash::Tree;
use crate::store::state::StageState;

/// Everything known about one stage after evaluating it (also what a cluster job hands back, as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageResult {
    /// Index in `pipeline.stages`.
    pub index: usize,
    /// Stage name.
    pub name: String,
    /// What happened.
    pub status: Status,
    /// The key, when it could be computed.
    pub key: Option<String>,
    /// Why it ran, was skipped or failed ("param lr 0.001 -> 0.0005", "up to date").
    pub reason: String,
    /// Seconds spent on it now (hashing, restoring or running).
    pub duration_s: f64,
    /// For a hit: how long the stage took when it ran.
    pub saved_s: f64,
    /// Output path -> content, for dependents and the record.
    pub outputs: Arc<BTreeMap<String, Tree>>,
    /// Exit code of a failed command.
    pub exit_code: Option<i32>,
    /// The error and the tail of stderr, for a failure.
    pub error: Option<String>,
    /// Values read from its `metrics:` files.
    pub metrics: Option<Value>,
    /// Problems that did not fail the stage (a corrupt store entry, say).
    pub warnings: Vec<String>,
    /// Whether a hit wrote files into the workspace.
    pub restored: bool,
    /// A hit in a sandbox whose files are not written yet: they are restored when a stage that
    /// runs reads them.
    #[serde(skip)]
    pub deferred: bool,
    /// The cluster job that runs (or ran) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// What its key was made of, saved as the pipeline's last state when the run ends.
    pub(super) state: Option<StageState>,
}

impl StageResult {
    /// A result with nothing known yet but its status and reason.
    pub fn new(index: usize, stage: &Stage, status: Status, reason: String) -> StageResult {
        StageResult {
            index,
            name: stage.name.clone(),
            status,
            key: None,
            reason,
            duration_s: 0.0,
            saved_s: 0.0,
            outputs: Arc::default(),
            exit_code: None,
            error: None,
            metrics: None,
            warnings: Vec::new(),
            restored: false,
            deferred: false,
            job_id: None,
            state: None,
        }
    }
}
