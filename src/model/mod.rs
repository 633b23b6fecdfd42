//! The image classifier: MobileNetV2 trained with reverse-mode differentiation on dfdx's gradient
//! tape, with this module's own CPU ops (dfdx 0.13 has no stable-Rust convolution and its layers need
//! compile-time shapes; width and input size here come from the pipeline's params).
//!
//! The front door, what stages use: build a network ([`MobileNetV2::new`] with a [`Config`]), train it
//! ([`fit`], with [`optim`]'s settings, on [`dataset`]'s examples), run it ([`probabilities`],
//! [`logits`]), and load or save it ([`checkpoint`]). Behind it, private to this module:
//!
//! ```text
//!   shape (NHWC) <- kernels (gemm, depthwise, BatchNorm) <- ops (differentiable) <- tape (Var, Graph
//!   on dfdx's tape); param (torchvision names) -> mobilenet (the network); memory (allocator reuse)
//!   cuda (feature `cuda`): the same network's training and inference on an NVIDIA GPU
//! ```

pub mod checkpoint;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dataset;
pub mod fit;
mod kernels;
mod memory;
mod mobilenet;
mod ops;
pub mod optim;
mod param;
mod shape;
mod tape;

pub use mobilenet::{BLOCKS, Config, MobileNetV2};

use shape::Shape;
use tape::Graph;

/// The probability of the positive class for each of `images`, from a one-logit (binary) network in
/// inference mode.
pub fn probabilities(net: &mut MobileNetV2, images: &[Vec<f32>], batch: usize) -> Vec<f64> {
    logits(net, images, batch)
        .iter()
        .map(|z| f64::from(ops::sigmoid(z[0])))
        .collect()
}

/// The pooled features the head reads (1280 per image at width 1.0) for `images` (each
/// `input x input x 3`, channels last), in batches of `batch`, in inference mode: what a copy detector
/// compares.
pub fn embeddings(net: &mut MobileNetV2, images: &[Vec<f32>], batch: usize) -> Vec<Vec<f32>> {
    in_batches(net, images, batch, |net, g, x| net.features(g, x))
}

/// The network's outputs for `images` (each `input x input x 3`, channels last), in batches of
/// `batch`, in inference mode: one row of `classes` logits per image.
pub fn logits(net: &mut MobileNetV2, images: &[Vec<f32>], batch: usize) -> Vec<Vec<f32>> {
    in_batches(net, images, batch, |net, g, x| {
        net.forward(g, x, &mut crate::util::rng::Rng::new(0))
    })
}

/// `run` on `images` in batches of `batch` in inference mode, one output row per image.
fn in_batches(
    net: &mut MobileNetV2,
    images: &[Vec<f32>],
    batch: usize,
    run: impl Fn(&mut MobileNetV2, &mut Graph, &tape::Var) -> tape::Var,
) -> Vec<Vec<f32>> {
    memory::keep_freed_buffers();
    let side = net.config.input;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let mut g = Graph::inference();
        let x = g.var(
            chunk.concat(),
            Shape::new(chunk.len(), side, side, 3),
            false,
        );
        let y = run(net, &mut g, &x);
        out.extend(
            y.value
                .chunks(y.value.len() / chunk.len())
                .map(<[f32]>::to_vec),
        );
    }
    out
}
