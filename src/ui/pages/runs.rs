//! The runs page: every run, newest first, with its key metrics and the params that differ between
//! the listed runs (all params behind a toggle). A sweep's runs are folded under one row of the
//! sweep (its metrics' mean ± sd), opened with its button; each is its own `<tbody>`, so sorting
//! moves a sweep with its runs.

use std::fmt::Write as _;

use super::{Links, page, status_cell, value_text};
use crate::records::compare::leaf_names;
use crate::records::sweep::{Summary, varying_params};
use crate::records::{RunRecord, RunStatus, short_time};
use crate::report::markdown::number;
use crate::report::sweep::shown_metrics;
use crate::ui::html::escape;

/// The columns every row has, after the fixed ones.
struct Columns {
    metrics: Vec<String>,
    params: Vec<String>,
    differing: Vec<String>,
}

impl Columns {
    fn param_class(&self, name: &str) -> &'static str {
        if self.differing.iter().any(|d| d == name) {
            "param"
        } else {
            "param same"
        }
    }
}

/// The runs listed together: one run, or a sweep's runs.
enum Block<'r> {
    Run(&'r RunRecord),
    Sweep(&'r str, Vec<&'r RunRecord>),
}

/// `records` (newest first) as blocks, a sweep's where its newest run is.
fn blocks(records: &[RunRecord]) -> Vec<Block<'_>> {
    let mut blocks: Vec<Block> = Vec::new();
    for record in records {
        match record.sweep.as_deref() {
            None => blocks.push(Block::Run(record)),
            Some(id) => {
                let open = blocks.iter_mut().find_map(|b| match b {
                    Block::Sweep(sweep, runs) if *sweep == id => Some(runs),
                    _ => None,
                });
                match open {
                    Some(runs) => runs.push(record),
                    None => blocks.push(Block::Sweep(id, vec![record])),
                }
            }
        }
    }
    blocks
}

fn run_row(links: &Links, columns: &Columns, record: &RunRecord, member: bool) -> String {
    let numbers = record.numeric_metrics();
    let mut row = format!(
        "<tr data-run=\"{id}\"{hidden}><td><input type=\"checkbox\" aria-label=\"select {id}\" value=\"{id}\"></td>\
         <td><a href=\"{href}\">{id}</a></td>{status}<td>{pipeline}</td><td>{started}</td><td>{duration:.1}</td>",
        id = escape(&record.id),
        hidden = if member {
            " class=\"member\" hidden"
        } else {
            ""
        },
        href = links.page("run", &record.id),
        status = status_cell(record.effective_status()),
        pipeline = escape(&record.pipeline),
        started = escape(&short_time(&record.started_at)),
        duration = record.duration_s,
    );
    for m in &columns.metrics {
        let _ = write!(
            row,
            "<td>{}</td>",
            numbers.get(m).map_or("-".into(), |v| number(*v))
        );
    }
    for p in &columns.params {
        let value = crate::pipeline::interpolate::get_path(&record.params, p);
        let _ = write!(
            row,
            "<td class=\"{}\">{}</td>",
            columns.param_class(p),
            escape(&value_text(value))
        );
    }
    row + "</tr>"
}

/// A sweep's status from its runs': running while any is, failed if any failed.
fn sweep_status(runs: &[&RunRecord]) -> RunStatus {
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.effective_status()).collect();
    [
        RunStatus::Running,
        RunStatus::Failed,
        RunStatus::Interrupted,
    ]
    .into_iter()
    .find(|s| statuses.contains(s))
    .unwrap_or(statuses[0])
}

/// The row that stands for a sweep: its metrics' mean ± sd over its succeeded runs, and each
/// param's values.
fn sweep_row(links: &Links, columns: &Columns, id: &str, runs: &[&RunRecord]) -> String {
    let oldest = runs.last().expect("a sweep block has a run");
    let mut row = format!(
        "<tr class=\"sweep-head\"><td><button type=\"button\" class=\"expand\" aria-expanded=\"false\">▸ {n}</button></td>\
         <td><a href=\"{href}\">{id}</a></td>{status}<td>{pipeline}</td><td>{started}</td><td>{duration:.1}</td>",
        n = runs.len(),
        href = links.page("sweep", id),
        id = escape(id),
        status = status_cell(sweep_status(runs)),
        pipeline = escape(&oldest.pipeline),
        started = escape(&short_time(&oldest.started_at)),
        duration = runs.iter().map(|r| r.duration_s).fold(0.0, f64::max),
    );
    let succeeded: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .map(|r| r.numeric_metrics())
        .collect();
    for m in &columns.metrics {
        let values: Vec<f64> = succeeded.iter().filter_map(|n| n.get(m).copied()).collect();
        let cell = match Summary::of(&values) {
            Some(s) if s.n > 1 => format!("{} ± {}", number(s.mean), number(s.sd)),
            Some(s) => number(s.mean),
            None => "-".into(),
        };
        let _ = write!(row, "<td>{cell}</td>");
    }
    for p in &columns.params {
        let mut values: Vec<String> = runs
            .iter()
            .map(|r| value_text(crate::pipeline::interpolate::get_path(&r.params, p)))
            .collect();
        values.sort();
        values.dedup();
        let shown = if values.len() > 4 {
            format!("{} values", values.len())
        } else {
            values.join(", ")
        };
        let _ = write!(
            row,
            "<td class=\"{}\">{}</td>",
            columns.param_class(p),
            escape(&shown)
        );
    }
    row + "</tr>"
}

