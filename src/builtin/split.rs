//! The `split` kind: assigns every validated image to train, val or test. `group` (the default) keeps
//! each duplicate group, declared group and patient in one split, so no test image has a copy in train;
//! `random` splits image by image; `given` keeps the source's folders. `group` and `random` are
//! stratified by class and seeded. The summary counts images per split and class and how many val/test
//! images have a copy or near copy in train, which is the honest number to read beside any accuracy.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::bail;
use polars::prelude::{Column, DataFrame};
use serde_json::{Value, json};

use super::Context;
use crate::tables;
use crate::tables::image_rows::{self, ImageRow};
use crate::util::disjoint_sets::DisjointSets;
use crate::util::rng::Rng;

const SPLITS: [&str; 3] = ["train", "val", "test"];

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let mut rows = image_rows::read(&ctx.path("validated").join("clean.parquet"))?;
    let mode = ctx.text("mode");
    let fractions = [ctx.number("val"), ctx.number("test")];
    if fractions.iter().any(|f| !(0.0..1.0).contains(f)) || fractions[0] + fractions[1] >= 1.0 {
        bail!(
            "stage `{}`: `val` ({}) and `test` ({}) must each be at least 0 and add up to less than 1",
            ctx.stage,
            fractions[0],
            fractions[1]
        );
    }
    let seed = ctx.count("seed")?;
    if rows.is_empty() {
        bail!(
            "stage `{}`: validate kept no images; its exclusions table says why",
            ctx.stage
        );
    }
    match mode {
        "given" => keep_given(&mut rows)?,
        "random" => {
            let units = (0..rows.len()).map(|i| vec![i]).collect();
            stratified(
                &mut rows,
                units,
                fractions,
                seed,
                ("images", ", or add images"),
            )?
        }
        "group" => {
            let units = linked_units(&rows);
            stratified(
                &mut rows,
                units,
                fractions,
                seed,
                (
                    "independent groups of images (copies, declared groups and patients stay together)",
                    ", use mode `random`, or add images",
                ),
            )?
        }
        other => unreachable!("stages/split.yaml allows no mode `{other}`"),
    }
    let dir = ctx.output_dir("tables")?;
    tables::write(&mut image_rows::to_frame(&rows), &dir, "split")?;
    tables::write_csv(&mut counts_frame(&rows), &dir.join("counts.csv"))?;
    let summary = summary(&rows, mode, seed, fractions);
    ctx.log(&describe(&summary));
    ctx.write_json("summary", &summary)
}

/// `given`: the source's split for every image.
fn keep_given(rows: &mut [ImageRow]) -> anyhow::Result<()> {
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| r.given_split.is_none())
        .map(|r| r.path.as_str())
        .collect();
    if let Some(first) = missing.first() {
        bail!(
            "mode `given` keeps the source's split, but {} images have none (first: `{first}`); \
             use mode `group` or `random`",
            missing.len()
        );
    }
    for row in rows.iter_mut() {
        row.split = row.given_split.clone();
    }
    Ok(())
}

/// Images that must share a split: linked by duplicate group, declared group or patient.
fn linked_units(rows: &[ImageRow]) -> Vec<Vec<usize>> {
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut sets = DisjointSets::new(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let links = [
            row.duplicate_group
                .as_ref()
                .map(|g| format!("duplicate:{g}")),
            row.group.as_ref().map(|g| format!("group:{g}")),
            row.patient.as_ref().map(|p| format!("patient:{p}")),
        ];
        for link in links.into_iter().flatten() {
            let first = *owner.entry(link).or_insert(i);
            sets.union(first, i);
        }
    }
    sets.sets()
}

/// Assigns whole units to splits, class by class (a unit counts for its most common class), so each
/// split gets close to its fraction of each class. `what` names the units in errors.
fn stratified(
    rows: &mut [ImageRow],
    units: Vec<Vec<usize>>,
    [val, test]: [f64; 2],
    seed: u64,
    (what, advice): (&str, &str),
) -> anyhow::Result<()> {
    let mut by_class: BTreeMap<String, Vec<Vec<usize>>> = BTreeMap::new();
    for unit in units {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in &unit {
            *votes.entry(&rows[i].class).or_default() += 1;
        }
        let class = votes
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(c, _)| c.to_string())
            .expect("units are not empty");
        by_class.entry(class).or_default().push(unit);
    }
    let mut rng = Rng::new(seed);
    let wanted: Vec<usize> = [(val, 1), (test, 2)]
        .iter()
        .filter(|(f, _)| *f > 0.0)
        .map(|(_, s)| *s)
        .collect();
    for (class, mut units) in by_class {
        if units.len() < wanted.len() + 1 {
            bail!(
                "class `{class}` has {} {what}; a split into train{} needs at least {}. \
                 Lower `val` or `test` to 0{advice}",
                units.len(),
                wanted
                    .iter()
                    .map(|&s| format!(", {}", SPLITS[s]))
                    .collect::<String>(),
                wanted.len() + 1
            );
        }
        rng.shuffle(&mut units);
        let total: usize = units.iter().map(Vec::len).sum();
        let targets = [
            total as f64 * (1.0 - val - test),
            total as f64 * val,
            total as f64 * test,
        ];
        let mut filled = [0usize; 3];
        let mut assign = |unit: &[usize], split: usize, filled: &mut [usize; 3]| {
            for &i in unit {
                rows[i].split = Some(SPLITS[split].to_string());
            }
            filled[split] += unit.len();
        };
        // One unit for each held-out split first, so none is empty; then each unit to the split
        // furthest below its target.
        let mut rest = units.iter();
        for &split in &wanted {
            assign(rest.next().expect("counted above"), split, &mut filled);
        }
        for unit in rest {
            let split = (0..3)
                .filter(|&s| targets[s] > 0.0)
                .max_by(|&a, &b| {
                    let gap = |s: usize| (targets[s] - filled[s] as f64) / targets[s];
                    gap(a).total_cmp(&gap(b)).then(b.cmp(&a))
                })
                .expect("train always has a target");
            assign(unit, split, &mut filled);
        }
    }
    Ok(())
}

