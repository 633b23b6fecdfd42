//! MobileNetV2 (Sandler et al. 2018) with a runtime width multiplier and input size, in NHWC on the
//! ops of this module. The layer table is the paper's (t, c, n, s) table as data; parameter names follow
//! torchvision's `mobilenet_v2`, so checkpoints and torchvision weights share one format.
//!
//! Shapes through the network for input side `s` and width 1.0 (batch `n`):
//! `[n, s, s, 3]` -> stem 3x3/2 -> `[n, s/2, s/2, 32]` -> 17 inverted residual blocks ->
//! `[n, s/32, s/32, 320]` -> 1x1 conv -> `[n, s/32, s/32, 1280]` -> average pool -> `[n, 1, 1, 1280]` ->
//! dropout -> linear -> `[n, 1, 1, classes]` (one logit for a binary head).

use serde::{Deserialize, Serialize};

use super::kernels::Window;
use super::ops::{self, BatchNorm, Convolution};
use super::param::{Layout, Param};
use super::tape::{Graph, Var};
use crate::util::rng::Rng;

/// The inverted residual blocks: expansion t, output channels c, repeats n, first stride s.
const INVERTED_RESIDUALS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Channels of the stem and of the last convolution at width 1.0.
const STEM_CHANNELS: usize = 32;
const LAST_CHANNELS: usize = 1280;

/// The number of inverted residual blocks (what `freeze` counts).
pub const BLOCKS: usize = 17;

/// What the network looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Width multiplier (alpha): 0.35 to 1.4.
    pub width: f32,
    /// Input side in pixels.
    pub input: usize,
    /// Outputs of the head: 1 for a binary classifier (a logit), 1001 for the TFLite ImageNet model.
    pub classes: usize,
    /// Dropout before the head.
    pub dropout: f32,
    /// TensorFlow's `SAME` padding (the TFLite weights) instead of PyTorch's symmetric padding.
    pub same_padding: bool,
    /// BatchNorm momentum, PyTorch's convention (weight of the newest batch).
    pub bn_momentum: f32,
    /// BatchNorm epsilon.
    pub bn_eps: f32,
    /// Normalise with the running statistics even while training (Keras' `training=False` recipe for
    /// fine-tuning pretrained weights, whose statistics a small dataset should not overwrite).
    #[serde(default)]
    pub running_stats: bool,
}

impl Config {
    /// A binary classifier with PyTorch's conventions.
    pub fn binary(width: f32, input: usize) -> Config {
        Config {
            width,
            input,
            classes: 1,
            dropout: 0.2,
            same_padding: false,
            bn_momentum: 0.1,
            bn_eps: 1e-5,
            running_stats: false,
        }
    }
}

/// Channels rounded to a multiple of 8, never more than 10% below the exact value (the reference
/// implementations' `_make_divisible`).
pub fn make_divisible(value: f32) -> usize {
    let rounded = (((value + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f32) < 0.9 * value {
        rounded + 8
    } else {
        rounded
    }
}

/// What a convolution layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A full 3x3 convolution (the stem), weights `[3, 3, cin, cout]`.
    Full {
        /// Its stride.
        stride: usize,
    },
    /// A depthwise 3x3 convolution, weights `[3, 3, c]`.
    Depthwise {
        /// Its stride.
        stride: usize,
    },
    /// A 1x1 convolution, weights `[cin, cout]`.
    Pointwise,
}

/// A convolution layer (convolution, BatchNorm, maybe ReLU6) as another backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerPlan {
    /// Its convolution.
    pub kind: Kind,
    /// Whether ReLU6 follows the BatchNorm.
    pub relu6: bool,
    /// Whether it is frozen: no training, BatchNorm by its running statistics.
    pub frozen: bool,
}

/// The layers of one block in order, and whether the block adds its input to its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPlan {
    /// Its layers.
    pub layers: Vec<LayerPlan>,
    /// Whether a shortcut adds the block's input to its output.
    pub residual: bool,
}

/// A convolution followed by BatchNorm and, except for projections, ReLU6.
struct ConvBn {
    weight: Param,
    kind: Kind,
    bn: BatchNorm,
    relu6: bool,
    frozen: bool,
}

