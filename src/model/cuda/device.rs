//! The GPU itself: a CUDA context and stream, cuBLAS for the matrix products, and the model's kernels
//! (`kernels.cu`, compiled with NVRTC when the GPU is opened), each behind a method that takes shapes
//! in the model's terms (NHWC activations, [`Window`]s) and returns or fills device buffers.
//!
//! The CUDA libraries are loaded at run time (cudarc's dynamic loading), so a `cuda` build runs on
//! machines without them and reports their absence as an error when a GPU is asked for.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, sys as cublas_sys};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::model::kernels::Window;
use crate::model::shape::Shape;

/// The kernels' source.
pub const SOURCE: &str = include_str!("kernels.cu");

/// Every kernel in [`SOURCE`].
const KERNELS: [&str; 17] = [
    "im2col",
    "depthwise_forward",
    "depthwise_backward_input",
    "depthwise_backward_weight",
    "channel_sums",
    "reduce_partials_f64",
    "reduce_partials_f32",
    "batch_norm_statistics",
    "batch_norm_apply",
    "batch_norm_parameter_gradients",
    "batch_norm_backward_input",
    "add",
    "multiply",
    "average_pool",
    "average_pool_backward",
    "add_bias",
    "adam",
];

/// Threads per block of the element-wise kernels.
const THREADS: u32 = 256;
/// The channel-parallel reductions' block: `CHANNELS x ROWS` threads (as in `kernels.cu`).
const CHANNELS: u32 = 32;
const ROWS: u32 = 8;

/// Compiles the kernels to PTX (needs only NVRTC, no GPU).
pub fn compile() -> anyhow::Result<cudarc::nvrtc::Ptx> {
    load_library("NVRTC (libnvrtc.so.13)", || unsafe {
        cudarc::nvrtc::sys::culib();
    })?;
    let options = CompileOptions {
        name: Some("kernels.cu".into()),
        ..Default::default()
    };
    compile_ptx_with_opts(SOURCE, options)
        .map_err(|e| anyhow!("compiling the GPU kernels (src/model/cuda/kernels.cu): {e}"))
}

/// An open GPU.
pub struct Gpu {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: BTreeMap<&'static str, CudaFunction>,
}

impl Gpu {
    /// Opens GPU `ordinal`. With `tf32`, matrix products use TF32 tensor cores (as PyTorch's cuDNN
    /// convolutions do by default); without, they are exact f32.
    pub fn open(ordinal: usize, tf32: bool) -> anyhow::Result<Gpu> {
        load_library("the CUDA driver (libcuda.so)", || unsafe {
            cudarc::driver::sys::culib();
        })?;
        load_library("cuBLAS (libcublas.so.13)", || unsafe {
            cudarc::cublas::sys::culib();
        })?;
        let context =
            CudaContext::new(ordinal).map_err(|e| anyhow!("opening GPU {ordinal}: {e}"))?;
        let stream = context.default_stream();
        let module = context
            .load_module(compile()?)
            .map_err(|e| anyhow!("loading the GPU kernels: {e}"))?;
        let kernels = KERNELS
            .iter()
            .map(|&name| {
                let function = module
                    .load_function(name)
                    .map_err(|e| anyhow!("GPU kernel `{name}`: {e}"))?;
                Ok((name, function))
            })
            .collect::<anyhow::Result<_>>()?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| anyhow!("starting cuBLAS: {e}"))?;
        let mode = if tf32 {
            cublas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cublas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle is the live one `blas` owns.
        unsafe { cublas_sys::cublasSetMathMode(*blas.handle(), mode) }
            .result()
            .map_err(|e| anyhow!("setting cuBLAS's math mode: {e}"))?;
        Ok(Gpu {
            stream,
            blas,
            kernels,
        })
    }

