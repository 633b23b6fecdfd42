//! The `evaluate` kind: predicts the validation and test images with the trained checkpoint, writes the
//! predictions table, and reports the classification metrics on the named split at the threshold param
//! and at the threshold that maximises Youden's J on validation (chosen without looking at test), with
//! bootstrap 95% intervals that resample the split's groups.

use polars::prelude::{Column, DataFrame};
use serde_json::{Value, json};

use super::Context;
use super::train::CHECKPOINT;
use crate::metrics::{self, Confusion, interval};
use crate::model::dataset::{self, Example, ModelInfo};
use crate::model::{self, checkpoint};
use crate::tables;
use crate::tables::image_rows::{self, ImageRow};

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let threshold = ctx.number("threshold");
    let split = ctx.text("metrics_split");
    let batch = ctx.count("batch")? as usize;
    let model_dir = ctx.path("model");
    let mut net = checkpoint::load(&model_dir.join(CHECKPOINT))?;
    let preprocess = ModelInfo::read(&model_dir)?.preprocess;
    let rows = image_rows::read(&ctx.path("split").join("split.parquet"))?;
    let held_out: Vec<&ImageRow> = rows
        .iter()
        .filter(|r| matches!(r.split.as_deref(), Some("val" | "test")))
        .collect();
    let examples = dataset::load(&held_out, &ctx.path("images"), &preprocess)?;
    let inputs: Vec<Vec<f32>> = examples
        .iter()
        .map(|e| preprocess.tensor(&e.image))
        .collect();
    let probabilities = model::probabilities(&mut net, &inputs, batch);
    tables::write(
        &mut predictions_frame(&examples, &probabilities),
        &ctx.path("predictions"),
        "predictions",
    )?;

    let of = |name: &str| -> (Vec<bool>, Vec<f64>) {
        examples
            .iter()
            .zip(&probabilities)
            .filter(|(e, _)| e.split == name)
            .map(|(e, &p)| (e.label == 1, p))
            .unzip()
    };
    let (labels, scores) = of(split);
    let groups: Vec<&str> = examples
        .iter()
        .filter(|e| e.split == split)
        .map(|e| e.group.as_str())
        .collect();
    anyhow::ensure!(
        !labels.is_empty(),
        "stage `{}`: the `{split}` split has no images",
        ctx.stage
    );
    let (val_labels, val_scores) = of("val");
    let youden = metrics::both_classes(&val_labels)
        .then(|| metrics::youden_threshold(&val_labels, &val_scores));
    let split_mode = match ctx.optional_path("split_summary") {
        Some(path) => crate::util::fsutil::read_json::<Value>(&path)?["mode"].clone(),
        None => Value::Null,
    };
    let mut summary = at_threshold(&labels, &scores, threshold);
    summary["roc_auc"] = json!(
        metrics::both_classes(&labels).then(|| metrics::area(&metrics::roc(&labels, &scores)))
    );
    summary["test_images"] = json!(labels.len());
    summary["split"] = json!(split);
    summary["split_mode"] = split_mode;
    summary["intervals"] = json!(interval::bootstrap(
        &labels,
        &scores,
        &groups,
        threshold,
        interval::RESAMPLES,
        0
    ));
    summary["youden"] = youden.map_or(Value::Null, |t| at_threshold(&labels, &scores, t));
    ctx.log(&format!(
        "{split} split ({} images): {summary}",
        labels.len()
    ));
    ctx.write_json("summary", &summary)
}

/// The metrics of `scores` against `labels` at one threshold.
fn at_threshold(labels: &[bool], scores: &[f64], threshold: f64) -> Value {
    let c = Confusion::at(labels, scores, threshold);
    json!({
        "accuracy": c.accuracy(),
        "precision": c.precision(),
        "recall": c.recall(),
        "specificity": c.specificity(),
        "f1": c.f1(),
        "threshold": threshold,
        "confusion": {"tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn_},
    })
}

fn predictions_frame(examples: &[Example], probabilities: &[f64]) -> DataFrame {
    DataFrame::new(
        examples.len(),
        vec![
            Column::new(
                "path".into(),
                examples.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "label".into(),
                examples.iter().map(|e| e.label).collect::<Vec<_>>(),
            ),
            Column::new("probability".into(), probabilities.to_vec()),
            Column::new(
                "split".into(),
                examples
                    .iter()
                    .map(|e| e.split.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "group".into(),
                examples
                    .iter()
                    .map(|e| e.group.as_str())
                    .collect::<Vec<_>>(),
            ),
        ],
    )
    .expect("equal columns")
}
