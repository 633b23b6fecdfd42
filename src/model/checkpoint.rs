//! Checkpoints: the network's state as safetensors in torchvision's names and layouts, with the
//! network's configuration in the file's metadata, so a checkpoint is all `predict` needs. Weights
//! converted from torchvision (`torch.save` -> safetensors) load into the same network.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::mobilenet::{Config, MobileNetV2};

const CONFIG_KEY: &str = "pipe.mobilenet_v2";

/// Writes the network's state to `path` (through a temporary file, so a crash leaves no half file).
pub fn save(net: &mut MobileNetV2, path: &Path) -> anyhow::Result<()> {
    let config = serde_json::to_string(&net.config)?;
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = net
        .state_mut()
        .into_iter()
        .map(|(name, layout, value)| {
            let bytes = layout
                .in_torch_layout(value)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name, layout.torch_shape(), bytes)
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let metadata = Some(HashMap::from([(CONFIG_KEY.to_string(), config)]));
    let bytes = safetensors::serialize(views, &metadata).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    crate::util::fsutil::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write checkpoint `{}`", path.display()))
}

/// Reads a checkpoint written by [`save`].
pub fn load(path: &Path) -> anyhow::Result<MobileNetV2> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint `{}`", path.display()))?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("`{}` is not a safetensors file: {e:?}", path.display()))?;
    let config = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .with_context(|| {
            format!(
                "`{}` has no pipe model configuration in its metadata",
                path.display()
            )
        })?;
    let config: Config = serde_json::from_str(config)
        .with_context(|| format!("`{}`: bad model configuration", path.display()))?;
    let mut net = MobileNetV2::new(config, 0);
    load_state(&mut net, &bytes, true).with_context(|| format!("`{}`", path.display()))?;
    Ok(net)
}

/// Pretrained weights in torchvision's names: a checkpoint pipe wrote (its configuration comes
/// along), or torchvision's width-1.0 weights converted to safetensors (PyTorch's padding).
pub fn load_pretrained(path: &Path) -> anyhow::Result<MobileNetV2> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("not a safetensors file: {e:?}"))?;
    let config = match metadata.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) {
        Some(text) => serde_json::from_str(text).context("bad model configuration")?,
        None => Config {
            classes: 1000,
            ..Config::binary(1.0, 224)
        },
    };
    let mut net = MobileNetV2::new(config, 0);
    load_state(&mut net, &bytes, false)?;
    Ok(net)
}

/// Fills the network's state from safetensors bytes in torchvision's names; every tensor the network
/// has (but the classifier's, unless `with_head`) must be there with its shape.
pub fn load_state(net: &mut MobileNetV2, bytes: &[u8], with_head: bool) -> anyhow::Result<()> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("not a safetensors file: {e:?}"))?;
    for (name, layout, value) in net.state_mut() {
        if !with_head && name.starts_with("classifier.") {
            continue;
        }
        let view = file
            .tensor(&name)
            .map_err(|_| anyhow::anyhow!("tensor `{name}` is missing"))?;
        if view.shape() != layout.torch_shape().as_slice() {
            bail!(
                "tensor `{name}` has shape {:?}, the network needs {:?}",
                view.shape(),
                layout.torch_shape()
            );
        }
        if view.dtype() != Dtype::F32 {
            bail!("tensor `{name}` is {:?}; only F32 is read", view.dtype());
        }
        let torch: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        *value = layout.in_our_layout(&torch);
    }
    Ok(())
}
