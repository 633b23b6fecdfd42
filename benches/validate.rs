//! Data-stage benchmark: `ingest` + `validate` over the real sample (`../shared/data/fracture-sample`,
//! 1,067 X-rays, 34 MB), side by side with the Pillow loop of `../shared/bench/anchors/pillow_validate.py`
//! (full decode, byte hash, 8 rotated/flipped difference hashes per image, 2 processes).
//! Both are timed from spawn to exit, taking turns (`ROUNDS`, default 5), as medians [min-max] with
//! the ratio's; pipe also copies every image into the workspace, hashes its source folder and groups
//! near duplicates, which the Pillow loop does not.
//!
//!     cargo bench --bench validate                 # Pillow from `python3`
//!     PILLOW_PYTHON=/path/to/venv/bin/python cargo bench --bench validate

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Measured, Rounds, load_average, measure};

const PIPELINE: &str = r#"
stages:
  ingest:
    uses: ingest
    with:
      source: 'SOURCE'
  validate:
    uses: validate
"#;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

fn summarize(name: &str, images: usize, measured: &Rounds<Measured>, tool: usize) {
    let wall = measured.values(tool, |m| m.wall_s);
    let rate = measured.values(tool, |m| images as f64 / m.wall_s);
    let rss = measured.values(tool, |m| m.max_rss_mb);
    println!(
        "{name:<28} {} s  {} images/s  peak RSS {:.1} MiB",
        wall.show(3),
        rate.show(0),
        rss.max
    );
}

fn main() {
    let sample = shared().join("data/fracture-sample");
    if !sample.is_dir() {
        println!("skipped: {} is absent", sample.display());
        return;
    }
    let sample = sample.canonicalize().expect("sample path");
    let python = std::env::var("PILLOW_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_pillow = Command::new(&python)
        .args(["-c", "import PIL"])
        .status()
        .is_ok_and(|s| s.success());
    let anchor = shared().join("bench/anchors/pillow_validate.py");

    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ws.path().join("pipe.yaml"),
        PIPELINE.replace("SOURCE", &sample.display().to_string().replace('\'', "''")),
    )
    .expect("write pipeline");
    let pipe = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
        cmd.args(["run", "pipe.yaml", "--force"])
            .current_dir(ws.path());
        cmd
    };
    measure(&mut pipe()); // warm the page cache and the stat cache
    let images = images_validated(ws.path());

    println!("load average before: {}", load_average());
    let rounds: usize = std::env::var("ROUNDS").map_or(5, |r| r.parse().expect("ROUNDS"));
    let mut ours = || measure(&mut pipe());
    let mut theirs = || {
        measure(
            Command::new(&python)
                .arg(&anchor)
                .arg(&sample)
                .args(["--procs", "2"]),
        )
    };
    let mut tools: Vec<&mut dyn FnMut() -> Measured> = vec![&mut ours];
    if has_pillow {
        tools.push(&mut theirs);
    }
    let measured = Rounds::run(rounds, &mut tools);
    println!(
        "{images} images, {rounds} rounds (the tools taking turns), {}; median [min-max]",
        measured.load()
    );
    summarize("pipe ingest + validate", images, &measured, 0);
    if has_pillow {
        summarize("Pillow loop (2 processes)", images, &measured, 1);
        println!(
            "pipe / Pillow loop (images/s): {}x",
            measured.ratios(1, 0, |m| m.wall_s).show(2)
        );
    } else {
        println!("Pillow anchor skipped: `{python} -c 'import PIL'` failed (set PILLOW_PYTHON)");
    }
    println!("load average after: {}", load_average());
}

/// The images the last run validated, from its run record.
fn images_validated(workspace: &Path) -> usize {
    let mut runs: Vec<_> = std::fs::read_dir(workspace.join("runs"))
        .expect("runs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("run.json").is_file())
        .collect();
    runs.sort();
    let record =
        std::fs::read_to_string(runs.last().expect("a run").join("run.json")).expect("run.json");
    let record: serde_json::Value = serde_json::from_str(&record).expect("run.json is JSON");
    record["metrics"]["validate"]["images"]
        .as_u64()
        .expect("metrics.validate.images") as usize
}