    /// The GPU's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> String {
        self.stream
            .context()
            .name()
            .unwrap_or_else(|_| "a GPU".into())
    }

    /// A copy of `values` on the GPU.
    pub fn upload(&self, values: &[f32]) -> anyhow::Result<CudaSlice<f32>> {
        self.stream.clone_htod(values).map_err(gpu_error)
    }

    /// Overwrites `to` with `values`.
    pub fn upload_into(&self, values: &[f32], to: &mut CudaSlice<f32>) -> anyhow::Result<()> {
        self.stream.memcpy_htod(values, to).map_err(gpu_error)
    }

    /// The numbers of a GPU buffer (waits for the work that writes them).
    pub fn download(&self, values: &CudaSlice<f32>) -> anyhow::Result<Vec<f32>> {
        self.stream.clone_dtoh(values).map_err(gpu_error)
    }

    /// A buffer of `len` zeros.
    pub fn zeros<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> anyhow::Result<CudaSlice<T>> {
        self.stream.alloc_zeros(len.max(1)).map_err(gpu_error)
    }

    /// A buffer for `len` values that a kernel then writes in full.
    fn output<T: cudarc::driver::DeviceRepr>(&self, len: usize) -> anyhow::Result<CudaSlice<T>> {
        // SAFETY: every caller launches a kernel that writes all `len` values before anything reads.
        unsafe { self.stream.alloc(len.max(1)) }.map_err(gpu_error)
    }

    /// `c = a * b` (`accumulate`: `c += a * b`) for row-major `a` (`m x k`, or its transpose `k x m`
    /// stored when `a_t`) and `b` (`k x n`, or `n x k` when `b_t`), as [`crate::model::kernels::matmul`].
    #[expect(
        clippy::too_many_arguments,
        reason = "a CUDA kernel launch: its buffers and sizes"
    )]
    pub fn matmul(
        &self,
        dims: (usize, usize, usize),
        a: &CudaSlice<f32>,
        a_t: bool,
        b: &CudaSlice<f32>,
        b_t: bool,
        c: &mut CudaSlice<f32>,
        accumulate: bool,
    ) -> anyhow::Result<()> {
        let config = column_major(dims, a_t, b_t, accumulate);
        // SAFETY: the dimensions come from the callers' shapes, which size a, b and c.
        unsafe { self.blas.gemm(config, b, a, c) }.map_err(|e| anyhow!("cuBLAS sgemm: {e}"))
    }

    /// A new buffer holding `a * b` (see [`Gpu::matmul`]).
    pub fn matmul_new(
        &self,
        dims: (usize, usize, usize),
        a: &CudaSlice<f32>,
        a_t: bool,
        b: &CudaSlice<f32>,
        b_t: bool,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let mut c = self.output(dims.0 * dims.1)?;
        self.matmul(dims, a, a_t, b, b_t, &mut c, false)?;
        Ok(c)
    }

    /// The stem's patches: `[n * out_h * out_w, k * k * c]`.
    pub fn im2col(
        &self,
        x: &CudaSlice<f32>,
        s: Shape,
        win: &Window,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let len = s.n * win.out_h * win.out_w * win.k * win.k * s.c;
        let mut cols = self.output(len)?;
        let dims = window_args(s, win);
        let mut launch = self.stream.launch_builder(&self.kernels["im2col"]);
        launch.arg(x).arg(&mut cols);
        push_all(&mut launch, &dims[..4]);
        let k = win.k as i32;
        launch.arg(&k);
        push_all(&mut launch, &dims[4..]);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(len)) }.map_err(gpu_error)?;
        Ok(cols)
    }

    /// Depthwise 3x3 convolution: `[n, h, w, c]` -> `[n, out_h, out_w, c]`.
    pub fn depthwise_forward(
        &self,
        x: &CudaSlice<f32>,
        s: Shape,
        w: &CudaSlice<f32>,
        win: &Window,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let len = s.n * win.out_h * win.out_w * s.c;
        let mut y = self.output(len)?;
        self.window_kernel("depthwise_forward", x, w, &mut y, s, win, elementwise(len))?;
        Ok(y)
    }

    /// The depthwise convolution's input gradient from its output gradient `dy`.
    pub fn depthwise_backward_input(
        &self,
        dy: &CudaSlice<f32>,
        s: Shape,
        w: &CudaSlice<f32>,
        win: &Window,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let mut dx = self.output(s.len())?;
        self.window_kernel(
            "depthwise_backward_input",
            dy,
            w,
            &mut dx,
            s,
            win,
            elementwise(s.len()),
        )?;
        Ok(dx)
    }

    /// The depthwise convolution's weight gradient (`[3, 3, c]`), written into `dw`.
    pub fn depthwise_backward_weight(
        &self,
        x: &CudaSlice<f32>,
        s: Shape,
        dy: &CudaSlice<f32>,
        win: &Window,
        dw: &mut CudaSlice<f32>,
    ) -> anyhow::Result<()> {
        let config = reduction(s.n * win.out_h * win.out_w, s.c);
        let count = config.grid_dim.1 as usize;
        let width = win.k * win.k * s.c;
        let mut partials = self.output::<f32>(count * width)?;
        self.window_kernel(
            "depthwise_backward_weight",
            x,
            dy,
            &mut partials,
            s,
            win,
            config,
        )?;
        self.reduce("reduce_partials_f32", &partials, dw, count, width)
    }

    /// Per-channel sums over the rows of `[rows, c]` values: `[sum a, sum a * b]` (2 c), where `a` is
    /// zeroed wherever `mask` (a ReLU6 output) is 0 or 6.
    pub fn channel_sums(
        &self,
        a: &CudaSlice<f32>,
        mask: Option<&CudaSlice<f32>>,
        b: &CudaSlice<f32>,
        rows: usize,
        c: usize,
    ) -> anyhow::Result<CudaSlice<f64>> {
        let config = reduction(rows, c);
        let count = config.grid_dim.1 as usize;
        let mut partials = self.output::<f64>(count * 2 * c)?;
        let (rows_arg, c_arg) = (rows as i64, c as i32);
        let none = 0u64;
        let mut launch = self.stream.launch_builder(&self.kernels["channel_sums"]);
        launch.arg(a);
        match mask {
            Some(m) => launch.arg(m),
            None => launch.arg(&none),
        };
        launch.arg(b).arg(&mut partials).arg(&rows_arg).arg(&c_arg);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(config) }.map_err(gpu_error)?;
        let mut sums = self.output::<f64>(2 * c)?;
        self.reduce("reduce_partials_f64", &partials, &mut sums, count, 2 * c)?;
        Ok(sums)
    }

    /// BatchNorm's `[mean, inv_std, scale, shift]` (4 c) from the batch's sums (moving the running
    /// statistics) or, without `batch_stats`, from the running statistics.
    #[expect(
        clippy::too_many_arguments,
        reason = "a CUDA kernel launch: its buffers and sizes"
    )]
    pub fn batch_norm_statistics(
        &self,
        sums: &CudaSlice<f64>,
        rows: usize,
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        running: (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
        (momentum, eps): (f32, f32),
        batch_stats: bool,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let c = gamma.len();
        let mut stats = self.output::<f32>(4 * c)?;
        let (rows_arg, c_arg, batch_arg) = (rows as i64, c as i32, i32::from(batch_stats));
        let mut launch = self
            .stream
            .launch_builder(&self.kernels["batch_norm_statistics"]);
        launch
            .arg(sums)
            .arg(&rows_arg)
            .arg(&c_arg)
            .arg(gamma)
            .arg(beta)
            .arg(running.0)
            .arg(running.1)
            .arg(&momentum)
            .arg(&eps)
            .arg(&batch_arg)
            .arg(&mut stats);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(c)) }.map_err(gpu_error)?;
        Ok(stats)
    }

    /// `x * scale + shift` per channel, then ReLU6 when `relu6`.
    pub fn batch_norm_apply(
        &self,
        x: &CudaSlice<f32>,
        stats: &CudaSlice<f32>,
        c: usize,
        relu6: bool,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let len = x.len();
        let mut y = self.output(len)?;
        let (len_arg, c_arg, relu_arg) = (len as i64, c as i32, i32::from(relu6));
        let mut launch = self
            .stream
            .launch_builder(&self.kernels["batch_norm_apply"]);
        launch
            .arg(x)
            .arg(stats)
            .arg(&mut y)
            .arg(&len_arg)
            .arg(&c_arg)
            .arg(&relu_arg);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(len)) }.map_err(gpu_error)?;
        Ok(y)
    }

    /// Gamma's and beta's gradients from the backward sums, written into `d_gamma` and `d_beta`.
    pub fn batch_norm_parameter_gradients(
        &self,
        sums: &CudaSlice<f64>,
        stats: &CudaSlice<f32>,
        d_gamma: &mut CudaSlice<f32>,
        d_beta: &mut CudaSlice<f32>,
    ) -> anyhow::Result<()> {
        let c = d_gamma.len();
        let c_arg = c as i32;
        let mut launch = self
            .stream
            .launch_builder(&self.kernels["batch_norm_parameter_gradients"]);
        launch
            .arg(sums)
            .arg(stats)
            .arg(&c_arg)
            .arg(d_gamma)
            .arg(d_beta);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(c)) }.map_err(gpu_error)?;
        Ok(())
    }

    /// The gradient of BatchNorm's (and ReLU6's) input from its output's gradient `dy`; `y` is the
    /// output, `x` the input, `sums` the backward sums.
    #[expect(
        clippy::too_many_arguments,
        reason = "a CUDA kernel launch: its buffers and sizes"
    )]
    pub fn batch_norm_backward_input(
        &self,
        dy: &CudaSlice<f32>,
        y: &CudaSlice<f32>,
        x: &CudaSlice<f32>,
        stats: &CudaSlice<f32>,
        gamma: &CudaSlice<f32>,
        sums: &CudaSlice<f64>,
        relu6: bool,
        batch_stats: bool,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let (c, len) = (gamma.len(), x.len());
        let mut dx = self.output(len)?;
        let (rows_arg, c_arg) = ((len / c) as i64, c as i32);
        let (relu_arg, batch_arg) = (i32::from(relu6), i32::from(batch_stats));
        let mut launch = self
            .stream
            .launch_builder(&self.kernels["batch_norm_backward_input"]);
        launch
            .arg(dy)
            .arg(y)
            .arg(x)
            .arg(stats)
            .arg(gamma)
            .arg(sums)
            .arg(&rows_arg)
            .arg(&c_arg)
            .arg(&relu_arg)
            .arg(&batch_arg)
            .arg(&mut dx);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(len)) }.map_err(gpu_error)?;
        Ok(dx)
    }

    /// `a + b`.
    pub fn add(&self, a: &CudaSlice<f32>, b: &CudaSlice<f32>) -> anyhow::Result<CudaSlice<f32>> {
        self.binary("add", a, b)
    }

    /// `a * b`, element-wise.
    pub fn multiply(
        &self,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
    ) -> anyhow::Result<CudaSlice<f32>> {
        self.binary("multiply", a, b)
    }

    /// The mean over each image's pixels: `[n, h, w, c]` -> `[n, c]`.
    pub fn average_pool(&self, x: &CudaSlice<f32>, s: Shape) -> anyhow::Result<CudaSlice<f32>> {
        let mut y = self.output(s.n * s.c)?;
        self.pool_kernel("average_pool", x, &mut y, s, s.n * s.c)?;
        Ok(y)
    }

    /// The pooled values' gradient spread over the pixels: `[n, c]` -> `[n, h, w, c]`.
    pub fn average_pool_backward(
        &self,
        dy: &CudaSlice<f32>,
        s: Shape,
    ) -> anyhow::Result<CudaSlice<f32>> {
        let mut dx = self.output(s.len())?;
        self.pool_kernel("average_pool_backward", dy, &mut dx, s, s.len())?;
        Ok(dx)
    }

    /// Adds `bias` to every row of `y` (`[rows, bias.len()]`).
    pub fn add_bias(&self, y: &mut CudaSlice<f32>, bias: &CudaSlice<f32>) -> anyhow::Result<()> {
        let cols = bias.len();
        let (rows_arg, cols_arg) = ((y.len() / cols) as i64, cols as i32);
        let len = y.len();
        let mut launch = self.stream.launch_builder(&self.kernels["add_bias"]);
        launch.arg(y).arg(bias).arg(&rows_arg).arg(&cols_arg);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(len)) }.map_err(gpu_error)?;
        Ok(())
    }

    /// One Adam(W) update of `w` from gradient `g` with moments `m`, `v` (see `optim.rs`).
    #[expect(
        clippy::too_many_arguments,
        reason = "a CUDA kernel launch: its buffers and sizes"
    )]
    pub fn adam(
        &self,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        (m, v): (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
        lr: f32,
        (beta1, beta2, eps): (f32, f32, f32),
        (correct1, correct2): (f32, f32),
        decay: f32,
        decoupled: bool,
    ) -> anyhow::Result<()> {
        let len = w.len();
        let (len_arg, decoupled_arg) = (len as i64, i32::from(decoupled));
        let mut launch = self.stream.launch_builder(&self.kernels["adam"]);
        launch
            .arg(w)
            .arg(g)
            .arg(m)
            .arg(v)
            .arg(&len_arg)
            .arg(&lr)
            .arg(&beta1)
            .arg(&beta2)
            .arg(&correct1)
            .arg(&correct2)
            .arg(&eps)
            .arg(&decay)
            .arg(&decoupled_arg);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(len)) }.map_err(gpu_error)?;
        Ok(())
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> anyhow::Result<()> {
        self.stream.synchronize().map_err(gpu_error)
    }

    /// A kernel with the depthwise signature: `(in, weights, out, n, h, w, c, stride, pad_top,
    /// pad_left, out_h, out_w)`.
    #[expect(
        clippy::too_many_arguments,
        reason = "a CUDA kernel launch: its buffers and sizes"
    )]
    fn window_kernel(
        &self,
        name: &str,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
        s: Shape,
        win: &Window,
        config: LaunchConfig,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            win.k == 3,
            "the GPU's depthwise kernels are 3x3, not {0}x{0}",
            win.k
        );
        let dims = window_args(s, win);
        let mut launch = self.stream.launch_builder(&self.kernels[name]);
        launch.arg(a).arg(b).arg(out);
        push_all(&mut launch, &dims);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(config) }.map_err(gpu_error)?;
        Ok(())
    }

    fn pool_kernel(
        &self,
        name: &str,
        from: &CudaSlice<f32>,
        to: &mut CudaSlice<f32>,
        s: Shape,
        threads: usize,
    ) -> anyhow::Result<()> {
        let (n, area, c) = (s.n as i32, (s.h * s.w) as i32, s.c as i32);
        let mut launch = self.stream.launch_builder(&self.kernels[name]);
        launch.arg(from).arg(to).arg(&n).arg(&area).arg(&c);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(threads)) }.map_err(gpu_error)?;
        Ok(())
    }

    fn binary(
        &self,
        name: &str,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
    ) -> anyhow::Result<CudaSlice<f32>> {
        assert_eq!(a.len(), b.len(), "{name} of different lengths");
        let len = a.len();
        let mut out = self.output(len)?;
        let len_arg = len as i64;
        let mut launch = self.stream.launch_builder(&self.kernels[name]);
        launch.arg(a).arg(b).arg(&mut out).arg(&len_arg);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(len)) }.map_err(gpu_error)?;
        Ok(out)
    }

    fn reduce<T: cudarc::driver::DeviceRepr>(
        &self,
        name: &str,
        partials: &CudaSlice<T>,
        out: &mut CudaSlice<T>,
        count: usize,
        width: usize,
    ) -> anyhow::Result<()> {
        let (count_arg, width_arg) = (count as i32, width as i32);
        let mut launch = self.stream.launch_builder(&self.kernels[name]);
        launch
            .arg(partials)
            .arg(out)
            .arg(&count_arg)
            .arg(&width_arg);
        // SAFETY: the arguments match the kernel's signature and the buffers' sizes.
        unsafe { launch.launch(elementwise(width)) }.map_err(gpu_error)?;
        Ok(())
    }
}

