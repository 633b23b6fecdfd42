//! Training and inference throughput of pipe's MobileNetV2 beside PyTorch's and Keras's (CPU), same
//! machine, same configuration (width, input side, batch 32), one after the other, never at once.
//!
//! pipe's side runs the real training loop (`model::fit`: augmentation, forward, backward, AdamW) on
//! seeded synthetic X-rays, in a child process per configuration so each peak RSS is its own; the
//! second epoch is timed. The anchors are `../shared/bench/anchors/torch_mobilenetv2.py` and
//! `keras_mobilenetv2.py` on the same kind of images, with `--epochs 1 --max-steps` (their own timing:
//! steps after warm-up). Each runs when its venv can import its framework (`$VENV`, default
//! `~/.cache/pipe-anchors/venv`, see `../shared/bench/anchors/setup_venv.sh`; `$KERAS_VENV` for
//! Keras, default the same); otherwise only pipe's numbers are printed.
//!
//!   cargo bench --bench train                       # all configurations
//!   CONFIGS=0.35:96 cargo bench --bench train       # some (width:side, space separated)
//!   KERAS_VENV=/path/to/venv cargo bench --bench train   # Keras from another venv

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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
const FROZEN: usize = 14;

fn main() {
    if let Ok(config) = std::env::var("PIPE_BENCH_CHILD") {
        child(&config);
        return;
    }
    let configs =
        std::env::var("CONFIGS").unwrap_or_else(|_| "1.0:224 1.0:128 0.5:128 0.35:96".into());
    let venv = std::env::var("VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/pipe-anchors/venv")
        });
    let keras_venv = std::env::var("KERAS_VENV").map_or_else(|_| venv.clone(), PathBuf::from);
    let torch = anchor("PyTorch", &venv, "torch_mobilenetv2.py", "torch");
    let keras = anchor("Keras", &keras_venv, "keras_mobilenetv2.py", "tensorflow");
    let data = tempfile::tempdir().expect("temp dir");
    println!(
        "{:<10} {:>14} {:>14} {:>14} {:>12} {:>12} {:>9}  load",
        "config",
        "pipe train",
        "pipe frozen14",
        "torch train",
        "pipe infer",
        "torch infer",
        "RSS MiB"
    );
    for config in configs.split_whitespace() {
        let (width, side) = config.split_once(':').expect("width:side");
        let side: u32 = side.parse().expect("side");
        let full = run_child(&format!("{width}:{side}:0"));
        let frozen = run_child(&format!("{width}:{side}:{FROZEN}"));
        let tree = data.path().join(format!("s{side}"));
        let anchor_run = |anchor: &Option<(PathBuf, PathBuf)>| {
            anchor.as_ref().map(|(python, script)| {
                if !tree.exists() {
                    write_tree(&tree, side);
                }
                run_anchor(python, script, &tree, width, side)
            })
        };
        let theirs = anchor_run(&torch);
        let keras_numbers = anchor_run(&keras);
        let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let numbers = |anchor: &Option<Value>| {
            anchor.as_ref().map_or((f64::NAN, f64::NAN, f64::NAN), |t| {
                (
                    num(t, "train_ips"),
                    num(t, "infer_ips"),
                    num(t, "peak_rss_mb"),
                )
            })
        };
        let (t_train, t_infer, t_rss) = numbers(&theirs);
        println!(
            "{config:<10} {:>8.1} img/s {:>8.1} img/s {:>8.1} img/s {:>6.0} img/s {:>6.0} img/s {:>4.0}/{:<4.0}  {}   pipe/torch train {:.2}x, infer {:.2}x",
            num(&full, "train_ips"),
            num(&frozen, "train_ips"),
            t_train,
            num(&full, "infer_ips"),
            t_infer,
            num(&full, "peak_rss_mb"),
            t_rss,
            common::load_average(),
            num(&full, "train_ips") / t_train,
            num(&full, "infer_ips") / t_infer,
        );
        if keras_numbers.is_some() {
            let (k_train, k_infer, k_rss) = numbers(&keras_numbers);
            println!(
                "{:<10} Keras train {k_train:.1} img/s, infer {k_infer:.0} img/s, {k_rss:.0} MiB   pipe/keras train {:.2}x, infer {:.2}x",
                "",
                num(&full, "train_ips") / k_train,
                num(&full, "infer_ips") / k_infer,
            );
        }
    }
}

fn run_child(config: &str) -> Value {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("PIPE_BENCH_CHILD", config)
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
    let mut timing = Timing(Vec::new());
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
        json!({"train_ips": timing.0.last().copied(), "infer_ips": infer_ips, "peak_rss_mb": common::own_peak_rss_mb()})
    );
}

struct Timing(Vec<f64>);

impl Observer for Timing {
    fn step(&mut self, _: usize, _: usize, _: usize, _: f64) {}
    fn epoch(&mut self, record: &Epoch, _: bool, _: &mut MobileNetV2) -> anyhow::Result<()> {
        self.0.push(record.images_per_second);
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
