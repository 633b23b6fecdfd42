//! The run side of a report: after a run, `runs/<id>/report/` gets the report stage's figures and a
//! `report.md` that embeds them with relative links and takes every number from the run record, so the
//! report and `run.json` cannot disagree. It states which split the numbers come from.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use crate::pipeline::interpolate::flatten_names;
use crate::records::{RunRecord, Status};

/// The metrics the summary table shows, in order, with their names in words.
const SUMMARY: [(&str, &str); 6] = [
    ("accuracy", "accuracy"),
    ("precision", "precision"),
    ("recall", "recall (sensitivity)"),
    ("specificity", "specificity"),
    ("f1", "F1"),
    ("roc_auc", "ROC AUC"),
];

/// Copies the figures from `figures` into `report_dir` and writes `report_dir/report.md` for `record`.
/// Without figures (the report stage did not run, e.g. after a failure upstream) the report still says
/// what happened, from the run record.
pub fn publish(
    report_dir: &Path,
    figures: Option<&Path>,
    record: &RunRecord,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(report_dir)
        .with_context(|| format!("cannot create `{}`", report_dir.display()))?;
    let index = match figures {
        Some(figures) => copy_figures(figures, report_dir)?,
        None => Value::Null,
    };
    let path = report_dir.join("report.md");
    std::fs::write(&path, markdown(record, &index))
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// Copies every file of the figures folder; returns its `figures.json` index.
fn copy_figures(figures: &Path, report_dir: &Path) -> anyhow::Result<Value> {
    let cannot_read = || format!("cannot read `{}`", figures.display());
    for entry in std::fs::read_dir(figures).with_context(cannot_read)? {
        let entry = entry.with_context(cannot_read)?;
        if entry.file_type().with_context(cannot_read)?.is_file() {
            std::fs::copy(entry.path(), report_dir.join(entry.file_name()))
                .with_context(|| format!("cannot copy `{}`", entry.path().display()))?;
        }
    }
    let index_file = figures.join("figures.json");
    std::fs::read_to_string(&index_file)
        .map_err(anyhow::Error::from)
        .and_then(|t| Ok(serde_json::from_str(&t)?))
        .with_context(|| format!("cannot read `{}`", index_file.display()))
}

/// Text made safe for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn figure(out: &mut String, index: &Value, name: &str) {
    if let Some(caption) = index["figures"][name].as_str() {
        let _ = writeln!(out, "![{caption}]({name})\n");
    }
}

/// A number as the report prints it.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// A metric's bootstrap interval from the evaluate summary, as `low-high`, or a dash without one.
fn interval(evaluate: &Value, key: &str) -> String {
    let interval = &evaluate["intervals"][key];
    match (interval["low"].as_f64(), interval["high"].as_f64()) {
        (Some(low), Some(high)) => format!("{}-{}", number(low), number(high)),
        _ => "-".into(),
    }
}

/// The metrics of the run's stage of built-in `kind` (or, failing that, of the stage named like it).
fn metrics_of<'a>(record: &'a RunRecord, kind: &str) -> Option<&'a Value> {
    let stage = record
        .stages
        .iter()
        .find(|s| s.kind == kind)
        .map_or(kind, |s| s.name.as_str());
    record.metrics.get(stage)
}

/// Where the test numbers come from, in words.
fn split_statement(record: &RunRecord) -> Option<String> {
    let split = metrics_of(record, "split")?;
    let leaked = split["leaked_test_images"].as_u64().unwrap_or(0);
    let test = split["images"]["test"].as_u64().unwrap_or(0);
    let detectors = match metrics_of(record, "validate") {
        Some(v) if v["copy_detectors"]["embedding"].is_object() => {
            "either detector (the difference hash and the embedding's nearest neighbours)"
        }
        _ => "the difference hash (the embedding detector did not run)",
    };
    Some(match split["mode"].as_str().unwrap_or("") {
        "group" if leaked == 0 => format!(
            "Group-aware split: no copy of a test image in train was found by {detectors} ({test} test images; copies, declared groups and patients stay in one split)."
        ),
        "given" => format!(
            "The source's own split: {leaked} of {test} test images have a copy or near copy in train, so test numbers measure memory as much as generalisation."
        ),
        mode => format!(
            "Split `{mode}`: {leaked} of {test} test images have a copy or near copy in train."
        ),
    })
}

