//! Reverse-mode differentiation for the model, on dfdx's gradient tape.
//!
//! dfdx 0.13 gives the tape (`OwnedTape`: backward closures run newest first) and the gradient store
//! (`Gradients`, keyed by tensor id). Its layers need compile-time shapes and its convolutions need
//! nightly Rust, so the model's own ops (in `ops`) compute on plain `f32` buffers and register their
//! backward closures here. A [`Var`] holds its numbers in an `Arc` (backward closures keep what they
//! need alive) and, when it needs a gradient, a dfdx tensor that names its gradient slot.

use std::sync::Arc;

use rayon::prelude::*;

use dfdx::prelude::{Cpu, Gradients, OwnedTape, PutTape, Tape, Tensor, TensorFrom, TensorFromVec};
use dfdx::tensor_ops::Backward;

use super::shape::Shape;

/// The gradient store after a backward pass.
pub type Grads = Gradients<f32, Cpu>;

/// The error type of a backward closure.
pub type BackwardError = dfdx::prelude::CpuError;

/// A gradient slot: a dfdx tensor that names it in the store, and the gradient's length.
///
/// The naming tensor is empty, so the store's buffer for it starts empty and costs nothing; the first
/// gradient that reaches the slot moves its own buffer in ([`put`]), and only the ones after it add.
/// That saves zeroing every gradient before writing it.
#[derive(Clone)]
pub struct Slot {
    name: Tensor<(usize,), f32, Cpu>,
    len: usize,
}

/// A value in the graph.
#[derive(Clone)]
pub struct Var {
    /// The numbers, NHWC.
    pub value: Arc<Vec<f32>>,
    /// Their shape.
    pub shape: Shape,
    /// The gradient slot, present when something upstream of this value is being trained.
    pub slot: Option<Slot>,
}

impl Var {
    /// Whether a gradient flows back through this value.
    pub fn needs_grad(&self) -> bool {
        self.slot.is_some()
    }
}

/// One forward pass: records backward closures when training, nothing otherwise.
pub struct Graph {
    device: Cpu,
    tape: Option<OwnedTape<f32, Cpu>>,
}

impl Graph {
    /// A graph that records gradients.
    pub fn training() -> Graph {
        Graph {
            device: Cpu::default(),
            tape: Some(OwnedTape::default()),
        }
    }

    /// A graph for inference: no slots, no closures.
    pub fn inference() -> Graph {
        Graph {
            device: Cpu::default(),
            tape: None,
        }
    }

    /// Whether gradients are recorded.
    pub fn is_training(&self) -> bool {
        self.tape.is_some()
    }

    /// A value; it gets a gradient slot when training and `needs_grad`.
    pub fn var(&self, value: Vec<f32>, shape: Shape, needs_grad: bool) -> Var {
        assert_eq!(value.len(), shape.len(), "value and shape disagree");
        let slot = (needs_grad && self.is_training()).then(|| slot(&self.device, shape.len()));
        Var {
            value: Arc::new(value),
            shape,
            slot,
        }
    }

    /// Records a backward closure (dropped unless training).
    pub fn record(
        &mut self,
        backward: impl 'static + FnOnce(&mut Grads) -> Result<(), BackwardError>,
    ) {
        if let Some(tape) = &mut self.tape {
            tape.add_backward_op(backward);
        }
    }

    /// Runs the recorded closures from the scalar `loss` back to every slot.
    pub fn backward(self, loss: &Var) -> Grads {
        let tape = self.tape.expect("backward needs a training graph");
        let slot = loss.slot.clone().expect("the loss has a gradient slot");
        let root: Tensor<(), f32, Cpu> = self.device.tensor(loss.value[0]);
        let seed = root.clone();
        let mut tape = tape;
        tape.add_backward_op(move |grads| {
            let one = grads.get_or_alloc_mut(&seed)?[0];
            accumulate(grads, &slot)?[0] += one;
            Ok(())
        });
        root.put_tape(tape).backward()
    }
}

/// A fresh gradient slot for `len` numbers.
pub fn slot(device: &Cpu, len: usize) -> Slot {
    Slot {
        name: device.tensor_from_vec(Vec::new(), (0,)),
        len,
    }
}

/// Takes the gradient of `slot` out of the store (zeros when none reached it): the op that produced a
/// value is the last to read its gradient, so it may keep the buffer.
pub fn take(grads: &mut Grads, slot: &Slot) -> Result<Vec<f32>, BackwardError> {
    let buffer = std::mem::take(&mut **grads.get_or_alloc_mut(&slot.name)?);
    Ok(if buffer.is_empty() {
        vec![0.0; slot.len]
    } else {
        buffer
    })
}

/// The gradient of `slot` so far, or `None` when nothing has reached it yet (then [`put`] the first).
pub fn gradient<'g>(
    grads: &'g mut Grads,
    slot: &Slot,
) -> Result<Option<&'g mut [f32]>, BackwardError> {
    let buffer = grads.get_or_alloc_mut(&slot.name)?;
    Ok((!buffer.is_empty()).then_some(buffer.as_mut_slice()))
}

/// Adds `value` to the gradient of `slot`; the first value to reach it is moved in, not copied.
pub fn put(grads: &mut Grads, slot: &Slot, value: Vec<f32>) -> Result<(), BackwardError> {
    assert_eq!(value.len(), slot.len, "gradient of the wrong length");
    let buffer = grads.get_or_alloc_mut(&slot.name)?;
    if buffer.is_empty() {
        **buffer = value;
    } else {
        buffer
            .par_iter_mut()
            .zip(value.par_iter())
            .for_each(|(a, b)| *a += b);
    }
    Ok(())
}

/// The gradient buffer of `slot`, to add into (zeroed first when nothing has reached it yet).
pub fn accumulate<'g>(grads: &'g mut Grads, slot: &Slot) -> Result<&'g mut [f32], BackwardError> {
    let buffer = grads.get_or_alloc_mut(&slot.name)?;
    if buffer.is_empty() {
        buffer.resize(slot.len, 0.0);
    }
    Ok(buffer.as_mut_slice())
}
