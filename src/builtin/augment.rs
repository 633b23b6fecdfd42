//! The `augment` kind: fixes the augmentation policy for training and shows it. The policy (seeded
//! rotation, flips, zoom, brightness, contrast, plus the model-input preprocessing it works on) is written
//! as JSON for the train stage, which applies it to every training image afresh each epoch, so the model
//! never sees the same augmented image twice. With `copies: k`, k augmented copies of each training image
//! are also materialised (PNG files and a table), drawn with the same function and seed. A preview grid
//! puts originals beside augmented versions.

use anyhow::Context as _;
use image::GrayImage;
use polars::prelude::{Column, DataFrame};
use rayon::prelude::*;
use serde_json::json;

use super::Context;
use crate::images::augment::{COPY_STREAM, Policy};
use crate::images::decode;
use crate::images::preprocess::{Normalize, Preprocess, Resize};
use crate::images::save_png;
use crate::images::sheet::contact_sheet;
use crate::tables;
use crate::tables::image_rows::{self, ImageRow};

/// Augmented versions beside each original in the preview.
const PREVIEW_VERSIONS: u64 = 5;

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let policy = Policy {
        rotation: ctx.number("rotation"),
        hflip: ctx.flag("hflip"),
        vflip: ctx.flag("vflip"),
        zoom: ctx.number("zoom"),
        brightness: ctx.number("brightness"),
        contrast: ctx.number("contrast"),
    };
    let size = ctx.count("size")?;
    let preprocess = Preprocess {
        size: size as u32,
        resize: serde_json::from_value::<Resize>(json!(ctx.text("resize")))?,
        normalize: serde_json::from_value::<Normalize>(json!(ctx.text("normalize")))?,
    };
    let seed = ctx.count("seed")?;
    let copies = ctx.count("copies")?;
    let rows = image_rows::read(&ctx.path("split").join("split.parquet"))?;
    let train: Vec<&ImageRow> = rows
        .iter()
        .filter(|r| r.split.as_deref() == Some("train"))
        .collect();
    let images = ctx.path("images");
    let load = |row: &ImageRow| -> anyhow::Result<GrayImage> {
        let file = images.join(&row.path);
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
        let decoded =
            decode::decode(&bytes, u64::MAX).with_context(|| format!("`{}`", file.display()))?;
        Ok(preprocess.resize(&decoded.grey))
    };

    let copies_dir = ctx.output_dir("augmented")?;
    let made: Vec<Vec<(String, &ImageRow, u64)>> = if copies == 0 {
        Vec::new()
    } else {
        train
            .par_iter()
            .enumerate()
            .map(|(index, row)| {
                let original = load(row)?;
                (1..=copies)
                    .map(|copy| {
                        // The original's full name stays in the copy's, so `a.png` and `a.jpg` differ.
                        let rel = format!("{}.aug{copy}.png", row.path);
                        let augmented =
                            policy.apply(&original, seed, COPY_STREAM + copy, index as u64);
                        save_png(&copies_dir.join(&rel), &augmented)?;
                        Ok((rel, *row, copy))
                    })
                    .collect()
            })
            .collect::<anyhow::Result<_>>()?
    };
    let made: Vec<_> = made.into_iter().flatten().collect();
    tables::write(&mut copies_frame(&made), &copies_dir, "augmented")?;

    let previews = usize::try_from(ctx.count("preview_images")?).unwrap_or(usize::MAX);
    let rows_of_sheet: Vec<Vec<GrayImage>> = preview_rows(&train, previews)
        .into_iter()
        .map(|(index, row)| {
            let original = load(row)?;
            let mut line = vec![original.clone()];
            line.extend(
                (0..PREVIEW_VERSIONS)
                    .map(|epoch| policy.apply(&original, seed, epoch, index as u64)),
            );
            Ok(line)
        })
        .collect::<anyhow::Result<_>>()?;
    save_png(
        &ctx.path("preview"),
        &contact_sheet(&rows_of_sheet, preprocess.size.max(64)),
    )?;

    ctx.log(&format!(
        "augmentation policy for {} training images (applied per epoch by train): {policy:?}; {} materialised copies",
        train.len(),
        made.len()
    ));
    ctx.write_json(
        "policy",
        &json!({
            "seed": seed,
            "policy": policy,
            "preprocess": preprocess,
            "copies": copies,
            "train_images": train.len(),
        }),
    )
}

/// Up to `count` training images for the preview, alternating between classes, with their index in the
/// training list (which seeds their augmentation).
fn preview_rows<'a>(train: &[&'a ImageRow], count: usize) -> Vec<(usize, &'a ImageRow)> {
    let mut classes: Vec<i64> = train.iter().map(|r| r.label).collect();
    classes.sort_unstable();
    classes.dedup();
    let mut queues: Vec<Vec<(usize, &ImageRow)>> = classes
        .iter()
        .map(|&label| {
            train
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, r)| r.label == label)
                .collect()
        })
        .collect();
    queues.iter_mut().for_each(|q| q.reverse());
    let mut picked = Vec::new();
    while picked.len() < count && queues.iter().any(|q| !q.is_empty()) {
        for queue in queues.iter_mut() {
            if picked.len() < count {
                picked.extend(queue.pop());
            }
        }
    }
    picked
}

fn copies_frame(made: &[(String, &ImageRow, u64)]) -> DataFrame {
    DataFrame::new(
        made.len(),
        vec![
            Column::new(
                "path".into(),
                made.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "original".into(),
                made.iter().map(|m| m.1.path.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "class".into(),
                made.iter().map(|m| m.1.class.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "label".into(),
                made.iter().map(|m| m.1.label).collect::<Vec<_>>(),
            ),
            Column::new(
                "copy".into(),
                made.iter().map(|m| m.2 as i64).collect::<Vec<_>>(),
            ),
        ],
    )
    .expect("equal columns")
}