fn markdown(record: &RunRecord, index: &Value) -> String {
    let mut md = String::new();
    let title = index["facts"]["title"].as_str().unwrap_or("Run report");
    let _ = writeln!(md, "# {title}\n");
    let _ = writeln!(
        md,
        "Run `{}` of `{}`: {}, started {}, {:.1} s.\n",
        record.id, record.pipeline, record.status, record.started_at, record.duration_s
    );
    if index.is_null() {
        md.push_str("The report stage did not run in this run, so there are no figures; the stages table below says why.\n\n");
    }
    md.push_str("## Results\n\n");
    match metrics_of(record, "evaluate") {
        Some(evaluate) => {
            let split = index["facts"]["split"]
                .as_str()
                .or(evaluate["split"].as_str())
                .unwrap_or("test");
            let threshold = index["facts"]["threshold"]
                .as_f64()
                .or(evaluate["threshold"].as_f64());
            let at = threshold.map_or(String::new(), |t| format!(", at threshold {}", number(t)));
            let _ = writeln!(md, "On the **{split}** split{at}:\n");
            md.push_str("| metric | value | 95% interval |\n|---|---|---|\n");
            for (key, words) in SUMMARY {
                if let Some(v) = evaluate[key].as_f64() {
                    let _ = writeln!(
                        md,
                        "| {words} | {} | {} |",
                        number(v),
                        interval(evaluate, key)
                    );
                }
            }
            md.push('\n');
            let intervals = &evaluate["intervals"];
            if let (Some(resamples), Some(groups)) = (
                intervals["resamples"].as_u64(),
                intervals["groups"].as_u64(),
            ) {
                let _ = writeln!(
                    md,
                    "Intervals: bootstrap percentiles over {resamples} resamples of the split's {groups} independent groups (copies and a patient's images resampled together).\n"
                );
            }
            if let Some(youden) = index["facts"]["youden_threshold_val"].as_f64() {
                let _ = writeln!(
                    md,
                    "The threshold that maximises Youden's J on validation is {}.\n",
                    number(youden)
                );
            }
        }
        None => md.push_str(
            "This run has no `evaluate` stage results, so there are no model metrics yet.\n\n",
        ),
    }
    if let Some(statement) = split_statement(record) {
        let _ = writeln!(md, "{statement}\n");
    }
    if let Some(model) = metrics_of(record, "train").and_then(|t| t["model"].as_str()) {
        let _ = writeln!(md, "Model: {model}.\n");
    }
    if index["figures"]["training_curves.png"].is_string() {
        md.push_str("## Training\n\n");
        if let Some(best) = index["facts"]["best_epoch"].as_f64() {
            let _ = writeln!(md, "Best epoch (the checkpoint kept): {}.", number(best));
        }
        if let Some(stopped) = index["facts"]["stopped_epoch"].as_f64() {
            let _ = writeln!(
                md,
                "Training stopped early after epoch {}.",
                number(stopped)
            );
        }
        md.push('\n');
        figure(&mut md, index, "training_curves.png");
    }
    if index["figures"]["confusion_matrix.png"].is_string() {
        md.push_str("## Test set\n\n");
        for name in [
            "confusion_matrix.png",
            "roc_pr.png",
            "mistakes.png",
            "confident.png",
        ] {
            figure(&mut md, index, name);
        }
    }
    data_story(&mut md, record, index);
    params(&mut md, record);
    stages(&mut md, record);
    md
}

