//! The second copy detector: nearest neighbours in a pretrained network's embedding space. Every kept
//! image is embedded (the pooled features MobileNetV2's head reads, L2-normalised); two images are
//! copies when their cosine similarity (centred on the dataset's mean) reaches a threshold. Each run
//! measures what that threshold catches: copies the detector makes of the dataset's own images
//! (turned a few degrees, cropped, re-encoded, re-exposed, mirrored, shrunk: see [`copies`]), and the
//! pairs the difference hash found (known copies). It catches what the difference hash does not (small
//! turns, crops, re-encoding), the difference hash catches what it may not (quarter turns, heavy
//! edits); validate groups the pairs of both. The default threshold, and why not lower, is in
//! docs/fracture-data.md.

use std::path::Path;

use image::GrayImage;
use rayon::prelude::*;
use serde::Serialize;

use crate::images::copies;
use crate::images::preprocess::{Normalize, Preprocess, Resize};
use crate::model;
use crate::util::rng::Rng;

/// Width of the similarity histogram's bins.
const BIN: f32 = 0.01;

/// How the detector runs.
pub(super) struct Settings<'a> {
    /// The pretrained weights file.
    pub weights: &'a Path,
    /// Its name as the pipeline gave it, for the summary.
    pub name: &'a str,
    /// The side images are embedded at (a thumbnail of every image at this size is its input).
    pub side: u32,
    /// Copies made to measure what the threshold catches.
    pub copies: usize,
    /// The least similarity of two copies.
    pub threshold: f32,
}

impl Settings<'_> {
    /// The thumbnail the detector embeds, from a decoded grey image.
    pub fn thumbnail(side: u32, grey: &GrayImage) -> GrayImage {
        preprocess(side).resize(grey)
    }
}

fn preprocess(side: u32) -> Preprocess {
    Preprocess {
        size: side,
        resize: Resize::Stretch,
        normalize: Normalize::Symmetric,
    }
}

/// What the detector found.
#[derive(Debug, Serialize)]
pub(super) struct Found {
    /// The weights file, as given.
    pub weights: String,
    /// The embedding side.
    pub side: u32,
    /// The cosine similarity at or above which two images are copies.
    pub threshold: f32,
    /// Each made copy's similarity to its original.
    #[serde(skip)]
    pub copy_similarity: Vec<f32>,
    /// The similarity of each pair the other detector found.
    #[serde(skip)]
    pub known_similarity: Vec<f32>,
    /// Each image's similarity to its nearest other image.
    #[serde(skip)]
    pub nearest: Vec<f32>,
    /// Pairs (i < j) at or above the threshold, with their similarity.
    #[serde(skip)]
    pub pairs: Vec<Pair>,
}

impl Found {
    /// The calibration and the distributions, for the stage's summary and the report's histogram.
    pub fn summary(&self) -> serde_json::Value {
        let caught = self
            .copy_similarity
            .iter()
            .filter(|&&s| s >= self.threshold)
            .count();
        let above = self
            .nearest
            .iter()
            .filter(|&&s| s >= self.threshold)
            .count();
        let by_edit: Vec<serde_json::Value> = copies::EDITS
            .iter()
            .enumerate()
            .map(|(k, edit)| {
                let of_edit: Vec<f32> = self
                    .copy_similarity
                    .iter()
                    .skip(k)
                    .step_by(copies::EDITS.len())
                    .copied()
                    .collect();
                let caught = of_edit.iter().filter(|&&s| s >= self.threshold).count();
                serde_json::json!({
                    "edit": edit,
                    "made": of_edit.len(),
                    "caught": caught,
                    "similarity": quantiles(&of_edit),
                })
            })
            .collect();
        serde_json::json!({
            "weights": self.weights,
            "side": self.side,
            "threshold": self.threshold,
            "copies_made": self.copy_similarity.len(),
            "copies_caught": caught,
            "by_edit": by_edit,
            "copy_similarity": quantiles(&self.copy_similarity),
            "known_copies": self.known_similarity.len(),
            "known_copies_caught": self.known_similarity.iter().filter(|&&s| s >= self.threshold).count(),
            "known_similarity": quantiles(&self.known_similarity),
            "nearest_similarity": quantiles(&self.nearest),
            "images_with_a_copy": above,
            "pairs": self.pairs.len(),
            "histogram": {
                "bin": BIN,
                "nearest": histogram(&self.nearest),
                "copies": histogram(&self.copy_similarity),
                "known": histogram(&self.known_similarity),
            },
        })
    }
}

