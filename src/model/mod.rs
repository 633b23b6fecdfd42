//! The image classifier: MobileNetV2 trained with reverse-mode differentiation on dfdx's gradient
//! tape, with this module's own CPU ops (dfdx 0.13 has no stable-Rust convolution and its layers need
//! compile-time shapes; width and input size here come from the pipeline's params).
//!
//! ```text
//!   tape (Var, Graph on dfdx's tape) <- ops (differentiable) <- kernels (gemm, depthwise, BatchNorm)
//!   param (torchvision names) -> mobilenet (the network) -> checkpoint (safetensors), optim (Adam/AdamW)
//!   dataset (images of a split table) -> fit (the training loop); memory (allocator reuse while running)
//!   cuda (feature `cuda`): the same network's training and inference on an NVIDIA GPU
//! ```

pub mod checkpoint;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dataset;
pub mod fit;
pub mod kernels;
pub mod memory;
pub mod mobilenet;
pub mod ops;
pub mod optim;
pub mod param;
pub mod tape;

pub use mobilenet::{Config, MobileNetV2};

use tape::{Graph, Shape};

/// The network's outputs for `images` (each `input x input x 3`, channels last), in batches of
/// `batch`, in inference mode: one row of `classes` logits per image.
pub fn logits(net: &mut MobileNetV2, images: &[Vec<f32>], batch: usize) -> Vec<Vec<f32>> {
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
        let y = net.forward(&mut g, &x, &mut crate::util::rng::Rng::new(0));
        out.extend(y.value.chunks(net.config.classes).map(<[f32]>::to_vec));
    }
    out
}
