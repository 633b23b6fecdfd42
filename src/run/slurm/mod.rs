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
//! submission.json    --set overrides, force, keep-going, start time, the finishing job
//!                    (each stage's job id is in run.json)
//! finish.sh, .log    the finishing job's script and Slurm output
//! stages/<stage>.sh  a stage's job script;  .log  its Slurm output;  .json  its result
//! ```
//!
//! The workspace and the store (`--cache-dir`) must be on a filesystem every node sees, and the `pipe`
//! binary at the same path on every node.

mod client;
pub mod finish;
pub mod node;
mod watch;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::pipeline::graph::Dag;
use crate::run::context::{Force, Options};

use crate::pipeline::{ExecutorKind, Override, Pipeline, Resources, Stage};
use crate::records::{RunRecord, RunStatus, StageRecord};
use crate::run::context::RunRequest;
use crate::run::evaluate::save_state;
use crate::run::events::Observer;
use crate::run::executor::{Executor, Launch, StageEnv, StageFailure};
use crate::run::outcome::{StageResult, Status};
use crate::run::recorder;
use crate::run::workspace::Workspace;
use crate::store::FileLock;
use crate::util::fsutil;

pub use client::available;
use watch::on_interrupt;

/// What a run's jobs need to know besides the pipeline (`runs/<id>/jobs/submission.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmissionFile {
    /// The `--set` overrides in the order given (later ones win).
    pub overrides: Vec<Override>,
    /// Stages run even if cached.
    pub force: Force,
    /// Whether independent branches go on after a failure.
    pub keep_going: bool,
    /// When the run started (seconds since the epoch).
    pub started_unix: f64,
    /// The job that completes the run record after the stage jobs.
    pub finisher: Option<String>,
}

/// The files of one run's jobs: `jobs/pipeline.yaml`, `jobs/submission.json`, the finishing job's
/// `jobs/finish.{sh,log}`, and per stage `jobs/stages/<stage>.{sh,log,json}`.
pub(crate) struct JobFiles {
    dir: PathBuf,
}

impl JobFiles {
    /// The jobs folder of run `id`.
    pub(crate) fn new(ws: &Workspace, id: &str) -> JobFiles {
        JobFiles {
            dir: ws.runs.run_dir(id).jobs(),
        }
    }

    fn script(&self, job: &JobName) -> PathBuf {
        self.job_path(job, "sh")
    }

    /// The Slurm output of a stage's job.
    pub(crate) fn log(&self, stage: &str) -> PathBuf {
        self.job_path(&JobName::Stage(stage), "log")
    }

    fn job_path(&self, job: &JobName, extension: &str) -> PathBuf {
        match job {
            JobName::Stage(stage) => self.dir.join("stages").join(format!("{stage}.{extension}")),
            JobName::Finish => self.dir.join(format!("finish.{extension}")),
        }
    }

    /// The pipeline text the run was submitted with.
    pub(crate) fn pipeline(&self) -> PathBuf {
        self.dir.join("pipeline.yaml")
    }

    /// Reads `submission.json` (absent while the run is being submitted).
    pub(crate) fn submission(&self) -> Option<SubmissionFile> {
        fsutil::read_json(&self.dir.join("submission.json")).ok()
    }