/// Embeds `thumbnails` (each `settings.side` square) and finds the pairs of copies among them; `known`
/// are pairs found otherwise, whose similarity is measured too.
pub(super) fn detect(
    thumbnails: &[GrayImage],
    settings: &Settings,
    known: &[(usize, usize)],
) -> anyhow::Result<Found> {
    let mut net = crate::weights::load(settings.weights)?;
    net.config.input = settings.side as usize;
    let pre = preprocess(settings.side);
    let mut embed = |images: &[GrayImage]| -> Vec<Vec<f32>> {
        let inputs: Vec<Vec<f32>> = images.par_iter().map(|i| pre.tensor(i)).collect();
        model::embeddings(&mut net, &inputs, 64)
    };
    // Centred on the dataset's mean: features after ReLU are all positive, so raw cosines of any two
    // images are high; what tells a copy from a look-alike is how each differs from the average image.
    let mut embeddings = embed(thumbnails);
    let mean = mean(&embeddings);
    let centre = |e: &mut Vec<f32>| {
        e.iter_mut().zip(&mean).for_each(|(x, m)| *x -= m);
        normalise(e);
    };
    embeddings.par_iter_mut().for_each(centre);
    let count = settings.copies.min(thumbnails.len());
    let originals: Vec<usize> = (0..count).map(|k| k * thumbnails.len() / count).collect();
    let made: Vec<GrayImage> = originals
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            copies::copy(
                &thumbnails[i],
                k,
                &mut Rng::derive(0, "copies", 0, k as u64),
            )
        })
        .collect();
    let mut made = embed(&made);
    made.par_iter_mut().for_each(centre);
    let copy_similarity: Vec<f32> = made
        .iter()
        .zip(&originals)
        .map(|(e, &i)| dot(e, &embeddings[i]))
        .collect();
    let known_similarity = known
        .iter()
        .map(|&(i, j)| dot(&embeddings[i], &embeddings[j]))
        .collect();
    let threshold = settings.threshold;
    let (nearest, pairs) = neighbours(&embeddings, threshold);
    Ok(Found {
        weights: settings.name.to_string(),
        side: settings.side,
        threshold,
        copy_similarity,
        known_similarity,
        nearest,
        pairs,
    })
}

/// Each embedding's similarity to its nearest other, and every pair at or above `threshold`.
/// A pair of images and their similarity.
type Pair = (usize, usize, f32);

fn neighbours(embeddings: &[Vec<f32>], threshold: f32) -> (Vec<f32>, Vec<Pair>) {
    let rows: Vec<(f32, Vec<Pair>)> = (0..embeddings.len())
        .into_par_iter()
        .map(|i| {
            let mut nearest = f32::NEG_INFINITY;
            let mut pairs = Vec::new();
            for (j, other) in embeddings.iter().enumerate() {
                if j == i {
                    continue;
                }
                let s = dot(&embeddings[i], other);
                nearest = nearest.max(s);
                if j > i && s >= threshold {
                    pairs.push((i, j, s));
                }
            }
            (nearest, pairs)
        })
        .collect();
    let nearest = rows.iter().map(|(n, _)| *n).collect();
    (nearest, rows.into_iter().flat_map(|(_, p)| p).collect())
}

fn mean(rows: &[Vec<f32>]) -> Vec<f32> {
    let mut sum = vec![0.0f64; rows.first().map_or(0, Vec::len)];
    for row in rows {
        sum.iter_mut()
            .zip(row)
            .for_each(|(s, &x)| *s += f64::from(x));
    }
    sum.iter()
        .map(|s| (s / rows.len().max(1) as f64) as f32)
        .collect()
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A dot product in 8 lanes, so the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The value below which a share `q` of `values` lie (nearest rank, rounding down); `None` for none.
fn lower_quantile(values: &[f32], q: f64) -> Option<f32> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let rank = ((q * sorted.len() as f64).floor() as usize).min(sorted.len().checked_sub(1)?);
    Some(sorted[rank])
}

fn quantiles(values: &[f32]) -> serde_json::Value {
    let at = |q| lower_quantile(values, q);
    serde_json::json!({"min": at(0.0), "p01": at(0.01), "median": at(0.5), "p99": at(0.99), "max": at(1.0)})
}

/// Counts per bin of width [`BIN`] from 0 to 1 (similarities below 0 count in the first).
fn histogram(values: &[f32]) -> Vec<u64> {
    let bins = (1.0 / BIN).round() as usize;
    let mut counts = vec![0; bins];
    for &v in values {
        counts[((v / BIN) as usize).min(bins - 1)] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_finds_each_nearest_and_the_pairs_over_the_threshold() {
        let mut e = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.99, 0.14, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        e.iter_mut().for_each(|v| normalise(v));
        let (nearest, pairs) = neighbours(&e, 0.95);
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].0, pairs[0].1), (0, 1));
        assert!(nearest[0] > 0.98 && nearest[2] < 0.2, "{nearest:?}");
    }

    #[test]
    fn quantiles_and_histograms() {
        let values: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        assert_eq!(lower_quantile(&values, 0.02), Some(0.02));
        assert_eq!(lower_quantile(&values, 0.0), Some(0.0));
        assert_eq!(lower_quantile(&[], 0.5), None);
        let h = histogram(&[0.0, 0.005, 0.999, 1.0, -0.3]);
        assert_eq!((h[0], h[99], h.iter().sum::<u64>()), (3, 2, 5));
        assert!((dot(&[1.0; 11], &[2.0; 11]) - 22.0).abs() < 1e-6);
    }
}
