//! The `report` kind: renders the run report's figures from the pipeline's outputs (see
//! `crate::report::figures`); after the run, pipe writes `runs/<id>/report/report.md` around them.

use super::Context;
use crate::report::figures::{self, Inputs};

pub(super) fn run(ctx: &Context) -> anyhow::Result<()> {
    let classes = ctx.texts("classes")?;
    let [negative, positive] = <[String; 2]>::try_from(classes.clone()).map_err(|_| {
        anyhow::anyhow!(
            "stage `{}`: `classes` must name 2 classes (negative, positive), not {}",
            ctx.stage,
            classes.len()
        )
    })?;
    let threshold = ctx.number("threshold");
    let previews = [
        ("ingest_preview", "Ingested images, one row per class"),
        (
            "augment_preview",
            "Augmentation: each row is an original, then augmented versions",
        ),
    ]
    .into_iter()
    .filter_map(|(name, caption)| {
        ctx.optional_path(name)
            .map(|p| (name.to_string(), caption.to_string(), p))
    })
    .collect();
    let inputs = Inputs {
        title: ctx.text("title").to_string(),
        classes: [negative, positive],
        validate: ctx.optional_path("validate"),
        split: ctx.optional_path("split"),
        previews,
        history: ctx.optional_path("history"),
        train: ctx.optional_path("train"),
        predictions: ctx.optional_path("predictions"),
        evaluate: ctx.optional_path("evaluate"),
        images: ctx.optional_path("images"),
        threshold,
        gallery: usize::try_from(ctx.count("gallery")?).unwrap_or(usize::MAX),
    };
    figures::render(&inputs, &ctx.output_dir("figures")?)
}
