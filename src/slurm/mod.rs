//! Runs stages as Slurm jobs. `pipe run --executor slurm` evaluates the pipeline as usual, restores
//! what the store has, and submits every other stage as one `sbatch` job, held, with
//! `--dependency=afterok` on the jobs of its upstream stages, so Slurm orders the DAG. Once all are
//! queued it releases them, plus a finishing job that completes the run record when they have ended.
//! Then it waits, showing progress, or (`--detach`) returns.
//!
//! A job runs `pipe exec-stage RUN STAGE` on its node ([`node`]): it computes the stage's key from its
//! upstream stages' results, and restores, or runs and commits, as a local run would (under the key's
//! lock in the store). Everything a run's jobs share lives under `runs/<id>/jobs/`:
//!
//! ```text
//! pipeline.yaml      the pipeline text as submitted (jobs read this, not the file, which may change)
//! submission.json    force, keep-going, start time, stage -> job id, the finishing job
//! <stage>.sh         the job script;  <stage>.log  its Slurm output;  <stage>.json  its result
//! ```
//!
//! The workspace and the store (`--cache-dir`) must be on a filesystem every node sees, and the `pipe`
//! binary at the same path on every node.

mod client;
pub mod finish;
pub mod node;
mod watch;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::dag::Dag;
use crate::error::Error;
use crate::exec::{Force, Observer, Options, Runner, StageResult, Status};
use crate::executor::{Executor, Launch};
use crate::fsutil;
use crate::record::{RunRecord, StageRecord};
use crate::spec::{ExecutorKind, Pipeline, Stage};
use crate::store::FileLock;
use crate::workspace::{RunRequest, Workspace};

pub use client::available;

/// What a run's jobs need to know besides the pipeline (`runs/<id>/jobs/submission.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmissionFile {
    /// Stages run even if cached.
    pub force: Force,
    /// Whether independent branches go on after a failure.
    pub keep_going: bool,
    /// When the run started (seconds since the epoch).
    pub started_unix: f64,
    /// Stage name -> the job that runs it.
    pub jobs: BTreeMap<String, String>,
    /// The job that completes the run record after the stage jobs.
    pub finisher: Option<String>,
}

/// The files of one run's jobs.
pub struct JobFiles {
    dir: PathBuf,
}

impl JobFiles {
    /// The jobs folder of run `id`.
    pub fn new(ws: &Workspace, id: &str) -> JobFiles {
        JobFiles {
            dir: ws.runs.run_dir(id).join("jobs"),
        }
    }

    fn path(&self, name: &str, extension: &str) -> PathBuf {
        self.dir.join(format!("{name}.{extension}"))
    }

    /// The Slurm output of a job (`finish` for the finishing job).
    pub fn log(&self, name: &str) -> PathBuf {
        self.path(name, "log")
    }

    /// The pipeline text the run was submitted with.
    pub fn pipeline(&self) -> PathBuf {
        self.dir.join("pipeline.yaml")
    }

    /// Reads `submission.json`.
    pub fn submission(&self) -> Result<SubmissionFile, Error> {
        fsutil::read_json(&self.dir.join("submission.json"))
            .map_err(|e| Error::Io(format!("{e:#}")))
    }

    fn write_submission(&self, submission: &SubmissionFile) -> Result<(), Error> {
        let path = self.dir.join("submission.json");
        let json = serde_json::to_vec_pretty(submission).expect("submission serializes");
        fsutil::write_atomic(&path, &json)
            .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))
    }

    /// Where a stage's result is written.
    pub fn result_path(&self, stage: &str) -> PathBuf {
        self.path(stage, "json")
    }

    /// A stage's result, once its job (or the submission, for a settled stage) has written it.
    pub fn result(&self, stage: &str) -> Option<StageResult> {
        let path = self.result_path(stage);
        path.exists()
            .then(|| fsutil::read_json::<StageResult>(&path).ok())
            .flatten()
    }

    /// Writes a stage's result for its dependents' jobs and the run record.
    pub fn write_result(&self, result: &StageResult) -> Result<(), Error> {
        let path = self.path(&result.name, "json");
        let json = serde_json::to_vec(result).expect("results serialize");
        fsutil::write_atomic(&path, &json)
            .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))
    }

    /// The lock held while a run record is completed (by `pipe run`, the finishing job, `pipe cancel`).
    fn finish_lock(&self) -> Result<FileLock, Error> {
        let path = self.dir.join("finish.lock");
        FileLock::acquire(&path, |_| {})
            .map_err(|e| Error::Io(format!("cannot lock {}: {e}", path.display())))
    }
}

