//! Image handling shared by the data and model stages: decoding with checks, perceptual hashing,
//! copies made to calibrate a copy detector, the synthetic dataset, augmentation, model preprocessing
//! and contact sheets.

pub mod augment;
pub mod copies;
pub mod decode;
pub mod dhash;
pub mod preprocess;
pub mod sheet;
pub mod synth;

use std::path::Path;

use anyhow::Context as _;
use image::{EncodableLayout, ImageBuffer, PixelWithColorType};

/// Writes an image as PNG, creating its folder.
pub fn save_png<P>(path: &Path, image: &ImageBuffer<P, Vec<P::Subpixel>>) -> anyhow::Result<()>
where
    P: PixelWithColorType,
    [P::Subpixel]: EncodableLayout,
{
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    image
        .save(path)
        .with_context(|| format!("cannot write `{}`", path.display()))
}