impl ConvBn {
    fn new(
        conv: &str,
        bn: &str,
        layout: Layout,
        kind: Kind,
        relu6: bool,
        config: &Config,
        rng: &mut Rng,
    ) -> ConvBn {
        let cout = match layout {
            Layout::Conv { cout, .. } | Layout::Pointwise { cout, .. } => cout,
            Layout::Depthwise { c, .. } => c,
            _ => unreachable!("convolutions only"),
        };
        // Kaiming normal, fan out, as torchvision initialises MobileNetV2.
        let fan_out = layout.len() / layout.torch_shape()[1];
        let std = (2.0 / fan_out as f64).sqrt();
        let weights = (0..layout.len())
            .map(|_| (rng.normal() * std) as f32)
            .collect();
        let vector = |suffix: &str, value: f32| {
            Param::new(
                format!("{bn}.{suffix}"),
                Layout::Vector { len: cout },
                vec![value; cout],
                false,
            )
        };
        ConvBn {
            weight: Param::new(format!("{conv}.weight"), layout, weights, true),
            kind,
            bn: BatchNorm {
                gamma: vector("weight", 1.0),
                beta: vector("bias", 0.0),
                running_mean: vec![0.0; cout],
                running_var: vec![1.0; cout],
                momentum: config.bn_momentum,
                eps: config.bn_eps,
            },
            relu6,
            frozen: false,
        }
    }

    /// The layer's output, with the block's `shortcut` added when given.
    fn forward(
        &mut self,
        g: &mut Graph,
        x: &Var,
        same: bool,
        running_stats: bool,
        shortcut: Option<&Var>,
    ) -> Var {
        let window = |stride| Window::new(x.shape.h, x.shape.w, 3, stride, same);
        let conv = match self.kind {
            Kind::Full { stride } => Convolution::Full(window(stride)),
            Kind::Depthwise { stride } => Convolution::Depthwise(window(stride)),
            Kind::Pointwise => Convolution::Pointwise,
        };
        let needs_grad = g.is_training() && (x.needs_grad() || !self.frozen);
        if !needs_grad {
            return ops::frozen_conv_bn(g, x, conv, &self.weight, &self.bn, self.relu6, shortcut);
        }
        let y = match conv {
            Convolution::Full(win) => ops::conv(g, x, &self.weight, win),
            Convolution::Depthwise(win) => ops::depthwise(g, x, &self.weight, win),
            Convolution::Pointwise => ops::pointwise(g, x, &self.weight),
        };
        let batch_stats = !self.frozen && !running_stats;
        let y = ops::batch_norm(g, &y, &mut self.bn, batch_stats, self.relu6);
        match shortcut {
            Some(s) => ops::sum(g, s, &y),
            None => y,
        }
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
        for p in [&mut self.weight, &mut self.bn.gamma, &mut self.bn.beta] {
            p.trainable = !frozen;
        }
    }
}

/// An inverted residual block: 1x1 expansion (unless t = 1), 3x3 depthwise, linear 1x1 projection,
/// and a shortcut when the shape is kept.
struct Block {
    layers: Vec<ConvBn>,
    residual: bool,
}

/// The network.
pub struct MobileNetV2 {
    /// Its configuration.
    pub config: Config,
    stem: ConvBn,
    blocks: Vec<Block>,
    last: ConvBn,
    head_weight: Param,
    head_bias: Param,
}

/// One inverted residual block at `at`: expand (unless `t` is 1), depthwise, project; a block whose
/// input and output agree is residual and starts as the identity.
fn inverted_residual(
    at: &str,
    (cin, cout): (usize, usize),
    t: usize,
    stride: usize,
    c: &Config,
    rng: &mut Rng,
) -> Block {
    let hidden = cin * t;
    let mut names = (0..).map(|i| format!("{at}.{i}"));
    let mut layers = Vec::new();
    if t != 1 {
        let n = names.next().unwrap_or_default();
        let layout = Layout::Pointwise { cin, cout: hidden };
        layers.push(ConvBn::new(
            &format!("{n}.0"),
            &format!("{n}.1"),
            layout,
            Kind::Pointwise,
            true,
            c,
            rng,
        ));
    }
    let n = names.next().unwrap_or_default();
    let layout = Layout::Depthwise { k: 3, c: hidden };
    layers.push(ConvBn::new(
        &format!("{n}.0"),
        &format!("{n}.1"),
        layout,
        Kind::Depthwise { stride },
        true,
        c,
        rng,
    ));
    let (conv, bn) = (
        names.next().unwrap_or_default(),
        names.next().unwrap_or_default(),
    );
    let layout = Layout::Pointwise { cin: hidden, cout };
    layers.push(ConvBn::new(
        &conv,
        &bn,
        layout,
        Kind::Pointwise,
        false,
        c,
        rng,
    ));
    let residual = stride == 1 && cin == cout;
    if residual {
        // Zero-init residual (Goyal et al. 2017): the block's last BatchNorm starts at
        // gamma 0, so the block starts as the identity and the signal reaches the head.
        let last = layers.last_mut().expect("a block has layers");
        last.bn.gamma.value_mut().fill(0.0);
    }
    Block { layers, residual }
}

