//! The numeric kernels behind the model's ops, on plain NHWC `f32` buffers: matrix products (the
//! `gemm` crate, the backend of dfdx's CPU matmul, in a newer release with AVX-512 kernels), 3x3
//! depthwise convolution, im2col for the stem's convolution, and batch normalisation. Each backward
//! kernel has a naive reference and a finite-difference check in the tests.
//!
//! The crate is built for baseline x86-64, so one binary runs on any x86-64 CPU. The hot loops here
//! are compiled twice more, for AVX2 + FMA and for AVX-512 (`#[multiversion]`), and the widest the
//! CPU has is chosen at run time; gemm chooses its own kernels the same way. Rust does not fuse a
//! multiply and an add into one FMA by itself, so every version gives the same bits.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::shape::Shape;

/// Products smaller than this many multiply-adds run on one thread: splitting them costs more than
/// it saves.
const SERIAL_GEMM: usize = 1 << 18;

/// `c = a * b` (or `c += a * b` when `accumulate`), with `a` an `m x k` matrix and `b` a `k x n`
/// matrix, row-major; `a_t` / `b_t` say the buffer holds the transpose (`k x m`, `n x k`).
pub fn matmul(
    dims: (usize, usize, usize),
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    accumulate: bool,
) {
    let (m, n, _) = dims;
    assert!(c.len() >= m * n);
    // SAFETY: `c` holds `m * n` initialised values and does not alias `a` or `b` (it is borrowed
    // mutably).
    unsafe { gemm_into(dims, a, a_t, b, b_t, c.as_mut_ptr(), accumulate, true) }
}

/// `a * b` as a new `m x n` buffer (see [`matmul`]), written without zeroing it first.
pub fn matmul_new(
    dims: (usize, usize, usize),
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
) -> Vec<f32> {
    let (m, n, _) = dims;
    let mut c = Vec::with_capacity(m * n);
    // SAFETY: the buffer has room for `m * n` values and is new, so it aliases nothing; without
    // `accumulate` gemm_into only writes it, every element (zeros when `k = 0`), so all `m * n` are
    // initialised when `set_len` runs.
    unsafe {
        gemm_into(dims, a, a_t, b, b_t, c.as_mut_ptr(), false, true);
        c.set_len(m * n);
    }
    c
}

/// Rows of the output per task in [`matmul_then`]: with up to ~1,000 channels in and out, a task's
/// rows of input and output stay in a core's L2 cache.
pub const CHUNK_ROWS: usize = 256;

/// `a * b` as a new `m x n` buffer (`a` and `b` row-major, not transposed), computed `CHUNK_ROWS`
/// rows at a time in parallel, each chunk passed to `then(chunk, offset of its first value)` as soon
/// as it is written, while it is still in cache.
pub fn matmul_then(
    dims: (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    then: impl Fn(&mut [f32], usize) + Sync,
) -> Vec<f32> {
    let (m, n, k) = dims;
    assert!(a.len() >= m * k);
    let len = m * n;
    let mut c = Vec::with_capacity(len);
    c.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK_ROWS * n.max(1))
        .enumerate()
        .for_each(|(i, chunk)| {
            let rows = chunk.len() / n;
            let first = i * CHUNK_ROWS;
            // SAFETY: the chunk is `rows * n` values of a new buffer, aliasing nothing; gemm
            // writes every one of them (read_dst false), before `then` reads them.
            unsafe {
                let out = chunk.as_mut_ptr().cast::<f32>();
                gemm_into(
                    (rows, n, k),
                    &a[first * k..],
                    false,
                    b,
                    false,
                    out,
                    false,
                    false,
                );
                then(std::slice::from_raw_parts_mut(out, rows * n), first * n);
            }
        });
    // SAFETY: the chunks cover all `len` values and each was written above.
    unsafe { c.set_len(len) };
    c
}

