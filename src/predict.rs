//! `pipe predict --run RUN IMAGE...`: labels new images with the model a recorded run trained. The
//! run's train stage names its store entry, which is restored into a scratch folder (the workspace is
//! left alone, whatever has run since), and the images go through the model's own preprocessing.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::builtin::train::CHECKPOINT;
use crate::images::decode;
use crate::model::dataset::ModelInfo;
use crate::model::{self, checkpoint};
use crate::run::workspace::Workspace;
use crate::store::hash::StatCache;

/// One image's prediction.
pub struct Prediction {
    /// The image.
    pub image: PathBuf,
    /// The predicted class name.
    pub class: String,
    /// The probability of the positive class.
    pub probability: f64,
}

/// Predicts `images` with the model of `run`'s train stage (`stage` when the run has several).
pub fn predict(
    ws: &Workspace,
    run: &str,
    stage: Option<&str>,
    images: &[PathBuf],
) -> anyhow::Result<(Vec<Prediction>, f64)> {
    let record = ws.runs.resolve(run).map_err(anyhow::Error::msg)?;
    let trains: Vec<_> = record
        .stages
        .iter()
        .filter(|s| s.kind == "train" && stage.is_none_or(|name| s.name == name))
        .collect();
    let train = match trains[..] {
        [one] => one,
        [] => bail!(
            "run {} has no train stage{}",
            record.id,
            stage.map(|s| format!(" named `{s}`")).unwrap_or_default()
        ),
        _ => bail!(
            "run {} has several train stages; choose one with --stage",
            record.id
        ),
    };
    let key = train
        .key
        .as_deref()
        .with_context(|| format!("stage `{}` of run {} did not finish", train.name, record.id))?;
    let entry = ws.store.lookup(key)?.with_context(|| {
        format!(
            "the store no longer has stage `{}` of run {} (removed by gc?)",
            train.name, record.id
        )
    })?;
    let scratch = scratch_dir(ws)?;
    ws.store
        .restore(&scratch, &entry, &StatCache::load(scratch.join("no-cache")))
        .map_err(|e| anyhow::anyhow!("cannot restore the model of run {}: {e:?}", record.id))?;
    let model_dir = entry
        .outputs
        .keys()
        .map(|p| scratch.join(p))
        .find(|p| p.join(CHECKPOINT).exists())
        .with_context(|| {
            format!(
                "stage `{}` of run {} wrote no {CHECKPOINT}",
                train.name, record.id
            )
        })?;
    let result = predict_with(&model_dir, images);
    let _ = std::fs::remove_dir_all(&scratch);
    let threshold = record
        .metrics
        .get("evaluate")
        .and_then(|e| e["threshold"].as_f64())
        .unwrap_or(0.5);
    let (probabilities, classes) = result?;
    let predictions = images
        .iter()
        .zip(probabilities)
        .map(|(image, probability)| Prediction {
            class: classes[usize::from(probability >= threshold)].clone(),
            image: image.clone(),
            probability,
        })
        .collect();
    Ok((predictions, threshold))
}

/// The positive-class probability of each image, and the model's class names.
fn predict_with(model_dir: &Path, images: &[PathBuf]) -> anyhow::Result<(Vec<f64>, [String; 2])> {
    let info = ModelInfo::read(model_dir)?;
    let mut net = checkpoint::load(&model_dir.join(CHECKPOINT))?;
    let inputs = images
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            let decoded = decode::decode(&bytes, u64::MAX)
                .with_context(|| format!("`{}`", path.display()))?;
            Ok(info
                .preprocess
                .tensor(&info.preprocess.resize(&decoded.grey)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let probabilities = model::probabilities(&mut net, &inputs, 32);
    Ok((probabilities, info.classes))
}

fn scratch_dir(ws: &Workspace) -> anyhow::Result<PathBuf> {
    let dir = ws
        .store
        .dir()
        .join("tmp")
        .join(format!("predict.{}", crate::util::fsutil::unique_suffix()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    Ok(dir)
}
