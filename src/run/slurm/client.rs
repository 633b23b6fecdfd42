//! The Slurm commands pipe uses, and nothing else: `sbatch` (submit, held), `scontrol release`,
//! `squeue` (job states; `sacct` needs accounting, which many clusters and test setups lack) and
//! `scancel`. Each failure is an error naming the command and what it printed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::pipeline::Resources;

/// One job to submit.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// Slurm's job name (shown by `squeue`).
    pub name: String,
    /// The script to run.
    pub script: PathBuf,
    /// Where Slurm writes the job's stdout and stderr.
    pub log: PathBuf,
    /// The folder the job starts in.
    pub chdir: PathBuf,
    /// Jobs that must end first.
    pub after: Vec<String>,
    /// `afterok` (start only if all succeeded; cancelled otherwise) or `afterany`.
    pub after_any: bool,
    /// CPUs, memory, GPUs, time, partition, account.
    pub resources: Resources,
}

/// A job's state as `squeue` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, `NODE_FAIL`, ...
    pub state: String,
    /// Why it is pending, or how it ended (`Dependency`, `DependencyNeverSatisfied`, `None`, ...).
    pub reason: String,
}

impl JobState {
    /// Whether the job is running: allocated and started (its batch script may not have yet).
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "RUNNING" | "COMPLETING")
    }

    /// Whether the job has not ended yet.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
        )
    }
}

/// `sbatch`'s arguments for `job`, submitted on hold (released once every job of the run is queued).
pub fn sbatch_args(job: &JobRequest) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        "--hold".to_string(),
        format!("--job-name={}", job.name),
        format!("--output={}", job.log.display()),
        format!("--chdir={}", job.chdir.display()),
    ];
    if !job.after.is_empty() {
        let kind = if job.after_any { "afterany" } else { "afterok" };
        args.push(format!("--dependency={kind}:{}", job.after.join(":")));
        if !job.after_any {
            args.push("--kill-on-invalid-dep=yes".to_string());
        }
    }
    let r = &job.resources;
    let options = [
        ("--cpus-per-task", r.cpus.map(|n| n.to_string())),
        ("--mem", r.mem.clone()),
        ("--gpus", r.gpus.filter(|n| *n > 0).map(|n| n.to_string())),
        ("--time", r.time.clone()),
        ("--partition", r.partition.clone()),
        ("--account", r.account.clone()),
    ];
    args.extend(
        options
            .into_iter()
            .filter_map(|(flag, value)| value.map(|v| format!("{flag}={v}"))),
    );
    args.push(job.script.display().to_string());
    args
}

/// Submits `job` on hold; returns its job id.
pub fn submit(job: &JobRequest) -> Result<String, String> {
    let out = run("sbatch", &sbatch_args(job))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `id` or `id;cluster`.
    let id = text.trim().split(';').next().unwrap_or_default();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "sbatch printed no job id (it printed `{}`)",
            text.trim()
        ));
    }
    Ok(id.to_string())
}

/// Releases held jobs.
pub fn release(ids: &[String]) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    run("scontrol", &["release".to_string(), ids.join(",")]).map(drop)
}

/// Cancels jobs (only those still pending, with `pending_only`).
pub fn cancel(ids: &[String], pending_only: bool) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut args: Vec<String> = Vec::new();
    if pending_only {
        args.push("--state=PENDING".into());
    }
    args.extend(ids.iter().cloned());
    run("scancel", &args).map(drop)
}

/// The states of this user's jobs that Slurm still knows (ended jobs stay for `MinJobAge`, 300 s by
/// default), by job id.
pub fn states() -> Result<HashMap<String, JobState>, String> {
    let args = ["--me", "--noheader", "--states=all", "--format=%i|%T|%r"].map(String::from);
    let out = run("squeue", &args)?;
    Ok(parse_states(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `squeue --format=%i|%T|%r` lines.
fn parse_states(text: &str) -> HashMap<String, JobState> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let id = parts.next()?.trim();
            let state = parts.next()?.trim();
            let reason = parts.next().unwrap_or_default().trim();
            (!id.is_empty()).then(|| {
                (
                    id.to_string(),
                    JobState {
                        state: state.to_string(),
                        reason: reason.to_string(),
                    },
                )
            })
        })
        .collect()
}

/// Whether Slurm's client commands are on `PATH`.
pub fn available() -> bool {
    Command::new("sbatch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(program: &str, args: &[String]) -> Result<Output, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}` (is Slurm installed here?): {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(after: &[&str], resources: Resources) -> JobRequest {
        JobRequest {
            name: "pipe:train".into(),
            script: "/ws/runs/r/jobs/train.sh".into(),
            log: "/ws/runs/r/jobs/train.log".into(),
            chdir: "/ws".into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            after_any: false,
            resources,
        }
    }

    #[test]
    fn sbatch_gets_dependencies_and_resources() {
        let resources = Resources {
            cpus: Some(4),
            mem: Some("8G".into()),
            gpus: Some(1),
            time: Some("1:00:00".into()),
            partition: Some("gpu".into()),
            account: None,
        };
        let args = sbatch_args(&job(&["11", "12"], resources));
        for expected in [
            "--hold",
            "--dependency=afterok:11:12",
            "--kill-on-invalid-dep=yes",
            "--cpus-per-task=4",
            "--mem=8G",
            "--gpus=1",
            "--time=1:00:00",
            "--partition=gpu",
            "--output=/ws/runs/r/jobs/train.log",
            "--chdir=/ws",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        assert_eq!(args.last().unwrap(), "/ws/runs/r/jobs/train.sh");
        assert!(!args.iter().any(|a| a.starts_with("--account")));
    }

    #[test]
    fn a_job_without_upstream_jobs_has_no_dependency() {
        let args = sbatch_args(&job(&[], Resources::default()));
        assert!(
            !args.iter().any(|a| a.starts_with("--dependency")),
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a.starts_with("--mem")), "{args:?}");
    }

    #[test]
    fn squeue_lines_are_parsed_and_ended_states_told_apart() {
        let states = parse_states(
            "41|COMPLETED|None\n42|PENDING|Dependency\n 43|CANCELLED|DependencyNeverSatisfied\n",
        );
        assert_eq!(states.len(), 3);
        assert!(!states["41"].is_active());
        assert!(states["42"].is_active() && !states["42"].is_running());
        let running = parse_states("44|RUNNING|None\n45|COMPLETING|None\n");
        assert!(running.values().all(|s| s.is_running() && s.is_active()));
        assert_eq!(states["43"].reason, "DependencyNeverSatisfied");
    }
}
