//! The report stage's side of a run report: it turns what the pipeline produced (validate and split
//! summaries, augmentation preview, training history, test predictions) into PNG figures and a
//! `figures.json` index in its output folder. Every figure is optional: one whose input is missing is
//! left out, so the report grows as stages land. Same inputs, byte-identical files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::images::decode;
use crate::metrics::{self, Confusion};
use crate::plot::{bars, classification, curves, gallery};
use crate::tables::Table;
use crate::util::fsutil::read_json;

/// Images larger than this are not decoded for the grids of test images.
const GALLERY_MAX_PIXELS: u64 = 100_000_000;

/// What the report stage was given; `None` where the pipeline has no such output (yet).
pub struct Inputs {
    /// Title of the report.
    pub title: String,
    /// Class names by label (0, 1).
    pub classes: [String; 2],
    /// The validate stage's summary JSON.
    pub validate: Option<PathBuf>,
    /// The split stage's summary JSON.
    pub split: Option<PathBuf>,
    /// Preview PNGs to show as they are (ingest contact sheet, augmentation grid): name, caption, file.
    pub previews: Vec<(String, String, PathBuf)>,
    /// Training history table: epoch, train_loss, val_loss, train_accuracy, val_accuracy.
    pub history: Option<PathBuf>,
    /// Training summary JSON: `best_epoch`, `stopped_epoch` (when stopped early).
    pub train: Option<PathBuf>,
    /// Predictions table: path, label, probability[, split].
    pub predictions: Option<PathBuf>,
    /// The evaluate stage's summary JSON (`threshold`, `split`).
    pub evaluate: Option<PathBuf>,
    /// The images folder the predictions' paths are relative to.
    pub images: Option<PathBuf>,
    /// Threshold when no evaluate summary says.
    pub threshold: f64,
    /// Images in each grid of test images.
    pub gallery: usize,
}

