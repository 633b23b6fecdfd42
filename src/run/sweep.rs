//! Running a sweep: one ordinary run per combination of the axes, each recorded in its own
//! `run.json` and all of them in the sweep's `sweep.json`.
//!
//! The runs go at once, each in its own sandbox ([`super::sandbox`]) so that their outputs do not
//! collide, and their stages share one pool of `--jobs` slots: locally, up to `--jobs` runs are at
//! work and at most `--jobs` stages; on Slurm every run is submitted at once. The workspace itself
//! is left as it was. Shared work is done once through the store: a stage whose key is the same in
//! several runs (one that does not depend on the swept params) runs in one of them while the others
//! wait on its key, then restore it. In a sandbox a hit is written out only when a stage that runs
//! reads it (or the run's record does: metrics, report figures), so a sweep that is all hits writes
//! almost nothing.
//!
//! A combination that fails (an invalid value, a failing stage) is recorded and the others go on;
//! Ctrl-C stops the runs at work and cancels the rest. Running the same sweep again runs only what
//! is missing, since every finished stage is in the store.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::context::{RunRequest, Shared};
use super::events::Observer;
use super::groups;
use super::sandbox::Sandbox;
use super::slots::Slots;
use super::workspace::Workspace;
use crate::error::Error;
use crate::pipeline::graph::Dag;
use crate::pipeline::sweep::{self, Axis};
use crate::pipeline::{ExecutorKind, Override, Pipeline};
use crate::records::sweep::{SWEEP_FORMAT_VERSION, SweepRecord, SweepRun};
use crate::records::{self, RunRecord, RunStatus};

/// What to sweep: the axes, and with `sample` a seeded random subset of their grid.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// The axes (from `--sweep` or the pipeline's `sweep:`).
    pub axes: Vec<Axis>,
    /// `--sample N --seed S`.
    pub sample: Option<(usize, u64)>,
    /// An id reserved beforehand (by `--detach`, which starts the sweep in another process).
    pub id: Option<String>,
}

impl SweepPlan {
    /// The combinations to run, as overrides, in order; a grid of more than
    /// [`sweep::MAX_RUNS`] is refused before it is built.
    pub fn combinations(&self) -> Result<Vec<Vec<Override>>, Error> {
        let size = sweep::grid_size(&self.axes);
        if size > sweep::MAX_RUNS {
            return Err(Error::Usage(format!(
                "the sweep's grid has {size} combinations, more than {}; sweep fewer values",
                sweep::MAX_RUNS
            )));
        }
        Ok(match self.sample {
            Some((n, seed)) => sweep::sample(&self.axes, n, seed),
            None => sweep::grid(&self.axes),
        })
    }
}

/// Told as a sweep's runs start and end (from the threads that run them, one call at a time).
pub trait SweepObserver: Send {
    /// The sweep starts: `total` runs, up to `at_once` of them at work together.
    fn planned(&mut self, sweep: &str, total: usize, at_once: usize);
    /// Something went wrong that did not stop the sweep.
    fn warn(&mut self, message: &str);
    /// Run `index` (from 0) of `total` starts with `values`; returns the observer of its stages.
    fn starting(
        &mut self,
        index: usize,
        total: usize,
        values: &[Override],
        pipeline: &Pipeline,
    ) -> Box<dyn Observer>;
    /// A run ended (its record, when it got as far as having one).
    fn finished(&mut self, run: &SweepRun, record: Option<&RunRecord>);
}

/// What the threads running a sweep's runs share.
struct Progress<'a> {
    record: Mutex<(SweepRecord, &'a mut dyn SweepObserver)>,
    made: Mutex<Vec<(usize, RunRecord)>>,
    next: AtomicUsize,
    /// A run was cancelled (Ctrl-C, or `pipe cancel` of its Slurm jobs): start no more.
    stop: AtomicBool,
}

