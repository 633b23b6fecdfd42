//! MobileNetV2 on the GPU: a copy of a [`MobileNetV2`]'s parameters, running statistics and Adam
//! state in GPU memory, with the forward pass, the backward pass and the optimiser step as GPU work.
//!
//! The network's structure comes from [`MobileNetV2::plan`], so the GPU computes exactly the CPU's
//! network (the same ops in `ops.rs`, the same parameters); only the order of floating-point sums
//! differs. The backward pass is written out in reverse layer order rather than taped: the network
//! is a fixed chain of blocks. The loss and its gradient (a few numbers per image) are computed on
//! the host with the CPU's functions.

use std::sync::Arc;

use cudarc::driver::CudaSlice;

use super::device::Gpu;
use crate::model::kernels::Window;
use crate::model::mobilenet::{BlockPlan, Kind, LayerPlan, MobileNetV2};
use crate::model::ops::{binary_cross_entropy_gradient, binary_cross_entropy_value, dropout_mask};
use crate::model::optim;
use crate::model::shape::Shape;
use crate::util::rng::Rng;

/// Tensors per convolution layer in [`MobileNetV2::state_mut`]: weight, gamma, beta, running mean and
/// variance. The first three are its parameters in [`MobileNetV2::params_mut`].
const STATE_PER_LAYER: usize = 5;
const PARAMS_PER_LAYER: usize = 3;

/// A parameter on the GPU with its gradient and Adam moments.
struct Parameter {
    value: CudaSlice<f32>,
    gradient: CudaSlice<f32>,
    moments: (CudaSlice<f32>, CudaSlice<f32>),
    trainable: bool,
    decays: bool,
}

/// A convolution layer on the GPU.
struct Layer {
    plan: LayerPlan,
    /// Indices of its weight, gamma and beta in `GpuNet::params`.
    weight: usize,
    gamma: usize,
    beta: usize,
    running: (CudaSlice<f32>, CudaSlice<f32>),
}

/// What the forward pass of one layer keeps for the backward pass.
struct LayerPass {
    /// Activation indices (in `Pass::activations`) of its input and output.
    input: usize,
    output: usize,
    /// The convolution's output (BatchNorm's input).
    conv: CudaSlice<f32>,
    /// BatchNorm's `[mean, inv_std, scale, shift]`.
    stats: CudaSlice<f32>,
    batch_stats: bool,
    window: Option<Window>,
    /// The stem's im2col patches.
    patches: Option<CudaSlice<f32>>,
}

/// One forward pass's values.
struct Pass {
    activations: Vec<(CudaSlice<f32>, Shape)>,
    layers: Vec<LayerPass>,
    /// The dropout multipliers, when training with dropout.
    mask: Option<CudaSlice<f32>>,
    /// The head's input `[n, c]` (after dropout).
    features: CudaSlice<f32>,
    logits: CudaSlice<f32>,
}

/// The network on a GPU, with its optimiser.
pub struct GpuNet {
    gpu: Arc<Gpu>,
    blocks: Vec<BlockPlan>,
    layers: Vec<Layer>,
    params: Vec<Parameter>,
    head: (usize, usize),
    input: usize,
    classes: usize,
    dropout: f32,
    same_padding: bool,
    running_stats: bool,
    bn: (f32, f32),
    adam: optim::Adam,
}

