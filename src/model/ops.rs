//! The model's differentiable ops. Each computes its forward pass with the kernels, returns a [`Var`],
//! and, when training, records a backward closure on the tape that adds into its inputs' and
//! parameters' gradients. Nothing is computed for an input or parameter that needs no gradient, so the
//! frozen lower blocks of a fine-tuned network cost only their forward pass. An op's output needs a
//! gradient when any of its inputs or parameters does.

use std::sync::Arc;

use rayon::prelude::*;

use super::kernels::{self, Epilogue, Window, matmul, matmul_new, matmul_then};
use super::param::Param;
use super::shape::Shape;
use super::tape::{BackwardError, Grads, Graph, Slot, Var, accumulate, gradient, put, take};
use crate::util::rng::Rng;

fn trains(g: &Graph, p: &Param) -> bool {
    g.is_training() && p.trainable
}

/// A 1x1 convolution: `[n, h, w, cin] -> [n, h, w, cout]` with weights `[cin, cout]`.
pub fn pointwise(g: &mut Graph, x: &Var, w: &Param) -> Var {
    let (cin, cout) = (x.shape.c, w.value.len() / x.shape.c);
    let rows = x.shape.pixels();
    let y = matmul_new((rows, cout, cin), &x.value, false, &w.value, false);
    let train_w = trains(g, w);
    let out = g.var(y, Shape { c: cout, ..x.shape }, x.needs_grad() || train_w);
    if let Some(out_slot) = out.slot.clone() {
        let (xv, wv, x_slot) = (x.value.clone(), w.value.clone(), x.slot.clone());
        let w_slot = train_w.then(|| w.slot.clone());
        g.record(move |grads| {
            let dy = take(grads, &out_slot)?;
            if let Some(s) = w_slot {
                matmul_into(grads, &s, (cin, cout, rows), (&xv, true), (&dy, false))?;
            }
            if let Some(s) = x_slot {
                matmul_into(grads, &s, (rows, cin, cout), (&dy, false), (&wv, true))?;
            }
            Ok(())
        });
    }
    out
}

/// A k x k convolution with weights `[k, k, cin, cout]` (the stem). Its input is the image, which
/// needs no gradient, so only the weights' gradient is computed.
pub fn conv(g: &mut Graph, x: &Var, w: &Param, win: Window) -> Var {
    assert!(
        !x.needs_grad(),
        "conv computes no input gradient: use it on images only"
    );
    let width = win.k * win.k * x.shape.c;
    let cout = w.value.len() / width;
    let cols = kernels::im2col(&x.value, x.shape, &win);
    let rows = x.shape.n * win.out_h * win.out_w;
    let y = matmul_new((rows, cout, width), &cols, false, &w.value, false);
    let shape = Shape::new(x.shape.n, win.out_h, win.out_w, cout);
    let train_w = trains(g, w);
    let out = g.var(y, shape, train_w);
    if let Some(out_slot) = out.slot.clone() {
        let w_slot = w.slot.clone();
        g.record(move |grads| {
            let dy = take(grads, &out_slot)?;
            matmul_into(
                grads,
                &w_slot,
                (width, cout, rows),
                (&cols, true),
                (&dy, false),
            )
        });
    }
    out
}

/// A depthwise convolution with weights `[k, k, c]`.
pub fn depthwise(g: &mut Graph, x: &Var, w: &Param, win: Window) -> Var {
    let y = kernels::depthwise_forward(&x.value, x.shape, &w.value, &win, None);
    let shape = Shape::new(x.shape.n, win.out_h, win.out_w, x.shape.c);
    let train_w = trains(g, w);
    let out = g.var(y, shape, x.needs_grad() || train_w);
    if let Some(out_slot) = out.slot.clone() {
        let (xv, wv, xs, x_slot) = (x.value.clone(), w.value.clone(), x.shape, x.slot.clone());
        let w_slot = train_w.then(|| w.slot.clone());
        g.record(move |grads| {
            let dy = take(grads, &out_slot)?;
            if let Some(s) = w_slot {
                put(
                    grads,
                    &s,
                    kernels::depthwise_backward_weight(&xv, xs, &dy, &win),
                )?;
            }
            if let Some(s) = x_slot {
                put(
                    grads,
                    &s,
                    kernels::depthwise_backward_input(&dy, xs, &wv, &win),
                )?;
            }
            Ok(())
        });
    }
    out
}

