//! The `manifest` kind: one CSV row per file under a folder (path, bytes, blake3, and optionally the
//! parent folder as a label), sorted by path, so a data folder's exact content is on record.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::Value;

use super::Context;
use crate::store::hash::{StatCache, TreeKind};

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let source = ctx.path("source");
    let table = ctx.path("table");
    let extensions: Vec<String> = ctx.settings["extensions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let with_label = ctx.flag("label_from_parent");
    let stats = StatCache::in_memory();
    let tree = stats
        .hash_tree(&source)
        .with_context(|| format!("stage `{}`: cannot read `{}`", ctx.stage, source.display()))?;
    let mut csv = String::from(if with_label {
        "path,bytes,blake3,label\n"
    } else {
        "path,bytes,blake3\n"
    });
    for file in &tree.files {
        let rel = match tree.kind {
            TreeKind::File => source
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string(),
            TreeKind::Dir => file.path.clone(),
        };
        let extension = rel
            .rsplit_once('.')
            .map(|(_, e)| e.to_lowercase())
            .unwrap_or_default();
        if !extensions.is_empty() && !extensions.contains(&extension) {
            continue;
        }
        write!(csv, "{},{},{}", csv_field(&rel), file.size, file.hash)?;
        if with_label {
            let label = rel
                .rsplit_once('/')
                .map(|(dir, _)| dir.rsplit('/').next().unwrap_or(dir));
            write!(csv, ",{}", csv_field(label.unwrap_or("")))?;
        }
        csv.push('\n');
    }
    std::fs::write(&table, csv).with_context(|| format!("cannot write `{}`", table.display()))
}

/// Quotes a CSV field when it holds a comma, quote or newline.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn lists_files_with_labels_and_filters_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("not fractured")).unwrap();
        std::fs::create_dir_all(data.join("fractured")).unwrap();
        std::fs::write(data.join("fractured/a.PNG"), "png").unwrap();
        std::fs::write(data.join("not fractured/b,1.jpg"), "jpg").unwrap();
        std::fs::write(data.join("notes.txt"), "txt").unwrap();
        let settings: BTreeMap<String, Value> = [
            ("source".to_string(), Value::from("data")),
            ("table".to_string(), Value::from("m.csv")),
            ("extensions".to_string(), serde_json::json!(["png", "jpg"])),
            ("label_from_parent".to_string(), Value::from(true)),
        ]
        .into();
        run(&Context {
            root: dir.path(),
            stage: "m",
            settings: &settings,
            reporter: &crate::builtin::Unreported,
        })
        .unwrap();
        let csv = std::fs::read_to_string(dir.path().join("m.csv")).unwrap();
        let png = blake3::hash(b"png").to_hex();
        let jpg = blake3::hash(b"jpg").to_hex();
        assert_eq!(
            csv,
            format!(
                "path,bytes,blake3,label\nfractured/a.PNG,3,{png},fractured\n\"not fractured/b,1.jpg\",3,{jpg},not fractured\n"
            )
        );
    }
}
