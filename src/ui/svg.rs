//! Line charts as inline SVG for the dashboard: one polyline per series, a point per value with its
//! value as a tooltip, and a dash pattern per series as well as a colour, so they read in grey. The
//! page's legend buttons hide and show a series (`app.js`); a table of the same numbers sits beside
//! every chart for those who cannot see it.

use std::fmt::Write as _;

use super::html::escape;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 6] = [
    "#0b63a8", "#c2410c", "#15803d", "#7e22ce", "#a16207", "#be123c",
];
const DASHES: [&str; 6] = ["", "6 4", "2 3", "10 3 2 3", "1 5", "8 8"];

/// One line: its name (a run id) and (epoch, value) points.
pub struct Line<'a> {
    /// The series' name, also its `data-series` key.
    pub name: &'a str,
    /// (x, y) in order of x.
    pub points: &'a [(f64, f64)],
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
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (y_min, y_max) = y_range.unwrap_or_else(|| {
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
        if lo.is_finite() {
            let pad = ((hi - lo) * 0.08).max(1e-3);
            ((lo - pad).max(0.0), hi + pad)
        } else {
            (0.0, 1.0)
        }
    });
    let x_of = |x: f64| LEFT + (x - 1.0).max(0.0) / (x_max - 1.0).max(1.0) * (WIDTH - LEFT - RIGHT);
    let y_of = |y: f64| TOP + (y_max - y) / (y_max - y_min).max(1e-12) * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"{LEFT}\" y=\"18\" class=\"title\">{t}</text>",
        t = escape(title)
    );
    for i in 0..=4 {
        let y = y_min + (y_max - y_min) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/><text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{y:.3}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y_of(y) + 4.0,
            py = y_of(y),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">epoch 1 to {x_max:.0}</text>\
         <text x=\"12\" y=\"{:.1}\" class=\"tick\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 10.0,
        HEIGHT / 2.0,
        HEIGHT / 2.0,
        escape(y_label)
    );
    for (i, line) in lines.iter().enumerate() {
        let (colour, dash) = (COLOURS[i % COLOURS.len()], DASHES[i % DASHES.len()]);
        let points: Vec<String> = line
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y)))
            .collect();
        let _ = write!(
            svg,
            "<g class=\"series\" data-series=\"{name}\"><polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            points.join(" "),
            name = escape(line.name)
        );
        for &(x, y) in line.points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"><title>{} epoch {x:.0}: {y:.4}</title></circle>",
                x_of(x),
                y_of(y),
                escape(line.name)
            );
        }
        svg.push_str("</g>");
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
            COLOURS[i % COLOURS.len()],
            DASHES[i % DASHES.len()],
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
                },
                Line {
                    name: "b<",
                    points: &b,
                },
            ],
            Some((0.0, 1.0)),
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("b&lt; epoch 3: 0.9000"), "{svg}");
    }
}