/// BatchNorm's parameters and running statistics.
pub struct BatchNorm {
    /// Scale per channel.
    pub gamma: Param,
    /// Shift per channel.
    pub beta: Param,
    /// Running mean, used in inference mode.
    pub running_mean: Vec<f32>,
    /// Running (unbiased) variance, used in inference mode.
    pub running_var: Vec<f32>,
    /// Weight of the newest batch in the running statistics (PyTorch's convention: 0.1).
    pub momentum: f32,
    /// Added to the variance.
    pub eps: f32,
}

impl BatchNorm {
    /// `1 / sqrt(running variance + eps)` per channel.
    fn running_inv_std(&self) -> Vec<f32> {
        self.running_var
            .iter()
            .map(|&v| 1.0 / (v + self.eps).sqrt())
            .collect()
    }

    /// Normalisation by `mean` and `inv_std`, then gamma and beta, as one map per channel:
    /// `y = x * scale + shift`.
    fn affine(&self, mean: &[f32], inv_std: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self
            .gamma
            .value
            .iter()
            .zip(inv_std)
            .map(|(g, s)| g * s)
            .collect();
        let shift = (0..scale.len())
            .map(|ch| self.beta.value[ch] - mean[ch] * scale[ch])
            .collect();
        (scale, shift)
    }
}

/// A layer's convolution and where its window sits.
#[derive(Debug, Clone, Copy)]
pub enum Convolution {
    /// k x k over all input channels (the stem), weights `[k, k, cin, cout]`.
    Full(Window),
    /// 3x3 per channel, weights `[k, k, c]`.
    Depthwise(Window),
    /// 1x1, weights `[cin, cout]`.
    Pointwise,
}

/// A convolution layer whose output needs no gradient (inference, or a frozen layer that nothing
/// below trains): the convolution, BatchNorm by its running statistics, ReLU6 when `relu6`, and the
/// block's `shortcut` added, in the convolution's own pass over its output. The same numbers as
/// [`conv`]/[`depthwise`]/[`pointwise`], [`batch_norm`] and [`sum`] one after another, without three
/// more passes over memory.
pub fn frozen_conv_bn(
    g: &Graph,
    x: &Var,
    conv: Convolution,
    w: &Param,
    bn: &BatchNorm,
    relu6: bool,
    shortcut: Option<&Var>,
) -> Var {
    let (scale, shift) = bn.affine(&bn.running_mean, &bn.running_inv_std());
    let epilogue = Epilogue {
        scale: &scale,
        shift: &shift,
        relu6,
        residual: shortcut.map(|s| s.value.as_slice()),
    };
    let cout = scale.len();
    let (y, shape) = match conv {
        Convolution::Pointwise => {
            let dims = (x.shape.pixels(), cout, x.shape.c);
            let y = matmul_then(dims, &x.value, &w.value, |chunk, at| {
                epilogue.apply(chunk, at)
            });
            (y, Shape { c: cout, ..x.shape })
        }
        Convolution::Full(win) => {
            let cols = kernels::im2col(&x.value, x.shape, &win);
            let rows = x.shape.n * win.out_h * win.out_w;
            let dims = (rows, cout, win.k * win.k * x.shape.c);
            let y = matmul_then(dims, &cols, &w.value, |chunk, at| epilogue.apply(chunk, at));
            (y, Shape::new(x.shape.n, win.out_h, win.out_w, cout))
        }
        Convolution::Depthwise(win) => {
            let y = kernels::depthwise_forward(&x.value, x.shape, &w.value, &win, Some(&epilogue));
            (y, Shape::new(x.shape.n, win.out_h, win.out_w, cout))
        }
    };
    if let Some(s) = shortcut {
        assert_eq!(s.shape, shape, "a shortcut of another shape");
    }
    g.var(y, shape, false)
}