impl MobileNetV2 {
    /// A network with torchvision's random initialisation, seeded, except that residual blocks start as
    /// the identity (their last BatchNorm's gamma is 0). From scratch on (an earlier version of) the
    /// synthetic fracture set that shortened the epochs spent near chance from 12-14 to 6-10.
    pub fn new(config: Config, seed: u64) -> MobileNetV2 {
        let mut rng = Rng::derive(seed, "init", 0, 0);
        let rng = &mut rng;
        let c = &config;
        let mut cin = make_divisible(STEM_CHANNELS as f32 * c.width);
        let stem = ConvBn::new(
            "features.0.0",
            "features.0.1",
            Layout::Conv {
                k: 3,
                cin: 3,
                cout: cin,
            },
            Kind::Full { stride: 2 },
            true,
            c,
            rng,
        );
        let mut blocks = Vec::new();
        for (t, channels, repeats, first_stride) in INVERTED_RESIDUALS {
            let cout = make_divisible(channels as f32 * c.width);
            for r in 0..repeats {
                let stride = if r == 0 { first_stride } else { 1 };
                let at = format!("features.{}.conv", blocks.len() + 1);
                blocks.push(inverted_residual(&at, (cin, cout), t, stride, c, rng));
                cin = cout;
            }
        }
        let last_channels = make_divisible(LAST_CHANNELS as f32 * c.width.max(1.0));
        let last = ConvBn::new(
            &format!("features.{}.0", BLOCKS + 1),
            &format!("features.{}.1", BLOCKS + 1),
            Layout::Pointwise {
                cin,
                cout: last_channels,
            },
            Kind::Pointwise,
            true,
            c,
            rng,
        );
        let head = Layout::Linear {
            cin: last_channels,
            cout: c.classes,
        };
        let head_weight = Param::new(
            "classifier.1.weight".into(),
            head,
            (0..head.len())
                .map(|_| (rng.normal() * 0.01) as f32)
                .collect(),
            true,
        );
        let head_bias = Param::new(
            "classifier.1.bias".into(),
            Layout::Vector { len: c.classes },
            vec![0.0; c.classes],
            false,
        );
        MobileNetV2 {
            config,
            stem,
            blocks,
            last,
            head_weight,
            head_bias,
        }
    }

