//! Reads YAML text into a tree of [`Node`]s that remember their line and column.
//!
//! serde_yaml gives values without positions, and every spec error must point at a line, so the
//! pipeline file is read through yaml-rust2's event parser instead. Aliases are expanded here under a
//! node budget: an alias bomb is refused before it expands, not after it has eaten the memory.

use std::collections::HashMap;

use serde_json::Value;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The most nodes a document may hold once its aliases are expanded.
pub const MAX_NODES: usize = 100_000;

/// A place in a source file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl Pos {
    fn from_marker(marker: &Marker) -> Pos {
        Pos {
            line: marker.line(),
            col: marker.col() + 1,
        }
    }
}

/// One YAML value with the position where it starts.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the value is.
    pub kind: NodeKind,
    /// Where the value starts.
    pub pos: Pos,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        /// The text as written (after unquoting).
        text: String,
        /// Whether the scalar was unquoted, so `true`, `3` and `null` keep their YAML types.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order, with scalar keys.
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax or structure problem at a position.
#[derive(Debug, Clone)]
pub struct YamlError {
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl Node {
    /// The mapping entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The scalar text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value under `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name for the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
            NodeKind::Scalar { .. } => match self.to_value() {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "a string",
            },
        }
    }

    /// The node as a JSON value, resolving plain scalars by the YAML 1.2 core schema.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar { text, plain } => {
                if *plain {
                    resolve_plain_scalar(text)
                } else {
                    Value::String(text.clone())
                }
            }
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_scalar().unwrap_or_default().to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// The node with every scalar as it was written: a plain scalar as its text, a quoted one as its
    /// text in double quotes. What a stage's key records of a params file, so that anything a YAML 1.1
    /// reader (PyYAML) could read differently (`yes` and `"yes"`, `0.001` and `1e-3`) changes the key.
    pub fn to_written_value(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar { text, plain: true } => Value::String(text.clone()),
            NodeKind::Scalar { text, plain: false } => Value::String(format!("{text:?}")),
            NodeKind::Seq(items) => {
                Value::Array(items.iter().map(Node::to_written_value).collect())
            }
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = k.as_scalar().unwrap_or_default().to_string();
                        (key, v.to_written_value())
                    })
                    .collect(),
            ),
        }
    }

    /// A node holding `value`, placed at `pos` (for values produced by interpolation).
    pub fn from_value(value: &Value, pos: Pos) -> Node {
        let kind = match value {
            Value::Array(items) => {
                NodeKind::Seq(items.iter().map(|v| Node::from_value(v, pos)).collect())
            }
            Value::Object(map) => NodeKind::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Node::from_value(&Value::String(k.clone()), pos),
                            Node::from_value(v, pos),
                        )
                    })
                    .collect(),
            ),
            Value::String(s) => NodeKind::Scalar {
                text: s.clone(),
                plain: false,
            },
            Value::Null => NodeKind::Scalar {
                text: "null".into(),
                plain: true,
            },
            other => NodeKind::Scalar {
                text: other.to_string(),
                plain: true,
            },
        };
        Node { kind, pos }
    }

    fn count(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar { .. } => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            NodeKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// Resolves an unquoted scalar: null, booleans, integers and floats as YAML 1.2 has them, else a string.
pub fn resolve_plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | ".nan" | ".NaN" | ".NAN" => {
            // JSON has no infinities or NaN; keep the text.
            return Value::String(text.to_string());
        }
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Value::from(f);
    }
    Value::String(text.to_string())
}

enum Open {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>),
}

