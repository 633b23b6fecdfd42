//! The text the listing commands print: run records, comparisons, plans, graphs and weights files,
//! as plain strings (the terminal module decides colours and where they go).

use std::collections::BTreeSet;

use serde_json::Value;

use super::args::DagFormat;
use super::terminal::{paint, table, use_color};
use crate::pipeline::graph::Dag;
use crate::pipeline::{ExecutorKind, Pipeline};
use crate::records::compare::compare;
use crate::records::{RunDir, RunRecord, RunStatus, StageRecord, Status};
use crate::run::outcome::StageResult;

pub(super) fn render_weights(
    file: &std::path::Path,
    model: &crate::weights::tflite::Model,
) -> String {
    let constant: usize = model.tensors.iter().map(|t| t.data.len()).sum();
    let mut out = format!(
        "{}: TensorFlow Lite schema v{}, {} tensors, {:.1} MB of constant data\n",
        file.display(),
        model.version,
        model.tensors.len(),
        constant as f64 / 1e6
    );
    let describe = |i: &i32| {
        usize::try_from(*i)
            .ok()
            .and_then(|i| model.tensors.get(i))
            .map_or(format!("#{i} (missing)"), |t| {
                format!("{} {:?} {}", t.name, t.shape, t.dtype)
            })
    };
    for (what, list) in [("input", &model.inputs), ("output", &model.outputs)] {
        for i in list {
            out.push_str(&format!("{what}: {}\n", describe(i)));
        }
    }
    let rows: Vec<Vec<String>> = model
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            vec![
                i.to_string(),
                format!("{:?}", t.shape),
                t.dtype.to_string(),
                t.quantization
                    .map_or("-".into(), |(scale, zero)| format!("{scale:.6} @ {zero}")),
                t.data.len().to_string(),
                t.name.clone(),
            ]
        })
        .collect();
    // Names last: fused TFLite names run to hundreds of characters.
    out.push_str(&table(
        &["#", "SHAPE", "TYPE", "SCALE @ ZERO", "BYTES", "NAME"],
        &rows,
    ));
    out
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn plan_word(r: &StageResult) -> &'static str {
    match r.status {
        Status::Cached if r.restored => "will restore",
        Status::Cached => "up to date",
        Status::Skipped => "frozen",
        Status::Failed => "error",
        _ => "will run",
    }
}

pub(super) fn render_dag(pipeline: &Pipeline, dag: &Dag, format: DagFormat) -> String {
    let mut out = String::new();
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    match format {
        DagFormat::Text => {
            for &i in dag.order() {
                let stage = &pipeline.stages[i];
                out.push_str(&format!("{} ({})\n", stage.name, stage.kind_name()));
                let ups: BTreeSet<(usize, String)> =
                    dag.upstream(i).map(|(u, e)| (u, e.dep.clone())).collect();
                for (u, dep) in ups {
                    out.push_str(&format!("  <- {} (reads {dep})\n", names[u]));
                }
            }
        }
        DagFormat::Dot => {
            out.push_str("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
            for name in &names {
                out.push_str(&format!("  \"{name}\";\n"));
            }
            for (from, to, edge) in dag.edges() {
                out.push_str(&format!(
                    "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
                    names[from], names[to], edge.dep
                ));
            }
            out.push_str("}\n");
        }
        DagFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, name) in names.iter().enumerate() {
                out.push_str(&format!("  s{i}[\"{name}\"]\n"));
            }
            for (from, to, _) in dag.edges() {
                out.push_str(&format!("  s{from} --> s{to}\n"));
            }
        }
    }
    out
}

pub(super) fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// `pipe show`: a run's record, readable.
pub(super) fn render_show(r: &RunRecord, dir: &RunDir) -> String {
    let mut out = format!(
        "run {} ({}) of {}\n",
        r.id,
        r.effective_status(),
        r.pipeline
    );
    out.push_str(&format!(
        "started {} finished {} ({:.2}s), pipe {}, {}\n",
        r.started_at,
        r.finished_at.as_deref().unwrap_or("-"),
        r.duration_s,
        r.pipe_version,
        if r.executor == ExecutorKind::Local {
            format!("{} job{}", r.jobs, plural(r.jobs))
        } else {
            format!("{} executor", r.executor.name())
        }
    ));
    if !r.overrides.is_empty() {
        let sets: Vec<String> = r
            .overrides
            .iter()
            .map(|o| format!("--set {}={}", o.key, o.value))
            .collect();
        out.push_str(&format!("overrides: {}\n", sets.join(" ")));
    }
    let params: Vec<Vec<String>> = crate::pipeline::interpolate::flatten_names(&r.params)
        .into_iter()
        .filter_map(|n| {
            let v = crate::pipeline::interpolate::get_path(&r.params, &n)?;
            (!v.is_object()).then(|| vec![n.clone(), v.to_string()])
        })
        .collect();
    if !params.is_empty() {
        out.push_str("\nparams:\n");
        out.push_str(&indent(&table(&["PARAM", "VALUE"], &params)));
    }
    let stages: Vec<Vec<String>> = r
        .stages
        .iter()
        .map(|s| {
            let time = if s.status == Status::Cached {
                format!("saved {:.2}s", s.saved_s)
            } else {
                format!("{:.2}s", s.duration_s)
            };
            vec![
                s.status.to_string(),
                s.name.clone(),
                s.kind.clone(),
                time,
                s.key
                    .as_deref()
                    .map(|k| k[..12].to_string())
                    .unwrap_or_default(),
                s.reason.clone(),
            ]
        })
        .collect();
    out.push_str("\nstages:\n");
    out.push_str(&indent(&table(
        &["STATUS", "STAGE", "KIND", "TIME", "KEY", "REASON"],
        &stages,
    )));
    for s in r.stages.iter().filter(|s| s.error.is_some()) {
        out.push_str(&format!(
            "\n{} failed: {}\n",
            s.name,
            s.error.as_deref().unwrap_or_default()
        ));
    }
    let metrics: Vec<Vec<String>> = r
        .numeric_metrics()
        .iter()
        .map(|(k, v)| vec![k.clone(), format_number(*v)])
        .collect();
    if !metrics.is_empty() {
        out.push_str("\nmetrics:\n");
        out.push_str(&indent(&table(&["METRIC", "VALUE"], &metrics)));
    }
    out.push_str(&format!(
        "\nrecord: {}\nlogs:   {}\n",
        dir.record().display(),
        dir.logs().display()
    ));
    if r.executor != ExecutorKind::Local {
        out.push_str(&format!(
            "jobs:   {} (job scripts, Slurm logs, results)\n",
            dir.jobs().display()
        ));
    }
    out
}