/// Batch normalisation over the channels, then ReLU6 when `relu6`. With `batch_stats` it normalises
/// by the batch's statistics and updates the running ones (training); otherwise by the running ones.
pub fn batch_norm(
    g: &mut Graph,
    x: &Var,
    bn: &mut BatchNorm,
    batch_stats: bool,
    relu6: bool,
) -> Var {
    let (rows, c) = (x.shape.pixels(), x.shape.c);
    let (mean, inv_std): (Vec<f32>, Vec<f32>) = if batch_stats {
        let (sums, squares) = kernels::channel_moments(&x.value, c);
        let mean: Vec<f64> = sums.iter().map(|s| s / rows as f64).collect();
        let var: Vec<f64> = squares
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / rows as f64 - m * m).max(0.0))
            .collect();
        let unbiased = rows as f64 / (rows.max(2) - 1) as f64;
        let m = f64::from(bn.momentum);
        for ch in 0..c {
            let rm = &mut bn.running_mean[ch];
            *rm = ((1.0 - m) * f64::from(*rm) + m * mean[ch]) as f32;
            let rv = &mut bn.running_var[ch];
            *rv = ((1.0 - m) * f64::from(*rv) + m * var[ch] * unbiased) as f32;
        }
        (
            mean.iter().map(|&v| v as f32).collect(),
            var.iter()
                .map(|&v| (1.0 / (v + f64::from(bn.eps)).sqrt()) as f32)
                .collect(),
        )
    } else {
        (bn.running_mean.clone(), bn.running_inv_std())
    };
    let (scale, shift) = bn.affine(&mean, &inv_std);
    let y = kernels::affine(&x.value, &scale, &shift, relu6);
    let train_params = trains(g, &bn.gamma);
    let out = g.var(y, x.shape, x.needs_grad() || train_params);
    if let Some(out_slot) = out.slot.clone() {
        let (xv, yv, x_slot) = (x.value.clone(), out.value.clone(), x.slot.clone());
        let param_slots = train_params.then(|| (bn.gamma.slot.clone(), bn.beta.slot.clone()));
        let gamma = bn.gamma.value.clone();
        g.record(move |grads| {
            let mut dz = take(grads, &out_slot)?;
            let mask = relu6.then_some(yv.as_slice());
            let (d_beta, dz_x) = kernels::channel_backward_sums(&mut dz, &xv, mask, c);
            // sum(dz * xhat) = (sum(dz * x) - mean * sum(dz)) * inv_std
            let d_gamma: Vec<f64> = (0..c)
                .map(|ch| (dz_x[ch] - f64::from(mean[ch]) * d_beta[ch]) * f64::from(inv_std[ch]))
                .collect();
            if let Some((gs, bs)) = param_slots {
                put(grads, &gs, to_f32(&d_gamma))?;
                put(grads, &bs, to_f32(&d_beta))?;
            }
            if let Some(s) = x_slot {
                let n = rows as f32;
                let mean_beta: Vec<f32> = d_beta.iter().map(|&v| v as f32 / n).collect();
                let mean_gamma: Vec<f32> = d_gamma.iter().map(|&v| v as f32 / n).collect();
                let k: Vec<f32> = gamma.iter().zip(&inv_std).map(|(g, s)| g * s).collect();
                let centre = batch_stats.then_some(kernels::Centre {
                    mean: &mean,
                    inv_std: &inv_std,
                    mean_dz: &mean_beta,
                    mean_dz_xhat: &mean_gamma,
                });
                // The input's gradient is computed in place of the output's.
                kernels::batch_norm_input_gradient(&mut dz, &xv, &k, centre);
                put(grads, &s, dz)?;
            }
            Ok(())
        });
    }
    out
}

