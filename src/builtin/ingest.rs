//! The `ingest` kind: brings a dataset into the workspace. The source is an image folder in the layouts
//! people use (`class/…`, `split/class/…`, deeper sub-folders allowed), a CSV manifest
//! (`path,label[,split][,group][,patient]`), or nothing, which generates the embedded synthetic set.
//! Every image is copied into the `images` output (so the store holds it and later stages never depend
//! on the source staying put) and listed in the image table with its hash and header facts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rayon::prelude::*;

use super::Context;
use crate::images::decode;
use crate::images::save_png;
use crate::images::sheet::contact_sheet;
use crate::images::synth::{self, SynthParams};
use crate::pipeline::{is_outside, normalize};
use crate::store::walk::list_files;
use crate::tables::image_rows::{self, ImageRow};
use crate::tables::{self, Table};
use crate::util::rng::Rng;

/// Split folder names, as spelled in datasets, and the name pipe uses.
const SPLIT_NAMES: &[(&str, &str)] = &[
    ("train", "train"),
    ("training", "train"),
    ("val", "val"),
    ("valid", "val"),
    ("validation", "val"),
    ("test", "test"),
    ("testing", "test"),
];

/// Images larger than this are not decoded for the preview.
const PREVIEW_MAX_PIXELS: u64 = 40_000_000;

/// The class names of the synthetic set.
const SYNTHETIC_CLASSES: [&str; 2] = ["not fractured", "fractured"];

/// An image found in the source, before it is read.
struct Found {
    /// Path inside the images output.
    rel: String,
    /// The file to read.
    file: PathBuf,
    /// How to describe where it came from.
    source: String,
    class: String,
    given_split: Option<String>,
    group: Option<String>,
    patient: Option<String>,
}

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let images = ctx.output_dir("images")?;
    let (found, origin) = match ctx.optional_path("source") {
        None => (
            generate(ctx, &images)?,
            "the embedded synthetic generator".to_string(),
        ),
        Some(source) if source.is_dir() => {
            let extensions: BTreeSet<String> = ctx
                .texts("extensions")?
                .iter()
                .map(|e| e.to_lowercase())
                .collect();
            let (found, ignored) =
                from_folder(&source, Path::new(ctx.text("source")), &extensions)?;
            if found.is_empty() && ignored > 0 {
                bail!(
                    "no images in `{}`: its {ignored} files have other extensions (images are: {})",
                    source.display(),
                    join(&extensions)
                );
            }
            if ignored > 0 {
                ctx.log(&format!(
                    "ignored {ignored} files whose extension is not one of: {}",
                    join(&extensions)
                ));
            }
            (found, format!("`{}`", source.display()))
        }
        Some(source)
            if source
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv")) =>
        {
            (
                from_csv(&source, Path::new(ctx.text("source")))?,
                format!("`{}`", source.display()),
            )
        }
        Some(source) if source.exists() => {
            bail!(
                "`{}` is neither a folder of images nor a .csv manifest",
                source.display()
            )
        }
        Some(source) => bail!("the source `{}` does not exist", source.display()),
    };
    if found.is_empty() {
        bail!("no images found in {origin}");
    }
    let labels = class_labels(ctx, &found)?;
    let counter = ctx.counter(found.len(), "images", "reading and copying");
    let rows: Vec<ImageRow> = found
        .par_iter()
        .map(|f| {
            let row = read_and_copy(f, &images, labels[&f.class]);
            counter.tick();
            row
        })
        .collect::<anyhow::Result<_>>()?;
    tables::write(
        &mut image_rows::to_frame(&rows),
        &ctx.output_dir("tables")?,
        "manifest",
    )?;
    write_preview(&ctx.path("preview"), &images, &rows)?;
    ctx.log(&summary(&rows, &origin, &labels));
    Ok(())
}