/// Renders every figure it has inputs for into `out`, and `figures.json` listing them with captions.
pub fn render(inputs: &Inputs, out: &Path) -> anyhow::Result<()> {
    let mut figures: BTreeMap<String, String> = BTreeMap::new();
    let mut facts = serde_json::Map::new();
    if let Some(path) = &inputs.split {
        let split = read_json::<Value>(path)?;
        if let Some(counts) = split["counts"].as_object() {
            let categories: Vec<String> = ["train", "val", "test"]
                .iter()
                .filter(|s| counts.contains_key(**s))
                .map(|s| s.to_string())
                .collect();
            // The classes as the data names them (a CSV manifest may use other names than `classes`).
            let classes: std::collections::BTreeSet<&String> = counts
                .values()
                .filter_map(Value::as_object)
                .flat_map(|c| c.keys())
                .collect();
            let series = classes
                .into_iter()
                .map(|class| {
                    let values = categories
                        .iter()
                        .map(|s| counts[s.as_str()][class.as_str()].as_u64().unwrap_or(0))
                        .collect();
                    (class.clone(), values)
                })
                .collect::<Vec<_>>();
            bars::grouped(
                &out.join("split_counts.png"),
                "Images per split and class",
                "images",
                &categories,
                &series,
            )?;
            figures.insert(
                "split_counts.png".into(),
                "Images per split and class".into(),
            );
        }
    }
    if let Some(path) = &inputs.validate {
        let validate = read_json::<Value>(path)?;
        let reasons = validate["excluded_by_reason"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if !reasons.is_empty() {
            let names: Vec<String> = reasons.keys().cloned().collect();
            let values = reasons.values().map(|v| v.as_u64().unwrap_or(0)).collect();
            bars::grouped(
                &out.join("exclusions.png"),
                "Images excluded by validate, by reason",
                "images",
                &names,
                &[("excluded".into(), values)],
            )?;
            figures.insert(
                "exclusions.png".into(),
                "Images excluded by validate, by reason".into(),
            );
        }
        if let Some(caption) = copy_similarity(&validate["copy_detectors"]["embedding"], out)? {
            figures.insert("copy_similarity.png".into(), caption);
        }
    }
    for (name, caption, path) in &inputs.previews {
        let target = format!("{name}.png");
        std::fs::copy(path, out.join(&target))
            .with_context(|| format!("cannot copy `{}`", path.display()))?;
        figures.insert(target, caption.clone());
    }
    if let Some(path) = &inputs.history {
        training_curves(inputs, path, out, &mut facts)?;
        figures.insert(
            "training_curves.png".into(),
            "Loss and accuracy per epoch, train and validation".into(),
        );
    }
    if let Some(path) = &inputs.predictions {
        test_figures(inputs, path, out, &mut figures, &mut facts)?;
    }
    facts.insert("title".into(), json!(inputs.title));
    let index = json!({ "figures": figures, "facts": facts });
    std::fs::write(
        out.join("figures.json"),
        serde_json::to_string_pretty(&index)? + "\n",
    )
    .with_context(|| format!("cannot write `{}`", out.join("figures.json").display()))
}

/// The embedding copy detector's similarities as shares per bin: each image's nearest other, the
/// copies it made, and the difference hash's pairs, with its threshold marked. `None` when it did not
/// run.
fn copy_similarity(embedding: &Value, out: &Path) -> anyhow::Result<Option<String>> {
    let (Some(bin), Some(threshold)) = (
        embedding["histogram"]["bin"].as_f64(),
        embedding["threshold"].as_f64(),
    ) else {
        return Ok(None);
    };
    let shares = |name: &str| -> Vec<(f64, f64)> {
        let counts: Vec<f64> = embedding["histogram"][name]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_f64().unwrap_or(0.0))
            .collect();
        let total = counts.iter().sum::<f64>().max(1.0);
        let centre = |i: usize| (i as f64 + 0.5) * bin;
        counts
            .iter()
            .enumerate()
            .map(|(i, c)| (centre(i), c / total))
            .collect()
    };
    let line = |name: &str, points, colour| curves::Series {
        name: name.into(),
        points,
        dashed: false,
        colour,
        band: Vec::new(),
    };
    let panel = curves::Panel {
        title: "Embedding similarity: nearest neighbours and copies".into(),
        x_axis: ("cosine similarity (centred)".into(), 1),
        y_label: "share of each set".into(),
        series: vec![
            line("each image's nearest other", shares("nearest"), 0),
            line("copies made of the images", shares("copies"), 1),
            line("the difference hash's pairs", shares("known"), 2),
        ],
        markers: vec![curves::Marker {
            at: threshold,
            label: format!("threshold {threshold:.2}"),
        }],
        y_range: None,
    };
    curves::draw(&out.join("copy_similarity.png"), &[panel])?;
    Ok(Some(format!(
        "Copy detection: similarity of each image to its nearest other, of copies made of the images, and of the difference hash's pairs; pairs at {threshold:.2} or more are copies"
    )))
}

fn training_curves(
    inputs: &Inputs,
    path: &Path,
    out: &Path,
    facts: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let table = Table::read(path)?;
    let epochs = table.float("epoch")?;
    let column = |name: &str| -> anyhow::Result<Vec<(f64, f64)>> {
        Ok(epochs.iter().copied().zip(table.float(name)?).collect())
    };
    let val_loss = column("val_loss")?;
    let train = inputs
        .train
        .as_deref()
        .map(read_json::<Value>)
        .transpose()?;
    let best = train
        .as_ref()
        .and_then(|t| t["best_epoch"].as_f64())
        .or_else(|| {
            val_loss
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|p| p.0)
        });
    let stopped = train.as_ref().and_then(|t| t["stopped_epoch"].as_f64());
    let mut markers = Vec::new();
    if let Some(best) = best {
        markers.push(curves::Marker {
            at: best,
            label: format!("best epoch {best:.0}"),
        });
        facts.insert("best_epoch".into(), json!(best));
    }
    if let Some(stopped) = stopped {
        markers.push(curves::Marker {
            at: stopped,
            label: format!("early stop {stopped:.0}"),
        });
        facts.insert("stopped_epoch".into(), json!(stopped));
    }
    let line = |name: &str, points, dashed| curves::Series {
        name: name.into(),
        points,
        dashed,
        colour: if dashed { 1 } else { 0 },
        band: Vec::new(),
    };
    let panels = [
        curves::Panel {
            title: "Loss".into(),
            y_label: "binary cross-entropy".into(),
            series: vec![
                line("train", column("train_loss")?, true),
                line("validation", val_loss, false),
            ],
            markers: markers.clone(),
            x_axis: ("epoch".into(), 0),
            y_range: None,
        },
        curves::Panel {
            title: "Accuracy".into(),
            y_label: "accuracy".into(),
            series: vec![
                line("train", column("train_accuracy")?, true),
                line("validation", column("val_accuracy")?, false),
            ],
            markers,
            x_axis: ("epoch".into(), 0),
            y_range: Some((0.0, 1.02)),
        },
    ];
    curves::draw(&out.join("training_curves.png"), &panels)?;
    std::fs::copy(
        path,
        out.join(
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
            {
                "history.parquet"
            } else {
                "history.csv"
            },
        ),
    )
    .with_context(|| format!("cannot copy `{}`", path.display()))?;
    Ok(())
}

