//! Every invalid pipeline in `tests/fixtures/invalid/` gives exit code 2 and exactly the diagnostics in
//! the `.stderr` file beside it (file, line, column, the line itself, a hint). Run with
//! `UPDATE_SNAPSHOTS=1` to rewrite the expectations after an intended change, then review the diff.

use std::path::Path;

use crate::test::Ws;

#[test]
fn invalid_pipelines_match_their_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut failures = Vec::new();
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 15, "fixtures missing");
    for fixture in fixtures {
        let name = fixture.file_name().unwrap().to_str().unwrap().to_string();
        let ws = Ws::new();
        ws.write(&name, &std::fs::read_to_string(&fixture).unwrap());
        let run = ws.pipe(&["status", &name]);
        if run.code != 2 {
            failures.push(format!(
                "{name}: exit code {} (expected 2)\n{}",
                run.code, run.stderr
            ));
            continue;
        }
        let expected_path = fixture.with_extension("stderr");
        if update {
            std::fs::write(&expected_path, &run.stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if run.stderr != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}\n--- got\n{}",
                run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn unknown_set_key_is_refused_with_a_suggestion() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "params:\n  train:\n    epochs: 3\nstages:\n  s:\n    cmd: echo ${params.train.epochs}\n",
    );
    let run = ws.pipe(&["run", "p.yaml", "--set", "train.epoch=5"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("`--set train.epoch`: no param or stage setting `train.epoch`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `train.epochs`?"),
        "{}",
        run.stderr
    );
    let run = ws.pipe(&["run", "p.yaml", "--set", "novalue"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("`novalue` is not KEY=VALUE"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_pipeline_file_is_one_clear_error() {
    let ws = Ws::new();
    let run = ws.pipe(&["run", "nope.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("cannot read pipeline `nope.yaml`: No such file"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_setting_outside_its_declared_range_is_refused_when_the_pipeline_loads() {
    // The flagship, with a width no MobileNetV2 here can have: refused with the line that sets it,
    // before any stage runs (nothing is generated, nothing recorded).
    let ws = Ws::new();
    crate::pipelines::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
    let run = ws.fails(
        &["run", "pipelines/fracture.yaml", "--set", "model.width=5"],
        2,
        &[
            "`width` must be from 0.1 to 2, not 5",
            "--> pipelines/fracture.yaml:",
        ],
    );
    assert!(!run.stderr.contains("ran "), "{}", run.stderr);
    assert!(!ws.file("runs").exists() && !ws.file("data").exists());
}

#[test]
fn outputs_that_would_overwrite_the_store_records_or_pipeline_are_refused() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  s:\n    cmd: echo hi > out.txt\n    outs:\n      - out.txt\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let entries_before = ws.store_entries("s");
    for (out, what) in [
        (".pipe", "would overwrite the store"),
        (".pipe/stages", "would overwrite the store"),
        ("runs", "would overwrite the runs folder"),
        ("p.yaml", "would overwrite the pipeline file"),
        (
            "params.yaml",
            "would overwrite the params file `params.yaml`",
        ),
        (".", "is not inside the workspace"),
    ] {
        ws.write(
            "bad.yaml",
            &format!(
                "stages:\n  wipe:\n    cmd: echo gone\n    params:\n      - lr\n    outs:\n      - {out}\n"
            ),
        );
        ws.write("params.yaml", "lr: 0.1\n");
        ws.write(
            "p.yaml",
            &format!("stages:\n  w:\n    cmd: 'true'\n    outs:\n      - {out}\n"),
        );
        let file = if out == "params.yaml" {
            "bad.yaml"
        } else {
            "p.yaml"
        };
        ws.fails(&["run", file], 2, &[what, &format!("--> {file}:")]);
    }
    // Nothing was deleted: the store still has its entry, the records are still there.
    assert_eq!(ws.store_entries("s"), entries_before);
    assert!(ws.file("runs").is_dir());
    // Another store folder is protected the same way.
    ws.write(
        "p.yaml",
        "stages:\n  w:\n    cmd: 'true'\n    outs:\n      - cache/x\n",
    );
    ws.fails(
        &["--cache-dir", "cache", "run", "p.yaml"],
        2,
        &["would overwrite the store"],
    );
}

#[test]
fn foreach_keys_that_cannot_name_a_stage_are_refused() {
    for key in ["a/b", "\"line\\nbreak\""] {
        let ws = Ws::new();
        ws.write(
            "p.yaml",
            &format!(
                "stages:\n  s:\n    foreach:\n      ok: 1\n      {key}: 2\n    do:\n      cmd: echo ${{item}}\n"
            ),
        );
        ws.fails(
            &["status", "p.yaml"],
            2,
            &["cannot be part of a stage name", "--> p.yaml:4:"],
        );
        assert!(!ws.file("runs").exists());
    }
}

#[test]
fn a_missing_dep_matters_only_to_the_stages_a_run_needs() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    cmd: echo a > a.txt\n    outs:\n      - a.txt\n  b:\n    cmd: cat weights.bin a.txt > b.txt\n    deps:\n      - weights.bin\n      - a.txt\n    outs:\n      - b.txt\n  c:\n    cmd: echo c > c.txt\n    outs:\n      - c.txt\n    frozen: false\n",
    );
    // `a` needs nothing missing: it runs although `b` could not.
    ws.ok(&["run", "p.yaml", "a"]);
    assert_eq!(ws.read("a.txt"), "a\n");
    ws.ok(&["status", "p.yaml", "a"]);
    // The whole pipeline, or `b`, needs the missing file: refused before anything runs.
    for args in [&["run", "p.yaml"][..], &["run", "p.yaml", "b"]] {
        ws.fails(
            args,
            2,
            &[
                "dep `weights.bin` does not exist and no stage writes it",
                "--> p.yaml:9:9",
            ],
        );
    }
    // Everything else is still checked for every stage.
    ws.write(
        "p.yaml",
        &ws.read("p.yaml").replace("frozen: false", "frozen: maybe"),
    );
    ws.fails(&["run", "p.yaml", "a"], 2, &["frozen"]);
}