/// The executor: writes a job script per stage and submits it, held.
pub struct Slurm {
    files: JobFiles,
    run_id: String,
    root: PathBuf,
    /// `pipe` and its global options, as every job runs it.
    pipe: Vec<String>,
}

impl Slurm {
    fn new(ws: &Workspace, run_id: &str) -> Result<Slurm, Error> {
        let binary = std::env::current_exe().map_err(|e| {
            Error::Io(format!(
                "cannot find the pipe binary to run on the nodes: {e}"
            ))
        })?;
        Ok(Slurm {
            files: JobFiles::new(ws, run_id),
            run_id: run_id.to_string(),
            root: ws.root.clone(),
            pipe: vec![
                binary.display().to_string(),
                "--cache-dir".into(),
                ws.store.dir().display().to_string(),
                "--runs-dir".into(),
                ws.runs.dir().display().to_string(),
            ],
        })
    }

    /// Writes `<name>.sh` running `pipe <arguments>` and submits it, held.
    fn submit(
        &self,
        name: &str,
        arguments: &[&str],
        after: &[String],
        after_any: bool,
        resources: &crate::spec::Resources,
    ) -> Result<String, String> {
        let script = self.files.path(name, "sh");
        let words: Vec<String> = self
            .pipe
            .iter()
            .map(String::as_str)
            .chain(arguments.iter().copied())
            .map(shell_quote)
            .collect();
        let text = format!(
            "#!/bin/sh\n# `{name}` of pipe run {}, submitted by `pipe run --executor slurm`.\nexec {}\n",
            self.run_id,
            words.join(" ")
        );
        fsutil::write_atomic(&script, text.as_bytes())
            .map_err(|e| format!("cannot write job script {}: {e}", script.display()))?;
        client::submit(&client::JobRequest {
            name: format!("pipe:{name}"),
            log: self.files.log(name),
            script,
            chdir: self.root.clone(),
            after: after.to_vec(),
            after_any,
            resources: resources.clone(),
        })
    }
}

impl Executor for Slurm {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Slurm
    }

    fn launch(&self, _runner: &Runner, stage: &Stage, after: &[String]) -> Launch {
        let arguments = ["exec-stage", self.run_id.as_str(), stage.name.as_str()];
        match self.submit(&stage.name, &arguments, after, false, &stage.resources) {
            Ok(id) => Launch::Queued(id),
            Err(e) => Launch::Finished(Err((format!("cannot submit the stage's job: {e}"), None))),
        }
    }
}

/// What `pipe run` hands over to the Slurm executor.
pub struct Submission<'a> {
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// Its graph.
    pub dag: &'a Dag,
    /// The request.
    pub request: &'a RunRequest,
    /// The scheduler's options.
    pub options: &'a Options,
    /// When the run started.
    pub started: SystemTime,
}

