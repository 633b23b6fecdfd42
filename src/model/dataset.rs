//! What train, evaluate and predict read: the images of a split table, decoded and resized once to the
//! model's input (still grey, so augmentation can work on them), and the augmentation policy file the
//! augment stage wrote.

use std::path::Path;

use anyhow::Context;
use image::GrayImage;
use rayon::prelude::*;
use serde::Deserialize;

use crate::images::augment::Policy;
use crate::images::decode;
use crate::images::preprocess::Preprocess;
use crate::tables::image_rows::ImageRow;

/// One image ready for the model.
pub struct Example {
    /// Its path in the images folder.
    pub path: String,
    /// 0 or 1.
    pub label: i64,
    /// Its split.
    pub split: String,
    /// Its group (duplicate group, declared group or patient), for the predictions table.
    pub group: String,
    /// The grey image at the model's input size.
    pub image: GrayImage,
}

/// The augment stage's policy file.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyFile {
    /// The seed of the per-epoch draws.
    pub seed: u64,
    /// The transforms.
    pub policy: Policy,
    /// The model's preprocessing.
    pub preprocess: Preprocess,
}

impl PolicyFile {
    /// Reads the policy JSON at `path`.
    pub fn read(path: &Path) -> anyhow::Result<PolicyFile> {
        crate::util::fsutil::read_json(path).context("an augmentation policy was expected")
    }
}

/// What a trained model folder says about its inputs and outputs (its `config.json`).
pub struct ModelInfo {
    /// The preprocessing it was trained with.
    pub preprocess: Preprocess,
    /// Class names for labels 0 and 1.
    pub classes: [String; 2],
}

impl ModelInfo {
    /// Reads `config.json` in `model_dir`.
    pub fn read(model_dir: &Path) -> anyhow::Result<ModelInfo> {
        let path = model_dir.join("config.json");
        let config: serde_json::Value = crate::util::fsutil::read_json(&path)?;
        let field = |name: &str| config[name].clone();
        Ok(ModelInfo {
            preprocess: serde_json::from_value(field("preprocess"))
                .with_context(|| format!("`{}` has no valid `preprocess`", path.display()))?,
            classes: serde_json::from_value(field("classes"))
                .with_context(|| format!("`{}` has no valid `classes`", path.display()))?,
        })
    }
}

/// Decodes and resizes the rows (in parallel), keeping their order.
pub fn load(
    rows: &[&ImageRow],
    images: &Path,
    preprocess: &Preprocess,
) -> anyhow::Result<Vec<Example>> {
    rows.par_iter()
        .map(|row| {
            let file = images.join(&row.path);
            let bytes = std::fs::read(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            let decoded = decode::decode(&bytes, u64::MAX)
                .with_context(|| format!("`{}`", file.display()))?;
            Ok(Example {
                path: row.path.clone(),
                label: row.label,
                split: row.split.clone().unwrap_or_default(),
                group: row
                    .duplicate_group
                    .clone()
                    .or_else(|| row.group.clone())
                    .or_else(|| row.patient.clone())
                    .unwrap_or_else(|| row.path.clone()),
                image: preprocess.resize(&decoded.grey),
            })
        })
        .collect()
}