impl GpuNet {
    /// Copies `net` (its parameters, running statistics and which layers train) to the GPU, with a
    /// fresh optimiser.
    pub fn new(gpu: Arc<Gpu>, net: &mut MobileNetV2, adam: optim::Adam) -> anyhow::Result<GpuNet> {
        let blocks = net.plan();
        let flags: Vec<(bool, bool)> = net
            .params_mut()
            .iter()
            .map(|p| (p.trainable, p.decays))
            .collect();
        let config = net.config.clone();
        let state = net.state_mut();
        let plans: Vec<LayerPlan> = blocks.iter().flat_map(|b| b.layers.clone()).collect();
        anyhow::ensure!(
            state.len() == plans.len() * STATE_PER_LAYER + 2,
            "the network's state does not match its plan"
        );
        let mut params = Vec::with_capacity(flags.len());
        let mut layers = Vec::with_capacity(plans.len());
        let parameter = |values: &[f32], (trainable, decays): (bool, bool)| -> anyhow::Result<_> {
            Ok(Parameter {
                value: gpu.upload(values)?,
                gradient: gpu.zeros(values.len())?,
                moments: (gpu.zeros(values.len())?, gpu.zeros(values.len())?),
                trainable,
                decays,
            })
        };
        for (l, plan) in plans.into_iter().enumerate() {
            let at = l * STATE_PER_LAYER;
            let first = params.len();
            for j in 0..PARAMS_PER_LAYER {
                params.push(parameter(
                    &state[at + j].2[..],
                    flags[l * PARAMS_PER_LAYER + j],
                )?);
            }
            layers.push(Layer {
                plan,
                weight: first,
                gamma: first + 1,
                beta: first + 2,
                running: (
                    gpu.upload(&state[at + 3].2[..])?,
                    gpu.upload(&state[at + 4].2[..])?,
                ),
            });
        }
        let head_at = layers.len() * STATE_PER_LAYER;
        let head_flags = layers.len() * PARAMS_PER_LAYER;
        for j in 0..2 {
            params.push(parameter(&state[head_at + j].2[..], flags[head_flags + j])?);
        }
        let head = (params.len() - 2, params.len() - 1);
        Ok(GpuNet {
            gpu,
            blocks,
            layers,
            params,
            head,
            input: config.input,
            classes: config.classes,
            dropout: config.dropout,
            same_padding: config.same_padding,
            running_stats: config.running_stats,
            bn: (config.bn_momentum, config.bn_eps),
            adam,
        })
    }

    /// A fresh copy of `net` (after a change of which layers train) on the same GPU, with `adam`.
    pub fn restart(self, net: &mut MobileNetV2, adam: optim::Adam) -> anyhow::Result<GpuNet> {
        GpuNet::new(self.gpu, net, adam)
    }

    /// Copies the parameters and running statistics back into `net` (which must be the network this
    /// was made from).
    pub fn copy_to(&self, net: &mut MobileNetV2) -> anyhow::Result<()> {
        for (i, (_, _, value)) in net.state_mut().into_iter().enumerate() {
            let (l, j) = (i / STATE_PER_LAYER, i % STATE_PER_LAYER);
            let buffer = match self.layers.get(l) {
                Some(layer) => match j {
                    0 => &self.params[layer.weight].value,
                    1 => &self.params[layer.gamma].value,
                    2 => &self.params[layer.beta].value,
                    3 => &layer.running.0,
                    _ => &layer.running.1,
                },
                None if j == 0 => &self.params[self.head.0].value,
                None => &self.params[self.head.1].value,
            };
            *value = self.gpu.download(buffer)?;
        }
        Ok(())
    }

    /// One training step on a batch of `images` (`n x input x input x 3` values, NHWC): forward, the
    /// weighted binary cross-entropy, backward and an Adam(W) update at rate `lr`. Returns the loss
    /// and the logits (before the update). `dropout` draws the dropout mask as the CPU does.
    pub fn train_step(
        &mut self,
        images: &[f32],
        (labels, weights): (&[f32], &[f32]),
        lr: f32,
        dropout: &mut Rng,
    ) -> anyhow::Result<(f32, Vec<f32>)> {
        let n = labels.len();
        let mask = (self.dropout > 0.0).then(|| {
            let c = self
                .layers
                .last()
                .map_or(0, |l| self.params[l.gamma].value.len());
            dropout_mask(n * c, self.dropout, dropout)
        });
        let pass = self.forward(images, n, true, mask.as_deref())?;
        let logits = self.gpu.download(&pass.logits)?;
        let loss = binary_cross_entropy_value(&logits, labels, weights);
        let gradient = binary_cross_entropy_gradient(&logits, labels, weights);
        self.backward(pass, &gradient)?;
        self.step(lr)?;
        Ok((loss, logits))
    }

