//! Command stages (DVC's syntax): `cmd`, `deps`, `outs`, `metrics`, `params` and params files.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::pipeline::diagnostic::{Diagnostic, did_you_mean};
use crate::pipeline::interpolate::{Scope, flatten_names, get_path};
use crate::pipeline::yaml::{self, Node, NodeKind, Pos};
use crate::pipeline::{Action, Out, PathRef, Stage, is_outside, normalize};

impl Checker<'_> {
    /// Each key of stage `name` must belong to its sort of stage (built-in or command).
    fn check_stage_keys(&mut self, name: &str, entries: &[(Node, Node)], builtin: bool) {
        let allowed = if builtin { BUILTIN_KEYS } else { COMMAND_KEYS };
        for (key, _) in entries {
            let key_name = key.as_scalar().unwrap_or_default();
            if !allowed.contains(&key_name) {
                let all: Vec<&str> = COMMAND_KEYS.iter().chain(BUILTIN_KEYS).copied().collect();
                let help = if all.contains(&key_name) {
                    Some(format!(
                        "`{key_name}` belongs to {} stages",
                        if builtin {
                            "command (`cmd`)"
                        } else {
                            "built-in (`uses`)"
                        }
                    ))
                } else {
                    did_you_mean(key_name, all)
                };
                self.error(
                    key.pos,
                    format!("unknown key `{key_name}` in stage `{name}`"),
                    help,
                );
            }
        }
    }

    /// One stage as written (after `foreach`/`matrix` expansion): interpolated, every key and value
    /// checked, paths normalised; `None` when it has errors (they are collected).
    pub(super) fn stage(
        &mut self,
        name: String,
        group: Option<String>,
        raw: &Node,
        scope: &Scope,
        overrides: &[(String, Value)],
    ) -> Option<Stage> {
        let errors_before = self.errors.len();
        let Some(entries) = raw.as_map() else {
            self.error(
                raw.pos,
                format!("stage `{name}` must be a mapping, not {}", raw.type_name()),
                None,
            );
            return None;
        };
        let mut used = BTreeMap::new();
        let body = match scope.apply_stage(raw, &mut used) {
            Ok(b) => b,
            Err(e) => {
                self.interpolation_error(e);
                return None;
            }
        };
        let builtin = body.get("uses").is_some();
        if builtin && body.get("cmd").is_some() {
            self.error(
                raw.pos,
                format!("stage `{name}` has both `cmd` and `uses`"),
                None,
            );
            return None;
        }
        self.check_stage_keys(&name, entries, builtin);
        let always_changed = self.flag(&body, "always_changed");
        let frozen = self.flag(&body, "frozen");
        let desc = body
            .get("desc")
            .and_then(|d| d.as_scalar())
            .map(str::to_string);
        let resources = match body.get("resources") {
            Some(r) => {
                let own = self.resources(r, &format!("stage `{name}`"));
                self.default_resources.overlaid(&own)
            }
            None => self.default_resources.clone(),
        };
        let (action, deps, outs, wdir) = if builtin {
            self.builtin(&name, &body, overrides)?
        } else {
            if !overrides.is_empty() {
                let keys: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
                self.errors.push(Diagnostic::general(self.file, format!(
                        "`--set {name}.{}`: stage `{name}` is a command stage; only params can be set",
                        keys[0]
                    )).with_help("reference a param with `${params.x}` in its `cmd` and set that"));
            }
            self.command(&name, &body, raw.pos, &mut used)?
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Stage {
            name,
            group,
            pos: raw.pos,
            action,
            deps,
            outs,
            params: used,
            wdir,
            always_changed,
            frozen,
            desc,
            resources,
        })
    }

    pub(super) fn command(
        &mut self,
        name: &str,
        body: &Node,
        pos: Pos,
        used: &mut BTreeMap<String, Value>,
    ) -> Option<(Action, Vec<PathRef>, Vec<Out>, String)> {
        let cmds = match body.get("cmd") {
            None => {
                self.error(
                    pos,
                    format!("stage `{name}` has neither `cmd` nor `uses`"),
                    Some("a command stage needs `cmd:`; a built-in one `uses: <kind>`".into()),
                );
                return None;
            }
            Some(
                n @ Node {
                    kind: NodeKind::Seq(items),
                    ..
                },
            ) if items.is_empty() => {
                self.error(n.pos, "`cmd` is an empty list", None);
                return None;
            }
            Some(Node {
                kind: NodeKind::Seq(items),
                ..
            }) => items
                .iter()
                .filter_map(|i| self.string(i, "each `cmd` entry"))
                .collect(),
            Some(n) => self.string(n, "`cmd`").into_iter().collect(),
        };
        let wdir = match body.get("wdir") {
            Some(n) => {
                let w = normalize(".", &self.string(n, "`wdir`")?);
                if is_outside(&w) {
                    self.error(
                        n.pos,
                        format!("`wdir` `{w}` is outside the workspace"),
                        None,
                    );
                }
                w
            }
            None => ".".to_string(),
        };
        let deps = self
            .list(body.get("deps"), "deps")
            .iter()
            .filter_map(|d| {
                let path = self.string(d, "a dep")?;
                Some(PathRef {
                    path: normalize(&wdir, &path),
                    pos: d.pos,
                })
            })
            .collect();
        let mut outs = Vec::new();
        for (key, metrics) in [("outs", false), ("metrics", true), ("plots", false)] {
            for o in self.list(body.get(key), key) {
                if let Some(out) = self.out(o, &wdir, metrics) {
                    outs.push(out);
                }
            }
        }
        for p in self.list(body.get("params"), "params") {
            self.stage_param(p, &wdir, used);
        }
        Some((Action::Command(cmds), deps, outs, wdir))
    }

    pub(super) fn out(&mut self, node: &Node, wdir: &str, metrics: bool) -> Option<Out> {
        let (path_node, options) = match node.as_map() {
            Some([(path, options)]) => (path, Some(options)),
            Some(_) => {
                self.error(
                    node.pos,
                    "an output mapping must have exactly one path",
                    None,
                );
                return None;
            }
            None => (node, None),
        };
        let raw = self.string(path_node, "an output path")?;
        let path = normalize(wdir, &raw);
        if is_outside(&path) || path == "." {
            self.error(
                path_node.pos,
                format!("output `{raw}` is not inside the workspace"),
                None,
            );
            return None;
        }
        let mut out = Out {
            path: PathRef {
                path,
                pos: path_node.pos,
            },
            cache: true,
            persist: false,
            metrics,
        };
        if let Some(opts) = options.filter(|o| !o.to_value().is_null()) {
            let Some(entries) = opts.as_map() else {
                self.error(opts.pos, "output options must be a mapping", None);
                return None;
            };
            for (k, _) in entries {
                self.check_key(k, OUT_OPTIONS, "unknown output option");
            }
            out.cache = opts.get("cache").is_none_or(|_| self.flag(opts, "cache"));
            out.persist = self.flag(opts, "persist");
        }
        Some(out)
    }

    /// One entry of a command stage's `params:`: a key of the pipeline's params (or of DVC's
    /// `params.yaml`), or `{file: [keys]}`.
    pub(super) fn stage_param(
        &mut self,
        node: &Node,
        wdir: &str,
        used: &mut BTreeMap<String, Value>,
    ) {
        match &node.kind {
            NodeKind::Scalar { text, .. } => {
                let dvc_params = self.param_file(DVC_PARAMS_FILE).unwrap_or_default();
                if let Some(v) = get_path(&self.params, text) {
                    used.insert(text.clone(), v.clone());
                } else if let Some(v) = get_path(&dvc_params, text) {
                    used.insert(format!("{DVC_PARAMS_FILE}:{text}"), v.clone());
                } else {
                    let names = flatten_names(&self.params);
                    self.error(
                        node.pos,
                        format!("unknown param `{text}`"),
                        did_you_mean(text, names.iter().map(String::as_str)).or_else(|| {
                            Some("declare it under `params:` at the top of the file".into())
                        }),
                    );
                }
            }
            NodeKind::Map(entries) => {
                for (file_node, keys) in entries {
                    let file = normalize(wdir, file_node.as_scalar().unwrap_or_default());
                    let Some(values) = self.param_file(&file) else {
                        self.error(
                            file_node.pos,
                            format!("params file `{file}` cannot be read as YAML"),
                            None,
                        );
                        continue;
                    };
                    for k in self.list(Some(keys), "params keys").to_vec() {
                        let key = k.as_scalar().unwrap_or_default().to_string();
                        match get_path(&values, &key) {
                            Some(v) => {
                                used.insert(format!("{file}:{key}"), v.clone());
                            }
                            None => {
                                let names = flatten_names(&values);
                                self.error(
                                    k.pos,
                                    format!("`{file}` has no param `{key}`"),
                                    did_you_mean(&key, names.iter().map(String::as_str)),
                                );
                            }
                        }
                    }
                }
            }
            NodeKind::Seq(_) => self.error(
                node.pos,
                "a `params` entry must be a key or a mapping",
                None,
            ),
        }
    }

    /// A params file's values as written (see `Node::to_written_value`); `None` when it cannot be
    /// read as YAML.
    pub(super) fn param_file(&mut self, file: &str) -> Option<Value> {
        self.param_file_node(file).map(Node::to_written_value)
    }

    /// DVC's `params.yaml` as typed values, for bare `${name}` references the pipeline's own params
    /// do not have (DVC reads it as default variables); `Null` when there is none.
    pub(super) fn dvc_variables(&mut self) -> Value {
        self.param_file_node(DVC_PARAMS_FILE)
            .map_or(Value::Null, Node::to_value)
    }

    /// A params file parsed once per pipeline.
    fn param_file_node(&mut self, file: &str) -> Option<&Node> {
        let root = self.root;
        self.param_files
            .entry(file.to_string())
            .or_insert_with(|| {
                std::fs::read_to_string(root.join(file))
                    .ok()
                    .and_then(|text| yaml::parse(&text).ok().flatten())
            })
            .as_ref()
    }
}
