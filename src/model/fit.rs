//! The training loop: epochs of shuffled, freshly augmented mini-batches, optional two phases (the head
//! alone, then the upper blocks at a lower rate), validation after every epoch, early stopping on
//! validation loss with patience. The steps run on the CPU (the tape) or, with the `cuda` feature, on a
//! GPU. Every random choice derives from the seed, and every reduction runs in a fixed order, so the
//! same seed on the same machine gives the same weights.

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::Example;
use super::mobilenet::MobileNetV2;
use super::ops::{binary_cross_entropy, sigmoid};
use super::optim::{self, Adam, Schedule};
use super::shape::Shape;
use super::tape::Graph;
use crate::images::augment::Policy;
use crate::images::preprocess::Preprocess;
use crate::util::rng::Rng;

/// How to train.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Most epochs in all (both phases).
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f32,
    /// Adam or AdamW.
    pub optimizer: optim::Kind,
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Epochs without a better validation loss before stopping (0: never stop early).
    pub patience: usize,
    /// Inverted residual blocks kept frozen while fine-tuning (0..=17).
    pub freeze: usize,
    /// Epochs of training the head alone first (0: one phase).
    pub head_epochs: usize,
    /// Learning rate of the fine-tuning phase relative to `lr`, when there is a head phase.
    pub fine_tune_lr: f32,
    /// Weight classes inversely to their frequency.
    pub balance_classes: bool,
    /// Seed of shuffling, augmentation and dropout.
    pub seed: u64,
    /// Where the training steps and validation run.
    #[serde(default)]
    pub device: Device,
}

/// Where the network trains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// This machine's cores.
    #[default]
    Cpu,
    /// The first NVIDIA GPU (needs the `cuda` feature).
    Cuda,
}

/// One epoch of the history table.
#[derive(Debug, Clone, Serialize)]
pub struct Epoch {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss (on augmented images, with dropout).
    pub train_loss: f64,
    /// Mean validation loss.
    pub val_loss: f64,
    /// Training accuracy at 0.5.
    pub train_accuracy: f64,
    /// Validation accuracy at 0.5.
    pub val_accuracy: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// How training ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The epoch with the lowest validation loss (1-based).
    pub best_epoch: usize,
    /// The last epoch run when early stopping ended training.
    pub stopped_epoch: Option<usize>,
    /// The lowest validation loss.
    pub best_val_loss: f64,
}

/// What the loop tells its caller.
pub trait Observer {
    /// After each step: epoch (1-based), step and steps in the epoch, running loss.
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: f64);
    /// After each epoch; `best` when it has the lowest validation loss so far (save a checkpoint).
    fn epoch(&mut self, record: &Epoch, best: bool, net: &mut MobileNetV2) -> anyhow::Result<()>;
}

/// The learning rate of (0-based) `epoch`: the head phase at `lr`, the fine-tuning phase after it at
/// `lr * fine_tune_lr`, each on its own schedule.
fn learning_rate(settings: &Settings, epoch: usize) -> f32 {
    let (phase_start, phase_epochs, base) = if epoch < settings.head_epochs {
        (0, settings.head_epochs, settings.lr)
    } else if settings.head_epochs > 0 {
        let rest = settings.epochs - settings.head_epochs;
        (
            settings.head_epochs,
            rest,
            settings.lr * settings.fine_tune_lr,
        )
    } else {
        (0, settings.epochs, settings.lr)
    };
    settings
        .schedule
        .rate(base, epoch - phase_start, phase_epochs)
}

/// The training images at `indices`, augmented afresh for `epoch` and preprocessed, as one batch.
fn augmented_batch(
    train: &[Example],
    indices: &[usize],
    augment: (&Policy, u64),
    preprocess: &Preprocess,
    epoch: usize,
) -> Vec<f32> {
    let inputs: Vec<Vec<f32>> = indices
        .par_iter()
        .map(|&i| {
            let image = augment
                .0
                .apply(&train[i].image, augment.1, epoch as u64, i as u64);
            preprocess.tensor(&image)
        })
        .collect();
    inputs.concat()
}

