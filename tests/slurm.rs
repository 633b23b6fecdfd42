//! The Slurm executor on a real one-node Slurm (`../shared/slurm/start-local-slurm.sh` starts one;
//! `.ci/run` does). Each test is skipped with a printed reason when no Slurm node answers here. The
//! tests take turns: the cluster has two CPUs, and each asserts on the queue.

use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::test::Ws;

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster, held for one test, or `None` (with the reason printed) when Slurm is not running.
pub fn cluster() -> Option<MutexGuard<'static, ()>> {
    let state = Command::new("sinfo")
        .args(["--noheader", "--format=%t"])
        .stderr(Stdio::null())
        .output();
    match state {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            if text
                .lines()
                .any(|s| matches!(s.trim(), "idle" | "mix" | "alloc"))
            {
                return Some(CLUSTER.lock().unwrap_or_else(|e| e.into_inner()));
            }
            eprintln!(
                "skipping Slurm test: no node is up (sinfo: {})",
                text.trim()
            );
        }
        _ => eprintln!(
            "skipping Slurm test: Slurm is not running here (start it with ../shared/slurm/start-local-slurm.sh)"
        ),
    }
    None
}

/// Stage resources small enough for both CPUs to take jobs at once (a job without `--mem` gets the
/// whole node's memory on this cluster).
pub const SMALL: &str = "resources:\n  mem: 50M\n  time: 5\n";

/// Four independent stages and one that gathers them.
fn fan() -> Ws {
    let ws = Ws::new();
    let mut yaml = format!("{SMALL}stages:\n");
    for i in 1..=4 {
        yaml.push_str(&format!(
            "  w{i}:\n    cmd: mkdir -p out && echo {i} > out/w{i}.txt\n    outs: [out/w{i}.txt]\n"
        ));
    }
    yaml.push_str(
        "  agg:\n    cmd: cat out/w1.txt out/w2.txt out/w3.txt out/w4.txt > all.txt\n    deps: [out/w1.txt, out/w2.txt, out/w3.txt, out/w4.txt]\n    outs: [all.txt]\n",
    );
    ws.write("fan.yaml", &yaml);
    ws
}

fn stage<'r>(record: &'r Value, name: &str) -> &'r Value {
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {record:#}"))
}

/// Polls `check` every 200 ms for up to `seconds`; panics with `what` if it never holds.
fn eventually(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not within {seconds}s");
}

/// The jobs of a run that Slurm has not finished with.
fn active_jobs(record: &Value) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["--me", "--noheader", "--format=%i"])
        .output()
        .unwrap();
    let active = String::from_utf8_lossy(&out.stdout).to_string();
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["job_id"].as_str())
        .filter(|id| active.lines().any(|l| l.trim() == *id))
        .map(str::to_string)
        .collect()
}

/// `pipe status --run latest` says `stage` is running (false while there is no run yet).
fn is_running(ws: &Ws, name: &str) -> bool {
    ws.pipe(&["status", "--run", "latest"])
        .stdout
        .lines()
        .any(|l| l.starts_with("running") && l.split_whitespace().nth(1) == Some(name))
}

/// Waits until a stage's command has created `marker`. Slurm says RUNNING as soon as it allocates
/// the job, before the job's `pipe exec-stage` has started (and taken the store's gc guard); the
/// command runs only once that process is at work.
fn wait_for_command(ws: &Ws, marker: &str) {
    eventually(60, &format!("the command that creates `{marker}`"), || {
        ws.path().join(marker).exists()
    });
}

