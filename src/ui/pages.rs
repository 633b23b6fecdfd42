//! The dashboard's pages, rendered on the server as plain HTML tables (readable without JavaScript,
//! in grey, and by a screen reader); `app.js` adds sorting, filtering and selection on top.
//!
//! The same pages are served (`/run/<id>`) and exported (`run/<id>.html`): [`Links`] says which.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::escape;
use super::svg;
use crate::records::compare::leaf_names;
use crate::records::sweep::{SweepRecord, group_by};
use crate::records::sweep::{describe, varying_params};
use crate::records::{RunRecord, RunStatus, short_time};
use crate::report::history::History;
use crate::report::markdown::number;
use crate::report::sweep::{shown_metrics, summary_cell};

/// How pages link to each other and to files under `runs/`.
pub struct Links {
    /// Exported pages link to `.html` files, relative to `root` (`""` or `"../"`).
    pub exported: bool,
    /// The way back to the site's root from the page.
    pub root: &'static str,
}

impl Links {
    /// Links of a served page.
    pub const SERVED: Links = Links {
        exported: false,
        root: "/",
    };

    fn page(&self, kind: &str, id: &str) -> String {
        if self.exported {
            format!("{}{kind}/{id}.html", self.root)
        } else {
            format!("/{kind}/{id}")
        }
    }

    fn index(&self) -> String {
        if self.exported {
            format!("{}index.html", self.root)
        } else {
            "/".into()
        }
    }

    /// A file under `runs/`.
    pub fn file(&self, rel: &str) -> String {
        format!("{}runs/{rel}", self.root)
    }

    fn asset(&self, name: &str) -> String {
        format!("{}assets/{name}", self.root)
    }
}

/// A whole page around `body`.
fn page(links: &Links, title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · pipe</title><link rel=\"stylesheet\" href=\"{css}\"></head>\
         <body><header><a href=\"{index}\">pipe</a> <span>{title}</span></header><main>{body}</main>\
         <script src=\"{js}\"></script></body></html>\n",
        title = escape(title),
        css = links.asset("app.css"),
        js = links.asset("app.js"),
        index = links.index(),
    )
}

fn status_cell(status: RunStatus) -> String {
    format!(
        "<td class=\"status {s}\">{s}</td>",
        s = escape(status.word())
    )
}

