//! Slurm executor benchmark: the fan workload of `../shared/bench/runner/gen.py` (N independent `sed`
//! stages plus one that gathers them) run by pipe locally, by pipe on Slurm, and by Snakemake, locally
//! and with its Slurm executor (snakemake-executor-plugin-slurm), on the same one-node cluster, one
//! after the other. Every tool's Slurm jobs ask for the same resources (200 MB, 10 minutes), so two
//! run at once on two cores. It prints wall times, the overhead per submitted stage against the local
//! run, the no-op rerun, and the load average.
//!
//!     cargo bench --bench slurm                    # N = 100
//!     cargo bench --bench slurm -- --n 20 --no-snakemake
//!
//! Snakemake comes from `$PIPE_SNAKEMAKE_BIN` or `~/.cache/pipe-anchors/smk-venv/bin` (`python3 -m venv
//! DIR && DIR/bin/pip install snakemake snakemake-executor-plugin-slurm`). Without accounting (no
//! `sacct`), its plugin needs `--slurm-status-command squeue`; its first status check waits
//! `--slurm-init-seconds-before-status-checks` (default 40 s), set to its minimum, 1, here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

use common::{load_average, measure};

const RESOURCES: &str = "resources:\n  mem: 200M\n  time: 10\n";

fn generate(tool: &str, n: usize, out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/runner/gen.py");
    let status = Command::new("python3")
        .arg(&generator)
        .args([
            "--tool",
            tool,
            "--workload",
            "fan",
            "--n",
            &n.to_string(),
            "--out",
        ])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3");
    assert!(status.success(), "gen.py failed for {tool}");
    if tool == "pipe" {
        let file = out.join("pipe.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{RESOURCES}{text}")).unwrap();
    }
}

