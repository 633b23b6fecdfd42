//! One run's page: its metrics (with the confusion matrix), its stages with status, time, reason
//! and logs, each built-in stage's metrics as it goes drawn as curves (so a training run's curves
//! grow while it runs: `app.js` swaps the page's `#run` part in every 2 s), its report rendered
//! with its figures, and its params with the overridden ones marked.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Links, figures_section, metric_table, page, value_text};
use crate::records::compare::leaf_names;
use crate::records::{RunRecord, RunStatus, short_time};
use crate::report::history::History;
use crate::ui::confusion::{self, Confusion};
use crate::ui::html::escape;
use crate::ui::markdown::{self, Targets};
use crate::ui::svg;

/// What the run folder holds besides the record.
pub struct RunFiles {
    /// `report/report.md`, if the run wrote a report.
    pub report: Option<String>,
    /// The report's figures (file names in `report/`).
    pub figures: Vec<String>,
    /// The stage logs (file names in `logs/`).
    pub logs: Vec<String>,
    /// Each built-in stage's metrics rows as it went, by stage.
    pub stage_metrics: Vec<(String, Vec<BTreeMap<String, f64>>)>,
    /// The training history the report kept, read only for runs older than the metrics logs.
    pub history: Option<History>,
}

/// Curves of one stage's metrics rows (`stage`, or the report's kept history): a chart of the
/// losses and one of the accuracies, one series per column, and every column in a table.
fn stage_curves(stage: &str, rows: &[BTreeMap<String, f64>]) -> String {
    let mut names: Vec<&String> = rows.iter().flat_map(|r| r.keys()).collect();
    names.sort();
    names.dedup();
    let x =
        |i: usize, row: &BTreeMap<String, f64>| row.get("epoch").copied().unwrap_or(i as f64 + 1.0);
    let column = |name: &str| -> Vec<(f64, f64)> {
        rows.iter()
            .enumerate()
            .filter_map(|(i, row)| Some((x(i, row), *row.get(name)?)))
            .collect()
    };
    let mut charts = String::new();
    let mut legend: Vec<&str> = Vec::new();
    for (title, suffix, range) in [
        ("Loss", "loss", None),
        ("Accuracy", "accuracy", Some((0.0, 1.0))),
    ] {
        let shown: Vec<&String> = names
            .iter()
            .copied()
            .filter(|n| n.ends_with(suffix))
            .collect();
        if shown.is_empty() {
            continue;
        }
        let points: Vec<Vec<(f64, f64)>> = shown.iter().map(|n| column(n)).collect();
        let lines: Vec<svg::Line> = shown
            .iter()
            .zip(&points)
            .map(|(name, points)| {
                legend.push(name);
                svg::Line {
                    name,
                    points,
                    band: &[],
                    style: legend.len() - 1,
                }
            })
            .collect();
        charts.push_str(&svg::line_chart(
            &format!("{title} ({stage})"),
            suffix,
            &lines,
            range,
        ));
    }
    if charts.is_empty() {
        return String::new();
    }
    let mut table =
        String::from("<details><summary>the numbers as a table</summary><table><thead><tr>");
    for name in &names {
        let _ = write!(table, "<th scope=\"col\">{}</th>", escape(name));
    }
    table.push_str("</tr></thead><tbody>");
    for row in rows {
        table.push_str("<tr>");
        for name in &names {
            let cell = row.get(*name).map_or("-".into(), |v| format!("{v:.4}"));
            let _ = write!(table, "<td>{cell}</td>");
        }
        table.push_str("</tr>");
    }
    let heading = if stage == KEPT_HISTORY {
        "Validation curves, as the report kept them".to_string()
    } else {
        format!("Curves of <code>{}</code>, epoch by epoch", escape(stage))
    };
    format!(
        "<h2 id=\"{id}\">{heading}</h2>{legend}<div class=\"figures\">{charts}</div>{table}</tbody></table></details>",
        id = anchor(stage),
        legend = svg::legend(&legend),
    )
}

/// What the curves of a report's kept history are called (no stage has a name with a space).
const KEPT_HISTORY: &str = "kept history";

/// The id of a stage's curves on the page.
fn anchor(stage: &str) -> String {
    let safe: String = stage
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("curves-{safe}")
}

/// The history a report kept as metrics rows (validation columns only).
fn history_rows(history: &History) -> Vec<BTreeMap<String, f64>> {
    let columns = history
        .epochs
        .iter()
        .zip(&history.val_loss)
        .zip(&history.val_accuracy);
    columns
        .map(|((epoch, loss), accuracy)| {
            BTreeMap::from([
                ("epoch".to_string(), *epoch),
                ("val_loss".to_string(), *loss),
                ("val_accuracy".to_string(), *accuracy),
            ])
        })
        .collect()
}

/// How the run's report shows its figures: each with its caption, and the numbers behind the
/// charts a table on the page holds.
struct ReportFiles<'a> {
    links: &'a Links,
    id: &'a str,
    confusion: Option<&'a Confusion>,
    curves_of: Option<&'a str>,
}