/// One prediction.
struct Prediction {
    path: String,
    label: bool,
    probability: f64,
    split: Option<String>,
}

/// Reads predictions, refusing what would make the figures lie: a label other than 0/1, a probability
/// outside 0..1 (or NaN), a path that leaves the images folder.
fn read_predictions(path: &Path) -> anyhow::Result<Vec<Prediction>> {
    let table = Table::read(path)?;
    let (paths, labels, probabilities) = (
        table.text("path")?,
        table.int("label")?,
        table.float("probability")?,
    );
    let splits = table.text_if_present("split")?;
    (0..table.len())
        .map(|i| {
            let at = || format!("`{}` row {}", path.display(), i + 1);
            if !matches!(labels[i], 0 | 1) {
                bail!("{}: label must be 0 or 1, not {}", at(), labels[i]);
            }
            if !(0.0..=1.0).contains(&probabilities[i]) {
                bail!(
                    "{}: probability must be from 0 to 1, not {}",
                    at(),
                    probabilities[i]
                );
            }
            if crate::pipeline::is_outside(&crate::pipeline::normalize(".", &paths[i])) {
                bail!("{}: path `{}` leaves the images folder", at(), paths[i]);
            }
            Ok(Prediction {
                path: paths[i].clone(),
                label: labels[i] == 1,
                probability: probabilities[i],
                split: splits[i].clone(),
            })
        })
        .collect()
}

/// The mistakes and the most confident right answers on the `split` test images, most confident
/// first, as two image grids.
fn galleries(
    inputs: &Inputs,
    images: &Path,
    test: &[&Prediction],
    (split, threshold): (&str, f64),
    out: &Path,
    figures: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let (mut wrong, mut right): (Vec<&Prediction>, Vec<&Prediction>) = test
        .iter()
        .partition(|x| (x.probability >= threshold) != x.label);
    for list in [&mut wrong, &mut right] {
        list.sort_by(|a, b| {
            confidence(b, threshold)
                .total_cmp(&confidence(a, threshold))
                .then(a.path.cmp(&b.path))
        });
    }
    let tiles = |chosen: &[&Prediction]| -> anyhow::Result<Vec<gallery::Tile>> {
        chosen
            .iter()
            .take(inputs.gallery)
            .map(|x| tile(inputs, images, x, threshold))
            .collect()
    };
    let title = format!(
        "{split} images the model got wrong ({} of {}), most confident first",
        wrong.len(),
        test.len()
    );
    gallery::grid(&out.join("mistakes.png"), &title, &tiles(&wrong)?, 6)?;
    figures.insert("mistakes.png".into(), title);
    let title = format!("Most confident right answers on {split}");
    gallery::grid(&out.join("confident.png"), &title, &tiles(&right)?, 6)?;
    figures.insert("confident.png".into(), title);
    Ok(())
}