/// Element-wise sum of two values of one shape (the inverted residual's shortcut).
pub fn sum(g: &mut Graph, a: &Var, b: &Var) -> Var {
    assert_eq!(a.shape, b.shape, "sum of different shapes");
    let y: Vec<f32> = a
        .value
        .par_iter()
        .zip(b.value.par_iter())
        .map(|(x, y)| x + y)
        .collect();
    let out = g.var(y, a.shape, a.needs_grad() || b.needs_grad());
    if let Some(out_slot) = out.slot.clone() {
        let (a_slot, b_slot) = (a.slot.clone(), b.slot.clone());
        g.record(move |grads| {
            let dy = take(grads, &out_slot)?;
            match (a_slot, b_slot) {
                (Some(a), Some(b)) => {
                    put(grads, &a, dy.par_iter().copied().collect())?;
                    put(grads, &b, dy)
                }
                (Some(s), None) | (None, Some(s)) => put(grads, &s, dy),
                (None, None) => Ok(()),
            }
        });
    }
    out
}

/// The mean over rows and columns: `[n, h, w, c] -> [n, 1, 1, c]`.
pub fn global_average_pool(g: &mut Graph, x: &Var) -> Var {
    let (area, c) = (x.shape.h * x.shape.w, x.shape.c);
    let y: Vec<f32> = x
        .value
        .chunks(area * c)
        .flat_map(|image| {
            let mut sums = vec![0.0f32; c];
            for pixel in image.chunks(c) {
                add(&mut sums, pixel);
            }
            sums.into_iter().map(move |s| s / area as f32)
        })
        .collect();
    let shape = Shape::new(x.shape.n, 1, 1, c);
    let out = g.var(y, shape, x.needs_grad());
    if let (Some(out_slot), Some(x_slot)) = (out.slot.clone(), x.slot.clone()) {
        g.record(move |grads| {
            let dy = take(grads, &out_slot)?;
            let dx = accumulate(grads, &x_slot)?;
            for (image, g) in dx.chunks_mut(area * c).zip(dy.chunks(c)) {
                for pixel in image.chunks_mut(c) {
                    for (d, &gv) in pixel.iter_mut().zip(g) {
                        *d += gv / area as f32;
                    }
                }
            }
            Ok(())
        });
    }
    out
}

/// Inverted dropout: when training, zeroes each value with probability `p` and scales the rest by
/// `1 / (1 - p)`; otherwise the identity.
pub fn dropout(g: &mut Graph, x: &Var, p: f32, rng: &mut Rng) -> Var {
    if !g.is_training() || p <= 0.0 {
        return x.clone();
    }
    let mask = dropout_mask(x.value.len(), p, rng);
    let y: Vec<f32> = x.value.iter().zip(&mask).map(|(v, m)| v * m).collect();
    let out = g.var(y, x.shape, x.needs_grad());
    if let (Some(out_slot), Some(x_slot)) = (out.slot.clone(), x.slot.clone()) {
        g.record(move |grads| {
            let dy = take(grads, &out_slot)?;
            let dx = accumulate(grads, &x_slot)?;
            for ((d, g), m) in dx.iter_mut().zip(&dy).zip(&mask) {
                *d += g * m;
            }
            Ok(())
        });
    }
    out
}

/// Inverted dropout's multipliers for `len` values: 0 with probability `p`, else `1 / (1 - p)`.
pub fn dropout_mask(len: usize, p: f32, rng: &mut Rng) -> Vec<f32> {
    let keep = 1.0 / (1.0 - p);
    (0..len)
        .map(|_| if rng.chance(f64::from(p)) { 0.0 } else { keep })
        .collect()
}