/// The gemm call behind [`matmul`], [`matmul_new`] and [`matmul_then`]; `parallel` lets gemm split
/// large products over rayon's threads.
///
/// # Safety
/// `c` must be valid for writes of `m * n` values (and reads, when `accumulate`) and alias neither
/// `a` nor `b`.
#[expect(
    clippy::too_many_arguments,
    reason = "gemm's own parameters: dims, three buffers with their layouts, the mode"
)]
unsafe fn gemm_into(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: *mut f32,
    accumulate: bool,
    parallel: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            // SAFETY: the caller's contract: `c` is valid for `m * n` writes.
            unsafe { std::ptr::write_bytes(c, 0, m * n) };
        }
        return;
    }
    let (a_rs, a_cs) = if a_t {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the assert above keeps every index the strides reach inside `a` and `b`; the caller
    // vouches for `c`. Without `accumulate` (read_dst false) gemm does not read `c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            if !parallel || m * n * k < SERIAL_GEMM {
                gemm::Parallelism::None
            } else {
                gemm::Parallelism::Rayon(0)
            },
        );
    }
}

/// Where a 3x3 (or k x k) window sits: stride and the padding before the first row and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero rows above the input.
    pub pad_top: usize,
    /// Zero columns left of the input.
    pub pad_left: usize,
    /// Output rows.
    pub out_h: usize,
    /// Output columns.
    pub out_w: usize,
}

impl Window {
    /// The window for an `h x w` input: output `ceil(side / stride)`, padded as TensorFlow's `SAME`
    /// (the extra row goes below, `same = true`) or as PyTorch's symmetric `padding = k / 2`.
    pub fn new(h: usize, w: usize, k: usize, stride: usize, same: bool) -> Window {
        let out = |side: usize| side.div_ceil(stride);
        let before = |side: usize| {
            if same {
                ((out(side) - 1) * stride + k).saturating_sub(side) / 2
            } else {
                k / 2
            }
        };
        Window {
            k,
            stride,
            pad_top: before(h),
            pad_left: before(w),
            out_h: out(h),
            out_w: out(w),
        }
    }

    /// The input row or column a kernel tap reads, if it is inside the input.
    #[inline]
    fn source(out: usize, tap: usize, stride: usize, pad: usize, side: usize) -> Option<usize> {
        (out * stride + tap).checked_sub(pad).filter(|&i| i < side)
    }
}

/// What follows a convolution whose output needs no gradient (inference, or a frozen layer): BatchNorm
/// by its running statistics as a per-channel `y * scale + shift`, then ReLU6, or the block's
/// shortcut added. Applied inside the convolution's pass over its output, while the values are in
/// cache, instead of in passes of their own.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Multiplier per channel.
    pub scale: &'a [f32],
    /// Offset per channel, added after the multiplier.
    pub shift: &'a [f32],
    /// Whether ReLU6 follows.
    pub relu6: bool,
    /// The shortcut's values, the output's layout, added last.
    pub residual: Option<&'a [f32]>,
}

impl Epilogue<'_> {
    /// Applies to whole pixels `out` (`[pixels, c]`) whose first element is element `at` of the
    /// output (where the residual is read).
    pub fn apply(&self, out: &mut [f32], at: usize) {
        let residual = self.residual.map(|r| &r[at..at + out.len()]);
        epilogue_rows(out, self.scale, self.shift, self.relu6, residual);
    }
}

/// [`Epilogue::apply`]'s loop. `z = y * scale + shift` is BatchNorm's own arithmetic, so the fused
/// path gives the same bits as a separate pass.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn epilogue_rows(
    out: &mut [f32],
    scale: &[f32],
    shift: &[f32],
    relu6: bool,
    residual: Option<&[f32]>,
) {
    let c = scale.len();
    for (r, pixel) in out.chunks_exact_mut(c).enumerate() {
        for ((o, &s), &t) in pixel.iter_mut().zip(scale).zip(shift) {
            let z = *o * s + t;
            *o = if relu6 { z.clamp(0.0, 6.0) } else { z };
        }
        if let Some(residual) = residual {
            for (o, &v) in pixel.iter_mut().zip(&residual[r * c..][..c]) {
                *o += v;
            }
        }
    }
}

