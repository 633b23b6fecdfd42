//! The command line's grammar: every subcommand, flag and argument, as clap reads them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::pipeline::sweep::Axis;
use crate::pipeline::{ExecutorKind, Override};

/// pipe: declarative, cached, recorded experiment pipelines.
#[derive(Debug, Parser)]
#[command(name = "pipe", version, about, long_about = None)]
pub struct Cli {
    /// Where run records go.
    #[arg(long, global = true, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Where the content-addressed store lives.
    #[arg(long, global = true, default_value = ".pipe")]
    pub cache_dir: PathBuf,
    /// Print more (keys, warnings).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print only failures and the final line.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Sweep a param: KEY=V1,V2,... (values read as YAML) or KEY=A..B (the integers A to B); one
        /// run per combination of all `--sweep` axes (replacing the pipeline's `sweep:`).
        #[arg(long = "sweep", value_name = "KEY=VALUES")]
        sweep: Vec<Axis>,
        /// Run only N combinations of the sweep, drawn at random with `--seed`.
        #[arg(long, value_name = "N")]
        sample: Option<usize>,
        /// The seed of `--sample`.
        #[arg(long, default_value_t = 0, requires = "sample")]
        seed: u64,
        /// Run the pipeline once even though it declares a `sweep:`.
        #[arg(long, conflicts_with = "sweep")]
        no_sweep: bool,
        /// (Set by `--detach`.) The sweep id reserved for this sweep.
        #[arg(long, hide = true)]
        sweep_id: Option<String>,
        /// Do not push what ran to the remote cache (`PIPE_REMOTE`); it is still asked on a miss.
        #[arg(long)]
        no_push: bool,
    },
    /// Push runs' stage results (and their records) to the remote cache (`PIPE_REMOTE`,
    /// `.pipe/config.yaml` or the runs' pipeline's `remote:`): files first, then entries, then each
    /// pipeline's head; what the remote has is not sent again.
    Push {
        /// Runs (ids, prefixes or `latest`); default: every stage result in the local store.
        runs: Vec<String>,
    },
    /// Pull a run's stage results from the remote cache into the local store (`pipe run` then
    /// restores them without running anything).
    Pull {
        /// Runs or sweeps (ids, prefixes or `latest`; one recorded only on the remote by its full
        /// id) whose stages' results to fetch.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        runs: Vec<String>,
        /// Every run and sweep recorded on the remote, with their records kept here.
        #[arg(long)]
        all: bool,
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
        /// Only the runs of this sweep (its id, a prefix of it, or `latest`).
        #[arg(long, value_name = "SWEEP")]
        sweep: Option<String>,
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
        /// Two or more runs (ids, prefixes or `latest`), or with `--group-by` one sweep.
        #[arg(num_args = 1.., required = true)]
        runs: Vec<String>,
        /// Compare a sweep's runs grouped by this param: each metric's mean, sd, min and max per value.
        #[arg(long, value_name = "KEY")]
        group_by: Option<String>,
    },
    /// Serve a read-only web dashboard of the runs on this machine (or write it as static pages).
    Ui {
        /// The port (0: any free one).
        #[arg(long, default_value_t = 8321)]
        port: u16,
        /// The address to listen on; anything but loopback shares every run with the network.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Open the dashboard in the default browser.
        #[arg(long)]
        open: bool,
        /// Write the pages as static files into DIR instead of serving them.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["open"])]
        export: Option<PathBuf>,
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

/// `pipe weights …`.
#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
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

/// How `pipe dag` draws the graph.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DagFormat {
    /// Indented text.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid, for markdown.
    Mermaid,
}