    /// The logits `[n, classes]` of `images` in inference mode.
    pub fn logits(&mut self, images: &[f32], n: usize) -> anyhow::Result<Vec<f32>> {
        let pass = self.forward(images, n, false, None)?;
        self.gpu.download(&pass.logits)
    }

    /// The gradient of every parameter after the last backward pass, in [`MobileNetV2::params_mut`]'s
    /// order (for checking against the CPU).
    pub fn gradients(&self) -> anyhow::Result<Vec<Vec<f32>>> {
        self.params
            .iter()
            .map(|p| self.gpu.download(&p.gradient))
            .collect()
    }

    /// The forward pass, keeping what the backward pass needs.
    fn forward(
        &mut self,
        images: &[f32],
        n: usize,
        training: bool,
        mask: Option<&[f32]>,
    ) -> anyhow::Result<Pass> {
        let side = self.input;
        anyhow::ensure!(
            images.len() == n * side * side * 3,
            "expected {n} images of {side}x{side}x3"
        );
        let gpu = self.gpu.clone();
        let mut activations = vec![(gpu.upload(images)?, Shape::new(n, side, side, 3))];
        let mut passes = Vec::with_capacity(self.layers.len());
        let mut l = 0;
        for b in 0..self.blocks.len() {
            let block_input = activations.len() - 1;
            for _ in 0..self.blocks[b].layers.len() {
                let pass = self.layer_forward(l, &mut activations, training)?;
                passes.push(pass);
                l += 1;
            }
            if self.blocks[b].residual {
                let (last, shape) = activations.last().expect("a block has layers");
                let sum = gpu.add(&activations[block_input].0, last)?;
                activations.push((sum, *shape));
            }
        }
        let (last, shape) = activations.last().expect("the network has layers");
        let pooled = gpu.average_pool(last, *shape)?;
        let mask = match mask {
            Some(m) if training => Some(gpu.upload(m)?),
            _ => None,
        };
        let features = match &mask {
            Some(m) => gpu.multiply(&pooled, m)?,
            None => pooled,
        };
        let (w, bias) = (&self.params[self.head.0], &self.params[self.head.1]);
        let mut logits = gpu.matmul_new(
            (n, self.classes, shape.c),
            &features,
            false,
            &w.value,
            false,
        )?;
        gpu.add_bias(&mut logits, &bias.value)?;
        Ok(Pass {
            activations,
            layers: passes,
            mask,
            features,
            logits,
        })
    }

