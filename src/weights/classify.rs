//! `pipe weights inspect FILE --classify IMAGE...`: the user's check that weights loaded right. The
//! 1000-class ImageNet network from a TFLite file (or a converted checkpoint) labels photographs; a
//! correct import gives the reference's top-1 (Egyptian cat 0.73 on `cat.bmp`, for example).

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::imageops::{self, FilterType};

use super::{convert, tflite};
use crate::model::{self, MobileNetV2, checkpoint};

/// A network with its input convention.
pub struct Classifier {
    net: MobileNetV2,
    /// Input value for pixel level `x`: `scale * (x - zero)`.
    input: (f32, f32),
    labels: Vec<String>,
}

impl Classifier {
    /// The network in `file` (`.tflite`, or a safetensors checkpoint written by pipe), with class
    /// names from `labels` or `imagenet_labels.txt` beside the file (class numbers when neither).
    pub fn open(file: &Path, labels: Option<&Path>) -> anyhow::Result<Classifier> {
        let (net, input) = if file.extension().is_some_and(|e| e == "tflite") {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
            let parsed = tflite::parse(&bytes).with_context(|| format!("`{}`", file.display()))?;
            let input = parsed
                .inputs
                .first()
                .and_then(|&i| parsed.tensors.get(usize::try_from(i).ok()?))
                .and_then(|t| t.quantization)
                .map_or((1.0 / 127.5, 127.5), |(scale, zero)| (scale, zero as f32));
            let net = convert::mobilenet_from_tflite(&parsed)
                .with_context(|| format!("`{}`", file.display()))?;
            (net, input)
        } else {
            (checkpoint::load(file)?, (1.0 / 127.5, 127.5))
        };
        let default_labels = file.with_file_name("imagenet_labels.txt");
        let labels_file: Option<PathBuf> = labels
            .map(Path::to_path_buf)
            .or_else(|| default_labels.exists().then_some(default_labels));
        let labels = match labels_file {
            Some(path) => std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read labels `{}`", path.display()))?
                .lines()
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        Ok(Classifier { net, input, labels })
    }

    /// The `k` most probable classes of the image at `path`: (label, probability), best first.
    pub fn top(&mut self, path: &Path, k: usize) -> anyhow::Result<Vec<(String, f32)>> {
        let image = image::open(path)
            .with_context(|| format!("cannot read image `{}`", path.display()))?
            .to_rgb8();
        let side = self.net.config.input as u32;
        // Bicubic, as Pillow's `Image.resize` does by default (the reference numbers' preprocessing).
        let resized = imageops::resize(&image, side, side, FilterType::CatmullRom);
        let (scale, zero) = self.input;
        let x: Vec<f32> = resized
            .as_raw()
            .iter()
            .map(|&v| scale * (f32::from(v) - zero))
            .collect();
        let logits = &model::logits(&mut self.net, &[x], 1)[0];
        let probabilities = softmax(logits);
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        Ok(order
            .into_iter()
            .take(k)
            .map(|i| {
                (
                    self.labels
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("class {i}")),
                    probabilities[i],
                )
            })
            .collect())
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&z| (z - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}
