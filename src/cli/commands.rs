//! One function per subcommand: the library call it makes and what it prints. The work itself
//! (loading, scheduling, hashing, recording) happens in the library; the text comes from `render`.

use std::path::{Path, PathBuf};

use polars::prelude::{AnyValue, CsvWriter, SerWriter};
use serde_json::{Value, json};

use super::args::DagFormat;
use super::output::{errln, out, outln};
use super::render::{
    format_number, plan_word, plural, render_compare, render_dag, render_run_status, render_show,
    render_weights, run_summary,
};
use super::terminal::{Terminal, Verbosity, paint, table, use_color, wait_message};
use crate::error::{EXIT_OK, EXIT_STAGE_FAILED, Error};
use crate::pipeline::Pipeline;
use crate::pipeline::graph::Dag;
use crate::records::{RunStatus, Status};
use crate::run::context::{Force, RunRequest};
use crate::run::events::{Event, Observer};
use crate::run::sweep::SweepPlan;
use crate::run::workspace::Workspace;

/// `pipe run FILE`, or with `--dry-run` the plan; a sweep when `--sweep` or the pipeline's `sweep:`
/// (unless `--no-sweep`) gives axes.
pub(super) fn run(
    ws: &Workspace,
    request: RunRequest,
    plan: SweepPlan,
    no_sweep: bool,
    dry_run: bool,
    verbosity: Verbosity,
) -> Result<i32, Error> {
    if !plan.axes.is_empty() {
        return super::sweep::run_sweep(ws, &request, &plan, verbosity, dry_run);
    }
    let loaded = ws.load(&request.file, &request.overrides, &request.targets)?;
    if !no_sweep && !loaded.0.sweep.is_empty() {
        let plan = SweepPlan {
            axes: loaded.0.sweep.clone(),
            ..plan
        };
        return super::sweep::run_sweep(ws, &request, &plan, verbosity, dry_run);
    }
    if dry_run {
        self::plan(ws, &request, verbosity, false)
    } else {
        run_pipeline(ws, &request, loaded, verbosity)
    }
}

/// `pipe status --run RUN`: where each stage of a run is (live for a Slurm run still running).
pub(super) fn run_status(ws: &Workspace, run: &str) -> Result<i32, Error> {
    let record = ws.runs.resolve(run).map_err(Error::Usage)?;
    let stages = crate::run::slurm::current_stages(ws, &record);
    out!("{}", render_run_status(&record, &stages));
    Ok(EXIT_OK)
}

/// `pipe dag FILE`.
pub(super) fn dag(ws: &Workspace, file: &str, format: DagFormat) -> Result<i32, Error> {
    let (pipeline, dag) = ws.load(file, &[], &[])?;
    out!("{}", render_dag(&pipeline, &dag, format));
    Ok(EXIT_OK)
}

/// `pipe predict RUN IMAGES…`.
pub(super) fn predict(
    ws: &Workspace,
    run: &str,
    stage: Option<&str>,
    images: &[PathBuf],
) -> Result<i32, Error> {
    let (predictions, threshold) = crate::predict::predict(ws, run, stage, images)
        .map_err(|e| Error::Usage(format!("{e:#}")))?;
    for p in predictions {
        outln!("{}\t{}\t{:.4}", p.image.display(), p.class, p.probability);
    }
    errln!("(probability of the positive class; threshold {threshold})");
    Ok(EXIT_OK)
}

/// `pipe show RUN`.
pub(super) fn show(ws: &Workspace, run: &str) -> Result<i32, Error> {
    let record = ws.runs.resolve(run).map_err(Error::Usage)?;
    out!("{}", render_show(&record, &ws.runs.run_dir(&record.id)));
    Ok(EXIT_OK)
}

