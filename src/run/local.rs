//! Carrying out one stage in this process: its outputs cleared (unless `persist`), then its commands
//! under `sh -c` with their output in the run's logs, or its built-in kind's implementation.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::events::{Event, Observer};
use super::executor::{Executor, Launch, StageEnv, StageFailure};
use super::groups;
use crate::builtin::{self, Progress, Reporter};
use crate::pipeline::{Action, ExecutorKind, Stage};
use crate::records::LogStream;
use crate::util::fsutil;

/// How many lines of a failed command's stderr are shown.
const STDERR_TAIL_LINES: usize = 15;

/// Runs stages in this process, in the scheduler's worker threads.
pub struct Local;

impl Executor for Local {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Local
    }

    fn launch(&self, env: &StageEnv, stage: &Stage, _after: &[String]) -> Launch {
        Launch::Finished(execute(env, stage))
    }
}

/// Runs the stage's command or built-in in this process.
pub fn execute(env: &StageEnv, stage: &Stage) -> Result<(), StageFailure> {
    for out in &stage.outs {
        let full = env.root.join(&out.path.path);
        if !out.persist {
            fsutil::remove_path(&full).map_err(|e| {
                StageFailure::new(format!("cannot remove old output `{}`: {e}", out.path.path))
            })?;
        }
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(|e| {
                StageFailure::new(format!(
                    "cannot create the folder of output `{}` ({}): {e}",
                    out.path.path,
                    parent.display()
                ))
            })?;
        }
    }
    match &stage.action {
        Action::Command(cmds) => run_commands(env, stage, cmds),
        Action::Builtin { kind, settings, .. } => {
            let implementation =
                builtin::implementation(kind).expect("declared kinds have implementations");
            let metrics = env.run_dir.stage_log(&stage.name, LogStream::Metrics);
            // A retried stage starts its metrics afresh (its log keeps every attempt's lines).
            let _ = fs::remove_file(&metrics);
            let reporter = StageReporter {
                stage: &stage.name,
                log: env.run_dir.stage_log(&stage.name, LogStream::Stdout),
                metrics,
                events: env.events,
            };
            let ctx = builtin::Context {
                root: env.root,
                stage: &stage.name,
                settings,
                reporter: &reporter,
            };
            implementation(&ctx).map_err(|e| StageFailure::new(format!("{e:#}")))
        }
    }
}

fn run_commands(env: &StageEnv, stage: &Stage, cmds: &[String]) -> Result<(), StageFailure> {
    let log_dir = env.run_dir.logs();
    fs::create_dir_all(&log_dir).map_err(|e| {
        StageFailure::new(format!(
            "cannot create log folder {}: {e}",
            log_dir.display()
        ))
    })?;
    let stdout_path = env.run_dir.stage_log(&stage.name, LogStream::Stdout);
    let stderr_path = env.run_dir.stage_log(&stage.name, LogStream::Stderr);
    let open = |p: &Path| {
        fs::File::create(p)
            .map_err(|e| StageFailure::new(format!("cannot create log {}: {e}", p.display())))
    };
    let (stdout, stderr) = (open(&stdout_path)?, open(&stderr_path)?);
    let clone = |f: &fs::File| f.try_clone().map_err(|e| StageFailure::new(e.to_string()));
    for cmd in cmds {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(cmd)
            .current_dir(env.root.join(&stage.wdir))
            .env("PIPE_STAGE", &stage.name)
            .env("PIPE_RUN_ID", env.run_id)
            .stdin(Stdio::null())
            .stdout(clone(&stdout)?)
            .stderr(clone(&stderr)?);
        let status =
            groups::run_in_group(command, env.store, env.root, &stage.name).map_err(|e| {
                StageFailure::new(format!("cannot run `sh` for stage `{}`: {e}", stage.name))
            })?;
        if !status.success() {
            let how = match status.code() {
                Some(code) => format!("exited with code {code}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("was killed by signal {}", status.signal().unwrap_or(0))
                }
            };
            let tail = tail_lines(&stderr_path, STDERR_TAIL_LINES);
            let mut message = format!("command `{cmd}` {how}");
            if !tail.is_empty() {
                message.push_str(&format!(
                    "\nlast lines of stderr ({}):\n{tail}",
                    stderr_path.display()
                ));
            }
            return Err(StageFailure {
                message,
                exit_code: status.code(),
            });
        }
    }
    Ok(())
}

/// A built-in stage's reporter: log lines to its log in the run folder, metrics rows to its metrics
/// log there, progress to the run's events.
struct StageReporter<'a> {
    stage: &'a str,
    log: PathBuf,
    metrics: PathBuf,
    events: &'a dyn Observer,
}

impl StageReporter<'_> {
    /// Appends `line` to `file`; a failure is a warning, never the stage's failure.
    fn append(&self, file: &Path, line: &str) {
        let appended = file
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::OpenOptions::new().create(true).append(true).open(file))
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            let message = format!("cannot write log `{}`: {e}", file.display());
            self.events.on(Event::Warning {
                stage: self.stage,
                message: &message,
            });
        }
    }
}

impl Reporter for StageReporter<'_> {
    fn log(&self, line: &str) {
        self.append(&self.log, line);
    }

    fn metrics(&self, row: &serde_json::Value) {
        self.append(&self.metrics, &row.to_string());
    }

    fn progress(&self, progress: &Progress) {
        self.events.on(Event::Progress {
            stage: self.stage,
            progress,
        });
    }
}

/// The last `n` lines of a file, or "" when it cannot be read.
pub fn tail_lines(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
