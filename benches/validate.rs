//! Data-stage benchmark: `ingest` + `validate` over the real sample (`../shared/data/fracture-sample`,
//! 1,067 X-rays, 34 MB), side by side with the Pillow loop of `../shared/bench/anchors/pillow_validate.py`
//! (full decode, byte hash, 8 rotated/flipped difference hashes per image, a process per core).
//! Both are timed from spawn to exit, alternating, median of the reps; pipe also copies every image into
//! the workspace, hashes its source folder and groups near duplicates, which the Pillow loop does not.
//!
//!     cargo bench --bench validate                 # Pillow from `python3`
//!     PILLOW_PYTHON=/path/to/venv/bin/python cargo bench --bench validate

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Measured, load_average, measure, median};

const REPS: usize = 5;

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

fn summarize(name: &str, images: usize, runs: &[Measured]) -> f64 {
    let wall = median(runs.iter().map(|m| m.wall_s).collect());
    let rss = runs.iter().map(|m| m.max_rss_mb).fold(0.0, f64::max);
    println!(
        "{name:<28} {wall:>8.3} s {:>10.0} images/s {rss:>9.1} MiB",
        images as f64 / wall
    );
    images as f64 / wall
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
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        ours.push(measure(&mut pipe()));
        if has_pillow {
            theirs.push(measure(
                Command::new(&python)
                    .arg(&anchor)
                    .arg(&sample)
                    .args(["--procs", "2"]),
            ));
        }
    }
    println!("{images} images, {REPS} reps, median wall time, peak RSS (largest process)");
    let pipe_rate = summarize("pipe ingest + validate", images, &ours);
    if has_pillow {
        let pillow_rate = summarize("Pillow loop (2 processes)", images, &theirs);
        println!(
            "ratio: pipe is {:.2}x the Pillow loop",
            pipe_rate / pillow_rate
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
