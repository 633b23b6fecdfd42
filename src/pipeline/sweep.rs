//! Sweeps: axes of values for params (`--sweep seed=1..5`, `--sweep lr=0.1,0.01`, or a pipeline's
//! top-level `sweep:`), the grid of all their combinations, and a seeded random sample of it. Each
//! combination becomes `--set` overrides for one ordinary run.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::overrides::{Override, key_and_text, yaml_value};
use crate::util::rng::Rng;

/// Integer ranges longer than this are refused (a typo such as `1..100000` would start that many runs).
const MAX_RANGE: i64 = 10_000;

/// One axis of a sweep: a param (dotted key) and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// The param, as for `--set`.
    pub key: String,
    /// Its values, in order.
    pub values: Vec<Value>,
}

impl std::str::FromStr for Axis {
    type Err = String;

    /// `KEY=V1,V2,...` (each value read as YAML; commas inside `[...]` or `{...}` stay in their value)
    /// or `KEY=A..B` for the integers A to B.
    fn from_str(arg: &str) -> Result<Axis, String> {
        let (key, text) = key_and_text(arg, "KEY=V1,V2,... or KEY=A..B")?;
        let values = match integer_range(text)? {
            Some(values) => values,
            None => split_top_level(text).into_iter().map(yaml_value).collect(),
        };
        if values.is_empty() {
            return Err(format!("`--sweep {key}=` gives no values"));
        }
        Ok(Axis {
            key: key.to_string(),
            values,
        })
    }
}

impl Axis {
    /// An axis from a pipeline's `sweep:` entry: a list of values, or an `A..B` range.
    pub fn from_value(key: &str, value: &Value) -> Result<Axis, String> {
        let values = match value {
            Value::Array(items) if !items.is_empty() => items.clone(),
            Value::String(text) => integer_range(text)?.ok_or_else(|| {
                format!("sweep axis `{key}`: `{text}` is neither a list nor a range A..B")
            })?,
            _ => {
                return Err(format!(
                    "sweep axis `{key}` must be a non-empty list of values or a range A..B"
                ));
            }
        };
        Ok(Axis {
            key: key.to_string(),
            values,
        })
    }
}

/// The most runs one sweep may have: a grid beyond it is almost surely a typo.
pub const MAX_RUNS: u128 = 10_000;

/// How many combinations the axes' grid has (saturating).
pub fn grid_size(axes: &[Axis]) -> u128 {
    axes.iter()
        .fold(1u128, |n, a| n.saturating_mul(a.values.len() as u128))
}

/// Every combination of the axes' values, the last axis varying fastest, as overrides.
pub fn grid(axes: &[Axis]) -> Vec<Vec<Override>> {
    axes.iter().fold(vec![Vec::new()], |combos, axis| {
        combos
            .iter()
            .flat_map(|combo| {
                axis.values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.push(Override {
                        key: axis.key.clone(),
                        value: value.clone(),
                    });
                    next
                })
            })
            .collect()
    })
}

/// `n` combinations of the grid drawn at random without replacement with `seed`, in grid order
/// (all of them when the grid has no more than `n`).
pub fn sample(axes: &[Axis], n: usize, seed: u64) -> Vec<Vec<Override>> {
    let combos = grid(axes);
    let mut order: Vec<usize> = (0..combos.len()).collect();
    Rng::derive(seed, "sweep sample", 0, 0).shuffle(&mut order);
    let mut chosen: Vec<usize> = order.into_iter().take(n).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| combos[i].clone()).collect()
}

/// `A..B` as the integers A to B inclusive, `None` when `text` is not a range.
fn integer_range(text: &str) -> Result<Option<Vec<Value>>, String> {
    let Some((low, high)) = text.trim().split_once("..") else {
        return Ok(None);
    };
    let (Ok(low), Ok(high)) = (low.trim().parse::<i64>(), high.trim().parse::<i64>()) else {
        return Ok(None);
    };
    if high < low || i128::from(high) - i128::from(low) >= i128::from(MAX_RANGE) {
        return Err(format!(
            "range `{text}` must go up, by at most {MAX_RANGE} values"
        ));
    }
    Ok(Some((low..=high).map(Value::from).collect()))
}

/// `text` split at the commas outside brackets and braces.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[from..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn axis(arg: &str) -> Axis {
        arg.parse().unwrap()
    }

    #[test]
    fn axes_parse_lists_ranges_and_yaml_values() {
        assert_eq!(axis("seed=1..3").values, [json!(1), json!(2), json!(3)]);
        assert_eq!(
            axis("lr=0.1, 1e-3,x").values,
            [json!(0.1), json!(0.001), json!("x")]
        );
        assert_eq!(
            axis("models=[a,b],[c]").values,
            [json!(["a", "b"]), json!(["c"])]
        );
        assert!("seed=5..1".parse::<Axis>().is_err());
        assert!("seed".parse::<Axis>().is_err());
        assert!("seed=".parse::<Axis>().is_err());
    }

    #[test]
    fn the_grid_has_every_combination_and_a_sample_is_a_seeded_subset() {
        let axes = [axis("a=1..3"), axis("b=x,y")];
        let combos = grid(&axes);
        assert_eq!(combos.len(), 6);
        assert_eq!(combos[1][0].value, json!(1));
        assert_eq!(combos[1][1].value, json!("y"));
        let drawn = sample(&axes, 4, 7);
        assert_eq!(drawn.len(), 4);
        assert_eq!(drawn, sample(&axes, 4, 7));
        assert!(drawn.iter().all(|c| combos.contains(c)));
        assert_ne!(sample(&axes, 4, 7), sample(&axes, 4, 8));
        assert_eq!(sample(&axes, 10, 1).len(), 6);
    }
}
