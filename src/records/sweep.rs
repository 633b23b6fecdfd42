//! Sweep records (`runs/sweep-<id>/sweep.json`: the axes and, per combination, its overrides, its run
//! and how it ended) and the arithmetic of grouping a sweep's runs by a param: each metric's mean,
//! standard deviation, minimum and maximum over the runs that share the param's value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RunRecord, RunStatus};
use crate::pipeline::Override;
use crate::pipeline::interpolate::get_path;
use crate::pipeline::sweep::Axis;

/// Version of `sweep.json`.
pub const SWEEP_FORMAT_VERSION: u32 = 1;

/// One sweep, as written to `runs/<sweep-id>/sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRecord {
    /// [`SWEEP_FORMAT_VERSION`].
    pub format_version: u32,
    /// `sweep-YYYYMMDD-HHMMSS-xxxx`.
    pub id: String,
    /// The pipeline file as given.
    pub pipeline: String,
    /// `running`, then `succeeded` (every run did), `failed` (one did not) or `cancelled`.
    pub status: RunStatus,
    /// UTC, RFC 3339.
    pub started_at: String,
    /// UTC, RFC 3339; absent while running.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Wall time.
    #[serde(default)]
    pub duration_s: f64,
    /// The axes swept.
    pub axes: Vec<Axis>,
    /// With `--sample N --seed S`: how many combinations were drawn, and the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<(usize, u64)>,
    /// `--set` overrides common to every run.
    #[serde(default, with = "crate::pipeline::overrides::as_mapping")]
    pub overrides: Vec<Override>,
    /// The process running it, the host it runs on and when it started (clock ticks after boot), so
    /// that `pipe cancel` never signals another process that got its pid.
    #[serde(default)]
    pub pid: u32,
    /// The host running it.
    #[serde(default)]
    pub host: String,
    /// When its process started.
    #[serde(default)]
    pub pid_started: Option<u64>,
    /// One entry per combination, in order.
    pub runs: Vec<SweepRun>,
}

/// One combination of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRun {
    /// The axes' values for it, as overrides.
    #[serde(with = "crate::pipeline::overrides::as_mapping")]
    pub values: Vec<Override>,
    /// Its run's id, once it has one.
    #[serde(default)]
    pub run: Option<String>,
    /// `running` until it ends; `cancelled` for a combination the sweep stopped before.
    pub status: RunStatus,
    /// Why it failed, when it did before a stage could (an invalid combination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A metric summarised over the runs of one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many runs have the metric.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// The sample standard deviation (n - 1 in the denominator; 0 for one run).
    pub sd: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Summary {
    /// The summary of `values` (none for no values).
    pub fn of(values: &[f64]) -> Option<Summary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Summary {
            n,
            mean,
            sd,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The runs that share one value of the grouping param.
#[derive(Debug, Clone)]
pub struct Group {
    /// The param's value (`null` for runs without it).
    pub value: Value,
    /// The runs' ids.
    pub runs: Vec<String>,
    /// Each numeric metric (`stage.name`) over the group's runs.
    pub metrics: BTreeMap<String, Summary>,
}

/// `records` grouped by the value of param `key` (a dotted name), groups in order of first
/// appearance; only succeeded runs count.
pub fn group_by(records: &[RunRecord], key: &str) -> Vec<Group> {
    let mut groups: Vec<(Value, Vec<&RunRecord>)> = Vec::new();
    for record in records.iter().filter(|r| r.status == RunStatus::Succeeded) {
        let value = get_path(&record.params, key)
            .cloned()
            .unwrap_or(Value::Null);
        match groups.iter_mut().find(|(v, _)| *v == value) {
            Some((_, members)) => members.push(record),
            None => groups.push((value, vec![record])),
        }
    }
    groups
        .into_iter()
        .map(|(value, members)| {
            let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for record in &members {
                for (name, v) in record.numeric_metrics() {
                    values.entry(name).or_default().push(v);
                }
            }
            Group {
                value,
                runs: members.iter().map(|r| r.id.clone()).collect(),
                metrics: values
                    .into_iter()
                    .filter_map(|(name, v)| Summary::of(&v).map(|s| (name, s)))
                    .collect(),
            }
        })
        .collect()
}

/// A combination's values as `seed=1 lr=0.1`.
pub fn describe(values: &[Override]) -> String {
    values
        .iter()
        .map(|o| format!("{}={}", o.key, o.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The params (dotted names) whose values differ between `records`.
pub fn varying_params(records: &[RunRecord]) -> Vec<String> {
    super::compare::compare(records)
        .params
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_match_hand_computed_values() {
        let s = Summary::of(&[0.9, 0.8, 1.0]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 0.9).abs() < 1e-12);
        // Deviations -0, -0.1, 0.1: squares 0.02 over n - 1 = 2 -> 0.01 -> sd 0.1.
        assert!((s.sd - 0.1).abs() < 1e-12);
        assert_eq!((s.min, s.max), (0.8, 1.0));
        assert_eq!(Summary::of(&[2.0]).unwrap().sd, 0.0);
        assert!(Summary::of(&[]).is_none());
    }

    fn run(id: &str, seed: i64, lr: f64, acc: f64, status: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "id": id, "pipeline": "p.yaml", "status": status,
            "started_at": "2026-01-01T00:00:00Z", "params": {"seed": seed, "train": {"lr": lr}},
            "stages": [], "metrics": {"eval": {"acc": acc}}
        }))
        .unwrap()
    }

    #[test]
    fn runs_group_by_a_param_over_seeds() {
        let records = [
            run("a", 1, 0.1, 0.80, "succeeded"),
            run("b", 2, 0.1, 0.90, "succeeded"),
            run("c", 1, 0.01, 0.70, "succeeded"),
            run("d", 2, 0.01, 0.76, "succeeded"),
            run("e", 3, 0.01, 0.10, "failed"),
        ];
        let groups = group_by(&records, "train.lr");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].value, serde_json::json!(0.1));
        assert_eq!(groups[0].runs, ["a", "b"]);
        let acc = groups[0].metrics["eval.acc"];
        assert!((acc.mean - 0.85).abs() < 1e-12);
        // sqrt(((-0.05)^2 + 0.05^2) / 1) = 0.0707...
        assert!((acc.sd - 0.05 * 2f64.sqrt()).abs() < 1e-12);
        let acc = groups[1].metrics["eval.acc"];
        assert_eq!(groups[1].runs, ["c", "d"], "the failed run is left out");
        assert!((acc.mean - 0.73).abs() < 1e-12);
        assert_eq!((acc.min, acc.max), (0.70, 0.76));
        assert_eq!(varying_params(&records[..4]), ["seed", "train.lr"]);
    }
}
