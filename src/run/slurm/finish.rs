//! Completing a Slurm run's record: from the results in hand (the `pipe run` that waited), or from the
//! jobs' result files and the queue (the finishing job; `pipe cancel`). Whoever comes first writes
//! it, under a lock in the jobs folder; the others find it done and leave it.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use super::client::{self, JobState};
use super::watch::{Stop, ended_without_result};
use super::{JobFiles, RESULT_GRACE, SubmissionFile};
use crate::error::Error;
use crate::pipeline::graph::Dag;
use crate::pipeline::{self, ExecutorKind, Pipeline};
use crate::records::{RunRecord, RunStatus};
use crate::run::evaluate::save_state;
use crate::run::outcome::{StageResult, Status};
use crate::run::recorder;
use crate::run::workspace::Workspace;
use crate::util::fsutil;

/// Reads run `id`'s record (the exact id: jobs never guess).
pub(crate) fn read_record(ws: &Workspace, id: &str) -> Result<RunRecord, Error> {
    fsutil::read_json(&ws.runs.run_dir(id).record()).map_err(|e| Error::Io(format!("{e:#}")))
}

/// The submission of run `id`, or an error saying it is not complete.
pub(crate) fn read_submission(ws: &Workspace, id: &str) -> Result<SubmissionFile, Error> {
    JobFiles::new(ws, id).submission().ok_or_else(|| {
        Error::Io(format!(
            "run {id} has no runs/{id}/jobs/submission.json: it is still being submitted, or its submission failed"
        ))
    })
}

/// The pipeline as the run submitted it, with the run's `--set` overrides in their order, and its
/// graph.
pub(crate) fn load_submitted(
    ws: &Workspace,
    record: &RunRecord,
    submission: &SubmissionFile,
) -> Result<(Pipeline, Dag), Error> {
    let path = JobFiles::new(ws, &record.id).pipeline();
    let source = std::fs::read_to_string(&path)
        .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
    let pipeline = pipeline::parse(&record.pipeline, source, &ws.root, &submission.overrides)
        .map_err(|d| Error::Spec(pipeline::Diagnostics(d)))?;
    let dag = Dag::build(&pipeline, &ws.root).map_err(|d| Error::Spec(pipeline::Diagnostics(d)))?;
    Ok((pipeline, dag))
}

/// Completes the record of run `id` with `results`, unless someone already has; returns the record.
pub(crate) fn complete(
    ws: &Workspace,
    id: &str,
    pipeline: &Pipeline,
    mut results: Vec<StageResult>,
    cancelled: bool,
) -> Result<RunRecord, Error> {
    let files = JobFiles::new(ws, id);
    let _lock = files.finish_lock()?;
    let mut record = read_record(ws, id)?;
    if record.status != RunStatus::Running {
        return Ok(record);
    }
    let submission = read_submission(ws, id)?;
    let started = UNIX_EPOCH + Duration::from_secs_f64(submission.started_unix.max(0.0));
    if let Err(e) = save_state(&ws.store, &pipeline.file, &mut results, None) {
        record.warnings.push(e);
    }
    recorder::complete(ws, pipeline, &results, &mut record, started, cancelled)?;
    Ok(record)
}

/// Completes the record of run `id` from its jobs' result files; a stage whose job ended without one
/// is settled from the queue's word and its log, upstream stages first. `cancelled` holds the queue's
/// states as last seen before the run's jobs were cancelled (`None`: the run was not cancelled, and
/// the queue is asked now).
pub(crate) fn complete_from_files(
    ws: &Workspace,
    id: &str,
    cancelled: Option<HashMap<String, JobState>>,
) -> Result<RunRecord, Error> {
    let record = read_record(ws, id)?;
    if record.status != RunStatus::Running {
        return Ok(record);
    }
    let files = JobFiles::new(ws, id);
    let submission = read_submission(ws, id)?;
    let (pipeline, dag) = load_submitted(ws, &record, &submission)?;
    let states = match &cancelled {
        Some(seen) => seen.clone(),
        None => client::states().unwrap_or_default(),
    };
    let cancelled = cancelled.is_some();
    let mut results: Vec<StageResult> = Vec::new();
    for stage_record in &record.stages {
        let Some(index) = pipeline
            .stages
            .iter()
            .position(|s| s.name == stage_record.name)
        else {
            continue;
        };
        let stage = &pipeline.stages[index];
        let started = files.log(&stage.name).exists();
        let grace = if started && !cancelled {
            RESULT_GRACE
        } else {
            Duration::ZERO
        };
        let result = files.result_within(&stage.name, grace).unwrap_or_else(|| {
            let mut queued = StageResult::new(index, stage, Status::Queued, String::new());
            queued.job_id = stage_record.job_id.clone();
            queued
        });
        results.push(result);
    }
    let stop = if cancelled {
        Stop::Cancelled
    } else {
        first_failure(&results, submission.keep_going)
    };
    for &index in dag.order() {
        let Some(k) = results
            .iter()
            .position(|r| r.index == index && r.status == Status::Queued)
        else {
            continue;
        };
        let state = results[k].job_id.as_ref().and_then(|j| states.get(j));
        results[k] = ended_without_result(&results, k, &dag, &files, state, &stop);
    }
    complete(ws, id, &pipeline, results, cancelled)
}

/// The stage whose failure stops the run's other jobs (none with `--keep-going`).
pub(crate) fn first_failure(results: &[StageResult], keep_going: bool) -> Stop {
    match results.iter().find(|r| r.status == Status::Failed) {
        Some(r) if !keep_going => Stop::AfterFailure(r.name.clone()),
        _ => Stop::None,
    }
}

/// `pipe cancel`: cancels a running Slurm run's jobs and completes its record as cancelled.
pub fn cancel(ws: &Workspace, record: &RunRecord) -> Result<RunRecord, Error> {
    if record.effective_status() != RunStatus::Running {
        return Err(Error::Usage(format!(
            "run {} has already {}",
            record.id,
            if record.status == RunStatus::Cancelled {
                "been cancelled".to_string()
            } else {
                format!("ended ({})", record.effective_status())
            }
        )));
    }
    if record.executor != ExecutorKind::Slurm {
        return Err(Error::Usage(format!(
            "run {} runs locally (pid {}): stop it with Ctrl-C or `kill {}`",
            record.id, record.pid, record.pid
        )));
    }
    let submission = read_submission(ws, &record.id)?;
    let ids: Vec<String> = record
        .stages
        .iter()
        .filter_map(|s| s.job_id.clone())
        .chain(submission.finisher)
        .collect();
    // What `pipe status` showed: a job Slurm reports running was cancelled while running, even if its
    // script had not started yet.
    let seen = client::states().unwrap_or_default();
    client::cancel(&ids, false).map_err(Error::Io)?;
    complete_from_files(ws, &record.id, Some(seen))
}
