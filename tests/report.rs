//! Run reports and comparisons, rendered from fixed tables: every PNG the report links exists, decodes,
//! has its size, is not blank and is identical across two renders; the numbers in `report.md` are the
//! ones in `run.json`; `pipe compare` writes `compare.md` with overlaid curves.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use image::{GrayImage, ImageFormat, Luma};
use serde_json::Value;

use crate::test::Ws;

/// A pipeline whose "model" stages copy fixture files, so the report has every input.
const PIPELINE: &str = r#"
params:
  variant: a
stages:
  validate:
    cmd: mkdir -p metrics && cp fixtures/validate.json metrics/validate.json
    deps: [fixtures/validate.json]
    metrics: [metrics/validate.json]
  split:
    cmd: mkdir -p metrics && cp fixtures/split.json metrics/split.json
    deps: [fixtures/split.json]
    metrics: [metrics/split.json]
  train:
    cmd: mkdir -p model && cp fixtures/history_${params.variant}.csv model/history.csv && cp fixtures/train.json model/train.json
    deps: [fixtures]
    outs: [model/history.csv]
    metrics: [model/train.json]
  evaluate:
    cmd: mkdir -p metrics && cp fixtures/evaluate.json metrics/evaluate.json && cp fixtures/predictions.csv model/predictions.csv
    deps: [fixtures, model/history.csv]
    outs: [model/predictions.csv]
    metrics: [metrics/evaluate.json]
  report:
    uses: report
    with:
      validate: metrics/validate.json
      split: metrics/split.json
      history: model/history.csv
      train: model/train.json
      predictions: model/predictions.csv
      evaluate: metrics/evaluate.json
      images: fixtures/images
      title: Fixture report
"#;

fn history(bend: f64) -> String {
    let mut csv = String::from("epoch,train_loss,val_loss,train_accuracy,val_accuracy\n");
    for e in 1..=14 {
        let x = f64::from(e);
        let train = 0.7 / x.sqrt();
        let val = 0.25 + bend * (x - 9.0).powi(2) / 100.0;
        let _ = writeln!(
            csv,
            "{e},{train:.4},{val:.4},{:.4},{:.4}",
            1.0 - train / 1.5,
            0.95 - val / 2.0
        );
    }
    csv
}