fn value_text(value: Option<&Value>) -> String {
    match value {
        None => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// The runs page: every run, newest first, with its key metrics and the params that differ between
/// the listed runs (all params behind a toggle); a sweep's runs are grouped under it.
pub fn runs(links: &Links, records: &[RunRecord], warnings: &[String]) -> String {
    let metrics = shown_metrics(records);
    let differing = varying_params(records);
    let mut all_params: Vec<String> = records.iter().flat_map(|r| leaf_names(&r.params)).collect();
    all_params.sort();
    all_params.dedup();
    let mut body = format!("<h1>Runs ({})</h1>", records.len());
    for w in warnings {
        let _ = write!(body, "<p class=\"warning\">{}</p>", escape(w));
    }
    body.push_str(
        "<form class=\"controls\" id=\"filters\"><label>Filter <input type=\"search\" id=\"filter\" placeholder=\"id, pipeline, param\"></label> \
         <label>Status <select id=\"status\"><option value=\"\">any</option>",
    );
    for s in [
        "succeeded",
        "failed",
        "running",
        "cancelled",
        "interrupted",
        "queued",
    ] {
        let _ = write!(body, "<option>{s}</option>");
    }
    body.push_str("</select></label> <label><input type=\"checkbox\" id=\"all-params\"> all params</label> \
                   <button type=\"button\" id=\"compare\" disabled>Compare selected</button></form>");
    body.push_str("<div class=\"wide\"><table id=\"runs\" class=\"sortable\"><thead><tr><th scope=\"col\">select</th><th scope=\"col\">run</th><th scope=\"col\">status</th><th scope=\"col\">pipeline</th><th scope=\"col\">started</th><th scope=\"col\" data-type=\"number\">duration (s)</th>");
    for m in &metrics {
        let _ = write!(
            body,
            "<th scope=\"col\" data-type=\"number\">{}</th>",
            escape(m)
        );
    }
    for p in &all_params {
        let class = if differing.contains(p) {
            "param"
        } else {
            "param same"
        };
        let _ = write!(
            body,
            "<th scope=\"col\" class=\"{class}\">{}</th>",
            escape(p)
        );
    }
    body.push_str("</tr></thead><tbody>");
    for record in records {
        let numbers = record.numeric_metrics();
        let sweep = record.sweep.as_deref().unwrap_or("");
        let _ = write!(
            body,
            "<tr data-run=\"{id}\" data-sweep=\"{sweep}\" data-pipeline=\"{pipeline}\"><td><input type=\"checkbox\" aria-label=\"select {id}\" value=\"{id}\"></td>\
             <td><a href=\"{href}\">{id}</a>{sweep_link}</td>{status}<td>{pipeline}</td><td>{started}</td><td>{duration:.1}</td>",
            id = escape(&record.id),
            sweep = escape(sweep),
            href = links.page("run", &record.id),
            sweep_link = if sweep.is_empty() {
                String::new()
            } else {
                format!(
                    " <a class=\"sweep\" href=\"{}\">{}</a>",
                    links.page("sweep", sweep),
                    escape(sweep)
                )
            },
            status = status_cell(record.effective_status()),
            pipeline = escape(&record.pipeline),
            started = escape(&short_time(&record.started_at)),
            duration = record.duration_s,
        );
        for m in &metrics {
            let _ = write!(
                body,
                "<td>{}</td>",
                numbers.get(m).map_or("-".into(), |v| number(*v))
            );
        }
        for p in &all_params {
            let class = if differing.contains(p) {
                "param"
            } else {
                "param same"
            };
            let value = crate::pipeline::interpolate::get_path(&record.params, p);
            let _ = write!(
                body,
                "<td class=\"{class}\">{}</td>",
                escape(&value_text(value))
            );
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table></div>");
    page(links, "Runs", &body)
}

/// The figures of a run's or sweep's report (`id`), under `heading`; nothing when there are none.
fn figures_section(links: &Links, heading: &str, id: &str, figures: &[String]) -> String {
    if figures.is_empty() {
        return String::new();
    }
    let mut section = format!("<h2>{heading}</h2><div class=\"figures\">");
    for figure in figures {
        let _ = write!(
            section,
            "<figure><img src=\"{}\" alt=\"{name}\" loading=\"lazy\"><figcaption>{name}</figcaption></figure>",
            links.file(&format!("{id}/report/{figure}")),
            name = escape(figure)
        );
    }
    section + "</div>"
}

/// The runs' validation curves overlaid (from the histories their reports kept), a legend that
/// hides and shows each run, and the same numbers as a table; nothing when no run kept one.
fn validation_curves(records: &[RunRecord], histories: &[Option<History>]) -> String {
    let kept: Vec<(&str, &History)> = records
        .iter()
        .zip(histories)
        .filter_map(|(r, h)| Some((r.id.as_str(), h.as_ref()?)))
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    let points = |column: fn(&History) -> &[f64]| -> Vec<Vec<(f64, f64)>> {
        kept.iter()
            .map(|(_, h)| {
                h.epochs
                    .iter()
                    .copied()
                    .zip(column(h).iter().copied())
                    .collect()
            })
            .collect()
    };
    let (accuracy, loss) = (points(|h| &h.val_accuracy), points(|h| &h.val_loss));
    let chart = |title: &str, y: &str, all: &[Vec<(f64, f64)>], range| {
        let series: Vec<svg::Line> = all
            .iter()
            .zip(&kept)
            .map(|(points, (id, _))| svg::Line { name: id, points })
            .collect();
        svg::line_chart(title, y, &series, range)
    };
    let names: Vec<&str> = kept.iter().map(|(id, _)| *id).collect();
    let mut html = format!(
        "<h2>Validation curves</h2>{}<div class=\"figures\">{}{}</div>",
        svg::legend(&names),
        chart(
            "Validation accuracy",
            "accuracy",
            &accuracy,
            Some((0.0, 1.0))
        ),
        chart("Validation loss", "binary cross-entropy", &loss, None),
    );
    html.push_str("<details><summary>the curves as a table</summary><table><thead><tr><th scope=\"col\">run</th><th scope=\"col\">epoch</th><th scope=\"col\">val accuracy</th><th scope=\"col\">val loss</th></tr></thead><tbody>");
    for (id, h) in &kept {
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

/// A two-column table of metrics.
fn metric_table<'m>(rows: impl Iterator<Item = (&'m str, f64)>) -> String {
    let mut table = String::from(
        "<table><thead><tr><th scope=\"col\">metric</th><th scope=\"col\">value</th></tr></thead><tbody>",
    );
    for (name, value) in rows {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(name),
            number(value)
        );
    }
    table + "</tbody></table>"
}

/// One run: its params, metrics, stages (status, time, reason, logs) and report figures.
pub fn run(links: &Links, record: &RunRecord, figures: &[String], logs: &[String]) -> String {
    let mut body = format!(
        "<h1>Run {id}</h1><p><span class=\"status {status}\">{status}</span> · {pipeline} · started {started} · {duration:.1} s · \
         <a href=\"{json}\">run.json</a></p>",
        id = escape(&record.id),
        status = record.effective_status().word(),
        pipeline = escape(&record.pipeline),
        started = escape(&short_time(&record.started_at)),
        duration = record.duration_s,
        json = links.file(&format!("{}/run.json", record.id)),
    );
    if let Some(sweep) = &record.sweep {
        let _ = write!(
            body,
            "<p>Part of sweep <a href=\"{}\">{}</a>.</p>",
            links.page("sweep", sweep),
            escape(sweep)
        );
    }
    let numbers = record.numeric_metrics();
    if !numbers.is_empty() {
        let key = crate::records::index::key_metrics(record);
        body.push_str("<h2>Metrics</h2>");
        if !key.is_empty() {
            body.push_str(&metric_table(key.iter().map(|(k, v)| (*k, *v))));
        }
        let _ = write!(
            body,
            "<details><summary>all {} metrics</summary>{}</details>",
            numbers.len(),
            metric_table(numbers.iter().map(|(k, v)| (k.as_str(), *v)))
        );
    }
    body.push_str("<h2>Params</h2><table><thead><tr><th scope=\"col\">param</th><th scope=\"col\">value</th></tr></thead><tbody>");
    for name in leaf_names(&record.params) {
        let value = crate::pipeline::interpolate::get_path(&record.params, &name);
        let overridden = record.overrides.iter().any(|o| o.key == name);
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}{}</td></tr>",
            escape(&name),
            escape(&value_text(value)),
            if overridden { " <em>(--set)</em>" } else { "" }
        );
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Stages</h2><table id=\"stages\"><thead><tr><th scope=\"col\">stage</th><th scope=\"col\">kind</th><th scope=\"col\">status</th><th scope=\"col\">time (s)</th><th scope=\"col\">reason</th><th scope=\"col\">logs</th></tr></thead><tbody>");
    for stage in &record.stages {
        let stage_logs: Vec<String> = logs
            .iter()
            .filter(|l| l.starts_with(&format!("{}.", stage.name)))
            .map(|l| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    links.file(&format!("{}/logs/{l}", record.id)),
                    escape(l.rsplit('.').next().unwrap_or(l))
                )
            })
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"status {s}\">{s}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
            escape(&stage.name),
            escape(&stage.kind),
            stage.duration_s,
            escape(stage.error.as_deref().unwrap_or(&stage.reason)),
            stage_logs.join(" "),
            s = escape(stage.status.word()),
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&figures_section(links, "Report", &record.id, figures));
    // A running run's page refreshes this part in place (app.js) until the run ends.
    let live = if record.effective_status() == RunStatus::Running {
        " data-live=\"1\""
    } else {
        ""
    };
    let body = format!("<div id=\"run\"{live}>{body}</div>");
    page(links, &format!("Run {}", record.id), &body)
}

