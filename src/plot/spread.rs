//! A metric's spread over groups of runs: one column per group (a swept param's value), the mean as a
//! dot, ± one standard deviation as an error bar, the range (min to max) as a thin grey line, and the
//! number of runs under each column.

use std::path::Path;

use plotters::prelude::*;

use super::{GREY, PALETTE, render, text};

/// One group's values.
pub struct Spread {
    /// The group's label on the x axis.
    pub label: String,
    /// How many runs.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation.
    pub sd: f64,
    /// Their minimum and maximum.
    pub range: (f64, f64),
}

/// Draws `groups` as a 640 x 440 PNG at `path`.
pub fn draw(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[Spread],
) -> anyhow::Result<()> {
    let low = groups
        .iter()
        .map(|g| g.range.0.min(g.mean - g.sd))
        .fold(f64::INFINITY, f64::min);
    let high = groups
        .iter()
        .map(|g| g.range.1.max(g.mean + g.sd))
        .fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if low.is_finite() && high > low {
        let pad = (high - low) * 0.12;
        (low - pad, high + pad)
    } else if low.is_finite() {
        (low - 0.5, low + 0.5)
    } else {
        (0.0, 1.0)
    };
    let columns = groups.len().max(1) as f64;
    render(path, (640, 440), |area| {
        area.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(area)
            .caption(title, text(20))
            .margin(14)
            .x_label_area_size(52)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..columns - 0.5, low..high)?;
        let label_of = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                groups
                    .get(i as usize)
                    .map(|g| format!("{} (n={})", g.label, g.n))
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(text(14))
            .axis_desc_style(text(16))
            .light_line_style(TRANSPARENT)
            .x_labels(groups.len().max(1))
            .x_label_formatter(&label_of)
            .draw()?;
        let colour = PALETTE[0];
        for (i, g) in groups.iter().enumerate() {
            let x = i as f64;
            chart.draw_series(LineSeries::new(
                [(x, g.range.0), (x, g.range.1)],
                GREY.stroke_width(1),
            ))?;
            // ± one standard deviation: a bar with a cap at each end.
            let (bottom, top) = (g.mean - g.sd, g.mean + g.sd);
            let bar = colour.stroke_width(3);
            chart.draw_series(LineSeries::new([(x, bottom), (x, top)], bar))?;
            for y in [bottom, top] {
                chart.draw_series(LineSeries::new([(x - 0.06, y), (x + 0.06, y)], bar))?;
            }
            chart.draw_series(std::iter::once(Circle::new(
                (x, g.mean),
                6,
                colour.filled(),
            )))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::assert_png;

    #[test]
    fn draws_one_column_per_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spread.png");
        let group = |label: &str, mean: f64| Spread {
            label: label.into(),
            n: 3,
            mean,
            sd: 0.05,
            range: (mean - 0.08, mean + 0.07),
        };
        draw(
            &path,
            "accuracy by lr",
            "lr",
            "accuracy",
            &[group("0.1", 0.8), group("0.01", 0.9)],
        )
        .unwrap();
        assert_png(&path, (640, 440));
    }
}