impl Workspace {
    /// Runs every combination of `plan` over `request`'s pipeline and records the sweep; returns its
    /// record and the records of the runs it made, in order. Waits (calling `on_wait`) while another
    /// run holds the workspace.
    pub fn sweep(
        &self,
        request: &RunRequest,
        plan: &SweepPlan,
        observer: &mut dyn SweepObserver,
        on_wait: &dyn Fn(&str),
    ) -> Result<(SweepRecord, Vec<RunRecord>), Error> {
        // A pipeline that is invalid whatever the swept values are stops here, with one error.
        let (pipeline, _) = self.load(&request.file, &request.overrides, &request.targets)?;
        let combinations = plan.combinations()?;
        let _lock = self
            .store
            .lock_workspace(on_wait)
            .map_err(|e| Error::Io(format!("cannot lock the workspace store: {e}")))?;
        for (stage, message) in groups::end_orphans(&self.store, &self.root) {
            observer.warn(&format!("{stage}: {message}"));
        }
        groups::forward_interrupts();
        let started = SystemTime::now();
        let record = self.new_sweep(request, plan, &combinations, started)?;
        let jobs = request.jobs.max(1);
        let on_slurm = request.executor.or(pipeline.executor) == Some(ExecutorKind::Slurm);
        // On Slurm the cluster does the work: every run is submitted at once.
        let at_once =
            if on_slurm { combinations.len() } else { jobs }.clamp(1, combinations.len().max(1));
        observer.planned(&record.id, combinations.len(), at_once);
        let shared = Arc::new(Shared {
            sources: self.root.clone(),
            slots: Slots::new(if on_slurm { jobs * at_once } else { jobs }),
        });
        let mut each = request.clone();
        each.sweep = Some(record.id.clone());
        let progress = Progress {
            record: Mutex::new((record, observer)),
            made: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        };
        std::thread::scope(|scope| {
            for _ in 0..at_once {
                scope.spawn(|| self.sweep_worker(&each, &combinations, &shared, &progress));
            }
        });
        let (mut record, _) = progress.record.into_inner().expect("sweep lock");
        let mut made = progress.made.into_inner().expect("sweep lock");
        made.sort_by_key(|(index, _)| *index);
        self.finish_sweep(&mut record, started)?;
        Ok((record, made.into_iter().map(|(_, r)| r).collect()))
    }

    /// One of the threads of a sweep: takes the next combination and runs it, until none is left.
    /// `request` is the sweep's, with its id.
    fn sweep_worker(
        &self,
        request: &RunRequest,
        combinations: &[Vec<Override>],
        shared: &Arc<Shared>,
        progress: &Progress,
    ) {
        loop {
            let index = progress.next.fetch_add(1, Ordering::SeqCst);
            if index >= combinations.len()
                || groups::interrupted()
                || progress.stop.load(Ordering::SeqCst)
            {
                return;
            }
            let values = &combinations[index];
            let mut one = request.clone();
            one.overrides.extend(values.iter().cloned());
            let outcome = self
                .load(&one.file, &one.overrides, &one.targets)
                .and_then(|loaded| {
                    let stages = {
                        let mut guard = progress.record.lock().expect("sweep lock");
                        let (record, observer) = &mut *guard;
                        record.runs[index].status = RunStatus::Running;
                        self.write_sweep(record)?;
                        observer.starting(index, combinations.len(), values, &loaded.0)
                    };
                    let sandbox =
                        format!("{}-{}", one.sweep.as_deref().unwrap_or("sweep"), index + 1);
                    self.run_in_sandbox(&one, loaded, &sandbox, shared, stages.as_ref())
                });
            let mut guard = progress.record.lock().expect("sweep lock");
            let (record, observer) = &mut *guard;
            let run = &mut record.runs[index];
            match &outcome {
                Ok(run_record) => {
                    run.run = Some(run_record.id.clone());
                    run.status = run_record.status;
                }
                Err(e) => {
                    run.status = RunStatus::Failed;
                    run.error = Some(e.to_string());
                }
            }
            if run.status == RunStatus::Cancelled {
                progress.stop.store(true, Ordering::SeqCst);
            }
            observer.finished(run, outcome.as_ref().ok());
            if let Err(e) = self.write_sweep(record) {
                observer.warn(&e.to_string());
            }
            drop(guard);
            if let Ok(run_record) = outcome {
                progress
                    .made
                    .lock()
                    .expect("sweep lock")
                    .push((index, run_record));
            }
        }
    }

