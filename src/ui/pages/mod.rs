//! The dashboard's pages, rendered on the server as plain HTML tables (readable without JavaScript,
//! in grey, and by a screen reader) with charts as inline SVG, each with a table of its numbers;
//! `app.js` adds sorting, filtering, selection, legends and live refresh on top.
//!
//! ```text
//!   runs      every run, newest first; a sweep's runs folded under it
//!   run       one run: metrics, stages and logs, live training curves, its report, params
//!   compare   runs side by side: params diff, curves, parallel coordinates, confusion matrices
//!   sweep     a sweep by each axis: spread charts, group curves with bands, the best config
//! ```
//!
//! The same pages are served (`/run/<id>`) and exported (`run/<id>.html`): [`Links`] says which.

mod compare;
mod run;
mod runs;
mod sweep;

pub use compare::compare;
pub use run::{RunFiles, run};
pub use runs::runs;
pub use sweep::sweep;

use std::fmt::Write as _;

use serde_json::Value;

use super::html::escape;
use super::parallel;
use crate::records::RunRecord;
use crate::records::RunStatus;
use crate::report::markdown::number;

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

/// Parallel coordinates of `records` over those of the params `params` and the metrics `metrics`
/// that differ between them; nothing with fewer than two runs or two such axes.
fn params_to_metrics(records: &[RunRecord], params: &[String], metrics: &[String]) -> String {
    let mut axes: Vec<parallel::Axis> = params
        .iter()
        .map(|name| parallel::Axis {
            name: name.clone(),
            values: records
                .iter()
                .map(|r| crate::pipeline::interpolate::get_path(&r.params, name).cloned())
                .collect(),
        })
        .collect();
    axes.extend(metrics.iter().map(|name| {
        parallel::Axis {
            name: name.clone(),
            values: records
                .iter()
                .map(|r| r.numeric_metrics().get(name).map(|v| Value::from(*v)))
                .collect(),
        }
    }));
    // An axis on which every run has the same value says nothing about the others.
    axes.retain(|axis| axis.values.iter().any(|v| *v != axis.values[0]));
    if records.len() < 2 || axes.len() < 2 {
        return String::new();
    }
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    format!(
        "<h2>Params to metrics</h2><p>One line per run through its params (left) and metrics (right); \
         the numbers are in the tables on this page.</p><div class=\"wide\">{}</div>",
        parallel::chart("Parallel coordinates", &axes, &ids)
    )
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
