//! Training and inference throughput of pipe's MobileNetV2 beside PyTorch's (and Keras's, when its
//! venv is there) on the CPU, same machine, same configuration (width, input side, batch 32, 2
//! threads), the tools taking turns: pipe, PyTorch, pipe, PyTorch, ... (`ROUNDS`, default 5), so a
//! change of load touches both. It prints each tool's median [min-max] and the ratio's median
//! [min-max] over the rounds, with the load.
//!
//! pipe's side runs the real training loop (`model::fit`: augmentation, forward, backward, Adam) on
//! seeded synthetic X-rays, in a child process per measurement so each peak RSS is its own; the second
//! epoch is timed, and its CPU time over its wall time is the cores it kept busy. The anchors are
//! `../shared/bench/anchors/torch_mobilenetv2.py` and `keras_mobilenetv2.py` on the same kind of
//! images, with `--epochs 1 --max-steps` (their own timing: steps after warm-up). Each runs when its
//! venv can import its framework (`$VENV`, default `~/.cache/pipe-anchors/venv`, see
//! `../shared/bench/anchors/setup_venv.sh`; `$KERAS_VENV` for Keras, default the same); otherwise only
//! pipe's numbers are printed. `1.0:96` is the flagship's width and side (which fine-tunes with the
//! lowest 4 blocks frozen; `FROZEN=4` times that too, for pipe alone).
//!
//!   cargo bench --bench train                       # all configurations, 5 rounds each
//!   CONFIGS="0.35:96" ROUNDS=7 cargo bench --bench train
//!   VENV=/path/to/venv cargo bench --bench train    # PyTorch from another venv

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::Rounds;
use pipe::images::augment::Policy;
use pipe::images::preprocess::{Normalize, Preprocess, Resize};
use pipe::images::synth::{self, SynthParams};
use pipe::model::dataset::Example;
use pipe::model::fit::{self, Epoch, Observer, Settings};
use pipe::model::optim::{Kind, Schedule};
use pipe::model::{self, Config, MobileNetV2};
use pipe::util::rng::Rng;
use serde_json::{Value, json};

const BATCH: usize = 32;

