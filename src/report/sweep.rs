//! `runs/<sweep-id>/report/sweep.md`: a sweep's runs with their values and key metrics, each metric
//! grouped by each axis (mean, sample standard deviation, min and max over the runs that share the
//! axis's value, so over the other axes, typically seeds), and the best run named with its values.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::compare::higher_is_better;
use super::history::{self, History};
use super::markdown::number;
use crate::plot::curves::Series;
use crate::plot::spread::Spread;
use crate::records::sweep::{Group, SweepRecord, describe, group_by};
use crate::records::{RunRecord, RunStatus};

/// The metrics a sweep's tables show: the index's key metrics the runs have, else every numeric one.
pub fn shown_metrics(records: &[RunRecord]) -> Vec<String> {
    let mut key: Vec<String> = Vec::new();
    for record in records {
        for name in crate::records::index::key_metrics(record).into_keys() {
            if !key.iter().any(|k| k == name) {
                key.push(name.to_string());
            }
        }
    }
    if key.is_empty() {
        let mut all: Vec<String> = records
            .iter()
            .flat_map(|r| r.numeric_metrics().into_keys())
            .collect();
        all.sort();
        all.dedup();
        return all;
    }
    key
}

/// A group's summary of `metric` as `mean ± sd [min-max]`, or `-`.
pub fn summary_cell(group: &Group, metric: &str) -> String {
    match group.metrics.get(metric) {
        Some(s) if s.n > 1 => format!(
            "{} ± {} [{}-{}]",
            number(s.mean),
            number(s.sd),
            number(s.min),
            number(s.max)
        ),
        Some(s) => number(s.mean),
        None => "-".to_string(),
    }
}

/// The succeeded run with the best value of the first metric that says which way is better.
pub fn best_run<'r>(
    records: &'r [RunRecord],
    metrics: &[String],
) -> Option<(&'r RunRecord, String)> {
    let (metric, higher) = metrics
        .iter()
        .find_map(|m| higher_is_better(m).map(|h| (m.clone(), h)))?;
    let value = |r: &RunRecord| r.numeric_metrics().get(&metric).copied();
    let best = records
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded && value(r).is_some())
        .max_by(|a, b| {
            let (a, b) = (value(a).unwrap_or(f64::NAN), value(b).unwrap_or(f64::NAN));
            let order = a.total_cmp(&b);
            if higher { order } else { order.reverse() }
        })?;
    Some((best, metric))
}

/// The metric the figures show: the first that says which way is better, else the first.
pub fn primary_metric(metrics: &[String]) -> Option<&String> {
    metrics
        .iter()
        .find(|m| higher_is_better(m).is_some())
        .or(metrics.first())
}

/// `metric` over the groups of one axis, as a figure.
fn draw_spread(path: &Path, key: &str, metric: &str, groups: &[Group]) -> anyhow::Result<()> {
    let spreads: Vec<Spread> = groups
        .iter()
        .filter_map(|g| {
            let s = g.metrics.get(metric)?;
            Some(Spread {
                label: g.value.to_string(),
                n: s.n,
                mean: s.mean,
                sd: s.sd,
                range: (s.min, s.max),
            })
        })
        .collect();
    crate::plot::spread::draw(path, &format!("{metric} by {key}"), key, metric, &spreads)
}