    /// Layer `l`'s convolution and BatchNorm on the newest activation; pushes its output.
    fn layer_forward(
        &mut self,
        l: usize,
        activations: &mut Vec<(CudaSlice<f32>, Shape)>,
        training: bool,
    ) -> anyhow::Result<LayerPass> {
        let gpu = self.gpu.clone();
        let input = activations.len() - 1;
        let (x, s) = (&activations[input].0, activations[input].1);
        let layer = &mut self.layers[l];
        let weight = &self.params[layer.weight].value;
        let c = self.params[layer.gamma].value.len();
        let window = |stride| Window::new(s.h, s.w, 3, stride, self.same_padding);
        let (conv, out_shape, window, patches) = match layer.plan.kind {
            Kind::Full { stride } => {
                let win = window(stride);
                let patches = gpu.im2col(x, s, &win)?;
                let rows = s.n * win.out_h * win.out_w;
                let y = gpu.matmul_new((rows, c, 9 * s.c), &patches, false, weight, false)?;
                (
                    y,
                    Shape::new(s.n, win.out_h, win.out_w, c),
                    Some(win),
                    Some(patches),
                )
            }
            Kind::Depthwise { stride } => {
                let win = window(stride);
                let y = gpu.depthwise_forward(x, s, weight, &win)?;
                (y, Shape::new(s.n, win.out_h, win.out_w, c), Some(win), None)
            }
            Kind::Pointwise => {
                let y = gpu.matmul_new((s.pixels(), c, s.c), x, false, weight, false)?;
                (y, Shape { c, ..s }, None, None)
            }
        };
        let batch_stats = training && !layer.plan.frozen && !self.running_stats;
        let rows = out_shape.pixels();
        let sums = if batch_stats {
            gpu.channel_sums(&conv, None, &conv, rows, c)?
        } else {
            gpu.zeros(2 * c)?
        };
        let (gamma, beta) = (
            &self.params[layer.gamma].value,
            &self.params[layer.beta].value,
        );
        let stats = gpu.batch_norm_statistics(
            &sums,
            rows,
            gamma,
            beta,
            (&mut layer.running.0, &mut layer.running.1),
            self.bn,
            batch_stats,
        )?;
        let y = gpu.batch_norm_apply(&conv, &stats, c, layer.plan.relu6)?;
        activations.push((y, out_shape));
        Ok(LayerPass {
            input,
            output: activations.len() - 1,
            conv,
            stats,
            batch_stats,
            window,
            patches,
        })
    }

    /// The backward pass from the loss's gradient with respect to the logits: every trainable
    /// parameter's gradient, written over the last step's.
    fn backward(&mut self, pass: Pass, d_logits: &[f32]) -> anyhow::Result<()> {
        let gpu = self.gpu.clone();
        let n = d_logits.len() / self.classes;
        let dz = gpu.upload(d_logits)?;
        let features_c = pass.features.len() / n;
        let (w, b) = self.head;
        if self.params[w].trainable {
            let grad = &mut self.params[w].gradient;
            gpu.matmul(
                (features_c, self.classes, n),
                &pass.features,
                true,
                &dz,
                false,
                grad,
                false,
            )?;
        }
        if self.params[b].trainable {
            let mut sums = vec![0.0f32; self.classes];
            for row in d_logits.chunks(self.classes) {
                for (s, v) in sums.iter_mut().zip(row) {
                    *s += v;
                }
            }
            gpu.upload_into(&sums, &mut self.params[b].gradient)?;
        }
        let Some(first_trainable) = self.layers.iter().position(|l| !l.plan.frozen) else {
            return Ok(());
        };
        let d_features = gpu.matmul_new(
            (n, features_c, self.classes),
            &dz,
            false,
            &self.params[w].value,
            true,
        )?;
        let d_pooled = match &pass.mask {
            Some(m) => gpu.multiply(&d_features, m)?,
            None => d_features,
        };
        let last_shape = pass.activations.last().expect("the network has layers").1;
        let mut grad = gpu.average_pool_backward(&d_pooled, last_shape)?;
        let mut l = self.layers.len();
        for b in (0..self.blocks.len()).rev() {
            let block_output = grad;
            let mut g: Option<CudaSlice<f32>> = None;
            for _ in 0..self.blocks[b].layers.len() {
                l -= 1;
                let dy = g.as_ref().unwrap_or(&block_output);
                let needs_input = l > first_trainable;
                if self.layers[l].plan.frozen && !needs_input {
                    return Ok(());
                }
                let dx = self.layer_backward(l, &pass, dy, needs_input)?;
                match dx {
                    Some(dx) => g = Some(dx),
                    None => return Ok(()),
                }
            }
            let through = g.expect("a block has layers");
            grad = if self.blocks[b].residual {
                gpu.add(&through, &block_output)?
            } else {
                through
            };
        }
        Ok(())
    }

