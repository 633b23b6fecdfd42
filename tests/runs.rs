//! `pipe runs`, `show`, `compare` and `gc` over real run records.

use crate::test::{CHAIN, chain};

#[test]
fn runs_lists_newest_first_with_metrics_and_json() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    ws.ok(&["run", "p.yaml", "--set", "epochs=4"]);
    let table = ws.ok(&["runs"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        &header[..8],
        [
            "ID", "STATUS", "PIPELINE", "STARTED", "SECONDS", "RAN", "CACHED", "FAILED"
        ],
        "{table}"
    );
    assert_eq!(header[8], "EVALUATE.ACCURACY", "{table}");
    let newest: Vec<&str> = lines[1].split_whitespace().collect();
    // The started column holds a date and a time, so columns after it shift by one word.
    assert_eq!(
        (newest[6], newest[7], newest[8]),
        ("1", "3", "0"),
        "{table}"
    );
    assert_eq!(newest[9], "0.7500", "{table}");
    let oldest: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!((oldest[6], oldest[7]), ("4", "0"), "{table}");
    let csv = ws.ok(&["runs", "--csv"]).stdout;
    assert!(
        csv.starts_with("id,status,pipeline,started,seconds,ran,cached,failed,evaluate.accuracy"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3);
    let json: serde_json::Value = serde_json::from_str(&ws.ok(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["metrics"]["evaluate.epochs"], 4.0);
    assert_eq!(
        json[0]["key_metrics"]["evaluate.accuracy"], 0.75,
        "the table's columns"
    );
    assert_eq!(json[1]["stages"]["ran"], 4);
}

#[test]
fn show_resolves_latest_and_prefixes() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    let id = ws.latest()["id"].as_str().unwrap().to_string();
    let show = ws.ok(&["show", &id[..17]]).stdout;
    assert!(
        show.starts_with(&format!("run {id} (succeeded) of p.yaml")),
        "{show}"
    );
    assert!(
        show.contains("evaluate.accuracy") && show.contains("never run"),
        "{show}"
    );
    assert_eq!(ws.ok(&["show", "latest"]).stdout, show);
    let missing = ws.pipe(&["show", "zzz"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no run `zzz`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn compare_shows_differing_params_metric_deltas_and_what_ran() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    let a = ws.latest()["id"].as_str().unwrap().to_string();
    ws.ok(&["run", "p.yaml", "--set", "epochs=5", "--set", "lr=0.01"]);
    let b = ws.latest()["id"].as_str().unwrap().to_string();
    let out = ws.ok(&["compare", &a, &b]).stdout;
    assert!(out.contains("params that differ:"), "{out}");
    let epochs = out
        .lines()
        .find(|l| l.trim_start().starts_with("epochs"))
        .unwrap();
    assert!(epochs.contains('3') && epochs.contains('5'), "{out}");
    assert!(
        !out.lines().any(|l| l.trim_start().starts_with("seed")),
        "{out}"
    );
    assert!(out.contains("5 (+2.0000)"), "{out}");
    assert!(out.contains(&format!("{b}: train, evaluate")), "{out}");
}

#[test]
fn gc_keeps_what_recent_runs_need_and_drops_the_rest() {
    let ws = chain();
    ws.ok(&["run", "p.yaml", "--set", "lr=1"]);
    ws.ok(&["run", "p.yaml", "--set", "lr=2"]);
    ws.ok(&["run", "p.yaml", "--set", "lr=3"]);
    let dry = ws.ok(&["gc", "--keep", "1", "--dry-run"]).stdout;
    // train and evaluate of lr=1 and lr=2 are referenced only by the two runs that go; of their
    // files only the two models differ from what lr=3 keeps.
    assert!(
        dry.starts_with("would remove 2 runs, 4 store entries, 2 objects"),
        "{dry}"
    );
    assert_eq!(
        ws.ok(&["runs", "--json"]).stdout.matches("\"id\"").count(),
        3
    );
    let done = ws.ok(&["gc", "--keep", "1"]).stdout;
    assert!(
        done.starts_with("removed 2 runs, 4 store entries"),
        "{done}"
    );
    ws.ok(&["run", "p.yaml", "--set", "lr=3"]);
    assert!(ws.with_status("ran").is_empty());
    ws.ok(&["run", "p.yaml", "--set", "lr=1"]);
    assert_eq!(ws.with_status("ran"), ["train", "evaluate"]);
}

#[test]
fn everything_under_runs_is_where_the_record_owner_puts_it() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    let first = ws.latest()["id"].as_str().unwrap().to_string();
    ws.ok(&["run", "p.yaml", "--set", "epochs=4"]);
    ws.write(
        "p.yaml",
        &CHAIN.replace("echo other > other.txt", "echo broken >&2; exit 3"),
    );
    ws.fails(&["run", "p.yaml"], 1, &["exited with code 3"]);
    ws.ok(&["status", "p.yaml"]);
    ws.ok(&["compare", "latest", &first]);
    ws.ok(&["show", "latest"]);
    ws.ok(&["gc", "--keep", "2"]);
    ws.assert_runs_follow_layout();
    // A stray file is caught, so the check can fail.
    ws.write("runs/notes.txt", "mine");
    let caught = std::panic::catch_unwind(|| ws.assert_runs_follow_layout());
    assert!(caught.is_err(), "a stray file under runs/ went unnoticed");
}

#[test]
fn the_pipeline_file_is_one_name_however_it_is_typed() {
    let ws = chain();
    ws.ok(&["run", "./p.yaml"]);
    assert_eq!(ws.latest()["pipeline"], "p.yaml");
    let absolute = ws.file("p.yaml").display().to_string();
    // The state saved by `./p.yaml` explains `p.yaml`'s and the absolute path's changes.
    for typed in ["p.yaml", absolute.as_str(), "data/../p.yaml"] {
        let status = ws.ok(&["status", typed, "--set", "lr=0.01"]).stdout;
        assert!(
            status.contains("param lr 0.001 -> 0.01"),
            "{typed}: {status}"
        );
    }
}

#[test]
fn a_stage_state_that_cannot_be_saved_is_an_io_error() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    // `.pipe/state` as a file: the run's stages work, but their state cannot be written.
    std::fs::remove_dir_all(ws.file(".pipe/state")).unwrap();
    ws.write(".pipe/state", "not a folder");
    ws.fails(&["run", "p.yaml", "--set", "lr=0.01"], 3, &["stage state"]);
}

#[test]
fn output_into_a_closed_pipe_ends_pipe_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    for args in [&["stages"][..], &["runs", "--csv"], &["runs", "--json"]] {
        // The reader is gone before pipe writes, as `pipe stages | head -0` would leave it. (Closing
        // it after the start raced: a fast pipe could write everything into the pipe's buffer first.)
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = ws
            .command(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        // Ended by pipe itself, with the status a shell gives a tool that SIGPIPE ended: pipe
        // ignores the signal so that a dropped connection to a remote is an error it reports.
        assert_eq!(out.status.signal(), None, "{args:?}: {:?}", out.status);
        assert_eq!(
            out.status.code(),
            Some(128 + libc::SIGPIPE),
            "{args:?}: {:?}",
            out.status
        );
    }
}
