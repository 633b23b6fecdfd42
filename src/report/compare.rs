//! `runs/compare-<ids>/compare.md`: the markdown side of `pipe compare`. Params that differ, metrics
//! side by side with deltas against the first run and which run is better, the stages each run actually
//! ran, and the validation loss and accuracy curves of every run overlaid (from the history each run's
//! report kept), one colour per run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::history;
use super::markdown::number;
use crate::plot::curves::Series;
use crate::records::compare::Comparison;

/// Which way a metric is better, judged by its name; `None` when the name does not say.
pub fn higher_is_better(metric: &str) -> Option<bool> {
    let leaf = metric.rsplit('.').next().unwrap_or(metric);
    const HIGHER: [&str; 9] = [
        "accuracy",
        "precision",
        "recall",
        "specificity",
        "f1",
        "roc_auc",
        "average_precision",
        "auc",
        "kept",
    ];
    const LOWER: [&str; 6] = [
        "loss",
        "leaked",
        "excluded",
        "duplicates",
        "seconds",
        "error",
    ];
    if HIGHER
        .iter()
        .any(|h| leaf == *h || leaf.ends_with(&format!("_{h}")))
    {
        Some(true)
    } else if LOWER.iter().any(|l| leaf.contains(l)) {
        Some(false)
    } else {
        None
    }
}

/// Writes `compare.md` (and `curves.png` when runs have histories) into `dir`; returns the markdown's path.
/// `report_of(id)` is where run `id`'s report folder is.
pub fn write(
    dir: &Path,
    c: &Comparison,
    report_of: impl Fn(&str) -> PathBuf,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut md = format!("# Comparison of {} runs\n\n", c.runs.len());
    // A table header: the first column, one column per run, and optionally a last column.
    let header = |first: &str, last: Option<&str>| {
        let mut names = vec![first.to_string()];
        names.extend(c.runs.iter().map(|r| format!("`{r}`")));
        names.extend(last.map(str::to_string));
        format!("| {} |\n|{}", names.join(" | "), "---|".repeat(names.len()))
    };
    md.push_str("## Params that differ\n\n");
    if c.params.is_empty() {
        md.push_str("None: the runs have the same params.\n\n");
    } else {
        let _ = writeln!(md, "{}", header("param", None));
        for (name, values) in &c.params {
            let cells: Vec<String> = values
                .iter()
                .map(|v| v.as_ref().map_or("-".into(), |v| format!("`{v}`")))
                .collect();
            let _ = writeln!(md, "| `{name}` | {} |", cells.join(" | "));
        }
        md.push('\n');
    }
    if !c.metrics.is_empty() {
        let _ = writeln!(
            md,
            "## Metrics\n\nDeltas are against the first run.\n\n{}",
            header("metric", Some("better"))
        );
        for (name, values) in &c.metrics {
            let cells: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| match (v, values[0]) {
                    (Some(v), Some(base)) if i > 0 && *v != base => {
                        format!("{} ({:+.3})", number(*v), v - base)
                    }
                    (Some(v), _) => number(*v),
                    (None, _) => "-".into(),
                })
                .collect();
            let _ = writeln!(
                md,
                "| `{name}` | {} | {} |",
                cells.join(" | "),
                better(name, values, &c.runs)
            );
        }
        md.push('\n');
    }
    md.push_str("## Stages that ran (the rest came from the cache)\n\n");
    for (run, ran) in c.runs.iter().zip(&c.ran) {
        let list = if ran.is_empty() {
            "none".to_string()
        } else {
            ran.join(", ")
        };
        let _ = writeln!(md, "- `{run}`: {list}");
    }
    md.push('\n');
    if overlay(&dir.join("curves.png"), c, &report_of)? {
        md.push_str("## Validation curves\n\n![Validation loss and accuracy per epoch, one colour per run](curves.png)\n");
    }
    let path = dir.join("compare.md");
    std::fs::write(&path, md).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(path)
}

/// The run with the best value, when the metric has a direction and the values differ.
fn better(name: &str, values: &[Option<f64>], runs: &[String]) -> String {
    let Some(higher) = higher_is_better(name) else {
        return String::new();
    };
    let present: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if present.windows(2).all(|w| w[0].1 == w[1].1) {
        return "same".into();
    }
    let best = present
        .iter()
        .max_by(|a, b| {
            if higher {
                a.1.total_cmp(&b.1)
            } else {
                b.1.total_cmp(&a.1)
            }
        })
        .expect("values differ, so there are some");
    format!("`{}`", runs[best.0])
}

/// Draws every run's validation curves that its report kept; false when no run has any.
fn overlay(
    path: &Path,
    c: &Comparison,
    report_of: &impl Fn(&str) -> PathBuf,
) -> anyhow::Result<bool> {
    let (mut loss, mut accuracy) = (Vec::new(), Vec::new());
    for (i, run) in c.runs.iter().enumerate() {
        let folder = report_of(run);
        let Some(history) = history::kept(&folder, run) else {
            continue;
        };
        let series = |values: &[f64]| Series {
            name: run.clone(),
            points: history
                .epochs
                .iter()
                .copied()
                .zip(values.iter().copied())
                .collect(),
            dashed: false,
            colour: i,
            band: Vec::new(),
        };
        loss.push(series(&history.val_loss));
        accuracy.push(series(&history.val_accuracy));
    }
    if loss.is_empty() {
        return Ok(false);
    }
    history::draw_validation(path, loss, accuracy)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_directions() {
        assert_eq!(higher_is_better("evaluate.accuracy"), Some(true));
        assert_eq!(higher_is_better("evaluate.roc_auc"), Some(true));
        assert_eq!(higher_is_better("train.val_loss"), Some(false));
        assert_eq!(higher_is_better("split.leaked_test_images"), Some(false));
        assert_eq!(higher_is_better("split.images.train"), None);
        let runs = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            better("evaluate.accuracy", &[Some(0.8), Some(0.9)], &runs),
            "`b`"
        );
        assert_eq!(
            better("train.val_loss", &[Some(0.3), Some(0.4)], &runs),
            "`a`"
        );
        assert_eq!(
            better("evaluate.f1", &[Some(0.5), Some(0.5)], &runs),
            "same"
        );
    }
}