/// Submits the stages that must run, releases them, then waits for them (or returns, detached) and
/// completes the record. The workspace lock is held until every job is queued.
pub fn run(
    ws: &Workspace,
    submission: Submission,
    mut record: RunRecord,
    workspace_lock: FileLock,
    observer: &dyn Observer,
) -> Result<RunRecord, Error> {
    let Submission {
        pipeline,
        dag,
        request,
        options,
        started,
    } = submission;
    if !client::available() {
        return Err(Error::Usage(
            "`--executor slurm` needs Slurm's `sbatch` on PATH (run `pipe run` on a login node of the cluster)".into(),
        ));
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    watch::on_interrupt(&interrupted)?;
    let slurm = Slurm::new(ws, &record.id)?;
    let files = &slurm.files;
    let io = |e: std::io::Error| Error::Io(format!("cannot write {}: {e}", files.dir.display()));
    fs::create_dir_all(&files.dir).map_err(io)?;
    fsutil::write_atomic(&files.pipeline(), pipeline.source.as_bytes()).map_err(io)?;
    let (results, warning) = ws.walk(pipeline, dag, options, &slurm, observer);
    record.warnings.extend(warning);
    let mut results = results?;
    let queued: Vec<String> = results.iter().filter_map(|r| r.job_id.clone()).collect();
    let submit_failed = results.iter().any(|r| r.status == Status::Failed);
    let stopped = submit_failed && !request.keep_going;
    if queued.is_empty() || stopped || interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        // Nothing to wait for, or the held jobs must not start: cancel them, finish here.
        client::cancel(&queued, false).map_err(Error::Io)?;
        for r in results.iter_mut().filter(|r| r.status == Status::Queued) {
            r.status = Status::Skipped;
            r.reason = "not started: the submission stopped".into();
        }
        let cancelled = interrupted.load(std::sync::atomic::Ordering::SeqCst);
        ws.complete(pipeline, &results, &mut record, started, cancelled)?;
        return Ok(record);
    }
    for r in results.iter().filter(|r| r.status != Status::Queued) {
        files.write_result(r)?;
    }
    let finisher = slurm
        .submit(
            "finish",
            &["exec-finish", record.id.as_str()],
            &queued,
            true,
            &crate::spec::Resources::default(),
        )
        .map_err(Error::Io)?;
    files.write_submission(&SubmissionFile {
        force: request.force.clone(),
        keep_going: request.keep_going,
        started_unix: started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
        jobs: results
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.job_id.clone()?)))
            .collect(),
        finisher: Some(finisher.clone()),
    })?;
    record.stages = results
        .iter()
        .map(|r| crate::workspace::stage_record(pipeline, r))
        .collect();
    ws.runs
        .write(&record)
        .map_err(|e| Error::Io(format!("cannot write run record: {e}")))?;
    let mut all = queued.clone();
    all.push(finisher.clone());
    if let Err(e) = client::release(&all) {
        let _ = client::cancel(&all, false);
        return Err(Error::Io(format!(
            "cannot release the run's jobs (cancelled them): {e}"
        )));
    }
    drop(workspace_lock);
    if request.detach {
        return Ok(record);
    }
    let watch = watch::Watch {
        files,
        pipeline,
        dag,
        keep_going: request.keep_going,
        finisher: &finisher,
    };
    let watched = watch::wait(&watch, results, observer, &interrupted);
    let record = finish::complete(ws, &record.id, pipeline, watched.results, watched.cancelled)?;
    // The finishing job has nothing left to do.
    let _ = client::cancel(&[finisher], true);
    Ok(record)
}

/// Where each stage of a run is now. A Slurm run still running is read live: a stage's result file
/// if its job wrote one, else `running` or `queued` as Slurm says; any other run as recorded.
pub fn current_stages(ws: &Workspace, record: &RunRecord) -> Vec<StageRecord> {
    if record.executor != ExecutorKind::Slurm.name() || record.status != "running" {
        return record.stages.clone();
    }
    let files = JobFiles::new(ws, &record.id);
    let states = client::states().unwrap_or_default();
    record
        .stages
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Some(r) = files.result(&s.name) {
                s.status = r.status.word().into();
                s.duration_s = r.duration_s;
                s.reason = r.reason;
                s.error = r.error;
            } else if let Some(state) = s.job_id.as_ref().and_then(|j| states.get(j)) {
                s.status = match state.state.as_str() {
                    "RUNNING" | "COMPLETING" => "running".into(),
                    "PENDING" => "queued".into(),
                    other => other.to_lowercase(),
                };
                if state.reason != "None" {
                    s.reason = format!("{} ({})", s.reason, state.reason);
                }
            }
            s
        })
        .collect()
}

/// `s` quoted for `sh`.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("/opt/pipe/bin/pipe"), "/opt/pipe/bin/pipe");
        assert_eq!(shell_quote("train@lr=0.1"), "train@lr=0.1");
        assert_eq!(shell_quote("/my data/it's"), r"'/my data/it'\''s'");
    }
}