/// Stages that ran, as the workload's commands log them.
fn stages_run(ws: &Path) -> usize {
    std::fs::read_to_string(ws.join("runs.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn queue_is_empty() -> bool {
    let out = Command::new("squeue")
        .args([
            "--me",
            "--noheader",
            "--states=PENDING,RUNNING,CONFIGURING,COMPLETING",
        ])
        .output()
        .expect("squeue");
    out.status.success() && out.stdout.is_empty()
}

/// First run and no-op rerun of `command` in a fresh copy of `template`: wall seconds of each.
fn first_and_noop(template: &Path, n: usize, command: impl Fn(&Path) -> Command) -> (f64, f64) {
    let ws = template.with_extension("run");
    let _ = std::fs::remove_dir_all(&ws);
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(&ws)
            .status()
            .unwrap()
            .success()
    );
    while !queue_is_empty() {
        std::thread::sleep(Duration::from_millis(500));
    }
    let first = measure(&mut command(&ws)).wall_s;
    assert_eq!(
        stages_run(&ws),
        n + 1,
        "every stage ran once in {}",
        ws.display()
    );
    let noop = measure(&mut command(&ws)).wall_s;
    assert_eq!(
        stages_run(&ws),
        n + 1,
        "nothing ran again in {}",
        ws.display()
    );
    (first, noop)
}

/// Seconds Slurm itself takes for the same DAG of jobs that do nothing: N `true` jobs and one queued
/// after all of them, with the same resources, submitted held and released at once (as pipe does).
fn slurm_floor(root: &Path, n: usize) -> f64 {
    while !queue_is_empty() {
        std::thread::sleep(Duration::from_millis(500));
    }
    let sbatch = |extra: &[String]| -> String {
        let out = Command::new("sbatch")
            .args([
                "--parsable",
                "--hold",
                "--mem=200M",
                "--time=10",
                "--wrap=true",
            ])
            .arg(format!("--output={}/floor-%j.log", root.display()))
            .args(extra)
            .output()
            .expect("sbatch");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let start = std::time::Instant::now();
    let mut ids: Vec<String> = (0..n).map(|_| sbatch(&[])).collect();
    ids.push(sbatch(&[format!("--dependency=afterok:{}", ids.join(":"))]));
    let released = Command::new("scontrol")
        .args(["release", &ids.join(",")])
        .status()
        .unwrap();
    assert!(released.success());
    while !queue_is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(100);
    let slurm_up = Command::new("sinfo")
        .output()
        .is_ok_and(|o| o.status.success());
    if !slurm_up {
        println!("Slurm is not running here: start it with ../shared/slurm/start-local-slurm.sh");
        return;
    }
    let snakemake_bin = std::env::var_os("PIPE_SNAKEMAKE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/pipe-anchors/smk-venv/bin")
        });
    let skip_snakemake = if args.iter().any(|a| a == "--no-snakemake") {
        Some("--no-snakemake".to_string())
    } else if !snakemake_bin.join("snakemake").exists() {
        Some(format!(
            "no {}; see this file's header",
            snakemake_bin.join("snakemake").display()
        ))
    } else {
        None
    };
    let root = std::env::temp_dir().join("pipe-bench-slurm");
    std::fs::create_dir_all(&root).unwrap();
    println!(
        "fan workload, {n} + 1 stages; load average before: {}",
        load_average()
    );
    println!("\n| tool | first run s | per stage s | overhead per stage vs local s | no-op s |");
    println!("|---|---|---|---|---|");
    let stages = (n + 1) as f64;
    let row = |tool: &str, (first, noop): (f64, f64), local: Option<f64>| {
        let overhead = local.map_or("-".to_string(), |l| format!("{:.3}", (first - l) / stages));
        println!(
            "| {tool} | {first:.2} | {:.3} | {overhead} | {noop:.2} |",
            first / stages
        );
    };

    let pipe_template = root.join("pipe-fan");
    generate("pipe", n, &pipe_template);
    let pipe = |executor: &'static str| {
        move |ws: &Path| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
            cmd.args(["run", "pipe.yaml", "--executor", executor, "--jobs", "2"])
                .current_dir(ws);
            cmd
        }
    };
    let pipe_local = first_and_noop(&pipe_template, n, pipe("local"));
    row("pipe, local (2 jobs)", pipe_local, None);
    let pipe_slurm = first_and_noop(&pipe_template, n, pipe("slurm"));
    row("pipe, Slurm", pipe_slurm, Some(pipe_local.0));

    let floor = slurm_floor(&root, n);
    println!(
        "| Slurm alone (`sbatch --wrap true`) | {floor:.2} | {:.3} | - | - |",
        floor / stages
    );
    println!(
        "\npipe on Slurm, overhead per stage over Slurm's own: {:.3} s",
        (pipe_slurm.0 - floor) / stages
    );
    if let Some(reason) = skip_snakemake {
        println!("\n(Snakemake skipped: {reason})");
    } else {
        let smk_template = root.join("smk-fan");
        generate("snakemake", n, &smk_template);
        let path = format!(
            "{}:{}",
            snakemake_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let snakemake = |slurm: bool| {
            let path = path.clone();
            let program = snakemake_bin.join("snakemake");
            move |ws: &Path| {
                let mut cmd = Command::new(&program);
                cmd.env("PATH", &path).current_dir(ws);
                if slurm {
                    cmd.args(["--executor", "slurm", "--jobs", "100"])
                        .args(["--slurm-status-command", "squeue"])
                        .args(["--slurm-init-seconds-before-status-checks", "1"])
                        .args(["--default-resources", "mem_mb=200", "runtime=10"]);
                } else {
                    cmd.args(["--cores", "2"]);
                }
                cmd
            }
        };
        let smk_local = first_and_noop(&smk_template, n, snakemake(false));
        row("Snakemake, local (2 cores)", smk_local, None);
        let smk_slurm = first_and_noop(&smk_template, n, snakemake(true));
        row("Snakemake, Slurm executor", smk_slurm, Some(smk_local.0));
        println!(
            "\npipe on Slurm / Snakemake on Slurm, first run: {:.3}x the time",
            pipe_slurm.0 / smk_slurm.0
        );
    }
    println!("load average after: {}", load_average());
}