/// Parses one YAML document. An empty document gives `Ok(None)`.
pub fn parse(source: &str) -> Result<Option<Node>, YamlError> {
    let mut parser = Parser::new_from_str(source);
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut budget = MAX_NODES;
    let mut root: Option<Node> = None;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| YamlError {
            pos: Pos::from_marker(e.marker()),
            message: e.info().to_string(),
        })?;
        let pos = Pos::from_marker(&marker);
        let finished = match event {
            Event::StreamEnd => break,
            Event::DocumentEnd => {
                if root.is_some() {
                    break;
                }
                None
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart => None,
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                Some((
                    Node {
                        kind: NodeKind::Scalar { text, plain },
                        pos,
                    },
                    anchor,
                ))
            }
            Event::Alias(id) => Some((expand_alias(&anchors, id, pos, &mut budget)?, 0)),
            Event::SequenceStart(anchor, _) => {
                stack.push(Open::Seq(pos, anchor, Vec::new()));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Open::Map(pos, anchor, Vec::new(), None));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(start, anchor, items)) => Some((
                    Node {
                        kind: NodeKind::Seq(items),
                        pos: start,
                    },
                    anchor,
                )),
                _ => unreachable!("yaml-rust2 balances sequence events"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(start, anchor, entries, _)) => {
                    // A block mapping "starts" at its first key, which is where people look.
                    let pos = entries.first().map_or(start, |(k, _)| k.pos);
                    Some((
                        Node {
                            kind: NodeKind::Map(entries),
                            pos,
                        },
                        anchor,
                    ))
                }
                _ => unreachable!("yaml-rust2 balances mapping events"),
            },
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        budget = budget.checked_sub(1).ok_or_else(|| YamlError {
            pos: node.pos,
            message: format!("the document has more than {MAX_NODES} nodes"),
        })?;
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(open) => open.add(node)?,
        }
    }
    Ok(root)
}

/// A copy of the node anchor `id` names, at `pos`, its size taken from `budget` (an alias bomb runs
/// out of budget instead of memory).
fn expand_alias(
    anchors: &HashMap<usize, Node>,
    id: usize,
    pos: Pos,
    budget: &mut usize,
) -> Result<Node, YamlError> {
    let target = anchors.get(&id).ok_or_else(|| YamlError {
        pos,
        message: "alias to an unknown anchor".to_string(),
    })?;
    let size = target.count();
    if size > *budget {
        return Err(YamlError {
            pos,
            message: format!(
                "aliases expand to more than {MAX_NODES} nodes; refusing to expand (a YAML alias bomb?)"
            ),
        });
    }
    *budget -= size;
    let mut copy = target.clone();
    copy.pos = pos;
    Ok(copy)
}

impl Open {
    /// Adds a finished node: an item of a sequence, or a mapping's key (a plain string, not seen
    /// before in it) or the value of its pending key.
    fn add(&mut self, node: Node) -> Result<(), YamlError> {
        match self {
            Open::Seq(_, _, items) => items.push(node),
            Open::Map(_, _, entries, pending_key) => match pending_key.take() {
                None => {
                    let Some(key) = node.as_scalar() else {
                        return Err(YamlError {
                            pos: node.pos,
                            message: "mapping keys must be plain strings".to_string(),
                        });
                    };
                    if entries.iter().any(|(k, _)| k.as_scalar() == Some(key)) {
                        return Err(YamlError {
                            pos: node.pos,
                            message: format!("duplicate key `{key}`"),
                        });
                    }
                    *pending_key = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nb:\n  - x\n").unwrap().unwrap();
        let b = root.get("b").unwrap();
        assert_eq!(b.pos.line, 3);
        let NodeKind::Seq(items) = &b.kind else {
            panic!()
        };
        assert_eq!(items[0].pos, Pos { line: 3, col: 5 });
    }

    #[test]
    fn plain_scalars_keep_their_types_and_quoted_ones_are_strings() {
        let root = parse("a: 1\nb: '1'\nc: 1e-4\nd: true\ne: ~\nf: 1.2.3")
            .unwrap()
            .unwrap();
        let v = root.to_value();
        assert_eq!(v["a"], Value::from(1));
        assert_eq!(v["b"], Value::from("1"));
        assert_eq!(v["c"], Value::from(1e-4));
        assert_eq!(v["d"], Value::from(true));
        assert_eq!(v["e"], Value::Null);
        assert_eq!(v["f"], Value::from("1.2.3"));
    }

    #[test]
    fn aliases_expand() {
        let root = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        assert_eq!(root.to_value()["b"], serde_json::json!([1, 2]));
    }

    #[test]
    fn alias_bomb_is_refused_before_expanding() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let list = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{}", err.message);
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(err.message.contains("duplicate key `a`"));
    }
}
