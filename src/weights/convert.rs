//! Turning TF-slim's quantised MobileNetV2 (`mobilenet_v2_1.0_224_quant.tflite`) into this crate's
//! network: weights dequantised (`scale * (q - zero_point)`), layouts moved to PyTorch's, and each
//! layer's folded BatchNorm loaded as conv + bias (BatchNorm set to the identity: scale 1, shift the
//! bias, mean 0, variance 1 - eps). Layers are found by the first name of each constant tensor
//! (`MobilenetV2/expanded_conv_3/expand/...`).

use std::collections::HashMap;

use anyhow::{Context, bail};

use super::tflite::{Model, Tensor};
use crate::model::{BLOCKS, Config, MobileNetV2};

/// The network that a TF-slim MobileNetV2 file describes, with its weights.
pub fn mobilenet_from_tflite(model: &Model) -> anyhow::Result<MobileNetV2> {
    let mut layers: HashMap<String, (Option<&Tensor>, Option<&Tensor>)> = HashMap::new();
    // Constant, quantised tensors only (the graph also holds shape constants such as a squeeze's).
    for t in model
        .tensors
        .iter()
        .filter(|t| !t.data.is_empty() && t.quantization.is_some())
    {
        let Some(layer) = torch_layer(&t.name) else {
            continue;
        };
        let entry = layers.entry(layer).or_default();
        match t.dtype {
            "uint8" => entry.0 = Some(t),
            "int32" => entry.1 = Some(t),
            _ => {}
        }
    }
    let input = model
        .inputs
        .first()
        .and_then(|&i| model.tensors.get(usize::try_from(i).ok()?))
        .context("the model has no input tensor")?;
    let side = *input.shape.get(1).context("the input has no height")? as usize;
    let classes = layers
        .get("classifier.1")
        .and_then(|(w, _)| w.map(|w| w.shape[0] as usize))
        .context("no classifier (`MobilenetV2/Logits`) weights")?;
    let config = Config {
        width: 1.0,
        input: side,
        classes,
        dropout: 0.0,
        same_padding: true,
        bn_momentum: 0.1,
        bn_eps: 1e-3,
        running_stats: true,
    };
    let eps = config.bn_eps;
    let mut net = MobileNetV2::new(config, 0);
    let mut filled = 0;
    for (name, layout, value) in net.state_mut() {
        let (layer, field) = name
            .rsplit_once('.')
            .context("parameter names have a field")?;
        // A conv weight `features.3.conv.0.0.weight` belongs to layer `features.3.conv.0.0`; its
        // BatchNorm `features.3.conv.0.1` takes the conv's bias.
        let conv = if field == "weight" && layers.contains_key(layer) {
            Some(layer.to_string())
        } else {
            sibling_conv(layer)
        };
        let Some((weights, bias)) = conv.as_deref().and_then(|c| layers.get(c)) else {
            bail!("no weights for `{name}` in the file");
        };
        *value = match (layer == conv.as_deref().unwrap_or_default(), field) {
            (true, "weight") => {
                let w = weights.with_context(|| format!("no weights for `{name}`"))?;
                layout.in_our_layout(&to_torch(w, &layout.torch_shape())?)
            }
            (true, "bias") | (false, "bias") => {
                dequantise(bias.with_context(|| format!("no bias for `{name}`"))?)?
            }
            (false, "weight") => vec![1.0; layout.len()],
            (false, "running_mean") => vec![0.0; layout.len()],
            (false, "running_var") => vec![1.0 - eps; layout.len()],
            _ => bail!("unexpected parameter `{name}`"),
        };
        if value.len() != layout.len() {
            bail!(
                "`{name}`: the file has {} numbers, the network needs {}",
                value.len(),
                layout.len()
            );
        }
        filled += 1;
    }
    anyhow::ensure!(filled > 0, "nothing loaded");
    Ok(net)
}

/// The torchvision layer a TF-slim tensor belongs to, from the first of its names.
fn torch_layer(names: &str) -> Option<String> {
    let first = names.split(';').next()?;
    let mut parts = first.split('/').skip(1);
    let (layer, sub) = (parts.next()?, parts.next().unwrap_or_default());
    Some(match layer {
        "Conv" => "features.0.0".into(),
        "Conv_1" => format!("features.{}.0", BLOCKS + 1),
        "Logits" => "classifier.1".into(),
        _ => {
            let index: usize = match layer.strip_prefix("expanded_conv") {
                Some("") => 0,
                Some(n) => n.strip_prefix('_')?.parse().ok()?,
                None => return None,
            };
            let block = index + 1;
            // Block 1 (t = 1) has no expansion: depthwise conv.0, projection conv.1.
            let position = match (index, sub) {
                (0, "depthwise") => "0.0",
                (0, "project") => "1",
                (_, "expand") => "0.0",
                (_, "depthwise") => "1.0",
                (_, "project") => "2",
                _ => return None,
            };
            format!("features.{block}.conv.{position}")
        }
    })
}

/// The conv layer whose BatchNorm is `bn` (`features.3.conv.0.1` -> `features.3.conv.0.0`;
/// `features.3.conv.3` -> `features.3.conv.2`; `classifier.1` is its own).
fn sibling_conv(bn: &str) -> Option<String> {
    if bn == "classifier.1" {
        return Some(bn.into());
    }
    let (head, last) = bn.rsplit_once('.')?;
    let last: usize = last.parse().ok()?;
    Some(format!("{head}.{}", last.checked_sub(1)?))
}

/// A constant tensor's numbers as floats.
fn dequantise(t: &Tensor) -> anyhow::Result<Vec<f32>> {
    let (scale, zero) = t
        .quantization
        .with_context(|| format!("`{}` is not quantised", t.name))?;
    Ok(match t.dtype {
        "uint8" => t
            .data
            .iter()
            .map(|&q| scale * (f32::from(q) - zero as f32))
            .collect(),
        "int32" => t
            .data
            .chunks_exact(4)
            .map(|b| scale * (i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64 - zero) as f32)
            .collect(),
        other => bail!("`{}`: cannot dequantise {other}", t.name),
    })
}

/// A TFLite weight (`[out, kh, kw, in]`, depthwise `[1, kh, kw, c]`) in PyTorch's layout `shape`.
fn to_torch(t: &Tensor, shape: &[usize]) -> anyhow::Result<Vec<f32>> {
    let values = dequantise(t)?;
    let dims: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let [a, kh, kw, b] = dims[..] else {
        bail!(
            "`{}` has shape {:?}; a 4-d weight was expected",
            t.name,
            t.shape
        )
    };
    let depthwise = a == 1 && shape.get(1) == Some(&1) && shape.len() == 4;
    let (out, inp) = if depthwise { (b, 1) } else { (a, b) };
    let mut torch = vec![0.0; values.len()];
    for o in 0..out {
        for i in 0..inp {
            for y in 0..kh {
                for x in 0..kw {
                    let from = if depthwise {
                        (y * kw + x) * b + o
                    } else {
                        ((o * kh + y) * kw + x) * b + i
                    };
                    torch[((o * inp + i) * kh + y) * kw + x] = values[from];
                }
            }
        }
    }
    Ok(torch)
}
