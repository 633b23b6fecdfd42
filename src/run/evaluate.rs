//! Evaluating one stage: hash its deps, compute its key, restore it from the store on a hit, or hand
//! it to the executor on a miss and commit what it wrote. A cluster executor queues it instead (status
//! `Queued`), and the stages below it are queued after that job, since their keys need its outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::context::{Mode, RunContext};
use super::events::{Event, Observer};
use super::executor::Launch;
use super::outcome::{StageResult, Status};
use crate::builtin::Progress;
use crate::pipeline::{Action, ExecutorKind, Stage, is_within};
use crate::store::hash::{Tree, TreeKind};
use crate::store::key::{KEY_VERSION, KeyInput};
use crate::store::state::{self, PipelineState, StageState};
use crate::store::{Entry, RestoreError, Store};
use crate::util::fsutil;

/// What a hit did with its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// The outputs in the workspace already match it.
    InPlace,
    /// Its files were written (run mode) or would be (plan mode).
    Restored,
    /// Left in the store until a stage that runs needs it (a sandbox's run).
    Deferred,
}

/// Hashing a dep with more bytes than this that the stat cache does not know shows its progress.
const SHOWN_HASHING: u64 = 64 << 20;

/// One stage handed to [`RunContext::evaluate`]: its settled upstream stages' outputs, and the upstream
/// stages queued as cluster jobs (name, job id), which it must wait for.
#[derive(Default)]
pub struct Job {
    /// Index in `pipeline.stages`.
    pub index: usize,
    /// Upstream stage name -> its outputs.
    pub upstream: Vec<(String, Arc<BTreeMap<String, Tree>>)>,
    /// Upstream stages still queued: (name, job id).
    pub queued_upstream: Vec<(String, String)>,
    /// The keys of upstream hits whose files are not written yet (in a sandbox).
    pub deferred_upstream: Vec<String>,
}