/// `pipe compare RUN…`: printed, and written as `runs/compare-<ids>/compare.md`.
pub(super) fn compare(ws: &Workspace, runs: &[String]) -> Result<i32, Error> {
    let records = runs
        .iter()
        .map(|r| ws.runs.resolve(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Usage)?;
    out!("{}", render_compare(&records));
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let dir = crate::records::layout::compare_dir(ws.runs.dir(), &ids);
    let written =
        crate::report::compare::write(&dir, &crate::records::compare::compare(&records), |id| {
            ws.runs.run_dir(id).report()
        })
        .map_err(|e| Error::Io(format!("{e:#}")))?;
    outln!("\nwrote {}", written.display());
    Ok(EXIT_OK)
}

/// `pipe cancel RUN`.
pub(super) fn cancel(ws: &Workspace, run: &str) -> Result<i32, Error> {
    let record = ws.runs.resolve(run).map_err(Error::Usage)?;
    let record = crate::run::slurm::finish::cancel(ws, &record)?;
    outln!(
        "run {} {} ({} of {} stages done)",
        record.id,
        record.status,
        record.count(Status::Ran) + record.count(Status::Cached),
        record.stages.len()
    );
    Ok(EXIT_OK)
}

/// `pipe gc`.
pub(super) fn gc(ws: &Workspace, keep: Option<usize>, dry_run: bool) -> Result<i32, Error> {
    let report = ws.gc(keep, dry_run, wait_message)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    outln!(
        "{verb} {} run{}, {} store entr{}, {} object{} ({:.1} MB)",
        report.runs.len(),
        plural(report.runs.len()),
        report.entries,
        if report.entries == 1 { "y" } else { "ies" },
        report.objects,
        plural(report.objects),
        report.bytes as f64 / 1e6
    );
    Ok(EXIT_OK)
}

/// `pipe weights inspect FILE --classify IMAGES…`: the network's top classes per image.
pub(super) fn classify(
    file: &Path,
    images: &[PathBuf],
    top1: bool,
    labels: Option<&Path>,
) -> Result<i32, Error> {
    let usage = |e: anyhow::Error| Error::Usage(format!("{e:#}"));
    let mut classifier = crate::weights::classify::Classifier::open(file, labels).map_err(usage)?;
    for image in images {
        let top = classifier
            .top(image, if top1 { 1 } else { 5 })
            .map_err(usage)?;
        if top1 {
            outln!("{}\t{}\t{:.4}", image.display(), top[0].0, top[0].1);
        } else {
            outln!("{}:", image.display());
            for (label, p) in top {
                outln!("  {p:.4}  {label}");
            }
        }
    }
    Ok(EXIT_OK)
}

/// `pipe weights convert FILE OUT`.
pub(super) fn convert_weights(file: &Path, out: &Path) -> Result<i32, Error> {
    let usage = |e: anyhow::Error| Error::Usage(format!("`{}`: {e:#}", file.display()));
    let bytes = std::fs::read(file)
        .map_err(|e| Error::Io(format!("cannot read `{}`: {e}", file.display())))?;
    let model = crate::weights::tflite::parse(&bytes).map_err(usage)?;
    let mut net = crate::weights::convert::mobilenet_from_tflite(&model).map_err(usage)?;
    crate::model::checkpoint::save(&mut net, out).map_err(|e| Error::Io(format!("{e:#}")))?;
    outln!(
        "wrote {} ({} classes at {} px)",
        out.display(),
        net.config.classes,
        net.config.input
    );
    Ok(EXIT_OK)
}

/// `pipe weights inspect FILE`: the file's tensors.
pub(super) fn inspect_weights(file: &Path) -> Result<i32, Error> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::Io(format!("cannot read `{}`: {e}", file.display())))?;
    let model = crate::weights::tflite::parse(&bytes)
        .map_err(|e| Error::Usage(format!("`{}`: {e:#}", file.display())))?;
    out!("{}", render_weights(file, &model));
    Ok(EXIT_OK)
}

