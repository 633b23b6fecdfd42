//! The remote cache on the command line: attaching it to the workspace (`PIPE_REMOTE`), saying what a
//! run's pushes did before `pipe run` exits, and `pipe push` and `pipe pull` by hand.

use std::time::Instant;

use super::args::Command;
use super::render::plural;
use crate::error::{EXIT_OK, EXIT_STAGE_FAILED, Error};
use crate::remote::{Fetched, Pushed, Remote, RemoteConfig};
use crate::run::workspace::Workspace;

/// Attaches the remote the environment names, if any, for the commands that use one: runs (which
/// push what they commit unless `--no-push`), plans, `pipe push` and `pipe pull`.
pub(super) fn attach(ws: &mut Workspace, command: &Command) -> Result<(), Error> {
    let push_commits = match command {
        Command::Run { no_push, .. } => !no_push,
        Command::Status { run: None, .. } | Command::Pull { .. } => false,
        Command::Push { .. } => true,
        _ => return Ok(()),
    };
    if let Some(config) = RemoteConfig::from_env().map_err(Error::Usage)? {
        let remote = Remote::new(config, push_commits).map_err(Error::Usage)?;
        ws.remote = Some(std::sync::Arc::new(remote));
    }
    Ok(())
}

fn required(ws: &Workspace) -> Result<&Remote, Error> {
    ws.remote.as_deref().ok_or_else(|| {
        Error::Usage(
            "no remote cache: set PIPE_REMOTE=s3://bucket/folder (and AWS_ENDPOINT_URL for a service other than AWS)".into(),
        )
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

/// Waits for a run's (or a sweep's) background pushes: the warnings, and a line saying what went up
/// (none when there is no remote or nothing was pushed).
pub(super) fn finish_pushes(ws: &Workspace) -> (Vec<String>, Option<String>) {
    let Some(remote) = ws.remote.as_deref() else {
        return (Vec::new(), None);
    };
    let pushed = remote.finish_pushes();
    let line = (pushed.entries > 0).then(|| pushed_line(&pushed, remote));
    (pushed.warnings, line)
}

/// The stage keys of the runs named by `specs`.
fn run_keys(ws: &Workspace, specs: &[String]) -> Result<Vec<String>, Error> {
    let mut keys = Vec::new();
    for spec in specs {
        let record = ws.runs.resolve(spec).map_err(Error::Usage)?;
        keys.extend(record.stages.iter().filter_map(|s| s.key.clone()));
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// `pipe push [RUN...]`.
pub(super) fn push(ws: &Workspace, runs: &[String]) -> Result<i32, Error> {
    let remote = required(ws)?;
    let keys = if runs.is_empty() {
        ws.store.entry_keys()
    } else {
        run_keys(ws, runs)?
    };
    let started = Instant::now();
    let pushed = remote.push(&ws.store, &keys);
    for warning in &pushed.warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!(
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

/// `pipe pull RUN...`.
pub(super) fn pull(ws: &Workspace, runs: &[String]) -> Result<i32, Error> {
    let remote = required(ws)?;
    let started = Instant::now();
    let (mut fetched, mut local, mut missing, mut warnings) = (0, 0, 0, Vec::new());
    for key in run_keys(ws, runs)? {
        if matches!(ws.store.lookup(&key), Ok(Some(_))) {
            local += 1;
            continue;
        }
        match remote.fetch(&ws.store, &key) {
            Fetched::Restored => fetched += 1,
            Fetched::Missing => missing += 1,
            Fetched::Warning(warning) => warnings.push(warning),
        }
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "pulled {fetched} stage result{} from {}; {local} were here already, {missing} not on the remote ({:.2} s)",
        plural(fetched),
        remote.config(),
        started.elapsed().as_secs_f64()
    );
    Ok(if warnings.is_empty() {
        EXIT_OK
    } else {
        EXIT_STAGE_FAILED
    })
}
