//! A workspace: the directory `pipe` runs in, with its store (`.pipe/`) and records (`runs/`), and
//! the one walk of a pipeline's graph that every kind of run shares. What a subcommand does with it is
//! in [`super::request`] (`pipe run`, `pipe status`) and [`super::gc`] (`pipe gc`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::context::{Mode, Options, RunContext, RunRequest, Shared};
use super::evaluate::save_state;
use super::events::Observer;
use super::executor::Executor;
use super::outcome::StageResult;
use crate::error::Error;
use crate::pipeline::graph::Dag;
use crate::pipeline::{self, Diagnostics, Override, Pipeline};
use crate::records::Runs;
use crate::remote::Remote;
use crate::store::Store;
use crate::store::hash::StatCache;
use crate::store::state::{self, PipelineState};

/// What a walk of a pipeline's graph gives back.
pub struct Walked {
    /// One result per selected stage, in pipeline order.
    pub results: Vec<StageResult>,
    /// Problems that cost nothing but speed (a stat cache that could not be saved).
    pub warnings: Vec<String>,
    /// Why the stages' state could not be saved (`pipe status` cannot explain them next time).
    pub state_error: Option<String>,
}

/// Where pipe keeps things.
pub struct Workspace {
    /// The workspace root: paths in pipelines are relative to it.
    pub root: PathBuf,
    /// The content-addressed store.
    pub store: Store,
    /// The run records.
    pub runs: Runs,
    /// Set in a sweep's sandbox: what the sweep's runs share (`root` is then the sandbox).
    pub shared: Option<Arc<Shared>>,
    /// The team's remote cache, if one is configured.
    pub remote: Option<Arc<Remote>>,
}

impl Workspace {
    /// A workspace rooted at `root` with the given store and runs folders.
    pub fn new(root: PathBuf, cache_dir: PathBuf, runs_dir: PathBuf) -> Workspace {
        Workspace {
            store: Store::new(root.join(cache_dir)),
            runs: Runs::new(root.join(runs_dir)),
            root,
            shared: None,
            remote: None,
        }
    }

    /// The same store and records with `sandbox` as the root, for one of a sweep's runs.
    pub fn sandboxed(&self, sandbox: PathBuf, shared: Arc<Shared>) -> Workspace {
        Workspace {
            root: sandbox,
            store: Store::new(self.store.dir().to_path_buf()),
            runs: Runs::new(self.runs.dir().to_path_buf()),
            shared: Some(shared),
            remote: self.remote.clone(),
        }
    }

    /// Loads and checks a pipeline: spec errors, outputs that would overwrite the store, the run
    /// records or the pipeline's own files, then graph errors, before anything is hashed.
    /// Only the stages `targets` need (all when empty) must find their deps; the others are checked
    /// for everything else.
    pub fn load(
        &self,
        file: &str,
        overrides: &[Override],
        targets: &[String],
    ) -> Result<(Pipeline, Dag), Error> {
        let pipeline = pipeline::load(file, &self.root, overrides)?;
        let inside = |dir: &Path| {
            let rel = dir.strip_prefix(&self.root).ok()?.to_str()?;
            Some(pipeline::normalize(".", rel))
        };
        let reserved: Vec<(String, &str)> = [
            (inside(self.store.dir()), "the store"),
            (inside(self.runs.dir()), "the runs folder"),
        ]
        .into_iter()
        .filter_map(|(path, what)| Some((path?, what)))
        .collect();
        let errors = pipeline.reserved_output_errors(&reserved);
        if !errors.is_empty() {
            return Err(Error::Spec(Diagnostics(errors)));
        }
        let dag = Dag::build(&pipeline, &self.root).map_err(|d| Error::Spec(Diagnostics(d)))?;
        let selected = dag.select(&pipeline, targets).map_err(Error::Usage)?;
        let missing = dag.missing_deps(&selected);
        if !missing.is_empty() {
            return Err(Error::Spec(Diagnostics(missing)));
        }
        Ok((pipeline, dag))
    }

    /// The stat cache of this workspace's store.
    pub fn stat_cache(&self) -> StatCache {
        StatCache::load(self.store.dir().join("stat-cache"))
    }

    /// Evaluates the pipeline with the workspace's stat cache, then saves the cache and (in run
    /// mode) what the stages' keys were made of.
    pub fn walk(
        &self,
        pipeline: &Pipeline,
        dag: &Dag,
        options: &Options,
        executor: &dyn Executor,
        observer: &dyn Observer,
    ) -> Result<Walked, Error> {
        let stats = self.stat_cache();
        let context = RunContext {
            root: &self.root,
            store: &self.store,
            stats: &stats,
            pipeline,
            dag,
            options,
            executor,
            shared: self.shared.as_deref(),
            restored_on_demand: Default::default(),
            remote: self.remote.as_deref(),
            own_slots: RunContext::own_slots(options, self.remote.is_some(), self.shared.is_some()),
        };
        let state_path = state::path(self.store.dir(), &pipeline.file);
        let last_state = PipelineState::load(&state_path);
        let results = context.schedule(observer, &last_state);
        if self.shared.is_some() {
            // The sandbox goes when the run ends: what was learnt about its files is of no use.
            stats.forget_under(&self.root);
        }
        // A stat cache that cannot be saved only costs speed next time.
        let warnings = stats
            .save()
            .err()
            .map(|e| format!("cannot save the stat cache: {e}"))
            .into_iter()
            .collect();
        let mut results = results?;
        let state_error = match options.mode {
            Mode::Run => {
                save_state(&self.store, &pipeline.file, &mut results, Some(&last_state)).err()
            }
            Mode::Plan => None,
        };
        Ok(Walked {
            results,
            warnings,
            state_error,
        })
    }

    /// The scheduler's options for a request.
    pub fn options(&self, request: &RunRequest, mode: Mode, run_id: String) -> Options {
        Options {
            jobs: request.jobs,
            force: request.force.clone(),
            keep_going: request.keep_going,
            mode,
            targets: request.targets.clone(),
            run_dir: self.runs.run_dir(&run_id),
            run_id,
        }
    }
}
