//! The pipelines shipped in `pipelines/` run on a fresh checkout and rerun nothing when unchanged.

use serde_json::Value;

use crate::test::Ws;

/// Copies a folder tree.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn fracture_pipeline_runs_end_to_end_and_then_only_what_changed() {
    let ws = Ws::new();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
    let run = |extra: &[&str]| {
        ws.ok(&[
            &["run", "pipelines/fracture.yaml"],
            crate::model::SMALL,
            extra,
        ]
        .concat())
    };
    run(&[]);
    assert_eq!(
        ws.with_status("ran"),
        [
            "ingest", "validate", "split", "augment", "train", "evaluate", "report"
        ]
    );
    let id = ws.latest()["id"].as_str().unwrap().to_string();
    let report = ws.read(&format!("runs/{id}/report/report.md"));
    assert!(
        report.contains(
            "Group-aware split: no copy of a test image in train was found by either detector"
        ),
        "{report}"
    );
    assert!(report.contains("![Images per split and class](split_counts.png)"));
    let manifest = ws.read("tables/ingest/manifest.csv");
    assert_eq!(manifest.lines().count(), 1 + 2 * 30, "{manifest}");
    let metrics = ws.latest()["metrics"].clone();
    assert_eq!(
        (
            metrics["validate"]["images"].as_u64(),
            metrics["validate"]["excluded"].as_u64()
        ),
        (Some(60), Some(0))
    );
    let split = &metrics["split"];
    let total: u64 = ["train", "val", "test"]
        .iter()
        .map(|s| split["images"][s].as_u64().unwrap())
        .sum();
    assert_eq!(Value::from(total), metrics["validate"]["kept"]);
    assert_eq!(split["leaked_test_images"], 0);
    for preview in ["previews/ingest.png", "previews/augment.png"] {
        let image = image::open(ws.file(preview)).unwrap_or_else(|e| panic!("{preview}: {e}"));
        assert!(image.width() > 100 && image.height() > 100, "{preview}");
    }

    run(&["--set", "split.mode=random"]);
    assert_eq!(
        ws.with_status("ran"),
        ["split", "augment", "train", "evaluate", "report"]
    );
    // Same seed, same data: regenerating gives byte-identical images, so nothing downstream reruns.
    run(&["--set", "split.mode=random", "--force", "ingest"]);
    assert_eq!(ws.with_status("ran"), ["ingest"]);
}

#[test]
fn a_terminal_gets_progress_bars_and_anything_else_plain_lines() {
    let ws = Ws::new();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
    let args = [
        &["run", "pipelines/fracture.yaml", "train"],
        crate::model::SMALL,
    ]
    .concat();
    // Not a terminal (a pipe): one plain line per stage, no bars, no cursor movement.
    let plain = ws.ok(&args).stderr;
    assert!(plain.contains("ran      train"), "{plain}");
    assert!(
        !plain.contains('\r') && !plain.contains('\x1b'),
        "{plain:?}"
    );
    // A terminal: `script` gives pipe a pseudo-terminal (util-linux; skipped where it is missing).
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the terminal half: `script` (util-linux) is not installed");
        return;
    }
    let command = [env!("CARGO_BIN_EXE_pipe")]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--force", "train"])
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(ws.path())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{drawn}");
    assert!(
        drawn.contains("train (steps) ["),
        "no training bar: {drawn:?}"
    );
    assert!(drawn.contains("epoch 1/"), "no epoch in the bar: {drawn:?}");
    assert!(drawn.contains("running: train"), "no run bar: {drawn:?}");
    assert!(drawn.contains("ran      train"), "no stage line: {drawn:?}");
}

#[test]
fn the_folder_pipeline_needs_nothing_beside_the_repository_but_its_data() {
    let ws = Ws::new();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
    // The weights ship with the pipelines; without images it says where they should be.
    ws.fails(
        &["status", "pipelines/fracture-folder.yaml"],
        2,
        &["dep `data/fracture-images` does not exist"],
    );
    ws.write("xrays/fractured/a.png", "")
        .write("xrays/not fractured/b.png", "");
    let plan = ws.ok(&[
        "status",
        "pipelines/fracture-folder.yaml",
        "--set",
        "data=xrays",
    ]);
    assert!(plan.stdout.contains("train"), "{}", plan.stdout);
}
