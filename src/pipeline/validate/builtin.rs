//! Built-in stages (`uses:` a kind, `with:` its settings): every setting checked against the kind's
//! declaration, defaults filled in, input and output paths normalised.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::pipeline::diagnostic::did_you_mean;
use crate::pipeline::kinds;
use crate::pipeline::yaml::{Node, Pos};
use crate::pipeline::{Action, Out, PathRef, is_outside, normalize};

impl Checker<'_> {
    pub(super) fn builtin(
        &mut self,
        name: &str,
        body: &Node,
        overrides: &[(String, Value)],
    ) -> Option<(Action, Vec<PathRef>, Vec<Out>, String)> {
        let kind = self.builtin_kind(body.get("uses")?)?;
        let with_pos = key_pos(body, "with").unwrap_or(body.pos);
        let given = self.builtin_given(name, kind, body, with_pos, overrides);
        let mut settings = BTreeMap::new();
        let (deps, outs) = self.builtin_paths(name, kind, &given, with_pos, &mut settings);
        self.builtin_params(name, kind, &given, with_pos, &mut settings);
        let action = Action::Builtin {
            kind: kind.kind.clone(),
            code: kind.code,
            settings,
        };
        Some((action, deps, outs, ".".to_string()))
    }

    /// The declaration of the kind `uses` names.
    fn builtin_kind(&mut self, uses: &Node) -> Option<&'static kinds::KindDecl> {
        let kind_name = self.string(uses, "`uses`")?;
        let Some(kind) = kinds::find(&kind_name) else {
            let names = kinds::all().iter().map(|k| k.kind.as_str());
            let help = did_you_mean(&kind_name, names).unwrap_or_else(|| {
                format!(
                    "built-in kinds: {}",
                    kinds::all()
                        .iter()
                        .map(|k| k.kind.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            self.error(
                uses.pos,
                format!("unknown stage kind `{kind_name}`"),
                Some(help),
            );
            return None;
        };
        Some(kind)
    }

    /// The settings given in `with:` and by `--set`, each where it was written; a setting the kind
    /// does not declare is an error.
    fn builtin_given(
        &mut self,
        name: &str,
        kind: &kinds::KindDecl,
        body: &Node,
        with_pos: Pos,
        overrides: &[(String, Value)],
    ) -> BTreeMap<String, (Value, Pos)> {
        let kind_name = &kind.kind;
        let with = body.get("with");
        let mut given: BTreeMap<String, (Value, Pos)> = BTreeMap::new();
        match with {
            None => {}
            Some(w) => match w.as_map() {
                Some(entries) => {
                    for (k, v) in entries {
                        given.insert(
                            k.as_scalar().unwrap_or_default().to_string(),
                            (v.to_value(), k.pos),
                        );
                    }
                }
                None => self.error(
                    w.pos,
                    format!("`with` must be a mapping, not {}", w.type_name()),
                    None,
                ),
            },
        }
        for (key, value) in overrides {
            given.insert(key.clone(), (value.clone(), with_pos));
        }
        let declared: Vec<&str> = kind
            .inputs
            .keys()
            .chain(kind.outputs.keys())
            .chain(kind.params.keys())
            .map(String::as_str)
            .collect();
        for (key, (_, pos)) in &given {
            if !declared.contains(&key.as_str()) {
                let help = did_you_mean(key, declared.iter().copied())
                    .unwrap_or_else(|| format!("`{kind_name}` takes: {}", declared.join(", ")));
                self.error(
                    *pos,
                    format!("`{kind_name}` has no setting `{key}` (stage `{name}`)"),
                    Some(help),
                );
            }
        }
        given
    }

    /// The kind's input and output paths (given or defaulted), normalised into `settings`, as the
    /// stage's deps and outs.
    fn builtin_paths(
        &mut self,
        name: &str,
        kind: &kinds::KindDecl,
        given: &BTreeMap<String, (Value, Pos)>,
        with_pos: Pos,
        settings: &mut BTreeMap<String, Value>,
    ) -> (Vec<PathRef>, Vec<Out>) {
        let mut deps = Vec::new();
        let mut outs = Vec::new();
        for (slots, is_output) in [(&kind.inputs, false), (&kind.outputs, true)] {
            for (slot, decl) in slots {
                let (raw, pos) = match given.get(slot) {
                    Some((Value::String(s), pos)) => (s.clone(), *pos),
                    Some((other, pos)) => {
                        self.error(
                            *pos,
                            format!("`{slot}` must be a path (a string), not {other}"),
                            None,
                        );
                        continue;
                    }
                    None => match &decl.default {
                        Some(d) => (d.clone(), with_pos),
                        None if decl.optional => (String::new(), with_pos),
                        None => {
                            self.error(
                                with_pos,
                                format!(
                                    "stage `{name}` needs `with.{slot}` ({})",
                                    decl.description
                                ),
                                None,
                            );
                            continue;
                        }
                    },
                };
                if raw.is_empty() && decl.optional && !is_output {
                    settings.insert(slot.clone(), Value::String(String::new()));
                    continue;
                }
                let path = normalize(".", &raw);
                if is_output && (is_outside(&path) || path == ".") {
                    self.error(
                        pos,
                        format!("output `{raw}` is not inside the workspace"),
                        None,
                    );
                    continue;
                }
                settings.insert(slot.clone(), Value::String(path.clone()));
                let is_csv = path.to_ascii_lowercase().ends_with(".csv");
                let path = if decl.csv_folder && is_csv {
                    match path.rsplit_once('/') {
                        Some((folder, _)) if !folder.is_empty() => folder.to_string(),
                        Some(_) => "/".to_string(),
                        None => ".".to_string(),
                    }
                } else {
                    path
                };
                let path = PathRef { path, pos };
                if is_output {
                    outs.push(Out {
                        path,
                        cache: true,
                        persist: false,
                        metrics: decl.metrics,
                    });
                } else {
                    deps.push(path);
                }
            }
        }
        (deps, outs)
    }

    /// Checks each declared param of `kind` as given (or its default) against its type, choices and
    /// range, and puts it into `settings`.
    fn builtin_params(
        &mut self,
        name: &str,
        kind: &kinds::KindDecl,
        given: &BTreeMap<String, (Value, Pos)>,
        with_pos: Pos,
        settings: &mut BTreeMap<String, Value>,
    ) {
        for (param, decl) in &kind.params {
            let (value, pos) = match given.get(param) {
                Some((v, pos)) => (v.clone(), *pos),
                None => match &decl.default {
                    Some(d) => (d.clone(), with_pos),
                    None => {
                        self.error(
                            with_pos,
                            format!("stage `{name}` needs `with.{param}` ({})", decl.description),
                            None,
                        );
                        continue;
                    }
                },
            };
            if !decl.ty.admits(&value) {
                self.error(
                    pos,
                    format!(
                        "`{param}` must be of type {}, not `{value}`",
                        decl.ty.name()
                    ),
                    None,
                );
                continue;
            }
            if let Some(range) = decl.out_of_range(&value) {
                self.error(
                    pos,
                    format!("`{param}` must be {range}, not {value}"),
                    Some(decl.description.clone()),
                );
                continue;
            }
            if !decl.choices.is_empty() && !decl.choices.contains(&value) {
                let choices: Vec<String> = decl.choices.iter().map(Value::to_string).collect();
                self.error(
                    pos,
                    format!(
                        "`{param}` must be one of {}, not {value}",
                        choices.join(", ")
                    ),
                    None,
                );
                continue;
            }
            settings.insert(param.clone(), value);
        }
    }
}