/// BatchNorm's output as a new buffer: `y = x * scale + shift` per channel of `[rows, c]` values
/// (`c` = `scale.len()`), then ReLU6 when `relu6`.
pub fn affine(x: &[f32], scale: &[f32], shift: &[f32], relu6: bool) -> Vec<f32> {
    let c = scale.len();
    let len = x.len();
    let mut y = Vec::with_capacity(len);
    let epilogue = Epilogue {
        scale,
        shift,
        relu6,
        residual: None,
    };
    y.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK_ROWS * c)
        .zip(x.par_chunks(CHUNK_ROWS * c))
        .for_each(|(out, input)| {
            write(out, input);
            // SAFETY: `out` is as long as `input`, so every value was written.
            epilogue.apply(unsafe { assume_written(out) }, 0);
        });
    // SAFETY: the chunks cover all `len` values and each was written above.
    unsafe { y.set_len(len) };
    y
}

/// `out` as the values it now holds.
///
/// # Safety
/// Every element of `out` must have been written.
unsafe fn assume_written(out: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the caller vouches that every value is
    // initialised.
    unsafe { &mut *(std::ptr::from_mut(out) as *mut [f32]) }
}

/// The batch statistics' part of BatchNorm's input gradient, per channel.
#[derive(Debug, Clone, Copy)]
pub struct Centre<'a> {
    /// The batch mean of the input.
    pub mean: &'a [f32],
    /// `1 / sqrt(batch variance + eps)`.
    pub inv_std: &'a [f32],
    /// The mean of the output's gradient over the batch (the beta gradient / rows).
    pub mean_dz: &'a [f32],
    /// The mean of the output's gradient times the normalised input (the gamma gradient / rows).
    pub mean_dz_xhat: &'a [f32],
}

/// BatchNorm's input gradient, written over the output's `dz` (`[rows, c]`): `k * dz` when it
/// normalised by running statistics, `k * (dz - mean_dz - xhat * mean_dz_xhat)` with the batch's
/// (`centre`), where `k = gamma * inv_std` and `xhat = (x - mean) * inv_std`.
pub fn batch_norm_input_gradient(dz: &mut [f32], x: &[f32], k: &[f32], centre: Option<Centre>) {
    let c = k.len();
    dz.par_chunks_mut(CHUNK_ROWS * c)
        .zip(x.par_chunks(CHUNK_ROWS * c))
        .for_each(|(dz, x)| batch_norm_input_gradient_rows(dz, x, k, centre));
}

/// [`batch_norm_input_gradient`]'s loop over one chunk.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn batch_norm_input_gradient_rows(dz: &mut [f32], x: &[f32], k: &[f32], centre: Option<Centre>) {
    let c = k.len();
    for (dz, xs) in dz.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        match centre {
            Some(b) => {
                // Slices of exactly `c`, so the indexing below needs no bounds checks.
                let (dz, xs, k) = (&mut dz[..c], &xs[..c], &k[..c]);
                let (mean, inv_std) = (&b.mean[..c], &b.inv_std[..c]);
                let (mean_dz, mean_dz_xhat) = (&b.mean_dz[..c], &b.mean_dz_xhat[..c]);
                for ch in 0..c {
                    let xhat = (xs[ch] - mean[ch]) * inv_std[ch];
                    dz[ch] = k[ch] * (dz[ch] - mean_dz[ch] - xhat * mean_dz_xhat[ch]);
                }
            }
            None => dz.iter_mut().zip(k).for_each(|(d, k)| *d *= k),
        }
    }
}

/// Depthwise convolution: `y[n, oy, ox, c] = sum over taps of x[n, iy, ix, c] * w[ky, kx, c]`,
/// followed by `epilogue` when given.
pub fn depthwise_forward(
    x: &[f32],
    s: Shape,
    w: &[f32],
    win: &Window,
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    let row = win.out_w * s.c;
    let len = s.n * win.out_h * row;
    let mut y = Vec::with_capacity(len);
    y.spare_capacity_mut()[..len]
        .par_chunks_mut(row)
        .enumerate()
        .for_each(|(r, out)| {
            depthwise_forward_row(out, r, x, s, w, win);
            if let Some(e) = epilogue {
                // SAFETY: depthwise_forward_row writes every value of its row.
                e.apply(unsafe { assume_written(out) }, r * row);
            }
        });
    // SAFETY: the rows above cover all `len` values, and each row writes every one of its values.
    unsafe { y.set_len(len) };
    y
}

