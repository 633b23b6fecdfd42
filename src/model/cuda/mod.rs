//! The GPU backend (cargo feature `cuda`): the same MobileNetV2 trained and run on an NVIDIA GPU
//! through CUDA (cudarc): cuBLAS for the 1x1 convolutions, the stem and the head, and this module's
//! kernels (NVRTC-compiled) for depthwise convolution, BatchNorm, ReLU6, pooling and Adam.
//!
//! ```text
//!   device (context, cuBLAS, kernels.cu) <- net (the network's forward, backward and Adam on the GPU)
//! ```

pub mod device;
pub mod net;

pub use device::Gpu;
pub use net::GpuNet;
