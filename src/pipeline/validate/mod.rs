//! Turns the parsed YAML tree into stages: applies `--set`, expands `foreach`/`matrix`, interpolates
//! `${...}`, checks every key, type, kind and param, and normalises paths. Every problem is collected
//! before returning, so the user fixes a file in one pass.
//!
//! One checker walks the file; its parts live beside this file: `--set` and `foreach`/`matrix`
//! ([`expand`]), command stages ([`command`]), built-in kinds ([`builtin`]), Slurm resources
//! ([`resources`]) and the remote cache ([`remote`]).

mod builtin;
mod command;
mod expand;
mod remote;
mod resources;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::interpolate::Scope;
use super::overrides::Override;
use super::sweep::Axis;
use super::yaml::{Node, NodeKind, Pos};
use super::{ExecutorKind, Resources, Stage};

pub use self::remote::remote_of;

const TOP_KEYS: &[&str] = &[
    "params",
    "stages",
    "executor",
    "resources",
    "sweep",
    "remote",
];
const RESOURCE_KEYS: &[&str] = &["cpus", "mem", "gpus", "time", "partition", "account"];
const COMMAND_KEYS: &[&str] = &[
    "cmd",
    "deps",
    "outs",
    "metrics",
    "plots",
    "params",
    "wdir",
    "always_changed",
    "frozen",
    "desc",
    "meta",
    "resources",
];
const BUILTIN_KEYS: &[&str] = &[
    "uses",
    "with",
    "always_changed",
    "frozen",
    "desc",
    "meta",
    "resources",
];
const OUT_OPTIONS: &[&str] = &["cache", "persist", "desc", "remote", "push"];
/// DVC reads stage `params:` from this file when the pipeline does not declare them.
const DVC_PARAMS_FILE: &str = "params.yaml";

struct Checker<'a> {
    file: &'a str,
    source: &'a str,
    root: &'a Path,
    errors: Vec<Diagnostic>,
    /// The pipeline's params after `--set`, for command stages' `params:` lists.
    params: Value,
    /// Other params files (DVC's `params.yaml`, `{file: [keys]}`), read once each.
    param_files: HashMap<String, Option<Node>>,
    /// The pipeline's top-level `resources:`, under every stage's own.
    default_resources: Resources,
}

/// What a valid pipeline file declares.
pub(super) struct Validated {
    pub params: Value,
    pub stages: Vec<Stage>,
    pub executor: Option<ExecutorKind>,
    pub resources: Resources,
    pub sweep: Vec<Axis>,
}

pub(super) fn validate(
    file: &str,
    source: &str,
    node: &Node,
    root: &Path,
    overrides: &[Override],
) -> Result<Validated, Vec<Diagnostic>> {
    let mut c = Checker {
        file,
        source,
        root,
        errors: Vec::new(),
        params: Value::Null,
        param_files: HashMap::new(),
        default_resources: Resources::default(),
    };
    let Some(entries) = node.as_map() else {
        c.error(
            node.pos,
            format!("a pipeline must be a mapping, not {}", node.type_name()),
            None,
        );
        return Err(c.errors);
    };
    for (key, _) in entries {
        c.check_key(key, TOP_KEYS, "unknown top-level key");
    }
    let executor = node.get("executor").and_then(|n| c.executor(n));
    let sweep = node.get("sweep").map(|n| c.sweep(n)).unwrap_or_default();
    if let Some(remote) = node.get("remote") {
        c.remote(remote);
    }
    if let Some(r) = node.get("resources") {
        c.default_resources = c.resources(r, "the pipeline");
    }
    let mut params = c.params_mapping(node);
    let stage_nodes = c.stage_nodes(node);
    let stage_overrides = c.apply_overrides(&mut params, overrides, stage_nodes);
    c.params = params.clone();
    let dvc_variables = c.dvc_variables();
    let mut stages = Vec::new();
    for (name_node, body) in stage_nodes {
        let name = name_node.as_scalar().unwrap_or_default();
        if !valid_stage_name(name) {
            c.error(
                name_node.pos,
                format!("invalid stage name `{name}`"),
                Some(
                    "use letters, digits, `_`, `-` and `.` (`@` is reserved for foreach items)"
                        .into(),
                ),
            );
            continue;
        }
        let overrides = stage_overrides.get(name).map(Vec::as_slice).unwrap_or(&[]);
        for (expanded_name, body, item, key) in c.expand(name, body, &params, &dvc_variables) {
            let scope = Scope {
                params: &params,
                dvc_params: &dvc_variables,
                item: item.as_ref(),
                key: key.as_deref(),
            };
            let group = (expanded_name != name).then(|| name.to_string());
            if let Some(stage) = c.stage(expanded_name, group, &body, &scope, overrides) {
                stages.push(stage);
            }
        }
    }
    if c.errors.is_empty() {
        Ok(Validated {
            params,
            stages,
            executor,
            resources: c.default_resources,
            sweep,
        })
    } else {
        c.errors.sort_by_key(|d| d.pos.map(|p| (p.line, p.col)));
        Err(c.errors)
    }
}