fn main() {
    if let Ok(config) = std::env::var("PIPE_BENCH_CHILD") {
        child(&config);
        return;
    }
    let configs = std::env::var("CONFIGS")
        .unwrap_or_else(|_| "0.35:96 0.5:128 1.0:96 1.0:128 1.0:224".into());
    let rounds: usize = std::env::var("ROUNDS").map_or(5, |r| r.parse().expect("ROUNDS"));
    let frozen: Option<usize> = std::env::var("FROZEN")
        .ok()
        .map(|f| f.parse().expect("FROZEN"));
    let venv = std::env::var("VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/pipe-anchors/venv")
        });
    let keras_venv = std::env::var("KERAS_VENV").map_or_else(|_| venv.clone(), PathBuf::from);
    let mut anchors: Vec<(&str, PathBuf, PathBuf)> = Vec::new();
    for (name, venv, script, module) in [
        ("PyTorch", &venv, "torch_mobilenetv2.py", "torch"),
        ("Keras", &keras_venv, "keras_mobilenetv2.py", "tensorflow"),
    ] {
        if let Some((python, script)) = anchor(name, venv, script, module) {
            anchors.push((name, python, script));
        }
    }
    let data = tempfile::tempdir().expect("temp dir");
    println!("load average before: {}", common::load_average());
    for config in configs.split_whitespace() {
        let (width, side) = config.split_once(':').expect("width:side");
        let side: u32 = side.parse().expect("side");
        let tree = data.path().join(format!("s{side}"));
        if !anchors.is_empty() && !tree.exists() {
            write_tree(&tree, side);
        }
        let mut ours = || run_child(&format!("{width}:{side}:0"));
        let mut theirs: Vec<Box<dyn FnMut() -> Value>> = anchors
            .iter()
            .map(|(_, python, script)| {
                let tree = tree.clone();
                Box::new(move || run_anchor(python, script, &tree, width, side))
                    as Box<dyn FnMut() -> Value>
            })
            .collect();
        let mut tools: Vec<&mut dyn FnMut() -> Value> = vec![&mut ours];
        tools.extend(
            theirs
                .iter_mut()
                .map(|t| t.as_mut() as &mut dyn FnMut() -> Value),
        );
        let measured = Rounds::run(rounds, &mut tools);
        report(config, &anchors, &measured);
        if let Some(frozen) = frozen {
            let runs: Vec<Value> = (0..rounds)
                .map(|_| run_child(&format!("{width}:{side}:{frozen}")))
                .collect();
            let train = common::Spread::of(runs.iter().map(|v| num(v, "train_ips")).collect());
            println!(
                "  pipe with {frozen} blocks frozen: train {} img/s",
                train.show(1)
            );
        }
    }
    println!("load average after: {}", common::load_average());
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// One configuration's lines: each tool's numbers and pipe's ratio to each anchor, as medians
/// [min-max] over the rounds.
fn report(config: &str, anchors: &[(&str, PathBuf, PathBuf)], measured: &Rounds<Value>) {
    println!(
        "{config} (width:side), {} rounds, {}",
        measured.loads.len(),
        measured.load()
    );
    let tools: Vec<&str> = std::iter::once("pipe")
        .chain(anchors.iter().map(|(name, _, _)| *name))
        .collect();
    for (metric, unit, digits) in [
        ("train_ips", "train img/s", 1),
        ("infer_ips", "infer img/s", 0),
        ("peak_rss_mb", "peak RSS MiB", 0),
    ] {
        let mut line = format!("  {unit:<13}");
        for (t, name) in tools.iter().enumerate() {
            let values = measured.values(t, |v| num(v, metric));
            line += &format!("  {name} {}", values.show(digits));
        }
        for (t, name) in tools.iter().enumerate().skip(1) {
            let ratio = measured.ratios(0, t, |v| num(v, metric));
            line += &format!("  pipe/{name} {}x", ratio.show(2));
        }
        println!("{line}");
    }
    let cores = measured.values(0, |v| num(v, "train_cores"));
    println!(
        "  pipe's cores busy (CPU time / wall over the second epoch's steps and its validation) {}",
        cores.show(2)
    );
}

fn run_child(config: &str) -> Value {
    // Two threads, as the anchors get.
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("PIPE_BENCH_CHILD", config)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("run the benchmark child");
    assert!(
        out.status.success(),
        "child {config}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).expect("child prints JSON")
}

/// One configuration of pipe's side: `width:side:frozen_blocks`; prints one JSON line.
fn child(config: &str) {
    let parts: Vec<&str> = config.split(':').collect();
    let (width, side, frozen): (f32, u32, usize) = (
        parts[0].parse().unwrap(),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
    );
    let steps = if side >= 224 { 6 } else { 12 };
    let images = examples(BATCH * steps, side);
    let preprocess = Preprocess {
        size: side,
        resize: Resize::Pad,
        normalize: Normalize::Symmetric,
    };
    let policy = Policy {
        rotation: 20.0,
        hflip: true,
        vflip: false,
        zoom: 0.0,
        brightness: 0.0,
        contrast: 0.0,
    };
    let settings = Settings {
        epochs: 2,
        batch: BATCH,
        lr: 1e-3,
        optimizer: Kind::Adam,
        weight_decay: 0.0,
        schedule: Schedule::Constant,
        patience: 0,
        freeze: frozen,
        head_epochs: 0,
        fine_tune_lr: 1.0,
        balance_classes: false,
        seed: 1,
        device: fit::Device::Cpu,
    };
    let mut net = MobileNetV2::new(Config::binary(width, side as usize), 1);
    let val = examples(BATCH, side);
    let mut timing = Timing(Vec::new(), Vec::new());
    fit::fit(
        &mut net,
        &images,
        &val,
        (&policy, 1),
        &preprocess,
        &settings,
        &mut timing,
    )
    .expect("training");
    let inputs: Vec<Vec<f32>> = images
        .iter()
        .take(BATCH * 4)
        .map(|e| preprocess.tensor(&e.image))
        .collect();
    model::logits(&mut net, &inputs[..BATCH], BATCH);
    let started = Instant::now();
    model::logits(&mut net, &inputs, BATCH);
    let infer_ips = inputs.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "train_ips": timing.0.last().copied(),
            "train_cores": timing.cores(),
            "infer_ips": infer_ips,
            "peak_rss_mb": common::own_peak_rss_mb(),
        })
    );
}

