//! The numeric kernels behind the model's ops, on plain NHWC `f32` buffers: matrix products (the
//! `gemm` crate, dfdx's own CPU matmul backend), 3x3 depthwise convolution, im2col for the stem's
//! convolution, and batch normalisation. Each backward kernel has a naive reference and a
//! finite-difference check in the tests.

use rayon::prelude::*;

use super::tape::Shape;

/// Products smaller than this many multiply-adds run on one thread: splitting them costs more than
/// it saves.
const SERIAL_GEMM: usize = 1 << 18;

/// `c = a * b` (or `c += a * b` when `accumulate`), with `a` an `m x k` matrix and `b` a `k x n`
/// matrix, row-major; `a_t` / `b_t` say the buffer holds the transpose (`k x m`, `n x k`).
#[allow(clippy::too_many_arguments)]
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
    unsafe { gemm_into(dims, a, a_t, b, b_t, c.as_mut_ptr(), accumulate) }
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
        gemm_into(dims, a, a_t, b, b_t, c.as_mut_ptr(), false);
        c.set_len(m * n);
    }
    c
}

/// The gemm call behind [`matmul`] and [`matmul_new`].
///
/// # Safety
/// `c` must be valid for writes of `m * n` values (and reads, when `accumulate`) and alias neither
/// `a` nor `b`.
unsafe fn gemm_into(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: *mut f32,
    accumulate: bool,
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
            if m * n * k < SERIAL_GEMM {
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

/// Depthwise convolution: `y[n, oy, ox, c] = sum over taps of x[n, iy, ix, c] * w[ky, kx, c]`.
pub fn depthwise_forward(x: &[f32], s: Shape, w: &[f32], win: &Window) -> Vec<f32> {
    let (c, k) = (s.c, win.k);
    let row = win.out_w * c;
    let mut y = vec![0.0f32; s.n * win.out_h * row];
    y.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
        let (n, oy) = (r / win.out_h, r % win.out_h);
        for ky in 0..k {
            let Some(iy) = Window::source(oy, ky, win.stride, win.pad_top, s.h) else {
                continue;
            };
            let input = &x[((n * s.h + iy) * s.w) * c..][..s.w * c];
            for ox in 0..win.out_w {
                let o = &mut out[ox * c..][..c];
                for kx in 0..k {
                    let Some(ix) = Window::source(ox, kx, win.stride, win.pad_left, s.w) else {
                        continue;
                    };
                    let xs = &input[ix * c..][..c];
                    let ws = &w[(ky * k + kx) * c..][..c];
                    for ((o, &xv), &wv) in o.iter_mut().zip(xs).zip(ws) {
                        *o += xv * wv;
                    }
                }
            }
        }
    });
    y
}

/// Calls `f(output pixel, input pixel, tap)` for every kernel tap of image `n` that lands inside the
/// input; pixels are element offsets of their first channel (the output's within the whole batch, the
/// input's within the image), taps are `ky * k + kx`.
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
    let c = s.c;
    let mut dx = vec![0.0f32; s.len()];
    dx.par_chunks_mut(s.h * s.w * c)
        .enumerate()
        .for_each(|(n, dx)| {
            for_each_tap(n, s, win, |out, input, tap| {
                let d = &mut dx[input..][..c];
                for ((d, &g), &w) in d.iter_mut().zip(&dy[out..][..c]).zip(&w[tap * c..][..c]) {
                    *d += g * w;
                }
            });
        });
    dx
}

/// The gradient of a depthwise convolution's weights, `[k, k, c]`.
pub fn depthwise_backward_weight(x: &[f32], s: Shape, dy: &[f32], win: &Window) -> Vec<f32> {
    let (c, k) = (s.c, win.k);
    // One partial sum per image, added in order: the result does not depend on thread timing.
    let partials: Vec<Vec<f32>> = (0..s.n)
        .into_par_iter()
        .map(|n| {
            let mut dw = vec![0.0f32; k * k * c];
            let image = &x[n * s.h * s.w * c..];
            for_each_tap(n, s, win, |out, input, tap| {
                let d = &mut dw[tap * c..][..c];
                for ((d, &g), &x) in d.iter_mut().zip(&dy[out..][..c]).zip(&image[input..][..c]) {
                    *d += g * x;
                }
            });
            dw
        })
        .collect();
    partials.into_iter().fold(vec![0.0f32; k * k * c], add_into)
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

/// Rows per parallel task in the per-channel reductions.
const CHUNK_ROWS: usize = 256;

/// Per-channel sums of `x` and of `x * x` over the rows of a `[rows, c]` buffer, in f64, added in a
/// fixed order (the same bits every run, whatever the thread timing).
pub fn channel_moments(x: &[f32], c: usize) -> (Vec<f64>, Vec<f64>) {
    let partials: Vec<(Vec<f64>, Vec<f64>)> = x
        .par_chunks(CHUNK_ROWS * c)
        .map(|chunk| {
            let (mut sum, mut squares) = (vec![0.0f64; c], vec![0.0f64; c]);
            for row in chunk.chunks_exact(c) {
                for ((s, q), &v) in sum.iter_mut().zip(squares.iter_mut()).zip(row) {
                    let v = f64::from(v);
                    *s += v;
                    *q += v * v;
                }
            }
            (sum, squares)
        })
        .collect();
    partials
        .into_iter()
        .fold((vec![0.0f64; c], vec![0.0f64; c]), |(s, q), (ps, pq)| {
            (add_into(s, ps), add_into(q, pq))
        })
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
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
            let xs = &x[at..at + len];
            if let Some(y) = relu6_out {
                for (d, &y) in chunk.iter_mut().zip(&y[at..at + len]) {
                    // A select, not a branch, so the loop vectorises.
                    *d = if y > 0.0 && y < 6.0 { *d } else { 0.0 };
                }
            }
            // f32 within a chunk (at most CHUNK_ROWS terms, so it vectorises twice as wide), f64
            // across chunks.
            let (mut sum, mut dot) = (vec![0.0f32; c], vec![0.0f32; c]);
            for (row, xrow) in chunk.chunks_exact(c).zip(xs.chunks_exact(c)) {
                for (((s, p), &d), &v) in sum.iter_mut().zip(dot.iter_mut()).zip(row).zip(xrow) {
                    *s += d;
                    *p += d * v;
                }
            }
            (widen(&sum), widen(&dot))
        })
        .collect();
    partials
        .into_iter()
        .fold((vec![0.0f64; c], vec![0.0f64; c]), |(s, p), (ps, pp)| {
            (add_into(s, ps), add_into(p, pp))
        })
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
    use crate::rng::Rng;

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
                &depthwise_forward(&x, s, &w, &win),
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
