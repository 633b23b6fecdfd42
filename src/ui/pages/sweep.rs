//! A sweep's page: the best run and, for each axis, each metric grouped by the axis's values (a
//! table with the best group marked, a spread chart per metric: each run's value, the mean and one
//! sd), the groups' validation curves with their min-max bands, parallel coordinates from the axes
//! to the metrics, and the runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Links, page, params_to_metrics, status_cell};
use crate::records::RunRecord;
use crate::records::sweep::{Group, SweepRecord, describe, group_by};
use crate::report::compare::higher_is_better;
use crate::report::history::History;
use crate::report::markdown::number;
use crate::report::sweep::{
    Curve, best_run, group_curve, primary_metric, shown_metrics, summary_cell,
};
use crate::ui::html::escape;
use crate::ui::svg;

/// The group with the best mean of `metric`, when the metric says which way is better.
fn best_group(groups: &[Group], metric: &str) -> Option<usize> {
    let higher = higher_is_better(metric)?;
    let mean = |g: &Group| g.metrics.get(metric).map(|s| s.mean);
    let (best, _) = groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| Some((i, mean(g)?)))
        .max_by(|a, b| {
            let order = a.1.total_cmp(&b.1);
            if higher { order } else { order.reverse() }
        })?;
    Some(best)
}

/// Each run's value of `metric` in `group`.
fn values_of(group: &Group, records: &[RunRecord], metric: &str) -> Vec<f64> {
    records
        .iter()
        .filter(|r| group.runs.contains(&r.id))
        .filter_map(|r| r.numeric_metrics().get(metric).copied())
        .collect()
}

/// A line per group: its mean curve with its band, named by `names`.
fn group_lines<'a>(curves: &'a [Curve], names: &'a [String]) -> Vec<svg::Line<'a>> {
    curves
        .iter()
        .zip(names)
        .enumerate()
        .map(|(style, (curve, name))| svg::Line {
            name,
            points: &curve.points,
            band: &curve.band,
            style,
        })
        .collect()
}

/// The groups' validation curves: each group's mean with its min-max band; nothing when no run
/// of the sweep kept a history.
fn group_curves(key: &str, groups: &[Group], histories: &BTreeMap<String, History>) -> String {
    let mut names = Vec::new();
    let (mut accuracy, mut loss) = (Vec::new(), Vec::new());
    for group in groups {
        let kept: Vec<&History> = group.runs.iter().filter_map(|r| histories.get(r)).collect();
        if kept.is_empty() {
            continue;
        }
        names.push(format!("{key}={}", group.value));
        accuracy.push(group_curve(&kept, |h| &h.val_accuracy));
        loss.push(group_curve(&kept, |h| &h.val_loss));
    }
    if names.is_empty() {
        return String::new();
    }
    let legend: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut table = String::from(
        "<details><summary>the curves as a table</summary><table><thead><tr><th scope=\"col\">group</th><th scope=\"col\">epoch</th>\
         <th scope=\"col\">val accuracy: mean [min-max]</th><th scope=\"col\">val loss: mean [min-max]</th></tr></thead><tbody>",
    );
    for ((name, accuracy), loss) in names.iter().zip(&accuracy).zip(&loss) {
        let rows = accuracy.points.iter().zip(&accuracy.band);
        for (((epoch, acc), (acc_lo, acc_hi)), ((_, l), (l_lo, l_hi))) in
            rows.zip(loss.points.iter().zip(&loss.band))
        {
            let _ = write!(
                table,
                "<tr><td>{}</td><td>{epoch}</td><td>{acc:.4} [{acc_lo:.4}-{acc_hi:.4}]</td><td>{l:.4} [{l_lo:.4}-{l_hi:.4}]</td></tr>",
                escape(name)
            );
        }
    }
    table.push_str("</tbody></table></details>");
    format!(
        "<h3>Validation curves by <code>{}</code></h3><p>The mean over each group's runs, shaded from their min to their max.</p>{}{}{table}",
        escape(key),
        svg::legend(&legend),
        svg::validation_charts(&group_lines(&accuracy, &names), &group_lines(&loss, &names)),
    )
}

