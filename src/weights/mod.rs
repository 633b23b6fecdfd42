//! Pretrained weights files: reading them, describing what they hold (`pipe weights inspect`),
//! converting them into this crate's network, and checking them on photographs (`--classify`).

pub mod classify;
pub mod convert;
pub mod tflite;

use anyhow::Context as _;

use crate::model::MobileNetV2;

/// The network in a pretrained weights file: a TFLite MobileNetV2 (converted on the fly) or a
/// safetensors checkpoint.
pub fn load(path: &std::path::Path) -> anyhow::Result<MobileNetV2> {
    let context = || format!("weights `{}`", path.display());
    if path.extension().is_some_and(|e| e == "tflite") {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let model = tflite::parse(&bytes).with_context(context)?;
        convert::mobilenet_from_tflite(&model).with_context(context)
    } else {
        crate::model::checkpoint::load_pretrained(path).with_context(context)
    }
}
