//! Runs (or plans) a pipeline. The scheduler walks the DAG and hands each stage whose upstream stages
//! are done to a pool of worker threads; a worker evaluates one stage: hash its deps, compute its key,
//! restore it from the store on a hit, or hand it to the executor on a miss: the local one runs it
//! in the worker and commits its outputs; a cluster one queues it as a job (status `Queued`), and the
//! stages below it are queued after that job, since their keys need its outputs.
//!
//! ```text
//!   board: ready queue, waiting counts, results ◀──▶ [worker × jobs] ──▶ reporter, run record
//!   a worker takes a ready stage, evaluates it, records the result and queues the dependents
//!   whose upstream stages are now all done (and carries on with the first of them itself)
//! ```
//!
//! In plan mode (`pipe status`, `--dry-run`) the same evaluation stops before restoring or running,
//! and a stage below one that will run is reported as "upstream `x` will run" (its key cannot be
//! known until then).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::builtin;
use crate::dag::Dag;
use crate::executor::{Executor, Launch};
use crate::fsutil;
use crate::hash::{StatCache, Tree, TreeKind};
use crate::key::{KEY_VERSION, KeyInput};
use crate::spec::{Action, ExecutorKind, Pipeline, Stage, is_within};
use crate::state::{self, PipelineState, StageState};
use crate::store::{Entry, RestoreError, Store};

/// How many lines of a failed command's stderr are shown.
const STDERR_TAIL_LINES: usize = 15;

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
    /// Where stage logs go (`runs/<id>/logs`).
    pub log_dir: PathBuf,
    /// The run id, passed to commands as `PIPE_RUN_ID`.
    pub run_id: String,
}

/// The outcome of one stage.
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
        }
    }
}

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
    /// The cluster job that runs (or ran) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// What its key was made of, saved as the pipeline's last state when the run ends.
    state: Option<StageState>,
}

/// Receives progress as stages start and finish.
pub trait Observer: Sync {
    /// A stage was handed to a worker.
    fn started(&self, stage: &Stage);
    /// A stage is done (in any way).
    fn finished(&self, result: &StageResult);
}

/// The shared, read-only context of one run.
pub struct Runner<'a> {
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
}

/// The scheduler's shared state.
struct Board {
    /// Stages whose upstream stages are all done, in pipeline order.
    ready: VecDeque<usize>,
    /// Per stage, how many selected upstream stages are not done yet.
    waiting: Vec<usize>,
    /// Per stage, its result once done.
    results: Vec<Option<StageResult>>,
    /// Stages being evaluated right now.
    in_flight: usize,
    /// The stage whose failure stopped the run (without `--keep-going`).
    stopped: Option<String>,
}

/// What every worker shares.
struct Pool<'a> {
    board: &'a Mutex<Board>,
    wake: &'a Condvar,
    selected: &'a [bool],
    position: &'a [usize],
    observer: &'a dyn Observer,
    last_state: &'a PipelineState,
}

/// One stage handed to [`Runner::evaluate`]: its settled upstream stages' outputs, and the upstream
/// stages queued as cluster jobs (name, job id), which it must wait for.
pub struct Job {
    /// Index in `pipeline.stages`.
    pub index: usize,
    /// Upstream stage name -> its outputs.
    pub upstream: Vec<(String, Arc<BTreeMap<String, Tree>>)>,
    /// Upstream stages still queued: (name, job id).
    pub queued_upstream: Vec<(String, String)>,
}

