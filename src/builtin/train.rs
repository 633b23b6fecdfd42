//! The `train` kind: reads the split and the augmentation policy, builds MobileNetV2 (from scratch or
//! from pretrained weights), runs the training loop, and writes the best checkpoint with its resolved
//! config, the history table every epoch, and a summary for `run.json`.

use std::time::Instant;

use anyhow::Context as _;
use polars::prelude::{Column, DataFrame};
use serde_json::json;

use super::Context;
use crate::model::dataset::{self, PolicyFile};
use crate::model::fit::{self, Epoch, Observer, Settings};
use crate::model::{Config, MobileNetV2, checkpoint, optim};
use crate::tables;
use crate::tables::image_rows::{self, ImageRow};

/// The checkpoint's file name inside the model folder.
pub const CHECKPOINT: &str = "model.safetensors";

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let settings = settings(ctx)?;
    let policy = PolicyFile::read(&ctx.path("policy"))?;
    let preprocess = policy.preprocess;
    let mut config = Config::binary(ctx.number("width") as f32, preprocess.size as usize);
    config.dropout = ctx.number("dropout") as f32;
    config.bn_momentum = ctx.number("bn_momentum") as f32;
    config.running_stats = ctx.text("batch_norm") == "running";

    let rows = image_rows::read(&ctx.path("split").join("split.parquet"))?;
    let of = |split: &str| -> Vec<&ImageRow> {
        rows.iter()
            .filter(|r| r.split.as_deref() == Some(split))
            .collect()
    };
    let images = ctx.path("images");
    let train = dataset::load(&of("train"), &images, &preprocess)?;
    let val = dataset::load(&of("val"), &images, &preprocess)?;

    let (mut net, start) = network(ctx, &mut config, settings.seed)?;
    let description = format!(
        "MobileNetV2 width {} at {} px, {start}",
        config.width, config.input
    );
    let parameters = net
        .params_mut()
        .iter()
        .map(|p| p.value.len())
        .sum::<usize>();
    ctx.log(&format!(
        "{description}: {parameters} parameters; {} training and {} validation images; {settings:?}",
        train.len(),
        val.len()
    ));

    let model_dir = ctx.output_dir("model")?;
    let history_dir = ctx.output_dir("history")?;
    std::fs::write(
        model_dir.join("config.json"),
        serde_json::to_string_pretty(&json!({
            "model": config,
            "train": settings,
            "preprocess": preprocess,
            "augment": policy.policy,
            "augment_seed": policy.seed,
            "start": start,
            "classes": class_names(&rows),
        }))? + "\n",
    )
    .with_context(|| format!("cannot write `{}`", model_dir.join("config.json").display()))?;

    let mut observer = Training {
        ctx,
        history: Vec::new(),
        checkpoint: model_dir.join(CHECKPOINT),
        history_dir,
        started: Instant::now(),
        epochs: settings.epochs,
    };
    let outcome = fit::fit(
        &mut net,
        &train,
        &val,
        (&policy.policy, policy.seed),
        &preprocess,
        &settings,
        &mut observer,
    )?;
    let best = &observer.history[outcome.best_epoch - 1];
    ctx.write_json(
        "summary",
        &json!({
            "model": description,
            "best_epoch": outcome.best_epoch,
            "stopped_epoch": outcome.stopped_epoch,
            "epochs_run": observer.history.len(),
            "best_val_loss": outcome.best_val_loss,
            "best_val_accuracy": best.val_accuracy,
            "train_images": train.len(),
            "val_images": val.len(),
            "parameters": parameters,
            "seconds": observer.started.elapsed().as_secs_f64(),
            "train_images_per_second": observer.history.iter().map(|e| e.images_per_second).sum::<f64>()
                / observer.history.len() as f64,
            "seed": settings.seed,
        }),
    )
}

/// The training settings, as declared and checked when the pipeline loaded.
fn settings(ctx: &Context) -> anyhow::Result<Settings> {
    Ok(Settings {
        epochs: ctx.count("epochs")? as usize,
        batch: ctx.count("batch")? as usize,
        lr: ctx.number("lr") as f32,
        optimizer: serde_json::from_value::<optim::Kind>(json!(ctx.text("optimizer")))?,
        weight_decay: ctx.number("weight_decay") as f32,
        schedule: serde_json::from_value::<optim::Schedule>(json!(ctx.text("schedule")))?,
        patience: ctx.count("patience")? as usize,
        freeze: ctx.count("freeze")? as usize,
        head_epochs: ctx.count("head_epochs")? as usize,
        fine_tune_lr: ctx.number("fine_tune_lr") as f32,
        balance_classes: ctx.flag("balance_classes"),
        seed: ctx.count("seed")?,
        device: serde_json::from_value::<fit::Device>(json!(ctx.text("device")))?,
    })
}