/// What each copy detector found, and what the embedding's threshold catches.
fn detectors(md: &mut String, found: &Value) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let e = &found["embedding"];
    if !e.is_object() {
        let _ = writeln!(
            md,
            "The difference hash found {} pairs of copies; the embedding detector did not run (no weights).\n",
            n(&found["hash_pairs"])
        );
        return;
    }
    let _ = writeln!(
        md,
        "Two detectors looked for copies. The difference hash (quarter turns, flips, resizes) found {} pairs; \
         nearest neighbours in the embedding of `{}` at {} px found {} (cosine similarity at least {}); both found {}. \
         Of {} copies made of the images, the threshold caught {}; of the difference hash's pairs, {}.\n",
        n(&found["hash_pairs"]),
        e["weights"].as_str().unwrap_or("?"),
        n(&e["side"]),
        n(&found["embedding_pairs"]),
        number(e["threshold"].as_f64().unwrap_or(0.0)),
        n(&found["both"]),
        n(&e["copies_made"]),
        n(&e["copies_caught"]),
        n(&e["known_copies_caught"]),
    );
    let across = &found["cross_class_pairs"];
    let _ = writeln!(
        md,
        "Pairs with different labels: {} found by both detectors (one film labelled twice: check its label), \
         {} by the embedding only, {} by the difference hash only (more likely look-alikes: same anatomy and pose, \
         different images to the embedding).\n",
        n(&across["both"]),
        n(&across["embedding_only"]),
        n(&across["hash_only"]),
    );
    md.push_str("| copy made | made | caught |\n|---|---|---|\n");
    for edit in e["by_edit"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            cell(edit["edit"].as_str().unwrap_or("?")),
            n(&edit["made"]),
            n(&edit["caught"])
        );
    }
    md.push('\n');
}

fn data_story(md: &mut String, record: &RunRecord, index: &Value) {
    md.push_str("## Data\n\n");
    if let Some(v) = metrics_of(record, "validate") {
        let n = |key: &str| v[key].as_u64().unwrap_or(0);
        let _ = writeln!(
            md,
            "Validate read {} images: {} kept, {} excluded. It found {} duplicate groups ({} images, {} exact copies); \
             {} val/test images have a copy or near copy in train. {} images are in groups that span classes: \
             look-alikes with different labels (same anatomy and pose), or one film labelled twice; `tables/validate/copies` lists each pair.\n",
            n("images"),
            n("kept"),
            n("excluded"),
            n("duplicate_groups"),
            n("images_in_duplicate_groups"),
            n("exact_copies"),
            n("cross_split_duplicates"),
            n("cross_class_duplicates"),
        );
        detectors(md, &v["copy_detectors"]);
        if let Some(reasons) = v["excluded_by_reason"]
            .as_object()
            .filter(|r| !r.is_empty())
        {
            md.push_str("| excluded because | images |\n|---|---|\n");
            for (reason, count) in reasons {
                let _ = writeln!(md, "| {reason} | {count} |");
            }
            md.push('\n');
        }
        for warning in v["warnings"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "> **Warning:** {}\n",
                warning.as_str().unwrap_or_default()
            );
        }
    }
    if let Some(counts) = record
        .metrics
        .get("split")
        .and_then(|s| s["counts"].as_object())
    {
        let classes: std::collections::BTreeSet<&String> = counts
            .values()
            .filter_map(Value::as_object)
            .flat_map(|c| c.keys())
            .collect();
        let _ = writeln!(
            md,
            "| split | {} |",
            classes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---|".repeat(classes.len()));
        for split in ["train", "val", "test"] {
            if let Some(row) = counts.get(split) {
                let cells: Vec<String> = classes
                    .iter()
                    .map(|c| row[c.as_str()].as_u64().unwrap_or(0).to_string())
                    .collect();
                let _ = writeln!(md, "| {split} | {} |", cells.join(" | "));
            }
        }
        md.push('\n');
    }
    for name in [
        "split_counts.png",
        "exclusions.png",
        "copy_similarity.png",
        "ingest_preview.png",
        "augment_preview.png",
    ] {
        figure(md, index, name);
    }
}

fn params(md: &mut String, record: &RunRecord) {
    let names = flatten_names(&record.params);
    if names.is_empty() {
        return;
    }
    md.push_str("## Params\n\n| param | value |\n|---|---|\n");
    for name in names {
        if let Some(v) =
            crate::pipeline::interpolate::get_path(&record.params, &name).filter(|v| !v.is_object())
        {
            let _ = writeln!(md, "| `{name}` | `{}` |", cell(&v.to_string()));
        }
    }
    md.push('\n');
}

fn stages(md: &mut String, record: &RunRecord) {
    let cached = record
        .stages
        .iter()
        .filter(|s| s.status == Status::Cached)
        .count();
    let _ = writeln!(
        md,
        "## Stages\n\n{cached} of {} stages came from the cache.\n",
        record.stages.len()
    );
    md.push_str("| stage | kind | status | seconds | why |\n|---|---|---|---|---|\n");
    for s in &record.stages {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {} |",
            cell(&s.name),
            s.kind,
            s.status,
            s.duration_s,
            cell(&s.reason)
        );
    }
}
