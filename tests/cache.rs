//! Keys and the store: what reruns, what is restored, and why.

use crate::test::{Ws, chain};

#[test]
fn unchanged_pipeline_is_all_cache_hits() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("ran").len(), 4);
    let rerun = ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("cached").len(), 4);
    assert_eq!(ws.reason("train"), "up to date");
    // Off a terminal, cached stages are counted on the closing line, not listed; `-v` lists them.
    assert_eq!(rerun.stderr.lines().count(), 1, "{}", rerun.stderr);
    assert!(
        rerun.stderr.contains("succeeded: 4 cached"),
        "{}",
        rerun.stderr
    );
    let verbose = ws.ok(&["-v", "run", "p.yaml"]);
    assert_eq!(
        verbose.stderr.matches("up to date").count(),
        4,
        "{}",
        verbose.stderr
    );
}

#[test]
fn param_change_reruns_stage_and_dependents_only() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    let status = ws.ok(&["status", "p.yaml", "--set", "lr=0.0005"]).stdout;
    assert!(status.contains("param lr 0.001 -> 0.0005"), "{status}");
    assert!(status.contains("upstream `train` will run"), "{status}");
    ws.ok(&["run", "p.yaml", "--set", "lr=0.0005"]);
    assert_eq!(ws.with_status("ran"), ["train", "evaluate"]);
    assert_eq!(ws.with_status("cached"), ["prepare", "other"]);
    assert_eq!(ws.reason("train"), "param lr 0.001 -> 0.0005");
    assert!(ws.read("model.txt").starts_with("lr=0.0005"));
    // Going back to the old value is a cache hit that restores the old outputs.
    ws.ok(&["run", "p.yaml"]);
    assert!(ws.with_status("ran").is_empty());
    assert!(ws.read("model.txt").starts_with("lr=0.001"));
}

#[test]
fn touched_dep_with_same_bytes_does_not_rerun() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    ws.write("data/raw/a.txt", "abc\n");
    ws.ok(&["run", "p.yaml"]);
    assert!(ws.with_status("ran").is_empty(), "{:?}", ws.statuses());
}

#[test]
fn edited_folder_dep_reruns_and_is_explained_by_file_count() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    ws.write("data/raw/a.txt", "xyz\n")
        .write("data/raw/c.txt", "new\n");
    let status = ws.ok(&["status", "p.yaml"]).stdout;
    assert!(
        status.contains("dep data/raw changed: 1 file modified, 1 file added"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ws.ok(&["status", "p.yaml", "--json"]).stdout).unwrap();
    assert_eq!(json["stages"][0]["status"], "will run");
    assert_eq!(json["stages"][3]["status"], "up to date");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("ran"), ["prepare", "train", "evaluate"]);
    assert_eq!(ws.read("clean.txt"), "XYZ\ndef\n");
}

#[test]
fn early_cutoff_stops_a_rerun_from_spreading() {
    let ws = Ws::new();
    ws.write("in.txt", "line1\nline2\n").write(
        "p.yaml",
        "stages:\n  first:\n    cmd: head -n 1 in.txt > first.txt\n    deps: [in.txt]\n    outs: [first.txt]\n  second:\n    cmd: cat first.txt first.txt > second.txt\n    deps: [first.txt]\n    outs: [second.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    ws.write("in.txt", "line1\nchanged\n");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("ran"), ["first"]);
    assert_eq!(ws.with_status("cached"), ["second"]);
}

#[test]
fn deleted_or_edited_outputs_are_restored_without_running() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    let model = ws.read("model.txt");
    std::fs::remove_file(ws.file("model.txt")).unwrap();
    ws.write("clean.txt", "tampered\n");
    let status = ws.ok(&["status", "p.yaml"]).stdout;
    assert!(status.contains("will restore"), "{status}");
    ws.ok(&["run", "p.yaml"]);
    assert!(ws.with_status("ran").is_empty(), "{:?}", ws.statuses());
    assert_eq!(ws.read("model.txt"), model);
    assert_eq!(ws.read("clean.txt"), "ABC\ndef\n");
    assert_eq!(ws.reason("train"), "restored from the cache");
}

#[test]
fn identical_files_are_stored_once() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    cmd: echo same > a.txt\n    outs: [a.txt]\n  b:\n    cmd: mkdir -p d && echo same > d/x && echo same > d/y\n    outs: [d]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let objects: Vec<_> = walk(&ws.file(".pipe/objects"));
    assert_eq!(objects.len(), 1, "{objects:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn force_reruns_the_named_stage_or_all() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    ws.ok(&["run", "p.yaml", "--force", "train"]);
    assert_eq!(
        ws.with_status("ran"),
        ["train"],
        "same output, so evaluate is cut off"
    );
    assert!(ws.reason("train").starts_with("forced"));
    ws.ok(&["run", "p.yaml", "--force"]);
    assert_eq!(ws.with_status("ran").len(), 4);
}