impl RunContext<'_> {
    /// Evaluates one stage whose upstream stages are settled or queued: restores it, runs it, or
    /// queues it, and says which (a failure is a result, not an error).
    pub fn evaluate(
        &self,
        job: Job,
        last_state: &PipelineState,
        events: &dyn Observer,
    ) -> StageResult {
        let index = job.index;
        let stage = &self.pipeline.stages[index];
        let start = Instant::now();
        let mut result = self
            .evaluate_inner(job, stage, last_state, events)
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
        events: &dyn Observer,
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
            return Ok(self.queue_after(i, stage, job.queued_upstream, events));
        }
        let deps = self.hash_deps(stage, &job.upstream, events)?;
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
        self.restore_deferred(&job.deferred_upstream)?;
        self.run_and_commit(r, stage, key, new_state, events)
    }

    /// Queues a stage to start after the cluster jobs of its upstream stages (name, job id).
    fn queue_after(
        &self,
        i: usize,
        stage: &Stage,
        upstream: Vec<(String, String)>,
        events: &dyn Observer,
    ) -> StageResult {
        let names: Vec<String> = upstream
            .iter()
            .map(|(name, id)| format!("`{name}` (job {id})"))
            .collect();
        let after: Vec<String> = upstream.into_iter().map(|(_, id)| id).collect();
        let mut r = StageResult::new(
            i,
            stage,
            Status::Queued,
            format!("after {}", names.join(", ")),
        );
        match self.executor.launch(&self.stage_env(events), stage, &after) {
            Launch::Queued(job_id) => r.job_id = Some(job_id),
            Launch::Finished(Err(failure)) => {
                r.status = Status::Failed;
                r.error = Some(failure.message);
            }
            Launch::Finished(Ok(())) => {
                unreachable!("only an executor that queues stages has queued upstream stages")
            }
        }
        r
    }

    /// Hands a stage that must run to the executor; when it ran here, commits its outputs to the
    /// store under `key`. `r` is its result so far (status `WillRun`, with the reasons).
    fn run_and_commit(
        &self,
        mut r: StageResult,
        stage: &Stage,
        key: String,
        new_state: StageState,
        events: &dyn Observer,
    ) -> Result<StageResult, String> {
        let started = Instant::now();
        // The stage's share of the cores, held while it runs (see `RunContext::launch_slots`).
        let slot = self.launch_slots().map(|slots| slots.take_for(stage));
        let launched = self.executor.launch(&self.stage_env(events), stage, &[]);
        drop(slot);
        match launched {
            Launch::Finished(Ok(())) => {}
            Launch::Finished(Err(failure)) => {
                r.status = Status::Failed;
                r.error = Some(failure.message);
                r.exit_code = failure.exit_code;
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
        if let Some(remote) = self.remote {
            remote.push_in_background(self.store, &entry.key);
        }
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
        let (entry, remote) = match entry {
            Some(entry) => (entry, false),
            None => match self.remote_entry(key, warnings) {
                Some(entry) => (entry, true),
                None => return Ok(None),
            },
        };
        match self.use_entry(stage, &entry) {
            Ok(used) => {
                let mut r = StageResult::new(i, stage, Status::Cached, String::new());
                r.reason = match (self.options.mode, used, remote) {
                    (Mode::Plan, _, true) => "will restore outputs from the remote cache".into(),
                    (Mode::Run, Use::Restored | Use::InPlace, true) => {
                        "restored from the remote cache".into()
                    }
                    (Mode::Run, Use::Deferred, true) => "fetched from the remote cache".into(),
                    (_, Use::InPlace, false) => "up to date".into(),
                    (Mode::Plan, _, false) => "will restore outputs from the cache".into(),
                    (Mode::Run, Use::Restored, false) => "restored from the cache".into(),
                    (Mode::Run, Use::Deferred, false) => "in the cache".into(),
                };
                r.key = Some(key.to_string());
                r.saved_s = entry.duration_s;
                r.outputs = Arc::new(entry.outputs);
                r.restored = used == Use::Restored;
                r.deferred = used == Use::Deferred;
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

    /// Restores (run mode) or checks (plan mode) a hit. In a sandbox, a hit that no record reads
    /// (no metrics, not a report) is left in the store until a stage that runs needs it.
    fn use_entry(&self, stage: &Stage, entry: &Entry) -> Result<Use, RestoreError> {
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
        let deferrable = self.shared.is_some()
            && !stage.outs.iter().any(|o| o.metrics)
            && stage.report_figures().is_none()
            && entry.outputs.keys().all(|path| entry.cached.contains(path));
        let written = |wrote: bool| if wrote { Use::Restored } else { Use::InPlace };
        match self.options.mode {
            Mode::Run if deferrable => Ok(Use::Deferred),
            Mode::Run => self
                .store
                .restore(self.root, entry, self.stats)
                .map(written),
            Mode::Plan => Ok(written(entry.outputs.iter().any(|(path, tree)| {
                self.stats
                    .hash_output(&self.root.join(path))
                    .map(|t| t.hash != tree.hash)
                    .unwrap_or(true)
            }))),
        }
    }

    /// Writes the files of the deferred hits among a stage's upstream stages (`keys`), before it runs.
    fn restore_deferred(&self, keys: &[String]) -> Result<(), String> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut restored = self.restored_on_demand.lock().expect("restored lock");
        for key in keys {
            if restored.contains(key) {
                continue;
            }
            let entry = self
                .store
                .lookup(key)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the store lost entry {key} during the run"))?;
            self.store
                .restore(self.root, &entry, self.stats)
                .map_err(|e| format!("cannot restore an upstream stage's outputs: {e}"))?;
            restored.insert(key.clone());
        }
        Ok(())
    }

    /// Each dep's content: from the upstream stage's recorded outputs when the dep is (inside) one
    /// of them, else hashed from the workspace.
    fn hash_deps(
        &self,
        stage: &Stage,
        upstream: &[(String, Arc<BTreeMap<String, Tree>>)],
        events: &dyn Observer,
    ) -> Result<BTreeMap<String, Tree>, String> {
        // Upstream outputs by path: a dep is one of them or lies inside one (they never overlap).
        let produced: HashMap<&str, &Tree> = upstream
            .iter()
            .flat_map(|(_, outs)| outs.iter())
            .map(|(path, tree)| (path.as_str(), tree))
            .collect();
        let mut deps = BTreeMap::new();
        for dep in &stage.deps {
            let known = ancestors(&dep.path).find_map(|out| {
                produced
                    .get(out)
                    .and_then(|tree| subtree(tree, out, &dep.path))
            });
            let tree = match known {
                Some(t) => t,
                None => self
                    .stats
                    .hash_tree_reporting(&self.sources().join(&dep.path), &|done, total| {
                        if total >= SHOWN_HASHING {
                            events.on(Event::Progress {
                                stage: &stage.name,
                                progress: &Progress {
                                    done: done >> 20,
                                    total: total >> 20,
                                    unit: "MiB",
                                    message: format!("hashing {}", dep.path),
                                },
                            });
                        }
                    })
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
        let (kind, kind_code, action) = match &stage.action {
            Action::Command(cmds) => ("cmd".to_string(), String::new(), Value::from(cmds.clone())),
            Action::Builtin {
                kind,
                code,
                settings,
            } => (
                kind.clone(),
                code.to_string(),
                serde_json::to_value(settings).expect("settings serialize"),
            ),
        };
        KeyInput {
            key_version: KEY_VERSION,
            kind,
            kind_code,
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
                    .hash_output(&full)
                    .map_err(|e| format!("cannot hash output `{path}`: {e}"))?;
                Ok((path.clone(), tree))
            })
            .collect()
    }

    /// Values from the stage's metrics files (JSON or YAML), merged into one mapping.
    fn read_metrics(&self, stage: &Stage) -> Option<Value> {
        let mut merged = serde_json::Map::new();
        for out in stage.outs.iter().filter(|o| o.metrics) {
            let text = fs::read_to_string(self.root.join(&out.path.path)).ok()?;
            let value = serde_json::from_str(&text).ok().or_else(|| {
                crate::pipeline::yaml::parse(&text)
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
/// `pipe status` gives; results give their part up (it is not needed twice). `seen` is the state as
/// the run read it when it started: when it already holds every key, nothing is read or written.
pub fn save_state(
    store: &Store,
    pipeline_file: &str,
    results: &mut [StageResult],
    seen: Option<&PipelineState>,
) -> Result<(), String> {
    let unchanged = |r: &StageResult| {
        seen.and_then(|s| s.stages.get(&r.name))
            .zip(r.state.as_ref())
            .is_some_and(|(old, new)| old.key == new.key)
    };
    if seen.is_some() && results.iter().all(|r| r.state.is_none() || unchanged(r)) {
        return Ok(());
    }
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

/// `path` and the folders above it, nearest first: `a/b/c`, `a/b`, `a`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rsplit_once('/').map(|(parent, _)| parent))
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
                .map(|p| crate::store::hash::FileEntry {
                    path: p.to_string(),
                    ..f.clone()
                })
        })
        .collect();
    (!files.is_empty()).then(|| Tree {
        kind: TreeKind::Dir,
        hash: crate::store::hash::listing_hash(&files),
        files,
    })
}