/// Channels summed at once in [`depthwise_forward_row`]: one AVX-512 register, two AVX2 ones.
const LANES: usize = 16;

/// Output row `r` (image `r / out_h`, row `r % out_h`) of [`depthwise_forward`], written into `out`.
/// Each output pixel sums its taps in registers, `LANES` channels at a time, in the order `ky`, `kx`
/// (the order of the textbook loop, so the sums are the same bits).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn depthwise_forward_row(
    out: &mut [MaybeUninit<f32>],
    r: usize,
    x: &[f32],
    s: Shape,
    w: &[f32],
    win: &Window,
) {
    let (c, k) = (s.c, win.k);
    assert!(k <= 3, "depthwise kernels are at most 3x3");
    let (n, oy) = (r / win.out_h, r % win.out_h);
    for (ox, pixel) in out.chunks_exact_mut(c).enumerate() {
        // (weight offset, input offset) of each tap inside the input.
        let mut taps = [(0, 0); 9];
        let mut count = 0;
        for ky in 0..k {
            let Some(iy) = Window::source(oy, ky, win.stride, win.pad_top, s.h) else {
                continue;
            };
            for kx in 0..k {
                if let Some(ix) = Window::source(ox, kx, win.stride, win.pad_left, s.w) {
                    taps[count] = ((ky * k + kx) * c, ((n * s.h + iy) * s.w + ix) * c);
                    count += 1;
                }
            }
        }
        let taps = &taps[..count];
        let blocks = c / LANES * LANES;
        for at in (0..blocks).step_by(LANES) {
            let mut sum = [0.0f32; LANES];
            for &(wo, xo) in taps {
                let xs: &[f32; LANES] = x[xo + at..][..LANES].try_into().expect("LANES values");
                let ws: &[f32; LANES] = w[wo + at..][..LANES].try_into().expect("LANES values");
                for ((s, &xv), &wv) in sum.iter_mut().zip(xs).zip(ws) {
                    *s += xv * wv;
                }
            }
            write(&mut pixel[at..at + LANES], &sum);
        }
        let mut tail = [0.0f32; LANES];
        let tail = &mut tail[..c - blocks];
        for &(wo, xo) in taps {
            let (xs, ws) = (&x[xo + blocks..xo + c], &w[wo + blocks..wo + c]);
            for ((s, &xv), &wv) in tail.iter_mut().zip(xs).zip(ws) {
                *s += xv * wv;
            }
        }
        write(&mut pixel[blocks..], tail);
    }
}

/// Writes `values` into `out`, which is as long.
#[inline(always)]
fn write(out: &mut [MaybeUninit<f32>], values: &[f32]) {
    for (o, &v) in out.iter_mut().zip(values) {
        o.write(v);
    }
}

/// Calls `f(output pixel, input pixel, tap)` for every kernel tap of image `n` that lands inside the
/// input; pixels are element offsets of their first channel (the output's within the whole batch, the
/// input's within the image), taps are `ky * k + kx`. Always inlined, so that `f` is compiled with
/// its caller's vector instructions.
#[inline(always)]
fn for_each_tap(n: usize, s: Shape, win: &Window, mut f: impl FnMut(usize, usize, usize)) {
    let (c, k) = (s.c, win.k);
    for oy in 0..win.out_h {
        for ky in 0..k {
            let Some(iy) = Window::source(oy, ky, win.stride, win.pad_top, s.h) else {
                continue;
            };
            for ox in 0..win.out_w {
                let out = ((n * win.out_h + oy) * win.out_w + ox) * c;
                for kx in 0..k {
                    if let Some(ix) = Window::source(ox, kx, win.stride, win.pad_left, s.w) {
                        f(out, (iy * s.w + ix) * c, ky * k + kx);
                    }
                }
            }
        }
    }
}

/// The gradient of a depthwise convolution's input.
pub fn depthwise_backward_input(dy: &[f32], s: Shape, w: &[f32], win: &Window) -> Vec<f32> {
    let mut dx = vec![0.0f32; s.len()];
    dx.par_chunks_mut(s.h * s.w * s.c)
        .enumerate()
        .for_each(|(n, dx)| depthwise_backward_input_image(dx, n, dy, s, w, win));
    dx
}