/// The filters and the compare button above the table.
fn controls(links: &Links) -> String {
    let mut html = String::from(
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
        let _ = write!(html, "<option>{s}</option>");
    }
    html.push_str(
        "</select></label> <label><input type=\"checkbox\" id=\"all-params\"> all params</label> ",
    );
    if links.exported {
        // A comparison is made on request: an exported site has none to link to.
        html.push_str("<button type=\"button\" id=\"compare\" disabled data-needs-server=\"1\" title=\"comparing runs needs `pipe ui`\">Compare selected (with pipe ui)</button></form>");
    } else {
        html.push_str(
            "<button type=\"button\" id=\"compare\" disabled>Compare selected</button></form>",
        );
    }
    html
}

/// The runs page.
pub fn runs(links: &Links, records: &[RunRecord], warnings: &[String]) -> String {
    let mut params: Vec<String> = records.iter().flat_map(|r| leaf_names(&r.params)).collect();
    params.sort();
    params.dedup();
    let columns = Columns {
        metrics: shown_metrics(records),
        params,
        differing: varying_params(records),
    };
    let mut body = format!("<h1>Runs ({})</h1>", records.len());
    for w in warnings {
        let _ = write!(body, "<p class=\"warning\">{}</p>", escape(w));
    }
    body.push_str(&controls(links));
    body.push_str("<div class=\"wide\"><table id=\"runs\" class=\"sortable\"><thead><tr><th scope=\"col\">select</th><th scope=\"col\">run</th><th scope=\"col\">status</th><th scope=\"col\">pipeline</th><th scope=\"col\">started</th><th scope=\"col\" data-type=\"number\">duration (s)</th>");
    for m in &columns.metrics {
        let _ = write!(
            body,
            "<th scope=\"col\" data-type=\"number\">{}</th>",
            escape(m)
        );
    }
    for p in &columns.params {
        let _ = write!(
            body,
            "<th scope=\"col\" class=\"{}\">{}</th>",
            columns.param_class(p),
            escape(p)
        );
    }
    body.push_str("</tr></thead>");
    for block in blocks(records) {
        match block {
            Block::Run(record) => {
                let _ = write!(
                    body,
                    "<tbody>{}</tbody>",
                    run_row(links, &columns, record, false)
                );
            }
            Block::Sweep(id, runs) => {
                let _ = write!(
                    body,
                    "<tbody class=\"sweep\" data-sweep=\"{}\">{}",
                    escape(id),
                    sweep_row(links, &columns, id, &runs)
                );
                for record in runs {
                    body.push_str(&run_row(links, &columns, record, true));
                }
                body.push_str("</tbody>");
            }
        }
    }
    body.push_str("</table></div>");
    page(links, "Runs", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, sweep: Option<&str>) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "id": id, "pipeline": "p.yaml", "status": "succeeded",
            "started_at": "2026-12-07T12:00:00.000Z", "duration_s": 1.0, "params": {"lr": 0.1},
            "overrides": {}, "targets": [], "pipe_version": "0", "pid": 1, "jobs": 1,
            "executor": "local", "stages": [], "metrics": {"train": {"accuracy": 0.5}},
            "sweep": sweep
        }))
        .unwrap()
    }

    #[test]
    fn a_sweeps_runs_are_folded_under_it_where_its_newest_run_is() {
        let records = [
            record("r5", None),
            record("r4", Some("sweep-a")),
            record("r3", None),
            record("r2", Some("sweep-a")),
            record("r1", None),
        ];
        let order: Vec<String> = blocks(&records)
            .iter()
            .map(|b| match b {
                Block::Run(r) => r.id.clone(),
                Block::Sweep(id, runs) => {
                    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
                    format!("{id}[{}]", ids.join(","))
                }
            })
            .collect();
        assert_eq!(order, ["r5", "sweep-a[r4,r2]", "r3", "r1"]);
        let html = runs(&Links::SERVED, &records, &[]);
        assert_eq!(html.matches("<tbody").count(), 4);
        assert_eq!(html.matches("class=\"member\" hidden").count(), 2);
        assert!(html.contains("▸ 2</button>"), "{html}");
    }
}