impl Targets for ReportFiles<'_> {
    fn figure(&self, file: &str, alt: &str) -> String {
        let numbers = match (file, self.confusion, self.curves_of) {
            ("confusion_matrix.png", Some(c), _) => format!(
                "<details><summary>the numbers as a table</summary>{}</details>",
                confusion::table(c, "Confusion matrix")
            ),
            ("training_curves.png", _, Some(stage)) => format!(
                "<p class=\"note\"><a href=\"#{}\">the numbers as a table</a></p>",
                anchor(stage)
            ),
            _ => String::new(),
        };
        format!(
            "<figure><img src=\"{}\" alt=\"{alt}\" loading=\"lazy\"><figcaption>{alt}</figcaption>{numbers}</figure>",
            self.file(file),
            alt = escape(alt)
        )
    }

    fn file(&self, file: &str) -> String {
        self.links.file(&format!("{}/report/{file}", self.id))
    }
}

fn stages_table(links: &Links, record: &RunRecord, logs: &[String]) -> String {
    let mut html = String::from(
        "<h2>Stages</h2><table id=\"stages\"><thead><tr><th scope=\"col\">stage</th><th scope=\"col\">kind</th><th scope=\"col\">status</th><th scope=\"col\">time (s)</th><th scope=\"col\">reason</th><th scope=\"col\">logs</th></tr></thead><tbody>",
    );
    for stage in &record.stages {
        let stage_logs: Vec<String> = logs
            .iter()
            .filter(|l| l.starts_with(&format!("{}.", stage.name)))
            .map(|l| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    links.file(&format!("{}/logs/{l}", record.id)),
                    escape(&l[stage.name.len() + 1..])
                )
            })
            .collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"status {s}\">{s}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
            escape(&stage.name),
            escape(&stage.kind),
            stage.duration_s,
            escape(stage.error.as_deref().unwrap_or(&stage.reason)),
            stage_logs.join(" "),
            s = escape(stage.status.word()),
        );
    }
    html + "</tbody></table>"
}

fn params_table(record: &RunRecord) -> String {
    let mut html = String::from(
        "<h2>Params</h2><table><thead><tr><th scope=\"col\">param</th><th scope=\"col\">value</th></tr></thead><tbody>",
    );
    for name in leaf_names(&record.params) {
        let value = crate::pipeline::interpolate::get_path(&record.params, &name);
        let overridden = record.overrides.iter().any(|o| o.key == name);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}{}</td></tr>",
            escape(&name),
            escape(&value_text(value)),
            if overridden { " <em>(--set)</em>" } else { "" }
        );
    }
    html + "</tbody></table>"
}

/// The run's page.
pub fn run(links: &Links, record: &RunRecord, files: &RunFiles) -> String {
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
    let confusion = confusion::of(record);
    let numbers = record.numeric_metrics();
    if !numbers.is_empty() {
        let key = crate::records::index::key_metrics(record);
        body.push_str("<h2>Metrics</h2><div class=\"figures\">");
        if !key.is_empty() {
            body.push_str(&metric_table(key.iter().map(|(k, v)| (*k, *v))));
        }
        if let Some(c) = &confusion {
            body.push_str(&confusion::table(c, "Confusion matrix"));
        }
        let _ = write!(
            body,
            "</div><details><summary>all {} metrics</summary>{}</details>",
            numbers.len(),
            metric_table(numbers.iter().map(|(k, v)| (k.as_str(), *v)))
        );
    }
    body.push_str(&stages_table(links, record, &files.logs));
    let kept;
    let mut curves: Vec<(&str, &[BTreeMap<String, f64>])> = files
        .stage_metrics
        .iter()
        .map(|(stage, rows)| (stage.as_str(), rows.as_slice()))
        .collect();
    if let (true, Some(history)) = (curves.is_empty(), &files.history) {
        kept = history_rows(history);
        curves.push((KEPT_HISTORY, &kept));
    }
    for (stage, rows) in &curves {
        body.push_str(&stage_curves(stage, rows));
    }
    let shown_in_report: Vec<String> = match &files.report {
        Some(text) => {
            let targets = ReportFiles {
                links,
                id: &record.id,
                confusion: confusion.as_ref(),
                curves_of: curves.first().map(|(stage, _)| *stage),
            };
            let _ = write!(
                body,
                "<section class=\"report\">{}</section>",
                markdown::render(text, &targets, &["Params", "Stages"])
            );
            let names = &files.figures;
            names
                .iter()
                .filter(|f| text.contains(&format!("({f})")))
                .cloned()
                .collect()
        }
        None => Vec::new(),
    };
    let others: Vec<String> = files
        .figures
        .iter()
        .filter(|f| !shown_in_report.contains(f))
        .cloned()
        .collect();
    let heading = if files.report.is_some() {
        "Other figures"
    } else {
        "Report"
    };
    body.push_str(&figures_section(links, heading, &record.id, &others));
    body.push_str(&params_table(record));
    // A running run's page refreshes this part in place (app.js) until the run ends.
    let live = if record.effective_status() == RunStatus::Running {
        " data-live=\"1\""
    } else {
        ""
    };
    let body = format!("<div id=\"run\"{live}>{body}</div>");
    page(links, &format!("Run {}", record.id), &body)
}