/// Image `n`'s part of [`depthwise_backward_input`], added into `dx`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn depthwise_backward_input_image(
    dx: &mut [f32],
    n: usize,
    dy: &[f32],
    s: Shape,
    w: &[f32],
    win: &Window,
) {
    let c = s.c;
    for_each_tap(n, s, win, |out, input, tap| {
        let d = &mut dx[input..][..c];
        for ((d, &g), &w) in d.iter_mut().zip(&dy[out..][..c]).zip(&w[tap * c..][..c]) {
            *d += g * w;
        }
    });
}

/// The gradient of a depthwise convolution's weights, `[k, k, c]`.
pub fn depthwise_backward_weight(x: &[f32], s: Shape, dy: &[f32], win: &Window) -> Vec<f32> {
    // One partial sum per image, added in order: the result does not depend on thread timing.
    let partials: Vec<Vec<f32>> = (0..s.n)
        .into_par_iter()
        .map(|n| depthwise_backward_weight_image(n, x, s, dy, win))
        .collect();
    let len = win.k * win.k * s.c;
    partials.into_iter().fold(vec![0.0f32; len], add_into)
}

/// Image `n`'s part of [`depthwise_backward_weight`].
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn depthwise_backward_weight_image(
    n: usize,
    x: &[f32],
    s: Shape,
    dy: &[f32],
    win: &Window,
) -> Vec<f32> {
    let (c, k) = (s.c, win.k);
    let mut dw = vec![0.0f32; k * k * c];
    let image = &x[n * s.h * s.w * c..];
    for_each_tap(n, s, win, |out, input, tap| {
        let d = &mut dw[tap * c..][..c];
        for ((d, &g), &x) in d.iter_mut().zip(&dy[out..][..c]).zip(&image[input..][..c]) {
            *d += g * x;
        }
    });
    dw
}

/// The patches of a k x k convolution as rows: `[n * out_h * out_w, k * k * c]`, taps in (ky, kx, c)
/// order, zeros where the window hangs over the edge.
pub fn im2col(x: &[f32], s: Shape, win: &Window) -> Vec<f32> {
    let (c, k) = (s.c, win.k);
    let width = k * k * c;
    let mut cols = vec![0.0f32; s.n * win.out_h * win.out_w * width];
    cols.par_chunks_mut(win.out_w * width)
        .enumerate()
        .for_each(|(r, rows)| {
            let (n, oy) = (r / win.out_h, r % win.out_h);
            for ox in 0..win.out_w {
                let patch = &mut rows[ox * width..][..width];
                for ky in 0..k {
                    let Some(iy) = Window::source(oy, ky, win.stride, win.pad_top, s.h) else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(ix) = Window::source(ox, kx, win.stride, win.pad_left, s.w) else {
                            continue;
                        };
                        patch[(ky * k + kx) * c..][..c]
                            .copy_from_slice(&x[((n * s.h + iy) * s.w + ix) * c..][..c]);
                    }
                }
            }
        });
    cols
}

/// Per-channel sums of `x` and of `x * x` over the rows of a `[rows, c]` buffer, in f64, added in a
/// fixed order (the same bits every run, whatever the thread timing).
pub fn channel_moments(x: &[f32], c: usize) -> (Vec<f64>, Vec<f64>) {
    let partials: Vec<(Vec<f64>, Vec<f64>)> = x
        .par_chunks(CHUNK_ROWS * c)
        .map(|chunk| chunk_moments(chunk, c))
        .collect();
    add_partials(partials, c)
}

/// One chunk's part of [`channel_moments`].
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn chunk_moments(chunk: &[f32], c: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut sum, mut squares) = (vec![0.0f64; c], vec![0.0f64; c]);
    for row in chunk.chunks_exact(c) {
        for ((s, q), &v) in sum.iter_mut().zip(squares.iter_mut()).zip(row) {
            let v = f64::from(v);
            *s += v;
            *q += v * v;
        }
    }
    (sum, squares)
}

