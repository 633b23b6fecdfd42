//! The scheduler: parallel stages, failures, `--keep-going`, and errors from stages that misbehave.

use crate::test::Ws;

const FAN: &str = r#"
stages:
  good:
    cmd: echo good > good.txt
    outs: [good.txt]
  bad:
    cmd: echo "about to fail" >&2 && echo "detail line" >&2 && exit 3
    outs: [bad.txt]
  after_bad:
    cmd: cat bad.txt > after.txt
    deps: [bad.txt]
    outs: [after.txt]
  slow:
    cmd: sleep 0.3 && echo slow > slow.txt
    outs: [slow.txt]
"#;

#[test]
fn failing_stage_reports_exit_code_and_stderr_and_stops_dependents() {
    let ws = Ws::new();
    ws.write("p.yaml", FAN);
    let run = ws.pipe(&["run", "p.yaml", "--jobs", "1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("command `echo \"about to fail\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("exited with code 3"), "{}", run.stderr);
    assert!(
        run.stderr.contains("about to fail\n") && run.stderr.contains("detail line"),
        "{}",
        run.stderr
    );
    let record = ws.latest();
    assert_eq!(record["status"], "failed");
    let bad = &record["stages"][1];
    assert_eq!(
        (bad["status"].as_str(), bad["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(ws.reason("after_bad"), "upstream `bad` failed");
    // Without --keep-going, nothing new starts after the failure (one job: `slow` had not started).
    assert_eq!(ws.reason("slow"), "run stopped after `bad` failed");
    assert_eq!(ws.store_entries("bad"), 0, "a failed stage commits nothing");
    assert_eq!(ws.store_entries("good"), 1);
}

#[test]
fn keep_going_finishes_other_branches_and_they_stay_cached() {
    let ws = Ws::new();
    ws.write("p.yaml", FAN);
    let run = ws.pipe(&["run", "p.yaml", "--keep-going", "--jobs", "1"]);
    assert_eq!(run.code, 1);
    assert_eq!(ws.with_status("ran"), ["good", "slow"]);
    assert_eq!(ws.with_status("skipped"), ["after_bad"]);
    ws.write(
        "p.yaml",
        &FAN.replace("&& exit 3", "&& echo fixed > bad.txt"),
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("cached"), ["good", "slow"]);
    assert_eq!(ws.with_status("ran"), ["bad", "after_bad"]);
}

#[test]
fn independent_stages_run_in_parallel() {
    // Each stage waits for the other to have started: only parallel execution finishes.
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        r#"
stages:
  a:
    cmd: touch a.started; for i in $(seq 100); do [ -f b.started ] && break; sleep 0.05; done; [ -f b.started ] && echo a > a.txt
    outs: [a.txt]
  b:
    cmd: touch b.started; for i in $(seq 100); do [ -f a.started ] && break; sleep 0.05; done; [ -f a.started ] && echo b > b.txt
    outs: [b.txt]
"#,
    );
    ws.ok(&["run", "p.yaml", "--jobs", "2"]);
    assert_eq!(ws.with_status("ran"), ["a", "b"]);
}

#[test]
fn output_the_command_did_not_create_is_a_clear_error() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  s:\n    cmd: echo hi\n    outs: [missing.txt]\n",
    );
    let run = ws.pipe(&["run", "p.yaml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("output `missing.txt` of stage `s` was not created by the stage"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.store_entries("s"), 0);
}

#[test]
fn unwritable_output_folder_is_a_clear_error() {
    let ws = Ws::new();
    ws.write("blocker", "a file where a folder should be")
        .write(
            "p.yaml",
            "stages:\n  s:\n    cmd: echo hi > blocker/out.txt\n    outs: [blocker/out.txt]\n",
        );
    let run = ws.pipe(&["run", "p.yaml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("cannot create the folder of output `blocker/out.txt`"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.read("blocker"), "a file where a folder should be");
}

#[test]
fn stage_logs_are_kept_per_run() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  s:\n    cmd: echo to-stdout; echo to-stderr >&2; touch o\n    outs: [o]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let id = ws.latest()["id"].as_str().unwrap().to_string();
    assert_eq!(ws.read(&format!("runs/{id}/logs/s.stdout")), "to-stdout\n");
    assert_eq!(ws.read(&format!("runs/{id}/logs/s.stderr")), "to-stderr\n");
}
