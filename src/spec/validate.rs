//! Turns the parsed YAML tree into stages: applies `--set`, expands `foreach`/`matrix`, interpolates
//! `${...}`, checks every key, type, kind and param, and normalises paths. Every problem is collected
//! before returning, so the user fixes a file in one pass.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::interpolate::{Scope, flatten_names, get_path};
use super::overrides::{Override, param_slot};
use super::yaml::{self, Node, NodeKind, Pos};
use super::{Action, ExecutorKind, Out, PathRef, Resources, Stage, is_outside, normalize};
use crate::kinds;

const TOP_KEYS: &[&str] = &["params", "stages", "executor", "resources"];
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
    param_files: HashMap<String, Option<Value>>,
    /// The pipeline's top-level `resources:`, under every stage's own.
    default_resources: Resources,
}

/// What a valid pipeline file declares.
pub(super) struct Validated {
    pub params: Value,
    pub stages: Vec<Stage>,
    pub executor: Option<ExecutorKind>,
    pub resources: Resources,
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
    let executor = node.get("executor").and_then(|n| {
        let parsed = n.as_scalar().ok_or_else(|| {
            format!(
                "`executor` must be `local` or `slurm`, not {}",
                n.type_name()
            )
        });
        match parsed.and_then(str::parse::<ExecutorKind>) {
            Ok(kind) => Some(kind),
            Err(message) => {
                c.error(n.pos, message, None);
                None
            }
        }
    });
    if let Some(r) = node.get("resources") {
        c.default_resources = c.resources(r, "the pipeline");
    }
    let mut params = match node.get("params") {
        None => Value::Object(Default::default()),
        Some(p) if p.as_map().is_some() => p.to_value(),
        Some(p) => {
            c.error(
                p.pos,
                format!("`params` must be a mapping, not {}", p.type_name()),
                None,
            );
            Value::Object(Default::default())
        }
    };
    let stage_nodes: &[(Node, Node)] = match node.get("stages") {
        Some(s) => match s.as_map() {
            Some(m) if !m.is_empty() => m,
            _ => {
                c.error(
                    s.pos,
                    "`stages` must be a non-empty mapping of stage names to stages",
                    None,
                );
                &[]
            }
        },
        None => {
            c.error(node.pos, "the pipeline has no `stages`", None);
            &[]
        }
    };
    let stage_overrides = c.apply_overrides(&mut params, overrides, stage_nodes);
    c.params = params.clone();
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
        for (expanded_name, body, item, key) in c.expand(name, body, &params) {
            let scope = Scope {
                params: &params,
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
        })
    } else {
        c.errors.sort_by_key(|d| d.pos.map(|p| (p.line, p.col)));
        Err(c.errors)
    }
}

/// Slurm's `--mem`: a number, optionally followed by K, M, G or T.
fn valid_memory(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    text.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Slurm's `--time`: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M` or `D-H:M:S`, all numbers.
fn valid_time(text: &str) -> bool {
    let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    days.is_none_or(numbers) && parts.len() <= 3 && parts.iter().all(|p| numbers(p))
}

/// A name Slurm takes as it is and a job script can hold without quoting.
fn valid_slurm_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
}

fn valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
}

type Expanded = (String, Node, Option<Value>, Option<String>);

