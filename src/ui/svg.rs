//! Charts as inline SVG for the dashboard: line charts (one polyline per series, perhaps with a
//! shaded band, a point per value with its value as a tooltip) and spread charts (a metric's mean
//! ± sd per group with each run's value). A series has a dash pattern as well as a colour, so they
//! read in grey. The page's legend buttons hide and show a series (`app.js`); a table of the same
//! numbers sits beside every chart for those who cannot see it.

use std::fmt::Write as _;

use super::html::escape;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
/// A series' colour, by its index on the page.
const COLOURS: [&str; 6] = [
    "#0b63a8", "#c2410c", "#15803d", "#7e22ce", "#a16207", "#be123c",
];
/// A series' dash pattern, by its index on the page (so series differ in grey too).
const DASHES: [&str; 6] = ["", "6 4", "2 3", "10 3 2 3", "1 5", "8 8"];

/// One line: its name (a run id) and (epoch, value) points, and perhaps a band around them.
pub struct Line<'a> {
    /// The series' name, also its `data-series` key.
    pub name: &'a str,
    /// (x, y) in order of x.
    pub points: &'a [(f64, f64)],
    /// (low, high) at each point, shaded (a group's min to max).
    pub band: &'a [(f64, f64)],
    /// The series' index on the page, which picks its colour and dashes.
    pub style: usize,
}

/// The y range of `values` with a margin, or `(0, 1)` when there are none.
fn fitted(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if lo.is_finite() {
        let pad = ((hi - lo) * 0.08).max(1e-3);
        ((lo - pad).max(0.0), hi + pad)
    } else {
        (0.0, 1.0)
    }
}

/// Maps a value in `[min, max]` to the plot's height.
struct YScale {
    min: f64,
    max: f64,
}

impl YScale {
    fn at(&self, y: f64) -> f64 {
        TOP + (self.max - y) / (self.max - self.min).max(1e-12) * (HEIGHT - TOP - BOTTOM)
    }
}

/// The opening of a chart's figure: its title, the y grid with ticks, and the axes' captions.
fn frame(title: &str, x_caption: &str, y_label: &str, y: &YScale) -> String {
    let mut svg = format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"{LEFT}\" y=\"18\" class=\"title\">{t}</text>",
        t = escape(title)
    );
    for i in 0..=4 {
        let value = y.min + (y.max - y.min) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/><text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{value:.3}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y.at(value) + 4.0,
            py = y.at(value),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>\
         <text x=\"12\" y=\"{:.1}\" class=\"tick\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 10.0,
        escape(x_caption),
        HEIGHT / 2.0,
        HEIGHT / 2.0,
        escape(y_label)
    );
    svg
}

/// The chart's `<figure>`: an SVG titled `title` with `y_label` on its axis; `y_range` fixed or
/// fitted to the data.
pub fn line_chart(
    title: &str,
    y_label: &str,
    lines: &[Line],
    y_range: Option<(f64, f64)>,
) -> String {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_max = xs.fold(1.0_f64, f64::max);
    let (min, max) = y_range.unwrap_or_else(|| {
        fitted(lines.iter().flat_map(|l| {
            let points = l.points.iter().map(|p| p.1);
            points.chain(l.band.iter().flat_map(|b| [b.0, b.1]))
        }))
    });
    let y = YScale { min, max };
    let x_of = |x: f64| LEFT + (x - 1.0).max(0.0) / (x_max - 1.0).max(1.0) * (WIDTH - LEFT - RIGHT);
    let mut svg = frame(title, &format!("epoch 1 to {x_max:.0}"), y_label, &y);
    for line in lines {
        let (colour, dash) = style(line.style);
        let at = |&(x, v): &(f64, f64)| format!("{:.1},{:.1}", x_of(x), y.at(v));
        let points: Vec<String> = line.points.iter().map(at).collect();
        let _ = write!(
            svg,
            "<g class=\"series\" data-series=\"{name}\">",
            name = escape(line.name)
        );
        if !line.band.is_empty() {
            let xs = line.points.iter().map(|p| p.0);
            let upper = xs.clone().zip(line.band).map(|(x, b)| at(&(x, b.1)));
            let lower = xs.zip(line.band).rev().map(|(x, b)| at(&(x, b.0)));
            let outline: Vec<String> = upper.chain(lower).collect();
            let _ = write!(
                svg,
                "<polygon class=\"band\" fill=\"{colour}\" fill-opacity=\"0.15\" points=\"{}\"/>",
                outline.join(" ")
            );
        }
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            points.join(" "),
        );
        for &(x, v) in line.points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"><title>{} epoch {x:.0}: {v:.4}</title></circle>",
                x_of(x),
                y.at(v),
                escape(line.name)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Validation accuracy (from 0 to 1) and validation loss side by side, the same series in each.
pub fn validation_charts(accuracy: &[Line], loss: &[Line]) -> String {
    format!(
        "<div class=\"figures\">{}{}</div>",
        line_chart(
            "Validation accuracy",
            "accuracy",
            accuracy,
            Some((0.0, 1.0))
        ),
        line_chart("Validation loss", "binary cross-entropy", loss, None),
    )
}

/// The colour and dash pattern of the series at `index`.
pub fn style(index: usize) -> (&'static str, &'static str) {
    (COLOURS[index % COLOURS.len()], DASHES[index % DASHES.len()])
}

/// One group of a spread chart: its label, the mean with one standard deviation, and each run's value.
pub struct Spread<'a> {
    /// The axis value the group shares.
    pub label: String,
    /// Mean and sample standard deviation of the runs' values.
    pub mean: f64,
    /// Sample standard deviation (0 for one run).
    pub sd: f64,
    /// Each run's value.
    pub values: &'a [f64],
}