fn fixtures() -> Ws {
    let ws = Ws::new();
    ws.write("pipe.yaml", PIPELINE);
    ws.write("fixtures/history_a.csv", &history(0.3));
    ws.write("fixtures/history_b.csv", &history(0.6));
    ws.write(
        "fixtures/train.json",
        r#"{"best_epoch": 9, "stopped_epoch": 14, "model": "MobileNetV2 width 0.35, 96 px (fixture)"}"#,
    );
    ws.write(
        "fixtures/validate.json",
        r#"{"images": 130, "kept": 120, "excluded": 10, "excluded_by_reason": {"truncated": 6, "not_an_image": 4},
            "duplicate_groups": 7, "images_in_duplicate_groups": 16, "exact_copies": 5, "cross_split_duplicates": 0,
            "cross_class_duplicates": 0, "warnings": ["image size differs by class"]}"#,
    );
    ws.write(
        "fixtures/split.json",
        r#"{"mode": "group", "images": {"train": 80, "val": 20, "test": 20}, "leaked_test_images": 0,
            "counts": {"train": {"fractured": 40, "not fractured": 40}, "val": {"fractured": 10, "not fractured": 10},
                       "test": {"fractured": 10, "not fractured": 10}}}"#,
    );
    ws.write(
        "fixtures/evaluate.json",
        r#"{"accuracy": 0.8, "precision": 0.8, "recall": 0.8, "specificity": 0.8, "f1": 0.8,
            "roc_auc": 0.9, "threshold": 0.5, "test_images": 20, "split": "test", "split_mode": "group"}"#,
    );
    let mut predictions = String::from("path,label,probability,split\n");
    for i in 0..20u32 {
        let label = i % 2;
        let probability = if label == 1 {
            0.35 + f64::from(i) * 0.03
        } else {
            0.05 + f64::from(i) * 0.03
        };
        let _ = writeln!(predictions, "img{i}.png,{label},{probability:.3},test");
        let image = GrayImage::from_fn(64, 48, |x, y| Luma([((x * 4 + y * i) % 256) as u8]));
        let path = ws.file(&format!("fixtures/images/img{i}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image.save_with_format(path, ImageFormat::Png).unwrap();
    }
    ws.write("fixtures/predictions.csv", &predictions);
    ws
}

fn report_dir(ws: &Ws, run: &Value) -> std::path::PathBuf {
    ws.file(&format!("runs/{}/report", run["id"].as_str().unwrap()))
}

/// The files `report.md` links to.
fn links(markdown: &str) -> BTreeSet<String> {
    markdown
        .split("](")
        .skip(1)
        .map(|rest| rest.split(')').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_report_links_real_figures_and_repeats_run_json() {
    let ws = fixtures();
    ws.ok(&["run", "pipe.yaml"]);
    let run = ws.latest();
    let dir = report_dir(&ws, &run);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let linked = links(&md);
    let expected: BTreeSet<String> = [
        "training_curves.png",
        "confusion_matrix.png",
        "roc_pr.png",
        "mistakes.png",
        "confident.png",
        "split_counts.png",
        "exclusions.png",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(linked, expected, "{md}");
    for name in &linked {
        let image = image::open(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_luma8();
        let n = image.len() as f64;
        let mean = image.pixels().map(|p| f64::from(p[0])).sum::<f64>() / n;
        let variance = image
            .pixels()
            .map(|p| (f64::from(p[0]) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(variance > 100.0, "{name} is blank");
    }
    assert_eq!(
        image::open(dir.join("training_curves.png"))
            .unwrap()
            .width(),
        1200
    );
    assert_eq!(
        image::open(dir.join("confusion_matrix.png"))
            .unwrap()
            .height(),
        560
    );

    let evaluate = &run["metrics"]["evaluate"];
    for (key, words) in [
        ("accuracy", "accuracy"),
        ("precision", "precision"),
        ("recall", "recall (sensitivity)"),
        ("roc_auc", "ROC AUC"),
    ] {
        let value = evaluate[key].as_f64().unwrap();
        assert!(
            md.contains(&format!("| {words} | {value:.3} |")),
            "{key} {value} not in:\n{md}"
        );
    }
    assert!(md.contains("# Fixture report"));
    assert!(
        md.contains("Model: MobileNetV2 width 0.35, 96 px (fixture)."),
        "{md}"
    );
    assert!(
        md.contains("Group-aware split: no copy of a test image in train was found by the difference hash (the embedding detector did not run)"),
        "{md}"
    );
    assert!(md.contains("| truncated | 6 |"));
    assert!(md.contains("Best epoch (the checkpoint kept): 9."));
    assert!(md.contains("Training stopped early after epoch 14."));
    assert!(md.contains("| report | report | ran |"));

    // Rendering again from the same inputs gives the same bytes.
    ws.ok(&["run", "pipe.yaml", "--force", "report"]);
    let again = report_dir(&ws, &ws.latest());
    assert_ne!(again, dir);
    for name in &linked {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(again.join(name)).unwrap(),
            "{name} differs"
        );
    }
}

#[test]
fn compare_writes_markdown_with_overlaid_curves() {
    let ws = fixtures();
    ws.ok(&["run", "pipe.yaml"]);
    let first = ws.latest()["id"].as_str().unwrap().to_string();
    ws.ok(&["run", "pipe.yaml", "--set", "variant=b"]);
    let second = ws.latest()["id"].as_str().unwrap().to_string();
    let run = ws.ok(&["compare", &first, &second]);
    let dir = ws.file(&format!("runs/compare-{first}-{second}"));
    assert!(run.stdout.contains("compare.md"), "{}", run.stdout);
    let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    assert!(md.contains("| `variant` | `\"a\"` | `\"b\"` |"), "{md}");
    assert!(
        md.contains(&format!("- `{second}`: train, evaluate, report")),
        "{md}"
    );
    assert!(
        md.contains("![Validation loss and accuracy per epoch, one colour per run](curves.png)")
    );
    let curves = image::open(dir.join("curves.png")).unwrap();
    assert_eq!((curves.width(), curves.height()), (1200, 440));
    // `pipe runs` still lists exactly the two runs.
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    // Reports, comparisons, logs and records are all where the record owner puts them.
    ws.assert_runs_follow_layout();
}

#[test]
fn predictions_that_would_make_the_figures_lie_are_refused() {
    let ws = fixtures();
    let mut csv = ws.read("fixtures/predictions.csv");
    csv = csv.replacen("img3.png,1,0.440,test", "img3.png,1,NaN,test", 1);
    ws.write("fixtures/predictions.csv", &csv);
    ws.fails(
        &["run", "pipe.yaml"],
        1,
        &["predictions.csv` row 4: probability must be from 0 to 1, not NaN"],
    );

    // Numbers in the evaluate summary that the predictions do not support are an error, not a report.
    let ws = fixtures();
    ws.write(
        "fixtures/evaluate.json",
        r#"{"accuracy": 0.95, "threshold": 0.5, "split": "test"}"#,
    );
    ws.fails(
        &["run", "pipe.yaml"],
        1,
        &["the evaluate summary says accuracy 0.95"],
    );
    // The failed run still gets a report saying what happened.
    let md = std::fs::read_to_string(report_dir(&ws, &ws.latest()).join("report.md")).unwrap();
    assert!(
        md.contains("The report stage did not run in this run"),
        "{md}"
    );
    assert!(md.contains("| report | report | failed |"), "{md}");
}