/// `pipe status --run`: where each stage of a run is (live for a Slurm run still running).
pub(super) fn render_run_status(r: &RunRecord, stages: &[StageRecord]) -> String {
    let done = stages
        .iter()
        .filter(|s| !matches!(s.status, Status::Queued | Status::Running))
        .count();
    let mut out = format!(
        "run {} ({}, {} executor) of {}: {done} of {} stage{} done\n",
        r.id,
        r.effective_status(),
        r.executor.name(),
        r.pipeline,
        stages.len(),
        plural(stages.len())
    );
    let rows: Vec<Vec<String>> = stages
        .iter()
        .map(|s| {
            vec![
                s.status.to_string(),
                s.name.clone(),
                s.job_id.clone().unwrap_or_else(|| "-".into()),
                if matches!(s.status, Status::Ran | Status::Failed) {
                    format!("{:.2}s", s.duration_s)
                } else {
                    String::new()
                },
                s.error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .unwrap_or(&s.reason)
                    .to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["STATUS", "STAGE", "JOB", "TIME", "REASON"], &rows));
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

pub(super) fn render_compare(records: &[RunRecord]) -> String {
    let c = compare(records);
    let mut headers: Vec<&str> = vec!["PARAM"];
    headers.extend(c.runs.iter().map(String::as_str));
    let mut out = String::new();
    if c.params.is_empty() {
        out.push_str("params: identical\n");
    } else {
        out.push_str("params that differ:\n");
        let rows: Vec<Vec<String>> = c
            .params
            .iter()
            .map(|(name, values)| {
                let mut row = vec![name.clone()];
                row.extend(
                    values
                        .iter()
                        .map(|v| v.as_ref().map_or("-".into(), Value::to_string)),
                );
                row
            })
            .collect();
        out.push_str(&indent(&table(&headers, &rows)));
    }
    if !c.metrics.is_empty() {
        out.push_str("\nmetrics (delta against the first run):\n");
        let mut headers: Vec<String> = vec!["METRIC".into()];
        headers.extend(c.runs.iter().cloned());
        let rows: Vec<Vec<String>> = c
            .metrics
            .iter()
            .map(|(name, values)| {
                let mut row = vec![name.clone()];
                for (i, v) in values.iter().enumerate() {
                    let cell = match (v, values[0]) {
                        (Some(v), Some(base)) if i > 0 => {
                            format!("{} ({:+.4})", format_number(*v), v - base)
                        }
                        (Some(v), _) => format_number(*v),
                        (None, _) => "-".into(),
                    };
                    row.push(cell);
                }
                row
            })
            .collect();
        let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        out.push_str(&indent(&table(&header_refs, &rows)));
    }
    out.push_str("\nstages that ran:\n");
    for (id, ran) in c.runs.iter().zip(&c.ran) {
        let list = if ran.is_empty() {
            "(none: all cached)".to_string()
        } else {
            ran.join(", ")
        };
        out.push_str(&format!("  {id}: {list}\n"));
    }
    out
}

/// The line that ends a run: its status, what its stages did, the time the cache saved.
pub(super) fn run_summary(record: &RunRecord) -> String {
    let color = use_color();
    let counts: Vec<String> = [Status::Ran, Status::Cached, Status::Failed, Status::Skipped]
        .into_iter()
        .map(|s| (s, record.count(s)))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let saved: f64 = record.stages.iter().map(|s| s.saved_s).sum();
    let saved = if saved >= 0.005 {
        format!(", {saved:.2}s saved by the cache")
    } else {
        String::new()
    };
    let status = paint(
        color,
        if record.status != RunStatus::Succeeded {
            "31;1"
        } else {
            "32;1"
        },
        record.status.word(),
    );
    format!(
        "run {} {status}: {} in {:.2}s{saved} (runs/{}/run.json)",
        record.id,
        counts.join(", "),
        record.duration_s,
        record.id
    )
}
