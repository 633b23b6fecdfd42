//! Binary classification metrics from labels and predicted probabilities: the confusion matrix at a
//! threshold and what follows from it (accuracy, precision, recall/sensitivity, specificity, F1), the ROC
//! and precision-recall curves with their areas, and the threshold that maximises Youden's J. Tied
//! scores move together, so the curves do not depend on the order of rows.

pub mod interval;

/// Counts at one threshold (a probability at or above it predicts positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Positives predicted positive.
    pub tp: u64,
    /// Negatives predicted positive.
    pub fp: u64,
    /// Negatives predicted negative.
    pub tn: u64,
    /// Positives predicted negative.
    pub fn_: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Confusion {
    /// Counts for `scores` against `labels` at `threshold`.
    pub fn at(labels: &[bool], scores: &[f64], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for (&label, &score) in labels.iter().zip(scores) {
            match (label, score >= threshold) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
                (true, false) => c.fn_ += 1,
            }
        }
        c
    }

    /// All images.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Right answers over all.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.total())
    }

    /// Of those predicted positive, how many are.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Of the positives, how many were found (sensitivity).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Of the negatives, how many were called negative.
    pub fn specificity(&self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

/// A point of a curve and the threshold that gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// x: false positive rate (ROC) or recall (PR).
    pub x: f64,
    /// y: true positive rate (ROC) or precision (PR).
    pub y: f64,
    /// Scores at or above this are positive.
    pub threshold: f64,
}

/// Confusion counts at every distinct score, highest threshold first.
fn sweep(labels: &[bool], scores: &[f64]) -> Vec<(f64, Confusion)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = labels.iter().filter(|&&l| l).count() as u64;
    let negatives = labels.len() as u64 - positives;
    let mut c = Confusion {
        tp: 0,
        fp: 0,
        tn: negatives,
        fn_: positives,
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]].total_cmp(&threshold).is_eq() {
            if labels[order[i]] {
                c.tp += 1;
                c.fn_ -= 1;
            } else {
                c.fp += 1;
                c.tn -= 1;
            }
            i += 1;
        }
        out.push((threshold, c));
    }
    out
}

/// The ROC curve from (0, 0) to (1, 1).
pub fn roc(labels: &[bool], scores: &[f64]) -> Vec<CurvePoint> {
    let mut points = vec![CurvePoint {
        x: 0.0,
        y: 0.0,
        threshold: f64::INFINITY,
    }];
    points.extend(
        sweep(labels, scores)
            .into_iter()
            .map(|(threshold, c)| CurvePoint {
                x: 1.0 - c.specificity(),
                y: c.recall(),
                threshold,
            }),
    );
    points
}

/// The precision-recall curve, from the highest threshold down.
pub fn precision_recall(labels: &[bool], scores: &[f64]) -> Vec<CurvePoint> {
    sweep(labels, scores)
        .into_iter()
        .map(|(threshold, c)| CurvePoint {
            x: c.recall(),
            y: c.precision(),
            threshold,
        })
        .collect()
}

/// Whether both classes are present, so that ROC AUC and average precision mean something.
pub fn both_classes(labels: &[bool]) -> bool {
    labels.iter().any(|&l| l) && labels.iter().any(|&l| !l)
}

/// Area under a curve by the trapezoid rule (ROC AUC for [`roc`]).
pub fn area(points: &[CurvePoint]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].x - w[0].x) * (w[1].y + w[0].y) / 2.0)
        .sum()
}

/// Average precision: precision at each threshold weighted by the recall it adds.
pub fn average_precision(points: &[CurvePoint]) -> f64 {
    let mut previous = 0.0;
    let mut sum = 0.0;
    for p in points {
        sum += (p.x - previous) * p.y;
        previous = p.x;
    }
    sum
}

/// The threshold that maximises sensitivity + specificity - 1 (0.5 when there is no data).
pub fn youden_threshold(labels: &[bool], scores: &[f64]) -> f64 {
    sweep(labels, scores)
        .into_iter()
        .map(|(t, c)| (c.recall() + c.specificity() - 1.0, t))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(0.5, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_and_its_ratios() {
        let labels = [true, true, true, false, false, false, false];
        let scores = [0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.05];
        let c = Confusion::at(&labels, &scores, 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 3,
                fn_: 1
            }
        );
        assert!((c.accuracy() - 5.0 / 7.0).abs() < 1e-12);
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.specificity() - 0.75).abs() < 1e-12);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn auc_matches_the_pairwise_definition_with_ties() {
        let labels = [true, false, true, false, true, false];
        let scores = [0.8, 0.8, 0.6, 0.4, 0.3, 0.1];
        // P(score+ > score-) + P(tie)/2 over 9 pairs: 0.8 vs {0.8 tie, 0.4, 0.1} = 2.5, 0.6: 2, 0.3: 1.
        let expected = (2.5 + 2.0 + 1.0) / 9.0;
        assert!((area(&roc(&labels, &scores)) - expected).abs() < 1e-12);
        let perfect = area(&roc(&[true, false], &[0.9, 0.1]));
        assert!((perfect - 1.0).abs() < 1e-12);
        let pr = precision_recall(&labels, &scores);
        assert_eq!(pr.last().unwrap().x, 1.0);
        assert!(average_precision(&pr) > 0.5);
    }

    #[test]
    fn youden_picks_the_separating_threshold() {
        let labels = [false, false, false, true, true, true];
        let scores = [0.1, 0.2, 0.3, 0.35, 0.8, 0.9];
        assert_eq!(youden_threshold(&labels, &scores), 0.35);
    }
}
