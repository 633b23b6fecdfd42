//! Killed runs, concurrent runs, and damaged store entries and records: never a wrong output, never a
//! crash, nothing half-written restored.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::test::Ws;

fn wait_for(path: &std::path::Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `pipe ARGS` in `ws`, its output discarded, ready to spawn.
fn quiet(ws: &Ws, args: &[&str]) -> std::process::Command {
    let mut command = ws.command(args);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}

const KILLABLE: &str = r#"
stages:
  first:
    cmd: echo first > first.txt
    outs: [first.txt]
  writer:
    cmd: echo partial > big.txt && touch writing.flag && sleep 30 && echo rest >> big.txt
    deps: [first.txt]
    outs: [big.txt]
"#;

#[test]
fn sigkill_mid_write_then_rerun_reruns_only_that_stage() {
    let ws = Ws::new();
    ws.write("p.yaml", KILLABLE);
    // pipe and its commands in their own process group, killed together as a terminal or a job
    // scheduler would.
    let mut child = quiet(&ws, &["run", "p.yaml"])
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for(&ws.file("writing.flag"));
    let group = child.id() as i32;
    crate::test::signal(-group, libc::SIGKILL);
    child.wait().unwrap();
    assert_eq!(ws.read("big.txt"), "partial\n");
    assert_eq!(
        ws.store_entries("writer"),
        0,
        "a killed stage leaves no store entry"
    );
    // The interrupted run is listed as such.
    let runs = ws.ok(&["runs"]).stdout;
    assert!(runs.contains("interrupted"), "{runs}");
    std::fs::remove_file(ws.file("writing.flag")).unwrap();
    ws.write("p.yaml", &KILLABLE.replace("sleep 30", "true"));
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("cached"), ["first"]);
    assert_eq!(ws.with_status("ran"), ["writer"]);
    assert_eq!(ws.read("big.txt"), "partial\nrest\n");
}

/// The stage's command leaves its shell's pid, then after a pause writes the output it was asked to.
const ORPHANABLE: &str = r#"
params:
  pause: 0
  text: new
stages:
  slow:
    cmd: echo $$ > shell.pid && sleep ${params.pause} && echo ${params.text} > out.txt
    outs: [out.txt]
"#;

#[test]
fn sigkill_of_pipe_alone_leaves_no_command_writing_under_the_next_run() {
    let ws = Ws::new();
    ws.write("p.yaml", ORPHANABLE);
    // Only pipe dies, as with the OOM killer or `kill -9 <pid>`: its command is not signalled. Its
    // pause outlasts the rerun's start even on a loaded machine (3 s did not, once, in the full
    // suite, nor 8 s once the remote-cache tests ran beside it).
    let mut child = quiet(
        &ws,
        &["run", "p.yaml", "--set", "pause=20", "--set", "text=stale"],
    )
    .spawn()
    .unwrap();
    wait_for(&ws.file("shell.pid"));
    let started = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let shell = ws.read("shell.pid").trim().to_string();
    let shell = std::path::Path::new("/proc").join(shell);
    let rerun = ws.ok(&["run", "p.yaml"]);
    assert!(
        rerun
            .stderr
            .contains("slow: its command from an earlier pipe that died")
            && rerun.stderr.contains("ended it with SIGTERM"),
        "{}",
        rerun.stderr
    );
    let record = ws.latest();
    assert_eq!(record["status"], "succeeded");
    assert_eq!(ws.with_status("ran"), ["slow"]);
    assert!(
        record["warnings"][0]
            .as_str()
            .unwrap()
            .contains("process group")
    );
    // The stale command would have written its output by now; it is gone, and the output is the
    // rerun's.
    std::thread::sleep(Duration::from_secs(21).saturating_sub(started.elapsed()));
    assert_eq!(ws.read("out.txt"), "new\n");
    let state = std::fs::read_to_string(shell.join("stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z "), "{state}");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("cached"), ["slow"]);
}

