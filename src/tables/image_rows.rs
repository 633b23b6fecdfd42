//! The image table: one row per image, the schema that ingest writes and validate and split extend
//! (duplicate groups, flags, the assigned split). Keeping it in one struct keeps every stage's reading
//! and writing of it the same.

use std::path::Path;

use polars::prelude::{Column, DataFrame};

use crate::tables::Table;

/// One image and what is known about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageRow {
    /// Path inside the ingested images folder, with `/` separators.
    pub path: String,
    /// Where the image came from (a path in the source folder, or the generator).
    pub source: String,
    /// Class name.
    pub class: String,
    /// Class index: the positive class is 1 in a binary task.
    pub label: i64,
    /// The split the source put it in, if any (`train`, `val`, `test`).
    pub given_split: Option<String>,
    /// A group the source declared (e.g. one study); kept in one split.
    pub group: Option<String>,
    /// The patient, if the source says; kept in one split.
    pub patient: Option<String>,
    /// blake3 of the file's bytes.
    pub hash: String,
    /// File size.
    pub bytes: i64,
    /// Format found in the bytes (`jpeg`, `png`, ...); empty if none.
    pub format: Option<String>,
    /// Width as viewed (after EXIF orientation, once validated).
    pub width: Option<i64>,
    /// Height as viewed.
    pub height: Option<i64>,
    /// Colour mode (`L`, `RGB`, `RGBA`, `P`, `CMYK`, ...).
    pub mode: Option<String>,
    /// Bits per sample.
    pub bit_depth: Option<i64>,
    /// The exact/near-duplicate group validate found, for images that have copies.
    pub duplicate_group: Option<String>,
    /// Findings that did not exclude the image, comma-separated (`extension_mismatch`, ...).
    pub flags: Option<String>,
    /// The split assigned by the split stage.
    pub split: Option<String>,
}

/// Builds the table.
pub fn to_frame(rows: &[ImageRow]) -> DataFrame {
    fn text(name: &str, rows: &[ImageRow], f: impl Fn(&ImageRow) -> Option<&str>) -> Column {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    }
    fn int(name: &str, rows: &[ImageRow], f: impl Fn(&ImageRow) -> Option<i64>) -> Column {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    }
    let columns = vec![
        text("path", rows, |r| Some(&r.path)),
        text("class", rows, |r| Some(&r.class)),
        int("label", rows, |r| Some(r.label)),
        text("split", rows, |r| r.split.as_deref()),
        text("given_split", rows, |r| r.given_split.as_deref()),
        text("duplicate_group", rows, |r| r.duplicate_group.as_deref()),
        text("group", rows, |r| r.group.as_deref()),
        text("patient", rows, |r| r.patient.as_deref()),
        text("hash", rows, |r| Some(&r.hash)),
        int("bytes", rows, |r| Some(r.bytes)),
        text("format", rows, |r| r.format.as_deref()),
        int("width", rows, |r| r.width),
        int("height", rows, |r| r.height),
        text("mode", rows, |r| r.mode.as_deref()),
        int("bit_depth", rows, |r| r.bit_depth),
        text("flags", rows, |r| r.flags.as_deref()),
        text("source", rows, |r| Some(&r.source)),
    ];
    DataFrame::new(rows.len(), columns).expect("columns have one value per row")
}

/// Reads an image table written by [`to_frame`] (or by a person: only `path`, `class`, `label` and
/// `hash` are required).
pub fn read(path: &Path) -> anyhow::Result<Vec<ImageRow>> {
    let table = Table::parquet(path)?;
    let text = |name: &str| table.text_if_present(name);
    let int = |name: &str| table.int_if_present(name);
    let (paths, classes, labels, hashes) = (
        table.text("path")?,
        table.text("class")?,
        table.int("label")?,
        table.text("hash")?,
    );
    let (split, given, dup, group, patient) = (
        text("split")?,
        text("given_split")?,
        text("duplicate_group")?,
        text("group")?,
        text("patient")?,
    );
    let (format, mode, flags, source) = (
        text("format")?,
        text("mode")?,
        text("flags")?,
        text("source")?,
    );
    let (bytes, width, height, depth) = (
        int("bytes")?,
        int("width")?,
        int("height")?,
        int("bit_depth")?,
    );
    let mut rows = Vec::with_capacity(table.len());
    for i in 0..table.len() {
        rows.push(ImageRow {
            path: paths[i].clone(),
            source: source[i].clone().unwrap_or_else(|| paths[i].clone()),
            class: classes[i].clone(),
            label: labels[i],
            given_split: given[i].clone(),
            group: group[i].clone(),
            patient: patient[i].clone(),
            hash: hashes[i].clone(),
            bytes: bytes[i].unwrap_or(0),
            format: format[i].clone(),
            width: width[i],
            height: height[i],
            mode: mode[i].clone(),
            bit_depth: depth[i],
            duplicate_group: dup[i].clone(),
            flags: flags[i].clone(),
            split: split[i].clone(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            ImageRow {
                path: "train/fractured/a.jpg".into(),
                source: "/data/train/fractured/a.jpg".into(),
                class: "fractured".into(),
                label: 1,
                given_split: Some("train".into()),
                hash: "ab".into(),
                bytes: 10,
                width: Some(224),
                flags: Some("extension_mismatch".into()),
                ..Default::default()
            },
            ImageRow {
                path: "b.png".into(),
                source: "b.png".into(),
                class: "not fractured".into(),
                hash: "cd".into(),
                ..Default::default()
            },
        ];
        let mut frame = to_frame(&rows);
        crate::tables::write(&mut frame, dir.path(), "images").unwrap();
        assert_eq!(read(&dir.path().join("images.parquet")).unwrap(), rows);
    }
}