impl Runner<'_> {
    /// Evaluates every selected stage; returns one result per selected stage, in pipeline order.
    pub fn run(&self, observer: &dyn Observer) -> Result<Vec<StageResult>, String> {
        let selected = self.dag.select(self.pipeline, &self.options.targets)?;
        if let Force::Stages(names) = &self.options.force {
            self.dag
                .select(self.pipeline, &names.iter().cloned().collect::<Vec<_>>())?;
        }
        let state_path = state::path(self.store.dir(), &self.pipeline.file);
        let last_state = PipelineState::load(&state_path);
        let n = self.pipeline.stages.len();
        let waiting: Vec<usize> = (0..n)
            .map(|i| {
                self.dag
                    .upstream(i)
                    .filter(|(u, _)| selected[*u])
                    .map(|(u, _)| u)
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .collect();
        let position: Vec<usize> = {
            let mut p = vec![0; n];
            for (rank, &i) in self.dag.order().iter().enumerate() {
                p[i] = rank;
            }
            p
        };
        let ready: VecDeque<usize> = self
            .dag
            .order()
            .iter()
            .copied()
            .filter(|&i| selected[i] && waiting[i] == 0)
            .collect();
        let jobs = self
            .options
            .jobs
            .max(1)
            .min(selected.iter().filter(|s| **s).count().max(1));
        let board = Mutex::new(Board {
            ready,
            waiting,
            results: vec![None; n],
            in_flight: 0,
            stopped: None,
        });
        let wake = Condvar::new();
        let pool = Pool {
            board: &board,
            wake: &wake,
            selected: &selected,
            position: &position,
            observer,
            last_state: &last_state,
        };
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| self.work(&pool));
            }
        });
        let mut results: Vec<StageResult> = board
            .into_inner()
            .expect("scheduler lock")
            .results
            .into_iter()
            .flatten()
            .collect();
        if self.options.mode == Mode::Run {
            save_state(self.store, &self.pipeline.file, &mut results)?;
        }
        Ok(results)
    }

    /// One worker: takes ready stages off the board until none are left or running. A worker that
    /// finishes a stage goes on with the dependent it made ready itself, so a chain of cache hits
    /// runs on one thread without a wake-up per stage.
    fn work(&self, pool: &Pool) {
        let mut board = pool.board.lock().expect("scheduler lock");
        loop {
            let Some(i) = board.ready.pop_front() else {
                if board.in_flight == 0 {
                    pool.wake.notify_all();
                    return;
                }
                board = pool.wake.wait(board).expect("scheduler lock");
                continue;
            };
            let result =
                match self.settle_without_running(i, &board.results, board.stopped.as_deref()) {
                    Some(settled) => settled,
                    None => {
                        let upstream_results = || {
                            self.dag
                                .upstream(i)
                                .filter_map(|(u, _)| board.results[u].as_ref())
                        };
                        let job = Job {
                            index: i,
                            upstream: upstream_results()
                                .filter(|r| r.status != Status::Queued)
                                .map(|r| (r.name.clone(), r.outputs.clone()))
                                .collect(),
                            queued_upstream: upstream_results()
                                .filter_map(|r| Some((r.name.clone(), r.job_id.clone()?)))
                                .collect(),
                        };
                        board.in_flight += 1;
                        drop(board);
                        pool.observer.started(&self.pipeline.stages[i]);
                        let result = self.evaluate(job, pool.last_state);
                        board = pool.board.lock().expect("scheduler lock");
                        board.in_flight -= 1;
                        if result.status == Status::Failed
                            && !self.options.keep_going
                            && board.stopped.is_none()
                        {
                            board.stopped = Some(result.name.clone());
                        }
                        result
                    }
                };
            pool.observer.finished(&result);
            let mut newly: Vec<usize> = Vec::new();
            for d in self.dag.downstream(i) {
                if pool.selected[d] {
                    board.waiting[d] -= 1;
                    if board.waiting[d] == 0 {
                        newly.push(d);
                    }
                }
            }
            newly.sort_by_key(|d| pool.position[*d]);
            board.ready.extend(newly);
            board.results[i] = Some(result);
            if board.ready.len() > 1 {
                pool.wake.notify_all();
            }
        }
    }

    /// A result for a stage that must not be dispatched: an upstream failed or will run, or the run
    /// has stopped.
    fn settle_without_running(
        &self,
        i: usize,
        results: &[Option<StageResult>],
        stopped: Option<&str>,
    ) -> Option<StageResult> {
        let stage = &self.pipeline.stages[i];
        for (u, _) in self.dag.upstream(i) {
            let Some(up) = &results[u] else { continue };
            let reason = match up.status {
                Status::Failed => format!("upstream `{}` failed", up.name),
                Status::Skipped if up.key.is_none() && up.outputs.is_empty() => {
                    format!("upstream `{}` did not run", up.name)
                }
                Status::WillRun => {
                    return Some(StageResult::new(
                        i,
                        stage,
                        Status::WillRun,
                        format!("upstream `{}` will run", up.name),
                    ));
                }
                _ => continue,
            };
            return Some(StageResult::new(i, stage, Status::Skipped, reason));
        }
        stopped.map(|name| {
            StageResult::new(
                i,
                stage,
                Status::Skipped,
                format!("run stopped after `{name}` failed"),
            )
        })
    }

    fn forced(&self, stage: &Stage) -> bool {
        match &self.options.force {
            Force::None => false,
            Force::All => true,
            Force::Stages(names) => {
                names.contains(&stage.name)
                    || stage.group.as_ref().is_some_and(|g| names.contains(g))
            }
        }
    }

    /// Evaluates one stage whose upstream stages are settled or queued: restores it, runs it, or
    /// queues it, and says which (a failure is a result, not an error).
    pub fn evaluate(&self, job: Job, last_state: &PipelineState) -> StageResult {
        let index = job.index;
        let stage = &self.pipeline.stages[index];
        let start = Instant::now();
        let mut result = self
            .evaluate_inner(job, stage, last_state)
            .unwrap_or_else(|error| {
                let mut r = StageResult::new(index, stage, Status::Failed, "failed".into());
                r.error = Some(error);
                r
            });
        result.duration_s = start.elapsed().as_secs_f64();
        result
    }

    fn evaluate_inner(
        &self,
        job: Job,
        stage: &Stage,
        last_state: &PipelineState,
    ) -> Result<StageResult, String> {
        let i = job.index;
        if stage.frozen {
            let outputs = self.hash_outputs(stage, "does not exist (the stage is frozen)")?;
            let mut r = StageResult::new(i, stage, Status::Skipped, "frozen".into());
            r.outputs = Arc::new(outputs);
            r.metrics = self.read_metrics(stage);
            return Ok(r);
        }
        if !job.queued_upstream.is_empty() {
            // Its key needs its upstream stages' outputs: the cluster job computes it.
            let names: Vec<String> = job
                .queued_upstream
                .iter()
                .map(|(name, id)| format!("`{name}` (job {id})"))
                .collect();
            let after: Vec<String> = job.queued_upstream.into_iter().map(|(_, id)| id).collect();
            let mut r = StageResult::new(
                i,
                stage,
                Status::Queued,
                format!("after {}", names.join(", ")),
            );
            match self.executor.launch(self, stage, &after) {
                Launch::Queued(job_id) => r.job_id = Some(job_id),
                Launch::Finished(Err((error, _))) => {
                    r.status = Status::Failed;
                    r.error = Some(error);
                }
                Launch::Finished(Ok(())) => {
                    unreachable!("only an executor that queues stages has queued upstream stages")
                }
            }
            return Ok(r);
        }
        let deps = self.hash_deps(stage, &job.upstream)?;
        let input = self.key_input(stage, &deps, &job.upstream);
        let key = input.key();
        let new_state = StageState::new(key.clone(), input.clone(), &deps);
        let mut warnings = Vec::new();
        let forced = self.forced(stage);
        let cacheable = !forced && !stage.always_changed;
        if cacheable && let Some(hit) = self.hit(i, stage, &key, &new_state, &mut warnings)? {
            return Ok(hit);
        }
        // A miss. Two runs that need this key at once run it once: the second waits here for the
        // first, then looks again and restores what it committed.
        let runs_here = self.executor.kind() == ExecutorKind::Local;
        let _key_lock = if self.options.mode == Mode::Run && runs_here {
            let waited = Instant::now();
            let mut holder_seen = None;
            let lock = self
                .store
                .lock_key(&key, |holder| holder_seen = Some(holder.to_string()))
                .map_err(|e| format!("cannot lock key {key}: {e}"))?;
            if let Some(holder) = holder_seen {
                warnings.push(format!(
                    "waited {:.1}s while another run ({holder}) evaluated the same key",
                    waited.elapsed().as_secs_f64()
                ));
                if cacheable
                    && let Some(hit) = self.hit(i, stage, &key, &new_state, &mut warnings)?
                {
                    return Ok(hit);
                }
            }
            Some(lock)
        } else {
            None
        };
        let mut reasons = state::explain(last_state.stages.get(&stage.name), &input, &deps);
        if forced {
            reasons.insert(0, "forced".into());
        }
        let mut r = StageResult::new(i, stage, Status::WillRun, reasons.join("; "));
        r.key = Some(key.clone());
        r.warnings = warnings;
        if self.options.mode == Mode::Plan {
            return Ok(r);
        }
        let started = Instant::now();
        match self.executor.launch(self, stage, &[]) {
            Launch::Finished(Ok(())) => {}
            Launch::Finished(Err((error, exit_code))) => {
                r.status = Status::Failed;
                r.error = Some(error);
                r.exit_code = exit_code;
                return Ok(r);
            }
            Launch::Queued(job_id) => {
                r.status = Status::Queued;
                r.job_id = Some(job_id);
                return Ok(r);
            }
        }
        let duration_s = started.elapsed().as_secs_f64();
        let outputs = self.hash_outputs(stage, "was not created by the stage")?;
        let entry = Entry {
            format: 1,
            key,
            stage: stage.name.clone(),
            cached: stage
                .outs
                .iter()
                .filter(|o| o.cache)
                .map(|o| o.path.path.clone())
                .collect(),
            outputs,
            duration_s,
        };
        self.store
            .commit(self.root, &entry)
            .map_err(|e| format!("cannot save outputs of `{}` to the store: {e}", stage.name))?;
        r.status = Status::Ran;
        r.outputs = Arc::new(entry.outputs);
        r.metrics = self.read_metrics(stage);
        r.state = Some(new_state);
        Ok(r)
    }

    /// The stage's result if its key is in the store and its entry is usable (restored in run mode);
    /// a corrupt entry is dropped, with a warning, and the stage runs.
    fn hit(
        &self,
        i: usize,
        stage: &Stage,
        key: &str,
        new_state: &StageState,
        warnings: &mut Vec<String>,
    ) -> Result<Option<StageResult>, String> {
        let entry = match self.store.lookup(key) {
            Ok(entry) => entry,
            Err(warning) => {
                warnings.push(format!("{warning}; running the stage again"));
                self.store.drop_entry(key);
                None
            }
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        match self.use_entry(stage, &entry) {
            Ok(restored) => {
                let mut r = StageResult::new(i, stage, Status::Cached, String::new());
                r.reason = match (self.options.mode, restored) {
                    (Mode::Plan, true) => "will restore outputs from the cache".into(),
                    (Mode::Run, true) => "restored from the cache".into(),
                    _ => "up to date".into(),
                };
                r.key = Some(key.to_string());
                r.saved_s = entry.duration_s;
                r.outputs = Arc::new(entry.outputs);
                r.restored = restored;
                r.metrics = self.read_metrics(stage);
                r.warnings = std::mem::take(warnings);
                r.state = Some(new_state.clone());
                Ok(Some(r))
            }
            Err(RestoreError::Io { path, source }) => {
                Err(format!("cannot restore output `{path}`: {source}"))
            }
            Err(e @ RestoreError::Corrupt { .. }) => {
                warnings.push(format!(
                    "{e}; the entry was dropped and the stage runs again"
                ));
                self.store.drop_entry(key);
                Ok(None)
            }
            Err(e @ RestoreError::Uncached(_)) => {
                warnings.push(e.to_string());
                Ok(None)
            }
        }
    }

    /// Restores (run mode) or checks (plan mode) a hit. Returns whether the workspace needs writing.
    fn use_entry(&self, stage: &Stage, entry: &Entry) -> Result<bool, RestoreError> {
        let declared: BTreeSet<&str> = stage.outs.iter().map(|o| o.path.path.as_str()).collect();
        if entry
            .outputs
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            != declared
        {
            return Err(RestoreError::Corrupt {
                path: stage.name.clone(),
                problem: "an entry whose outputs differ from the stage's".into(),
            });
        }
        match self.options.mode {
            Mode::Run => self.store.restore(self.root, entry, self.stats),
            Mode::Plan => Ok(entry.outputs.iter().any(|(path, tree)| {
                self.stats
                    .hash_tree(&self.root.join(path))
                    .map(|t| t.hash != tree.hash)
                    .unwrap_or(true)
            })),
        }
    }

    /// Each dep's content: from the upstream stage's recorded outputs when the dep is (inside) one
    /// of them, else hashed from the workspace.
    fn hash_deps(
        &self,
        stage: &Stage,
        upstream: &[(String, Arc<BTreeMap<String, Tree>>)],
    ) -> Result<BTreeMap<String, Tree>, String> {
        let mut deps = BTreeMap::new();
        for dep in &stage.deps {
            let known = upstream
                .iter()
                .flat_map(|(_, outs)| outs.iter())
                .find_map(|(out, tree)| subtree(tree, out, &dep.path));
            let tree = match known {
                Some(t) => t,
                None => self
                    .stats
                    .hash_tree(&self.root.join(&dep.path))
                    .map_err(|e| {
                        format!(
                            "cannot read dep `{}` of stage `{}`: {e}",
                            dep.path, stage.name
                        )
                    })?,
            };
            deps.insert(dep.path.clone(), tree);
        }
        Ok(deps)
    }

    fn key_input(
        &self,
        stage: &Stage,
        deps: &BTreeMap<String, Tree>,
        upstream: &[(String, Arc<BTreeMap<String, Tree>>)],
    ) -> KeyInput {
        let (kind, kind_version, action) = match &stage.action {
            Action::Command(cmds) => ("cmd".to_string(), 0, Value::from(cmds.clone())),
            Action::Builtin {
                kind,
                version,
                settings,
            } => (
                kind.clone(),
                *version,
                serde_json::to_value(settings).expect("settings serialize"),
            ),
        };
        KeyInput {
            key_version: KEY_VERSION,
            kind,
            kind_version,
            action,
            params: stage.params.clone(),
            inputs: deps
                .iter()
                .map(|(p, t)| (p.clone(), t.hash.clone()))
                .collect(),
            outs: stage
                .outs
                .iter()
                .map(|o| {
                    if o.cache {
                        o.path.path.clone()
                    } else {
                        format!("{} (uncached)", o.path.path)
                    }
                })
                .collect(),
            wdir: stage.wdir.clone(),
            upstream: upstream
                .iter()
                .map(|(name, outs)| (name.clone(), outputs_hash(outs)))
                .collect(),
            nonce: stage
                .always_changed
                .then(fsutil::unique_suffix)
                .map(|s| format!("{s}-{:?}", std::time::SystemTime::now())),
        }
    }

    /// The content of each output; a missing one is an error that ends with `missing`.
    fn hash_outputs(&self, stage: &Stage, missing: &str) -> Result<BTreeMap<String, Tree>, String> {
        stage
            .outs
            .iter()
            .map(|o| {
                let path = &o.path.path;
                let full = self.root.join(path);
                if !full.exists() {
                    return Err(format!(
                        "output `{path}` of stage `{}` {missing}",
                        stage.name
                    ));
                }
                let tree = self
                    .stats
                    .hash_tree(&full)
                    .map_err(|e| format!("cannot hash output `{path}`: {e}"))?;
                Ok((path.clone(), tree))
            })
            .collect()
    }

    /// Runs the stage's command or built-in in this process. Errors carry the message and, for
    /// commands, the exit code.
    pub fn execute(&self, stage: &Stage) -> Result<(), (String, Option<i32>)> {
        for out in &stage.outs {
            let full = self.root.join(&out.path.path);
            if !out.persist {
                fsutil::remove_path(&full).map_err(|e| {
                    (
                        format!("cannot remove old output `{}`: {e}", out.path.path),
                        None,
                    )
                })?;
            }
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).map_err(|e| {
                    (
                        format!(
                            "cannot create the folder of output `{}` ({}): {e}",
                            out.path.path,
                            parent.display()
                        ),
                        None,
                    )
                })?;
            }
        }
        match &stage.action {
            Action::Command(cmds) => self.run_commands(stage, cmds),
            Action::Builtin { kind, settings, .. } => {
                let implementation =
                    builtin::implementation(kind).expect("declared kinds have implementations");
                let ctx = builtin::Context {
                    root: self.root,
                    stage: &stage.name,
                    settings,
                    log: Some(self.options.log_dir.join(format!("{}.stdout", stage.name))),
                };
                implementation(&ctx).map_err(|e| (format!("{e:#}"), None))
            }
        }
    }

    fn run_commands(&self, stage: &Stage, cmds: &[String]) -> Result<(), (String, Option<i32>)> {
        let log_dir = &self.options.log_dir;
        fs::create_dir_all(log_dir).map_err(|e| {
            (
                format!("cannot create log folder {}: {e}", log_dir.display()),
                None,
            )
        })?;
        let stdout_path = log_dir.join(format!("{}.stdout", stage.name));
        let stderr_path = log_dir.join(format!("{}.stderr", stage.name));
        let open = |p: &Path| {
            fs::File::create(p)
                .map_err(|e| (format!("cannot create log {}: {e}", p.display()), None))
        };
        let (stdout, stderr) = (open(&stdout_path)?, open(&stderr_path)?);
        for cmd in cmds {
            let status = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .current_dir(self.root.join(&stage.wdir))
                .env("PIPE_STAGE", &stage.name)
                .env("PIPE_RUN_ID", &self.options.run_id)
                .stdin(Stdio::null())
                .stdout(stdout.try_clone().map_err(|e| (e.to_string(), None))?)
                .stderr(stderr.try_clone().map_err(|e| (e.to_string(), None))?)
                .status()
                .map_err(|e| {
                    (
                        format!("cannot start `sh` for stage `{}`: {e}", stage.name),
                        None,
                    )
                })?;
            if !status.success() {
                let how = match status.code() {
                    Some(code) => format!("exited with code {code}"),
                    None => {
                        use std::os::unix::process::ExitStatusExt;
                        format!("was killed by signal {}", status.signal().unwrap_or(0))
                    }
                };
                let tail = tail_lines(&stderr_path, STDERR_TAIL_LINES);
                let mut message = format!("command `{cmd}` {how}");
                if !tail.is_empty() {
                    message.push_str(&format!(
                        "\nlast lines of stderr ({}):\n{tail}",
                        stderr_path.display()
                    ));
                }
                return Err((message, status.code()));
            }
        }
        Ok(())
    }

    /// Values from the stage's metrics files (JSON or YAML), merged into one mapping.
    fn read_metrics(&self, stage: &Stage) -> Option<Value> {
        let mut merged = serde_json::Map::new();
        for out in stage.outs.iter().filter(|o| o.metrics) {
            let text = fs::read_to_string(self.root.join(&out.path.path)).ok()?;
            let value = serde_json::from_str(&text).ok().or_else(|| {
                crate::spec::yaml::parse(&text)
                    .ok()
                    .flatten()
                    .map(|n| n.to_value())
            })?;
            match value {
                Value::Object(map) => merged.extend(map),
                other => {
                    merged.insert(out.path.path.clone(), other);
                }
            }
        }
        (!merged.is_empty()).then_some(Value::Object(merged))
    }
}

