//! Sweeps: one run per combination of the axes, shared stages done once, failures recorded while the
//! others finish, Ctrl-C cancelling what is left, and the runs grouped by a param.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::test::Ws;

/// A 3-stage pipeline: `prepare` does not read the swept params and counts its runs (in a file of
/// the workspace, which every run's sandbox links to: [`sweep_workspace`] makes it); `train` fails
/// for seed 2 when `fail_on` is 2, and sleeps `pause` seconds for seed 2.
const PIPELINE: &str = r#"
params:
  seed: 1
  lr: 0.1
  fail_on: 0
  pause: 0
stages:
  prepare:
    cmd: echo x >> prepare-count.txt && echo data > data.txt
    outs: [data.txt]
  train:
    cmd: test ${params.seed} != ${params.fail_on} && if [ ${params.seed} = 2 ]; then sleep ${params.pause}; fi && echo "${params.seed} ${params.lr}" > model.txt
    deps: [data.txt]
    outs: [model.txt]
  evaluate:
    cmd: >-
      awk 'BEGIN { printf "{\"accuracy\": %.4f}", ${params.seed} / 10 + ${params.lr} }' > metrics.json
    deps: [model.txt]
    metrics: [metrics.json]
"#;

/// A workspace with [`PIPELINE`] as `p.yaml` and an empty run count.
fn sweep_workspace() -> Ws {
    let ws = Ws::new();
    ws.write("p.yaml", PIPELINE);
    ws.write("prepare-count.txt", "");
    ws
}

/// The newest sweep's record.
fn sweep_record(ws: &Ws) -> Value {
    std::fs::read_dir(ws.file("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sweep-")
        })
        .filter_map(|dir| std::fs::read_to_string(dir.join("sweep.json")).ok())
        .map(|text| serde_json::from_str::<Value>(&text).unwrap())
        .max_by_key(|sweep| sweep["started_at"].as_str().unwrap_or_default().to_string())
        .expect("a sweep record")
}

