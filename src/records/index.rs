//! The run index: one row per run (id, status, pipeline, start, duration, stage counts) and the key
//! metrics people compare runs by, as a polars DataFrame. `pipe runs` prints it, `pipe runs --csv`
//! writes it for a notebook.

use polars::prelude::{Column, DataFrame};

use crate::records::{RunRecord, Status};

/// The metrics shown, in this order, when some run has them.
const KEY_METRICS: [&str; 8] = [
    "evaluate.accuracy",
    "evaluate.roc_auc",
    "evaluate.f1",
    "evaluate.recall",
    "evaluate.specificity",
    "split.leaked_test_images",
    "validate.kept",
    "validate.excluded",
];

/// The key metrics one run has, by name (what the index shows as columns).
pub fn key_metrics(record: &RunRecord) -> std::collections::BTreeMap<&'static str, f64> {
    let metrics = record.numeric_metrics();
    KEY_METRICS
        .iter()
        .filter_map(|&key| metrics.get(key).map(|&v| (key, v)))
        .collect()
}

/// The index of `records`, in their order.
pub fn frame(records: &[RunRecord]) -> DataFrame {
    let text = |name: &str, f: &dyn Fn(&RunRecord) -> String| {
        Column::new(name.into(), records.iter().map(f).collect::<Vec<_>>())
    };
    let count = |name: &str, status: Status| {
        Column::new(
            name.into(),
            records
                .iter()
                .map(|r| r.count(status) as i64)
                .collect::<Vec<_>>(),
        )
    };
    let mut columns = vec![
        text("id", &|r| r.id.clone()),
        text("status", &|r| r.effective_status().to_string()),
        text("pipeline", &|r| r.pipeline.clone()),
        text("started", &|r| super::short_time(&r.started_at)),
        Column::new(
            "seconds".into(),
            records.iter().map(|r| r.duration_s).collect::<Vec<_>>(),
        ),
        count("ran", Status::Ran),
        count("cached", Status::Cached),
        count("failed", Status::Failed),
    ];
    let metrics: Vec<_> = records.iter().map(key_metrics).collect();
    for key in KEY_METRICS {
        if metrics.iter().any(|m| m.contains_key(key)) {
            let values: Vec<Option<f64>> = metrics.iter().map(|m| m.get(key).copied()).collect();
            columns.push(Column::new(key.into(), values));
        }
    }
    DataFrame::new(records.len(), columns).expect("one value per run in every column")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_metrics_become_columns_only_when_present() {
        let run = |id: &str, metrics: serde_json::Value| -> RunRecord {
            serde_json::from_value(json!({
                "format_version": 1, "id": id, "pipeline": "p.yaml", "status": "succeeded",
                "started_at": "2026-11-27T04:00:00.000Z", "duration_s": 1.5, "params": {},
                "pipe_version": "0", "pid": 1, "jobs": 1, "stages": [], "metrics": metrics
            }))
            .unwrap()
        };
        let frame = frame(&[
            run("a", json!({"evaluate": {"accuracy": 0.9}})),
            run("b", json!({"split": {"mode": "group"}})),
        ]);
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names.last().unwrap(), "evaluate.accuracy");
        assert!(!names.contains(&"validate.kept".to_string()));
        let accuracy: Vec<Option<f64>> = frame
            .column("evaluate.accuracy")
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(accuracy, [Some(0.9), None]);
    }
}