    /// Runs one combination in a sandbox named `name`, removed when the run ends.
    fn run_in_sandbox(
        &self,
        request: &RunRequest,
        (pipeline, dag): (Pipeline, Dag),
        name: &str,
        shared: &Arc<Shared>,
        observer: &dyn Observer,
    ) -> Result<RunRecord, Error> {
        // A frozen stage's outputs are the workspace's: they are read through links.
        let outputs: BTreeSet<String> = pipeline
            .stages
            .iter()
            .filter(|s| !s.frozen)
            .flat_map(|s| s.outs.iter().map(|o| o.path.path.clone()))
            .collect();
        let sandbox = Sandbox::create(
            &self.root,
            self.store.sandboxes_dir().join(name),
            &outputs,
            &[self.store.dir(), self.runs.dir()],
        )
        .map_err(|e| Error::Io(format!("cannot lay out the run's sandbox: {e}")))?;
        let ws = self.sandboxed(sandbox.dir().to_path_buf(), Arc::clone(shared));
        let outcome = ws.run(request, (pipeline, dag), observer, |_| {});
        // A sandbox left behind is only disk space, which `pipe gc` takes back.
        let _ = sandbox.remove();
        outcome
    }

    /// The sweep's record, written with every combination still to run.
    fn new_sweep(
        &self,
        request: &RunRequest,
        plan: &SweepPlan,
        combinations: &[Vec<Override>],
        started: SystemTime,
    ) -> Result<SweepRecord, Error> {
        let id = match &plan.id {
            Some(id) => id.clone(),
            None => self.reserve_sweep()?,
        };
        let record = SweepRecord {
            format_version: SWEEP_FORMAT_VERSION,
            id,
            pipeline: request.file.clone(),
            status: RunStatus::Running,
            started_at: records::rfc3339(started),
            finished_at: None,
            duration_s: 0.0,
            axes: plan.axes.clone(),
            sample: plan.sample,
            overrides: request.overrides.clone(),
            pid: std::process::id(),
            host: crate::util::fsutil::host_name(),
            pid_started: groups::process_started(std::process::id()),
            runs: combinations
                .iter()
                .map(|values| SweepRun {
                    values: values.clone(),
                    run: None,
                    status: RunStatus::Queued,
                    error: None,
                })
                .collect(),
        };
        self.write_sweep(&record)?;
        Ok(record)
    }

    /// Marks what never started as cancelled, sets the sweep's status and time, and writes it.
    fn finish_sweep(&self, record: &mut SweepRecord, started: SystemTime) -> Result<(), Error> {
        for run in record
            .runs
            .iter_mut()
            .filter(|r| matches!(r.status, RunStatus::Queued | RunStatus::Running))
        {
            run.status = RunStatus::Cancelled;
        }
        let cancelled = record.runs.iter().any(|r| r.status == RunStatus::Cancelled);
        record.status = if groups::interrupted() || cancelled {
            RunStatus::Cancelled
        } else if record.runs.iter().all(|r| r.status == RunStatus::Succeeded) {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let finished = SystemTime::now();
        record.finished_at = Some(records::rfc3339(finished));
        record.duration_s = finished
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();
        self.write_sweep(record)
    }

    /// A new sweep id, its folder created.
    pub fn reserve_sweep(&self) -> Result<String, Error> {
        self.runs
            .create_sweep()
            .map_err(|e| Error::Io(format!("cannot create a sweep record: {e}")))
    }

    fn write_sweep(&self, record: &SweepRecord) -> Result<(), Error> {
        self.runs
            .write_sweep(record)
            .map_err(|e| Error::Io(format!("cannot write the sweep record: {e}")))
    }
}
