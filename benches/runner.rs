//! Runner benchmark: pipe's own side of the runner targets, on the workloads that
//! `../shared/bench/runner/gen.py` generates for DVC and Snakemake (so all three tools see the same
//! stages, commands and files).
//!
//! For the 1,000-stage chain and fan it measures the first run, pipe's overhead per stage (first run
//! minus the time the same commands take when a shell loop runs them), the no-op rerun (median), and
//! the peak RSS; for the data workload (10,000 files + 1 GiB) the first hash's throughput against
//! `b3sum` on the same files and the no-op rerun. It prints a table and the load average.
//!
//!     cargo bench --bench runner            # everything (writes ~1.3 GB under $TMPDIR)
//!     cargo bench --bench runner -- --quick # chain and fan only

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{Measured, load_average, measure, median};

const REPS: usize = 5;

fn generate(generator: &Path, workload: &str, n: usize, out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    let status = Command::new("python3")
        .arg(generator)
        .args([
            "--tool",
            "pipe",
            "--workload",
            workload,
            "--n",
            &n.to_string(),
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("python3");
    assert!(status.success(), "gen.py failed for {workload}");
}

fn pipe(ws: &Path, jobs: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
    cmd.args(["run", "pipe.yaml", "--jobs", &jobs.to_string()])
        .current_dir(ws);
    cmd
}

/// Seconds the stages' commands take on their own, one after another: each in its own `sh -c`, as
/// every runner starts them, and (for reference) all in one shell.
fn commands_alone(ws: &Path) -> (f64, f64) {
    let text = std::fs::read_to_string(ws.join("pipe.yaml")).unwrap();
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let cmds: Vec<String> = spec["stages"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(_, stage)| stage["cmd"].as_str().unwrap().to_string())
        .collect();
    let copy = ws.with_extension("baseline");
    let fresh_copy = || {
        let _ = std::fs::remove_dir_all(&copy);
        Command::new("cp")
            .arg("-r")
            .arg(ws)
            .arg(&copy)
            .status()
            .unwrap();
        std::fs::create_dir_all(copy.join("out")).unwrap();
    };
    fresh_copy();
    let start = Instant::now();
    for cmd in &cmds {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&copy)
            .status()
            .unwrap();
        assert!(ok.success(), "{cmd}");
    }
    let per_command = start.elapsed().as_secs_f64();
    fresh_copy();
    let script = format!("set -e\n{}", cmds.join("\n"));
    let one_shell = measure(Command::new("sh").arg("-c").arg(&script).current_dir(&copy)).wall_s;
    let _ = std::fs::remove_dir_all(&copy);
    (per_command, one_shell)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generator = root.join("../shared/bench/runner/gen.py");
    if !generator.exists() {
        println!(
            "skipping the runner benchmark: {} not found (../shared is absent)",
            generator.display()
        );
        return;
    }
    let base: PathBuf = std::env::temp_dir().join("pipe-bench");
    println!("load average before: {}", load_average());
    println!(
        "| workload | jobs | first run s | commands, each in sh -c s | (in one shell s) | overhead ms/stage | no-op rerun s (median of {REPS}) | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (workload, n) in [("chain", 1000), ("fan", 1000)] {
        for jobs in [1, 2] {
            let ws = base.join(format!("{workload}-{n}-j{jobs}"));
            generate(&generator, workload, n, &ws);
            let (alone, one_shell) = commands_alone(&ws);
            let first = measure(&mut pipe(&ws, jobs));
            let noops: Vec<Measured> = (0..REPS).map(|_| measure(&mut pipe(&ws, jobs))).collect();
            let rss = noops
                .iter()
                .map(|m| m.max_rss_mb)
                .fold(first.max_rss_mb, f64::max);
            let stages = if workload == "fan" { n + 1 } else { n };
            // With two jobs the commands can overlap, so the per-stage overhead is only meaningful at one.
            let overhead = if jobs == 1 {
                format!("{:.2}", (first.wall_s - alone) * 1000.0 / stages as f64)
            } else {
                "-".into()
            };
            println!(
                "| {workload} {n} | {jobs} | {:.2} | {alone:.2} | {one_shell:.2} | {overhead} | {:.3} | {rss:.0} |",
                first.wall_s,
                median(noops.iter().map(|m| m.wall_s).collect())
            );
            let _ = std::fs::remove_dir_all(&ws);
        }
    }
    if !quick {
        let ws = base.join("data");
        generate(&generator, "data", 1, &ws);
        let bytes: u64 = walk_size(&ws.join("data"));
        let b3sum_installed = Command::new("b3sum")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        let b3 = b3sum_installed.then(|| {
            let run = || {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg("find data -type f -print0 | xargs -0 b3sum > /dev/null")
                    .current_dir(&ws);
                measure(&mut cmd).wall_s
            };
            median((0..3).map(|_| run()).collect())
        });
        let first = measure(&mut pipe(&ws, 2));
        let noop = median(
            (0..REPS)
                .map(|_| measure(&mut pipe(&ws, 2)).wall_s)
                .collect(),
        );
        let gbs = bytes as f64 / first.wall_s / 1e9;
        println!();
        println!(
            "| data (10,000 files + 1 GiB) | first run (hash) s | GB/s | b3sum s | pipe / b3sum throughput | no-op s | peak RSS MB |"
        );
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {:.2} GB | {:.2} | {gbs:.2} | {} | {} | {noop:.3} | {:.0} |",
            bytes as f64 / 1e9,
            first.wall_s,
            b3.map_or("not installed".into(), |t| format!("{t:.2}")),
            b3.map_or("-".into(), |t| format!("{:.2}", t / first.wall_s)),
            first.max_rss_mb
        );
        let _ = std::fs::remove_dir_all(&ws);
    }
    println!("\nload average after: {}", load_average());
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                walk_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