    /// Layer `l`'s backward pass from its output's gradient `dy`: its parameters' gradients when it
    /// trains, and its input's gradient when `needs_input`.
    fn layer_backward(
        &mut self,
        l: usize,
        pass: &Pass,
        dy: &CudaSlice<f32>,
        needs_input: bool,
    ) -> anyhow::Result<Option<CudaSlice<f32>>> {
        let gpu = self.gpu.clone();
        let lp = &pass.layers[l];
        let layer = &self.layers[l];
        let trains = !layer.plan.frozen;
        let (y, out_shape) = (
            &pass.activations[lp.output].0,
            pass.activations[lp.output].1,
        );
        let (x, in_shape) = (&pass.activations[lp.input].0, pass.activations[lp.input].1);
        let (rows, c) = (out_shape.pixels(), out_shape.c);
        let mask = layer.plan.relu6.then_some(y);
        let sums = if trains || lp.batch_stats {
            gpu.channel_sums(dy, mask, &lp.conv, rows, c)?
        } else {
            gpu.zeros(2 * c)?
        };
        let (weight, gamma, beta) = (layer.weight, layer.gamma, layer.beta);
        if trains {
            let [g, b] = self
                .params
                .get_disjoint_mut([gamma, beta])
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            gpu.batch_norm_parameter_gradients(&sums, &lp.stats, &mut g.gradient, &mut b.gradient)?;
        }
        let dz = gpu.batch_norm_backward_input(
            dy,
            y,
            &lp.conv,
            &lp.stats,
            &self.params[gamma].value,
            &sums,
            layer.plan.relu6,
            lp.batch_stats,
        )?;
        let kind = layer.plan.kind;
        let w = &mut self.params[weight];
        match kind {
            Kind::Pointwise => {
                if trains {
                    let dims = (in_shape.c, c, rows);
                    gpu.matmul(dims, x, true, &dz, false, &mut w.gradient, false)?;
                }
                if needs_input {
                    let dims = (rows, in_shape.c, c);
                    return Ok(Some(gpu.matmul_new(dims, &dz, false, &w.value, true)?));
                }
            }
            Kind::Depthwise { .. } => {
                let win = lp.window.as_ref().expect("a depthwise layer has a window");
                if trains {
                    gpu.depthwise_backward_weight(x, in_shape, &dz, win, &mut w.gradient)?;
                }
                if needs_input {
                    return Ok(Some(
                        gpu.depthwise_backward_input(&dz, in_shape, &w.value, win)?,
                    ));
                }
            }
            Kind::Full { .. } => {
                let patches = lp.patches.as_ref().expect("the stem keeps its patches");
                if trains {
                    let dims = (patches.len() / rows, c, rows);
                    gpu.matmul(dims, patches, true, &dz, false, &mut w.gradient, false)?;
                }
                anyhow::ensure!(!needs_input, "the stem computes no input gradient");
            }
        }
        Ok(None)
    }

    /// One Adam(W) update of every trainable parameter.
    fn step(&mut self, lr: f32) -> anyhow::Result<()> {
        let update = self.adam.next_step();
        for p in self.params.iter_mut().filter(|p| p.trainable) {
            let decay = if p.decays { update.weight_decay } else { 0.0 };
            self.gpu.adam(
                &mut p.value,
                &p.gradient,
                (&mut p.moments.0, &mut p.moments.1),
                lr,
                (update.beta1, update.beta2, update.eps),
                update.corrections,
                decay,
                update.decoupled,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::mobilenet::Config;
    use crate::model::ops::binary_cross_entropy;
    use crate::model::optim::{Adam, Kind as Optimiser};
    use crate::model::tape::{Graph, accumulate};

    /// The first GPU, or `None` (with the reason printed) on a machine without one.
    fn gpu() -> Option<Arc<Gpu>> {
        match Gpu::open(0, false) {
            Ok(gpu) => Some(Arc::new(gpu)),
            Err(e) => {
                eprintln!("skipped: no usable GPU here ({e:#})");
                None
            }
        }
    }

    fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tolerance * scale,
                "{what}[{i}]: GPU {g}, CPU {w} (largest CPU value {scale})"
            );
        }
    }