/// Saves what each evaluated stage's key was made of as the pipeline's last state, for the reasons
/// `pipe status` gives; results give their part up (it is not needed twice).
pub fn save_state(
    store: &Store,
    pipeline_file: &str,
    results: &mut [StageResult],
) -> Result<(), String> {
    let path = state::path(store.dir(), pipeline_file);
    // Several processes may finish runs of this pipeline at once (Slurm runs' finishing jobs).
    let _lock = crate::store::FileLock::acquire(&path.with_extension("lock"), |_| {})
        .map_err(|e| format!("cannot lock the stage state: {e}"))?;
    let last_state = PipelineState::load(&path);
    let updates: BTreeMap<String, StageState> = results
        .iter_mut()
        .filter_map(|r| r.state.take().map(|s| (r.name.clone(), s)))
        .filter(|(name, s)| {
            last_state
                .stages
                .get(name)
                .is_none_or(|old| old.key != s.key)
        })
        .collect();
    PipelineState::merge_and_save(&path, updates)
        .map_err(|e| format!("cannot save stage state: {e}"))
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
            job_id: None,
            state: None,
        }
    }
}

/// One hash for all of a stage's outputs (what dependents' keys record as `upstream`).
pub fn outputs_hash(outputs: &BTreeMap<String, Tree>) -> String {
    let mut hasher = blake3::Hasher::new();
    for (path, tree) in outputs {
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(tree.hash.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

/// The part of output `tree` (at `out`) that is `dep`, when `dep` is `out` or lies inside it.
fn subtree(tree: &Tree, out: &str, dep: &str) -> Option<Tree> {
    if dep == out {
        return Some(tree.clone());
    }
    if !is_within(dep, out) || tree.kind != TreeKind::Dir {
        return None;
    }
    let rel = &dep[out.len() + 1..];
    if let Some(file) = tree.files.iter().find(|f| f.path == rel) {
        let mut file = file.clone();
        file.path.clear();
        return Some(Tree {
            kind: TreeKind::File,
            hash: file.hash.clone(),
            files: vec![file],
        });
    }
    let prefix = format!("{rel}/");
    let files: Vec<_> = tree
        .files
        .iter()
        .filter_map(|f| {
            f.path
                .strip_prefix(&prefix)
                .map(|p| crate::hash::FileEntry {
                    path: p.to_string(),
                    ..f.clone()
                })
        })
        .collect();
    (!files.is_empty()).then(|| Tree {
        kind: TreeKind::Dir,
        hash: crate::hash::listing_hash(&files),
        files,
    })
}

/// The last `n` lines of a file, or "" when it cannot be read.
pub fn tail_lines(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