#[test]
fn targets_run_only_what_they_need_and_dry_run_runs_nothing() {
    let ws = chain();
    let dry = ws.ok(&["run", "p.yaml", "train", "--dry-run"]).stdout;
    assert!(
        dry.contains("prepare") && dry.contains("train") && !dry.contains("other"),
        "{dry}"
    );
    assert!(!ws.file("clean.txt").exists() && !ws.file("runs").exists());
    ws.ok(&["run", "p.yaml", "train"]);
    assert_eq!(ws.with_status("ran"), ["prepare", "train"]);
    assert!(!ws.file("other.txt").exists());
    let unknown = ws.pipe(&["run", "p.yaml", "trian"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no stage `trian`")
            && unknown.stderr.contains("did you mean `train`?"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn foreach_and_matrix_expand_and_set_sweeps_a_list() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        r#"
params:
  models: [cnn, mlp]
stages:
  fit:
    foreach: ${params.models}
    do:
      cmd: echo ${item} > fit-${item}.txt
      outs:
        - fit-${item}.txt
  grid:
    matrix:
      lr: [1, 2]
      opt: [sgd, adam]
    cmd: echo ${item.opt} ${item.lr} > grid-${item.opt}-${item.lr}.txt
    outs:
      - grid-${item.opt}-${item.lr}.txt
  table:
    foreach:
      small: 8
      large: 64
    do:
      cmd: echo ${key}=${item} > size-${key}.txt
      outs:
        - size-${key}.txt
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    let names: Vec<String> = ws.statuses().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "fit@cnn",
            "fit@mlp",
            "grid@1-sgd",
            "grid@1-adam",
            "grid@2-sgd",
            "grid@2-adam",
            "table@large",
            "table@small"
        ]
    );
    assert_eq!(ws.read("grid-adam-2.txt"), "adam 2\n");
    assert_eq!(ws.read("size-small.txt"), "small=8\n");
    ws.ok(&["run", "p.yaml", "fit", "--set", "models=[cnn, rnn]"]);
    assert_eq!(ws.with_status("ran"), ["fit@rnn"]);
    assert_eq!(ws.with_status("cached"), ["fit@cnn"]);
}

#[test]
fn set_values_are_typed() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "params:\n  train: {epochs: 1, lr: 0.1}\n  flags: []\nstages:\n  s:\n    cmd: echo ${params.train.epochs} ${params.train.lr} ${params.flags.1} > out.txt\n    outs: [out.txt]\n",
    );
    // `flags.1` does not exist until the list is set.
    let bad = ws.pipe(&["run", "p.yaml"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    ws.ok(&[
        "run",
        "p.yaml",
        "--set",
        "train.epochs=5",
        "--set",
        "train.lr=1e-4",
        "--set",
        "flags=[a,b]",
    ]);
    assert_eq!(ws.read("out.txt"), "5 0.0001 b\n");
    let record = ws.latest();
    assert_eq!(record["params"]["train"]["epochs"], 5);
    assert_eq!(record["params"]["flags"], serde_json::json!(["a", "b"]));
}

#[test]
fn always_changed_runs_every_time_but_dependents_are_cut_off() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  fetch:\n    cmd: echo fixed > f.txt\n    outs: [f.txt]\n    always_changed: true\n  use:\n    cmd: cat f.txt > u.txt\n    deps: [f.txt]\n    outs: [u.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("ran"), ["fetch"]);
    assert_eq!(ws.with_status("cached"), ["use"]);
}