/// `pipe stages`: every built-in kind with its inputs, outputs and params.
pub(super) fn stages() -> Result<i32, Error> {
    for kind in crate::pipeline::kinds::all() {
        outln!(
            "{} (code {}): {}",
            kind.kind,
            &kind.code[..8],
            kind.description
        );
        for (name, slot) in kind.inputs.iter().chain(&kind.outputs) {
            let what = if kind.inputs.contains_key(name) {
                "input"
            } else {
                "output"
            };
            let note = match (&slot.default, slot.optional) {
                (Some(d), _) => format!(" (default {d})"),
                (None, true) => " (optional)".to_string(),
                (None, false) => " (required)".to_string(),
            };
            outln!("  {name:<20} {what:<7} {}{note}", slot.description);
        }
        for (name, p) in &kind.params {
            let default = p
                .default
                .as_ref()
                .map(|d| format!(" (default {d})"))
                .unwrap_or_default();
            outln!("  {name:<20} {:<7} {}{default}", p.ty.name(), p.description);
        }
    }
    Ok(EXIT_OK)
}

pub(super) fn force_from(force: Vec<String>) -> Force {
    if force.is_empty() {
        Force::None
    } else if force.iter().any(String::is_empty) {
        Force::All
    } else {
        Force::Stages(force.into_iter().collect())
    }
}

fn run_pipeline(
    ws: &Workspace,
    request: &RunRequest,
    loaded: (Pipeline, Dag),
    verbosity: Verbosity,
) -> Result<i32, Error> {
    let pipeline = &loaded.0;
    let term = Terminal::new(verbosity, pipeline);
    let record = ws.run(request, loaded, &term, wait_message)?;
    let (push_warnings, pushed) = super::remote::finish_pushes(ws, Some(&record));
    push_warnings.iter().for_each(|w| term.warn(w));
    pushed.iter().for_each(|line| term.line(line));
    if record.status == RunStatus::Running {
        // Detached: the jobs are queued and the record completes without us.
        let jobs = record.stages.iter().filter(|s| s.job_id.is_some()).count();
        term.line(&format!(
            "run {} submitted: {jobs} job{} queued on Slurm; follow it with `pipe status --run {}`, stop it with `pipe cancel {}`",
            record.id,
            plural(jobs),
            record.id,
            record.id
        ));
        return Ok(EXIT_OK);
    }
    if verbosity > Verbosity::Quiet {
        for w in record
            .warnings
            .iter()
            .filter(|_| verbosity == Verbosity::Verbose)
        {
            term.warn(w);
        }
    }
    term.line(&run_summary(&record));
    crate::run::groups::exit_if_interrupted();
    Ok(if record.status != RunStatus::Succeeded {
        EXIT_STAGE_FAILED
    } else {
        EXIT_OK
    })
}

pub(super) fn plan(
    ws: &Workspace,
    request: &RunRequest,
    verbosity: Verbosity,
    json: bool,
) -> Result<i32, Error> {
    let (pipeline, results) = ws.plan(request, &Silent)?;
    if json {
        let stages: Vec<Value> = results
            .iter()
            .map(|r| json!({"stage": r.name, "status": plan_word(r), "reason": r.error.as_deref().unwrap_or(&r.reason), "key": r.key}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"pipeline": pipeline.file, "stages": stages}))
                .expect("json")
        );
    } else {
        let color = use_color();
        let rows: Vec<Vec<String>> = results
            .iter()
            .filter(|r| verbosity > Verbosity::Quiet || r.status != Status::Cached)
            .map(|r| {
                let word = plan_word(r);
                let code = if word == "up to date" { "2" } else { "36" };
                let reason = r.error.clone().unwrap_or_else(|| {
                    if word == "up to date" {
                        String::new()
                    } else {
                        r.reason.clone()
                    }
                });
                vec![paint(color, code, word), r.name.clone(), reason]
            })
            .collect();
        out!("{}", table(&["STATUS", "STAGE", "REASON"], &rows));
        let stale = results
            .iter()
            .filter(|r| plan_word(r) != "up to date")
            .count();
        outln!(
            "{} of {} stage{} up to date",
            results.len() - stale,
            results.len(),
            plural(results.len())
        );
    }
    Ok(if results.iter().any(|r| r.status == Status::Failed) {
        EXIT_STAGE_FAILED
    } else {
        EXIT_OK
    })
}

