//! `${...}` interpolation inside stage definitions: `${params.a.b}` (or DVC's bare `${a.b}`) for
//! params, `${item}`, `${item.k}` and `${key}` inside `foreach`/`matrix` stages. A scalar that is exactly
//! one `${...}` keeps the value's type; anything else is string substitution. `\${` is a literal `${`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::yaml::{Node, NodeKind};

/// What `${...}` can refer to in one stage.
pub struct Scope<'a> {
    /// The pipeline's params (after `--set`).
    pub params: &'a Value,
    /// The current `foreach`/`matrix` item.
    pub item: Option<&'a Value>,
    /// The current `foreach` key when iterating a mapping.
    pub key: Option<&'a str>,
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
        let kind = match &node.kind {
            NodeKind::Scalar { text, .. } if text.contains("${") => {
                let value = self
                    .substitute(text, used)
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
                    .map(|n| self.apply(n, used))
                    .collect::<Result<_, _>>()?,
            ),
            NodeKind::Map(entries) => NodeKind::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.apply(v, used)?)))
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
    ) -> Result<Value, (String, Option<String>, Option<String>)> {
        let trimmed = text.trim();
        if let Some(name) = trimmed.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
            && !name.contains(['{', '}'])
        {
            // The whole scalar is one reference: keep the value's type (a list stays a list).
            return self
                .lookup(name.trim(), used)
                .map_err(|(m, h)| (m, h, Some(trimmed.to_string())));
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 && rest.as_bytes()[start - 1] == b'\\' {
                out.push_str(&rest[..start - 1]);
                out.push_str("${");
                rest = &rest[start + 2..];
                continue;
            }
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| (format!("unclosed `${{` in `{text}`"), None, None))?;
            let reference = Some(format!("${{{}}}", &after[..end]));
            let name = after[..end].trim();
            let value = self
                .lookup(name, used)
                .map_err(|(m, h)| (m, h, reference.clone()))?;
            out.push_str(&render(&value).map_err(|what| {
                (
                    format!("`${{{name}}}` is {what} and cannot be part of a string"),
                    Some("use it as the whole value, or refer to one of its elements".to_string()),
                    reference.clone(),
                )
            })?);
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
            _ => self.param(name, used),
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
            item: None,
            key: None,
        };
        let err = scope
            .apply(&scalar("echo ${params.sed}"), &mut BTreeMap::new())
            .unwrap_err();
        assert_eq!(err.message, "unknown param `sed`");
        assert_eq!(err.help.unwrap(), "did you mean `seed`?");
    }
}