/// One axis: the table of each metric by the axis's values, a spread chart per metric that says
/// which way is better, and the groups' curves.
fn axis_section(
    key: &str,
    records: &[RunRecord],
    metrics: &[String],
    histories: &BTreeMap<String, History>,
) -> String {
    let groups = group_by(records, key);
    let best = primary_metric(metrics).and_then(|m| best_group(&groups, m));
    let mut html = format!(
        "<h2>By <code>{key}</code></h2><p>Mean ± sample standard deviation [min-max] over the succeeded runs with each value; ★ marks the best mean of the first metric.</p>\
         <table><thead><tr><th scope=\"col\">{key}</th><th scope=\"col\">runs</th>",
        key = escape(key)
    );
    for m in metrics {
        let _ = write!(html, "<th scope=\"col\">{}</th>", escape(m));
    }
    html.push_str("</tr></thead><tbody>");
    for (i, group) in groups.iter().enumerate() {
        let star = if best == Some(i) { " ★" } else { "" };
        let _ = write!(
            html,
            "<tr><td>{}{star}</td><td>{}</td>",
            escape(&group.value.to_string()),
            group.runs.len()
        );
        for m in metrics {
            let _ = write!(html, "<td>{}</td>", escape(&summary_cell(group, m)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table><div class=\"figures\">");
    for metric in metrics
        .iter()
        .filter(|m| higher_is_better(m).is_some())
        .take(4)
    {
        let values: Vec<Vec<f64>> = groups
            .iter()
            .map(|g| values_of(g, records, metric))
            .collect();
        let spreads: Vec<svg::Spread> = groups
            .iter()
            .zip(&values)
            .filter_map(|(g, values)| {
                let s = g.metrics.get(metric)?;
                Some(svg::Spread {
                    label: g.value.to_string(),
                    mean: s.mean,
                    sd: s.sd,
                    values,
                })
            })
            .collect();
        html.push_str(&svg::spread_chart(
            &format!("{metric} by {key}"),
            key,
            metric,
            &spreads,
            best_group(&groups, metric),
        ));
    }
    html.push_str("</div>");
    html + &group_curves(key, &groups, histories)
}

/// The sweep's page; `histories` holds the training histories its runs' reports kept, by run.
pub fn sweep(
    links: &Links,
    sweep: &SweepRecord,
    records: &[RunRecord],
    histories: &BTreeMap<String, History>,
) -> String {
    let metrics = shown_metrics(records);
    let mut body = format!(
        "<h1>Sweep {id}</h1><p><span class=\"status {status}\">{status}</span> · {pipeline} · {n} runs · {duration:.1} s</p>",
        id = escape(&sweep.id),
        status = sweep.status.word(),
        pipeline = escape(&sweep.pipeline),
        n = sweep.runs.len(),
        duration = sweep.duration_s,
    );
    if let Some((best, metric)) = best_run(records, &metrics) {
        let values = sweep
            .runs
            .iter()
            .find(|r| r.run.as_deref() == Some(best.id.as_str()))
            .map_or(String::new(), |r| describe(&r.values));
        let _ = write!(
            body,
            "<p class=\"best\">Best run by <code>{metric}</code>: <a href=\"{href}\">{id}</a> with <code>{values}</code> ({value}).</p>",
            metric = escape(&metric),
            href = links.page("run", &best.id),
            id = escape(&best.id),
            values = escape(&values),
            value = number(best.numeric_metrics()[&metric]),
        );
    }
    for axis in &sweep.axes {
        body.push_str(&axis_section(&axis.key, records, &metrics, histories));
    }
    let keys: Vec<String> = sweep.axes.iter().map(|a| a.key.clone()).collect();
    body.push_str(&params_to_metrics(records, &keys, &metrics));
    body.push_str("<h2>Runs</h2><table><thead><tr><th scope=\"col\">values</th><th scope=\"col\">run</th><th scope=\"col\">status</th></tr></thead><tbody>");
    for run in &sweep.runs {
        let link = run.run.as_deref().map_or("-".into(), |id| {
            format!("<a href=\"{}\">{}</a>", links.page("run", id), escape(id))
        });
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{link}</td>{}</tr>",
            escape(&describe(&run.values)),
            status_cell(run.status)
        );
    }
    body.push_str("</tbody></table>");
    page(links, &format!("Sweep {}", sweep.id), &body)
}