/// Writes the synthetic set into `images` and lists it.
fn generate(ctx: &Context, images: &Path) -> anyhow::Result<Vec<Found>> {
    let per_class = ctx.count("images_per_class")?;
    let size = ctx.count("size")?;
    let difficulty = ctx.number("difficulty");
    let params = SynthParams {
        size: size as u32,
        difficulty,
    };
    let seed = ctx.count("seed")?;
    let jobs: Vec<(usize, u64)> = (0..SYNTHETIC_CLASSES.len())
        .flat_map(|c| (0..per_class).map(move |i| (c, i)))
        .collect();
    let counter = ctx.counter(jobs.len(), "images", "generating");
    jobs.par_iter()
        .map(|&(class, index)| {
            counter.tick();
            let fractured = SYNTHETIC_CLASSES[class] == "fractured";
            let mut rng = Rng::derive(seed, "synthetic", class as u64, index);
            let image = synth::render(params, fractured, &mut rng);
            let rel = format!("{}/{index:05}.png", SYNTHETIC_CLASSES[class]);
            let file = images.join(&rel);
            save_png(&file, &image)?;
            Ok(Found {
                rel,
                file,
                source: format!(
                    "synthetic seed={seed} size={size} difficulty={}",
                    params.difficulty
                ),
                class: SYNTHETIC_CLASSES[class].to_string(),
                given_split: None,
                group: None,
                patient: None,
            })
        })
        .collect()
}

/// Lists the images under a folder (`shown` is how the pipeline names it); returns them and the number
/// of files ignored for their extension.
fn from_folder(
    root: &Path,
    shown: &Path,
    extensions: &BTreeSet<String>,
) -> anyhow::Result<(Vec<Found>, usize)> {
    let files = list_files(root).with_context(|| format!("cannot read `{}`", root.display()))?;
    let mut found = Vec::new();
    let mut ignored = 0;
    for (rel, _) in files {
        // Hidden files and folders (.DS_Store, .git) are not data.
        if rel.split('/').any(|part| part.starts_with('.')) {
            continue;
        }
        let extension = Path::new(&rel)
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if !extensions.contains(&extension) {
            ignored += 1;
            continue;
        }
        let dirs: Vec<&str> = rel.split('/').collect::<Vec<_>>();
        let dirs = &dirs[..dirs.len() - 1];
        let split = dirs.first().and_then(|d| split_name(d));
        let class = match (split, dirs) {
            (Some(_), [_, class, ..]) | (None, [class, ..]) => class.to_string(),
            (Some(_), _) => bail!(
                "`{}`: `{rel}` is in a split folder but not in a class folder (expected split/class/image)",
                root.display()
            ),
            (None, []) => bail!(
                "`{}`: `{rel}` is not in a class folder; arrange images as class/image or split/class/image, \
                 or list them in a CSV manifest (path,label)",
                root.display()
            ),
        };
        found.push(Found {
            source: shown.join(&rel).display().to_string(),
            file: root.join(&rel),
            rel,
            class,
            given_split: split.map(str::to_string),
            group: None,
            patient: None,
        });
    }
    Ok((found, ignored))
}

/// The split a folder name stands for, if it is one.
fn split_name(folder: &str) -> Option<&'static str> {
    let lower = folder.to_lowercase();
    SPLIT_NAMES
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, canonical)| *canonical)
}

/// Lists the images of a CSV manifest (`shown` is how the pipeline names it); paths are relative to the
/// manifest's folder and must stay in it.
fn from_csv(manifest: &Path, shown: &Path) -> anyhow::Result<Vec<Found>> {
    let table = Table::csv(manifest)?;
    let root = manifest.parent().unwrap_or(Path::new("."));
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("cannot read `{}`", root.display()))?;
    let paths = table.text("path")?;
    let labels = table.text("label")?;
    let optional = |name: &str| table.text_if_present(name);
    let (splits, groups, patients) = (optional("split")?, optional("group")?, optional("patient")?);
    let mut found = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let line = i + 2;
        let at = || format!("`{}` line {line}", manifest.display());
        let rel = normalize(".", path);
        if is_outside(&rel) {
            bail!(
                "{}: `{path}` is outside the data folder `{}`",
                at(),
                root.display()
            );
        }
        let file = root.join(&rel);
        let real = file
            .canonicalize()
            .with_context(|| format!("{}: cannot find `{path}`", at()))?;
        if !real.starts_with(&canonical_root) {
            bail!(
                "{}: `{path}` leads outside the data folder `{}` (through a symbolic link)",
                at(),
                root.display()
            );
        }
        let given_split = match splits[i].as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(
                split_name(s)
                    .with_context(|| {
                        format!("{}: unknown split `{s}` (use train, val or test)", at())
                    })?
                    .to_string(),
            ),
        };
        found.push(Found {
            source: shown.with_file_name(&rel).display().to_string(),
            rel,
            file,
            class: labels[i].trim().to_string(),
            given_split,
            group: non_empty(&groups[i]),
            patient: non_empty(&patients[i]),
        });
    }
    Ok(found)
}