    /// Chooses what trains. `Some(k)`: all but the stem and the lowest `k` inverted residual blocks
    /// (`Some(0)`: everything); `None`: the head alone. Frozen layers keep their parameters and
    /// normalise with their BatchNorm's running statistics.
    pub fn set_frozen(&mut self, blocks: Option<usize>) {
        let below = blocks.unwrap_or(usize::MAX);
        self.stem.set_frozen(below > 0);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block
                .layers
                .iter_mut()
                .for_each(|l| l.set_frozen(i < below));
        }
        self.last.set_frozen(blocks.is_none());
    }

    /// Logits `[n, 1, 1, classes]` for images `[n, input, input, 3]`.
    pub fn forward(&mut self, g: &mut Graph, images: &Var, rng: &mut Rng) -> Var {
        let x = self.features(g, images);
        let x = ops::dropout(g, &x, self.config.dropout, rng);
        ops::linear(g, &x, &self.head_weight, &self.head_bias)
    }

    /// The pooled features `[n, 1, 1, channels]` the head reads, for images `[n, input, input, 3]`.
    pub fn features(&mut self, g: &mut Graph, images: &Var) -> Var {
        let (same, running) = (self.config.same_padding, self.config.running_stats);
        let mut x = self.stem.forward(g, images, same, running, None);
        for block in &mut self.blocks {
            let input = x.clone();
            let last = block.layers.len() - 1;
            for (i, layer) in block.layers.iter_mut().enumerate() {
                let shortcut = (block.residual && i == last).then_some(&input);
                x = layer.forward(g, &x, same, running, shortcut);
            }
        }
        let x = self.last.forward(g, &x, same, running, None);
        ops::global_average_pool(g, &x)
    }

    /// Copies every feature layer (all but the classifier) from `source`, which must have the same
    /// width: transfer learning keeps the features and starts the head afresh.
    pub fn copy_features_from(&mut self, mut source: MobileNetV2) -> anyhow::Result<()> {
        anyhow::ensure!(
            source.config.width == self.config.width,
            "the weights are for width {}, the model has width {}",
            source.config.width,
            self.config.width
        );
        let from = source.state_mut();
        for ((name, _, to), (_, _, value)) in self.state_mut().into_iter().zip(from) {
            if !name.starts_with("classifier.") {
                *to = std::mem::take(value);
            }
        }
        Ok(())
    }

    /// The feature layers as blocks: the stem, the inverted residual blocks and the last 1x1
    /// convolution (the stem and the last as blocks of one layer), in the order of [`Self::params_mut`]
    /// and [`Self::state_mut`]. The head (average pool, dropout, linear) follows them.
    pub fn plan(&self) -> Vec<BlockPlan> {
        let layer = |l: &ConvBn| LayerPlan {
            kind: l.kind,
            relu6: l.relu6,
            frozen: l.frozen,
        };
        let single = |l: &ConvBn| BlockPlan {
            layers: vec![layer(l)],
            residual: false,
        };
        std::iter::once(single(&self.stem))
            .chain(self.blocks.iter().map(|b| BlockPlan {
                layers: b.layers.iter().map(layer).collect(),
                residual: b.residual,
            }))
            .chain(std::iter::once(single(&self.last)))
            .collect()
    }

    /// Every parameter, stem first, head last.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out = Vec::new();
        for layer in conv_layers(&mut self.stem, &mut self.blocks, &mut self.last) {
            out.extend([&mut layer.weight, &mut layer.bn.gamma, &mut layer.bn.beta]);
        }
        out.extend([&mut self.head_weight, &mut self.head_bias]);
        out
    }

    /// Every tensor of the state (parameters and BatchNorm running statistics) as (torchvision name,
    /// its layout, its numbers here), mutable, for saving and loading.
    pub fn state_mut(&mut self) -> Vec<(String, Layout, &mut Vec<f32>)> {
        let mut out = Vec::new();
        for layer in conv_layers(&mut self.stem, &mut self.blocks, &mut self.last) {
            let bn = &mut layer.bn;
            let prefix = bn.gamma.name.trim_end_matches(".weight").to_string();
            let len = bn.running_mean.len();
            for p in [&mut layer.weight, &mut bn.gamma, &mut bn.beta] {
                out.push((p.name.clone(), p.layout, p.value_mut()));
            }
            out.push((
                format!("{prefix}.running_mean"),
                Layout::Vector { len },
                &mut bn.running_mean,
            ));
            out.push((
                format!("{prefix}.running_var"),
                Layout::Vector { len },
                &mut bn.running_var,
            ));
        }
        for p in [&mut self.head_weight, &mut self.head_bias] {
            out.push((p.name.clone(), p.layout, p.value_mut()));
        }
        out
    }
}