#[test]
fn ctrl_c_reaches_the_command_in_its_own_group_and_pipe_stops() {
    use std::os::unix::process::ExitStatusExt;
    let ws = Ws::new();
    ws.write("p.yaml", ORPHANABLE);
    let mut child = quiet(&ws, &["run", "p.yaml", "--set", "pause=30"])
        .spawn()
        .unwrap();
    wait_for(&ws.file("shell.pid"));
    // A terminal's Ctrl-C goes to its foreground group, which holds pipe but no longer the command.
    let started = Instant::now();
    crate::test::signal(child.id() as i32, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(2), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "pipe waited for the command"
    );
    let shell = std::path::Path::new("/proc").join(ws.read("shell.pid").trim());
    let state = std::fs::read_to_string(shell.join("stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z "), "{state}");
    assert!(!ws.file("out.txt").exists());
    assert_eq!(ws.latest()["status"], "cancelled");
}

#[test]
fn two_runs_at_once_one_waits_and_both_records_are_consistent() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  slow:\n    cmd: touch started.flag && sleep 1 && echo done > out.txt\n    outs: [out.txt]\n",
    );
    let first = ws
        .command(&["run", "p.yaml"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&ws.file("started.flag"));
    let second = ws.pipe(&["run", "p.yaml"]);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("another pipe run (pid"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("waiting for it to finish"),
        "{}",
        second.stderr
    );
    let runs: serde_json::Value = serde_json::from_str(&ws.ok(&["runs", "--json"]).stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"));
    // The second run waited, so it found the first one's result in the store.
    assert_eq!(runs[0]["stages"]["cached"], 1);
    assert_eq!(ws.read("out.txt"), "done\n");
}

#[test]
fn corrupt_store_object_is_a_warning_and_a_rerun_never_a_wrong_output() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  s:\n    cmd: echo right > out.txt\n    outs: [out.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let hash = blake3::hash(b"right\n").to_hex().to_string();
    let object = ws.file(&format!(".pipe/objects/{}/{hash}", &hash[..2]));
    std::fs::set_permissions(&object, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&object, "wrong\n").unwrap();
    std::fs::remove_file(ws.file("out.txt")).unwrap();
    let run = ws.ok(&["run", "p.yaml"]);
    assert!(
        run.stderr
            .contains("warning: s: store object for `out.txt` is damaged"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.with_status("ran"), ["s"]);
    assert_eq!(ws.read("out.txt"), "right\n");
    // The rerun repaired the store.
    std::fs::remove_file(ws.file("out.txt")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("cached"), ["s"]);
    assert_eq!(ws.read("out.txt"), "right\n");
}

#[test]
fn corrupt_store_entry_is_a_warning_and_a_miss() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  s:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let key = ws.latest()["stages"][0]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let entry = ws.file(&format!(".pipe/stages/{}/{key}.json", &key[..2]));
    let text = std::fs::read_to_string(&entry).unwrap();
    std::fs::write(&entry, &text[..text.len() / 2]).unwrap();
    let run = ws.ok(&["run", "p.yaml"]);
    assert!(run.stderr.contains("is corrupt"), "{}", run.stderr);
    assert_eq!(ws.with_status("ran"), ["s"]);
}

#[test]
fn truncated_run_record_is_skipped_with_a_warning() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  s:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let broken = ws.latest()["id"].as_str().unwrap().to_string();
    ws.ok(&["run", "p.yaml", "--force"]);
    let path = format!("runs/{broken}/run.json");
    let text = ws.read(&path);
    ws.write(&path, &text[..text.len() / 3]);
    let runs = ws.ok(&["runs"]);
    assert!(
        runs.stderr
            .contains(&format!("skipping {}", ws.file(&path).display())),
        "{}",
        runs.stderr
    );
    assert_eq!(
        runs.stdout.lines().count(),
        2,
        "header and the readable run:\n{}",
        runs.stdout
    );
    ws.ok(&["show", "latest"]);
    ws.ok(&["gc"]);
}

#[test]
fn what_a_command_leaves_running_in_the_background_ends_with_its_stage() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  s:\n    cmd: (sleep 2 && echo late > late.txt) & echo ok > out.txt\n    outs: [out.txt]\n",
    );
    let started = Instant::now();
    ws.ok(&["run", "p.yaml"]);
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(started.elapsed()));
    assert!(
        !ws.file("late.txt").exists(),
        "the background job outlived its stage"
    );
    assert_eq!(ws.read("out.txt"), "ok\n");
}
