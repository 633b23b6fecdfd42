//! Running a sweep: one ordinary run per combination of the axes, one after another in this
//! workspace, each recorded in its own `run.json` and all of them in the sweep's `sweep.json`.
//!
//! Shared work is done once through the store: a stage whose key is the same in several runs (one
//! that does not depend on the swept params) runs in the first and is restored, or found in place, in
//! the others. A combination that fails (an invalid value, a failing stage) is recorded and the
//! others go on; Ctrl-C stops the run at work and cancels the rest. Running the same sweep again
//! runs only what is missing, since every finished stage is in the store.

use std::time::SystemTime;

use super::context::RunRequest;
use super::events::Observer;
use super::groups;
use super::workspace::Workspace;
use crate::error::Error;
use crate::pipeline::sweep::{self, Axis};
use crate::pipeline::{Override, Pipeline};
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

/// Told as a sweep's runs start and end.
pub trait SweepObserver {
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

impl Workspace {
    /// Runs every combination of `plan` over `request`'s pipeline and records the sweep; returns its
    /// record and the records of the runs it made, in order.
    pub fn sweep(
        &self,
        request: &RunRequest,
        plan: &SweepPlan,
        observer: &mut dyn SweepObserver,
        on_wait: &dyn Fn(&str),
    ) -> Result<(SweepRecord, Vec<RunRecord>), Error> {
        // A pipeline that is invalid whatever the swept values are stops here, with one error.
        self.load(&request.file, &request.overrides, &request.targets)?;
        let started = SystemTime::now();
        let combinations = plan.combinations()?;
        let mut record = self.new_sweep(request, plan, &combinations, started)?;
        let mut made = Vec::new();
        for (index, values) in combinations.iter().enumerate() {
            if groups::interrupted() {
                break;
            }
            record.runs[index].status = RunStatus::Running;
            self.write_sweep(&record)?;
            let mut one = request.clone();
            one.overrides.extend(values.iter().cloned());
            one.sweep = Some(record.id.clone());
            let outcome = self
                .load(&one.file, &one.overrides, &one.targets)
                .and_then(|loaded| {
                    let stages = observer.starting(index, combinations.len(), values, &loaded.0);
                    self.run(&one, loaded, stages.as_ref(), on_wait)
                });
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
            let cancelled = run.status == RunStatus::Cancelled;
            observer.finished(run, outcome.as_ref().ok());
            made.extend(outcome.ok());
            self.write_sweep(&record)?;
            // A cancelled run (Ctrl-C here, or `pipe cancel` of its Slurm jobs) cancels the rest.
            if cancelled {
                break;
            }
        }
        self.finish_sweep(&mut record, started)?;
        Ok((record, made))
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

    /// The records of `sweep`'s runs that can be read, in the sweep's order.
    pub fn sweep_runs(&self, sweep: &SweepRecord) -> Vec<RunRecord> {
        sweep
            .runs
            .iter()
            .filter_map(|r| r.run.as_ref())
            .filter_map(|id| self.runs.read(id).ok())
            .collect()
    }
}