fn counts_frame(rows: &[ImageRow]) -> DataFrame {
    let mut counts: BTreeMap<(usize, &str), i64> = BTreeMap::new();
    for row in rows {
        let split = SPLITS
            .iter()
            .position(|s| Some(*s) == row.split.as_deref())
            .unwrap_or(3);
        *counts.entry((split, &row.class)).or_default() += 1;
    }
    let name = |s: usize| SPLITS.get(s).copied().unwrap_or("none");
    DataFrame::new(
        counts.len(),
        vec![
            Column::new(
                "split".into(),
                counts.keys().map(|(s, _)| name(*s)).collect::<Vec<_>>(),
            ),
            Column::new(
                "class".into(),
                counts.keys().map(|(_, c)| *c).collect::<Vec<_>>(),
            ),
            Column::new(
                "images".into(),
                counts.values().copied().collect::<Vec<_>>(),
            ),
        ],
    )
    .expect("equal columns")
}

fn summary(rows: &[ImageRow], mode: &str, seed: u64, [val, test]: [f64; 2]) -> Value {
    let train_groups: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.split.as_deref() == Some("train"))
        .filter_map(|r| r.duplicate_group.as_deref())
        .collect();
    let leaked = |split: &str| {
        rows.iter()
            .filter(|r| r.split.as_deref() == Some(split))
            .filter(|r| {
                r.duplicate_group
                    .as_deref()
                    .is_some_and(|g| train_groups.contains(g))
            })
            .count()
    };
    let mut counts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut images: BTreeMap<&str, usize> = BTreeMap::new();
    for row in rows {
        let split = row.split.as_deref().unwrap_or("none");
        *counts
            .entry(split)
            .or_default()
            .entry(&row.class)
            .or_default() += 1;
        *images.entry(split).or_default() += 1;
    }
    json!({
        "mode": mode,
        "seed": seed,
        "fractions": if mode == "given" { Value::Null } else { json!({"val": val, "test": test}) },
        "images": images,
        "counts": counts,
        "leaked_test_images": leaked("test"),
        "leaked_val_images": leaked("val"),
    })
}

fn describe(summary: &Value) -> String {
    let images = &summary["images"];
    let n = |split: &str| images[split].as_u64().unwrap_or(0);
    let mut text = format!(
        "split `{}`: train {}, val {}, test {} images; per class: {}",
        summary["mode"].as_str().unwrap_or_default(),
        n("train"),
        n("val"),
        n("test"),
        summary["counts"]
    );
    let leaked = summary["leaked_test_images"].as_u64().unwrap_or(0);
    if leaked > 0 {
        text.push_str(&format!(
            "\nwarning: {leaked} of {} test images have a copy or near copy in train; test accuracy on this split \
             measures memory, not generalisation (use mode `group`)",
            n("test")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(classes: &[(&str, usize)]) -> Vec<ImageRow> {
        classes
            .iter()
            .flat_map(|(class, n)| {
                (0..*n).map(move |i| ImageRow {
                    path: format!("{class}/{i}.png"),
                    class: class.to_string(),
                    hash: format!("{class}{i}"),
                    ..Default::default()
                })
            })
            .collect()
    }

    #[test]
    fn stratified_split_hits_fractions_per_class() {
        let mut r = rows(&[("a", 100), ("b", 40)]);
        let units = (0..r.len()).map(|i| vec![i]).collect();
        stratified(&mut r, units, [0.15, 0.15], 1, ("images", "")).unwrap();
        let count = |class: &str, split: &str| {
            r.iter()
                .filter(|x| x.class == class && x.split.as_deref() == Some(split))
                .count()
        };
        assert_eq!(
            (count("a", "train"), count("a", "val"), count("a", "test")),
            (70, 15, 15)
        );
        assert_eq!(
            (count("b", "train"), count("b", "val"), count("b", "test")),
            (28, 6, 6)
        );
    }

    #[test]
    fn groups_stay_together_and_too_few_groups_is_an_error() {
        let mut r = rows(&[("a", 30)]);
        for (i, row) in r.iter_mut().enumerate() {
            row.duplicate_group = Some(format!("g{}", i % 5));
        }
        let units = linked_units(&r);
        assert_eq!(units.len(), 5);
        stratified(&mut r, units, [0.2, 0.2], 3, ("groups", "")).unwrap();
        for g in 0..5 {
            let splits: BTreeSet<_> = r
                .iter()
                .filter(|x| x.duplicate_group.as_deref() == Some(&format!("g{g}")))
                .map(|x| x.split.clone())
                .collect();
            assert_eq!(splits.len(), 1);
        }
        let mut two = rows(&[("a", 2)]);
        let units = linked_units(&two);
        let err = stratified(&mut two, units, [0.1, 0.1], 1, ("groups", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("class `a` has 2 groups") && err.contains("at least 3"),
            "{err}"
        );
    }
}
