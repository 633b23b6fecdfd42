//! The `validate` kind: decodes every ingested image in parallel and decides what the later stages may
//! trust. Unusable files (empty, not an image, truncated, undecodable, over the pixel limit, too small,
//! constant) are excluded with a reason; odd but usable ones (an extension that lies about the format,
//! unusual colour modes or bit depths, EXIF rotation) are kept and flagged. Two detectors look for
//! copies: exact duplicates (same bytes) and near duplicates by a rotation/flip-invariant difference
//! hash, and, given pretrained weights, nearest neighbours in the network's embedding space
//! ([`embedding`]). Their pairs are grouped, and groups that span splits (leakage) or classes (look-alikes
//! with different labels, or one film labelled twice) are reported. Classes that differ in image size, format or
//! colour mode get a shortcut warning. Nothing is dropped without a row saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::{Column, DataFrame};
use rayon::prelude::*;
use serde_json::{Value, json};

mod embedding;
mod pairs;

use image::GrayImage;

use super::Context;
use crate::images::decode::{self, format_from_extension};
use crate::images::dhash::{Dhash, Nearness};
use crate::tables;
use crate::tables::image_rows::{self, ImageRow};
use pairs::{copy_pairs, detectors_summary, duplicate_groups, hash_pairs, pairs_frame};

/// What checking one image found.
enum Check {
    Kept {
        dhash: Box<Dhash>,
        /// The embedding detector's input, when it runs.
        thumbnail: Option<GrayImage>,
        width: u32,
        height: u32,
        format: String,
        mode: &'static str,
        bit_depth: u8,
        flags: Vec<&'static str>,
    },
    Excluded {
        reason: &'static str,
        detail: String,
    },
}

/// An image left out, and why.
struct Exclusion<'a> {
    row: &'a ImageRow,
    reason: &'static str,
    detail: String,
}

/// Limits for one image, and the side of the thumbnail the embedding detector needs (if it runs).
struct Limits {
    max_pixels: u64,
    min_size: u32,
    thumbnail: Option<u32>,
}

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let rows = image_rows::read(&ctx.path("ingested").join("manifest.parquet"))?;
    let images = ctx.path("images");
    let weights = ctx.optional_path("weights");
    let side = u32::try_from(ctx.count("embedding_size")?).unwrap_or(u32::MAX);
    let limits = Limits {
        max_pixels: ctx.count("max_pixels")?,
        min_size: u32::try_from(ctx.count("min_size")?).unwrap_or(u32::MAX),
        thumbnail: weights.as_ref().map(|_| side),
    };
    let near = Nearness {
        max_bits: u32::try_from(ctx.count("near_duplicate_distance")?).unwrap_or(64),
        min_correlation: ctx.number("near_duplicate_correlation") as f32,
    };
    let counter = ctx.counter(rows.len(), "images", "decoding and checking");
    let checks: Vec<Check> = rows
        .par_iter()
        .map(|row| {
            let checked = check(&images, row, &limits);
            counter.tick();
            checked
        })
        .collect();

    let mut kept = Vec::new();
    let mut hashes = Vec::new();
    let mut thumbnails = Vec::new();
    let mut exclusions = Vec::new();
    for (row, check) in rows.iter().zip(checks) {
        match check {
            Check::Kept {
                dhash,
                thumbnail,
                width,
                height,
                format,
                mode,
                bit_depth,
                flags,
            } => {
                kept.push(ImageRow {
                    width: Some(i64::from(width)),
                    height: Some(i64::from(height)),
                    format: Some(format),
                    mode: Some(mode.to_string()),
                    bit_depth: Some(i64::from(bit_depth)),
                    flags: (!flags.is_empty()).then(|| flags.join(",")),
                    ..row.clone()
                });
                hashes.push(*dhash);
                thumbnails.extend(thumbnail);
            }
            Check::Excluded { reason, detail } => exclusions.push(Exclusion {
                row,
                reason,
                detail,
            }),
        }
    }
    let hash_pairs = hash_pairs(&kept, &hashes, near);
    let found = match &weights {
        Some(weights) => Some(embedding_copies(
            ctx,
            weights,
            side,
            &thumbnails,
            &hash_pairs,
        )?),
        None => None,
    };
    drop(thumbnails);
    let embedding_pairs: Vec<(usize, usize)> = found
        .iter()
        .flat_map(|f| f.pairs.iter().map(|&(i, j, _)| (i, j)))
        .collect();
    let groups = duplicate_groups(&kept, hash_pairs.iter().chain(&embedding_pairs));
    for (id, members) in &groups {
        for &i in members {
            kept[i].duplicate_group = Some(id.clone());
        }
    }
    let leaks = leakage(&kept, &groups);
    let warnings = shortcut_warnings(&kept, ctx.number("shortcut_threshold"));

    let dir = ctx.output_dir("tables")?;
    tables::write(&mut image_rows::to_frame(&kept), &dir, "clean")?;
    tables::write(&mut exclusions_frame(&exclusions), &dir, "exclusions")?;
    tables::write(&mut duplicates_frame(&kept, &groups), &dir, "duplicates")?;
    tables::write(&mut leakage_frame(&leaks), &dir, "leakage")?;
    let pairs = copy_pairs(&hash_pairs, found.as_ref());
    tables::write(&mut pairs_frame(&kept, &pairs), &dir, "copies")?;

    let mut summary = summary(&rows, &kept, &exclusions, &groups, &leaks, &warnings);
    summary["copy_detectors"] = detectors_summary(&kept, &pairs, found.as_ref());
    ctx.log(&describe(&summary));
    ctx.write_json("summary", &summary)
}