/// One epoch of training steps over `train` in a fresh shuffled order: the sum of the batches' losses
/// (each times its size) and the images classified right before their step. While a step runs, a
/// second thread augments and preprocesses the next batches (at most two ahead), on the cores the
/// step leaves idle; each image's augmentation depends on (seed, epoch, image) alone, so the batches
/// are the same bits as when made in turn.
fn train_epoch(
    (net, engine): (&mut MobileNetV2, &mut Engine),
    train: &[Example],
    (augment, preprocess): ((&Policy, u64), &Preprocess),
    (settings, class_weights): (&Settings, &[f32; 2]),
    (epoch, lr): (usize, f32),
    observer: &mut dyn Observer,
) -> anyhow::Result<(f64, usize)> {
    let mut order: Vec<usize> = (0..train.len()).collect();
    Rng::derive(settings.seed, "shuffle", epoch as u64, 0).shuffle(&mut order);
    let mut dropout = Rng::derive(settings.seed, "dropout", epoch as u64, 0);
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let steps = order.len().div_ceil(settings.batch);
    std::thread::scope(|scope| {
        let (batches, ready) = std::sync::mpsc::sync_channel(1);
        let order = &order;
        scope.spawn(move || {
            for indices in order.chunks(settings.batch) {
                let images = augmented_batch(train, indices, augment, preprocess, epoch);
                if batches.send(images).is_err() {
                    break; // the epoch stopped at an error
                }
            }
        });
        for (step, indices) in order.chunks(settings.batch).enumerate() {
            let Ok(images) = ready.recv() else {
                break; // the producer panicked: the scope passes its panic on
            };
            let labels: Vec<f32> = indices.iter().map(|&i| train[i].label as f32).collect();
            let weights: Vec<f32> = indices
                .iter()
                .map(|&i| class_weights[train[i].label as usize])
                .collect();
            let (loss, logits) = engine.step(net, images, (&labels, &weights), lr, &mut dropout)?;
            loss_sum += f64::from(loss) * indices.len() as f64;
            correct += logits
                .iter()
                .zip(&labels)
                .filter(|&(&z, &y)| (z > 0.0) == (y > 0.5))
                .count();
            observer.step(
                epoch + 1,
                step + 1,
                steps,
                loss_sum / (step * settings.batch + indices.len()) as f64,
            );
        }
        Ok((loss_sum, correct))
    })
}

/// Trains `net` on `train`, validating on `val`. Training images are augmented afresh each epoch: image
/// `i` (its position in `train`) in epoch `e` gets the policy's draw for (seed, e, i).
pub fn fit(
    net: &mut MobileNetV2,
    train: &[Example],
    val: &[Example],
    augment: (&Policy, u64),
    preprocess: &Preprocess,
    settings: &Settings,
    observer: &mut dyn Observer,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!train.is_empty(), "no training images");
    anyhow::ensure!(
        !val.is_empty(),
        "no validation images (early stopping needs them)"
    );
    let _memory = super::memory::Training::start();
    let class_weights = class_weights(train, settings.balance_classes);
    let val_inputs: Vec<Vec<f32>> = val
        .par_iter()
        .map(|e| preprocess.tensor(&e.image))
        .collect();
    let mut best = Outcome {
        best_epoch: 0,
        stopped_epoch: None,
        best_val_loss: f64::INFINITY,
    };
    let mut since_best = 0;
    let mut engine = Engine::open(settings.device)?;
    for epoch in 0..settings.epochs {
        let head_phase = epoch < settings.head_epochs;
        if epoch == 0 || epoch == settings.head_epochs {
            // Each phase starts with fresh optimiser state, as recompiling a Keras model does.
            net.set_frozen(if head_phase {
                None
            } else {
                Some(settings.freeze)
            });
            let adam = Adam::new(settings.optimizer, settings.weight_decay);
            engine = engine.start_phase(net, adam)?;
        }
        let lr = learning_rate(settings, epoch);
        let started = Instant::now();
        let (loss_sum, correct) = train_epoch(
            (net, &mut engine),
            train,
            (augment, preprocess),
            (settings, &class_weights),
            (epoch, lr),
            observer,
        )?;
        let train_seconds = started.elapsed().as_secs_f64();
        engine.copy_to(net)?;
        let val_logits = engine.logits(net, &val_inputs, settings.batch)?;
        let (val_loss, val_accuracy) = validation_loss(&val_logits, val);
        let record = Epoch {
            epoch: epoch + 1,
            train_loss: loss_sum / train.len() as f64,
            val_loss,
            train_accuracy: correct as f64 / train.len() as f64,
            val_accuracy,
            lr: f64::from(lr),
            seconds: started.elapsed().as_secs_f64(),
            images_per_second: train.len() as f64 / train_seconds.max(1e-9),
        };
        let improved = val_loss < best.best_val_loss;
        if improved {
            best.best_epoch = epoch + 1;
            best.best_val_loss = val_loss;
            since_best = 0;
        } else if !head_phase {
            since_best += 1;
        }
        observer.epoch(&record, improved, net)?;
        if settings.patience > 0 && since_best >= settings.patience {
            best.stopped_epoch = Some(epoch + 1);
            break;
        }
    }
    Ok(best)
}

/// Mean unweighted loss and accuracy at 0.5 of the logits of `examples`.
fn validation_loss(logits: &[Vec<f32>], examples: &[Example]) -> (f64, f64) {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (z, e) in logits.iter().zip(examples) {
        let (z, y) = (f64::from(z[0]), e.label as f64);
        loss += z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
        correct += usize::from((sigmoid(z as f32) > 0.5) == (e.label == 1));
    }
    (
        loss / examples.len() as f64,
        correct as f64 / examples.len() as f64,
    )
}