/// Every convolution layer, stem first (the fields apart, so the head stays borrowable).
fn conv_layers<'a>(
    stem: &'a mut ConvBn,
    blocks: &'a mut [Block],
    last: &'a mut ConvBn,
) -> impl Iterator<Item = &'a mut ConvBn> {
    std::iter::once(stem)
        .chain(blocks.iter_mut().flat_map(|b| b.layers.iter_mut()))
        .chain(std::iter::once(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shape::Shape;

    #[test]
    fn channels_round_like_the_reference() {
        assert_eq!(make_divisible(32.0 * 0.35), 16);
        assert_eq!(make_divisible(16.0 * 0.35), 8);
        assert_eq!(make_divisible(24.0 * 0.5), 16);
        assert_eq!(make_divisible(320.0 * 1.4), 448);
        assert_eq!(make_divisible(1280.0 * 1.4), 1792);
    }

    #[test]
    fn width_one_has_the_papers_parameter_count_and_shapes() {
        let mut net = MobileNetV2::new(
            Config {
                classes: 1000,
                ..Config::binary(1.0, 64)
            },
            1,
        );
        let params: usize = net.params_mut().iter().map(|p| p.value.len()).sum();
        assert_eq!(
            params, 3_504_872,
            "torchvision's mobilenet_v2() has 3,504,872 parameters"
        );
        let mut g = Graph::inference();
        let x = g.var(vec![0.1; 2 * 64 * 64 * 3], Shape::new(2, 64, 64, 3), false);
        let y = net.forward(&mut g, &x, &mut Rng::new(0));
        assert_eq!(y.shape, Shape::new(2, 1, 1, 1000));
    }

    #[test]
    fn a_fresh_residual_block_passes_its_input_through() {
        // Zero-init residual: until training moves its last BatchNorm, a residual block is the identity,
        // even when it normalises by batch statistics.
        let mut net = MobileNetV2::new(Config::binary(0.35, 32), 5);
        let residual = net.blocks.iter().filter(|b| b.residual).count();
        assert_eq!(residual, 10, "MobileNetV2 has 10 residual blocks");
        let block = net.blocks.iter_mut().find(|b| b.residual).unwrap();
        let Layout::Pointwise { cin, .. } = block.layers[0].weight.layout else {
            panic!("a residual block starts with its 1x1 expansion");
        };
        let mut rng = Rng::new(2);
        let input: Vec<f32> = (0..2 * 8 * 8 * cin).map(|_| rng.normal() as f32).collect();
        let mut g = Graph::training();
        let x = g.var(input.clone(), Shape::new(2, 8, 8, cin), false);
        let mut out = x.clone();
        let last = block.layers.len() - 1;
        for (i, layer) in block.layers.iter_mut().enumerate() {
            let shortcut = (i == last).then_some(&x);
            out = layer.forward(&mut g, &out, true, false, shortcut);
        }
        assert_eq!(out.value.as_slice(), input.as_slice());
    }

    #[test]
    fn learns_a_separable_task() {
        // Class 1 images are brighter on the left half: from scratch, 120 Adam steps must fit them.
        use crate::model::ops::binary_cross_entropy;
        use crate::model::optim::{Adam, Kind};
        let side = 32;
        let mut net = MobileNetV2::new(Config::binary(0.35, side), 3);
        let mut adam = Adam::new(Kind::Adamw, 0.0);
        let mut rng = Rng::new(9);
        let mut recent = Vec::new();
        for _ in 0..120 {
            let labels: Vec<f32> = (0..16).map(|i| (i % 2) as f32).collect();
            let mut x = Vec::new();
            for &y in &labels {
                for _row in 0..side {
                    for col in 0..side {
                        let bright = if y > 0.5 && col < side / 2 { 0.8 } else { 0.0 };
                        let v = bright + 0.3 * rng.normal() as f32;
                        x.extend([v, v, v]);
                    }
                }
            }
            let mut g = Graph::training();
            let x = g.var(x, Shape::new(16, side, side, 3), false);
            let logits = net.forward(&mut g, &x, &mut rng);
            let loss = binary_cross_entropy(&mut g, &logits, &labels, &[1.0; 16]);
            recent.push(loss.value[0]);
            let mut grads = g.backward(&loss);
            adam.step(&mut net.params_mut(), &mut grads, 1e-3).unwrap();
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let (start, end) = (mean(&recent[..10]), mean(&recent[recent.len() - 10..]));
        assert!(start > 0.5 && end < 0.3, "loss went from {start} to {end}");
    }

    #[test]
    fn a_training_step_gives_the_same_bits_every_time() {
        // Parallel kernels reduce in a fixed order, so gradients do not depend on thread timing.
        use crate::model::ops::binary_cross_entropy;
        use crate::model::tape::accumulate;
        let side = 32;
        let step = || {
            let mut net = MobileNetV2::new(Config::binary(0.35, side), 3);
            let mut rng = Rng::new(9);
            let x: Vec<f32> = (0..32 * side * side * 3)
                .map(|_| rng.normal() as f32)
                .collect();
            let mut g = Graph::training();
            let x = g.var(x, Shape::new(32, side, side, 3), false);
            let logits = net.forward(&mut g, &x, &mut rng);
            let loss = binary_cross_entropy(&mut g, &logits, &[1.0; 32], &[1.0; 32]);
            let mut grads = g.backward(&loss);
            let mut all = vec![loss.value[0]];
            for p in net.params_mut() {
                all.extend(accumulate(&mut grads, &p.slot).unwrap().iter().copied());
            }
            all
        };
        let first = step();
        for _ in 0..2 {
            assert!(step() == first);
        }
    }
}
