//! The command line: clap definitions, and for each subcommand one library call and the formatting of
//! its result. Nothing here hashes, schedules or reads YAML.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::compare::compare;
use crate::error::{EXIT_OK, EXIT_STAGE_FAILED, Error};
use crate::exec::{Force, Observer, StageResult, Status};
use crate::record::RunRecord;
use crate::spec::{ExecutorKind, Override};
use crate::term::{Terminal, Verbosity, paint, table, use_color};
use crate::workspace::{RunRequest, Workspace};
use polars::prelude::{AnyValue, CsvWriter, SerWriter};

/// pipe: declarative, cached, recorded experiment pipelines.
#[derive(Debug, Parser)]
#[command(name = "pipe", version, about, long_about = None)]
pub struct Cli {
    /// Where run records go.
    #[arg(long, global = true, default_value = "runs")]
    runs_dir: PathBuf,
    /// Where the content-addressed store lives.
    #[arg(long, global = true, default_value = ".pipe")]
    cache_dir: PathBuf,
    /// Print more (keys, warnings).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Print only failures and the final line.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline: stages whose key is cached are restored, the rest run.
    Run {
        /// The pipeline file.
        file: String,
        /// Run only these stages (and what they need).
        stages: Vec<String>,
        /// Override a param or a built-in stage's setting (KEY=VALUE, VALUE read as YAML); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
        /// Run stages even if cached: all selected ones, or the one named (repeatable).
        #[arg(long, value_name = "STAGE", num_args = 0..=1, default_missing_value = "")]
        force: Vec<String>,
        /// Parallel jobs (default: number of cores).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Show what would run, and why, without running anything.
        #[arg(long)]
        dry_run: bool,
        /// After a failure, finish every stage that does not depend on it.
        #[arg(short, long)]
        keep_going: bool,
        /// Where stages run: `local` (this machine) or `slurm` (one `sbatch` job per stage; default:
        /// the pipeline's `executor:`, else local).
        #[arg(long, value_name = "EXECUTOR")]
        executor: Option<ExecutorKind>,
        /// With `--executor slurm`: return once the jobs are queued (`pipe status --run`, `pipe runs`
        /// and `pipe cancel` follow them).
        #[arg(long)]
        detach: bool,
    },
    /// Say per stage whether it is up to date or will run, and why; with `--run`, where a run's
    /// stages are (queued, running, done).
    Status {
        /// The pipeline file.
        #[arg(required_unless_present = "run")]
        file: Option<String>,
        /// A run (id, prefix or `latest`) whose stages to show instead.
        #[arg(long, conflicts_with = "file")]
        run: Option<String>,
        /// Only these stages (and what they need).
        stages: Vec<String>,
        /// Override a param (as in `run`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the stage graph.
    Dag {
        /// The pipeline file.
        file: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DagFormat::Text)]
        format: DagFormat,
    },
    /// List runs, newest first, with their key metrics.
    Runs {
        /// Print JSON, with every metric.
        #[arg(long)]
        json: bool,
        /// Print the index (key metrics as columns) as CSV.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Show one run: params, stages, metrics, where its files are.
    Show {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
    },
    /// Compare runs: params that differ, metrics side by side, stages that ran.
    Compare {
        /// Two or more runs (ids, prefixes or `latest`).
        #[arg(num_args = 2.., required = true)]
        runs: Vec<String>,
    },
    /// Cancel a run on a cluster: its jobs (`scancel`), and its record (status `cancelled`).
    Cancel {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
    },
    /// (Run by a Slurm job.) Evaluate one stage of a submitted run.
    #[command(hide = true)]
    ExecStage {
        /// The run's id.
        run: String,
        /// The stage.
        stage: String,
    },
    /// (Run by a Slurm job.) Complete a submitted run's record once its stage jobs have ended.
    #[command(hide = true)]
    ExecFinish {
        /// The run's id.
        run: String,
    },
    /// Remove old runs and the store entries nothing refers to.
    Gc {
        /// Keep the newest N runs (default: keep all runs, remove only unreferenced store data).
        #[arg(long)]
        keep: Option<usize>,
        /// Say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the built-in stage kinds and their settings.
    Stages,
    /// Label images with the model a run trained (its train stage's checkpoint, same preprocessing).
    Predict {
        /// A run id, a unique prefix of one, or `latest`.
        #[arg(long)]
        run: String,
        /// The train stage, when the run has several.
        #[arg(long)]
        stage: Option<String>,
        /// Images to label.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Pretrained weights files.
    #[command(subcommand)]
    Weights(WeightsCommand),
}

#[derive(Debug, Subcommand)]
enum WeightsCommand {
    /// List a weights file's tensors: name, shape, type, quantisation, size; with `--classify`,
    /// label photographs with the network instead (a check that the weights load right).
    Inspect {
        /// A TensorFlow Lite model (`.tflite`), or (with `--classify`) a checkpoint pipe wrote.
        file: PathBuf,
        /// Images to label with the network's top-5 classes.
        #[arg(long, num_args = 1..)]
        classify: Vec<PathBuf>,
        /// With `--classify`: one line per image, `IMAGE<TAB>LABEL<TAB>PROBABILITY`.
        #[arg(long, requires = "classify")]
        top1: bool,
        /// Class names, one per line (default: `imagenet_labels.txt` beside FILE).
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Convert a TFLite MobileNetV2 into a safetensors checkpoint in torchvision's names (for a train
    /// stage's `weights` input).
    Convert {
        /// A TensorFlow Lite model (`.tflite`).
        file: PathBuf,
        /// The safetensors file to write.
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

struct Silent;

impl Observer for Silent {
    fn started(&self, _: &crate::spec::Stage) {}
    fn finished(&self, _: &StageResult) {}
}

/// Runs the parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Error> {
    let root = std::env::current_dir()
        .map_err(|e| Error::Io(format!("cannot read the current directory: {e}")))?;
    let ws = Workspace::new(root, cli.cache_dir.clone(), cli.runs_dir.clone());
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    match cli.command {
        Command::Run {
            file,
            stages,
            set,
            force,
            jobs,
            dry_run,
            keep_going,
            executor,
            detach,
        } => {
            let request = RunRequest {
                file,
                targets: stages,
                overrides: set,
                force: force_from(force),
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                keep_going,
                executor,
                detach,
            };
            if dry_run {
                plan(&ws, &request, verbosity, false)
            } else {
                run_pipeline(&ws, &request, verbosity)
            }
        }
        Command::Status { run: Some(run), .. } => {
            let record = ws.runs.resolve(&run).map_err(Error::Usage)?;
            print!("{}", render_run_status(&ws, &record));
            Ok(EXIT_OK)
        }
        Command::Status {
            file,
            stages,
            set,
            json,
            run: None,
        } => {
            let request = RunRequest {
                file: file.expect("clap requires FILE without --run"),
                targets: stages,
                overrides: set,
                jobs: 1,
                ..Default::default()
            };
            plan(&ws, &request, verbosity, json)
        }
        Command::Dag { file, format } => {
            let (pipeline, dag) = ws.load(&file, &[])?;
            print!("{}", render_dag(&pipeline, &dag, format));
            Ok(EXIT_OK)
        }
        Command::Runs { json, csv } => list_runs(&ws, json, csv),
        Command::Predict { run, stage, images } => {
            let (predictions, threshold) =
                crate::predict::predict(&ws, &run, stage.as_deref(), &images)
                    .map_err(|e| Error::Usage(format!("{e:#}")))?;
            for p in predictions {
                println!("{}\t{}\t{:.4}", p.image.display(), p.class, p.probability);
            }
            eprintln!("(probability of the positive class; threshold {threshold})");
            Ok(EXIT_OK)
        }
        Command::Show { run } => {
            let record = ws.runs.resolve(&run).map_err(Error::Usage)?;
            print!("{}", render_show(&ws, &record));
            Ok(EXIT_OK)
        }
        Command::Compare { runs } => {
            let records = runs
                .iter()
                .map(|r| ws.runs.resolve(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::Usage)?;
            print!("{}", render_compare(&records));
            let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            let mut name = format!("compare-{}", ids.join("-"));
            if name.len() > 200 {
                // Folder names stop at 255 bytes: many runs get the first id and a hash of all.
                let digest = blake3::hash(ids.join(",").as_bytes()).to_hex();
                name = format!(
                    "compare-{}-and-{}-more-{}",
                    ids[0],
                    ids.len() - 1,
                    &digest[..8]
                );
            }
            let dir = ws.runs.dir().join(name);
            let written = crate::report::compare::write(&dir, &compare(&records), |id| {
                ws.runs.run_dir(id).join("report")
            })
            .map_err(|e| Error::Io(format!("{e:#}")))?;
            println!("\nwrote {}", written.display());
            Ok(EXIT_OK)
        }
        Command::Cancel { run } => {
            let record = ws.runs.resolve(&run).map_err(Error::Usage)?;
            let record = crate::slurm::finish::cancel(&ws, &record)?;
            println!(
                "run {} {} ({} of {} stages done)",
                record.id,
                record.status,
                record.count("ran") + record.count("cached"),
                record.stages.len()
            );
            Ok(EXIT_OK)
        }
        Command::ExecStage { run, stage } => crate::slurm::node::exec_stage(&ws, &run, &stage),
        Command::ExecFinish { run } => crate::slurm::node::exec_finish(&ws, &run),
        Command::Gc { keep, dry_run } => {
            let report = ws.gc(keep, dry_run, wait_message)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            println!(
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
        Command::Weights(WeightsCommand::Inspect {
            file,
            classify,
            top1,
            labels,
        }) if !classify.is_empty() => {
            let usage = |e: anyhow::Error| Error::Usage(format!("{e:#}"));
            let mut classifier =
                crate::weights::classify::Classifier::open(&file, labels.as_deref())
                    .map_err(usage)?;
            for image in &classify {
                let top = classifier
                    .top(image, if top1 { 1 } else { 5 })
                    .map_err(usage)?;
                if top1 {
                    println!("{}\t{}\t{:.4}", image.display(), top[0].0, top[0].1);
                } else {
                    println!("{}:", image.display());
                    for (label, p) in top {
                        println!("  {p:.4}  {label}");
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Command::Weights(WeightsCommand::Convert { file, out }) => {
            let usage = |e: anyhow::Error| Error::Usage(format!("`{}`: {e:#}", file.display()));
            let bytes = std::fs::read(&file)
                .map_err(|e| Error::Io(format!("cannot read `{}`: {e}", file.display())))?;
            let model = crate::weights::tflite::parse(&bytes).map_err(usage)?;
            let mut net = crate::weights::convert::mobilenet_from_tflite(&model).map_err(usage)?;
            crate::model::checkpoint::save(&mut net, &out)
                .map_err(|e| Error::Io(format!("{e:#}")))?;
            println!(
                "wrote {} ({} classes at {} px)",
                out.display(),
                net.config.classes,
                net.config.input
            );
            Ok(EXIT_OK)
        }
        Command::Weights(WeightsCommand::Inspect { file, .. }) => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Error::Io(format!("cannot read `{}`: {e}", file.display())))?;
            let model = crate::weights::tflite::parse(&bytes)
                .map_err(|e| Error::Usage(format!("`{}`: {e:#}", file.display())))?;
            print!("{}", render_weights(&file, &model));
            Ok(EXIT_OK)
        }
        Command::Stages => {
            for kind in crate::kinds::all() {
                println!("{} (v{}): {}", kind.kind, kind.version, kind.description);
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
                    println!("  {name:<20} {what:<7} {}{note}", slot.description);
                }
                for (name, p) in &kind.params {
                    let default = p
                        .default
                        .as_ref()
                        .map(|d| format!(" (default {d})"))
                        .unwrap_or_default();
                    println!("  {name:<20} {:<7} {}{default}", p.ty.name(), p.description);
                }
            }
            Ok(EXIT_OK)
        }
    }
}

fn render_weights(file: &std::path::Path, model: &crate::weights::tflite::Model) -> String {
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn force_from(force: Vec<String>) -> Force {
    if force.is_empty() {
        Force::None
    } else if force.iter().any(String::is_empty) {
        Force::All
    } else {
        Force::Stages(force.into_iter().collect())
    }
}

fn wait_message(holder: &str) {
    let who = if holder.is_empty() {
        String::new()
    } else {
        format!(" ({holder})")
    };
    eprintln!("pipe: another pipe run{who} is using this workspace; waiting for it to finish");
}

fn name_width(names: impl Iterator<Item = usize>) -> usize {
    names.max().unwrap_or(0).min(40)
}

fn run_pipeline(ws: &Workspace, request: &RunRequest, verbosity: Verbosity) -> Result<i32, Error> {
    let (pipeline, _) = ws.load(&request.file, &request.overrides)?;
    let term = Terminal::new(
        verbosity,
        pipeline.stages.len(),
        name_width(pipeline.stages.iter().map(|s| s.name.len())),
    );
    let record = ws.run(request, &term, wait_message)?;
    if record.status == "running" {
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
    let color = use_color();
    let counts: Vec<String> = ["ran", "cached", "failed", "skipped"]
        .iter()
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
        if record.status != "succeeded" {
            "31;1"
        } else {
            "32;1"
        },
        &record.status,
    );
    term.line(&format!(
        "run {} {status}: {} in {:.2}s{saved} (runs/{}/run.json)",
        record.id,
        counts.join(", "),
        record.duration_s,
        record.id
    ));
    Ok(if record.status != "succeeded" {
        EXIT_STAGE_FAILED
    } else {
        EXIT_OK
    })
}

fn plan_word(r: &StageResult) -> &'static str {
    match r.status {
        Status::Cached if r.restored => "will restore",
        Status::Cached => "up to date",
        Status::Skipped => "frozen",
        Status::Failed => "error",
        _ => "will run",
    }
}

fn plan(
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
        println!(
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
        print!("{}", table(&["STATUS", "STAGE", "REASON"], &rows));
        let stale = results
            .iter()
            .filter(|r| plan_word(r) != "up to date")
            .count();
        println!(
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

fn render_dag(
    pipeline: &crate::spec::Pipeline,
    dag: &crate::dag::Dag,
    format: DagFormat,
) -> String {
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

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn list_runs(ws: &Workspace, json: bool, csv: bool) -> Result<i32, Error> {
    let (records, warnings) = ws.runs.list();
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if json {
        let rows: Vec<Value> = records
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "status": r.effective_status(), "pipeline": r.pipeline,
                    "started_at": r.started_at, "duration_s": r.duration_s,
                    "stages": {"ran": r.count("ran"), "cached": r.count("cached"), "failed": r.count("failed"), "skipped": r.count("skipped")},
                    "metrics": r.numeric_metrics(),
                    "key_metrics": crate::run_index::key_metrics(r),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(EXIT_OK);
    }
    let mut index = crate::run_index::frame(&records);
    if csv {
        let stdout = std::io::stdout();
        CsvWriter::new(stdout.lock())
            .finish(&mut index)
            .map_err(|e| Error::Io(format!("cannot write the run index: {e}")))?;
        return Ok(EXIT_OK);
    }
    if records.is_empty() {
        println!("no runs yet in {}", ws.runs.dir().display());
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
    print!("{}", table(&headers, &rows));
    Ok(EXIT_OK)
}

fn render_show(ws: &Workspace, r: &RunRecord) -> String {
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
        if r.executor == ExecutorKind::Local.name() {
            format!("{} job{}", r.jobs, plural(r.jobs))
        } else {
            format!("{} executor", r.executor)
        }
    ));
    if !r.overrides.is_empty() {
        let sets: Vec<String> = r
            .overrides
            .iter()
            .map(|(k, v)| format!("--set {k}={v}"))
            .collect();
        out.push_str(&format!("overrides: {}\n", sets.join(" ")));
    }
    let params: Vec<Vec<String>> = crate::spec::interpolate::flatten_names(&r.params)
        .into_iter()
        .filter_map(|n| {
            let v = crate::spec::interpolate::get_path(&r.params, &n)?;
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
            let time = if s.status == "cached" {
                format!("saved {:.2}s", s.saved_s)
            } else {
                format!("{:.2}s", s.duration_s)
            };
            vec![
                s.status.clone(),
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
    let dir = ws.runs.run_dir(&r.id);
    out.push_str(&format!(
        "\nrecord: {}\nlogs:   {}\n",
        dir.join("run.json").display(),
        dir.join("logs").display()
    ));
    if r.executor != ExecutorKind::Local.name() {
        out.push_str(&format!(
            "jobs:   {} (job scripts, Slurm logs, results)\n",
            dir.join("jobs").display()
        ));
    }
    out
}

/// `pipe status --run`: where each stage of a run is (live for a Slurm run still running).
fn render_run_status(ws: &Workspace, r: &RunRecord) -> String {
    let stages = crate::slurm::current_stages(ws, r);
    let done = stages
        .iter()
        .filter(|s| !matches!(s.status.as_str(), "queued" | "running"))
        .count();
    let mut out = format!(
        "run {} ({}, {} executor) of {}: {done} of {} stage{} done\n",
        r.id,
        r.effective_status(),
        r.executor,
        r.pipeline,
        stages.len(),
        plural(stages.len())
    );
    let rows: Vec<Vec<String>> = stages
        .iter()
        .map(|s| {
            vec![
                s.status.clone(),
                s.name.clone(),
                s.job_id.clone().unwrap_or_else(|| "-".into()),
                if matches!(s.status.as_str(), "ran" | "failed") {
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

fn render_compare(records: &[RunRecord]) -> String {
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