/// Pairs of per-channel partial sums, added in order.
fn add_partials(partials: Vec<(Vec<f64>, Vec<f64>)>, c: usize) -> (Vec<f64>, Vec<f64>) {
    partials
        .into_iter()
        .fold((vec![0.0f64; c], vec![0.0f64; c]), |(a, b), (pa, pb)| {
            (add_into(a, pa), add_into(b, pb))
        })
}

/// BatchNorm's backward sums: zeroes `dz` where ReLU6 was flat (`relu6_out` given: the layer's
/// output), then returns the per-channel sums of `dz` and of `dz * x`, in a fixed order.
pub fn channel_backward_sums(
    dz: &mut [f32],
    x: &[f32],
    relu6_out: Option<&[f32]>,
    c: usize,
) -> (Vec<f64>, Vec<f64>) {
    let partials: Vec<(Vec<f64>, Vec<f64>)> = dz
        .par_chunks_mut(CHUNK_ROWS * c)
        .enumerate()
        .map(|(k, chunk)| {
            let (at, len) = (k * CHUNK_ROWS * c, chunk.len());
            let y = relu6_out.map(|y| &y[at..at + len]);
            chunk_backward_sums(chunk, &x[at..at + len], y, c)
        })
        .collect();
    add_partials(partials, c)
}

/// One chunk's part of [`channel_backward_sums`].
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn chunk_backward_sums(
    dz: &mut [f32],
    x: &[f32],
    relu6_out: Option<&[f32]>,
    c: usize,
) -> (Vec<f64>, Vec<f64>) {
    if let Some(y) = relu6_out {
        for (d, &y) in dz.iter_mut().zip(y) {
            // A select, not a branch, so the loop vectorises.
            *d = if y > 0.0 && y < 6.0 { *d } else { 0.0 };
        }
    }
    // f32 within a chunk (at most CHUNK_ROWS terms, so it vectorises twice as wide), f64 across
    // chunks.
    let (mut sum, mut dot) = (vec![0.0f32; c], vec![0.0f32; c]);
    for (row, xrow) in dz.chunks_exact(c).zip(x.chunks_exact(c)) {
        for (((s, p), &d), &v) in sum.iter_mut().zip(dot.iter_mut()).zip(row).zip(xrow) {
            *s += d;
            *p += d * v;
        }
    }
    let widen = |v: Vec<f32>| v.into_iter().map(f64::from).collect();
    (widen(sum), widen(dot))
}

