//! The shared, read-only context of one run: the workspace's root, store and stat cache, the
//! pipeline and its graph, what the caller asked for, and the executor that runs stages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::events::Observer;
use super::executor::{Executor, StageEnv};
use super::slots::Slots;
use crate::pipeline::graph::Dag;
use crate::pipeline::{ExecutorKind, Override};
use crate::pipeline::{Pipeline, Stage};
use crate::records::RunDir;
use crate::remote::{Fetched, Remote};
use crate::store::hash::StatCache;
use crate::store::{Entry, Store};

/// Whether to do the work or only say what would be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Restore, run, commit.
    Run,
    /// Touch nothing; report what `Run` would do.
    Plan,
}

/// Which stages run even when their key is in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Force {
    /// None: the cache decides.
    #[default]
    None,
    /// Every selected stage.
    All,
    /// These stages (names or `foreach` groups).
    Stages(BTreeSet<String>),
}

/// What the caller asks for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads.
    pub jobs: usize,
    /// Stages to run even if cached.
    pub force: Force,
    /// After a failure, finish the branches that do not depend on it.
    pub keep_going: bool,
    /// Run or plan.
    pub mode: Mode,
    /// Stages asked for (and what they need); empty for all.
    pub targets: Vec<String>,
    /// The run's folder (`runs/<id>/`), where its stages' logs go.
    pub run_dir: RunDir,
    /// The run id, passed to commands as `PIPE_RUN_ID`.
    pub run_id: String,
}

/// The shared, read-only context of one run.
pub struct RunContext<'a> {
    /// The workspace root.
    pub root: &'a Path,
    /// The store.
    pub store: &'a Store,
    /// The stat cache.
    pub stats: &'a StatCache,
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// Its graph.
    pub dag: &'a Dag,
    /// The options.
    pub options: &'a Options,
    /// Where the stages that must run are run.
    pub executor: &'a dyn Executor,
    /// Set for a run of a sweep in its sandbox.
    pub shared: Option<&'a Shared>,
    /// In a sandbox: the keys of the hits restored so far (each is restored only when a stage that
    /// runs reads it).
    pub restored_on_demand: Mutex<BTreeSet<String>>,
    /// The team's remote cache, asked on a local miss and pushed to after each commit.
    pub remote: Option<&'a Remote>,
    /// A run's own pool of `--jobs` slots when it has more workers than that (see
    /// [`RunContext::workers`]).
    pub own_slots: Option<Slots>,
}

/// What the runs of a sweep that go at once share, each in its own sandbox
/// ([`super::sandbox`]).
pub struct Shared {
    /// The workspace's root: sources are hashed there (where the stat cache knows them), not
    /// through the sandbox's links.
    pub sources: PathBuf,
    /// The pool of stage slots (`--jobs`) every run takes from.
    pub slots: Slots,
}

impl RunContext<'_> {
    /// Where source files (deps no stage produces) are read from.
    pub fn sources(&self) -> &Path {
        self.shared.map_or(self.root, |s| s.sources.as_path())
    }

    /// Whether `stage` runs even when its key is in the store.
    pub fn forced(&self, stage: &Stage) -> bool {
        match &self.options.force {
            Force::None => false,
            Force::All => true,
            Force::Stages(names) => {
                names.contains(&stage.name)
                    || stage.group.as_ref().is_some_and(|g| names.contains(g))
            }
        }
    }

    /// What an executor needs to carry out a stage, reporting its progress to `events`.
    pub fn stage_env<'e>(&'e self, events: &'e dyn Observer) -> StageEnv<'e> {
        StageEnv {
            root: self.root,
            run_dir: &self.options.run_dir,
            run_id: &self.options.run_id,
            events,
            store: self.store,
        }
    }
}

/// What `pipe run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Pipeline file, relative to the root (or absolute).
    pub file: String,
    /// Stages to run (and what they need); empty for all.
    pub targets: Vec<String>,
    /// `--set` overrides.
    pub overrides: Vec<Override>,
    /// Stages to run even if cached.
    pub force: Force,
    /// Worker threads.
    pub jobs: usize,
    /// Finish independent branches after a failure.
    pub keep_going: bool,
    /// Where stages run (default: the pipeline's `executor:`, else local).
    pub executor: Option<ExecutorKind>,
    /// With a cluster executor: return once the jobs are submitted.
    pub detach: bool,
    /// The sweep this run belongs to (recorded in its `run.json`).
    pub sweep: Option<String>,
}

/// Workers of a run that looks up a remote cache: a lookup waits on the network, not a core, so
/// many go at once while the stages that run still share `--jobs` slots.
const REMOTE_WORKERS: usize = 16;

impl RunContext<'_> {
    /// The slots a stage takes while it runs: a sweep's shared pool, or the run's own.
    pub(super) fn launch_slots(&self) -> Option<&Slots> {
        self.shared.map(|s| &s.slots).or(self.own_slots.as_ref())
    }

    /// How many workers evaluate stages: `--jobs`, or more for a run with a remote cache, whose
    /// lookups then go at once while running stages stay within `--jobs` (its own slots).
    pub(super) fn workers(&self) -> usize {
        if self.own_slots.is_some() {
            self.options.jobs.max(REMOTE_WORKERS)
        } else {
            self.options.jobs
        }
    }

    /// The slots of a run (or plan) whose workers outnumber `--jobs`: one with a remote cache, not in
    /// a sweep, whose runs share a pool already.
    pub fn own_slots(options: &Options, remote: bool, in_sweep: bool) -> Option<Slots> {
        (remote && !in_sweep).then(|| Slots::new(options.jobs))
    }

    /// The entry for `key` from the remote cache after a local miss: in run mode fetched into the
    /// store (entry and objects, each checked), in plan mode only read.
    pub(super) fn remote_entry(&self, key: &str, warnings: &mut Vec<String>) -> Option<Entry> {
        let remote = self.remote?;
        let head = crate::remote::head_name(&self.pipeline.file, &self.pipeline.params);
        match self.options.mode {
            Mode::Plan => remote.entry(key, Some(&head)),
            Mode::Run => match remote.fetch(self.store, key, Some(&head)) {
                Fetched::Restored(entry) => Some(entry),
                Fetched::Missing => None,
                Fetched::Warning(warning) => {
                    warnings.push(warning);
                    None
                }
            },
        }
    }
}