#[test]
fn a_fan_runs_as_jobs_ordered_by_dependencies_and_a_second_run_submits_nothing() {
    let Some(_cluster) = cluster() else { return };
    let ws = fan();
    let run = ws.ok(&["run", "fan.yaml", "--executor", "slurm"]);
    assert_eq!(ws.read("all.txt"), "1\n2\n3\n4\n");
    let record = ws.latest();
    assert_eq!(record["executor"], "slurm");
    assert_eq!(record["status"], "succeeded");
    let mut jobs: Vec<&str> = Vec::new();
    for name in ["w1", "w2", "w3", "w4", "agg"] {
        let s = stage(&record, name);
        assert_eq!(s["status"], "ran", "{name}: {s:#}");
        jobs.push(s["job_id"].as_str().expect("a job id per submitted stage"));
    }
    jobs.sort();
    jobs.dedup();
    assert_eq!(jobs.len(), 5, "one job per stage");
    // agg was queued behind the four jobs of its upstream stages, not started by pipe later.
    let agg_line = run
        .stderr
        .lines()
        .find(|l| l.contains("queued") && l.contains("agg"))
        .unwrap_or_else(|| panic!("agg was not queued:\n{}", run.stderr));
    for w in ["w1", "w2", "w3", "w4"] {
        assert!(agg_line.contains(&format!("`{w}` (job ")), "{agg_line}");
    }
    assert_eq!(ws.store_entries("agg"), 1);

    let again = ws.ok(&["run", "fan.yaml", "--executor", "slurm"]);
    assert!(!again.stderr.contains("queued"), "{}", again.stderr);
    assert_eq!(ws.with_status("cached").len(), 5);
    assert!(stage(&ws.latest(), "agg")["job_id"].is_null());
    // Job scripts, Slurm logs, results and records are all where the run-folder layout puts them.
    ws.assert_runs_follow_layout();
}

#[test]
fn a_failing_job_fails_its_stage_with_its_stderr_and_skips_what_depends_on_it() {
    let Some(_cluster) = cluster() else { return };
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        &format!(
            "{SMALL}stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n  bad:\n    cmd: echo boom from bad >&2; exit 3\n    deps: [a.txt]\n    outs: [bad.txt]\n  c:\n    cmd: cat bad.txt > c.txt\n    deps: [bad.txt]\n    outs: [c.txt]\n"
        ),
    );
    let run = ws.fails(
        &["run", "p.yaml", "--executor", "slurm"],
        1,
        &["boom from bad"],
    );
    let record = ws.latest();
    assert_eq!(record["status"], "failed", "{}", run.stderr);
    assert_eq!(stage(&record, "a")["status"], "ran");
    let bad = stage(&record, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["exit_code"], 3);
    assert!(bad["error"].as_str().unwrap().contains("boom from bad"));
    let c = stage(&record, "c");
    assert_eq!(c["status"], "skipped", "{c:#}");
    assert_eq!(c["reason"], "upstream `bad` failed");
    assert_eq!(ws.store_entries("bad"), 0);
    assert!(active_jobs(&record).is_empty());
}

#[test]
fn pipe_cancel_stops_a_detached_run_and_leaves_no_entry_for_the_cancelled_stage() {
    let Some(_cluster) = cluster() else { return };
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        &format!(
            "{SMALL}stages:\n  slow:\n    cmd: touch slow-started; sleep 120; echo done > slow.txt\n    outs: [slow.txt]\n  after:\n    cmd: cat slow.txt > after.txt\n    deps: [slow.txt]\n    outs: [after.txt]\n"
        ),
    );
    let run = ws.ok(&["run", "p.yaml", "--executor", "slurm", "--detach"]);
    assert!(run.stderr.contains("pipe cancel"), "{}", run.stderr);
    assert_eq!(ws.latest()["status"], "running");
    eventually(60, "slow's job running", || is_running(&ws, "slow"));
    wait_for_command(&ws, "slow-started");

    let cancel = ws.ok(&["cancel", "latest"]);
    assert!(cancel.stdout.contains("cancelled"), "{}", cancel.stdout);
    let record = ws.latest();
    assert_eq!(record["status"], "cancelled");
    assert_eq!(stage(&record, "slow")["status"], "failed");
    assert!(
        stage(&record, "slow")["error"]
            .as_str()
            .unwrap()
            .contains("cancelled while running")
    );
    assert_eq!(stage(&record, "after")["status"], "skipped");
    eventually(30, "the run's jobs leave the queue", || {
        active_jobs(&record).is_empty()
    });
    assert_eq!(ws.store_entries("slow"), 0);
    ws.fails(&["cancel", "latest"], 2, &["already been cancelled"]);
    ws.assert_runs_follow_layout();
}

