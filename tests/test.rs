//! The `Ws` builder: a temporary workspace, files written into it, and `pipe` run inside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary workspace.
pub struct Ws {
    dir: tempfile::TempDir,
}

/// What one `pipe` invocation did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// What a finished `pipe` process said.
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ws {
    pub fn new() -> Ws {
        Ws {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `content` to `rel`, creating folders.
    pub fn write(&self, rel: &str, content: &str) -> &Ws {
        let path = self.file(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// The `pipe` command, ready to run in this workspace without colours (and without a remote
    /// cache the environment may name: `tests/remote.rs` gives its own).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
        cmd.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("PIPE_REMOTE")
            .env_remove("PIPE_REMOTE_KEY")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3");
        cmd
    }

    pub fn pipe(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run pipe"))
    }

    /// Runs pipe and asserts it exits 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.pipe(args);
        assert_eq!(
            run.code, 0,
            "pipe {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// Runs pipe, asserts it exits with `code` and that stderr says each of `messages`.
    pub fn fails(&self, args: &[&str], code: i32, messages: &[&str]) -> Run {
        let run = self.pipe(args);
        assert_eq!(run.code, code, "pipe {args:?}:\nstderr:\n{}", run.stderr);
        for message in messages {
            assert!(
                run.stderr.contains(message),
                "pipe {args:?}: stderr lacks {message:?}:\n{}",
                run.stderr
            );
        }
        run
    }

    /// The newest run record.
    pub fn latest(&self) -> Value {
        let out = self.ok(&["runs", "--json"]).stdout;
        let runs: Value = serde_json::from_str(&out).unwrap();
        let id = runs[0]["id"].as_str().unwrap().to_string();
        serde_json::from_str(&self.read(&format!("runs/{id}/run.json"))).unwrap()
    }

    /// Stage name -> status in the newest run record.
    pub fn statuses(&self) -> Vec<(String, String)> {
        let record = self.latest();
        record["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Names of the stages with `status` in the newest record.
    pub fn with_status(&self, status: &str) -> Vec<String> {
        self.statuses()
            .into_iter()
            .filter(|(_, s)| s == status)
            .map(|(n, _)| n)
            .collect()
    }

    /// How many store entries stage `stage` has.
    pub fn store_entries(&self, stage: &str) -> usize {
        let mut n = 0;
        let Ok(shards) = std::fs::read_dir(self.file(".pipe/stages")) else {
            return 0;
        };
        for shard in shards.flatten() {
            for entry in std::fs::read_dir(shard.path()).unwrap().flatten() {
                let json: Value =
                    serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
                n += usize::from(json["stage"] == stage);
            }
        }
        n
    }

    /// Asserts that every file under `runs/` is one the run-folder layout provides for: nothing but
    /// the record owner's paths (`run.json`, stage logs, reports, Slurm job files, comparisons).
    pub fn assert_runs_follow_layout(&self) {
        let runs = self.file("runs");
        let mut files = Vec::new();
        let mut stack = vec![runs.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(path);
                } else {
                    files.push(path.strip_prefix(&runs).unwrap().to_path_buf());
                }
            }
        }
        assert!(!files.is_empty(), "nothing under runs/");
        let stray: Vec<_> = files
            .iter()
            .filter(|f| !pipe::records::layout::is_expected(f))
            .collect();
        assert!(
            stray.is_empty(),
            "files under runs/ outside its layout: {stray:?}"
        );
    }

    /// The reason recorded for `stage` in the newest record.
    pub fn reason(&self, stage: &str) -> String {
        let record = self.latest();
        record["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == stage)
            .map(|s| s["reason"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no stage {stage}"))
    }
}

/// A three-stage pipeline: prepare -> train -> evaluate, plus an independent `other`.
pub const CHAIN: &str = r#"
params:
  lr: 0.001
  epochs: 3
stages:
  prepare:
    cmd: tr a-z A-Z < data/raw/a.txt > clean.txt && cat data/raw/b.txt >> clean.txt
    deps:
      - data/raw
    outs:
      - clean.txt
  train:
    cmd: echo "lr=${params.lr}" > model.txt && cat clean.txt >> model.txt
    deps:
      - clean.txt
    outs:
      - model.txt
  evaluate:
    cmd: 'echo "{\"accuracy\": 0.75, \"epochs\": ${epochs}}" > metrics.json'
    deps:
      - model.txt
    metrics:
      - metrics.json
  other:
    cmd: echo other > other.txt
    outs:
      - other.txt
"#;

/// A workspace holding [`CHAIN`] and its data.
pub fn chain() -> Ws {
    let ws = Ws::new();
    ws.write("p.yaml", CHAIN)
        .write("data/raw/a.txt", "abc\n")
        .write("data/raw/b.txt", "def\n");
    ws
}

/// Sends signal `sig` to process `pid` (a process group for a negative `pid`), as `kill` would; a
/// target already gone is no error (a hung-up terminal's group may be empty).
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A stand-in for training whose history depends on `seed`; the report stage keeps it (for the
/// validation curves of sweeps and comparisons). `lr` is there to be swept.
pub const HISTORY_PIPELINE: &str = r#"
params:
  seed: 1
  lr: 1
stages:
  train:
    cmd: >-
      mkdir -p hist && printf 'epoch,train_loss,val_loss,train_accuracy,val_accuracy\n1,0.9,0.9,0.5,0.5\n2,0.5,0.${params.seed},0.8,0.${params.seed}\n' > hist/history.csv
    outs: [hist/history.csv]
  report:
    uses: report
    with:
      history: hist/history.csv
      figures: figures
"#;
