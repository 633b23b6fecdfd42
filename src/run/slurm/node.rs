//! The node side of a Slurm run. `pipe exec-stage RUN STAGE` evaluates one stage as a local run would
//! (its deps hashed, its key computed from its upstream stages' results, then restored or run and
//! committed under the key's lock in the store) and writes its result for the jobs downstream and the
//! run record. `pipe exec-finish RUN` completes the record once every stage job has ended.

use super::{JobFiles, RESULT_GRACE, client, finish};
use crate::error::{EXIT_OK, EXIT_STAGE_FAILED, Error};
use crate::run::context::{Mode, Options, RunContext};
use crate::run::evaluate::Job;
use crate::run::events::{Event, Observer};
use crate::run::local::Local;
use crate::run::outcome::{StageResult, Status};
use crate::run::workspace::Workspace;
use crate::store::hash::StatCache;
use crate::store::state::{self, PipelineState};
use crate::util::fsutil;

/// Runs stage `stage` of run `run_id`; the exit code is 0 when it ran or was restored.
pub fn exec_stage(ws: &Workspace, run_id: &str, stage: &str) -> Result<i32, Error> {
    let record = finish::read_record(ws, run_id)?;
    let files = JobFiles::new(ws, run_id);
    let submission = finish::read_submission(ws, run_id)?;
    let (pipeline, dag) = finish::load_submitted(ws, &record, &submission)?;
    let index = pipeline
        .stages
        .iter()
        .position(|s| s.name == stage)
        .ok_or_else(|| Error::Usage(format!("run {run_id} has no stage `{stage}`")))?;
    let mut upstream = Vec::new();
    for (u, _) in dag.upstream(index) {
        let name = &pipeline.stages[u].name;
        let result = files.result_within(name, RESULT_GRACE).ok_or_else(|| {
            Error::Io(format!(
                "stage `{stage}` started before its upstream stage `{name}` wrote its result ({})",
                files.result_path(name).display()
            ))
        })?;
        upstream.push((name.clone(), result.outputs));
    }
    let options = Options {
        jobs: 1,
        force: submission.force.clone(),
        keep_going: submission.keep_going,
        mode: Mode::Run,
        targets: record.targets.clone(),
        run_dir: ws.runs.run_dir(run_id),
        run_id: run_id.to_string(),
    };
    let stats = ws.stat_cache();
    let runner = RunContext {
        root: &ws.root,
        store: &ws.store,
        stats: &stats,
        pipeline: &pipeline,
        dag: &dag,
        options: &options,
        executor: &Local,
        shared: None,
        restored_on_demand: Default::default(),
        remote: None, // the jobs share the store over the cluster's filesystem
        own_slots: None,
    };
    let last_state = PipelineState::load(&state::path(ws.store.dir(), &pipeline.file));
    let job = Job {
        index,
        upstream,
        ..Job::default()
    };
    let gc_guard = ws
        .store
        .lock_against_gc()
        .map_err(|e| Error::Io(format!("cannot lock the store: {e}")))?;
    let mut result = match changed_since_upstream(ws, &stats, &job) {
        // Another run rewrote an input this job was queued for: running on it would cache a wrong
        // output under the key of the right one.
        Some(error) => {
            let mut r = StageResult::new(
                index,
                &pipeline.stages[index],
                Status::Failed,
                "failed".into(),
            );
            r.error = Some(error);
            r
        }
        None => runner.evaluate(job, &last_state, &JobLog),
    };
    result.job_id = std::env::var("SLURM_JOB_ID").ok();
    if let Err(e) = stats.save() {
        result
            .warnings
            .push(format!("cannot save the stat cache: {e}"));
    }
    files.write_result(&result).map_err(Error::Io)?;
    // Only now may gc run: the result names the key it must keep.
    drop(gc_guard);
    println!(
        "pipe: stage `{stage}` {} in {:.2}s on {} ({})",
        result.status.word(),
        result.duration_s,
        fsutil::host_name(),
        result.error.as_deref().unwrap_or(&result.reason)
    );
    if result.status != Status::Failed {
        return Ok(EXIT_OK);
    }
    if !submission.keep_going {
        // Stop the run as a local one stops: the jobs that have not started are cancelled.
        let others: Vec<String> = record
            .stages
            .iter()
            .filter(|s| s.name != stage)
            .filter_map(|s| s.job_id.clone())
            .collect();
        let _ = client::cancel(&others, true);
    }
    Ok(EXIT_STAGE_FAILED)
}

/// What a stage's job shows of its events: warnings, in the job's Slurm log (progress bars are for
/// the terminal of the `pipe run` that waits; the stage's own log has its lines).
struct JobLog;

impl Observer for JobLog {
    fn on(&self, event: Event<'_>) {
        if let Event::Warning { stage, message } = event {
            eprintln!("pipe: stage `{stage}`: warning: {message}");
        }
    }
}

/// Says which upstream output no longer has the content its job recorded, if one does not.
fn changed_since_upstream(ws: &Workspace, stats: &StatCache, job: &Job) -> Option<String> {
    job.upstream.iter().find_map(|(name, outputs)| {
        outputs.iter().find_map(|(path, tree)| {
            let now = stats.hash_output(&ws.root.join(path)).map(|t| t.hash);
            (now.as_ref().ok() != Some(&tree.hash)).then(|| {
                format!(
                    "output `{path}` of upstream stage `{name}` changed in the workspace after its job wrote it \
                     (another run in this workspace?); run the pipeline again"
                )
            })
        })
    })
}

/// Completes run `run_id`'s record after its stage jobs have ended (the finishing job).
pub fn exec_finish(ws: &Workspace, run_id: &str) -> Result<i32, Error> {
    let record = finish::complete_from_files(ws, run_id, None)?;
    println!("pipe: run {run_id} {}", record.status);
    Ok(EXIT_OK)
}