impl Checker<'_> {
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

    /// Applies `--set` to params; returns the overrides addressed to built-in stages, by stage name.
    fn apply_overrides(
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
    fn expand(&mut self, name: &str, body: &Node, params: &Value) -> Vec<Expanded> {
        let plain = vec![(name.to_string(), body.clone(), None, None)];
        let Some(entries) = body.as_map() else {
            return plain;
        };
        let scope = Scope {
            params,
            item: None,
            key: None,
        };
        let mut unused = BTreeMap::new();
        if let Some(foreach) = body.get("foreach") {
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
            return match items.to_value() {
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
                Value::Object(map) => map
                    .into_iter()
                    .map(|(k, item)| (format!("{name}@{k}"), template.clone(), Some(item), Some(k)))
                    .collect(),
                _ => {
                    self.error(foreach.pos, "`foreach` must be a list or a mapping", None);
                    Vec::new()
                }
            };
        }
        if let Some(matrix) = body.get("matrix") {
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
            return combos
                .into_iter()
                .map(|(suffix, item)| {
                    (
                        format!("{name}@{}", suffix.join("-")),
                        template.clone(),
                        Some(Value::Object(item)),
                        None,
                    )
                })
                .collect();
        }
        plain
    }

    fn stage(
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
        let body = match scope.apply(raw, &mut used) {
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

    /// A `resources:` mapping (of `owner`), each value checked against Slurm's syntax.
    fn resources(&mut self, node: &Node, owner: &str) -> Resources {
        let mut r = Resources::default();
        let Some(entries) = node.as_map() else {
            self.error(
                node.pos,
                format!(
                    "`resources` of {owner} must be a mapping (cpus, mem, gpus, time, partition, account), not {}",
                    node.type_name()
                ),
                None,
            );
            return r;
        };
        for (key, value) in entries {
            let name = key.as_scalar().unwrap_or_default();
            let text = value.as_scalar().unwrap_or_default().trim().to_string();
            let count = || text.parse::<u32>().ok();
            let problem = match name {
                "cpus" => match count().filter(|n| *n > 0) {
                    Some(n) => {
                        r.cpus = Some(n);
                        None
                    }
                    None => Some("`cpus` must be a whole number of at least 1"),
                },
                "gpus" => match count() {
                    Some(n) => {
                        r.gpus = Some(n);
                        None
                    }
                    None => Some("`gpus` must be a whole number"),
                },
                "mem" if valid_memory(&text) => {
                    r.mem = Some(text.clone());
                    None
                }
                "mem" => {
                    Some("`mem` must be megabytes or a number with K, M, G or T (`500M`, `4G`)")
                }
                "time" if valid_time(&text) => {
                    r.time = Some(text.clone());
                    None
                }
                "time" => Some("`time` must be minutes, `H:MM:SS`, `MM:SS` or `D-HH:MM:SS`"),
                "partition" | "account" if valid_slurm_name(&text) => {
                    let slot = if name == "partition" {
                        &mut r.partition
                    } else {
                        &mut r.account
                    };
                    *slot = Some(text.clone());
                    None
                }
                "partition" | "account" => Some("a partition or account is a plain name"),
                _ => {
                    self.check_key(key, RESOURCE_KEYS, &format!("unknown resource in {owner}:"));
                    None
                }
            };
            if let Some(problem) = problem {
                self.error(
                    value.pos,
                    format!("{problem} (in {owner}), not `{text}`"),
                    None,
                );
            }
        }
        r
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

    #[allow(clippy::type_complexity)]
    fn command(
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

    fn out(&mut self, node: &Node, wdir: &str, metrics: bool) -> Option<Out> {
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
    fn stage_param(&mut self, node: &Node, wdir: &str, used: &mut BTreeMap<String, Value>) {
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

    fn param_file(&mut self, file: &str) -> Option<Value> {
        if let Some(cached) = self.param_files.get(file) {
            return cached.clone();
        }
        let value = std::fs::read_to_string(self.root.join(file))
            .ok()
            .and_then(|text| yaml::parse(&text).ok().flatten())
            .map(|n| n.to_value());
        self.param_files.insert(file.to_string(), value.clone());
        value
    }

    #[allow(clippy::type_complexity)]
    fn builtin(
        &mut self,
        name: &str,
        body: &Node,
        overrides: &[(String, Value)],
    ) -> Option<(Action, Vec<PathRef>, Vec<Out>, String)> {
        let uses = body.get("uses")?;
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
        let with = body.get("with");
        let with_pos = key_pos(body, "with").unwrap_or(body.pos);
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
        let mut settings = BTreeMap::new();
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
        let action = Action::Builtin {
            kind: kind.kind.clone(),
            version: kind.version,
            settings,
        };
        Some((action, deps, outs, ".".to_string()))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_memory_and_time_syntax() {
        for ok in ["500", "500M", "4G", "1T", "64k"] {
            assert!(valid_memory(ok), "{ok}");
        }
        for bad in ["", "G", "4GB", "lots", "1.5G", "-1"] {
            assert!(!valid_memory(bad), "{bad}");
        }
        for ok in ["30", "30:00", "1:00:00", "2-00", "2-12:00", "1-00:00:00"] {
            assert!(valid_time(ok), "{ok}");
        }
        for bad in ["", "1h", "1:2:3:4", "-1:00", "1-", "soon"] {
            assert!(!valid_time(bad), "{bad}");
        }
    }
}
