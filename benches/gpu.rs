//! GPU training and inference throughput of pipe's MobileNetV2 (feature `cuda`) beside PyTorch's
//! (torchvision, cuDNN), same GPU, same configuration, one after the other.
//!
//! pipe's side is `GpuNet::train_step` (upload of a host batch, forward, backward, AdamW, the loss read
//! back) on fixed random batches, timed after warm-up; PyTorch's is `benches/anchors/torch_gpu_train.py`
//! doing the same (run with `$PYTHON`, default `python3`, when it imports torch).
//!
//!   cargo bench --features cuda --bench gpu
//!   CONFIG=1.0:224:64 STEPS=200 cargo bench --features cuda --bench gpu   # width:side:batch

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use pipe::model::cuda::{Gpu, GpuNet};
use pipe::model::optim::{Adam, Kind};
use pipe::model::{Config, MobileNetV2};
use pipe::util::rng::Rng;
use serde_json::{Value, json};

fn main() {
    let config = std::env::var("CONFIG").unwrap_or_else(|_| "1.0:224:64".into());
    let steps: usize = std::env::var("STEPS").map_or(200, |s| s.parse().expect("STEPS"));
    let warmup = 20;
    let parts: Vec<&str> = config.split(':').collect();
    let (width, side, batch): (f32, usize, usize) = (
        parts[0].parse().expect("width"),
        parts[1].parse().expect("side"),
        parts[2].parse().expect("batch"),
    );
    let gpu = Arc::new(Gpu::open(0, true).expect("a GPU"));
    let name = gpu.name();
    let mut net = MobileNetV2::new(Config::binary(width, side), 1);
    let mut gpu_net = GpuNet::new(gpu, &mut net, Adam::new(Kind::Adamw, 1e-4)).expect("upload");
    let mut rng = Rng::new(3);
    let batches: Vec<Vec<f32>> = (0..4)
        .map(|_| {
            (0..batch * side * side * 3)
                .map(|_| rng.normal() as f32)
                .collect()
        })
        .collect();
    let labels: Vec<f32> = (0..batch).map(|i| (i % 2) as f32).collect();
    let weights = vec![1.0f32; batch];
    let mut dropout = Rng::new(4);
    let mut step = |i: usize| {
        gpu_net
            .train_step(&batches[i % 4], (&labels, &weights), 1e-3, &mut dropout)
            .expect("training step")
    };
    for i in 0..warmup {
        step(i);
    }
    let started = Instant::now();
    let mut last_loss = 0.0;
    for i in 0..steps {
        last_loss = step(i).0;
    }
    let train_ips = (steps * batch) as f64 / started.elapsed().as_secs_f64();
    for i in 0..5 {
        gpu_net.logits(&batches[i % 4], batch).expect("inference");
    }
    let started = Instant::now();
    for i in 0..steps / 2 {
        gpu_net.logits(&batches[i % 4], batch).expect("inference");
    }
    let infer_ips = (steps / 2 * batch) as f64 / started.elapsed().as_secs_f64();
    let ours = json!({"train_ips": train_ips, "infer_ips": infer_ips, "gpu": name, "last_loss": last_loss});
    println!("pipe    {ours}");
    let theirs = torch(width, side, batch, steps);
    match &theirs {
        Some(t) => println!("pytorch {t}"),
        None => {
            println!("pytorch skipped: `$PYTHON` (python3) could not run the anchor with torch")
        }
    }
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    if let Some(t) = theirs {
        println!(
            "{config} on {name}: pipe train {:.0} img/s, PyTorch {:.0} img/s ({:.2}x); inference {:.0} vs {:.0} img/s ({:.2}x)",
            train_ips,
            num(&t, "train_ips"),
            train_ips / num(&t, "train_ips"),
            infer_ips,
            num(&t, "infer_ips"),
            infer_ips / num(&t, "infer_ips"),
        );
    }
}

/// PyTorch's numbers for the same configuration, if a Python with torch and a GPU is at hand.
fn torch(width: f32, side: usize, batch: usize, steps: usize) -> Option<Value> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/anchors/torch_gpu_train.py");
    let script = std::env::var("TORCH_SCRIPT").map_or(script, std::path::PathBuf::from);
    let out = Command::new(python)
        .arg(script)
        .args(["--width", &width.to_string(), "--size", &side.to_string()])
        .args(["--batch", &batch.to_string(), "--steps", &steps.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last()?).ok()
}
