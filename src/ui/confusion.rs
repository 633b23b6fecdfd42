//! A classifier's confusion matrix from the counts its evaluate stage recorded
//! (`<stage>.confusion.{tp,fp,tn,fn}`), as an HTML table: each cell with its count and its share of
//! the actual class, shaded by that share, so it reads in grey and by a screen reader. The run page
//! shows one; the compare page puts the runs' side by side.

use std::fmt::Write as _;

use super::html::escape;
use crate::records::RunRecord;

/// The four counts of one run, with the split and threshold they were counted at.
#[derive(Debug, PartialEq)]
pub struct Confusion {
    /// What the counts were scored on: "test split, threshold 0.500".
    pub scored_on: String,
    tp: u64,
    fp: u64,
    tn: u64,
    false_negatives: u64,
}

/// The first stage's confusion counts in `record`, if a stage recorded them.
pub fn of(record: &RunRecord) -> Option<Confusion> {
    record.metrics.values().find_map(|metrics| {
        let counts = metrics.get("confusion")?;
        let count = |name: &str| counts.get(name)?.as_u64();
        let split = metrics.get("split").and_then(|s| s.as_str());
        let threshold = metrics.get("threshold").and_then(|t| t.as_f64());
        let scored_on = match (split, threshold) {
            (Some(split), Some(t)) => format!("{split} split, threshold {t:.3}"),
            (Some(split), None) => format!("{split} split"),
            _ => String::new(),
        };
        Some(Confusion {
            scored_on,
            tp: count("tp")?,
            fp: count("fp")?,
            tn: count("tn")?,
            false_negatives: count("fn")?,
        })
    })
}

/// A cell: the count, its share of its row, shaded darker the larger the share.
fn cell(count: u64, row_total: u64, right: bool) -> String {
    let share = if row_total == 0 {
        0.0
    } else {
        count as f64 / row_total as f64
    };
    let lightness = 97.0 - 45.0 * share;
    let ink = if lightness < 68.0 { "#fff" } else { "#1d1d1d" };
    format!(
        "<td class=\"{}\" style=\"background:hsl(210 55% {lightness:.0}%);color:{ink}\">{count}<br><small>{:.1}%</small></td>",
        if right { "right" } else { "wrong" },
        share * 100.0
    )
}

/// The matrix as a table captioned `title` (a run id, or "Confusion matrix").
pub fn table(confusion: &Confusion, title: &str) -> String {
    let Confusion {
        tp,
        fp,
        tn,
        false_negatives,
        ..
    } = *confusion;
    let mut html = format!(
        "<table class=\"confusion\"><caption>{}<br><small>{}</small></caption>\
         <thead><tr><td></td><th scope=\"col\">predicted negative</th><th scope=\"col\">predicted positive</th></tr></thead><tbody>",
        escape(title),
        escape(&confusion.scored_on)
    );
    let _ = write!(
        html,
        "<tr><th scope=\"row\">actual negative</th>{}{}</tr><tr><th scope=\"row\">actual positive</th>{}{}</tr>",
        cell(tn, tn + fp, true),
        cell(fp, tn + fp, false),
        cell(false_negatives, false_negatives + tp, false),
        cell(tp, false_negatives + tp, true),
    );
    html + "</tbody></table>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_from_the_evaluate_stage_and_show_with_their_row_share() {
        let record: RunRecord = serde_json::from_value(serde_json::json!({
            "format_version": 1, "id": "r1", "pipeline": "p.yaml", "status": "succeeded",
            "started_at": "2026-12-07T12:00:00.000Z", "duration_s": 1.0, "params": {},
            "overrides": {}, "targets": [], "pipe_version": "0", "pid": 1, "jobs": 1,
            "executor": "local", "stages": [],
            "metrics": {"train": {"best_epoch": 3}, "evaluate": {"split": "test", "threshold": 0.5,
                "confusion": {"tp": 90, "fp": 5, "tn": 95, "fn": 10}}}
        }))
        .unwrap();
        let confusion = of(&record).unwrap();
        assert_eq!(confusion.scored_on, "test split, threshold 0.500");
        let html = table(&confusion, "r1");
        assert!(html.contains(">90<br><small>90.0%</small>"), "{html}");
        assert!(html.contains(">5<br><small>5.0%</small>"), "{html}");
        assert_eq!(html.matches("class=\"wrong\"").count(), 2);
    }
}