/// Each epoch's training throughput, and the (wall, CPU) seconds at each epoch's end.
struct Timing(Vec<f64>, Vec<(Instant, f64)>);

impl Timing {
    /// The cores the last epoch kept busy: its CPU time (user + system) over its wall time.
    fn cores(&self) -> Option<f64> {
        let [.., (wall0, cpu0), (wall1, cpu1)] = self.1[..] else {
            return None;
        };
        Some((cpu1 - cpu0) / wall1.duration_since(wall0).as_secs_f64())
    }
}

impl Observer for Timing {
    fn step(&mut self, _: usize, _: usize, _: usize, _: f64) {}
    fn epoch(&mut self, record: &Epoch, _: bool, _: &mut MobileNetV2) -> anyhow::Result<()> {
        self.0.push(record.images_per_second);
        self.1.push((Instant::now(), common::own_cpu_seconds()));
        Ok(())
    }
}

fn examples(count: usize, side: u32) -> Vec<Example> {
    (0..count)
        .map(|i| {
            let fractured = i % 2 == 1;
            let params = SynthParams {
                size: side,
                difficulty: 0.5,
            };
            let mut rng = Rng::derive(7, "bench", u64::from(fractured), i as u64);
            Example {
                path: format!("{i}.png"),
                label: i64::from(fractured),
                split: "train".into(),
                group: i.to_string(),
                image: synth::render(params, fractured, &mut rng),
            }
        })
        .collect()
}

/// The anchor's ImageFolder tree: train/val/test with the two classes, PNGs at `side`.
fn write_tree(tree: &Path, side: u32) {
    for (split, count) in [("train", 320), ("val", 32), ("test", 64)] {
        for (i, e) in examples(count, side).iter().enumerate() {
            let class = if e.label == 1 {
                "fractured"
            } else {
                "not_fractured"
            };
            let dir = tree.join(split).join(class);
            std::fs::create_dir_all(&dir).expect("tree");
            e.image.save(dir.join(format!("{i}.png"))).expect("png");
        }
    }
}

/// An anchor script of `../shared/bench/anchors/` and the venv's Python to run it with, when the venv
/// exists and can import `module`; otherwise says why it is skipped.
fn anchor(name: &str, venv: &Path, script: &str, module: &str) -> Option<(PathBuf, PathBuf)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/bench/anchors")
        .join(script);
    let python = venv.join("bin/python");
    let imports = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if script.is_file() && imports {
        Some((python, script))
    } else {
        println!(
            "{name} anchor skipped: no {} with {module} in {}, or no {}",
            python.display(),
            venv.display(),
            script.display()
        );
        None
    }
}

/// One anchor script (PyTorch's and Keras's take the same flags) on the image tree; its JSON line.
fn run_anchor(python: &Path, script: &Path, tree: &Path, width: &str, side: u32) -> Value {
    let steps = if side >= 224 { "8" } else { "10" };
    let out = Command::new(python)
        .arg(script)
        .args([
            "--data",
            &tree.display().to_string(),
            "--alpha",
            width,
            "--size",
            &side.to_string(),
        ])
        .args([
            "--epochs",
            "1",
            "--max-steps",
            steps,
            "--warmup-steps",
            "2",
            "--no-eval",
            "--threads",
            "2",
            "--infer-min-images",
            "256",
        ])
        .output()
        .expect("run the anchor");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).expect("anchor prints JSON")
}