/// Adds `b` into `a` element by element and returns `a`.
pub fn add_into<T: Copy + std::ops::AddAssign>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::Rng;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..len).map(|_| rng.normal() as f32).collect()
    }

    /// The textbook definition, one output at a time.
    fn naive_depthwise(x: &[f32], s: Shape, w: &[f32], win: &Window) -> Vec<f32> {
        let mut y = vec![0.0; s.n * win.out_h * win.out_w * s.c];
        for n in 0..s.n {
            for oy in 0..win.out_h {
                for ox in 0..win.out_w {
                    for c in 0..s.c {
                        let mut sum = 0.0;
                        for ky in 0..win.k {
                            for kx in 0..win.k {
                                let iy = (oy * win.stride + ky) as isize - win.pad_top as isize;
                                let ix = (ox * win.stride + kx) as isize - win.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let (iy, ix) = (iy as usize, ix as usize);
                                sum += x[((n * s.h + iy) * s.w + ix) * s.c + c]
                                    * w[(ky * win.k + kx) * s.c + c];
                            }
                        }
                        y[((n * win.out_h + oy) * win.out_w + ox) * s.c + c] = sum;
                    }
                }
            }
        }
        y
    }

    fn close(a: &[f32], b: &[f32], tolerance: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tolerance * (1.0 + y.abs()),
                "at {i}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn windows_pad_like_tensorflow_and_pytorch() {
        let same = Window::new(224, 224, 3, 2, true);
        assert_eq!(
            (same.out_h, same.pad_top),
            (112, 0),
            "SAME puts the extra row below"
        );
        let torch = Window::new(224, 224, 3, 2, false);
        assert_eq!((torch.out_h, torch.pad_top), (112, 1));
        let odd = Window::new(7, 7, 3, 2, true);
        assert_eq!((odd.out_h, odd.pad_top), (4, 1));
        assert_eq!(Window::new(5, 5, 3, 1, true).pad_top, 1);
    }

    #[test]
    fn matmul_matches_the_definition_in_every_transpose() {
        let (m, n, k) = (5, 4, 3);
        let a = random(m * k, 1);
        let b = random(k * n, 2);
        let mut expected = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                expected[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        let transpose = |v: &[f32], rows: usize, cols: usize| {
            let mut t = vec![0.0; v.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = v[r * cols + c];
                }
            }
            t
        };
        let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
        for (lhs, a_t) in [(&a, false), (&at, true)] {
            for (rhs, b_t) in [(&b, false), (&bt, true)] {
                let mut c = vec![1.0; m * n];
                matmul((m, n, k), lhs, a_t, rhs, b_t, &mut c, false);
                close(&c, &expected, 1e-5);
                matmul((m, n, k), lhs, a_t, rhs, b_t, &mut c, true);
                close(
                    &c,
                    &expected.iter().map(|e| 2.0 * e).collect::<Vec<_>>(),
                    1e-5,
                );
            }
        }
    }

    #[test]
    fn depthwise_matches_the_naive_definition() {
        for (stride, same) in [(1, true), (2, true), (2, false)] {
            let s = Shape::new(2, 7, 6, 5);
            let win = Window::new(s.h, s.w, 3, stride, same);
            let x = random(s.len(), 3);
            let w = random(9 * s.c, 4);
            close(
                &depthwise_forward(&x, s, &w, &win, None),
                &naive_depthwise(&x, s, &w, &win),
                1e-5,
            );
        }
    }

    #[test]
    fn depthwise_backward_is_the_adjoint_of_forward() {
        // <dy, conv(x, w)> is linear in x and in w, so its gradients are exactly the backward
        // kernels: compare them with the naive forward applied to unit vectors.
        let s = Shape::new(2, 5, 4, 3);
        let win = Window::new(s.h, s.w, 3, 2, true);
        let x = random(s.len(), 5);
        let w = random(9 * s.c, 6);
        let dy = random(s.n * win.out_h * win.out_w * s.c, 7);
        let dot = |x: &[f32], w: &[f32]| -> f32 {
            naive_depthwise(x, s, w, &win)
                .iter()
                .zip(&dy)
                .map(|(a, b)| a * b)
                .sum()
        };
        let dx = depthwise_backward_input(&dy, s, &w, &win);
        for i in 0..x.len() {
            let mut e = vec![0.0; x.len()];
            e[i] = 1.0;
            assert!((dx[i] - dot(&e, &w)).abs() < 1e-4, "dx[{i}]");
        }
        let dw = depthwise_backward_weight(&x, s, &dy, &win);
        for i in 0..w.len() {
            let mut e = vec![0.0; w.len()];
            e[i] = 1.0;
            assert!((dw[i] - dot(&x, &e)).abs() < 1e-4, "dw[{i}]");
        }
    }

    #[test]
    fn im2col_times_weights_is_the_convolution() {
        let s = Shape::new(2, 6, 5, 3);
        let win = Window::new(s.h, s.w, 3, 2, false);
        let x = random(s.len(), 8);
        let out = 4;
        let w = random(9 * s.c * out, 9);
        let cols = im2col(&x, s, &win);
        let rows = s.n * win.out_h * win.out_w;
        let mut y = vec![0.0; rows * out];
        matmul((rows, out, 9 * s.c), &cols, false, &w, false, &mut y, false);
        // Output channel o of a full convolution is the sum over input channels of depthwise
        // convolutions with that channel's slice of the weights.
        for o in 0..out {
            let mut expected = vec![0.0; rows];
            for ci in 0..s.c {
                let wd: Vec<f32> = (0..9 * s.c)
                    .map(|i| {
                        if i % s.c == ci {
                            w[(i / s.c * s.c + ci) * out + o]
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let d = naive_depthwise(&x, s, &wd, &win);
                for (r, e) in expected.iter_mut().enumerate() {
                    *e += d[r * s.c + ci];
                }
            }
            let got: Vec<f32> = (0..rows).map(|r| y[r * out + o]).collect();
            close(&got, &expected, 1e-4);
        }
    }
}