    fn write_submission(&self, submission: &SubmissionFile) -> Result<(), String> {
        let path = self.dir.join("submission.json");
        let json = serde_json::to_vec_pretty(submission).expect("submission serializes");
        fsutil::write_atomic(&path, &json)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Where a stage's result is written.
    pub(crate) fn result_path(&self, stage: &str) -> PathBuf {
        self.job_path(&JobName::Stage(stage), "json")
    }

    /// A stage's result, once its job (or the submission, for a settled stage) has written it.
    pub(crate) fn result(&self, stage: &str) -> Option<StageResult> {
        fsutil::read_json::<StageResult>(&self.result_path(stage)).ok()
    }

    /// A stage's result, waiting up to `grace` for it to become visible (shared filesystems cache
    /// attributes for a few seconds).
    pub(crate) fn result_within(&self, stage: &str, grace: Duration) -> Option<StageResult> {
        let start = Instant::now();
        loop {
            if let Some(r) = self.result(stage) {
                return Some(r);
            }
            if start.elapsed() >= grace {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a stage's result for its dependents' jobs and the run record.
    pub(crate) fn write_result(&self, result: &StageResult) -> Result<(), String> {
        let path = self.result_path(&result.name);
        let json = serde_json::to_vec(result).expect("results serialize");
        fsutil::write_atomic(&path, &json)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The lock held while a run record is completed (by `pipe run`, the finishing job, `pipe cancel`).
    fn finish_lock(&self) -> Result<FileLock, Error> {
        let path = self.dir.join("finish.lock");
        FileLock::acquire(&path, |_| {})
            .map_err(|e| Error::Io(format!("cannot lock {}: {e}", path.display())))
    }
}

/// Which job of a run a file belongs to.
enum JobName<'a> {
    /// A stage's job.
    Stage(&'a str),
    /// The finishing job.
    Finish,
}

/// How long a result written on another node gets to become visible here.
pub(crate) const RESULT_GRACE: Duration = Duration::from_secs(5);

/// The executor: writes a job script per stage and submits it, held; remembers every job it queued.
pub struct Slurm {
    files: JobFiles,
    run_id: String,
    root: PathBuf,
    /// `pipe` and its global options, as every job runs it.
    pipe: Vec<String>,
    /// Every job submitted so far (cancelled if the submission fails).
    submitted: Mutex<Vec<String>>,
}

impl Slurm {
    fn new(ws: &Workspace, run_id: &str) -> Result<Slurm, String> {
        let binary = std::env::current_exe()
            .map_err(|e| format!("cannot find the pipe binary to run on the nodes: {e}"))?;
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
            submitted: Mutex::new(Vec::new()),
        })
    }

    /// Writes the job's script running `pipe <arguments>` and submits it, held.
    fn submit(
        &self,
        job: JobName,
        arguments: &[&str],
        after: &[String],
        after_any: bool,
        resources: &Resources,
    ) -> Result<String, String> {
        let script = self.files.script(&job);
        let name = match job {
            JobName::Stage(stage) => stage,
            JobName::Finish => "finish",
        };
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
        if let Some(parent) = script.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        fsutil::write_atomic(&script, text.as_bytes())
            .map_err(|e| format!("cannot write job script {}: {e}", script.display()))?;
        let id = client::submit(&client::JobRequest {
            name: format!("pipe:{name}"),
            log: self.files.job_path(&job, "log"),
            script,
            chdir: self.root.clone(),
            after: after.to_vec(),
            after_any,
            resources: resources.clone(),
        })?;
        self.submitted.lock().expect("job list").push(id.clone());
        Ok(id)
    }

    fn submitted(&self) -> Vec<String> {
        self.submitted.lock().expect("job list").clone()
    }
}

impl Executor for Slurm {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Slurm
    }

    fn launch(&self, _env: &StageEnv, stage: &Stage, after: &[String]) -> Launch {
        let arguments = ["exec-stage", self.run_id.as_str(), stage.name.as_str()];
        match self.submit(
            JobName::Stage(&stage.name),
            &arguments,
            after,
            false,
            &stage.resources,
        ) {
            Ok(id) => Launch::Queued(id),
            Err(e) => Launch::Finished(Err(StageFailure::new(format!(
                "cannot submit the stage's job: {e}"
            )))),
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
/// completes the record. The workspace lock is held until every job is queued. If the submission
/// fails, every job it queued is cancelled and the record says why.
pub fn run(
    ws: &Workspace,
    submission: Submission,
    mut record: RunRecord,
    workspace_lock: Option<FileLock>,
    observer: &dyn Observer,
) -> Result<RunRecord, Error> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let slurm = Slurm::new(ws, &record.id).map_err(Error::Io)?;
    let submitted = on_interrupt(&interrupted)
        .and_then(|()| submit(ws, &submission, &slurm, &mut record, observer, &interrupted));
    let (results, finisher) = match submitted {
        Ok(Submitted::Done) => return Ok(record),
        Ok(Submitted::Queued { results, finisher }) => (results, finisher),
        Err(error) => {
            let _ = client::cancel(&slurm.submitted(), false);
            record.status = RunStatus::Failed;
            record.finished_at = Some(crate::records::rfc3339(SystemTime::now()));
            record
                .warnings
                .push(format!("the submission failed: {error}"));
            let _ = ws.runs.write(&record);
            return Err(Error::Io(format!(
                "{error} (the run's jobs were cancelled; runs/{}/run.json says failed)",
                record.id
            )));
        }
    };
    drop(workspace_lock);
    if submission.request.detach {
        return Ok(record);
    }
    let watch = watch::Watch {
        files: &slurm.files,
        pipeline: submission.pipeline,
        dag: submission.dag,
        keep_going: submission.request.keep_going,
        finisher: &finisher,
    };
    let watched = watch::wait(&watch, results, observer, &interrupted);
    let record = finish::complete(
        ws,
        &record.id,
        submission.pipeline,
        watched.results,
        watched.cancelled,
    )?;
    // The finishing job has nothing left to do.
    let _ = client::cancel(&[finisher], true);
    Ok(record)
}

/// What the submission left to wait for.
enum Submitted {
    /// Nothing was queued (all cached, or the submission stopped): the record is complete.
    Done,
    /// Jobs are queued and released.
    Queued {
        /// Every stage's result so far (`Queued` for the submitted ones).
        results: Vec<StageResult>,
        /// The finishing job.
        finisher: String,
    },
}

/// Evaluates the pipeline with the Slurm executor, then queues the finishing job, writes the
/// submission and the record, and releases the jobs.
fn submit(
    ws: &Workspace,
    submission: &Submission,
    slurm: &Slurm,
    record: &mut RunRecord,
    observer: &dyn Observer,
    interrupted: &AtomicBool,
) -> Result<Submitted, String> {
    let Submission {
        pipeline,
        dag,
        request,
        options,
        started,
    } = *submission;
    let files = &slurm.files;
    fs::create_dir_all(&files.dir)
        .map_err(|e| format!("cannot create {}: {e}", files.dir.display()))?;
    fsutil::write_atomic(&files.pipeline(), pipeline.source.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", files.pipeline().display()))?;
    let walked = ws
        .walk(pipeline, dag, options, slurm, observer)
        .map_err(|e| e.to_string())?;
    record.warnings.extend(walked.warnings);
    record.warnings.extend(walked.state_error);
    let mut results = walked.results;
    let queued: Vec<String> = results.iter().filter_map(|r| r.job_id.clone()).collect();
    let stopped = results.iter().any(|r| r.status == Status::Failed) && !request.keep_going;
    let cancelled = interrupted.load(Ordering::SeqCst);
    if queued.is_empty() || stopped || cancelled {
        // Nothing to wait for, or the held jobs must not start: cancel them, finish here.
        client::cancel(&queued, false)?;
        for r in results.iter_mut().filter(|r| r.status == Status::Queued) {
            r.status = Status::Skipped;
            r.reason = "not started: the submission stopped".into();
        }
        save_state(&ws.store, &pipeline.file, &mut results, None)?;
        recorder::complete(ws, pipeline, &results, record, started, cancelled)
            .map_err(|e| e.to_string())?;
        return Ok(Submitted::Done);
    }
    for r in results.iter().filter(|r| r.status != Status::Queued) {
        files.write_result(r)?;
    }
    let finisher_resources = Resources {
        mem: Some("500M".into()),
        time: Some("10".into()),
        partition: pipeline.resources.partition.clone(),
        account: pipeline.resources.account.clone(),
        ..Resources::default()
    };
    let finisher = slurm.submit(
        JobName::Finish,
        &["exec-finish", record.id.as_str()],
        &queued,
        true,
        &finisher_resources,
    )?;
    files.write_submission(&SubmissionFile {
        overrides: request.overrides.clone(),
        force: request.force.clone(),
        keep_going: request.keep_going,
        started_unix: started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
        finisher: Some(finisher.clone()),
    })?;
    record.stages = results
        .iter()
        .map(|r| recorder::stage_record(pipeline, r))
        .collect();
    ws.runs
        .write(record)
        .map_err(|e| format!("cannot write run record: {e}"))?;
    if interrupted.load(Ordering::SeqCst) {
        return Err("interrupted while submitting".into());
    }
    client::release(&slurm.submitted())?;
    Ok(Submitted::Queued { results, finisher })
}

/// The keys of the stages whose jobs have written a result so far in run `id`.
pub fn committed_keys(ws: &Workspace, id: &str) -> Vec<String> {
    let files = JobFiles::new(ws, id);
    let Ok(entries) = fs::read_dir(files.dir.join("stages")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| fsutil::read_json::<StageResult>(&e.path()).ok())
        .filter_map(|r| r.key)
        .collect()
}

/// Where each stage of a run is now. A Slurm run still running is read live: a stage's result file
/// if its job wrote one, else `running` or `queued` as Slurm says; any other run as recorded.
pub fn current_stages(ws: &Workspace, record: &RunRecord) -> Vec<StageRecord> {
    if record.executor != ExecutorKind::Slurm || record.status != RunStatus::Running {
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
                s.status = r.status;
                s.duration_s = r.duration_s;
                s.reason = r.reason;
                s.error = r.error;
            } else if let Some(state) = s.job_id.as_ref().and_then(|j| states.get(j)) {
                match state.state.as_str() {
                    _ if state.is_running() => s.status = Status::Running,
                    "PENDING" => s.status = Status::Queued,
                    other => s.reason = format!("{} (Slurm: {})", s.reason, other.to_lowercase()),
                }
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
