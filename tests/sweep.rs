//! Sweeps: one run per combination of the axes, shared stages done once, failures recorded while the
//! others finish, Ctrl-C cancelling what is left, and the runs grouped by a param.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::test::Ws;

/// A 3-stage pipeline: `prepare` does not read the swept params and counts its runs; `train` fails
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
    let ws = Ws::new();
    ws.write("p.yaml", PIPELINE);
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
    assert!(
        ws.read(&format!("runs/{id}/report/sweep.md"))
            .contains("## By `lr`")
    );
    // The same sweep again runs nothing.
    ws.ok(&args);
    assert_eq!(ws.read("prepare-count.txt").lines().count(), 1);
    assert_eq!(ws.with_status("ran"), Vec::<String>::new());
}

#[test]
fn a_failing_combination_is_recorded_and_the_others_finish() {
    let ws = Ws::new();
    ws.write("p.yaml", PIPELINE);
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
    let ws = Ws::new();
    ws.write("p.yaml", PIPELINE);
    let args = ["run", "p.yaml", "--sweep", "seed=1..3"];
    let mut child = ws
        .command(&[&args[..], &["--set", "pause=30"]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once the first run is recorded, the second sleeps in `train`.
    let start = Instant::now();
    let first_done = || {
        std::fs::read_dir(ws.file("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("sweep-"))
            && statuses(&sweep_record(&ws))[0] == "succeeded"
    };
    while !first_done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first run did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    std::process::Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
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
    let listed = ws.ok(&[
        "run",
        "p.yaml",
        "--sweep",
        "seed=1..10",
        "--sample",
        "3",
        "--seed",
        "5",
        "--dry-run",
    ]);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    let again = ws.ok(&[
        "run",
        "p.yaml",
        "--sweep",
        "seed=1..10",
        "--sample",
        "3",
        "--seed",
        "5",
        "--dry-run",
    ]);
    assert_eq!(listed.stdout, again.stdout);
    ws.fails(
        &["run", "p.yaml", "--sweep", "seed=9..1"],
        2,
        &["must go up"],
    );
}