/// The network to train, from scratch or from the pretrained weights (whose padding it takes on),
/// and a phrase saying which.
fn network(ctx: &Context, config: &mut Config, seed: u64) -> anyhow::Result<(MobileNetV2, String)> {
    Ok(match ctx.optional_path("weights") {
        Some(path) => {
            let pretrained = crate::weights::load(&path)?;
            config.same_padding = pretrained.config.same_padding;
            let mut net = MobileNetV2::new(config.clone(), seed);
            net.copy_features_from(pretrained)
                .with_context(|| format!("weights `{}`", path.display()))?;
            (net, format!("fine-tuned from `{}`", ctx.text("weights")))
        }
        None => (
            MobileNetV2::new(config.clone(), seed),
            "from scratch".to_string(),
        ),
    })
}

/// Logs each epoch, writes the history table, saves the best checkpoint, and reports each step's
/// progress (the terminal draws it as a bar: at most `epochs` epochs, fewer if training stops early).
struct Training<'a> {
    ctx: &'a Context<'a>,
    history: Vec<Epoch>,
    checkpoint: std::path::PathBuf,
    history_dir: std::path::PathBuf,
    started: Instant,
    epochs: usize,
}

impl Observer for Training<'_> {
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: f64) {
        let done = ((epoch - 1) * steps + step) as u64;
        let images_per_second = self.history.last().map_or(String::new(), |e| {
            format!(", {:.0} img/s", e.images_per_second)
        });
        self.ctx.progress(
            done,
            (self.epochs * steps) as u64,
            "steps",
            format!(
                "epoch {epoch}/{}, loss {loss:.4}{images_per_second}",
                self.epochs
            ),
        );
    }

    fn epoch(&mut self, e: &Epoch, best: bool, net: &mut MobileNetV2) -> anyhow::Result<()> {
        self.ctx.log(&format!(
            "epoch {:>3}  train loss {:.4} acc {:.3}  val loss {:.4} acc {:.3}  lr {:.2e}  {:.1}s ({:.1} img/s){}",
            e.epoch,
            e.train_loss,
            e.train_accuracy,
            e.val_loss,
            e.val_accuracy,
            e.lr,
            e.seconds,
            e.images_per_second,
            if best { "  best" } else { "" }
        ));
        self.ctx.metrics(&json!({
            "epoch": e.epoch,
            "train_loss": e.train_loss,
            "val_loss": e.val_loss,
            "train_accuracy": e.train_accuracy,
            "val_accuracy": e.val_accuracy,
            "lr": e.lr,
            "seconds": e.seconds,
        }));
        self.history.push(e.clone());
        if best {
            checkpoint::save(net, &self.checkpoint)?;
        }
        tables::write(
            &mut history_frame(&self.history),
            &self.history_dir,
            "history",
        )
    }
}

fn history_frame(history: &[Epoch]) -> DataFrame {
    let column = |name: &str, f: fn(&Epoch) -> f64| {
        Column::new(name.into(), history.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new(
        history.len(),
        vec![
            Column::new(
                "epoch".into(),
                history.iter().map(|e| e.epoch as i64).collect::<Vec<_>>(),
            ),
            column("train_loss", |e| e.train_loss),
            column("val_loss", |e| e.val_loss),
            column("train_accuracy", |e| e.train_accuracy),
            column("val_accuracy", |e| e.val_accuracy),
            column("lr", |e| e.lr),
            column("seconds", |e| e.seconds),
            column("images_per_second", |e| e.images_per_second),
        ],
    )
    .expect("equal columns")
}

/// The class names for labels 0 and 1, from the image table.
fn class_names(rows: &[ImageRow]) -> [String; 2] {
    let name = |label: i64| {
        rows.iter()
            .find(|r| r.label == label)
            .map_or_else(|| label.to_string(), |r| r.class.clone())
    };
    [name(0), name(1)]
}

#[cfg(test)]
mod tests {
    use crate::model::BLOCKS;
    use crate::pipeline::kinds;

    #[test]
    fn the_declared_freeze_range_is_the_networks_blocks() {
        let decl = kinds::find("train").expect("train is declared");
        assert_eq!(decl.params["freeze"].min, Some(0.0));
        assert_eq!(decl.params["freeze"].max, Some(BLOCKS as f64));
    }
}