impl Checker<'_> {
    /// The top-level `executor:`, if it is given and valid.
    fn executor(&mut self, n: &Node) -> Option<ExecutorKind> {
        let parsed = n.as_scalar().ok_or_else(|| {
            format!(
                "`executor` must be `local` or `slurm`, not {}",
                n.type_name()
            )
        });
        match parsed.and_then(str::parse::<ExecutorKind>) {
            Ok(kind) => Some(kind),
            Err(message) => {
                self.error(n.pos, message, None);
                None
            }
        }
    }

    /// The top-level `sweep:`: a mapping of params to lists of values or `A..B` ranges.
    fn sweep(&mut self, node: &Node) -> Vec<Axis> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.pos,
                format!(
                    "`sweep` must be a mapping of params to values, not {}",
                    node.type_name()
                ),
                Some("for example `sweep: {seed: 1..5, lr: [0.1, 0.01]}`".into()),
            );
            return Vec::new();
        };
        let mut axes = Vec::new();
        for (key, values) in entries {
            let key_name = key.as_scalar().unwrap_or_default();
            match Axis::from_value(key_name, &values.to_value()) {
                Ok(axis) => axes.push(axis),
                Err(message) => self.error(values.pos, message, None),
            }
        }
        axes
    }

    /// The top-level `params:` as a value (an empty mapping when absent or invalid).
    fn params_mapping(&mut self, node: &Node) -> Value {
        match node.get("params") {
            None => Value::Object(Default::default()),
            Some(p) if p.as_map().is_some() => p.to_value(),
            Some(p) => {
                self.error(
                    p.pos,
                    format!("`params` must be a mapping, not {}", p.type_name()),
                    None,
                );
                Value::Object(Default::default())
            }
        }
    }

    /// The top-level `stages:` entries (none when absent or invalid).
    fn stage_nodes<'n>(&mut self, node: &'n Node) -> &'n [(Node, Node)] {
        match node.get("stages") {
            Some(s) => match s.as_map() {
                Some(m) if !m.is_empty() => m,
                _ => {
                    self.error(
                        s.pos,
                        "`stages` must be a non-empty mapping of stage names to stages",
                        None,
                    );
                    &[]
                }
            },
            None => {
                self.error(node.pos, "the pipeline has no `stages`", None);
                &[]
            }
        }
    }

    fn error(&mut self, pos: Pos, message: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::at(self.file, self.source, pos, message);
        d.help = help;
        self.errors.push(d);
    }

    /// An interpolation error, underlining the `${...}` reference when it is on the scalar's line.
    fn interpolation_error(&mut self, e: super::interpolate::InterpolationError) {
        let mut d = Diagnostic::at(self.file, self.source, e.pos, e.message);
        d.help = e.help;
        if let (Some(line), Some(reference)) = (&d.line_text, &e.reference) {
            let start = line
                .char_indices()
                .map(|(i, _)| i)
                .filter(|&i| i + 1 >= e.pos.col)
                .find(|&i| line[i..].starts_with(reference.as_str()));
            if let Some(start) = start {
                d.pos = Some(Pos {
                    line: e.pos.line,
                    col: line[..start].chars().count() + 1,
                });
                d.width = Some(reference.chars().count());
            }
        }
        self.errors.push(d);
    }

    /// Reports `key` unless it is one of `allowed`: "{what} `key`".
    fn check_key(&mut self, key: &Node, allowed: &[&str], what: &str) {
        let name = key.as_scalar().unwrap_or_default();
        if !allowed.contains(&name) {
            let help = did_you_mean(name, allowed.iter().copied())
                .unwrap_or_else(|| format!("expected one of: {}", allowed.join(", ")));
            self.error(key.pos, format!("{what} `{name}`"), Some(help));
        }
    }

    fn flag(&mut self, body: &Node, key: &str) -> bool {
        match body.get(key) {
            None => false,
            Some(n) => match n.to_value() {
                Value::Bool(b) => b,
                _ => {
                    self.error(
                        n.pos,
                        format!("`{key}` must be true or false, not {}", n.type_name()),
                        None,
                    );
                    false
                }
            },
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match (&node.kind, node.to_value()) {
            (NodeKind::Scalar { text, .. }, v) if !v.is_null() => Some(text.clone()),
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be a string, not {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    fn list<'n>(&mut self, node: Option<&'n Node>, what: &str) -> &'n [Node] {
        match node.map(|n| (n, &n.kind)) {
            None => &[],
            Some((_, NodeKind::Seq(items))) => items,
            Some((n, _)) => {
                self.error(
                    n.pos,
                    format!("`{what}` must be a list, not {}", n.type_name()),
                    None,
                );
                &[]
            }
        }
    }
}

fn valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
}

/// Where `key` is written in mapping `node`.
fn key_pos(node: &Node, key: &str) -> Option<Pos> {
    node.as_map()?
        .iter()
        .find(|(k, _)| k.as_scalar() == Some(key))
        .map(|(k, _)| k.pos)
}

/// The name suffix for a `foreach`/`matrix` value: the value itself when it is a short scalar.
fn scalar_suffix(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        _ => return None,
    };
    valid_stage_name(&text).then_some(text)
}