/// The embedding detector's pairs among `thumbnails` (each `side` square), with `weights`.
fn embedding_copies(
    ctx: &Context,
    weights: &Path,
    side: u32,
    thumbnails: &[GrayImage],
    hash_pairs: &[(usize, usize)],
) -> anyhow::Result<embedding::Found> {
    ctx.log(&format!(
        "embedding {} images at {side} px for the copy detector",
        thumbnails.len()
    ));
    let settings = embedding::Settings {
        weights,
        name: ctx.text("weights"),
        side,
        copies: usize::try_from(ctx.count("embedding_copies")?).unwrap_or(usize::MAX),
        threshold: ctx.number("embedding_threshold") as f32,
    };
    embedding::detect(thumbnails, &settings, hash_pairs)
}

fn check(images: &Path, row: &ImageRow, limits: &Limits) -> Check {
    let file = images.join(&row.path);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            return Check::Excluded {
                reason: "unreadable",
                detail: format!("cannot read `{}`: {e}", file.display()),
            };
        }
    };
    let decoded = match decode::decode(&bytes, limits.max_pixels) {
        Ok(d) => d,
        Err(problem) => {
            return Check::Excluded {
                reason: problem.reason(),
                detail: problem.to_string(),
            };
        }
    };
    let (width, height) = decoded.grey.dimensions();
    if width.min(height) < limits.min_size {
        return Check::Excluded {
            reason: "too_small",
            detail: format!(
                "{width}x{height} is under the minimum side of {} pixels",
                limits.min_size
            ),
        };
    }
    let (low, high) = decoded
        .grey
        .as_raw()
        .iter()
        .fold((u8::MAX, u8::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    if low == high {
        return Check::Excluded {
            reason: "constant",
            detail: format!("every pixel is grey level {low}"),
        };
    }
    let header = &decoded.header;
    let mut flags = Vec::new();
    if format_from_extension(&row.path).is_some_and(|claimed| claimed != header.format) {
        flags.push("extension_mismatch");
    }
    if !matches!(header.mode, "L" | "RGB") || header.bit_depth != 8 {
        flags.push("unusual_mode");
    }
    if decoded.orientation != 1 {
        flags.push("exif_orientation");
    }
    if !decoded.end_marker {
        flags.push("missing_end_marker");
    }
    Check::Kept {
        dhash: Box::new(Dhash::of(&decoded.grey)),
        thumbnail: limits
            .thumbnail
            .map(|side| embedding::Settings::thumbnail(side, &decoded.grey)),
        width,
        height,
        format: header.format_name(),
        mode: header.mode,
        bit_depth: header.bit_depth,
        flags,
    }
}

/// A duplicate group that spans splits or classes.
struct Leak<'a> {
    group: &'a str,
    members: &'a [usize],
    splits: BTreeSet<&'a str>,
    classes: BTreeSet<&'a str>,
}

impl Leak<'_> {
    fn cross_split(&self) -> bool {
        self.splits.len() > 1
    }

    fn cross_class(&self) -> bool {
        self.classes.len() > 1
    }
}

fn leakage<'a>(rows: &'a [ImageRow], groups: &'a [(String, Vec<usize>)]) -> Vec<Leak<'a>> {
    groups
        .iter()
        .map(|(id, members)| Leak {
            group: id,
            members,
            splits: members
                .iter()
                .filter_map(|&i| rows[i].given_split.as_deref())
                .collect(),
            classes: members.iter().map(|&i| rows[i].class.as_str()).collect(),
        })
        .filter(|l| l.cross_split() || l.cross_class())
        .collect()
}

