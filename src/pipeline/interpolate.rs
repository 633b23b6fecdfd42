//! `${...}` interpolation inside stage definitions: `${params.a.b}` (or DVC's bare `${a.b}`, which
//! falls back to `params.yaml`) for params, `${item}`, `${item.k}` and `${key}` inside `foreach`/`matrix` stages. A scalar that is exactly
//! one `${...}` keeps the value's type; anything else is string substitution. `\${` is a literal `${`.
//!
//! Inside `cmd` a value is spliced in as literal text for the shell: quoted for the place it lands
//! (bare, inside the author's `"..."` or `'...'`, inside `$(...)`; see [`super::shell`]), a list as
//! separate words, so no value from `--set`, a params file or a `foreach` item can run a command the
//! author did not write; a place no quoting makes safe (backticks, a comment, a here-document) is an
//! error. `${name:raw}` pastes the value unquoted, for an author who means it to be shell syntax.

use std::collections::BTreeMap;

use serde_json::Value;

use super::shell::Context;
use super::yaml::{Node, NodeKind};

/// What `${...}` can refer to in one stage.
pub struct Scope<'a> {
    /// The pipeline's params (after `--set`).
    pub params: &'a Value,
    /// DVC's `params.yaml` (`Null` without one): where a bare `${a.b}` the params lack is looked up.
    pub dvc_params: &'a Value,
    /// The current `foreach`/`matrix` item.
    pub item: Option<&'a Value>,
    /// The current `foreach` key when iterating a mapping.
    pub key: Option<&'a str>,
}

/// Where the text of a value goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A value: a path, a setting, a name.
    Value,
    /// Shell text run by `sh -c` (a stage's `cmd`).
    Shell,
}

/// A failed reference, with the name that could not be resolved.
#[derive(Debug)]
pub struct InterpolationError {
    /// The node the reference is in.
    pub pos: super::yaml::Pos,
    /// What is wrong.
    pub message: String,
    /// Suggestion, if any.
    pub help: Option<String>,
    /// The `${...}` text at fault, to underline it.
    pub reference: Option<String>,
}