fn test_figures(
    inputs: &Inputs,
    path: &Path,
    out: &Path,
    figures: &mut BTreeMap<String, String>,
    facts: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let all = read_predictions(path)?;
    let evaluate = inputs
        .evaluate
        .as_deref()
        .map(read_json::<Value>)
        .transpose()?;
    let threshold = evaluate
        .as_ref()
        .and_then(|e| e["threshold"].as_f64())
        .unwrap_or(inputs.threshold);
    let split = evaluate
        .as_ref()
        .and_then(|e| e["split"].as_str())
        .unwrap_or("test")
        .to_string();
    let on = |name: &str| -> Vec<&Prediction> {
        all.iter()
            .filter(|p| p.split.as_deref().is_none_or(|s| s == name))
            .collect()
    };
    let test = on(&split);
    if test.is_empty() {
        bail!(
            "`{}` has no predictions on the `{split}` split",
            path.display()
        );
    }
    let (y, p): (Vec<bool>, Vec<f64>) = test.iter().map(|x| (x.label, x.probability)).unzip();
    let c = Confusion::at(&y, &p, threshold);
    // The summary table shows the evaluate stage's numbers; the figures must tell the same story.
    let reported = evaluate.as_ref().and_then(|e| e["accuracy"].as_f64());
    if let Some(reported) = reported.filter(|r| (r - c.accuracy()).abs() > 1e-6) {
        bail!(
            "the evaluate summary says accuracy {reported}, but `{}` gives {} on the `{split}` split at threshold {threshold}",
            path.display(),
            c.accuracy()
        );
    }
    let counts = vec![vec![c.tn, c.fp], vec![c.fn_, c.tp]];
    let title = format!("Confusion matrix, {split} split, threshold {threshold:.2}");
    classification::confusion_matrix(
        &out.join("confusion_matrix.png"),
        &inputs.classes,
        &counts,
        &title,
    )?;
    figures.insert("confusion_matrix.png".into(), title);
    let (roc, pr) = (metrics::roc(&y, &p), metrics::precision_recall(&y, &p));
    let curves_in = classification::Curves {
        roc: &roc,
        roc_auc: metrics::both_classes(&y).then(|| metrics::area(&roc)),
        pr: &pr,
        average_precision: metrics::both_classes(&y).then(|| metrics::average_precision(&pr)),
        prevalence: y.iter().filter(|&&l| l).count() as f64 / y.len() as f64,
        threshold,
    };
    classification::roc_and_pr(&out.join("roc_pr.png"), &curves_in)?;
    figures.insert(
        "roc_pr.png".into(),
        format!("ROC and precision-recall curves on the {split} split, threshold marked"),
    );
    facts.insert("threshold".into(), json!(threshold));
    facts.insert("split".into(), json!(split));
    let validation = on("val");
    if split != "val" && validation.iter().any(|p| p.split.is_some()) {
        let (vy, vp): (Vec<bool>, Vec<f64>) =
            validation.iter().map(|x| (x.label, x.probability)).unzip();
        facts.insert(
            "youden_threshold_val".into(),
            json!(metrics::youden_threshold(&vy, &vp)),
        );
    }
    if let Some(images) = &inputs.images {
        galleries(inputs, images, &test, (&split, threshold), out, figures)?;
    }
    Ok(())
}

/// How far a probability is from the threshold, toward the predicted side.
fn confidence(p: &Prediction, threshold: f64) -> f64 {
    (p.probability - threshold).abs()
}

fn tile(
    inputs: &Inputs,
    images: &Path,
    p: &Prediction,
    threshold: f64,
) -> anyhow::Result<gallery::Tile> {
    let file = images.join(&p.path);
    let bytes =
        std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let image = decode::decode(&bytes, GALLERY_MAX_PIXELS)
        .with_context(|| format!("`{}`", file.display()))?
        .grey;
    let name = |positive: bool| inputs.classes[usize::from(positive)].clone();
    Ok(gallery::Tile {
        image,
        caption: vec![
            format!("true: {}", name(p.label)),
            format!("predicted: {}", name(p.probability >= threshold)),
            format!("p({}) = {:.2}", inputs.classes[1], p.probability),
        ],
    })
}