/// A param's name as part of a file name.
fn file_safe(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A group's curve: (epoch, mean) points, and (min, max) at each.
#[derive(Debug, Default, PartialEq)]
pub struct Curve {
    /// (epoch, mean over the group's runs).
    pub points: Vec<(f64, f64)>,
    /// (min, max) over the group's runs at each point.
    pub band: Vec<(f64, f64)>,
}

/// A group's curve of one validation column: at each epoch the mean over the runs that reached it
/// (early stopping ends runs at different epochs), with a band from their min to their max.
pub fn group_curve<H: std::borrow::Borrow<History>>(
    histories: &[H],
    column: fn(&History) -> &[f64],
) -> Curve {
    let Some(longest) = histories
        .iter()
        .map(H::borrow)
        .max_by_key(|h| h.epochs.len())
    else {
        return Curve::default();
    };
    let mut curve = Curve::default();
    for (i, &epoch) in longest.epochs.iter().enumerate() {
        let values: Vec<f64> = histories
            .iter()
            .filter_map(|h| column(h.borrow()).get(i).copied())
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        curve.points.push((epoch, mean));
        curve.band.push((low, high));
    }
    curve
}

/// The validation curves of the groups of one axis, one colour per group; false when no run kept
/// a history.
fn draw_group_curves(
    path: &Path,
    key: &str,
    groups: &[Group],
    report_of: &impl Fn(&str) -> PathBuf,
) -> anyhow::Result<bool> {
    let (mut loss, mut accuracy) = (Vec::new(), Vec::new());
    for (colour, group) in groups.iter().enumerate() {
        let histories: Vec<History> = group
            .runs
            .iter()
            .filter_map(|run| history::kept(&report_of(run), run))
            .collect();
        if histories.is_empty() {
            continue;
        }
        let name = format!("{key}={} ({} runs)", group.value, histories.len());
        let series = |curve: Curve| Series {
            name: name.clone(),
            points: curve.points,
            dashed: false,
            colour,
            band: curve.band,
        };
        loss.push(series(group_curve(&histories, |h| &h.val_loss)));
        accuracy.push(series(group_curve(&histories, |h| &h.val_accuracy)));
    }
    if loss.is_empty() {
        return Ok(false);
    }
    history::draw_validation(path, loss, accuracy)?;
    Ok(true)
}

/// The section of one axis: each metric grouped by its values, the primary metric's spread and the
/// groups' validation curves as figures.
fn axis_section(
    md: &mut String,
    dir: &Path,
    key: &str,
    records: &[RunRecord],
    metrics: &[String],
    report_of: &impl Fn(&str) -> PathBuf,
) -> anyhow::Result<()> {
    let groups = group_by(records, key);
    let _ = write!(
        md,
        "\n## By `{}`\n\nMean ± sample standard deviation [min-max] over the succeeded runs with each value.\n\n| {} | runs |",
        key, key
    );
    for m in metrics {
        let _ = write!(md, " {m} |");
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(metrics.len()));
    md.push('\n');
    for group in &groups {
        let _ = write!(md, "| {} | {} |", group.value, group.runs.len());
        for m in metrics {
            let _ = write!(md, " {} |", summary_cell(group, m));
        }
        md.push('\n');
    }
    if let Some(metric) = primary_metric(metrics) {
        let figure = format!("sweep-{}.png", file_safe(key));
        draw_spread(&dir.join(&figure), key, metric, &groups)?;
        let _ = write!(
            md,
            "\n![{metric} by {key}: mean, ± one sd, min to max]({figure})\n"
        );
    }
    let curves = format!("sweep-{}-curves.png", file_safe(key));
    if draw_group_curves(&dir.join(&curves), key, &groups, report_of)? {
        let _ = write!(
            md,
            "\n![validation curves by {key}: the mean over each group's runs, shaded from their min to their max]({curves})\n"
        );
    }
    Ok(())
}

/// Writes `sweep.md` (and figures per axis) into `dir`; returns its path. `report_of` gives a run's
/// report folder, where its history was kept.
pub fn write(
    dir: &Path,
    sweep: &SweepRecord,
    records: &[RunRecord],
    report_of: impl Fn(&str) -> PathBuf,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let metrics = shown_metrics(records);
    let mut md = format!(
        "# Sweep {}\n\n`{}`, {} runs, {} ({:.1} s). Axes: {}.\n\n",
        sweep.id,
        sweep.pipeline,
        sweep.runs.len(),
        sweep.status,
        sweep.duration_s,
        sweep
            .axes
            .iter()
            .map(|a| format!("`{}` ({} values)", a.key, a.values.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    md.push_str("## Runs\n\n| values | run | status |");
    for m in &metrics {
        let _ = write!(md, " {m} |");
    }
    md.push_str("\n|---|---|---|");
    md.push_str(&"---|".repeat(metrics.len()));
    md.push('\n');
    for run in &sweep.runs {
        let record = run
            .run
            .as_ref()
            .and_then(|id| records.iter().find(|r| &r.id == id));
        let _ = write!(
            md,
            "| {} | {} | {} |",
            describe(&run.values),
            run.run.as_deref().unwrap_or("-"),
            run.error
                .as_deref()
                .map_or(run.status.to_string(), |e| format!("{}: {e}", run.status))
        );
        let numbers = record.map(RunRecord::numeric_metrics).unwrap_or_default();
        for m in &metrics {
            let _ = write!(
                md,
                " {} |",
                numbers.get(m).map_or("-".into(), |v| number(*v))
            );
        }
        md.push('\n');
    }
    for axis in &sweep.axes {
        axis_section(&mut md, dir, &axis.key, records, &metrics, &report_of)?;
    }
    if let Some((best, metric)) = best_run(records, &metrics) {
        let _ = write!(
            md,
            "\n## Best run\n\n{} by `{metric}` ({}), with {}.\n",
            best.id,
            number(best.numeric_metrics()[&metric]),
            best.overrides
                .iter()
                .map(|o| format!("`{}={}`", o.key, o.value))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let path = dir.join("sweep.md");
    std::fs::write(&path, md).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(accuracy: &[f64]) -> History {
        History {
            epochs: (1..=accuracy.len()).map(|e| e as f64).collect(),
            val_loss: accuracy.iter().map(|a| 1.0 - a).collect(),
            val_accuracy: accuracy.to_vec(),
        }
    }

    #[test]
    fn a_group_curve_is_the_mean_of_the_runs_that_reached_each_epoch_within_their_range() {
        let runs = [history(&[0.5, 0.7, 0.9]), history(&[0.6, 0.8])];
        let Curve { points, band } = group_curve(&runs, |h| &h.val_accuracy);
        let close = |a: &[(f64, f64)], b: &[(f64, f64)]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x.0 - y.0).abs() < 1e-12 && (x.1 - y.1).abs() < 1e-12)
        };
        assert!(
            close(&points, &[(1.0, 0.55), (2.0, 0.75), (3.0, 0.9)]),
            "{points:?}"
        );
        assert!(
            close(&band, &[(0.5, 0.6), (0.7, 0.8), (0.9, 0.9)]),
            "{band:?}"
        );
        assert_eq!(
            group_curve::<History>(&[], |h| &h.val_loss),
            Curve::default()
        );
    }
}
