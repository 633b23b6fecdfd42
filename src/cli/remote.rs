//! The remote cache on the command line: attaching it to the workspace (from the environment, the
//! workspace's `.pipe/config.yaml` and the pipeline's `remote:`), saying what a run's pushes did
//! before `pipe run` exits, and `pipe push` and `pipe pull` by hand.

use std::time::Instant;

use super::args::Command;
use super::output::errln;
use super::render::plural;
use crate::error::{EXIT_OK, EXIT_STAGE_FAILED, Error};
use crate::pipeline::ExecutorKind;
use crate::records::{RunRecord, SWEEP_PREFIX, Status, SweepRecord, is_id};
use crate::remote::config::WORKSPACE_FILE;
use crate::remote::{Fetched, Pushed, Remote, RemoteSettings};
use crate::run::workspace::Workspace;

/// Attaches the remote the command uses, if one is named, for the commands that use one: runs
/// (which push what they commit unless `--no-push`), plans, `pipe push` and `pipe pull`. Each
/// setting comes from the first place that gives it: the environment, the workspace's file, then
/// the pipeline's `remote:` (of the pipeline run or planned, or of the runs pushed or pulled).
pub(super) fn attach(ws: &mut Workspace, command: &Command) -> Result<(), Error> {
    let (push_commits, pipelines) = match command {
        Command::Run { no_push, file, .. } => (!no_push, vec![file.clone()]),
        Command::Status {
            run: None, file, ..
        } => (false, file.iter().cloned().collect()),
        Command::Pull { runs, .. } => (false, pipelines_of(ws, runs)),
        Command::Push { runs } => (true, pipelines_of(ws, runs)),
        Command::ExecFinish { run } => (true, pipelines_of(ws, std::slice::from_ref(run))),
        _ => return Ok(()),
    };
    let workspace_file = ws.store.dir().join(WORKSPACE_FILE);
    let mut settings = RemoteSettings::from_env()
        .over(RemoteSettings::from_workspace_file(&workspace_file).map_err(Error::Usage)?);
    if let Some(pipeline) = pipelines
        .iter()
        .find_map(|file| crate::pipeline::remote_of(file, &ws.root))
    {
        settings = settings.over(pipeline);
    }
    let key = std::env::var("PIPE_REMOTE_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    if let Some((config, team_key)) = settings.resolve(key, &ws.root).map_err(Error::Usage)? {
        let remote = Remote::new(config, team_key, push_commits).map_err(Error::Usage)?;
        ws.remote = Some(std::sync::Arc::new(remote));
    }
    Ok(())
}

/// The pipeline files of the runs `specs` names that are recorded here.
fn pipelines_of(ws: &Workspace, specs: &[String]) -> Vec<String> {
    specs
        .iter()
        .filter_map(|spec| ws.runs.resolve(spec).ok())
        .map(|record| record.pipeline)
        .collect()
}

