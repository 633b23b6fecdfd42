//! `pipe run` and `pipe status`: load and check the pipeline, then plan it, or lock the workspace,
//! start the run's record and schedule its stages here or submit them to Slurm.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::context::{Mode, RunRequest};
use super::events::{Event, Observer};
use super::groups;
use super::local::Local;
use super::outcome::StageResult;
use super::recorder;
use super::slurm;
use super::workspace::Workspace;
use crate::error::Error;
use crate::pipeline::graph::Dag;
use crate::pipeline::{ExecutorKind, Pipeline};
use crate::records::{self, FORMAT_VERSION, RunRecord, RunStatus};

impl Workspace {
    /// What `run` would do, touching nothing.
    pub fn plan(
        &self,
        request: &RunRequest,
        observer: &dyn Observer,
    ) -> Result<(Pipeline, Vec<StageResult>), Error> {
        let (pipeline, dag) = self.load(&request.file, &request.overrides, &request.targets)?;
        let options = self.options(request, Mode::Plan, String::new());
        let walked = self.walk(&pipeline, &dag, &options, &Local, observer)?;
        Ok((pipeline, walked.results))
    }

    /// Runs a pipeline, loaded by [`Workspace::load`] from `request.file`, and records it. Waits
    /// (calling `on_wait`) while another run holds the workspace.
    pub fn run(
        &self,
        request: &RunRequest,
        (pipeline, dag): (Pipeline, Dag),
        observer: &dyn Observer,
        on_wait: impl FnOnce(&str),
    ) -> Result<RunRecord, Error> {
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
        if executor == ExecutorKind::Slurm && !slurm::available() {
            return Err(Error::Usage(
                "`--executor slurm` needs Slurm's `sbatch` on PATH: run `pipe run` on a login node of the cluster".into(),
            ));
        }
        // A sweep's run in its sandbox goes under the lock its sweep holds.
        let lock = match self.shared {
            Some(_) => None,
            None => Some(
                self.store
                    .lock_workspace(on_wait)
                    .map_err(|e| Error::Io(format!("cannot lock the workspace store: {e}")))?,
            ),
        };
        let started = SystemTime::now();
        let mut record = self.start_record(request, &pipeline, executor, started)?;
        let id = record.id.clone();
        let options = self.options(request, Mode::Run, id);
        if executor == ExecutorKind::Slurm {
            let submission = slurm::Submission {
                pipeline: &pipeline,
                dag: &dag,
                request,
                options: &options,
                started,
            };
            return slurm::run(self, submission, record, lock, observer);
        }
        // (A sweep ends them once, before its first run.)
        let orphans = match self.shared {
            Some(_) => Vec::new(),
            None => groups::end_orphans(&self.store, &self.root),
        };
        for (stage, message) in orphans {
            observer.on(Event::Warning {
                stage: &stage,
                message: &message,
            });
            record.warnings.push(format!("{stage}: {message}"));
        }
        groups::forward_interrupts();
        let live = recorder::Live::new(self, &pipeline, &record, observer);
        let walked = std::thread::scope(|scope| {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            scope.spawn(|| live.keep_written(stopped));
            let walked = self.walk(&pipeline, &dag, &options, &Local, &live);
            drop(stop);
            walked
        })?;
        record.warnings.extend(walked.warnings);
        record.warnings.extend(walked.state_error.clone());
        recorder::complete(
            self,
            &pipeline,
            &walked.results,
            &mut record,
            started,
            groups::interrupted(),
        )?;
        match walked.state_error {
            // The record is complete; the exit code says the workspace could not be written.
            Some(error) => Err(Error::Io(format!(
                "{error} (the run finished: runs/{}/run.json)",
                record.id
            ))),
            None => Ok(record),
        }
    }

    /// A new run's record, written as running.
    fn start_record(
        &self,
        request: &RunRequest,
        pipeline: &Pipeline,
        executor: ExecutorKind,
        started: SystemTime,
    ) -> Result<RunRecord, Error> {
        let id = self
            .runs
            .create()
            .map_err(|e| Error::Io(format!("cannot create a run record: {e}")))?;
        let record = RunRecord {
            format_version: FORMAT_VERSION,
            id,
            pipeline: pipeline.file.clone(),
            status: RunStatus::Running,
            started_at: records::rfc3339(started),
            finished_at: None,
            duration_s: 0.0,
            params: pipeline.params.clone(),
            overrides: request.overrides.clone(),
            targets: request.targets.clone(),
            pipe_version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            jobs: request.jobs,
            executor,
            stages: Vec::new(),
            metrics: BTreeMap::new(),
            warnings: Vec::new(),
            sweep: request.sweep.clone(),
        };
        self.runs
            .write(&record)
            .map_err(|e| Error::Io(format!("cannot write run record: {e}")))?;
        Ok(record)
    }
}
