//! Comparing runs: params that differ, numeric metrics side by side with deltas against the first run,
//! and which stages actually ran in each.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::pipeline::interpolate::flatten_names;
use crate::records::{RunRecord, Status};

/// The differences between two or more runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Run ids, in the order given.
    pub runs: Vec<String>,
    /// Dotted param name -> value in each run (absent as `None`), only where they differ.
    pub params: Vec<(String, Vec<Option<Value>>)>,
    /// `stage.metric` -> value in each run.
    pub metrics: Vec<(String, Vec<Option<f64>>)>,
    /// For each run, the stages that ran (not cached).
    pub ran: Vec<Vec<String>>,
}

/// Compares `runs` (the first is the baseline for deltas).
pub fn compare(runs: &[RunRecord]) -> Comparison {
    let param_names: BTreeSet<String> = runs.iter().flat_map(|r| leaf_names(&r.params)).collect();
    let params = param_names
        .into_iter()
        .filter_map(|name| {
            let values: Vec<Option<Value>> = runs
                .iter()
                .map(|r| crate::pipeline::interpolate::get_path(&r.params, &name).cloned())
                .collect();
            values
                .iter()
                .any(|v| *v != values[0])
                .then_some((name, values))
        })
        .collect();
    let metric_names: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| r.numeric_metrics().into_keys())
        .collect();
    let all_metrics: Vec<_> = runs.iter().map(RunRecord::numeric_metrics).collect();
    let metrics = metric_names
        .into_iter()
        .map(|name| {
            let values = all_metrics.iter().map(|m| m.get(&name).copied()).collect();
            (name, values)
        })
        .collect();
    Comparison {
        runs: runs.iter().map(|r| r.id.clone()).collect(),
        params,
        metrics,
        ran: runs
            .iter()
            .map(|r| {
                r.stages
                    .iter()
                    .filter(|s| s.status == Status::Ran)
                    .map(|s| s.name.clone())
                    .collect()
            })
            .collect(),
    }
}

/// Dotted names of the leaves (non-mapping values) of a params tree.
pub fn leaf_names(params: &Value) -> Vec<String> {
    flatten_names(params)
        .into_iter()
        .filter(|n| {
            !crate::pipeline::interpolate::get_path(params, n).is_some_and(Value::is_object)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: &str, params: Value, metrics: Value) -> RunRecord {
        serde_json::from_value(json!({
            "format_version": 1, "id": id, "pipeline": "p.yaml", "status": "succeeded",
            "started_at": "2026-01-01T00:00:00Z", "params": params,
            "stages": [{"name": "train", "status": "ran"}, {"name": "prep", "status": "cached"}],
            "metrics": metrics
        }))
        .unwrap()
    }

    #[test]
    fn shows_only_differing_params_and_all_metrics() {
        let a = run(
            "a",
            json!({"seed": 1, "train": {"lr": 0.1, "epochs": 3}}),
            json!({"eval": {"acc": 0.8}}),
        );
        let b = run(
            "b",
            json!({"seed": 1, "train": {"lr": 0.2, "epochs": 3}}),
            json!({"eval": {"acc": 0.9}}),
        );
        let c = compare(&[a, b]);
        assert_eq!(
            c.params,
            vec![(
                "train.lr".to_string(),
                vec![Some(json!(0.1)), Some(json!(0.2))]
            )]
        );
        assert_eq!(
            c.metrics,
            vec![("eval.acc".to_string(), vec![Some(0.8), Some(0.9)])]
        );
        assert_eq!(
            c.ran,
            vec![vec!["train".to_string()], vec!["train".to_string()]]
        );
    }
}
