//! Bar charts of counts: one group of bars per category, one bar per series (e.g. images per split,
//! one bar per class), with the count written on each bar.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{PALETTE, legend, render, text};

/// Draws `values[series][category]`, 900 x 440 pixels.
pub fn grouped(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<u64>)],
) -> anyhow::Result<()> {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = categories.len().max(1) as f64;
    render(path, (900, 440), |area| {
        area.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(area)
            .caption(title, text(22))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..max * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(y_label)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(text(15))
            .axis_desc_style(text(17))
            .light_line_style(TRANSPARENT)
            .draw()?;
        let width = 0.8 / series.len().max(1) as f64;
        for (s, (name, values)) in series.iter().enumerate() {
            let colour = PALETTE[s % PALETTE.len()];
            let left = |c: usize| c as f64 - 0.4 + s as f64 * width;
            chart
                .draw_series(values.iter().enumerate().map(|(c, &v)| {
                    Rectangle::new(
                        [(left(c), 0.0), (left(c) + width * 0.92, v as f64)],
                        colour.filled(),
                    )
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled())
                });
            chart.draw_series(values.iter().enumerate().map(|(c, &v)| {
                Text::new(
                    v.to_string(),
                    (left(c) + width * 0.46, v as f64 + max * 0.01),
                    text(14).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))?;
        }
        // Category names under the axis, in the label area.
        for (c, name) in categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(c as f64, 0.0));
            let (base_x, base_y) = area.get_base_pixel();
            area.draw_text(
                name,
                &text(16).pos(Pos::new(HPos::Center, VPos::Top)),
                (x - base_x, y - base_y + 10),
            )?;
        }
        if series.len() > 1 {
            legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::assert_png;

    #[test]
    fn bars_render() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.png");
        let categories = vec!["train".into(), "val".into(), "test".into()];
        let series = vec![
            ("fractured".into(), vec![200, 40, 41]),
            ("not fractured".into(), vec![210, 45, 44]),
        ];
        grouped(&path, "Images per split", "images", &categories, &series).unwrap();
        assert_png(&path, (900, 440));
    }
}
