//! The registry of built-in stage kinds: each kind's declaration (`stages/<kind>.yaml`, embedded in the
//! binary so pipelines work from any directory) says its inputs, outputs and typed params with defaults.
//! The spec validator checks `uses:`/`with:` against these; `pipe stages` prints them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

/// The declaration of one built-in kind, as written in `stages/<kind>.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindDecl {
    /// The name used in `uses:`.
    pub kind: String,
    /// The fingerprint of the kind's code (see `src/build/kind_code.rs`), part of every key of its
    /// stages: a change that can change its outputs reruns them.
    #[serde(skip)]
    pub code: &'static str,
    /// One sentence for `pipe stages`.
    pub description: String,
    /// Settings that name files or folders the stage reads (they become deps).
    #[serde(default)]
    pub inputs: BTreeMap<String, SlotDecl>,
    /// Settings that name files or folders the stage writes (they become outs).
    #[serde(default)]
    pub outputs: BTreeMap<String, SlotDecl>,
    /// Typed settings with defaults.
    #[serde(default)]
    pub params: BTreeMap<String, ParamDecl>,
}

/// An input or output path setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDecl {
    /// What the path is.
    pub description: String,
    /// A default path; without one the setting is required (unless `optional`).
    #[serde(default)]
    pub default: Option<String>,
    /// For inputs: the setting may be left out or empty, and then there is no dependency.
    #[serde(default)]
    pub optional: bool,
    /// For inputs: when the path names a `.csv` manifest, the folder holding it is the dependency, so
    /// the files it lists are hashed too.
    #[serde(default)]
    pub csv_folder: bool,
    /// For outputs: a JSON file whose values go into `run.json` under `metrics.<stage>`.
    #[serde(default)]
    pub metrics: bool,
}

/// A typed param of a kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDecl {
    /// The value's type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// The value when the stage does not set it; without one the setting is required.
    #[serde(default)]
    pub default: Option<Value>,
    /// What the param does.
    pub description: String,
    /// The allowed values, when only some are.
    #[serde(default)]
    pub choices: Vec<Value>,
    /// The smallest number allowed (numbers only).
    #[serde(default)]
    pub min: Option<f64>,
    /// The largest number allowed (numbers only).
    #[serde(default)]
    pub max: Option<f64>,
}

impl ParamDecl {
    /// What the declared range asks of `value` when `value` lies outside it (`from 0 to 1`, `at
    /// least 1`); `None` when it lies inside, has no range, or is not a number.
    pub fn out_of_range(&self, value: &Value) -> Option<String> {
        let v = value.as_f64()?;
        match (self.min, self.max) {
            (Some(low), Some(high)) if !(low..=high).contains(&v) => {
                Some(format!("from {low} to {high}"))
            }
            (Some(low), None) if v < low => Some(format!("at least {low}")),
            (None, Some(high)) if v > high => Some(format!("at most {high}")),
            _ => None,
        }
    }
}

/// The types a kind's param may have.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Text.
    String,
    /// A whole number.
    Int,
    /// Any number.
    Float,
    /// true or false.
    Bool,
    /// A list of values.
    List,
    /// A mapping.
    Map,
}

impl ParamType {
    /// Whether `value` has this type (an integer is also a float).
    pub fn admits(self, value: &Value) -> bool {
        match self {
            ParamType::String => value.is_string(),
            ParamType::Int => value.is_i64() || value.is_u64(),
            ParamType::Float => value.is_number(),
            ParamType::Bool => value.is_boolean(),
            ParamType::List => value.is_array(),
            ParamType::Map => value.is_object(),
        }
    }

    /// The name used in declarations and error messages.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::List => "list",
            ParamType::Map => "map",
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/kind_code.rs"));

/// The embedded declaration files, by file name.
const DECLARATIONS: &[(&str, &str)] = &[
    (
        "stages/ingest.yaml",
        include_str!("../../stages/ingest.yaml"),
    ),
    (
        "stages/validate.yaml",
        include_str!("../../stages/validate.yaml"),
    ),
    ("stages/split.yaml", include_str!("../../stages/split.yaml")),
    (
        "stages/augment.yaml",
        include_str!("../../stages/augment.yaml"),
    ),
    (
        "stages/report.yaml",
        include_str!("../../stages/report.yaml"),
    ),
    ("stages/train.yaml", include_str!("../../stages/train.yaml")),
    (
        "stages/evaluate.yaml",
        include_str!("../../stages/evaluate.yaml"),
    ),
    (
        "stages/manifest.yaml",
        include_str!("../../stages/manifest.yaml"),
    ),
];

/// All built-in kinds, parsed once.
pub fn all() -> &'static [KindDecl] {
    static KINDS: OnceLock<Vec<KindDecl>> = OnceLock::new();
    KINDS.get_or_init(|| {
        DECLARATIONS
            .iter()
            .map(|(file, text)| {
                let mut decl: KindDecl = serde_yaml::from_str(text)
                    .unwrap_or_else(|e| panic!("built-in declaration {file} is invalid: {e}"));
                decl.code = KIND_CODE
                    .iter()
                    .find(|(kind, _)| *kind == decl.kind)
                    .map_or_else(
                        || panic!("no code fingerprint for {file}"),
                        |(_, code)| code,
                    );
                decl
            })
            .collect()
    })
}

/// The declaration of `kind`, if it is built in.
pub fn find(kind: &str) -> Option<&'static KindDecl> {
    all().iter().find(|k| k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declaration_parses_and_defaults_have_their_types() {
        for kind in all() {
            for (name, param) in &kind.params {
                if let Some(default) = &param.default {
                    assert!(param.ty.admits(default), "{}.{name}", kind.kind);
                    assert_eq!(
                        param.out_of_range(default),
                        None,
                        "{}.{name}: the default lies outside the declared range",
                        kind.kind
                    );
                }
                let numeric = matches!(param.ty, ParamType::Int | ParamType::Float);
                assert!(
                    numeric || (param.min.is_none() && param.max.is_none()),
                    "{}.{name}: only numbers have a range",
                    kind.kind
                );
                if param.ty == ParamType::Int {
                    // An int read as a count must not be negative: every int declares its minimum.
                    assert!(
                        param.min.is_some(),
                        "{}.{name}: an int without `min`",
                        kind.kind
                    );
                }
            }
            assert!(
                crate::builtin::implementation(&kind.kind).is_some(),
                "{}",
                kind.kind
            );
        }
    }

    #[test]
    fn no_kind_uses_a_setting_name_twice() {
        for kind in all() {
            let mut names: Vec<&String> = kind
                .inputs
                .keys()
                .chain(kind.outputs.keys())
                .chain(kind.params.keys())
                .collect();
            let total = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), total, "`{}` declares a name twice", kind.kind);
            for (name, slot) in &kind.inputs {
                assert!(
                    !slot.metrics,
                    "{}.{name}: only outputs are metrics",
                    kind.kind
                );
            }
        }
    }
}
