//! Line charts, mostly over epochs: training curves (loss and accuracy, train and validation, best epoch
//! and early stop marked), the same curves of several runs overlaid for a comparison, and distributions
//! over a continuous axis (the copy detector's similarities, its threshold marked).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, GREY, PALETTE, legend, render, text};

/// One line: a name for the legend and (epoch, value) points.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points in epoch order.
    pub points: Vec<(f64, f64)>,
    /// Dashed (e.g. train beside a solid validation line).
    pub dashed: bool,
    /// Index into the palette.
    pub colour: usize,
    /// A shaded band around the line, (low, high) at each point (empty for none).
    pub band: Vec<(f64, f64)>,
}

/// A vertical marker at an x value (an epoch, a threshold), with a label.
#[derive(Clone)]
pub struct Marker {
    /// Where.
    pub at: f64,
    /// What it marks.
    pub label: String,
}

/// One panel: a title, the axes' names, lines and markers.
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// What the x axis measures, and the decimals of its labels: `("epoch", 0)` for training curves.
    pub x_axis: (String, usize),
    /// What the y axis measures.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Fixed y range (e.g. 0..1 for accuracy), or fit to the data.
    pub y_range: Option<(f64, f64)>,
}

/// Draws panels side by side into one PNG, 600 x 440 pixels each.
pub fn draw(path: &Path, panels: &[Panel]) -> anyhow::Result<()> {
    let size = (600 * panels.len().max(1) as u32, 440);
    render(path, size, |area| {
        area.fill(&WHITE)?;
        for (panel, region) in panels
            .iter()
            .zip(area.split_evenly((1, panels.len().max(1))))
        {
            draw_panel(&region, panel)?;
        }
        Ok(())
    })
}

fn draw_panel(area: &Area, panel: &Panel) -> anyhow::Result<()> {
    let (mut x_max, mut y_min, mut y_max) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for series in &panel.series {
        for &(x, y) in &series.points {
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        for &(low, high) in &series.band {
            y_min = y_min.min(low);
            y_max = y_max.max(high);
        }
    }
    let (y_min, y_max) = match panel.y_range {
        Some(range) => range,
        None if y_min.is_finite() => {
            let pad = ((y_max - y_min) * 0.08).max(1e-3);
            ((y_min - pad).max(0.0), y_max + pad)
        }
        None => (0.0, 1.0),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, text(22))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max.max(1.0), y_min..y_max)?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_axis.0)
        .y_desc(&panel.y_label)
        .label_style(text(15))
        .axis_desc_style(text(17))
        .light_line_style(TRANSPARENT)
        // Whole epochs only: a short run would otherwise get half-epoch ticks printed twice.
        .x_labels(match panel.x_axis.1 {
            0 => (x_max.max(1.0) as usize).min(10) + 1,
            _ => 11,
        })
        .x_label_formatter(&|x| format!("{x:.*}", panel.x_axis.1))
        .draw()?;
    for marker in &panel.markers {
        let line = [(marker.at, y_min), (marker.at, y_max)];
        chart.draw_series(DashedLineSeries::new(line, 6, 4, GREY.stroke_width(2)))?;
        // The label sits at the foot of the line, to its left, clear of the legend and the edge.
        let (x, y) = chart.backend_coord(&(marker.at, y_min));
        let (base_x, base_y) = area.get_base_pixel();
        let style = text(14)
            .color(&GREY)
            .pos(Pos::new(HPos::Right, VPos::Bottom));
        area.draw_text(&marker.label, &style, (x - base_x - 5, y - base_y - 6))?;
    }
    for series in panel.series.iter().filter(|s| !s.band.is_empty()) {
        let colour = PALETTE[series.colour % PALETTE.len()];
        let xs = series.points.iter().map(|p| p.0);
        let outline: Vec<(f64, f64)> = xs
            .clone()
            .zip(series.band.iter().map(|b| b.1))
            .chain(xs.zip(series.band.iter().map(|b| b.0)).rev())
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(
            outline,
            colour.mix(0.18).filled(),
        )))?;
    }
    for series in &panel.series {
        let colour = PALETTE[series.colour % PALETTE.len()];
        let style = colour.stroke_width(3);
        let drawn = if series.dashed {
            chart.draw_series(DashedLineSeries::new(
                series.points.iter().copied(),
                8,
                5,
                style,
            ))?
        } else {
            chart.draw_series(LineSeries::new(series.points.iter().copied(), style))?
        };
        drawn
            .label(&series.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
    }
    // The legend goes in the right-hand corner the lines end away from.
    let ends_high = panel
        .series
        .iter()
        .filter_map(|s| s.points.last())
        .all(|&(_, y)| y > (y_min + y_max) / 2.0);
    let legend_corner = if ends_high {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    };
    if !panel.series.is_empty() {
        legend(&mut chart, legend_corner)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::assert_png;

    fn panels() -> Vec<Panel> {
        let loss = |s: f64| {
            (1..=12)
                .map(|e| (f64::from(e), s / f64::from(e) + 0.1))
                .collect()
        };
        vec![Panel {
            title: "Loss".into(),
            y_label: "binary cross-entropy".into(),
            series: vec![
                Series {
                    name: "train".into(),
                    points: loss(1.0),
                    dashed: true,
                    colour: 0,
                    band: Vec::new(),
                },
                Series {
                    name: "validation".into(),
                    points: loss(1.3),
                    dashed: false,
                    colour: 0,
                    band: points_band(),
                },
            ],
            markers: vec![Marker {
                at: 9.0,
                label: "best epoch 9".into(),
            }],
            x_axis: ("epoch".into(), 0),
            y_range: None,
        }]
    }

    fn points_band() -> Vec<(f64, f64)> {
        (1..=12)
            .map(|e| (1.3 / f64::from(e), 1.3 / f64::from(e) + 0.2))
            .collect()
    }

    #[test]
    fn curves_render_identically_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        draw(&a, &panels()).unwrap();
        draw(&b, &panels()).unwrap();
        assert_png(&a, (600, 440));
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }
}
