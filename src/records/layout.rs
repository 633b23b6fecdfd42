//! The layout of `runs/`: every path under it is handed out here, so what may exist there is written
//! down in one place ([`is_expected`]) and a test can hold every kind of run to it.
//!
//! ```text
//! runs/
//!   <id>/run.json                 the record (written only by `Runs::write`)
//!   <id>/logs/<stage>.stdout      a stage's output (commands: also .stderr)
//!   <id>/logs/<stage>.metrics.jsonl  a built-in stage's metrics as it goes (a row per epoch)
//!   <id>/report/…                 the run's report (report.md and its figures)
//!   <id>/jobs/…                   a Slurm run's job scripts, logs and results
//!   compare-<ids>/…               `pipe compare`'s report
//! ```

use std::path::{Component, Path, PathBuf};

/// Which stream of a stage's output a log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output (and a built-in stage's own log lines).
    Stdout,
    /// Standard error.
    Stderr,
    /// A built-in stage's metrics as it goes: one JSON object per line (train: one per epoch).
    Metrics,
}

/// The folder of one run, `runs/<id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    /// The run folder at `dir`.
    pub(super) fn new(dir: PathBuf) -> RunDir {
        RunDir { dir }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `run.json`.
    pub fn record(&self) -> PathBuf {
        self.dir.join("run.json")
    }

    /// The stage logs' folder.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// One stage's log.
    pub fn stage_log(&self, stage: &str, stream: LogStream) -> PathBuf {
        let extension = match stream {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Metrics => "metrics.jsonl",
        };
        self.logs().join(format!("{stage}.{extension}"))
    }

    /// A sweep's record (in a sweep's folder).
    pub fn sweep_record(&self) -> PathBuf {
        self.dir.join("sweep.json")
    }

    /// Where a detached sweep's output goes (in a sweep's folder).
    pub fn sweep_log(&self) -> PathBuf {
        self.dir.join("sweep.log")
    }

    /// The run's report folder.
    pub fn report(&self) -> PathBuf {
        self.dir.join("report")
    }

    /// A Slurm run's jobs folder.
    pub fn jobs(&self) -> PathBuf {
        self.dir.join("jobs")
    }
}

/// The folder of `pipe compare`'s report on runs `ids`.
pub fn compare_dir(runs: &Path, ids: &[&str]) -> PathBuf {
    let mut name = format!("compare-{}", ids.join("-"));
    if name.len() > 200 {
        // Folder names stop at 255 bytes: many runs get the first id and a hash of all.
        let digest = blake3::hash(ids.join(",").as_bytes()).to_hex();
        name = format!(
            "compare-{}-and-{}-more-{}",
            ids[0],
            ids.len() - 1,
            &digest[..8]
        );
    }
    runs.join(name)
}

/// Whether `path`, relative to `runs/`, is a place the layout above provides for.
pub fn is_expected(path: &Path) -> bool {
    let parts: Vec<&str> = path
        .components()
        .map(|c| match c {
            Component::Normal(p) => p.to_str().unwrap_or("\0"),
            _ => "\0",
        })
        .collect();
    match parts.as_slice() {
        [compare, _, ..] if compare.starts_with("compare-") => true,
        [_, "run.json" | "sweep.json" | "sweep.log"] => true,
        [_, "logs", log] => [".stdout", ".stderr", ".metrics.jsonl"]
            .iter()
            .any(|x| log.ends_with(x)),
        [_, "report" | "jobs", _, ..] => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_names_what_a_run_may_write() {
        for ok in [
            "20260101-000000-abcd/run.json",
            "20260101-000000-abcd/logs/train.stdout",
            "20260101-000000-abcd/logs/train.metrics.jsonl",
            "20260101-000000-abcd/report/figures/roc.png",
            "20260101-000000-abcd/jobs/stages/train.sh",
            "compare-a-b/compare.md",
        ] {
            assert!(is_expected(Path::new(ok)), "{ok}");
        }
        for bad in [
            "stray.txt",
            "20260101-000000-abcd/model.safetensors",
            "20260101-000000-abcd/logs/train.txt",
            "20260101-000000-abcd/../x",
        ] {
            assert!(!is_expected(Path::new(bad)), "{bad}");
        }
    }
}
