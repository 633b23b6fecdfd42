//! A workspace: the directory `pipe` runs in, with its store (`.pipe/`) and records (`runs/`). Each
//! subcommand is one call here: [`Workspace::run`], [`Workspace::plan`], [`Workspace::gc`].

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::Value;

use crate::dag::Dag;
use crate::error::Error;
use crate::exec::{Force, Mode, Observer, Options, Runner, StageResult, Status};
use crate::executor::{Executor, Local};
use crate::hash::StatCache;
use crate::record::{self, FORMAT_VERSION, RunRecord, Runs, StageRecord};
use crate::spec::{self, Action, Diagnostics, ExecutorKind, Override, Pipeline};
use crate::state::PipelineState;
use crate::store::Store;

/// Where pipe keeps things.
pub struct Workspace {
    /// The workspace root: paths in pipelines are relative to it.
    pub root: PathBuf,
    /// The content-addressed store.
    pub store: Store,
    /// The run records.
    pub runs: Runs,
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
}

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
    /// A workspace rooted at `root` with the given store and runs folders.
    pub fn new(root: PathBuf, cache_dir: PathBuf, runs_dir: PathBuf) -> Workspace {
        Workspace {
            store: Store::new(root.join(cache_dir)),
            runs: Runs::new(root.join(runs_dir)),
            root,
        }
    }

    /// Loads and checks a pipeline: spec errors, then graph errors, before anything is hashed.
    pub fn load(&self, file: &str, overrides: &[Override]) -> Result<(Pipeline, Dag), Error> {
        let pipeline = spec::load(file, &self.root, overrides)?;
        let dag = Dag::build(&pipeline, &self.root).map_err(|d| Error::Spec(Diagnostics(d)))?;
        Ok((pipeline, dag))
    }

    /// The stat cache of this workspace's store.
    pub fn stat_cache(&self) -> StatCache {
        StatCache::load(self.store.dir().join("stat-cache"))
    }

    /// What `run` would do, touching nothing.
    pub fn plan(
        &self,
        request: &RunRequest,
        observer: &dyn Observer,
    ) -> Result<(Pipeline, Vec<StageResult>), Error> {
        let (pipeline, dag) = self.load(&request.file, &request.overrides)?;
        let options = self.options(request, Mode::Plan, String::new());
        // A stat cache that cannot be saved only costs speed next time; plan mode says nothing.
        let (results, _) = self.walk(&pipeline, &dag, &options, &Local, observer);
        Ok((pipeline, results?))
    }

    /// Evaluates the pipeline with the workspace's stat cache, then saves the cache. Returns the
    /// results and, if the cache could not be saved, a warning.
    pub fn walk(
        &self,
        pipeline: &Pipeline,
        dag: &Dag,
        options: &Options,
        executor: &dyn Executor,
        observer: &dyn Observer,
    ) -> (Result<Vec<StageResult>, Error>, Option<String>) {
        let stats = self.stat_cache();
        let runner = Runner {
            root: &self.root,
            store: &self.store,
            stats: &stats,
            pipeline,
            dag,
            options,
            executor,
        };
        let results = runner.run(observer).map_err(Error::Usage);
        let warning = stats
            .save()
            .err()
            .map(|e| format!("cannot save the stat cache: {e}"));
        (results, warning)
    }

    /// The scheduler's options for a request.
    pub fn options(&self, request: &RunRequest, mode: Mode, run_id: String) -> Options {
        Options {
            jobs: request.jobs,
            force: request.force.clone(),
            keep_going: request.keep_going,
            mode,
            targets: request.targets.clone(),
            log_dir: self.runs.run_dir(&run_id).join("logs"),
            run_id,
        }
    }

    /// Runs a pipeline and records it. Waits (calling `on_wait`) while another run holds the workspace.
    pub fn run(
        &self,
        request: &RunRequest,
        observer: &dyn Observer,
        on_wait: impl FnOnce(&str),
    ) -> Result<RunRecord, Error> {
        let (pipeline, dag) = self.load(&request.file, &request.overrides)?;
        let executor = request
            .executor
            .or(pipeline.executor)
            .unwrap_or(ExecutorKind::Local);
        if request.detach && executor == ExecutorKind::Local {
            return Err(Error::Usage(
                "`--detach` needs a cluster executor (`--executor slurm` or `executor: slurm`)"
                    .into(),
            ));
        }
        if executor == ExecutorKind::Slurm && !crate::slurm::available() {
            return Err(Error::Usage(
                "`--executor slurm` needs Slurm's `sbatch` on PATH: run `pipe run` on a login node of the cluster".into(),
            ));
        }
        let lock = self
            .store
            .lock_workspace(on_wait)
            .map_err(|e| Error::Io(format!("cannot lock the workspace store: {e}")))?;
        let started = SystemTime::now();
        let id = self
            .runs
            .create()
            .map_err(|e| Error::Io(format!("cannot create a run record: {e}")))?;
        let mut record = RunRecord {
            format_version: FORMAT_VERSION,
            id: id.clone(),
            pipeline: pipeline.file.clone(),
            status: "running".into(),
            started_at: record::rfc3339(started),
            finished_at: None,
            duration_s: 0.0,
            params: pipeline.params.clone(),
            overrides: request
                .overrides
                .iter()
                .map(|o| (o.key.clone(), o.value.clone()))
                .collect(),
            targets: request.targets.clone(),
            pipe_version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            jobs: request.jobs,
            executor: executor.name().into(),
            stages: Vec::new(),
            metrics: BTreeMap::new(),
            warnings: Vec::new(),
        };
        self.runs
            .write(&record)
            .map_err(|e| Error::Io(format!("cannot write run record: {e}")))?;
        let options = self.options(request, Mode::Run, id);
        if executor == ExecutorKind::Slurm {
            let submission = crate::slurm::Submission {
                pipeline: &pipeline,
                dag: &dag,
                request,
                options: &options,
                started,
            };
            return crate::slurm::run(self, submission, record, lock, observer);
        }
        let (results, warning) = self.walk(&pipeline, &dag, &options, &Local, observer);
        record.warnings.extend(warning);
        self.complete(&pipeline, &results?, &mut record, started, false)?;
        Ok(record)
    }

    /// Fills in a run record from its stages' results (stages, metrics, warnings, status, duration),
    /// writes the reports and the record.
    pub fn complete(
        &self,
        pipeline: &Pipeline,
        results: &[StageResult],
        record: &mut RunRecord,
        started: SystemTime,
        cancelled: bool,
    ) -> Result<(), Error> {
        for r in results {
            record
                .warnings
                .extend(r.warnings.iter().map(|w| format!("{}: {w}", r.name)));
            if let Some(m) = &r.metrics {
                record.metrics.insert(r.name.clone(), m.clone());
            }
        }
        record.stages = results.iter().map(|r| stage_record(pipeline, r)).collect();
        record.status = if cancelled {
            "cancelled"
        } else if results.iter().any(|r| r.status == Status::Failed) {
            "failed"
        } else {
            "succeeded"
        }
        .into();
        let now = SystemTime::now();
        record.finished_at = Some(record::rfc3339(now));
        record.duration_s = now
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();
        self.publish_reports(pipeline, results, record);
        self.runs
            .write(record)
            .map_err(|e| Error::Io(format!("cannot write run record: {e}")))
    }

    /// Writes `runs/<id>/report/` for each report stage: around its figures when it ran or was restored,
    /// from the run record alone when it did not (a failed run). A report that cannot be written is a
    /// warning, never a failed run.
    fn publish_reports(
        &self,
        pipeline: &Pipeline,
        results: &[StageResult],
        record: &mut RunRecord,
    ) {
        for result in results {
            let Some(stage) = pipeline.stages.iter().find(|s| s.name == result.name) else {
                continue;
            };
            let Action::Builtin { kind, settings, .. } = &stage.action else {
                continue;
            };
            let Some(figures) = settings
                .get("figures")
                .and_then(Value::as_str)
                .filter(|_| kind == "report")
            else {
                continue;
            };
            let figures = self.root.join(figures);
            let figures =
                matches!(result.status, Status::Ran | Status::Cached).then_some(figures.as_path());
            let report_dir = self.runs.run_dir(&record.id).join("report");
            if let Err(e) = crate::report::markdown::publish(&report_dir, figures, record) {
                record.warnings.push(format!(
                    "{}: cannot write the run report: {e:#}",
                    stage.name
                ));
            }
        }
    }

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
            let running = r.effective_status() == "running";
            if running && r.executor == ExecutorKind::Slurm.name() {
                live.extend(crate::slurm::committed_keys(self, &r.id));
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

/// A stage's line in `run.json`.
pub fn stage_record(pipeline: &Pipeline, r: &StageResult) -> StageRecord {
    let stage = &pipeline.stages[r.index];
    StageRecord {
        name: r.name.clone(),
        kind: stage.kind_name().to_string(),
        status: r.status.word().to_string(),
        key: r.key.clone(),
        duration_s: r.duration_s,
        saved_s: r.saved_s,
        reason: r.reason.clone(),
        outputs: r
            .outputs
            .iter()
            .map(|(p, t)| (p.clone(), t.hash.clone()))
            .collect(),
        exit_code: r.exit_code,
        error: r.error.clone(),
        job_id: r.job_id.clone(),
    }
}