/// One warning per attribute (size, format, colour mode) whose distribution differs between two
/// classes by at least `threshold` (total variation distance, 0 to 1).
fn shortcut_warnings(rows: &[ImageRow], threshold: f64) -> Vec<String> {
    type Attribute = fn(&ImageRow) -> String;
    let attributes: [(&str, Attribute); 3] = [
        ("image size", |r| {
            size_bucket(r.width.unwrap_or(0).max(r.height.unwrap_or(0)))
        }),
        ("file format", |r| r.format.clone().unwrap_or_default()),
        ("colour mode", |r| r.mode.clone().unwrap_or_default()),
    ];
    let classes: BTreeSet<&str> = rows.iter().map(|r| r.class.as_str()).collect();
    let classes: Vec<&str> = classes.into_iter().collect();
    let mut warnings = Vec::new();
    for (name, attribute) in attributes {
        let shares: Vec<BTreeMap<String, f64>> = classes
            .iter()
            .map(|class| {
                let members: Vec<&ImageRow> = rows.iter().filter(|r| r.class == *class).collect();
                let mut counts: BTreeMap<String, f64> = BTreeMap::new();
                for r in &members {
                    *counts.entry(attribute(r)).or_default() += 1.0 / members.len() as f64;
                }
                counts
            })
            .collect();
        for a in 0..classes.len() {
            for b in a + 1..classes.len() {
                let values: BTreeSet<&String> = shares[a].keys().chain(shares[b].keys()).collect();
                let share =
                    |s: &BTreeMap<String, f64>, v: &String| s.get(v).copied().unwrap_or(0.0);
                let distance: f64 = values
                    .iter()
                    .map(|v| (share(&shares[a], v) - share(&shares[b], v)).abs())
                    .sum::<f64>()
                    / 2.0;
                if distance < threshold {
                    continue;
                }
                let worst = values
                    .iter()
                    .max_by(|x, y| {
                        let dx = (share(&shares[a], x) - share(&shares[b], x)).abs();
                        let dy = (share(&shares[a], y) - share(&shares[b], y)).abs();
                        dx.total_cmp(&dy)
                    })
                    .expect("at least one value");
                warnings.push(format!(
                    "{name} differs by class (total variation {distance:.2}): {worst} is {:.0}% of `{}` but {:.0}% of `{}`; \
                     a model can learn the {name} instead of the anatomy",
                    100.0 * share(&shares[a], worst),
                    classes[a],
                    100.0 * share(&shares[b], worst),
                    classes[b],
                ));
            }
        }
    }
    warnings
}

fn size_bucket(side: i64) -> String {
    match side {
        ..=256 => "at most 256 px",
        257..=512 => "257-512 px",
        513..=1024 => "513-1024 px",
        _ => "over 1024 px",
    }
    .to_string()
}

fn exclusions_frame(exclusions: &[Exclusion]) -> DataFrame {
    let text = |name: &str, f: &dyn Fn(&Exclusion) -> Option<String>| {
        Column::new(name.into(), exclusions.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new(
        exclusions.len(),
        vec![
            text("path", &|e| Some(e.row.path.clone())),
            text("class", &|e| Some(e.row.class.clone())),
            text("given_split", &|e| e.row.given_split.clone()),
            text("reason", &|e| Some(e.reason.to_string())),
            text("detail", &|e| Some(e.detail.clone())),
            text("hash", &|e| Some(e.row.hash.clone())),
        ],
    )
    .expect("equal columns")
}

fn duplicates_frame(rows: &[ImageRow], groups: &[(String, Vec<usize>)]) -> DataFrame {
    let mut columns: [Vec<Option<String>>; 6] = Default::default();
    for (id, members) in groups {
        for &i in members {
            let row = &rows[i];
            let exact = members.iter().any(|&j| j != i && rows[j].hash == row.hash);
            let values = [
                Some(id.clone()),
                Some(row.path.clone()),
                Some(row.class.clone()),
                row.given_split.clone(),
                Some(if exact { "exact" } else { "near" }.to_string()),
                Some(row.hash.clone()),
            ];
            for (column, value) in columns.iter_mut().zip(values) {
                column.push(value);
            }
        }
    }
    let names = [
        "duplicate_group",
        "path",
        "class",
        "given_split",
        "match",
        "hash",
    ];
    let height = columns[0].len();
    DataFrame::new(
        height,
        names
            .iter()
            .zip(columns)
            .map(|(n, c)| Column::new((*n).into(), c))
            .collect(),
    )
    .expect("equal columns")
}

fn leakage_frame(leaks: &[Leak]) -> DataFrame {
    let join = |set: &BTreeSet<&str>| set.iter().copied().collect::<Vec<_>>().join("; ");
    DataFrame::new(
        leaks.len(),
        vec![
            Column::new(
                "duplicate_group".into(),
                leaks.iter().map(|l| l.group).collect::<Vec<_>>(),
            ),
            Column::new(
                "images".into(),
                leaks
                    .iter()
                    .map(|l| l.members.len() as i64)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "cross_split".into(),
                leaks.iter().map(Leak::cross_split).collect::<Vec<_>>(),
            ),
            Column::new(
                "cross_class".into(),
                leaks.iter().map(Leak::cross_class).collect::<Vec<_>>(),
            ),
            Column::new(
                "given_splits".into(),
                leaks.iter().map(|l| join(&l.splits)).collect::<Vec<_>>(),
            ),
            Column::new(
                "classes".into(),
                leaks.iter().map(|l| join(&l.classes)).collect::<Vec<_>>(),
            ),
        ],
    )
    .expect("equal columns")
}

fn count_by<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item.to_string()).or_default() += 1;
    }
    counts
}