impl Scope<'_> {
    /// Replaces every reference in `node`, recording which params were used (dotted name -> value).
    pub fn apply(
        &self,
        node: &Node,
        used: &mut BTreeMap<String, Value>,
    ) -> Result<Node, InterpolationError> {
        self.walk(node, used, Target::Value)
    }

    /// Like [`Scope::apply`] for a stage's body: its `cmd` is shell text, whose references are quoted.
    pub fn apply_stage(
        &self,
        body: &Node,
        used: &mut BTreeMap<String, Value>,
    ) -> Result<Node, InterpolationError> {
        let NodeKind::Map(entries) = &body.kind else {
            return self.apply(body, used);
        };
        let entries = entries
            .iter()
            .map(|(k, v)| {
                let target = match k.as_scalar() {
                    Some("cmd") => Target::Shell,
                    _ => Target::Value,
                };
                Ok((k.clone(), self.walk(v, used, target)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(Node {
            kind: NodeKind::Map(entries),
            pos: body.pos,
        })
    }

    fn walk(
        &self,
        node: &Node,
        used: &mut BTreeMap<String, Value>,
        target: Target,
    ) -> Result<Node, InterpolationError> {
        let kind = match &node.kind {
            NodeKind::Scalar { text, .. } if text.contains("${") => {
                let value =
                    self.substitute(text, used, target)
                        .map_err(|(message, help, reference)| InterpolationError {
                            pos: node.pos,
                            message,
                            help,
                            reference,
                        })?;
                // A string result stays a string even if it looks like `true` or `3`.
                Node::from_value(&value, node.pos).kind
            }
            NodeKind::Scalar { .. } => node.kind.clone(),
            NodeKind::Seq(items) => NodeKind::Seq(
                items
                    .iter()
                    .map(|n| self.walk(n, used, target))
                    .collect::<Result<_, _>>()?,
            ),
            NodeKind::Map(entries) => NodeKind::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.walk(v, used, target)?)))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Node {
            kind,
            pos: node.pos,
        })
    }

    fn substitute(
        &self,
        text: &str,
        used: &mut BTreeMap<String, Value>,
        target: Target,
    ) -> Result<Value, (String, Option<String>, Option<String>)> {
        let trimmed = text.trim();
        if let Some(inner) = trimmed.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
            && !inner.contains(['{', '}'])
        {
            // The whole scalar is one reference: keep the value's type (a list stays a list),
            // except in shell text, where it becomes quoted words.
            let reference = Some(trimmed.to_string());
            let (name, raw) =
                parse_reference(inner, target).map_err(|(m, h)| (m, h, reference.clone()))?;
            let value = self
                .lookup(name, used)
                .map_err(|(m, h)| (m, h, reference.clone()))?;
            if target == Target::Value || raw {
                return Ok(value);
            }
            let words = words(&value)
                .map_err(|what| unspliceable(name, what, target, reference.clone()))?;
            return Context::default()
                .splice(&words)
                .map(Value::String)
                .map_err(|place| unsafe_place(name, place, reference));
        }
        let mut out = String::new();
        let mut rest = text;
        let mut context = Context::default();
        while let Some(start) = rest.find("${") {
            if start > 0 && rest.as_bytes()[start - 1] == b'\\' {
                context.read(&rest[..start - 1]);
                out.push_str(&rest[..start - 1]);
                out.push_str("${");
                rest = &rest[start + 2..];
                continue;
            }
            context.read(&rest[..start]);
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| (format!("unclosed `${{` in `{text}`"), None, None))?;
            let reference = Some(format!("${{{}}}", &after[..end]));
            let (name, raw) = parse_reference(&after[..end], target)
                .map_err(|(m, h)| (m, h, reference.clone()))?;
            let value = self
                .lookup(name, used)
                .map_err(|(m, h)| (m, h, reference.clone()))?;
            let spliced = if target == Target::Shell && !raw {
                let words = words(&value)
                    .map_err(|what| unspliceable(name, what, target, reference.clone()))?;
                context
                    .splice(&words)
                    .map_err(|place| unsafe_place(name, place, reference))?
            } else {
                render(&value).map_err(|what| unspliceable(name, what, target, reference))?
            };
            out.push_str(&spliced);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn lookup(
        &self,
        name: &str,
        used: &mut BTreeMap<String, Value>,
    ) -> Result<Value, (String, Option<String>)> {
        let (root, rest) = name.split_once('.').unwrap_or((name, ""));
        match root {
            "item" => {
                let item = self.item.ok_or_else(|| {
                    (
                        "`${item}` is only defined inside `foreach` or `matrix`".to_string(),
                        None,
                    )
                })?;
                get_path(item, rest)
                    .cloned()
                    .ok_or_else(|| (format!("the current item has no field `{rest}`"), None))
            }
            "key" if rest.is_empty() => self.key.map(Value::from).ok_or_else(|| {
                (
                    "`${key}` is only defined inside `foreach` over a mapping".to_string(),
                    None,
                )
            }),
            "params" if !rest.is_empty() => self.param(rest, used),
            _ => match get_path(self.dvc_params, name) {
                Some(v) if get_path(self.params, name).is_none() => {
                    used.insert(format!("params.yaml:{name}"), v.clone());
                    Ok(v.clone())
                }
                _ => self.param(name, used),
            },
        }
    }

    fn param(
        &self,
        path: &str,
        used: &mut BTreeMap<String, Value>,
    ) -> Result<Value, (String, Option<String>)> {
        match get_path(self.params, path) {
            Some(v) => {
                used.insert(path.to_string(), v.clone());
                Ok(v.clone())
            }
            None => {
                let names = flatten_names(self.params);
                Err((
                    format!("unknown param `{path}`"),
                    super::diagnostic::did_you_mean(path, names.iter().map(String::as_str))
                        .or_else(|| {
                            Some("declare it under `params:` at the top of the file".into())
                        }),
                ))
            }
        }
    }
}

/// The value at a dotted path (`train.lr`), or the value itself for an empty path.
pub fn get_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Every dotted path to a leaf or a node in `value` (`train`, `train.lr`, ...).
pub fn flatten_names(value: &Value) -> Vec<String> {
    let mut names = Vec::new();
    fn walk(prefix: &str, value: &Value, names: &mut Vec<String>) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                names.push(name.clone());
                walk(&name, v, names);
            }
        }
    }
    walk("", value, &mut names);
    names
}

/// The name in a reference and whether it is marked `:raw` (allowed only in shell text).
fn parse_reference(inner: &str, target: Target) -> Result<(&str, bool), (String, Option<String>)> {
    let inner = inner.trim();
    match inner.strip_suffix(":raw") {
        Some(name) if target == Target::Shell => Ok((name.trim_end(), true)),
        Some(_) => Err((
            "`:raw` only applies inside `cmd`".to_string(),
            Some("values elsewhere are never given to a shell; drop `:raw`".into()),
        )),
        None => Ok((inner, false)),
    }
}

