//! `--set` overrides applied to params, and `foreach`/`matrix` stages expanded into one stage per item.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::*;

pub(super) type Expanded = (String, Node, Option<Value>, Option<String>);
use crate::pipeline::diagnostic::{Diagnostic, did_you_mean};
use crate::pipeline::interpolate::{Scope, flatten_names};
use crate::pipeline::overrides::{Override, param_slot};
use crate::pipeline::yaml::{Node, NodeKind};

impl Checker<'_> {
    /// Applies `--set` to params; returns the overrides addressed to built-in stages, by stage name.
    pub(super) fn apply_overrides(
        &mut self,
        params: &mut Value,
        overrides: &[Override],
        stage_nodes: &[(Node, Node)],
    ) -> HashMap<String, Vec<(String, Value)>> {
        let mut for_stages: HashMap<String, Vec<(String, Value)>> = HashMap::new();
        let stage_names: Vec<&str> = stage_nodes
            .iter()
            .filter_map(|(k, _)| k.as_scalar())
            .collect();
        for o in overrides {
            if let Some(slot) = param_slot(params, &o.key) {
                *slot = o.value.clone();
                continue;
            }
            let (root, rest) = o.key.split_once('.').unwrap_or((&o.key, ""));
            if stage_names.contains(&root) && !rest.is_empty() {
                for_stages
                    .entry(root.to_string())
                    .or_default()
                    .push((rest.to_string(), o.value.clone()));
                continue;
            }
            let names = flatten_names(params);
            let candidates = names
                .iter()
                .map(String::as_str)
                .chain(stage_names.iter().copied());
            self.errors.push(
                Diagnostic::general(
                    self.file,
                    format!("`--set {}`: no param or stage setting `{}`", o.key, o.key),
                )
                .with_optional_help(did_you_mean(&o.key, candidates)),
            );
        }
        for_stages
    }

    /// Expands `foreach` and `matrix` stages into (name, body, item, key); plain stages pass through.
    pub(super) fn expand(
        &mut self,
        name: &str,
        body: &Node,
        params: &Value,
        dvc_params: &Value,
    ) -> Vec<Expanded> {
        let plain = vec![(name.to_string(), body.clone(), None, None)];
        let Some(entries) = body.as_map() else {
            return plain;
        };
        let scope = Scope {
            params,
            dvc_params,
            item: None,
            key: None,
        };
        if let Some(foreach) = body.get("foreach") {
            return self.expand_foreach(name, body, entries, foreach, &scope);
        }
        if let Some(matrix) = body.get("matrix") {
            return self.expand_matrix(name, body, entries, matrix, &scope);
        }
        plain
    }

    /// A `foreach` stage: one stage per item of the list (or entry of the mapping), named `name@item`.
    fn expand_foreach(
        &mut self,
        name: &str,
        body: &Node,
        entries: &[(Node, Node)],
        foreach: &Node,
        scope: &Scope,
    ) -> Vec<Expanded> {
        let mut unused = BTreeMap::new();
        for (k, _) in entries {
            self.check_key(
                k,
                &["foreach", "do"],
                "a `foreach` stage has only `foreach` and `do`, not",
            );
        }
        let Some(template) = body.get("do") else {
            self.error(
                body.pos,
                format!("stage `{name}` has `foreach` but no `do`"),
                None,
            );
            return Vec::new();
        };
        let items = match scope.apply(foreach, &mut unused) {
            Ok(n) => n,
            Err(e) => {
                self.interpolation_error(e);
                return Vec::new();
            }
        };
        match items.to_value() {
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let suffix = scalar_suffix(item).unwrap_or_else(|| i.to_string());
                    (
                        format!("{name}@{suffix}"),
                        template.clone(),
                        Some(item.clone()),
                        None,
                    )
                })
                .collect(),
            Value::Object(map) => {
                // A key names a stage, its logs and (on Slurm) its job: it must be a stage name.
                let bad: Vec<&String> = map.keys().filter(|k| !valid_stage_name(k)).collect();
                if let Some(key) = bad.first() {
                    self.error(
                        foreach.pos,
                        format!("`foreach` key {key:?} cannot be part of a stage name"),
                        Some("use letters, digits, `_`, `-` and `.` in the keys".into()),
                    );
                    return Vec::new();
                }
                map.into_iter()
                    .map(|(k, item)| (format!("{name}@{k}"), template.clone(), Some(item), Some(k)))
                    .collect()
            }
            _ => {
                self.error(foreach.pos, "`foreach` must be a list or a mapping", None);
                Vec::new()
            }
        }
    }

    /// A `matrix` stage: one stage per combination of its axes, named `name@a-b`.
    fn expand_matrix(
        &mut self,
        name: &str,
        body: &Node,
        entries: &[(Node, Node)],
        matrix: &Node,
        scope: &Scope,
    ) -> Vec<Expanded> {
        let mut unused = BTreeMap::new();
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        match scope.apply(matrix, &mut unused).map(|n| n.to_value()) {
            Ok(Value::Object(map)) if !map.is_empty() => {
                for (axis, values) in map {
                    match values {
                        Value::Array(v) if !v.is_empty() => axes.push((axis, v)),
                        _ => self.error(
                            matrix.pos,
                            format!("matrix axis `{axis}` must be a non-empty list"),
                            None,
                        ),
                    }
                }
            }
            Ok(_) => self.error(
                matrix.pos,
                "`matrix` must be a mapping of names to lists",
                None,
            ),
            Err(e) => self.interpolation_error(e),
        }
        let template = Node {
            kind: NodeKind::Map(
                entries
                    .iter()
                    .filter(|(k, _)| k.as_scalar() != Some("matrix"))
                    .cloned()
                    .collect(),
            ),
            pos: body.pos,
        };
        let mut combos: Vec<(Vec<String>, serde_json::Map<String, Value>)> =
            vec![(Vec::new(), serde_json::Map::new())];
        for (axis, values) in &axes {
            combos = combos
                .into_iter()
                .flat_map(|(suffix, item)| {
                    values.iter().enumerate().map(move |(i, v)| {
                        let mut suffix = suffix.clone();
                        suffix.push(scalar_suffix(v).unwrap_or_else(|| i.to_string()));
                        let mut item = item.clone();
                        item.insert(axis.clone(), v.clone());
                        (suffix, item)
                    })
                })
                .collect();
        }
        if axes.is_empty() {
            return Vec::new();
        }
        combos
            .into_iter()
            .map(|(suffix, item)| {
                (
                    format!("{name}@{}", suffix.join("-")),
                    template.clone(),
                    Some(Value::Object(item)),
                    None,
                )
            })
            .collect()
    }
}