#[test]
fn ctrl_c_on_a_waiting_run_cancels_its_jobs() {
    let Some(_cluster) = cluster() else { return };
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        &format!("{SMALL}stages:\n  slow:\n    cmd: sleep 120 > slow.txt\n    outs: [slow.txt]\n"),
    );
    let child = ws
        .command(&["run", "p.yaml", "--executor", "slurm"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(60, "slow's job running", || is_running(&ws, "slow"));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let record = ws.latest();
    assert_eq!(record["status"], "cancelled");
    eventually(30, "the run's jobs leave the queue", || {
        active_jobs(&record).is_empty()
    });
    assert_eq!(ws.store_entries("slow"), 0);
}

#[test]
fn a_killed_job_leaves_no_entry_and_the_next_run_resubmits_only_what_is_missing() {
    let Some(_cluster) = cluster() else { return };
    let ws = Ws::new();
    // `b` waits for a file that is not a dep (so its key does not change) and stands in for a
    // stage whose node dies; `c` needs it.
    ws.write(
        "p.yaml",
        &format!(
            "{SMALL}stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n  b:\n    cmd: touch b-started; while [ ! -f go ]; do sleep 0.2; done; cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n  c:\n    cmd: cat b.txt > c.txt\n    deps: [b.txt]\n    outs: [c.txt]\n"
        ),
    );
    ws.ok(&["run", "p.yaml", "--executor", "slurm", "--detach"]);
    let id = ws.latest()["id"].as_str().unwrap().to_string();
    wait_for_command(&ws, "b-started");
    let pattern = format!("exec-stage {id} b");
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &pattern])
        .status()
        .unwrap();
    assert!(killed.success(), "no `{pattern}` process to kill");
    // The finishing job completes the record once b's job has ended.
    eventually(60, "the record completed by the finishing job", || {
        ws.latest()["status"] != "running"
    });
    let record = ws.latest();
    assert_eq!(record["status"], "failed");
    let b = stage(&record, "b");
    assert_eq!(b["status"], "failed");
    assert!(
        b["error"].as_str().unwrap().contains("without a result"),
        "{b:#}"
    );
    let c = stage(&record, "c");
    assert_eq!(c["status"], "skipped", "{c:#}");
    assert_eq!(c["reason"], "upstream `b` failed");
    assert_eq!(ws.store_entries("a"), 1);
    assert_eq!(ws.store_entries("b"), 0);

    ws.write("go", "");
    let rerun = ws.ok(&["run", "p.yaml", "--executor", "slurm"]);
    assert_eq!(ws.with_status("cached"), ["a"]);
    assert_eq!(ws.with_status("ran"), ["b", "c"], "{}", rerun.stderr);
    assert_eq!(ws.read("b.txt"), "a\n");
}

