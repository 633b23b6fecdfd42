//! `pipe gc`: removes old run records, then every store entry no kept run and no pipeline's last state
//! refers to, and every object no kept entry uses.

use std::collections::HashSet;

use super::slurm;
use super::workspace::Workspace;
use crate::error::Error;
use crate::pipeline::ExecutorKind;
use crate::records::RunStatus;
use crate::store::state::PipelineState;

/// What `pipe gc` removed (or would remove).
#[derive(Debug, Default)]
pub struct GcReport {
    /// Run records removed.
    pub runs: Vec<String>,
    /// Store entries removed.
    pub entries: usize,
    /// Store objects removed.
    pub objects: usize,
    /// Bytes freed.
    pub bytes: u64,
}

impl Workspace {
    /// Removes all but the newest `keep` runs (all kept when `None`), then every store entry that no
    /// kept run and no pipeline's last state refers to, and every object no kept entry uses.
    pub fn gc(
        &self,
        keep: Option<usize>,
        dry_run: bool,
        on_wait: impl Fn(&str),
    ) -> Result<GcReport, Error> {
        let _lock = self
            .store
            .lock_workspace(&on_wait)
            .map_err(|e| Error::Io(format!("cannot lock the workspace store: {e}")))?;
        // Waits for cluster jobs at work on this store to finish their stage.
        let _jobs = self
            .store
            .lock_for_gc(&on_wait)
            .map_err(|e| Error::Io(format!("cannot lock the store against its jobs: {e}")))?;
        let (records, _) = self.runs.list();
        let keep = keep.unwrap_or(records.len());
        let mut report = GcReport::default();
        let mut live: HashSet<String> = HashSet::new();
        for (i, r) in records.iter().enumerate() {
            // A Slurm run under way is kept, with what its jobs have committed so far.
            let running = r.effective_status() == RunStatus::Running;
            if running && r.executor == ExecutorKind::Slurm {
                live.extend(slurm::committed_keys(self, &r.id));
            }
            if i < keep || running {
                live.extend(r.stages.iter().filter_map(|s| s.key.clone()));
            } else {
                report.runs.push(r.id.clone());
                if !dry_run {
                    self.runs
                        .remove(&r.id)
                        .map_err(|e| Error::Io(format!("cannot remove run {}: {e}", r.id)))?;
                }
            }
        }
        if let Ok(states) = std::fs::read_dir(self.store.dir().join("state")) {
            for file in states.flatten() {
                let s = PipelineState::load(&file.path());
                live.extend(s.stages.into_values().map(|st| st.key));
            }
        }
        let (entries, objects, bytes) = self
            .store
            .gc(&live, dry_run)
            .map_err(|e| Error::Io(format!("cannot clean the store: {e}")))?;
        report.entries = entries;
        report.objects = objects;
        report.bytes = bytes;
        Ok(report)
    }
}
