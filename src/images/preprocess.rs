//! Model input preprocessing, in one place for train, evaluate and predict: a grey image is resized to
//! the model's square input by a declared policy, repeated into 3 channels, and normalised the way the
//! pretrained weights expect. Augmentation works on the resized grey image, between the two steps.

use image::{GrayImage, Luma, RgbImage, imageops};
use serde::{Deserialize, Serialize};

/// How a non-square image becomes the model's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Scale both sides to the input size (what Keras' `image_dataset_from_directory` does).
    Stretch,
    /// Scale the longer side to fit and pad the rest with black (keeps anatomy's proportions).
    Pad,
    /// Scale the shorter side to fit and cut the centre square.
    Crop,
}

/// How grey levels 0..255 become network inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// x / 127.5 - 1, as Keras' and TFLite's MobileNetV2 expect.
    Symmetric,
    /// (x / 255 - mean) / std per channel with ImageNet's statistics, as torchvision's weights expect.
    Imagenet,
}

/// The whole preprocessing policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Square input side in pixels.
    pub size: u32,
    /// Resize policy.
    pub resize: Resize,
    /// Normalisation.
    pub normalize: Normalize,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Preprocess {
    /// The image at the model's input size, still grey.
    pub fn resize(&self, image: &GrayImage) -> GrayImage {
        let (w, h) = image.dimensions();
        let s = self.size;
        let filter = imageops::FilterType::Triangle;
        match self.resize {
            Resize::Stretch => imageops::resize(image, s, s, filter),
            Resize::Pad => {
                let scale = f64::from(s) / f64::from(w.max(h).max(1));
                let (tw, th) = scaled(w, h, scale);
                let inner = imageops::resize(image, tw.min(s), th.min(s), filter);
                let mut out = GrayImage::from_pixel(s, s, Luma([0]));
                imageops::replace(
                    &mut out,
                    &inner,
                    i64::from((s - inner.width()) / 2),
                    i64::from((s - inner.height()) / 2),
                );
                out
            }
            Resize::Crop => {
                let scale = f64::from(s) / f64::from(w.min(h).max(1));
                let (tw, th) = scaled(w, h, scale);
                let inner = imageops::resize(image, tw.max(s), th.max(s), filter);
                let (x, y) = ((inner.width() - s) / 2, (inner.height() - s) / 2);
                imageops::crop_imm(&inner, x, y, s, s).to_image()
            }
        }
    }

    /// A resized grey image as a size x size x 3 tensor (channels last, the model's layout),
    /// normalised; the grey level is repeated into the three channels.
    pub fn tensor(&self, resized: &GrayImage) -> Vec<f32> {
        assert_eq!(resized.dimensions(), (self.size, self.size), "resize first");
        let mut out = Vec::with_capacity(resized.as_raw().len() * 3);
        for &p in resized.as_raw() {
            out.extend((0..3).map(|channel| self.normalise(p, channel)));
        }
        out
    }

    /// A colour image at the input size as a size x size x 3 tensor (channels last), normalised:
    /// for checking ImageNet weights on photographs.
    pub fn tensor_rgb(&self, resized: &RgbImage) -> Vec<f32> {
        assert_eq!(resized.dimensions(), (self.size, self.size), "resize first");
        let mut out = Vec::with_capacity(resized.as_raw().len());
        for pixel in resized.pixels() {
            out.extend((0..3).map(|channel| self.normalise(pixel[channel], channel)));
        }
        out
    }

    fn normalise(&self, level: u8, channel: usize) -> f32 {
        let x = f32::from(level);
        match self.normalize {
            Normalize::Symmetric => x / 127.5 - 1.0,
            Normalize::Imagenet => (x / 255.0 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel],
        }
    }
}

fn scaled(w: u32, h: u32, scale: f64) -> (u32, u32) {
    (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(resize: Resize, normalize: Normalize) -> Preprocess {
        Preprocess {
            size: 8,
            resize,
            normalize,
        }
    }

    #[test]
    fn every_policy_gives_the_input_size() {
        let wide = GrayImage::from_pixel(40, 10, Luma([200]));
        for resize in [Resize::Stretch, Resize::Pad, Resize::Crop] {
            let out = policy(resize, Normalize::Symmetric).resize(&wide);
            assert_eq!(out.dimensions(), (8, 8), "{resize:?}");
        }
        let padded = policy(Resize::Pad, Normalize::Symmetric).resize(&wide);
        assert_eq!(padded.get_pixel(4, 0)[0], 0, "pad rows are black");
        assert_eq!(padded.get_pixel(4, 4)[0], 200);
        let cropped = policy(Resize::Crop, Normalize::Symmetric).resize(&wide);
        assert!(cropped.pixels().all(|p| p[0] == 200));
    }

    #[test]
    fn normalisation_matches_the_weights_conventions() {
        let image = GrayImage::from_fn(8, 8, |x, _| Luma([if x == 0 { 0 } else { 255 }]));
        let t = policy(Resize::Stretch, Normalize::Symmetric).tensor(&image);
        assert_eq!(t.len(), 3 * 64);
        assert_eq!(t[..6], [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], "channels last");
        let t = policy(Resize::Stretch, Normalize::Imagenet).tensor(&image);
        assert!((t[0] + 0.485 / 0.229).abs() < 1e-5);
        assert!(
            (t[1] + 0.456 / 0.224).abs() < 1e-5,
            "second channel uses its own statistics"
        );
    }
}