#[test]
fn two_runs_needing_the_same_stage_at_once_run_it_once() {
    let Some(_cluster) = cluster() else { return };
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        &format!(
            "{SMALL}stages:\n  s:\n    cmd: echo ran >> ledger.txt; sleep 2; echo s > s.txt\n    outs: [s.txt]\n"
        ),
    );
    let runs: Vec<_> = (0..2)
        .map(|_| {
            ws.command(&["run", "p.yaml", "--executor", "slurm"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(ws.read("ledger.txt"), "ran\n", "the stage ran once");
    let records: Value = serde_json::from_str(&ws.ok(&["runs", "--json"]).stdout).unwrap();
    let mut outcomes: Vec<(u64, u64)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stages"]["ran"].as_u64().unwrap(),
                r["stages"]["cached"].as_u64().unwrap(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, [(0, 1), (1, 0)]);
}

#[test]
fn gc_waits_for_a_job_at_work_and_keeps_what_a_running_run_committed() {
    let Some(_cluster) = cluster() else { return };
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        &format!(
            "{SMALL}stages:\n  s:\n    cmd: touch started; sleep 3; echo s > s.txt\n    outs: [s.txt]\n"
        ),
    );
    ws.ok(&["run", "p.yaml", "--executor", "slurm", "--detach"]);
    wait_for_command(&ws, "started");
    let gc = ws.ok(&["gc", "--keep", "0"]);
    assert!(gc.stderr.contains("cluster jobs at work"), "{}", gc.stderr);
    eventually(
        60,
        "the run's jobs (the stage's, the finishing one) end",
        || {
            let out = Command::new("squeue")
                .args(["--me", "--noheader"])
                .output()
                .unwrap();
            out.stdout.is_empty()
        },
    );
    assert_eq!(
        ws.store_entries("s"),
        1,
        "gc kept the entry the job committed"
    );
    let again = ws.ok(&["run", "p.yaml", "--executor", "slurm"]);
    assert!(!again.stderr.contains("queued"), "{}", again.stderr);
}

#[test]
fn resources_are_checked_and_detach_needs_a_cluster() {
    // No cluster needed: both are refused before anything is submitted.
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "resources:\n  mem: lots\nstages:\n  s:\n    cmd: echo > s.txt\n    outs: [s.txt]\n    resources:\n      cpu: 2\n",
    );
    ws.fails(
        &["status", "p.yaml"],
        2,
        &[
            "`mem` must be megabytes",
            "unknown resource in stage `s`: `cpu`",
            "cpus",
        ],
    );
    ws.write(
        "q.yaml",
        "stages:\n  s:\n    cmd: echo > s.txt\n    outs: [s.txt]\n",
    );
    ws.fails(
        &["run", "q.yaml", "--detach"],
        2,
        &["`--detach` needs a cluster executor"],
    );
}

#[test]
fn a_sweep_submits_all_its_runs_at_once_each_in_its_sandbox() {
    let Some(_cluster) = cluster() else { return };
    // Each run's `train` job waits for the other's to start: both succeed only if the runs were
    // submitted together. `prepare` does not depend on the seed: one job runs it, the other restores.
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        &format!(
            r#"{SMALL}params:
  seed: 1
stages:
  prepare:
    cmd: echo x >> prepare-count.txt && echo data > data.txt
    outs: [data.txt]
  train:
    cmd: >-
      touch started/${{params.seed}} &&
      for i in $(seq 600); do [ -e started/1 ] && [ -e started/2 ] && break; sleep 0.1; done &&
      [ -e started/1 ] && [ -e started/2 ] && cat data.txt > model.txt
    deps: [data.txt]
    outs: [model.txt]
"#
        ),
    );
    ws.write("prepare-count.txt", "");
    std::fs::create_dir(ws.file("started")).unwrap();
    let run = ws.ok(&[
        "run",
        "p.yaml",
        "--executor",
        "slurm",
        "--sweep",
        "seed=1,2",
    ]);
    assert!(
        run.stderr.contains("2 runs, up to 2 at once"),
        "{}",
        run.stderr
    );
    let listed: Value =
        serde_json::from_str(&ws.ok(&["runs", "--sweep", "latest", "--json"]).stdout).unwrap();
    let runs = listed.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for listed in runs {
        let id = listed["id"].as_str().unwrap();
        let record: Value = serde_json::from_str(&ws.read(&format!("runs/{id}/run.json"))).unwrap();
        assert_eq!(record["status"], "succeeded", "{record}");
        assert!(stage(&record, "train")["job_id"].is_string(), "{record}");
    }
    assert_eq!(ws.read("prepare-count.txt").lines().count(), 1);
    assert!(
        !ws.file("model.txt").exists(),
        "the workspace is left as it was"
    );
}
