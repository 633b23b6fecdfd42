//! Parallel coordinates as inline SVG: one vertical axis per param that differs and per metric, one
//! line per run through its values, so which settings go with which results shows at a glance. An
//! axis whose values are all numbers is scaled from its min (bottom) to its max (top); any other
//! spreads its distinct values evenly. A run without a value on an axis has a gap there. Each run's
//! line is a `g.series`, so the page's legend hides and shows it.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::escape;
use super::svg::style;

const AXIS_GAP: f64 = 120.0;
const SIDE: f64 = 70.0;
const HEIGHT: f64 = 330.0;
const TOP: f64 = 72.0;
const BOTTOM: f64 = 30.0;

/// One axis: its name and each run's value on it (`None`: the run has none).
pub struct Axis {
    /// A param's or metric's name.
    pub name: String,
    /// The runs' values, in the order of the runs.
    pub values: Vec<Option<Value>>,
}

/// How an axis places values: by number, or by the rank of its distinct words.
enum Scale {
    Numbers { min: f64, max: f64 },
    Words(Vec<String>),
}

fn word(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Scale {
    fn of(values: &[Option<Value>]) -> Scale {
        let present: Vec<&Value> = values.iter().flatten().collect();
        if present.iter().all(|v| v.is_number()) {
            let numbers = present.iter().filter_map(|v| v.as_f64());
            let (min, max) = numbers.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
            return Scale::Numbers { min, max };
        }
        let mut words: Vec<String> = present.into_iter().map(word).collect();
        words.sort();
        words.dedup();
        Scale::Words(words)
    }

    /// Where `value` sits, from 0 (bottom) to 1 (top).
    fn fraction(&self, value: &Value) -> Option<f64> {
        match self {
            Scale::Numbers { min, max } => {
                let x = value.as_f64()?;
                Some(if max > min {
                    (x - min) / (max - min)
                } else {
                    0.5
                })
            }
            Scale::Words(words) => {
                let at = words.iter().position(|w| *w == word(value))?;
                Some(if words.len() > 1 {
                    at as f64 / (words.len() - 1) as f64
                } else {
                    0.5
                })
            }
        }
    }

    /// The tick labels: (fraction, text).
    fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            Scale::Numbers { min, max } if min.is_finite() => {
                let text = |x: f64| crate::report::markdown::number(x);
                if max > min {
                    vec![(0.0, text(*min)), (1.0, text(*max))]
                } else {
                    vec![(0.5, text(*min))]
                }
            }
            Scale::Numbers { .. } => Vec::new(),
            Scale::Words(words) => words
                .iter()
                .filter_map(|w| Some((self.fraction(&Value::String(w.clone()))?, w.clone())))
                .collect(),
        }
    }
}

/// The chart's `<figure>`: `axes` left to right, a line per run (named by `runs`, styled by index).
pub fn chart(title: &str, axes: &[Axis], runs: &[&str]) -> String {
    let width = SIDE * 2.0 + AXIS_GAP * (axes.len().saturating_sub(1)) as f64;
    let x_of = |i: usize| SIDE + AXIS_GAP * i as f64;
    let y_of = |fraction: f64| TOP + (1.0 - fraction) * (HEIGHT - TOP - BOTTOM);
    let scales: Vec<Scale> = axes.iter().map(|a| Scale::of(&a.values)).collect();
    let mut svg = format!(
        "<figure class=\"chart parallel\"><svg viewBox=\"0 0 {width} {HEIGHT}\" style=\"width:{width}px\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"8\" y=\"18\" class=\"title\">{t}</text>",
        t = escape(title)
    );
    for (i, (axis, scale)) in axes.iter().zip(&scales).enumerate() {
        let x = x_of(i);
        // Names alternate between two rows so long ones do not run into each other.
        let name_y = if i % 2 == 0 { 32.0 } else { 46.0 };
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#888\"/>\
             <text x=\"{x:.1}\" y=\"{name_y}\" class=\"tick axis-name\" text-anchor=\"middle\">{}</text>",
            HEIGHT - BOTTOM,
            escape(&axis.name)
        );
        // A number axis's min and max sit below and above it, clear of the lines; words beside it.
        let ends = matches!(scale, Scale::Numbers { .. });
        for (fraction, text) in scale.ticks() {
            let (tx, ty, anchor) = match fraction {
                f if ends && f == 1.0 => (x, TOP - 6.0, "middle"),
                f if ends && f == 0.0 => (x, HEIGHT - BOTTOM + 14.0, "middle"),
                f => (x + 5.0, y_of(f) + 4.0, "start"),
            };
            let _ = write!(
                svg,
                "<text x=\"{tx:.1}\" y=\"{ty:.1}\" class=\"tick\" text-anchor=\"{anchor}\">{}</text>",
                escape(&text)
            );
        }
    }
    for (run_index, run) in runs.iter().enumerate() {
        let (colour, dash) = style(run_index);
        let _ = write!(
            svg,
            "<g class=\"series\" data-series=\"{name}\"><title>{name}</title>",
            name = escape(run)
        );
        // Consecutive axes with values are joined; a missing value breaks the line.
        let mut segment: Vec<String> = Vec::new();
        let mut segments: Vec<Vec<String>> = Vec::new();
        for (i, (axis, scale)) in axes.iter().zip(&scales).enumerate() {
            let at = axis.values.get(run_index).and_then(Option::as_ref);
            match at.and_then(|v| scale.fraction(v)) {
                Some(fraction) => segment.push(format!("{:.1},{:.1}", x_of(i), y_of(fraction))),
                None => segments.push(std::mem::take(&mut segment)),
            }
        }
        segments.push(segment);
        for points in &segments {
            if let [point] = points.as_slice() {
                let (x, y) = point.split_once(',').unwrap_or_default();
                let _ = write!(
                    svg,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>"
                );
            } else if points.len() > 1 {
                let _ = write!(
                    svg,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
                    points.join(" ")
                );
            }
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg></figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_run_is_one_line_through_its_values_with_a_gap_where_it_has_none() {
        let axes = [
            Axis {
                name: "lr".into(),
                values: vec![Some(json!(0.1)), Some(json!(0.3)), Some(json!(0.2))],
            },
            Axis {
                name: "optimiser".into(),
                values: vec![Some(json!("adam")), Some(json!("sgd")), None],
            },
            Axis {
                name: "accuracy".into(),
                values: vec![Some(json!(0.8)), Some(json!(0.9)), Some(json!(0.7))],
            },
        ];
        let svg = chart("Params and metrics", &axes, &["a", "b", "c<"]);
        assert_eq!(svg.matches("<g class=\"series\"").count(), 3);
        // `c<` has no optimiser: its line breaks into two single points.
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // Numbers from min (bottom) to max (top); words spread evenly.
        assert!(
            svg.contains(">0.100</text>") && svg.contains(">0.300</text>"),
            "{svg}"
        );
        assert!(svg.contains(">adam</text>") && svg.contains(">sgd</text>"));
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("data-series=\"c&lt;\""));
    }
}