/// A fully connected layer: `[n, 1, 1, cin] -> [n, 1, 1, cout]`, weights `[cin, cout]` and a bias.
pub fn linear(g: &mut Graph, x: &Var, w: &Param, b: &Param) -> Var {
    let cout = b.value.len();
    let mut y = pointwise(g, x, w);
    let train_b = trains(g, b);
    let mut values = Arc::unwrap_or_clone(std::mem::take(&mut y.value));
    for row in values.chunks_mut(cout) {
        add(row, &b.value);
    }
    let out = g.var(values, y.shape, y.needs_grad() || train_b);
    if let Some(out_slot) = out.slot.clone() {
        let (y_slot, b_slot) = (y.slot.clone(), train_b.then(|| b.slot.clone()));
        g.record(move |grads| {
            let dy = take(grads, &out_slot)?;
            if let Some(s) = b_slot {
                let db = accumulate(grads, &s)?;
                for row in dy.chunks(cout) {
                    add(db, row);
                }
            }
            if let Some(s) = y_slot {
                put(grads, &s, dy)?;
            }
            Ok(())
        });
    }
    out
}

/// Binary cross-entropy on logits `[n, 1, 1, 1]` against labels 0/1, each image weighted (class
/// weights), averaged over the batch: a scalar.
pub fn binary_cross_entropy(g: &mut Graph, logits: &Var, labels: &[f32], weights: &[f32]) -> Var {
    let loss = binary_cross_entropy_value(&logits.value, labels, weights);
    let out = g.var(vec![loss], Shape::new(1, 1, 1, 1), logits.needs_grad());
    if let (Some(out_slot), Some(z_slot)) = (out.slot.clone(), logits.slot.clone()) {
        let gradient = binary_cross_entropy_gradient(&logits.value, labels, weights);
        g.record(move |grads| {
            let seed = take(grads, &out_slot)?[0];
            let dz = accumulate(grads, &z_slot)?;
            for (d, g) in dz.iter_mut().zip(&gradient) {
                *d += seed * g;
            }
            Ok(())
        });
    }
    out
}

/// The weighted binary cross-entropy of `logits` against 0/1 `labels`, averaged over the logits.
pub fn binary_cross_entropy_value(logits: &[f32], labels: &[f32], weights: &[f32]) -> f32 {
    let n = logits.len();
    assert!(
        labels.len() == n && weights.len() == n,
        "one label and weight per logit"
    );
    let loss: f64 = (0..n)
        .map(|i| {
            let (z, y) = (f64::from(logits[i]), f64::from(labels[i]));
            f64::from(weights[i]) * (z.max(0.0) - z * y + (-z.abs()).exp().ln_1p())
        })
        .sum::<f64>()
        / n as f64;
    loss as f32
}

