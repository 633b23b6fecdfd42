//! Adam and AdamW over the model's parameters, and the learning-rate schedule. Weight decay applies
//! to weights only (not to biases or BatchNorm), as is usual for MobileNetV2 fine-tuning.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::param::Param;
use super::tape::{BackwardError, Grads, accumulate};

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Adam; weight decay is an L2 term added to the gradient (Keras' and PyTorch's `Adam`).
    Adam,
    /// AdamW; weight decay shrinks the weights directly (Loshchilov and Hutter).
    Adamw,
}

/// How the learning rate moves over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Cosine decay from the base rate to zero over the planned epochs.
    Cosine,
}

impl Schedule {
    /// The rate for `epoch` (0-based) of `epochs`.
    pub fn rate(self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let progress = epoch as f32 / epochs.max(1) as f32;
                base * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
            }
        }
    }
}

/// Adam's state: one pair of moment buffers per parameter.
pub struct Adam {
    kind: Kind,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    steps: i32,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Adam {
    /// A fresh optimiser (PyTorch's betas and epsilon).
    pub fn new(kind: Kind, weight_decay: f32) -> Adam {
        Adam {
            kind,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            steps: 0,
            moments: Vec::new(),
        }
    }

    /// Counts a step and returns its constants (for this update or the GPU's).
    pub fn next_step(&mut self) -> Update {
        self.steps += 1;
        Update {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            corrections: (
                1.0 - self.beta1.powi(self.steps),
                1.0 - self.beta2.powi(self.steps),
            ),
            weight_decay: self.weight_decay,
            decoupled: self.kind == Kind::Adamw,
        }
    }

    /// One update of every trainable parameter from its gradient.
    pub fn step(
        &mut self,
        params: &mut [&mut Param],
        grads: &mut Grads,
        lr: f32,
    ) -> Result<(), BackwardError> {
        if self.moments.is_empty() {
            self.moments = params
                .iter()
                .map(|p| (vec![0.0; p.value.len()], vec![0.0; p.value.len()]))
                .collect();
        }
        let u = self.next_step();
        for (p, (m, v)) in params.iter_mut().zip(&mut self.moments) {
            if !p.trainable {
                continue;
            }
            let decay = if p.decays { u.weight_decay } else { 0.0 };
            let gradient = accumulate(grads, &p.slot)?;
            let len = p.value.len();
            assert!(
                gradient.len() == len && m.len() == len && v.len() == len,
                "`{}`: weights, gradient and moments differ in length",
                p.name
            );
            let w = p.value_mut();
            if w.len() <= PARALLEL_CHUNK {
                u.apply((lr, decay), w, gradient, (m, v));
            } else {
                // Every element's update is its own: the chunks give the same bits in any order.
                w.par_chunks_mut(PARALLEL_CHUNK)
                    .zip(gradient.par_chunks(PARALLEL_CHUNK))
                    .zip(m.par_chunks_mut(PARALLEL_CHUNK))
                    .zip(v.par_chunks_mut(PARALLEL_CHUNK))
                    .for_each(|(((w, g), m), v)| u.apply((lr, decay), w, g, (m, v)));
            }
        }
        Ok(())
    }
}

/// Parameters longer than this are updated in chunks of this many values on the thread pool (the
/// 1x1 convolutions' weights, most of the network); shorter ones on the calling thread.
const PARALLEL_CHUNK: usize = 16 * 1024;

impl Update {
    /// Updates the weights `w` from their gradient `g` and moments `m`, `v` at rate `lr`, with
    /// `decay` as their weight decay.
    fn apply(
        &self,
        (lr, decay): (f32, f32),
        w: &mut [f32],
        g: &[f32],
        (m, v): (&mut [f32], &mut [f32]),
    ) {
        let (correct1, correct2) = self.corrections;
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
            let g = if self.decoupled { g } else { g + decay * *w };
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            let update = (*m / correct1) / ((*v / correct2).sqrt() + self.eps);
            *w -= lr * update;
            if self.decoupled {
                *w -= lr * decay * *w;
            }
        }
    }
}

/// One Adam step's constants.
#[derive(Debug, Clone, Copy)]
pub struct Update {
    /// The first moment's decay.
    pub beta1: f32,
    /// The second moment's decay.
    pub beta2: f32,
    /// Added to the second moment's root.
    pub eps: f32,
    /// The bias corrections `1 - beta1^t` and `1 - beta2^t`.
    pub corrections: (f32, f32),
    /// Weight decay (of parameters that decay).
    pub weight_decay: f32,
    /// AdamW (the decay shrinks the weights) rather than Adam (an L2 term in the gradient).
    pub decoupled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::param::Layout;
    use crate::model::tape::Graph;

    #[test]
    fn cosine_starts_at_the_base_rate_and_ends_near_zero() {
        assert_eq!(Schedule::Cosine.rate(0.01, 0, 10), 0.01);
        assert!((Schedule::Cosine.rate(0.01, 5, 10) - 0.005).abs() < 1e-6);
        assert!(Schedule::Cosine.rate(0.01, 9, 10) < 0.001);
        assert_eq!(Schedule::Constant.rate(0.01, 9, 10), 0.01);
    }

    #[test]
    fn adam_minimises_a_quadratic_and_leaves_frozen_parameters() {
        // loss = sum (w - 3)^2, gradient 2 (w - 3), written straight into the gradient store.
        let layout = Layout::Vector { len: 2 };
        let mut w = Param::new("w".into(), layout, vec![0.0, 10.0], true);
        let mut frozen = Param::new("f".into(), layout, vec![1.0, 1.0], true);
        frozen.trainable = false;
        let mut adam = Adam::new(Kind::Adamw, 0.0);
        for _ in 0..500 {
            let g = Graph::training();
            let loss = g.var(vec![0.0], crate::model::shape::Shape::new(1, 1, 1, 1), true);
            let mut grads = g.backward(&loss);
            let values = w.value.clone();
            let gw = accumulate(&mut grads, &w.slot).unwrap();
            for (g, v) in gw.iter_mut().zip(values.iter()) {
                *g = 2.0 * (v - 3.0);
            }
            accumulate(&mut grads, &frozen.slot).unwrap().fill(1.0);
            adam.step(&mut [&mut w, &mut frozen], &mut grads, 0.1)
                .unwrap();
        }
        assert!(
            w.value.iter().all(|v| (v - 3.0).abs() < 0.05),
            "{:?}",
            w.value
        );
        assert_eq!(*frozen.value, vec![1.0, 1.0]);
    }
}