/// The cuBLAS (column-major) call computing the row-major product `c = op(a) * op(b)`: a row-major
/// matrix is its transpose in column-major terms, so cuBLAS computes `c^T = op(b)^T * op(a)^T`, with
/// `b` as its first operand.
pub fn column_major(
    (m, n, k): (usize, usize, usize),
    a_t: bool,
    b_t: bool,
    accumulate: bool,
) -> GemmConfig<f32> {
    use cublas_sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
    let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
    GemmConfig {
        transa: op(b_t),
        transb: op(a_t),
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: 1.0,
        lda: if b_t { k } else { n } as i32,
        ldb: if a_t { m } else { k } as i32,
        beta: if accumulate { 1.0 } else { 0.0 },
        ldc: n as i32,
    }
}

/// The kernels' shape arguments after the buffers: `n, h, w, c, stride, pad_top, pad_left, out_h,
/// out_w`.
fn window_args(s: Shape, win: &Window) -> [i32; 9] {
    [
        s.n,
        s.h,
        s.w,
        s.c,
        win.stride,
        win.pad_top,
        win.pad_left,
        win.out_h,
        win.out_w,
    ]
    .map(|v| v as i32)
}

fn push_all<'a>(launch: &mut cudarc::driver::LaunchArgs<'a>, values: &'a [i32]) {
    for v in values {
        launch.arg(v);
    }
}