/// What runs the training steps: this machine's cores with the tape, or a GPU.
enum Engine {
    /// The CPU, before the first phase.
    CpuIdle,
    /// The tape on the CPU, with the optimiser's state.
    Cpu(Adam),
    /// An open GPU, before the first phase.
    #[cfg(feature = "cuda")]
    GpuIdle(std::sync::Arc<super::cuda::Gpu>),
    /// The network's copy on the GPU (its optimiser inside).
    #[cfg(feature = "cuda")]
    Cuda(super::cuda::GpuNet),
}

impl Engine {
    /// Opens `device` (the GPU, for `Device::Cuda`): a missing one is an error before any training.
    fn open(device: Device) -> anyhow::Result<Engine> {
        match device {
            Device::Cpu => Ok(Engine::CpuIdle),
            #[cfg(feature = "cuda")]
            Device::Cuda => {
                let gpu = super::cuda::Gpu::open(0, true)
                    .map_err(|e| e.context("`device: cuda`: no usable GPU"))?;
                Ok(Engine::GpuIdle(std::sync::Arc::new(gpu)))
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => anyhow::bail!(
                "`device: cuda` needs pipe built with the `cuda` feature \
                 (cargo build --release --features cuda); this build trains on the CPU only"
            ),
        }
    }

    /// Starts a phase: the network as it is now (which layers train) with a fresh optimiser.
    #[cfg_attr(
        not(feature = "cuda"),
        expect(unused_variables, reason = "`net` goes to the GPU only")
    )]
    fn start_phase(self, net: &mut MobileNetV2, adam: Adam) -> anyhow::Result<Engine> {
        Ok(match self {
            Engine::CpuIdle | Engine::Cpu(_) => Engine::Cpu(adam),
            #[cfg(feature = "cuda")]
            Engine::GpuIdle(gpu) => Engine::Cuda(super::cuda::GpuNet::new(gpu, net, adam)?),
            #[cfg(feature = "cuda")]
            Engine::Cuda(gpu_net) => {
                gpu_net.copy_to(net)?;
                Engine::Cuda(gpu_net.restart(net, adam)?)
            }
        })
    }

    /// One training step on `images` (a batch, NHWC): the loss and the logits before the update.
    fn step(
        &mut self,
        net: &mut MobileNetV2,
        images: Vec<f32>,
        (labels, weights): (&[f32], &[f32]),
        lr: f32,
        dropout: &mut Rng,
    ) -> anyhow::Result<(f32, Vec<f32>)> {
        match self {
            #[cfg(feature = "cuda")]
            Engine::GpuIdle(_) => anyhow::bail!("a training step before the first phase"),
            Engine::CpuIdle => anyhow::bail!("a training step before the first phase"),
            Engine::Cpu(adam) => {
                let side = net.config.input;
                let mut g = Graph::training();
                let x = g.var(images, Shape::new(labels.len(), side, side, 3), false);
                let logits = net.forward(&mut g, &x, dropout);
                let loss = binary_cross_entropy(&mut g, &logits, labels, weights);
                let mut grads = g.backward(&loss);
                adam.step(&mut net.params_mut(), &mut grads, lr)?;
                Ok((loss.value[0], logits.value.to_vec()))
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(gpu_net) => gpu_net.train_step(&images, (labels, weights), lr, dropout),
        }
    }

    /// Brings `net` up to date with the engine's parameters (the GPU's copy).
    #[cfg_attr(
        not(feature = "cuda"),
        expect(unused_variables, reason = "the CPU trains `net` itself")
    )]
    fn copy_to(&self, net: &mut MobileNetV2) -> anyhow::Result<()> {
        match self {
            #[cfg(feature = "cuda")]
            Engine::Cuda(gpu_net) => gpu_net.copy_to(net),
            _ => Ok(()),
        }
    }

    /// Inference-mode logits of prepared inputs, in batches of `batch`.
    fn logits(
        &mut self,
        net: &mut MobileNetV2,
        inputs: &[Vec<f32>],
        batch: usize,
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        match self {
            #[cfg(feature = "cuda")]
            Engine::Cuda(gpu_net) => {
                let classes = net.config.classes;
                let mut out = Vec::with_capacity(inputs.len());
                for chunk in inputs.chunks(batch.max(1)) {
                    let logits = gpu_net.logits(&chunk.concat(), chunk.len())?;
                    out.extend(logits.chunks(classes).map(<[f32]>::to_vec));
                }
                Ok(out)
            }
            _ => Ok(super::logits(net, inputs, batch)),
        }
    }
}

/// Per-class loss weights: 1 each, or `n / (2 n_class)` when balancing (Keras' and scikit-learn's
/// "balanced").
fn class_weights(train: &[Example], balance: bool) -> [f32; 2] {
    if !balance {
        return [1.0, 1.0];
    }
    let positives = train.iter().filter(|e| e.label == 1).count().max(1);
    let negatives = (train.len() - positives.min(train.len())).max(1);
    let n = train.len() as f32;
    [n / (2.0 * negatives as f32), n / (2.0 * positives as f32)]
}
