//! Classifier plots: the confusion matrix as a heat map (counts and row percentages, class names on
//! the axes) and the ROC and precision-recall curves side by side with the chosen threshold marked.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{GREY, PALETTE, legend, render, text};
use crate::metrics::CurvePoint;

/// Draws `counts[true class][predicted class]` with `classes` as names, 620 x 560 pixels.
pub fn confusion_matrix(
    path: &Path,
    classes: &[String],
    counts: &[Vec<u64>],
    title: &str,
) -> anyhow::Result<()> {
    let n = classes.len().max(1) as i32;
    render(path, (620, 560), |area| {
        area.fill(&WHITE)?;
        let (left, top, cell) = (170, 80, 380 / n);
        let centre = |i: i32| i * cell + cell / 2;
        area.draw_text(
            title,
            &text(22).pos(Pos::new(HPos::Center, VPos::Top)),
            (310, 16),
        )?;
        area.draw_text(
            "predicted",
            &text(18).pos(Pos::new(HPos::Center, VPos::Top)),
            (left + n * cell / 2, top + n * cell + 40),
        )?;
        area.draw_text(
            "true",
            &text(18)
                .pos(Pos::new(HPos::Center, VPos::Center))
                .transform(FontTransform::Rotate270),
            (24, top + n * cell / 2),
        )?;
        for (t, row) in counts.iter().enumerate() {
            let total: u64 = row.iter().sum();
            for (p, &count) in row.iter().enumerate() {
                let share = if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                };
                // From white to the palette's blue by row share; dark cells get white text.
                let shade = |c: u8| (255.0 - (255.0 - f64::from(c)) * share) as u8;
                let fill = RGBColor(
                    shade(PALETTE[0].0),
                    shade(PALETTE[0].1),
                    shade(PALETTE[0].2),
                );
                let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
                area.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))?;
                area.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200),
                ))?;
                let ink = if share > 0.55 { WHITE } else { BLACK };
                let style = |size| {
                    text(size)
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center))
                };
                area.draw_text(
                    &count.to_string(),
                    &style(30),
                    (x + cell / 2, y + cell / 2 - 14),
                )?;
                area.draw_text(
                    &format!("{:.1}% of row", 100.0 * share),
                    &style(16),
                    (x + cell / 2, y + cell / 2 + 18),
                )?;
            }
        }
        for (i, name) in classes.iter().enumerate() {
            let i = i as i32;
            area.draw_text(
                name,
                &text(16).pos(Pos::new(HPos::Center, VPos::Top)),
                (left + centre(i), top + n * cell + 10),
            )?;
            area.draw_text(
                name,
                &text(16).pos(Pos::new(HPos::Right, VPos::Center)),
                (left - 10, top + centre(i)),
            )?;
        }
        Ok(())
    })
}

/// The curves and where the threshold in use falls on each.
pub struct Curves<'a> {
    /// ROC points, (0,0) to (1,1).
    pub roc: &'a [CurvePoint],
    /// Its area (`None` when only one class is present).
    pub roc_auc: Option<f64>,
    /// Precision-recall points.
    pub pr: &'a [CurvePoint],
    /// Average precision (`None` when only one class is present).
    pub average_precision: Option<f64>,
    /// Share of positives (the precision of guessing).
    pub prevalence: f64,
    /// The threshold whose points are marked.
    pub threshold: f64,
}

/// An area for a title: three decimals, or why there is none.
fn shown(area: Option<f64>) -> String {
    area.map_or("n/a: one class only".into(), |a| format!("{a:.3}"))
}

/// Draws ROC (left) and precision-recall (right), 1100 x 500 pixels.
pub fn roc_and_pr(path: &Path, curves: &Curves) -> anyhow::Result<()> {
    render(path, (1100, 500), |area| {
        area.fill(&WHITE)?;
        let panels = area.split_evenly((1, 2));
        let marked = |points: &[CurvePoint]| {
            points
                .iter()
                .rev()
                .find(|p| p.threshold >= curves.threshold)
                .copied()
        };
        let specs = [
            (
                format!("ROC curve (AUC {})", shown(curves.roc_auc)),
                "false positive rate (1 - specificity)",
                "true positive rate (sensitivity)",
                curves.roc,
                [(0.0, 0.0), (1.0, 1.0)],
                "chance",
            ),
            (
                format!("Precision-recall (AP {})", shown(curves.average_precision)),
                "recall (sensitivity)",
                "precision",
                curves.pr,
                [(0.0, curves.prevalence), (1.0, curves.prevalence)],
                "prevalence",
            ),
        ];
        for (panel, (title, x_desc, y_desc, points, baseline, baseline_name)) in
            panels.iter().zip(specs)
        {
            let mut chart = ChartBuilder::on(panel)
                .caption(title, text(22))
                .margin(14)
                .x_label_area_size(48)
                .y_label_area_size(64)
                .build_cartesian_2d(0.0..1.0, 0.0..1.02)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style(text(15))
                .axis_desc_style(text(16))
                .light_line_style(TRANSPARENT)
                .draw()?;
            chart
                .draw_series(DashedLineSeries::new(baseline, 6, 4, GREY.stroke_width(2)))?
                .label(baseline_name)
                .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], GREY.stroke_width(2)));
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.x, p.y)),
                    PALETTE[0].stroke_width(3),
                ))?
                .label("model")
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 24, y)], PALETTE[0].stroke_width(3))
                });
            if let Some(p) = marked(points) {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (p.x, p.y),
                        7,
                        PALETTE[1].filled(),
                    )))?
                    .label(format!("threshold {:.2}", curves.threshold))
                    .legend(|(x, y)| Circle::new((x + 12, y), 6, PALETTE[1].filled()));
            }
            legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{area, average_precision, precision_recall, roc};
    use crate::plot::tests::assert_png;

    #[test]
    fn heat_map_and_curves_render() {
        let dir = tempfile::tempdir().unwrap();
        let classes = vec!["not fractured".to_string(), "fractured".to_string()];
        let path = dir.path().join("cm.png");
        confusion_matrix(
            &path,
            &classes,
            &[vec![40, 5], vec![3, 52]],
            "Confusion matrix (test split)",
        )
        .unwrap();
        assert_png(&path, (620, 560));
        let labels: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..40)
            .map(|i| {
                if i % 3 == 0 {
                    0.5 + (i % 7) as f64 / 14.0
                } else {
                    (i % 11) as f64 / 12.0
                }
            })
            .collect();
        let (r, p) = (roc(&labels, &scores), precision_recall(&labels, &scores));
        let curves = Curves {
            roc: &r,
            roc_auc: Some(area(&r)),
            pr: &p,
            average_precision: Some(average_precision(&p)),
            prevalence: 1.0 / 3.0,
            threshold: 0.5,
        };
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        roc_and_pr(&a, &curves).unwrap();
        roc_and_pr(&b, &curves).unwrap();
        assert_png(&a, (1100, 500));
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }
}