/// A grid-stride launch over `len` elements.
fn elementwise(len: usize) -> LaunchConfig {
    let blocks = len.div_ceil(THREADS as usize).clamp(1, 1 << 16);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A channel-parallel reduction over `rows`: one block column per 32 channels, and enough block rows
/// (each over at least 128 rows) to fill the GPU.
fn reduction(rows: usize, c: usize) -> LaunchConfig {
    let channel_groups = c.div_ceil(CHANNELS as usize);
    let row_blocks = rows
        .div_ceil(128)
        .min((2048 / channel_groups).max(1))
        .max(1);
    LaunchConfig {
        grid_dim: (channel_groups as u32, row_blocks as u32, 1),
        block_dim: (CHANNELS, ROWS, 1),
        shared_mem_bytes: 0,
    }
}

fn gpu_error(e: cudarc::driver::DriverError) -> anyhow::Error {
    anyhow!("GPU: {e}")
}

/// Loads a CUDA library through `load` (cudarc panics when it finds none) and turns its absence
/// into an error.
fn load_library(what: &str, load: impl FnOnce() + std::panic::UnwindSafe) -> anyhow::Result<()> {
    // cudarc reports a missing library by panicking; keep the panic's message for the error and
    // out of the terminal. The panic hook is the process's: one swap at a time.
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let loaded = {
        let _swapping = HOOK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let loaded = std::panic::catch_unwind(load);
        std::panic::set_hook(hook);
        loaded
    };
    loaded
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            // cudarc's message goes on to list every file name it tried.
            let message = message.split(" - searched").next().unwrap_or_default();
            anyhow!("{what} could not be loaded ({message})")
        })
        .context("the GPU backend needs the CUDA 13 driver and libraries on LD_LIBRARY_PATH")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::matmul_new;

    /// cuBLAS's sgemm on the host: column-major `c = alpha op(a) op(b) + beta c`.
    fn reference_sgemm(cfg: &GemmConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
        use cublas_sys::cublasOperation_t::CUBLAS_OP_T;
        let at = |i: usize, j: usize| {
            if cfg.transa == CUBLAS_OP_T {
                a[j + i * cfg.lda as usize]
            } else {
                a[i + j * cfg.lda as usize]
            }
        };
        let bt = |i: usize, j: usize| {
            if cfg.transb == CUBLAS_OP_T {
                b[j + i * cfg.ldb as usize]
            } else {
                b[i + j * cfg.ldb as usize]
            }
        };
        for i in 0..cfg.m as usize {
            for j in 0..cfg.n as usize {
                let sum: f32 = (0..cfg.k as usize).map(|p| at(i, p) * bt(p, j)).sum();
                let out = &mut c[i + j * cfg.ldc as usize];
                *out = cfg.alpha * sum + cfg.beta * *out;
            }
        }
    }

    #[test]
    fn the_cublas_call_computes_the_row_major_product_of_the_cpu_kernel() {
        let (m, n, k) = (5, 3, 4);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let want = matmul_new((m, n, k), &a, a_t, &b, b_t);
            let cfg = column_major((m, n, k), a_t, b_t, false);
            let mut got = vec![0.0; m * n];
            // cuBLAS's first operand is b, its second a (see `column_major`).
            reference_sgemm(&cfg, &b, &a, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-5,
                    "a_t {a_t} b_t {b_t}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn the_kernels_compile_with_nvrtc() {
        match compile() {
            Ok(_) => {}
            Err(e) if format!("{e:#}").contains("could not be loaded") => {
                eprintln!("skipped: NVRTC is not installed here ({e:#})");
            }
            Err(e) => panic!("{e:#}"),
        }
    }
}