/// Class name -> label: the declared `classes` order (or the names found, sorted), with the positive
/// class last, so a binary task has the positive class as 1.
fn class_labels(ctx: &Context, found: &[Found]) -> anyhow::Result<BTreeMap<String, i64>> {
    let present: BTreeSet<&str> = found.iter().map(|f| f.class.as_str()).collect();
    let declared = ctx.texts("classes")?;
    let mut order: Vec<String> = if declared.is_empty() {
        present.iter().map(|c| c.to_string()).collect()
    } else {
        if let Some(f) = found.iter().find(|f| !declared.contains(&f.class)) {
            bail!(
                "class `{}` of `{}` is not among the declared classes ({})",
                f.class,
                f.rel,
                declared.join(", ")
            );
        }
        declared
    };
    let positive = ctx.text("positive_class");
    let Some(at) = order.iter().position(|c| c == positive) else {
        bail!(
            "the positive class `{positive}` is not among the classes ({}); set `positive_class`",
            order
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let positive = order.remove(at);
    order.push(positive);
    Ok(order.into_iter().zip(0..).collect())
}

/// Reads one image, copies it into the images output (unless it is already there) and describes it.
fn read_and_copy(found: &Found, images: &Path, label: i64) -> anyhow::Result<ImageRow> {
    let bytes = std::fs::read(&found.file)
        .with_context(|| format!("cannot read `{}`", found.file.display()))?;
    let target = images.join(&found.rel);
    if target != found.file {
        std::fs::create_dir_all(target.parent().expect("inside the images folder"))
            .and_then(|()| std::fs::write(&target, &bytes))
            .with_context(|| format!("cannot write `{}`", target.display()))?;
    }
    let header = decode::probe(&bytes).ok();
    Ok(ImageRow {
        path: found.rel.clone(),
        source: found.source.clone(),
        class: found.class.clone(),
        label,
        given_split: found.given_split.clone(),
        group: found.group.clone(),
        patient: found.patient.clone(),
        hash: blake3::hash(&bytes).to_hex().to_string(),
        bytes: bytes.len() as i64,
        format: header.as_ref().map(decode::Header::format_name),
        width: header.as_ref().map(|h| i64::from(h.width)),
        height: header.as_ref().map(|h| i64::from(h.height)),
        mode: header.as_ref().map(|h| h.mode.to_string()),
        bit_depth: header.as_ref().map(|h| i64::from(h.bit_depth)),
        ..ImageRow::default()
    })
}

/// A contact sheet: one row of up to 8 images per class, in table order.
fn write_preview(path: &Path, images: &Path, rows: &[ImageRow]) -> anyhow::Result<()> {
    let mut by_class: BTreeMap<i64, Vec<image::GrayImage>> = BTreeMap::new();
    for row in rows {
        let slot = by_class.entry(row.label).or_default();
        if slot.len() >= 8 {
            continue;
        }
        // Unreadable or huge images are left out of the preview; validate reports them.
        let bytes = std::fs::read(images.join(&row.path)).unwrap_or_default();
        if let Ok(decoded) = decode::decode(&bytes, PREVIEW_MAX_PIXELS) {
            slot.push(decoded.grey);
        }
    }
    save_png(
        path,
        &contact_sheet(&by_class.into_values().rev().collect::<Vec<_>>(), 128),
    )
}

fn summary(rows: &[ImageRow], origin: &str, labels: &BTreeMap<String, i64>) -> String {
    let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_split: BTreeMap<&str, usize> = BTreeMap::new();
    for row in rows {
        *per_class.entry(&row.class).or_default() += 1;
        *per_split
            .entry(row.given_split.as_deref().unwrap_or("none"))
            .or_default() += 1;
    }
    let classes: Vec<String> = per_class
        .iter()
        .map(|(c, n)| format!("{c} (label {}): {n}", labels[*c]))
        .collect();
    let splits: Vec<String> = per_split.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    format!(
        "ingested {} images from {origin}\nclasses: {}\ngiven splits: {}",
        rows.len(),
        classes.join(", "),
        splits.join(", ")
    )
}

/// A trimmed CSV value, `None` when blank.
fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn join(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}