    /// One training step of a small network on the GPU gives the CPU's loss, logits, gradients and
    /// running statistics, with every layer training and with the lower blocks frozen; after it, the
    /// GPU's inference logits are the CPU's for the parameters copied back.
    #[test]
    fn a_training_step_on_the_gpu_matches_the_cpu() {
        let Some(gpu) = gpu() else { return };
        let (n, side) = (4, 64);
        let mut rng = Rng::new(5);
        let images: Vec<f32> = (0..n * side * side * 3)
            .map(|_| rng.normal() as f32)
            .collect();
        let (labels, weights) = ([1.0, 0.0, 1.0, 0.0], [1.0, 0.5, 1.0, 2.0]);
        for freeze in [Some(0), Some(5)] {
            let mut config = Config::binary(0.35, side);
            config.dropout = 0.3;
            config.bn_momentum = 0.5;
            let mut cpu = MobileNetV2::new(config.clone(), 7);
            let mut copy = MobileNetV2::new(config, 7);
            // Frozen layers normalise by their running statistics: give them a batch's, as pretrained
            // ones would be (at the initial mean 0 and variance 1, activations grow layer by layer
            // and the gradients of the first trained layers are rounding noise on either device).
            for net in [&mut cpu, &mut copy] {
                let mut g = Graph::training();
                for _ in 0..8 {
                    let x = g.var(images.clone(), Shape::new(n, side, side, 3), false);
                    net.forward(&mut g, &x, &mut Rng::new(1));
                }
            }
            cpu.set_frozen(freeze);
            copy.set_frozen(freeze);

            let mut g = Graph::training();
            let x = g.var(images.clone(), Shape::new(n, side, side, 3), false);
            let logits = cpu.forward(&mut g, &x, &mut Rng::new(3));
            let loss = binary_cross_entropy(&mut g, &logits, &labels, &weights);
            let mut grads = g.backward(&loss);
            let cpu_grads: Vec<Option<Vec<f32>>> = cpu
                .params_mut()
                .iter()
                .map(|p| {
                    p.trainable
                        .then(|| accumulate(&mut grads, &p.slot).expect("gradient").to_vec())
                })
                .collect();

            let adam = Adam::new(Optimiser::Adamw, 1e-4);
            let mut net = GpuNet::new(gpu.clone(), &mut copy, adam).expect("upload");
            let (gpu_loss, gpu_logits) = net
                .train_step(&images, (&labels, &weights), 0.01, &mut Rng::new(3))
                .expect("training step");
            let what = format!("freeze {freeze:?}");
            assert!((gpu_loss - loss.value[0]).abs() < 1e-4, "{what}: loss");
            assert_close(&format!("{what}: logits"), &gpu_logits, &logits.value, 1e-4);
            let names: Vec<String> = cpu.params_mut().iter().map(|p| p.name.clone()).collect();
            let gpu_grads = net.gradients().expect("gradients");
            for ((name, want), got) in names.iter().zip(&cpu_grads).zip(&gpu_grads) {
                if let Some(want) = want {
                    assert_close(&format!("{what}: gradient of {name}"), got, want, 1e-3);
                }
            }

            net.copy_to(&mut copy).expect("download");
            for ((name, _, want), (_, _, got)) in cpu.state_mut().into_iter().zip(copy.state_mut())
            {
                if name.contains("running") {
                    assert_close(&format!("{what}: {name}"), got, want, 1e-4);
                }
            }
            let expected =
                crate::model::logits(&mut copy, &[images[..side * side * 3].to_vec()], 1);
            let got = net
                .logits(&images[..side * side * 3], 1)
                .expect("inference");
            assert_close(
                &format!("{what}: inference logits"),
                &got,
                &expected[0],
                1e-3,
            );
        }
    }
}
