//! The command line: its grammar ([`args`]), one function per subcommand ([`commands`]), the text they
//! print ([`render`]), the remote cache's commands ([`remote`]), and the terminal, the only writer to it
//! while a pipeline runs ([`terminal`]), and what the other commands write to standard output and error, whose readers may go
//! away early ([`output`]).
//! This file maps each subcommand to its function. Nothing here hashes, schedules or reads YAML.

mod args;
mod commands;
mod output;
mod remote;
mod render;
mod sweep;
mod terminal;

pub use args::Cli;
use args::{Command, WeightsCommand};
use terminal::Verbosity;

use crate::error::Error;
use crate::records::SWEEP_PREFIX;
use crate::run::context::RunRequest;
use crate::run::workspace::Workspace;

/// `-q`, `-v` or neither.
fn verbosity(cli: &Cli) -> Verbosity {
    if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

/// The workspace in the current directory, with the remote cache the command uses (if any).
fn workspace(cli: &Cli) -> Result<Workspace, Error> {
    let root = std::env::current_dir()
        .map_err(|e| Error::Io(format!("cannot read the current directory: {e}")))?;
    let mut ws = Workspace::new(root, cli.cache_dir.clone(), cli.runs_dir.clone());
    remote::attach(&mut ws, &cli.command)?;
    Ok(ws)
}

/// Runs the parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Error> {
    let ws = workspace(&cli)?;
    let verbosity = verbosity(&cli);
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
            sweep,
            sample,
            seed,
            no_sweep,
            sweep_id,
            ..
        } => {
            let plan = crate::run::sweep::SweepPlan {
                axes: sweep,
                sample: sample.map(|n| (n, seed)),
                id: sweep_id,
            };
            let request = RunRequest {
                file,
                targets: stages,
                overrides: set,
                force: commands::force_from(force),
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                keep_going,
                executor,
                detach,
                sweep: None,
            };
            commands::run(&ws, request, plan, no_sweep, dry_run, verbosity)
        }
        Command::Status { run: Some(run), .. } if run.starts_with(SWEEP_PREFIX) => {
            sweep::sweep_status(&ws, &run)
        }
        Command::Status { run: Some(run), .. } => commands::run_status(&ws, &run),
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
            commands::plan(&ws, &request, verbosity, json)
        }
        Command::Dag { file, format } => commands::dag(&ws, &file, format),
        Command::Runs { sweep, json, csv } => commands::list_runs(&ws, sweep.as_deref(), json, csv),
        Command::Predict { run, stage, images } => {
            commands::predict(&ws, &run, stage.as_deref(), &images)
        }
        Command::Show { run } => commands::show(&ws, &run),
        Command::Compare {
            runs,
            group_by: Some(key),
        } if runs.len() == 1 => sweep::compare_sweep(&ws, &runs[0], &key),
        Command::Compare { runs, .. } if runs.len() < 2 => Err(Error::Usage(
            "`pipe compare` needs two or more runs, or one sweep with `--group-by KEY`".into(),
        )),
        Command::Compare { runs, .. } => commands::compare(&ws, &runs),
        Command::Ui {
            port,
            host,
            open,
            export,
        } => commands::ui(&ws, (host, port), open, export.as_deref()),
        Command::Cancel { run } if run.starts_with(SWEEP_PREFIX) => sweep::cancel_sweep(&ws, &run),
        Command::Cancel { run } => commands::cancel(&ws, &run),
        Command::ExecStage { run, stage } => crate::run::slurm::node::exec_stage(&ws, &run, &stage),
        Command::ExecFinish { run } => remote::exec_finish(&ws, &run),
        Command::Gc { keep, dry_run } => commands::gc(&ws, keep, dry_run),
        Command::Weights(WeightsCommand::Inspect {
            file,
            classify,
            top1,
            labels,
        }) if !classify.is_empty() => commands::classify(&file, &classify, top1, labels.as_deref()),
        Command::Weights(WeightsCommand::Convert { file, out }) => {
            commands::convert_weights(&file, &out)
        }
        Command::Weights(WeightsCommand::Inspect { file, .. }) => commands::inspect_weights(&file),
        Command::Stages => commands::stages(),
        Command::Push { runs } => remote::push(&ws, &runs),
        Command::Pull { runs, all } => remote::pull(&ws, &runs, all),
    }
}