pub(super) fn list_runs(
    ws: &Workspace,
    sweep: Option<&str>,
    json: bool,
    csv: bool,
) -> Result<i32, Error> {
    let (mut records, warnings) = ws.runs.list();
    for w in &warnings {
        errln!("warning: {w}");
    }
    if let Some(spec) = sweep {
        let sweep = ws.runs.resolve_sweep(spec).map_err(Error::Usage)?;
        records.retain(|r| r.sweep.as_deref() == Some(sweep.id.as_str()));
    }
    if json {
        let rows: Vec<Value> = records
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "status": r.effective_status(), "pipeline": r.pipeline, "sweep": r.sweep,
                    "started_at": r.started_at, "duration_s": r.duration_s,
                    "stages": {"ran": r.count(Status::Ran), "cached": r.count(Status::Cached), "failed": r.count(Status::Failed), "skipped": r.count(Status::Skipped)},
                    "metrics": r.numeric_metrics(),
                    "key_metrics": crate::records::index::key_metrics(r),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(EXIT_OK);
    }
    let mut index = crate::records::index::frame(&records);
    if csv {
        let mut table = Vec::new();
        CsvWriter::new(&mut table)
            .finish(&mut index)
            .map_err(|e| Error::Io(format!("cannot write the run index: {e}")))?;
        super::output::write_bytes(&table);
        return Ok(EXIT_OK);
    }
    if records.is_empty() {
        outln!("no runs yet in {}", ws.runs.dir().display());
        return Ok(EXIT_OK);
    }
    let headers: Vec<String> = index
        .get_column_names()
        .iter()
        .map(|n| n.to_uppercase())
        .collect();
    let cells: Vec<Vec<String>> = index
        .columns()
        .iter()
        .map(|column| {
            (0..index.height())
                .map(|row| match column.get(row) {
                    Ok(AnyValue::Null) | Err(_) => "-".to_string(),
                    Ok(AnyValue::Float64(v)) if column.name() == "seconds" => format!("{v:.1}s"),
                    Ok(AnyValue::Float64(v)) => format_number(v),
                    Ok(AnyValue::String(v)) => v.to_string(),
                    Ok(other) => other.to_string(),
                })
                .collect()
        })
        .collect();
    let rows: Vec<Vec<String>> = (0..index.height())
        .map(|row| cells.iter().map(|column| column[row].clone()).collect())
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    out!("{}", table(&headers, &rows));
    Ok(EXIT_OK)
}

/// An observer for plans, which print their table at the end.
struct Silent;

impl Observer for Silent {
    fn on(&self, _: Event<'_>) {}
}

/// `pipe ui`: serves the dashboard until interrupted, or (`--export DIR`) writes it as files.
pub(super) fn ui(
    ws: &Workspace,
    address: (std::net::IpAddr, u16),
    open: bool,
    export: Option<&Path>,
) -> Result<i32, Error> {
    if let Some(dir) = export {
        let pages = crate::ui::serve::export(&ws.runs, dir).map_err(|e| {
            Error::Io(format!(
                "cannot export the dashboard to {}: {e}",
                dir.display()
            ))
        })?;
        errln!("wrote {pages} pages to {} (open index.html)", dir.display());
        return Ok(EXIT_OK);
    }
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| Error::Usage(format!("cannot listen on {}:{}: {e}", address.0, address.1)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Io(format!("cannot read the listening address: {e}")))?;
    let url = format!("http://{bound}/");
    errln!(
        "serving the runs of {} on {url} (Ctrl-C stops)",
        ws.runs.dir().display()
    );
    if !address.0.is_loopback() {
        errln!(
            "warning: listening on {}: anyone who can reach this machine can read every run",
            address.0
        );
    }
    if open {
        // A browser that cannot be started is no reason to stop serving.
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    crate::ui::serve::serve(&ws.runs, listener)
        .map_err(|e| Error::Io(format!("the dashboard stopped: {e}")))?;
    Ok(EXIT_OK)
}
