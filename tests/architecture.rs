//! The shape of the code, checked from its text: no import circles between modules, and files and
//! functions small enough to read (docs/architecture.md says why and how).
//!
//! Modules are compared as siblings: the files of one folder with each other, and the folders of
//! the crate root with each other. A reference from `run/slurm/watch.rs` to `store::hash` is an edge
//! `run -> store` at the root and nothing inside `run`; a file using its own folder's front door
//! (`super::X` in a child of `mod.rs`) is the folder's own business, not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root, e.g. `["run", "slurm", "watch"]`.
type ModPath = Vec<String>;

/// Files outside tests that may be longer: the numeric kernels, whose loops read best whole.
const LONG_FILES_ALLOWED: &[&str] = &["model/kernels.rs", "model/ops.rs", "model/cuda/device.rs"];
const MAX_FILE_LINES: usize = 600;
const MAX_FUNCTION_LINES: usize = 100;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/` by its module path: its path under `src/` and its text (tests left out).
fn modules() -> BTreeMap<ModPath, (String, String)> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<ModPath, (String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut p = prefix.to_vec();
                if stem == "main" {
                    continue; // the binary: a crate of its own
                }
                if !matches!(stem, "mod" | "lib") {
                    p.push(stem.to_string());
                }
                let file = path
                    .strip_prefix(src())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let text = without_tests(&std::fs::read_to_string(&path).unwrap());
                out.insert(p, (file, text));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&src(), &[], &mut out);
    out
}

/// The text before a trailing `#[cfg(test)]` module (tests may reach anywhere).
fn without_tests(text: &str) -> String {
    match text.find("\n#[cfg(test)]\nmod ") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// The module paths a file's text names: `crate::a::b::…` and `super::…` (with `use` groups).
fn references(module: &ModPath, text: &str) -> Vec<ModPath> {
    let mut out = Vec::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (start, base) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            for path in expand(rest) {
                let mut full = base.clone();
                full.extend(path);
                out.push(full);
            }
        }
    }
    out
}

/// The paths of one `a::b::{c, d::e}` tail (segments only; stops at the first non-path character).
fn expand(text: &str) -> Vec<Vec<String>> {
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 1;
        let end = group
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(group.len(), |(i, _)| i);
        return split_top_level(&group[..end])
            .into_iter()
            .flat_map(|item| expand(item.trim()))
            .collect();
    }
    let len = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    if len == 0 {
        return vec![Vec::new()];
    }
    let head = text[..len].to_string();
    match text[len..].strip_prefix("::") {
        Some(rest) => expand(rest)
            .into_iter()
            .map(|tail| std::iter::once(head.clone()).chain(tail).collect())
            .collect(),
        None => vec![vec![head]],
    }
}

fn split_top_level(group: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&group[start..]);
    parts
}

/// The edges between siblings, keyed by the folder they are siblings in.
fn sibling_edges() -> BTreeMap<ModPath, BTreeSet<(String, String)>> {
    let modules = modules();
    let mut edges: BTreeMap<ModPath, BTreeSet<(String, String)>> = BTreeMap::new();
    for (module, (_, text)) in &modules {
        for reference in references(module, text) {
            // The longest prefix that is a module.
            let target = (0..=reference.len())
                .rev()
                .map(|n| reference[..n].to_vec())
                .find(|p| modules.contains_key(p))
                .unwrap_or_default();
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // a module and its own folder, in either direction
            }
            edges
                .entry(module[..common].to_vec())
                .or_default()
                .insert((module[common].clone(), target[common].clone()));
        }
    }
    edges
}

/// A circle among `edges`, as the names along it, if there is one.
fn find_circle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut circle = path[i..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for (from, _) in edges {
        if let Some(c) = visit(from, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_imports_in_a_circle() {
    let mut circles = Vec::new();
    for (folder, edges) in sibling_edges() {
        if let Some(circle) = find_circle(&edges) {
            let at = if folder.is_empty() {
                "the crate root".to_string()
            } else {
                format!("src/{}/", folder.join("/"))
            };
            circles.push(format!("in {at}: {}", circle.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_check_sees_circles() {
    let a: ModPath = vec!["a".into()];
    let text_a = "use crate::{b::{self, Thing}, c};";
    assert_eq!(
        references(&a, text_a),
        [
            vec!["b".to_string(), "self".into()],
            vec!["b".into(), "Thing".into()],
            vec!["c".into()]
        ]
    );
    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .iter()
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect();
    assert_eq!(find_circle(&edges).unwrap(), ["a", "b", "c", "a"]);
    let acyclic: BTreeSet<(String, String)> = edges.into_iter().filter(|(x, _)| x != "c").collect();
    assert_eq!(find_circle(&acyclic), None);
}

#[test]
fn files_and_functions_stay_short() {
    let mut long = Vec::new();
    for (file, text) in modules().into_values() {
        let allowed = LONG_FILES_ALLOWED.contains(&file.as_str());
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES && !allowed {
            long.push(format!(
                "src/{file}: {lines} lines (at most {MAX_FILE_LINES})"
            ));
        }
        for (name, line, length) in functions(&text) {
            if length > MAX_FUNCTION_LINES && !allowed {
                long.push(format!(
                    "src/{file}:{line}: `{name}` has {length} lines (at most {MAX_FUNCTION_LINES})"
                ));
            }
        }
    }
    assert!(long.is_empty(), "too long:\n{}", long.join("\n"));
}

/// Each function in `text`: its name, first line and length. A function starts at a line `fn name(`
/// at some indent and ends at the next line holding only `}` at that indent.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(rest) = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p))
        else {
            continue;
        };
        if trimmed.ends_with(';') || trimmed.ends_with('}') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            out.push((name, i + 1, end + 1));
        }
    }
    out
}