#[test]
fn frozen_stage_is_not_run_and_its_outputs_are_used() {
    let ws = Ws::new();
    ws.write("given.txt", "given\n").write(
        "p.yaml",
        "stages:\n  make:\n    cmd: exit 1\n    outs: [given.txt]\n    frozen: true\n  use:\n    cmd: cat given.txt > u.txt\n    deps: [given.txt]\n    outs: [u.txt]\n",
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(
        ws.statuses(),
        [
            ("make".into(), "skipped".into()),
            ("use".into(), "ran".into())
        ]
    );
    assert_eq!(ws.reason("make"), "frozen");
}

#[test]
fn dvc_stages_block_runs_unchanged_with_params_yaml_and_wdir() {
    let ws = Ws::new();
    ws.write("params.yaml", "train:\n  epochs: 2\n")
        .write("src/in.txt", "hello\n")
        .write(
            "dvc.yaml",
            r#"stages:
  prepare:
    wdir: src
    cmd:
      - mkdir -p ../out
      - cp in.txt ../out/prepared.txt
    deps:
      - in.txt
    outs:
      - ../out/prepared.txt
  train:
    cmd: cat out/prepared.txt > model.txt
    deps:
      - out/prepared.txt
    params:
      - train.epochs
    outs:
      - model.txt:
          cache: true
          persist: false
"#,
        );
    ws.ok(&["run", "dvc.yaml"]);
    assert_eq!(ws.read("model.txt"), "hello\n");
    ws.write("params.yaml", "train:\n  epochs: 3\n");
    ws.ok(&["run", "dvc.yaml"]);
    assert_eq!(ws.with_status("ran"), ["train"]);
    assert_eq!(ws.reason("train"), "param params.yaml:train.epochs 2 -> 3");
    // Values a YAML 1.1 reader (PyYAML, what most training scripts use) reads differently rerun the
    // stage even where YAML 1.2 reads them alike: `1e-3` is a string to PyYAML, `yes` a boolean.
    ws.write(
        "dvc.yaml",
        &ws.read("dvc.yaml")
            .replace("- train.epochs\n", "- train.epochs\n      - train.lr\n"),
    );
    for (before, after, reason) in [
        (
            "lr: 0.001",
            "lr: 1e-3",
            "param params.yaml:train.lr 0.001 -> 1e-3",
        ),
        (
            "lr: yes",
            "lr: \"yes\"",
            "param params.yaml:train.lr yes -> \"yes\"",
        ),
    ] {
        ws.write("params.yaml", &format!("train:\n  epochs: 3\n  {before}\n"));
        ws.ok(&["run", "dvc.yaml"]);
        ws.write("params.yaml", &format!("train:\n  epochs: 3\n  {after}\n"));
        ws.ok(&["run", "dvc.yaml"]);
        assert_eq!(ws.with_status("ran"), ["train"], "{before} -> {after}");
        assert_eq!(ws.reason("train"), reason);
    }
}

#[test]
fn builtin_manifest_stage_runs_and_is_cached() {
    let ws = Ws::new();
    ws.write("data/fractured/a.png", "A").write("data/not fractured/b.png", "B").write(
        "p.yaml",
        "stages:\n  ingest:\n    uses: manifest\n    with:\n      source: data\n      table: tables/manifest.csv\n      label_from_parent: true\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let csv = ws.read("tables/manifest.csv");
    assert!(
        csv.starts_with("path,bytes,blake3,label\nfractured/a.png,1,"),
        "{csv}"
    );
    assert!(csv.contains("not fractured/b.png,1,"), "{csv}");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("cached"), ["ingest"]);
    ws.ok(&["run", "p.yaml", "--set", "ingest.extensions=[jpg]"]);
    assert_eq!(ws.reason("ingest"), r#"setting extensions [] -> ["jpg"]"#);
    assert_eq!(ws.read("tables/manifest.csv"), "path,bytes,blake3,label\n");
}

#[test]
fn metrics_files_go_into_the_run_record() {
    let ws = chain();
    ws.ok(&["run", "p.yaml"]);
    let record = ws.latest();
    assert_eq!(record["metrics"]["evaluate"]["accuracy"], 0.75);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["format_version"], 1);
    assert_eq!(record["pipeline"], "p.yaml");
}

#[test]
fn links_in_outputs_are_kept_inside_and_refused_when_they_lead_out() {
    let ws = Ws::new();
    ws.write("secret.txt", "not for the store\n").write(
        "p.yaml",
        r#"stages:
  model:
    cmd: mkdir -p out && echo weights > out/model.bin && ln -sfn model.bin out/latest
    outs: [out]
  leak:
    cmd: mkdir -p leaked && ln -sfn ../secret.txt leaked/copy
    outs: [leaked]
"#,
    );
    ws.fails(
        &["run", "p.yaml"],
        1,
        &["leaked/copy is a symbolic link to `../secret.txt`, outside its output"],
    );
    assert_eq!(ws.store_entries("leak"), 0);
    std::fs::remove_dir_all(ws.file("out")).unwrap();
    ws.pipe(&["run", "p.yaml", "model"]);
    assert_eq!(ws.with_status("cached"), ["model"]);
    let link = std::fs::read_link(ws.file("out/latest")).expect("restored as a link");
    assert_eq!(link, std::path::Path::new("model.bin"));
    assert_eq!(ws.read("out/latest"), "weights\n");
}