/// A metric across an axis's groups: each run's value as a small ring (with several), the mean as a dot with a bar
/// from one sd below to one above; `best` (a group's index) is drawn as a star.
pub fn spread_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[Spread],
    best: Option<usize>,
) -> String {
    let (min, max) = fitted(groups.iter().flat_map(|g| {
        let bar = [g.mean - g.sd, g.mean + g.sd];
        g.values.iter().copied().chain(bar)
    }));
    let y = YScale { min, max };
    let step = (WIDTH - LEFT - RIGHT) / groups.len().max(1) as f64;
    let mut svg = frame(title, x_label, y_label, &y);
    for (i, group) in groups.iter().enumerate() {
        let x = LEFT + step * (i as f64 + 0.5);
        let label = escape(&group.label);
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{label}</text>",
            HEIGHT - BOTTOM + 14.0
        );
        // With one run the dot is its value: no ring beside it.
        for value in group.values.iter().filter(|_| group.values.len() > 1) {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"none\" stroke=\"#777\"><title>{label}: {value:.4}</title></circle>",
                x + 12.0,
                y.at(*value)
            );
        }
        let (low, high) = (y.at(group.mean - group.sd), y.at(group.mean + group.sd));
        let _ = write!(
            svg,
            "<g class=\"spread\"><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{low:.1}\" y2=\"{high:.1}\" stroke=\"#1d1d1d\" stroke-width=\"2\"/>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{low:.1}\" y2=\"{low:.1}\" stroke=\"#1d1d1d\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{high:.1}\" y2=\"{high:.1}\" stroke=\"#1d1d1d\"/>\
             <circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"><title>{label}: mean {:.4} ± {:.4} over {} runs</title></circle></g>",
            x - 6.0,
            x + 6.0,
            x - 6.0,
            x + 6.0,
            y.at(group.mean),
            COLOURS[0],
            group.mean,
            group.sd,
            group.values.len()
        );
        if best == Some(i) {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"best\" text-anchor=\"middle\">★<title>the best mean</title></text>",
                x,
                high - 8.0
            );
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

/// The legend: one button per series, which hides or shows it in every chart of the page.
pub fn legend(names: &[&str]) -> String {
    let mut html = String::from("<p class=\"legend\">");
    for (i, name) in names.iter().enumerate() {
        let _ = write!(
            html,
            "<button type=\"button\" class=\"series-toggle\" data-series=\"{n}\" aria-pressed=\"true\">\
             <svg width=\"28\" height=\"10\" aria-hidden=\"true\"><line x1=\"0\" y1=\"5\" x2=\"28\" y2=\"5\" stroke=\"{}\" stroke-width=\"3\" stroke-dasharray=\"{}\"/></svg> {n}</button> ",
            style(i).0,
            style(i).1,
            n = escape(name)
        );
    }
    html + "</p>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_and_a_point_per_value_of_each_series() {
        let a = [(1.0, 0.5), (2.0, 0.7)];
        let b = [(1.0, 0.4), (2.0, 0.6), (3.0, 0.9)];
        let svg = line_chart(
            "Validation accuracy",
            "accuracy",
            &[
                Line {
                    name: "a",
                    points: &a,
                    band: &[],
                    style: 0,
                },
                Line {
                    name: "b<",
                    points: &b,
                    band: &[(0.3, 0.5), (0.5, 0.7), (0.8, 1.0)],
                    style: 1,
                },
            ],
            Some((0.0, 1.0)),
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert_eq!(svg.matches("<polygon class=\"band\"").count(), 1);
        assert!(svg.contains("b&lt; epoch 3: 0.9000"), "{svg}");
    }
}