fn summary(
    all: &[ImageRow],
    kept: &[ImageRow],
    exclusions: &[Exclusion],
    groups: &[(String, Vec<usize>)],
    leaks: &[Leak],
    warnings: &[String],
) -> Value {
    let in_train = |members: &[usize]| {
        members
            .iter()
            .any(|&i| kept[i].given_split.as_deref() == Some("train"))
    };
    let cross_split: usize = groups
        .iter()
        .filter(|(_, m)| in_train(m))
        .map(|(_, m)| {
            m.iter()
                .filter(|&&i| matches!(kept[i].given_split.as_deref(), Some("val" | "test")))
                .count()
        })
        .sum();
    let cross_class: usize = leaks
        .iter()
        .filter(|l| l.cross_class())
        .map(|l| l.members.len())
        .sum();
    let exact_copies = {
        let per_hash = count_by(kept.iter().map(|r| r.hash.as_str()));
        per_hash
            .values()
            .filter(|&&n| n > 1)
            .map(|n| n - 1)
            .sum::<usize>()
    };
    let flags = count_by(
        kept.iter()
            .filter_map(|r| r.flags.as_deref())
            .flat_map(|f| f.split(',')),
    );
    json!({
        "images": all.len(),
        "kept": kept.len(),
        "excluded": exclusions.len(),
        "excluded_by_reason": count_by(exclusions.iter().map(|e| e.reason)),
        "flagged_by_reason": flags,
        "classes": count_by(kept.iter().map(|r| r.class.as_str())),
        "duplicate_groups": groups.len(),
        "images_in_duplicate_groups": groups.iter().map(|(_, m)| m.len()).sum::<usize>(),
        "exact_copies": exact_copies,
        "cross_split_duplicates": cross_split,
        "cross_split_groups": leaks.iter().filter(|l| l.cross_split()).count(),
        "cross_class_duplicates": cross_class,
        "cross_class_groups": leaks.iter().filter(|l| l.cross_class()).count(),
        "warnings": warnings,
    })
}

/// The summary in sentences, for the stage log.
fn describe(summary: &Value) -> String {
    let n_of = |v: &Value| v.as_u64().unwrap_or(0);
    let n = |key: &str| summary[key].as_u64().unwrap_or(0);
    let mut text = format!(
        "validated {} images: {} kept, {} excluded {}\n\
         {} duplicate groups ({} images, {} exact copies); {} val/test images have a copy or near copy in train; \
         {} images are in groups that span classes",
        n("images"),
        n("kept"),
        n("excluded"),
        summary["excluded_by_reason"],
        n("duplicate_groups"),
        n("images_in_duplicate_groups"),
        n("exact_copies"),
        n("cross_split_duplicates"),
        n("cross_class_duplicates"),
    );
    let found = &summary["copy_detectors"];
    text.push_str(&format!(
        "\ncopies: the difference hash found {} pairs, the embedding {}, both {}",
        n_of(&found["hash_pairs"]),
        found["embedding_pairs"]
            .as_u64()
            .map_or("(not run)".to_string(), |p| p.to_string()),
        n_of(&found["both"]),
    ));
    for warning in summary["warnings"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\nwarning: {}",
            warning.as_str().unwrap_or_default()
        ));
    }
    text
}