/// The gradient of [`binary_cross_entropy_value`] with respect to each logit.
pub fn binary_cross_entropy_gradient(logits: &[f32], labels: &[f32], weights: &[f32]) -> Vec<f32> {
    let n = logits.len() as f32;
    (0..logits.len())
        .map(|i| weights[i] * (sigmoid(logits[i]) - labels[i]) / n)
        .collect()
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Adds the product `a * b` (each a buffer and whether it holds the transpose, as in [`matmul`]) to
/// the gradient of `slot`; the first product to reach it is written into a new buffer, not added.
fn matmul_into(
    grads: &mut Grads,
    slot: &Slot,
    dims: (usize, usize, usize),
    (a, a_t): (&[f32], bool),
    (b, b_t): (&[f32], bool),
) -> Result<(), BackwardError> {
    match gradient(grads, slot)? {
        Some(sum) => matmul(dims, a, a_t, b, b_t, sum, true),
        None => put(grads, slot, matmul_new(dims, a, a_t, b, b_t))?,
    }
    Ok(())
}

fn add(into: &mut [f32], from: &[f32]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::param::Layout;

    /// A small network that uses every op once: stem conv, BatchNorm + ReLU6, depthwise, shortcut,
    /// pointwise, BatchNorm, pooling, linear head and the loss.
    struct Tiny {
        params: Vec<Param>,
        bn1: BatchNorm,
        bn2: BatchNorm,
    }

    const C: usize = 4;

    fn random(len: usize, rng: &mut Rng, scale: f64) -> Vec<f32> {
        (0..len).map(|_| (rng.normal() * scale) as f32).collect()
    }

    fn norm(name: &str, rng: &mut Rng) -> BatchNorm {
        let v = Layout::Vector { len: C };
        let gamma = random(C, rng, 0.3).iter().map(|x| 1.0 + x).collect();
        BatchNorm {
            gamma: Param::new(format!("{name}.g"), v, gamma, false),
            beta: Param::new(format!("{name}.b"), v, random(C, rng, 0.3), false),
            running_mean: random(C, rng, 0.1),
            running_var: vec![1.5; C],
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    impl Tiny {
        fn new() -> Tiny {
            let mut rng = Rng::new(11);
            let layouts = [
                Layout::Conv {
                    k: 3,
                    cin: 3,
                    cout: C,
                },
                Layout::Depthwise { k: 3, c: C },
                Layout::Pointwise { cin: C, cout: C },
                Layout::Linear { cin: C, cout: 1 },
                Layout::Vector { len: 1 },
            ];
            let params = layouts
                .iter()
                .enumerate()
                .map(|(i, &l)| Param::new(format!("p{i}"), l, random(l.len(), &mut rng, 0.5), true))
                .collect();
            Tiny {
                params,
                bn1: norm("bn1", &mut rng),
                bn2: norm("bn2", &mut rng),
            }
        }

        fn loss(&mut self, g: &mut Graph, batch_stats: bool) -> Var {
            let mut rng = Rng::new(5);
            let s = Shape::new(3, 6, 5, 3);
            let x = g.var(random(s.len(), &mut rng, 1.0), s, false);
            let p = &self.params;
            let a = conv(g, &x, &p[0], Window::new(6, 5, 3, 2, false));
            let b = batch_norm(g, &a, &mut self.bn1, batch_stats, true);
            let c = depthwise(g, &b, &p[1], Window::new(3, 3, 3, 1, true));
            let d = sum(g, &b, &c);
            let e = pointwise(g, &d, &p[2]);
            let f = batch_norm(g, &e, &mut self.bn2, batch_stats, false);
            let h = global_average_pool(g, &f);
            let z = linear(g, &h, &p[3], &p[4]);
            binary_cross_entropy(g, &z, &[1.0, 0.0, 1.0], &[1.0, 2.0, 0.5])
        }

        fn all(&mut self) -> Vec<&mut Param> {
            let mut out: Vec<&mut Param> = self.params.iter_mut().collect();
            for bn in [&mut self.bn1, &mut self.bn2] {
                out.push(&mut bn.gamma);
                out.push(&mut bn.beta);
            }
            out
        }
    }

    #[test]
    fn a_fused_frozen_layer_gives_the_bits_of_its_ops_in_sequence() {
        // Enough pixels for several of the fused matmul's chunks, and channels that are not a whole
        // number of the depthwise kernel's lanes.
        let (n, side, c) = (2, 18, 24);
        let mut rng = Rng::new(21);
        let vector = |rng: &mut Rng, offset: f32| {
            let v = Layout::Vector { len: c };
            let values = random(c, rng, 0.5).iter().map(|x| x + offset).collect();
            Param::new("v".into(), v, values, false)
        };
        let mut bn = BatchNorm {
            gamma: vector(&mut rng, 1.0),
            beta: vector(&mut rng, 0.0),
            running_mean: random(c, &mut rng, 0.3),
            running_var: random(c, &mut rng, 0.3)
                .iter()
                .map(|v| 1.0 + v.abs())
                .collect(),
            momentum: 0.1,
            eps: 1e-5,
        };
        let g = &mut Graph::inference();
        let image = Shape::new(n, side, side, 3);
        let image = g.var(random(image.len(), &mut rng, 1.0), image, false);
        let x = Shape::new(n, side, side, c);
        let x = g.var(random(x.len(), &mut rng, 2.0), x, false);
        let weights = |layout: Layout, rng: &mut Rng| {
            Param::new("w".into(), layout, random(layout.len(), rng, 0.5), false)
        };
        let stem = weights(
            Layout::Conv {
                k: 3,
                cin: 3,
                cout: c,
            },
            &mut rng,
        );
        let depthwise_w = weights(Layout::Depthwise { k: 3, c }, &mut rng);
        let pointwise_w = weights(Layout::Pointwise { cin: c, cout: c }, &mut rng);
        let window = |stride, same| Window::new(side, side, 3, stride, same);
        let cases = [
            (
                &image,
                Convolution::Full(window(2, false)),
                &stem,
                true,
                false,
            ),
            (
                &x,
                Convolution::Depthwise(window(1, true)),
                &depthwise_w,
                true,
                false,
            ),
            (
                &x,
                Convolution::Depthwise(window(2, true)),
                &depthwise_w,
                true,
                false,
            ),
            (&x, Convolution::Pointwise, &pointwise_w, false, true),
            (&x, Convolution::Pointwise, &pointwise_w, true, false),
        ];
        for (i, (input, convolution, w, relu6, shortcut)) in cases.into_iter().enumerate() {
            let y = match convolution {
                Convolution::Full(win) => conv(g, input, w, win),
                Convolution::Depthwise(win) => depthwise(g, input, w, win),
                Convolution::Pointwise => pointwise(g, input, w),
            };
            // Inference mode: normalises by the running statistics and leaves them as they are.
            let mut expected = batch_norm(g, &y, &mut bn, false, relu6);
            if shortcut {
                expected = sum(g, input, &expected);
            }
            let shortcut = shortcut.then_some(input);
            let fused = frozen_conv_bn(g, input, convolution, w, &bn, relu6, shortcut);
            assert_eq!(fused.shape, expected.shape, "case {i}");
            assert!(fused.value == expected.value, "case {i}: different numbers");
        }
    }

    fn check_gradients(batch_stats: bool) {
        let mut net = Tiny::new();
        let mut g = Graph::training();
        let loss = net.loss(&mut g, batch_stats);
        let mut grads = g.backward(&loss);
        let analytic: Vec<Vec<f32>> = net
            .all()
            .iter()
            .map(|p| accumulate(&mut grads, &p.slot).unwrap().to_vec())
            .collect();
        let eps = 1e-2f32;
        for (k, gradient) in analytic.iter().enumerate() {
            for (i, &expected) in gradient.iter().enumerate() {
                let mut at = |delta: f32| {
                    net.all()[k].value_mut()[i] += delta;
                    let l = net.loss(&mut Graph::training(), batch_stats).value[0];
                    net.all()[k].value_mut()[i] -= delta;
                    f64::from(l)
                };
                let numeric = ((at(eps) - at(-eps)) / (2.0 * f64::from(eps))) as f32;
                let name = net.all()[k].name.clone();
                assert!(
                    (numeric - expected).abs() < 2e-3 + 0.03 * numeric.abs(),
                    "{name}[{i}] (batch stats {batch_stats}): analytic {expected} numeric {numeric}"
                );
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_in_training_mode() {
        check_gradients(true);
    }

    #[test]
    fn gradients_match_finite_differences_with_running_statistics() {
        check_gradients(false);
    }

    #[test]
    fn frozen_parameters_get_no_gradient_and_inference_records_nothing() {
        let mut net = Tiny::new();
        net.params[2].trainable = false;
        let mut g = Graph::training();
        let loss = net.loss(&mut g, true);
        let mut grads = g.backward(&loss);
        let frozen = accumulate(&mut grads, &net.params[2].slot).unwrap();
        assert!(frozen.iter().all(|&v| v == 0.0));
        let trained = accumulate(&mut grads, &net.params[1].slot).unwrap();
        assert!(trained.iter().any(|&v| v != 0.0));
        assert!(!net.loss(&mut Graph::inference(), false).needs_grad());
    }
}
