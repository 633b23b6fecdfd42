//! The sweep side of the command line: `pipe run FILE --sweep ...` (each run's stages on the terminal
//! as for one run, a line per run, the grouped table at the end) and `pipe compare SWEEP --group-by`.

use super::output::{errln, out, outln};
use super::render::run_summary;
use super::terminal::{Terminal, Verbosity, table, wait_message};
use crate::error::{EXIT_OK, EXIT_STAGE_FAILED, Error};
use crate::pipeline::{Override, Pipeline};
use crate::records::sweep::{SweepRecord, SweepRun, describe, group_by, varying_params};
use crate::records::{RunRecord, RunStatus};
use crate::report::sweep::{shown_metrics, summary_cell};
use crate::run::context::RunRequest;
use crate::run::events::Observer;
use crate::run::sweep::{SweepObserver, SweepPlan};
use crate::run::workspace::Workspace;

/// `pipe run FILE --sweep ...`: every combination, then the sweep's report and grouped table.
pub(super) fn run_sweep(
    ws: &Workspace,
    request: &RunRequest,
    plan: &SweepPlan,
    verbosity: Verbosity,
    dry_run: bool,
) -> Result<i32, Error> {
    if dry_run {
        for values in plan.combinations()? {
            outln!("{}", describe(&values));
        }
        return Ok(EXIT_OK);
    }
    if request.detach {
        // A detached sweep is this command in the background, its runs not detached (on Slurm too:
        // it waits for each run's jobs, then removes the run's sandbox).
        // Errors in the pipeline are said here, not in a log nobody reads.
        ws.load(&request.file, &request.overrides, &request.targets)?;
        return detach(ws);
    }
    let mut progress = Progress {
        verbosity,
        at_once: 1,
    };
    let (sweep, records) = ws.sweep(request, plan, &mut progress, &wait_message)?;
    let (mut push_warnings, pushed) = super::remote::finish_pushes(ws, None);
    push_warnings.extend(super::remote::push_sweep_records(ws, &sweep));
    push_warnings.iter().for_each(|w| errln!("warning: {w}"));
    pushed.iter().for_each(|line| errln!("{line}"));
    let report = crate::report::sweep::write(
        &ws.runs.run_dir(&sweep.id).report(),
        &sweep,
        &records,
        |id| ws.runs.run_dir(id).report(),
    )
    .map_err(|e| Error::Io(format!("{e:#}")))?;
    let done = sweep
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .count();
    errln!(
        "sweep {} {}: {done} of {} runs succeeded in {:.1}s ({})",
        sweep.id,
        sweep.status.word(),
        sweep.runs.len(),
        sweep.duration_s,
        report.display()
    );
    if let Some(axis) = sweep.axes.first() {
        out!("{}", grouped_table(&sweep, &records, &axis.key));
    }
    crate::run::groups::exit_if_interrupted();
    Ok(if sweep.status == RunStatus::Succeeded {
        EXIT_OK
    } else {
        EXIT_STAGE_FAILED
    })
}

/// `--detach` for a local sweep: the same command, less `--detach`, in a new session (so closing the
/// terminal does not end it), its output in the sweep's `sweep.log`.
fn detach(ws: &Workspace) -> Result<i32, Error> {
    use std::os::unix::process::CommandExt;
    let id = ws.reserve_sweep()?;
    let dir = ws.runs.run_dir(&id);
    let io =
        |e: std::io::Error| Error::Io(format!("cannot start the sweep in the background: {e}"));
    let log = std::fs::File::create(dir.sweep_log()).map_err(io)?;
    let exe = std::env::current_exe().map_err(io)?;
    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args().skip(1).filter(|a| a != "--detach"))
        .args(["--sweep-id", &id])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command.spawn().map_err(io)?;
    errln!(
        "sweep {id} started in the background (pid {}, output in {}); follow it with `pipe status --run {id}`, stop it with `pipe cancel {id}`",
        child.id(),
        dir.sweep_log().display()
    );
    Ok(EXIT_OK)
}

