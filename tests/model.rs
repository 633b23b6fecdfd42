//! The model stages of the fracture pipeline (train, evaluate) and `pipe predict`, on a small synthetic
//! set at a small input size, so they run in seconds: history and checkpoint are written, the metrics
//! agree with the predictions table, training is deterministic, and predict reproduces evaluate.

use std::path::Path;

use serde_json::Value;

use crate::pipelines::copy_dir;
use crate::test::Ws;

/// A workspace with the shipped pipelines, run once at a small size.
pub fn trained() -> Ws {
    let ws = Ws::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
    ws.ok(&[&["run", "pipelines/fracture.yaml"], SMALL].concat());
    ws
}

/// A small fracture run: 30 images per class at 64 px, a 32 px model, 2 epochs.
pub const SMALL: &[&str] = &[
    "--set",
    "data.images_per_class=30",
    "--set",
    "data.size=64",
    "--set",
    "model.input=32",
    "--set",
    "train.epochs=2",
];

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn train_writes_history_and_checkpoint_and_evaluate_agrees_with_its_predictions() {
    let ws = trained();
    let history = ws.read("tables/train/history.csv");
    assert!(
        history.starts_with("epoch,train_loss,val_loss,train_accuracy,val_accuracy,lr,seconds"),
        "{history}"
    );
    assert_eq!(csv_rows(&history).len(), 2, "one row per epoch");
    assert!(ws.file("models/fracture/model.safetensors").is_file());
    let config: Value = serde_json::from_str(&ws.read("models/fracture/config.json")).unwrap();
    assert_eq!(config["model"]["input"], 32);
    assert_eq!(config["classes"][1], "fractured");

    let run = ws.latest();
    let train = &run["metrics"]["train"];
    assert!(
        train["model"]
            .as_str()
            .unwrap()
            .contains("MobileNetV2 width 1 at 32 px, fine-tuned from `pipelines/weights/mobilenet_v2_1.0_224_quant.tflite`")
    );
    assert!((1..=2).contains(&train["best_epoch"].as_u64().unwrap()));
    let evaluate = &run["metrics"]["evaluate"];
    assert_eq!(evaluate["split"], "test");
    assert_eq!(evaluate["split_mode"], "group");
    assert_eq!(
        evaluate["test_images"],
        run["metrics"]["split"]["images"]["test"]
    );

    // The reported accuracy is what the predictions table gives at the reported threshold.
    let threshold = evaluate["threshold"].as_f64().unwrap();
    let rows = csv_rows(&ws.read("tables/evaluate/predictions.csv"));
    let test: Vec<&Vec<String>> = rows.iter().filter(|r| r[3] == "test").collect();
    let correct = test
        .iter()
        .filter(|r| (r[2].parse::<f64>().unwrap() >= threshold) == (r[1] == "1"))
        .count();
    let accuracy = evaluate["accuracy"].as_f64().unwrap();
    assert!((accuracy - correct as f64 / test.len() as f64).abs() < 1e-9);
    assert!(
        rows.iter().any(|r| r[3] == "val"),
        "validation rows are kept for the threshold"
    );

    // Every headline number has its bootstrap interval, around it, resampling the test split's groups.
    let intervals = &evaluate["intervals"];
    assert_eq!(intervals["resamples"], 2000);
    assert!(intervals["groups"].as_u64().unwrap() <= test.len() as u64);
    for key in ["accuracy", "recall", "specificity", "roc_auc"] {
        let (low, high) = (
            intervals[key]["low"].as_f64().unwrap(),
            intervals[key]["high"].as_f64().unwrap(),
        );
        let value = evaluate[key].as_f64().unwrap();
        assert!(
            low <= value && value <= high && high - low < 1.0,
            "{key}: {intervals}"
        );
    }

    let id = run["id"].as_str().unwrap();
    let report = ws.read(&format!("runs/{id}/report/report.md"));
    assert!(report.contains("MobileNetV2"), "{report}");
    let (low, high) = (
        intervals["accuracy"]["low"].as_f64().unwrap(),
        intervals["accuracy"]["high"].as_f64().unwrap(),
    );
    assert!(
        report.contains(&format!(
            "| accuracy | {accuracy:.3} | {low:.3}-{high:.3} |"
        )),
        "{report}"
    );

    // The run's metrics stream: a row per epoch as it finished, the history's numbers.
    let stream = ws.read(&format!("runs/{id}/logs/train.metrics.jsonl"));
    let rows: Vec<Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{stream}");
    for (row, csv) in rows.iter().zip(csv_rows(&history)) {
        assert_eq!(row["epoch"].to_string(), csv[0]);
        let val_loss: f64 = csv[2].parse().unwrap();
        assert!((row["val_loss"].as_f64().unwrap() - val_loss).abs() < 1e-6);
    }
}

