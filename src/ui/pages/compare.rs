//! Runs side by side: the params that differ, the validation curves overlaid, parallel coordinates
//! from params to metrics, the confusion matrices, each metric with its delta against the first run
//! and the better run marked, and the stages each run ran. One legend hides and shows a run in
//! every chart; a run keeps its colour and dashes in all of them.

use std::fmt::Write as _;

use super::{Links, page, params_to_metrics, value_text};
use crate::records::RunRecord;
use crate::report::history::History;
use crate::report::markdown::number;
use crate::report::sweep::shown_metrics;
use crate::ui::html::escape;
use crate::ui::{confusion, svg};

/// A line per run that kept a history: `all` holds each one's points, `kept` its style and id.
fn run_lines<'a>(
    all: &'a [Vec<(f64, f64)>],
    kept: &'a [(usize, &'a str, &'a History)],
) -> Vec<svg::Line<'a>> {
    all.iter()
        .zip(kept)
        .map(|(points, (style, id, _))| svg::Line {
            name: id,
            points,
            band: &[],
            style: *style,
        })
        .collect()
}

/// The runs' validation curves overlaid (from the histories their reports kept), and the same
/// numbers as a table; nothing when no run kept one.
fn validation_curves(records: &[RunRecord], histories: &[Option<History>]) -> String {
    let kept: Vec<(usize, &str, &History)> = records
        .iter()
        .zip(histories)
        .enumerate()
        .filter_map(|(i, (r, h))| Some((i, r.id.as_str(), h.as_ref()?)))
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    let points = |column: fn(&History) -> &[f64]| -> Vec<Vec<(f64, f64)>> {
        kept.iter()
            .map(|(_, _, h)| {
                h.epochs
                    .iter()
                    .copied()
                    .zip(column(h).iter().copied())
                    .collect()
            })
            .collect()
    };
    let (accuracy, loss) = (points(|h| &h.val_accuracy), points(|h| &h.val_loss));
    let mut html = format!(
        "<h2>Validation curves</h2>{}",
        svg::validation_charts(&run_lines(&accuracy, &kept), &run_lines(&loss, &kept))
    );
    html.push_str("<details><summary>the curves as a table</summary><table><thead><tr><th scope=\"col\">run</th><th scope=\"col\">epoch</th><th scope=\"col\">val accuracy</th><th scope=\"col\">val loss</th></tr></thead><tbody>");
    for (_, id, h) in &kept {
        for ((epoch, acc), l) in h.epochs.iter().zip(&h.val_accuracy).zip(&h.val_loss) {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{epoch}</td><td>{acc:.4}</td><td>{l:.4}</td></tr>",
                escape(id)
            );
        }
    }
    html + "</tbody></table></details>"
}

/// The runs' confusion matrices side by side; nothing when none has one.
fn confusion_matrices(records: &[RunRecord]) -> String {
    let tables: Vec<String> = records
        .iter()
        .filter_map(|r| Some(confusion::table(&confusion::of(r)?, &r.id)))
        .collect();
    if tables.is_empty() {
        return String::new();
    }
    format!(
        "<h2>Confusion matrices</h2><div class=\"figures\">{}</div>",
        tables.concat()
    )
}

/// Which run's value is best in a row of `name`'s values, when the metric says which way is better
/// and the values are not all the same.
fn best_of(name: &str, values: &[Option<f64>]) -> Option<usize> {
    let higher = crate::report::compare::higher_is_better(name)?;
    let present: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, (*v)?)))
        .collect();
    if present.iter().all(|(_, v)| *v == present[0].1) {
        return None;
    }
    let best = present.into_iter().max_by(|a, b| {
        let order = a.1.total_cmp(&b.1);
        if higher { order } else { order.reverse() }
    })?;
    Some(best.0)
}

/// Each metric with its difference from the first run, the better run marked.
fn metrics_table<'m>(
    id: &str,
    head: &str,
    metrics: impl Iterator<Item = &'m (String, Vec<Option<f64>>)>,
) -> String {
    let mut html = format!("<table id=\"{id}\">{head}<tbody>");
    for (name, values) in metrics {
        let best = best_of(name, values);
        let _ = write!(html, "<tr><td>{}</td>", escape(name));
        for (i, v) in values.iter().enumerate() {
            let delta = match (i, v, values[0]) {
                (0, _, _) | (_, None, _) | (_, _, None) => String::new(),
                (_, Some(v), Some(first)) => {
                    let d = v - first;
                    format!(" ({}{})", if d < 0.0 { "−" } else { "+" }, number(d.abs()))
                }
            };
            let star = if best == Some(i) { " ★" } else { "" };
            let _ = write!(
                html,
                "<td>{}{delta}{star}</td>",
                v.map_or("-".into(), number)
            );
        }
        html.push_str("</tr>");
    }
    html + "</tbody></table>"
}

/// The compare page.
pub fn compare(links: &Links, records: &[RunRecord], histories: &[Option<History>]) -> String {
    let c = crate::records::compare::compare(records);
    let head = |first: &str| {
        let mut row = format!("<thead><tr><th scope=\"col\">{first}</th>");
        for id in &c.runs {
            let _ = write!(
                row,
                "<th scope=\"col\"><a href=\"{}\">{}</a></th>",
                links.page("run", id),
                escape(id)
            );
        }
        row + "</tr></thead>"
    };
    let ids: Vec<&str> = c.runs.iter().map(String::as_str).collect();
    let mut body = format!(
        "<h1>Comparison of {} runs</h1>{}<h2>Params that differ</h2>",
        c.runs.len(),
        svg::legend(&ids)
    );
    if c.params.is_empty() {
        body.push_str("<p>None: the runs have the same params.</p>");
    } else {
        let _ = write!(body, "<table id=\"params\">{}<tbody>", head("param"));
        for (name, values) in &c.params {
            let _ = write!(body, "<tr><td>{}</td>", escape(name));
            for v in values {
                let _ = write!(body, "<td>{}</td>", escape(&value_text(v.as_ref())));
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table>");
    }
    if !c.metrics.is_empty() {
        let key = shown_metrics(records);
        let _ = write!(
            body,
            "<h2>Metrics</h2><p>Each value with its difference from the first run; the better run is marked ★.</p>{}\
             <details><summary>all {} metrics</summary>{}</details>",
            metrics_table(
                "metrics",
                &head("metric"),
                c.metrics.iter().filter(|(name, _)| key.contains(name))
            ),
            c.metrics.len(),
            metrics_table("all-metrics", &head("metric"), c.metrics.iter()),
        );
    }
    body.push_str(&validation_curves(records, histories));
    let params: Vec<String> = c.params.iter().map(|(name, _)| name.clone()).collect();
    body.push_str(&params_to_metrics(
        records,
        &params,
        &shown_metrics(records),
    ));
    body.push_str(&confusion_matrices(records));
    let _ = write!(
        body,
        "<h2>Stages that ran</h2><table>{}<tbody><tr><td>ran</td>",
        head("stages")
    );
    for ran in &c.ran {
        let _ = write!(body, "<td>{}</td>", escape(&ran.join(", ")));
    }
    body.push_str("</tr></tbody></table>");
    page(links, "Compare", &body)
}
