//! Runner benchmark: pipe beside Snakemake on the workloads that `../shared/bench/runner/gen.py`
//! generates for both (so they see the same stages, commands and files), the tools taking turns.
//!
//! For the 1,000-stage chain and fan: the first run in a fresh workspace (one job) and pipe's own
//! overhead a stage (its first run minus the time the same commands take, each in its own `sh -c`,
//! one after another), then the no-op rerun (two jobs) with the default output (stderr not a
//! terminal: one closing line) and with `-q`. Each is the median [min-max] over `ROUNDS` rounds
//! (default 5 for first runs, 10 for no-ops), with the load. Snakemake (`snakemake --cores N
//! --quiet`) is found on PATH or through `$SNAKEMAKE`; without it only pipe's numbers are printed. The
//! data workload (10,000 files + 1 GiB) times the first hash against `b3sum` on the same files.
//!
//!     cargo bench --bench runner            # everything (writes ~1.3 GB under $TMPDIR)
//!     cargo bench --bench runner -- --quick # chain and fan only

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{Rounds, Spread, load_average, measure};

fn generate(generator: &Path, tool: &str, workload: &str, n: usize, out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    let status = Command::new("python3")
        .arg(generator)
        .args(["--tool", tool, "--workload", workload])
        .args([
            "--n",
            &n.to_string(),
            "--smk-recursion-limit",
            "10000",
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("python3");
    assert!(status.success(), "gen.py failed for {tool} {workload}");
}

fn pipe(ws: &Path, jobs: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
    cmd.args(["run", "pipe.yaml", "--jobs", &jobs.to_string()])
        .current_dir(ws);
    cmd
}

fn snakemake(exe: &Path, ws: &Path, jobs: usize) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["--cores", &jobs.to_string(), "--quiet"])
        .current_dir(ws);
    cmd
}

/// Snakemake from `$SNAKEMAKE` or PATH, if it runs.
fn find_snakemake() -> Option<PathBuf> {
    let exe = PathBuf::from(std::env::var("SNAKEMAKE").unwrap_or_else(|_| "snakemake".into()));
    let runs = Command::new(&exe)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        println!(
            "Snakemake skipped: `{} --version` failed (set SNAKEMAKE)",
            exe.display()
        );
    }
    runs.then_some(exe)
}

fn rounds(default: usize) -> usize {
    std::env::var("ROUNDS").map_or(default, |r| r.parse().expect("ROUNDS"))
}

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
    let smk = find_snakemake();
    let base: PathBuf = std::env::temp_dir().join("pipe-bench");
    println!("load average before: {}", load_average());
    for (workload, n) in [("chain", 1000), ("fan", 1000)] {
        let stages = if workload == "fan" { n + 1 } else { n };
        let ours = base.join(format!("{workload}-pipe"));
        let theirs = base.join(format!("{workload}-smk"));
        generate(&generator, "pipe", workload, n, &ours);
        let (alone, _) = commands_alone(&ours);
        let mut pipe_first = || {
            generate(&generator, "pipe", workload, n, &ours);
            measure(&mut pipe(&ours, 1)).wall_s
        };
        let mut smk_first = || {
            generate(&generator, "snakemake", workload, n, &theirs);
            measure(&mut snakemake(smk.as_deref().unwrap(), &theirs, 1)).wall_s
        };
        let mut tools: Vec<&mut dyn FnMut() -> f64> = vec![&mut pipe_first];
        if smk.is_some() {
            tools.push(&mut smk_first);
        }
        let first = Rounds::run(rounds(5), &mut tools);
        let per_stage = |&wall: &f64| (wall - alone) * 1000.0 / stages as f64;
        let overhead = first.values(0, per_stage);
        println!(
            "{workload} {n}, first run, one job ({} rounds, {}; the commands alone {alone:.2} s):",
            first.loads.len(),
            first.load()
        );
        println!(
            "  pipe {} s, its own overhead {} ms a stage",
            first.values(0, |&w| w).show(2),
            overhead.show(2)
        );
        if smk.is_some() {
            let smk_overhead = first.values(1, per_stage);
            println!(
                "  Snakemake {} s, its own overhead {} ms a stage; Snakemake / pipe {}x",
                first.values(1, |&w| w).show(2),
                smk_overhead.show(2),
                first.ratios(1, 0, |&w| w).show(1)
            );
        }
        let mut noop = || measure(&mut pipe(&ours, 2)).wall_s * 1000.0;
        let mut noop_quiet = || measure(pipe(&ours, 2).arg("-q")).wall_s * 1000.0;
        let mut smk_noop =
            || measure(&mut snakemake(smk.as_deref().unwrap(), &theirs, 2)).wall_s * 1000.0;
        let mut tools: Vec<&mut dyn FnMut() -> f64> = vec![&mut noop, &mut noop_quiet];
        if smk.is_some() {
            tools.push(&mut smk_noop);
        }
        let noops = Rounds::run(rounds(10), &mut tools);
        println!(
            "{workload} {n}, no-op rerun, two jobs ({} rounds, {}):",
            noops.loads.len(),
            noops.load()
        );
        println!(
            "  pipe {} ms, with -q {} ms",
            noops.values(0, |&w| w).show(1),
            noops.values(1, |&w| w).show(1)
        );
        if smk.is_some() {
            println!(
                "  Snakemake {} ms; Snakemake / pipe {}x (with -q {}x)",
                noops.values(2, |&w| w).show(0),
                noops.ratios(2, 0, |&w| w).show(0),
                noops.ratios(2, 1, |&w| w).show(0)
            );
        }
        let rss = measure(&mut pipe(&ours, 2)).max_rss_mb;
        println!("  pipe's peak RSS on a no-op {rss:.0} MiB");
        let _ = std::fs::remove_dir_all(&ours);
        let _ = std::fs::remove_dir_all(&theirs);
    }
    if !quick {
        let ws = base.join("data");
        generate(&generator, "pipe", "data", 1, &ws);
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
            Spread::of((0..3).map(|_| run()).collect()).median
        });
        let first = measure(&mut pipe(&ws, 2));
        let noop = Spread::of(
            (0..rounds(5))
                .map(|_| measure(&mut pipe(&ws, 2)).wall_s)
                .collect(),
        )
        .median;
        let gbs = bytes as f64 / first.wall_s / 1e9;
        println!();
        println!(
            "| data (10,000 files + 1 GiB) | first run (hash) s | GB/s | b3sum s | pipe / b3sum throughput | no-op s | peak RSS MiB |"
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