/// A sweep: its runs and each metric grouped by each axis, with the report's figures.
pub fn sweep(
    links: &Links,
    sweep: &SweepRecord,
    records: &[RunRecord],
    figures: &[String],
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
    for axis in &sweep.axes {
        let _ = write!(
            body,
            "<h2>By <code>{key}</code></h2><p>Mean ± sample standard deviation [min-max] over the succeeded runs with each value.</p>\
             <table><thead><tr><th scope=\"col\">{key}</th><th scope=\"col\">runs</th>",
            key = escape(&axis.key)
        );
        for m in &metrics {
            let _ = write!(body, "<th scope=\"col\">{}</th>", escape(m));
        }
        body.push_str("</tr></thead><tbody>");
        for group in group_by(records, &axis.key) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td>",
                escape(&group.value.to_string()),
                group.runs.len()
            );
            for m in &metrics {
                let _ = write!(body, "<td>{}</td>", escape(&summary_cell(&group, m)));
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table>");
    }
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
    body.push_str(&figures_section(links, "Figures", &sweep.id, figures));
    page(links, &format!("Sweep {}", sweep.id), &body)
}

/// Runs side by side: the params that differ, each metric with its delta against the first run and
/// the better run marked, and the stages each run ran.
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
    let mut body = format!(
        "<h1>Comparison of {} runs</h1><h2>Params that differ</h2>",
        c.runs.len()
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
    body.push_str(&validation_curves(records, histories));
    if !c.metrics.is_empty() {
        let _ = write!(
            body,
            "<h2>Metrics</h2><p>Each value with its difference from the first run; the better run is marked ★.</p><table id=\"metrics\">{}<tbody>",
            head("metric")
        );
        for (name, values) in &c.metrics {
            let higher = crate::report::compare::higher_is_better(name);
            let best = higher.and_then(|higher| {
                values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| Some((i, (*v)?)))
                    .max_by(|a, b| {
                        if higher {
                            a.1.total_cmp(&b.1)
                        } else {
                            b.1.total_cmp(&a.1)
                        }
                    })
                    .map(|(i, _)| i)
            });
            let _ = write!(body, "<tr><td>{}</td>", escape(name));
            for (i, v) in values.iter().enumerate() {
                let delta = match (i, v, values[0]) {
                    (0, _, _) | (_, None, _) | (_, _, None) => String::new(),
                    (_, Some(v), Some(first)) => {
                        let d = v - first;
                        format!(" ({}{})", if d < 0.0 { "−" } else { "+" }, number(d.abs()))
                    }
                };
                let star = if best == Some(i)
                    && values
                        .iter()
                        .flatten()
                        .any(|x| Some(*x) != v.as_ref().copied())
                {
                    " ★"
                } else {
                    ""
                };
                let _ = write!(
                    body,
                    "<td>{}{delta}{star}</td>",
                    v.map_or("-".into(), number)
                );
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table>");
    }
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
