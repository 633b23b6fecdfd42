//! A trainable parameter: its numbers in the model's layout, its gradient slot, whether it trains, and
//! its name and layout in torchvision's MobileNetV2 (the checkpoint format, so torchvision weights
//! converted to safetensors load too).

use std::sync::Arc;

use dfdx::prelude::Cpu;

use super::tape::{Slot, slot};

/// How a parameter's numbers are laid out here, and so how they map to PyTorch's layout. Fields: `k`
/// the kernel side, `c`, `cin`, `cout` channels, `len` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A k x k convolution: here `[k, k, cin, cout]`, in PyTorch `[cout, cin, k, k]`.
    Conv { k: usize, cin: usize, cout: usize },
    /// A depthwise k x k convolution: here `[k, k, c]`, in PyTorch `[c, 1, k, k]`.
    Depthwise { k: usize, c: usize },
    /// A 1x1 convolution: here `[cin, cout]`, in PyTorch `[cout, cin, 1, 1]`.
    Pointwise { cin: usize, cout: usize },
    /// A fully connected layer: here `[cin, cout]`, in PyTorch `[cout, cin]`.
    Linear { cin: usize, cout: usize },
    /// A vector (biases, BatchNorm scales and shifts, running statistics).
    Vector { len: usize },
}

impl Layout {
    /// Numbers in the parameter.
    pub fn len(&self) -> usize {
        match *self {
            Layout::Conv { k, cin, cout } => k * k * cin * cout,
            Layout::Depthwise { k, c } => k * k * c,
            Layout::Pointwise { cin, cout } | Layout::Linear { cin, cout } => cin * cout,
            Layout::Vector { len } => len,
        }
    }

    /// Whether the parameter holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The PyTorch shape.
    pub fn torch_shape(&self) -> Vec<usize> {
        match *self {
            Layout::Conv { k, cin, cout } => vec![cout, cin, k, k],
            Layout::Depthwise { k, c } => vec![c, 1, k, k],
            Layout::Pointwise { cin, cout } => vec![cout, cin, 1, 1],
            Layout::Linear { cin, cout } => vec![cout, cin],
            Layout::Vector { len } => vec![len],
        }
    }

    /// Where element `i` of the PyTorch layout lives here.
    fn index_from_torch(&self, i: usize) -> usize {
        match *self {
            Layout::Conv { k, cin, cout } => {
                let (o, rest) = (i / (cin * k * k), i % (cin * k * k));
                let (ci, tap) = (rest / (k * k), rest % (k * k));
                (tap * cin + ci) * cout + o
            }
            Layout::Depthwise { k, c } => {
                let (ch, tap) = (i / (k * k), i % (k * k));
                tap * c + ch
            }
            Layout::Pointwise { cin, cout } | Layout::Linear { cin, cout } => {
                let (o, ci) = (i / cin, i % cin);
                ci * cout + o
            }
            Layout::Vector { .. } => i,
        }
    }

    /// The numbers in PyTorch's layout.
    pub fn in_torch_layout(&self, here: &[f32]) -> Vec<f32> {
        (0..self.len())
            .map(|i| here[self.index_from_torch(i)])
            .collect()
    }

    /// Numbers in PyTorch's layout, in this layout.
    pub fn in_our_layout(&self, torch: &[f32]) -> Vec<f32> {
        let mut here = vec![0.0; self.len()];
        for (i, &v) in torch.iter().enumerate().take(self.len()) {
            here[self.index_from_torch(i)] = v;
        }
        here
    }
}

/// One parameter tensor.
pub struct Param {
    /// Its torchvision name, e.g. `features.2.conv.1.0.weight`.
    pub name: String,
    /// Its layout.
    pub layout: Layout,
    /// Its numbers, in this crate's layout.
    pub value: Arc<Vec<f32>>,
    /// Its gradient slot on the tape.
    pub slot: Slot,
    /// Whether training updates it.
    pub trainable: bool,
    /// Whether weight decay applies (weights yes; biases and BatchNorm no).
    pub decays: bool,
}

impl Param {
    /// A parameter with the given numbers.
    pub fn new(name: String, layout: Layout, value: Vec<f32>, decays: bool) -> Param {
        assert_eq!(
            value.len(),
            layout.len(),
            "{name}: value and layout disagree"
        );
        Param {
            slot: slot(&Cpu::default(), value.len()),
            name,
            layout,
            value: Arc::new(value),
            trainable: true,
            decays,
        }
    }

    /// The numbers, for changing in place (after a backward pass no closure holds them).
    pub fn value_mut(&mut self) -> &mut Vec<f32> {
        Arc::make_mut(&mut self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_layouts_round_trip_and_put_channels_last() {
        for layout in [
            Layout::Conv {
                k: 3,
                cin: 2,
                cout: 4,
            },
            Layout::Depthwise { k: 3, c: 5 },
            Layout::Pointwise { cin: 3, cout: 2 },
            Layout::Linear { cin: 4, cout: 3 },
        ] {
            let torch: Vec<f32> = (0..layout.len()).map(|i| i as f32).collect();
            let here = layout.in_our_layout(&torch);
            assert_eq!(layout.in_torch_layout(&here), torch, "{layout:?}");
            assert_eq!(layout.torch_shape().iter().product::<usize>(), layout.len());
        }
        // PyTorch conv weight [cout=4, cin=2, 3, 3]: element (o=1, ci=0, ky=0, kx=2) is index 18+2.
        let conv = Layout::Conv {
            k: 3,
            cin: 2,
            cout: 4,
        };
        let torch: Vec<f32> = (0..conv.len()).map(|i| i as f32).collect();
        let here = conv.in_our_layout(&torch);
        assert_eq!(here[(2 * 2) * 4 + 1], 20.0, "here [ky, kx, cin, cout]");
    }
}