/// `pipe status --run SWEEP`: each combination with its run and status.
pub(super) fn sweep_status(ws: &Workspace, spec: &str) -> Result<i32, Error> {
    let sweep = ws.runs.resolve_sweep(spec).map_err(Error::Usage)?;
    let rows: Vec<Vec<String>> = sweep
        .runs
        .iter()
        .map(|r| {
            vec![
                describe(&r.values),
                r.run.clone().unwrap_or_else(|| "-".into()),
                r.status.to_string(),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    outln!(
        "sweep {} of {}: {}",
        sweep.id,
        sweep.pipeline,
        sweep_state(&sweep).word()
    );
    out!("{}", table(&["values", "run", "status", "error"], &rows));
    Ok(EXIT_OK)
}

/// `pipe cancel SWEEP`: asks the process running it to stop (as Ctrl-C would) and waits for its record.
pub(super) fn cancel_sweep(ws: &Workspace, spec: &str) -> Result<i32, Error> {
    let sweep = ws.runs.resolve_sweep(spec).map_err(Error::Usage)?;
    if sweep.host != crate::util::fsutil::host_name() {
        return Err(Error::Usage(format!(
            "sweep {} runs on {}; cancel it there",
            sweep.id, sweep.host
        )));
    }
    if sweep_state(&sweep) != RunStatus::Running {
        return Err(Error::Usage(format!(
            "sweep {} is {}, not running",
            sweep.id,
            sweep_state(&sweep).word()
        )));
    }
    // SAFETY: kill(2) on the pid in the sweep's record, which `sweep_state` saw alive.
    unsafe {
        libc::kill(sweep.pid as i32, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = sweep;
    while sweep_state(&now) == RunStatus::Running && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        now = ws.runs.resolve_sweep(&now.id).map_err(Error::Usage)?;
    }
    outln!("sweep {} {}", now.id, sweep_state(&now).word());
    Ok(EXIT_OK)
}

/// A sweep's status, `interrupted` when it says `running` but its process is gone. (A sweep started
/// on another host that shares the workspace is taken at its word.)
fn sweep_state(sweep: &SweepRecord) -> RunStatus {
    let here = sweep.host == crate::util::fsutil::host_name();
    let alive = !here || crate::run::groups::is_same_process(sweep.pid, sweep.pid_started);
    if sweep.status == RunStatus::Running && !alive {
        RunStatus::Interrupted
    } else {
        sweep.status
    }
}

/// `pipe compare SWEEP --group-by KEY`.
pub(super) fn compare_sweep(ws: &Workspace, spec: &str, key: &str) -> Result<i32, Error> {
    let sweep = ws.runs.resolve_sweep(spec).map_err(Error::Usage)?;
    let records = ws.runs.sweep_runs(&sweep);
    out!("{}", grouped_table(&sweep, &records, key));
    Ok(EXIT_OK)
}

/// Each shown metric as mean ± sd [min-max] per value of `key`, with the params that vary.
fn grouped_table(sweep: &SweepRecord, records: &[RunRecord], key: &str) -> String {
    let metrics = shown_metrics(records);
    let groups = group_by(records, key);
    let mut headers = vec![key, "runs"];
    headers.extend(metrics.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut row = vec![g.value.to_string(), g.runs.len().to_string()];
            row.extend(metrics.iter().map(|m| summary_cell(g, m)));
            row
        })
        .collect();
    format!(
        "sweep {} grouped by {key} (mean ± sd [min-max] over succeeded runs); params that vary: {}\n{}",
        sweep.id,
        varying_params(records).join(", "),
        table(&headers, &rows)
    )
}

/// The terminal through a sweep: one [`Terminal`] per run, a line as each starts and ends; when
/// runs go at once, their lines are labelled with the run's place in the sweep.
struct Progress {
    verbosity: Verbosity,
    at_once: usize,
}

impl SweepObserver for Progress {
    fn planned(&mut self, sweep: &str, total: usize, at_once: usize) {
        self.at_once = at_once;
        if self.verbosity > Verbosity::Quiet {
            errln!("sweep {sweep}: {total} runs, up to {at_once} at once");
        }
    }

    fn warn(&mut self, message: &str) {
        errln!("warning: {message}");
    }

    fn starting(
        &mut self,
        index: usize,
        total: usize,
        values: &[Override],
        pipeline: &Pipeline,
    ) -> Box<dyn Observer> {
        let mut term = Terminal::new(self.verbosity, pipeline);
        if self.at_once > 1 {
            term = term.labelled(format!("[{}/{total}] ", index + 1));
        }
        if self.verbosity > Verbosity::Quiet {
            term.line(&format!(
                "sweep run {}/{total}: {}",
                index + 1,
                describe(values)
            ));
        }
        Box::new(term)
    }

    fn finished(&mut self, run: &SweepRun, record: Option<&RunRecord>) {
        // A failure is always said; a success only without `-q`.
        let quiet = self.verbosity == Verbosity::Quiet;
        match (record, &run.error) {
            (Some(record), _) if quiet && record.status == RunStatus::Succeeded => {}
            (Some(record), _) => errln!("{}", run_summary(record)),
            (None, Some(error)) => errln!("{}: {error}", describe(&run.values)),
            (None, None) => {}
        }
    }
}