fn required(ws: &Workspace) -> Result<&Remote, Error> {
    ws.remote.as_deref().ok_or_else(|| {
        Error::Usage(format!(
            "no remote cache: set PIPE_REMOTE=s3://bucket/folder (and AWS_ENDPOINT_URL for a service other than AWS), or `remote:` in `.pipe/{WORKSPACE_FILE}` or in the runs' pipeline"
        ))
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// One line for what pushes did.
fn pushed_line(pushed: &Pushed, remote: &Remote) -> String {
    format!(
        "pushed {} stage result{} ({} object{}, {}) to {}; {} there already",
        pushed.entries,
        plural(pushed.entries),
        pushed.objects,
        plural(pushed.objects),
        mib(pushed.bytes),
        remote.config(),
        pushed.present
    )
}

/// Waits for a run's (or a sweep's) background pushes, then pushes `record` (a single run's): the
/// warnings, and a line saying what went up (none when there is no remote or nothing was pushed).
pub(super) fn finish_pushes(
    ws: &Workspace,
    record: Option<&RunRecord>,
) -> (Vec<String>, Option<String>) {
    let Some(remote) = ws.remote.as_deref() else {
        return (Vec::new(), None);
    };
    let mut pushed = remote.finish_pushes();
    if let Some(record) = record.filter(|_| remote.pushes_commits()) {
        pushed.add(remote.push(&ws.store, &job_results(record)));
        pushed.warnings.extend(push_record(ws, remote, &record.id));
        if pushed.entries > 0 && pushed.warnings.is_empty() {
            pushed.warnings.extend(push_head(ws, remote, record));
        }
    }
    let line = (pushed.entries > 0).then(|| pushed_line(&pushed, remote));
    (pushed.warnings, line)
}

/// The keys of the stages `record`'s Slurm jobs ran: committed by the jobs, so not pushed in the
/// background by this process.
fn job_results(record: &RunRecord) -> Vec<String> {
    if record.executor != ExecutorKind::Slurm {
        return Vec::new();
    }
    record
        .stages
        .iter()
        .filter(|stage| stage.status == Status::Ran)
        .filter_map(|stage| stage.key.clone())
        .collect()
}

/// `pipe exec-finish RUN`, the last job of a detached Slurm run: completes its record, then pushes
/// what its jobs ran and the record, saying so on stderr (the job's log).
pub(super) fn exec_finish(ws: &Workspace, run_id: &str) -> Result<i32, Error> {
    let code = crate::run::slurm::node::exec_finish(ws, run_id)?;
    if let Ok(record) = ws.runs.resolve(run_id) {
        let (warnings, line) = finish_pushes(ws, Some(&record));
        for warning in warnings {
            errln!("warning: {warning}");
        }
        if let Some(line) = line {
            errln!("{line}");
        }
    }
    Ok(code)
}

/// Writes the head of `record`'s pipeline and params (its entries in one object, for one-request
/// lookups); the warning when it could not.
fn push_head(ws: &Workspace, remote: &Remote, record: &RunRecord) -> Option<String> {
    let head = crate::remote::head_name(&record.pipeline, &record.params);
    remote.push_head(&ws.store, &head, &run_keys(std::slice::from_ref(record)))
}

/// Uploads run `id`'s record; the warning when it could not.
fn push_record(ws: &Workspace, remote: &Remote, id: &str) -> Option<String> {
    match std::fs::read(ws.runs.run_dir(id).record()) {
        Ok(bytes) => remote.push_record(id, bytes),
        Err(e) => Some(format!("cannot read the record of run {id}: {e}")),
    }
}

/// The run named by `spec`: recorded here, or else (an exact id) recorded on the remote, whose
/// record is then kept here too (so `pipe show`, `compare` and `ui` see it).
fn local_or_remote(ws: &Workspace, remote: &Remote, spec: &str) -> Result<RunRecord, Error> {
    let local = ws.runs.resolve(spec);
    if local.is_ok() || !is_id(spec) {
        return local.map_err(Error::Usage);
    }
    remote_record(
        remote,
        spec,
        "run",
        |r: &RunRecord| &r.id,
        |r| ws.runs.write(r),
    )
}

/// The record of `what` (a run or a sweep) `spec` on the remote, checked to be a record of that
/// id, then kept here by `keep`.
fn remote_record<T: serde::de::DeserializeOwned>(
    remote: &Remote,
    spec: &str,
    what: &str,
    id_of: impl Fn(&T) -> &str,
    keep: impl FnOnce(&T) -> std::io::Result<()>,
) -> Result<T, Error> {
    let bytes = remote.record(spec).map_err(Error::Io)?.ok_or_else(|| {
        Error::Usage(format!("no {what} `{spec}` here or on {}", remote.config()))
    })?;
    let record: T = serde_json::from_slice(&bytes)
        .ok()
        .filter(|r: &T| id_of(r) == spec)
        .ok_or_else(|| {
            Error::Io(format!(
                "the remote's record of {what} {spec} is not a {what} record"
            ))
        })?;
    keep(&record)
        .map_err(|e| Error::Io(format!("cannot keep the record of {what} {spec}: {e}")))?;
    Ok(record)
}

/// The runs `spec` names: a run, or a sweep's runs (`sweep-…`), each recorded here or else fetched
/// from the remote and kept here (the sweep's record too).
fn runs_named(ws: &Workspace, remote: &Remote, spec: &str) -> Result<Vec<RunRecord>, Error> {
    if !spec.starts_with(SWEEP_PREFIX) {
        return Ok(vec![local_or_remote(ws, remote, spec)?]);
    }
    let sweep = match ws.runs.resolve_sweep(spec) {
        Ok(sweep) => sweep,
        Err(local) if !is_id(spec) => return Err(Error::Usage(local)),
        Err(_) => remote_record(
            remote,
            spec,
            "sweep",
            |s: &SweepRecord| &s.id,
            |s| ws.runs.write_sweep(s),
        )?,
    };
    sweep
        .runs
        .iter()
        .filter_map(|run| run.run.as_deref())
        .map(|id| local_or_remote(ws, remote, id))
        .collect()
}

/// After a sweep: uploads the records of its runs and its own, so that `pipe pull SWEEP` (or
/// `--all`) brings the whole sweep to another machine; the warnings.
pub(super) fn push_sweep_records(ws: &Workspace, sweep: &SweepRecord) -> Vec<String> {
    let Some(remote) = ws.remote.as_deref().filter(|r| r.pushes_commits()) else {
        return Vec::new();
    };
    let mut warnings: Vec<String> = sweep
        .runs
        .iter()
        .filter_map(|run| run.run.as_deref())
        .filter_map(|id| push_record(ws, remote, id))
        .collect();
    for record in ws.runs.sweep_runs(sweep) {
        warnings.extend(push_head(ws, remote, &record));
    }
    match std::fs::read(ws.runs.run_dir(&sweep.id).sweep_record()) {
        Ok(bytes) => warnings.extend(remote.push_record(&sweep.id, bytes)),
        Err(e) => warnings.push(format!("cannot read the record of sweep {}: {e}", sweep.id)),
    }
    warnings
}

/// The stage keys of `records`.
fn run_keys(records: &[RunRecord]) -> Vec<String> {
    let mut keys: Vec<String> = records
        .iter()
        .flat_map(|r| r.stages.iter().filter_map(|s| s.key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `pipe push [RUN...]`.
pub(super) fn push(ws: &Workspace, runs: &[String]) -> Result<i32, Error> {
    let remote = required(ws)?;
    let records = runs
        .iter()
        .map(|spec| ws.runs.resolve(spec).map_err(Error::Usage))
        .collect::<Result<Vec<_>, _>>()?;
    let keys = if runs.is_empty() {
        ws.store.entry_keys()
    } else {
        run_keys(&records)
    };
    let started = Instant::now();
    let mut pushed = remote.push(&ws.store, &keys);
    for record in &records {
        pushed.warnings.extend(push_record(ws, remote, &record.id));
    }
    if pushed.warnings.is_empty() {
        // A head per pipeline and params: its latest run among those pushed (of all, by default).
        let mut heads = if runs.is_empty() {
            ws.runs.list().0
        } else {
            records
        };
        heads.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        let mut seen = std::collections::HashSet::new();
        let head_of = |r: &RunRecord| crate::remote::head_name(&r.pipeline, &r.params);
        for record in heads.iter().filter(|r| seen.insert(head_of(r))) {
            pushed.warnings.extend(push_head(ws, remote, record));
        }
    }
    for warning in &pushed.warnings {
        errln!("warning: {warning}");
    }
    errln!(
        "{} in {:.2} s",
        pushed_line(&pushed, remote),
        started.elapsed().as_secs_f64()
    );
    Ok(if pushed.warnings.is_empty() {
        EXIT_OK
    } else {
        EXIT_STAGE_FAILED
    })
}

/// `pipe pull RUN...` (runs or sweeps; or `--all`: every run and sweep recorded on the remote).
pub(super) fn pull(ws: &Workspace, runs: &[String], all: bool) -> Result<i32, Error> {
    let remote = required(ws)?;
    let started = Instant::now();
    let specs = if all {
        let mut ids = remote.run_ids().map_err(Error::Io)?;
        ids.retain(|id| is_id(id));
        ids
    } else {
        runs.to_vec()
    };
    let mut records = Vec::new();
    for spec in &specs {
        records.extend(runs_named(ws, remote, spec)?);
    }
    let mut seen = std::collections::HashSet::new();
    records.retain(|record| seen.insert(record.id.clone()));
    let (here, wanted): (Vec<String>, Vec<String>) = run_keys(&records)
        .into_iter()
        .partition(|key| matches!(ws.store.lookup(key), Ok(Some(_))));
    let (mut fetched, mut missing, mut warnings) = (0, 0, Vec::new());
    for result in remote.fetch_many(&ws.store, &wanted) {
        match result {
            Fetched::Restored(_) => fetched += 1,
            Fetched::Missing => missing += 1,
            Fetched::Warning(warning) => warnings.push(warning),
        }
    }
    for warning in &warnings {
        errln!("warning: {warning}");
    }
    errln!(
        "pulled {fetched} stage result{} of {} run{} from {}; {} were here already, {missing} not on the remote ({:.2} s)",
        plural(fetched),
        records.len(),
        plural(records.len()),
        remote.config(),
        here.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if warnings.is_empty() {
        EXIT_OK
    } else {
        EXIT_STAGE_FAILED
    })
}
