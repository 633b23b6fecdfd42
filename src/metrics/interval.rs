//! Bootstrap 95% intervals for the headline metrics. Test images are resampled by group (copies, a
//! declared group or a patient's films move together, as the split moved them), so an interval reflects
//! how many independent cases a number rests on, not how many files. Percentile intervals from a fixed
//! number of seeded resamples: the same predictions always give the same interval.

use serde::Serialize;

use super::{Confusion, area, both_classes, roc};
use crate::util::rng::Rng;

/// Resamples per interval: enough that the 2.5% and 97.5% quantiles move by well under a point.
pub const RESAMPLES: usize = 2000;

/// A 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The 2.5% quantile of the resampled metric.
    pub low: f64,
    /// The 97.5% quantile.
    pub high: f64,
}

/// The intervals of the metrics a report leads with, at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intervals {
    /// Always 0.95.
    pub level: f64,
    /// Resamples drawn.
    pub resamples: usize,
    /// Independent units resampled (groups; an image without one is its own).
    pub groups: usize,
    /// Accuracy's interval.
    pub accuracy: Interval,
    /// Recall's (sensitivity's); `None` without positives.
    pub recall: Option<Interval>,
    /// Specificity's; `None` without negatives.
    pub specificity: Option<Interval>,
    /// ROC AUC's; `None` unless both classes are present.
    pub roc_auc: Option<Interval>,
}

/// Intervals for `scores` against `labels` at `threshold`, resampling the groups named by `groups`
/// (one name per image) `resamples` times with `seed`. `None` for no images.
pub fn bootstrap(
    labels: &[bool],
    scores: &[f64],
    groups: &[&str],
    threshold: f64,
    resamples: usize,
    seed: u64,
) -> Option<Intervals> {
    let units = units(groups);
    if units.is_empty() || resamples == 0 {
        return None;
    }
    let (mut accuracy, mut recall, mut specificity, mut roc_auc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut y, mut s) = (Vec::new(), Vec::new());
    for r in 0..resamples {
        let mut rng = Rng::derive(seed, "bootstrap", 0, r as u64);
        y.clear();
        s.clear();
        for _ in 0..units.len() {
            for &i in &units[rng.below(units.len())] {
                y.push(labels[i]);
                s.push(scores[i]);
            }
        }
        let c = Confusion::at(&y, &s, threshold);
        accuracy.push(c.accuracy());
        if c.tp + c.fn_ > 0 {
            recall.push(c.recall());
        }
        if c.tn + c.fp > 0 {
            specificity.push(c.specificity());
        }
        if both_classes(&y) {
            roc_auc.push(area(&roc(&y, &s)));
        }
    }
    let has = |wanted: bool| labels.contains(&wanted);
    Some(Intervals {
        level: 0.95,
        resamples,
        groups: units.len(),
        accuracy: percentiles(accuracy)?,
        recall: percentiles(recall).filter(|_| has(true)),
        specificity: percentiles(specificity).filter(|_| has(false)),
        roc_auc: percentiles(roc_auc).filter(|_| has(true) && has(false)),
    })
}

/// The images of each group, in first-seen order.
fn units(groups: &[&str]) -> Vec<Vec<usize>> {
    let mut index = std::collections::HashMap::new();
    let mut units: Vec<Vec<usize>> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let unit = *index.entry(*group).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[unit].push(i);
    }
    units
}

/// The 2.5% and 97.5% quantiles (nearest rank) of `values`; `None` when there are none.
fn percentiles(mut values: Vec<f64>) -> Option<Interval> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at =
        |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    Some(Interval {
        low: at(0.025),
        high: at(0.975),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize, per_group: usize) -> Vec<String> {
        (0..n).map(|i| format!("g{}", i / per_group)).collect()
    }

    #[test]
    fn an_interval_holds_the_estimate_and_narrows_with_more_cases() {
        // 80% right, as 100 and as 1,000 independent images.
        let width = |n: usize| {
            let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
            let scores: Vec<f64> = (0..n)
                .map(|i| if (i % 10 < 8) == labels[i] { 0.9 } else { 0.1 })
                .collect();
            let groups = names(n, 1);
            let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            let got = bootstrap(&labels, &scores, &refs, 0.5, RESAMPLES, 1).unwrap();
            assert!(got.accuracy.low < 0.8 && 0.8 < got.accuracy.high, "{got:?}");
            assert_eq!(got.groups, n);
            got.accuracy.high - got.accuracy.low
        };
        let (small, large) = (width(100), width(1000));
        // The binomial standard error: 0.04 at 100 images (a width of about 0.16), 0.0126 at 1,000.
        assert!((0.12..0.20).contains(&small), "{small}");
        assert!((0.035..0.065).contains(&large), "{large}");
    }

    #[test]
    fn copies_resampled_together_widen_the_interval() {
        // The same 1,000 predictions, as 1,000 images or as 100 groups of 10 copies that share an
        // outcome: the second rests on 100 cases, so its interval is about sqrt(10) times wider.
        let labels: Vec<bool> = (0..1000).map(|i| (i / 10) % 2 == 0).collect();
        let scores: Vec<f64> = (0..1000)
            .map(|i| {
                if ((i / 10) % 10 < 8) == labels[i] {
                    0.9
                } else {
                    0.1
                }
            })
            .collect();
        let width = |per_group: usize| {
            let groups = names(1000, per_group);
            let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            let got = bootstrap(&labels, &scores, &refs, 0.5, RESAMPLES, 1).unwrap();
            got.accuracy.high - got.accuracy.low
        };
        assert!(width(10) > 2.5 * width(1), "{} vs {}", width(10), width(1));
    }

    #[test]
    fn metrics_without_their_class_have_no_interval_and_seeds_repeat() {
        let labels = [true, true, true, true];
        let scores = [0.9, 0.8, 0.2, 0.7];
        let refs = ["a", "b", "c", "d"];
        let got = bootstrap(&labels, &scores, &refs, 0.5, 500, 3).unwrap();
        assert!(got.recall.is_some());
        assert_eq!((got.specificity, got.roc_auc), (None, None));
        assert_eq!(Some(got), bootstrap(&labels, &scores, &refs, 0.5, 500, 3));
        assert_eq!(bootstrap(&[], &[], &[], 0.5, 500, 3), None);
    }
}