/// The error for a value that has no text form where it is used.
fn unspliceable(
    name: &str,
    what: &str,
    target: Target,
    reference: Option<String>,
) -> (String, Option<String>, Option<String>) {
    let place = match target {
        Target::Value => "part of a string",
        Target::Shell => "part of a command",
    };
    (
        format!("`${{{name}}}` is {what} and cannot be {place}"),
        Some("use it as the whole value, or refer to one of its elements".to_string()),
        reference,
    )
}

/// A value as shell words: a list gives one per element; a mapping has none.
fn words(value: &Value) -> Result<Vec<String>, &'static str> {
    match value {
        Value::Array(items) => items.iter().map(render).collect(),
        Value::Object(_) => Err("a mapping"),
        scalar => Ok(vec![render(scalar)?]),
    }
}

/// The error for a reference in a place of `cmd` where no quoting makes a value safe.
fn unsafe_place(
    name: &str,
    place: &str,
    reference: Option<String>,
) -> (String, Option<String>, Option<String>) {
    (
        format!("`${{{name}}}` is {place}"),
        Some(format!(
            "move it out (set a shell variable to it first), or write `${{{name}:raw}}` if its value is meant as shell syntax"
        )),
        reference,
    )
}

/// A value as it appears inside a string; lists and mappings have no string form.
pub fn render(value: &Value) -> Result<String, &'static str> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Bool(_) | Value::Number(_) => Ok(value.to_string()),
        Value::Array(_) => Err("a list"),
        Value::Object(_) => Err("a mapping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scalar(text: &str) -> Node {
        super::super::yaml::parse(text).unwrap().unwrap()
    }

    #[test]
    fn whole_references_keep_types_and_partial_ones_become_strings() {
        let params = json!({"train": {"epochs": 5}, "lr": 0.001});
        let scope = Scope {
            params: &params,
            dvc_params: &Value::Null,
            item: None,
            key: None,
        };
        let mut used = BTreeMap::new();
        let n = scope
            .apply(&scalar("${params.train.epochs}"), &mut used)
            .unwrap();
        assert_eq!(n.to_value(), json!(5));
        let n = scope
            .apply(&scalar("run --lr ${lr} \\${HOME}"), &mut used)
            .unwrap();
        assert_eq!(n.to_value(), json!("run --lr 0.001 ${HOME}"));
        assert_eq!(used.keys().collect::<Vec<_>>(), ["lr", "train.epochs"]);
    }

    #[test]
    fn unknown_params_suggest_the_closest() {
        let params = json!({"lr": 0.1, "seed": 1});
        let scope = Scope {
            params: &params,
            dvc_params: &Value::Null,
            item: None,
            key: None,
        };
        let err = scope
            .apply(&scalar("echo ${params.sed}"), &mut BTreeMap::new())
            .unwrap_err();
        assert_eq!(err.message, "unknown param `sed`");
        assert_eq!(err.help.unwrap(), "did you mean `seed`?");
    }

    fn command(template: &str, params: Value) -> String {
        let scope = Scope {
            params: &params,
            dvc_params: &Value::Null,
            item: None,
            key: None,
        };
        let body = scalar(&format!("cmd: {template:?}"));
        let out = scope.apply_stage(&body, &mut BTreeMap::new()).unwrap();
        out.get("cmd").unwrap().as_scalar().unwrap().to_string()
    }

    #[test]
    fn command_values_are_quoted_for_where_they_land() {
        let v = json!({"a": "x y", "w": "data/file-1.txt", "q": "it's", "l": ["a b", 2]});
        assert_eq!(
            command("run ${w} ${a}", v.clone()),
            "run data/file-1.txt 'x y'"
        );
        assert_eq!(command("run ${q}", v.clone()), r"run 'it'\''s'");
        assert_eq!(command("run \"${q} $x\"", v.clone()), "run \"it's $x\"");
        assert_eq!(
            command("echo \"${l}\" '${q}' ${l}", v.clone()),
            r#"echo "a b 2" 'it'\''s' 'a b' 2"#
        );
        assert_eq!(command("${a}", v.clone()), "'x y'");
        assert_eq!(command("run ${a:raw}", v.clone()), "run x y");
        // Quotes the author escaped do not open a quoted span.
        assert_eq!(command(r"echo \' ${a}", v), r"echo \' 'x y'");
        let dangerous = json!({"d": "$(id) `id` \\ \""});
        assert_eq!(
            command("echo \"${d}\"", dangerous),
            r#"echo "\$(id) \`id\` \\ \"""#
        );
    }
}