/// Whether a sweep record exists (a detached sweep writes its own a moment after the command returns).
fn has_sweep(ws: &Ws) -> bool {
    std::fs::read_dir(ws.file("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("sweep.json").exists())
}

fn statuses(sweep: &Value) -> Vec<String> {
    sweep["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_grid_runs_the_shared_stage_once_and_groups_by_a_param() {
    let ws = sweep_workspace();
    let args = [
        "run",
        "p.yaml",
        "--sweep",
        "seed=1..3",
        "--sweep",
        "lr=0.1,0.01",
    ];
    let run = ws.ok(&args);
    assert_eq!(ws.read("prepare-count.txt").lines().count(), 1);
    let sweep = sweep_record(&ws);
    assert_eq!(statuses(&sweep), ["succeeded"; 6]);
    assert_eq!(
        sweep["runs"][1]["values"],
        serde_json::json!({"seed": 1, "lr": 0.01})
    );
    // Grouped by seed over lr: seed 1 has 0.2 and 0.11: mean 0.155, sd 0.0636.
    assert!(
        run.stdout.contains("0.155 ± 0.064 [0.110-0.200]"),
        "{}",
        run.stdout
    );
    let id = sweep["id"].as_str().unwrap();
    let by_lr = ws.ok(&["compare", id, "--group-by", "lr"]).stdout;
    // lr 0.1 over seeds 1-3: 0.2, 0.3, 0.4: mean 0.3, sd 0.1.
    assert!(by_lr.contains("0.300 ± 0.100 [0.200-0.400]"), "{by_lr}");
    assert!(by_lr.contains("params that vary: lr, seed"), "{by_lr}");
    let listed: Value =
        serde_json::from_str(&ws.ok(&["runs", "--sweep", "latest", "--json"]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 6);
    let report = ws.read(&format!("runs/{id}/report/sweep.md"));
    assert!(
        report.contains("## By `lr`") && report.contains("## Best run"),
        "{report}"
    );
    assert!(ws.file(&format!("runs/{id}/report/sweep-lr.png")).exists());
    // The same sweep again runs nothing.
    ws.ok(&args);
    assert_eq!(ws.read("prepare-count.txt").lines().count(), 1);
    assert_eq!(ws.with_status("ran"), Vec::<String>::new());
}

#[test]
fn runs_go_at_once_in_sandboxes_and_leave_the_workspace_as_it_was() {
    // Each run's `train` waits for the other's to start: it only succeeds if both are at work at
    // once. Both runs start with `prepare`, which runs once: the second waits on its key.
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        r#"
params:
  seed: 1
stages:
  prepare:
    cmd: echo x >> prepare-count.txt && sleep 0.5 && echo data > data.txt
    outs: [data.txt]
  train:
    cmd: >-
      touch started/${params.seed} &&
      for i in $(seq 300); do [ -e started/1 ] && [ -e started/2 ] && break; sleep 0.1; done &&
      [ -e started/1 ] && [ -e started/2 ] && cat data.txt > model.txt && echo ${params.seed} >> model.txt
    deps: [data.txt]
    outs: [model.txt]
"#,
    );
    ws.write("prepare-count.txt", "");
    std::fs::create_dir(ws.file("started")).unwrap();
    let args = ["run", "p.yaml", "--sweep", "seed=1,2", "--jobs", "2"];
    let run = ws.ok(&args);
    assert!(
        run.stderr.contains("2 runs, up to 2 at once"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("[2/2] "),
        "lines are labelled: {}",
        run.stderr
    );
    assert_eq!(statuses(&sweep_record(&ws)), ["succeeded"; 2]);
    assert_eq!(ws.read("prepare-count.txt").lines().count(), 1);
    assert!(
        !ws.file("data.txt").exists() && !ws.file("model.txt").exists(),
        "the runs' outputs stay in their sandboxes and the store"
    );
    assert_eq!(
        std::fs::read_dir(ws.file(".pipe/tmp/sandboxes"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "no sandbox is left behind"
    );
    // Each run's model is in the store: an ordinary run with its seed restores it.
    ws.ok(&["run", "p.yaml", "--set", "seed=2"]);
    assert_eq!(ws.read("model.txt"), "data\n2\n");
    assert_eq!(ws.with_status("ran"), Vec::<String>::new());
    // Again as a sweep: all hits, and nothing is written that no stage reads.
    ws.ok(&args);
    assert_eq!(ws.reason("prepare"), "in the cache");
}

#[test]
fn the_sweep_report_draws_each_groups_validation_curves_with_a_band() {
    // A stand-in for training writes a history that depends on the seed; the report stage keeps it.
    let ws = Ws::new();
    ws.write("p.yaml", crate::test::HISTORY_PIPELINE);
    ws.ok(&["run", "p.yaml", "--sweep", "lr=1,2", "--sweep", "seed=6,8"]);
    let id = sweep_record(&ws)["id"].as_str().unwrap().to_string();
    let report = ws.read(&format!("runs/{id}/report/sweep.md"));
    assert!(
        report.contains("(sweep-lr-curves.png)") && report.contains("(sweep-seed-curves.png)"),
        "{report}"
    );
    assert!(
        ws.file(&format!("runs/{id}/report/sweep-seed-curves.png"))
            .is_file()
    );
}

#[test]
fn a_failing_combination_is_recorded_and_the_others_finish() {
    let ws = sweep_workspace();
    let run = ws.pipe(&[
        "run",
        "p.yaml",
        "--set",
        "fail_on=2",
        "--sweep",
        "seed=1,2,{a: 1},3",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let sweep = sweep_record(&ws);
    assert_eq!(sweep["status"], "failed");
    assert_eq!(
        statuses(&sweep),
        ["succeeded", "failed", "failed", "succeeded"]
    );
    assert!(
        sweep["runs"][1]["run"].is_string(),
        "a failed stage still has its run"
    );
    let invalid = sweep["runs"][2]["error"].as_str().unwrap();
    assert!(invalid.contains("cannot be part of a command"), "{invalid}");
    assert!(sweep["runs"][2]["run"].is_null());
}

#[test]
fn ctrl_c_cancels_the_rest_and_a_rerun_finishes_only_what_is_missing() {
    use std::os::unix::process::ExitStatusExt;
    let ws = sweep_workspace();
    // One run at a time, so that the third is still queued when the second is interrupted.
    let args = ["run", "p.yaml", "--sweep", "seed=1..3", "--jobs", "1"];
    let mut child = ws
        .command(&[&args[..], &["--set", "pause=30"]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once the first run is recorded, the second sleeps in `train`.
    let start = Instant::now();
    let first_done = || has_sweep(&ws) && statuses(&sweep_record(&ws))[0] == "succeeded";
    while !first_done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first run did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        statuses(&sweep_record(&ws)),
        ["succeeded", "running", "queued"]
    );
    crate::test::signal(child.id() as i32, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(2), "{status:?}");
    let sweep = sweep_record(&ws);
    assert_eq!(sweep["status"], "cancelled");
    assert_eq!(statuses(&sweep), ["succeeded", "cancelled", "cancelled"]);
    ws.ok(&args);
    let sweep = sweep_record(&ws);
    assert_eq!(statuses(&sweep), ["succeeded"; 3]);
    assert_eq!(ws.read("prepare-count.txt").lines().count(), 1);
}

#[test]
fn a_declared_sweep_runs_by_default_and_samples_are_seeded() {
    let ws = Ws::new();
    ws.write("p.yaml", &format!("sweep:\n  seed: 1..4\n{PIPELINE}"));
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(statuses(&sweep_record(&ws)).len(), 4);
    let once = ws.ok(&["run", "p.yaml", "--no-sweep"]);
    assert!(once.stderr.contains("run "), "{}", once.stderr);
    let sample = [
        "run",
        "p.yaml",
        "--sweep",
        "seed=1..10",
        "--sample",
        "3",
        "--seed",
        "5",
        "--dry-run",
    ];
    let listed = ws.ok(&sample);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    let again = ws.ok(&sample);
    assert_eq!(listed.stdout, again.stdout);
    ws.fails(
        &["run", "p.yaml", "--sweep", "seed=9..1"],
        2,
        &["must go up"],
    );
}

#[test]
fn a_detached_sweep_survives_its_terminal_and_can_be_cancelled() {
    use std::os::unix::process::CommandExt;
    let ws = sweep_workspace();
    // The parent in a process group of its own, hung up on as a closing terminal would.
    let mut parent = ws
        .command(&["run", "p.yaml", "--sweep", "seed=1..3", "--detach"])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = parent.id() as i32;
    assert!(parent.wait().unwrap().success());
    crate::test::signal(-group, libc::SIGHUP);
    let start = Instant::now();
    while !has_sweep(&ws) || sweep_record(&ws)["status"] == "running" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sweep did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(statuses(&sweep_record(&ws)), ["succeeded"; 3]);
    let id = sweep_record(&ws)["id"].as_str().unwrap().to_string();
    let status = ws.ok(&["status", "--run", &id]).stdout;
    assert!(
        status.contains("succeeded") && status.contains("seed=2"),
        "{status}"
    );
    assert!(
        ws.read(&format!("runs/{id}/sweep.log"))
            .contains("sweep run 3/3")
    );
    // Detached again, with a slow second run, then cancelled.
    let started = ws.ok(&[
        "run",
        "p.yaml",
        "--sweep",
        "seed=4,2,5",
        "--set",
        "pause=30",
        "--jobs",
        "1",
        "--detach",
    ]);
    let id = started
        .stderr
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let record = ws.file(&format!("runs/{id}/sweep.json"));
    let start = Instant::now();
    let first_done = || {
        std::fs::read_to_string(&record)
            .is_ok_and(|t| statuses(&serde_json::from_str(&t).unwrap())[0] == "succeeded")
    };
    while !first_done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first run did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancelled = ws.ok(&["cancel", &id]).stdout;
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    assert_eq!(
        statuses(&sweep_record(&ws)),
        ["succeeded", "cancelled", "cancelled"]
    );
}