#[test]
fn training_is_deterministic_and_a_param_change_reruns_only_the_model_stages() {
    let ws = trained();
    let first = std::fs::read(ws.file("models/fracture/model.safetensors")).unwrap();
    let history = ws.read("tables/train/history.csv");
    ws.ok(&[
        &["run", "pipelines/fracture.yaml"],
        SMALL,
        &["--force", "train"],
    ]
    .concat());
    let second = std::fs::read(ws.file("models/fracture/model.safetensors")).unwrap();
    assert!(first == second, "same seed, same weights");
    let losses = |h: &str| -> Vec<String> {
        h.lines()
            .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(
        losses(&ws.read("tables/train/history.csv")),
        losses(&history)
    );

    ws.ok(&[
        &["run", "pipelines/fracture.yaml"],
        SMALL,
        &["--set", "train.lr=0.01"],
    ]
    .concat());
    assert_eq!(ws.with_status("ran"), ["train", "evaluate", "report"]);
}

#[test]
fn predict_labels_images_as_evaluate_did() {
    let ws = trained();
    let rows = csv_rows(&ws.read("tables/evaluate/predictions.csv"));
    let picked: Vec<&Vec<String>> = rows.iter().filter(|r| r[3] == "test").take(3).collect();
    let images: Vec<String> = picked
        .iter()
        .map(|r| format!("data/fracture/images/{}", r[0]))
        .collect();
    let args: Vec<&str> = ["predict", "--run", "latest"]
        .into_iter()
        .chain(images.iter().map(String::as_str))
        .collect();
    let out = ws.ok(&args).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, row) in lines.iter().zip(&picked) {
        let fields: Vec<&str> = line.split('\t').collect();
        let expected: f64 = row[2].parse().unwrap();
        let got: f64 = fields[2].parse().unwrap();
        assert!((got - expected).abs() < 1e-3, "{line} vs {row:?}");
        let class = if got >= 0.5 {
            "fractured"
        } else {
            "not fractured"
        };
        assert_eq!(fields[1], class, "{line}");
    }

    // The model comes from the run's store entry, not the workspace's current files.
    std::fs::remove_dir_all(ws.file("models")).unwrap();
    let again = ws.ok(&args).stdout;
    assert_eq!(again, out);

    ws.fails(
        &["predict", "--run", "latest", "no-such.png"],
        2,
        &["`no-such.png`"],
    );
}

#[test]
fn a_damaged_checkpoint_is_an_error_naming_the_file() {
    let ws = trained();
    let good = std::fs::read(ws.file("models/fracture/model.safetensors")).unwrap();
    std::fs::write(ws.file("cut.safetensors"), &good[..good.len() / 2]).unwrap();
    std::fs::write(ws.file("text.safetensors"), "not weights").unwrap();
    let image = ws.file("previews/ingest.png").display().to_string();
    for (file, problem) in [
        ("cut.safetensors", "not a safetensors file"),
        ("text.safetensors", "not a safetensors file"),
    ] {
        ws.fails(
            &["weights", "inspect", file, "--classify", &image],
            2,
            &[&format!("`{file}`"), problem],
        );
    }
}

#[test]
fn training_on_a_gpu_that_is_not_there_is_one_clear_error() {
    let ws = Ws::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
    let args = [
        &["run", "pipelines/fracture.yaml"],
        SMALL,
        &["--set", "train.device=cuda"],
    ]
    .concat();
    // Without the feature the build says how to get it; with it, on a machine without a usable GPU,
    // that there is none and why.
    let expected = if cfg!(feature = "cuda") {
        "`device: cuda`: no usable GPU"
    } else {
        "`device: cuda` needs pipe built with the `cuda` feature"
    };
    let run = ws.pipe(&args);
    if cfg!(feature = "cuda") && run.code == 0 {
        eprintln!("skipped: this machine has a usable GPU, so training on it succeeded");
        return;
    }
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(expected), "{}", run.stderr);
    assert!(
        !run.stderr.contains("panicked"),
        "a missing GPU is an error, not a panic:\n{}",
        run.stderr
    );
}
