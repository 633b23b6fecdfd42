//! What each stage of a pipeline last ran with, kept in `.pipe/state/`, so `pipe status` and the run
//! record can say why a stage reruns in DVC's words: `param lr 0.001 -> 0.0005`,
//! `dep data/raw modified: 3 files`, `never run`. It explains keys; it never decides a hit or a miss
//! (only the store does), so a lost state file costs explanations, not correctness.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::hash::{Tree, TreeKind};
use crate::store::key::KeyInput;
use crate::util::fsutil;

/// The last known state of every stage of one pipeline file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PipelineState {
    /// Stage name -> what it last ran (or was restored) with.
    pub stages: BTreeMap<String, StageState>,
}

/// One stage's last key and the file listings of its folder deps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageState {
    /// The key.
    pub key: String,
    /// What the key was computed from.
    pub input: KeyInput,
    /// Folder dep path -> (file -> hash), for counting changed files.
    #[serde(default)]
    pub dep_files: BTreeMap<String, BTreeMap<String, String>>,
}

impl StageState {
    /// Builds the state from a key input and the dep trees it was computed from.
    pub fn new(key: String, input: KeyInput, deps: &BTreeMap<String, Tree>) -> StageState {
        let dep_files = deps
            .iter()
            .filter(|(_, t)| t.kind == TreeKind::Dir)
            .map(|(p, t)| {
                let files = t
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.hash.clone()))
                    .collect();
                (p.clone(), files)
            })
            .collect();
        StageState {
            key,
            input,
            dep_files,
        }
    }
}

/// Where the state of pipeline file `pipeline` lives.
pub fn path(store_dir: &Path, pipeline: &str) -> PathBuf {
    let id = blake3::hash(pipeline.as_bytes()).to_hex();
    store_dir.join("state").join(format!("{}.json", &id[..16]))
}

impl PipelineState {
    /// Loads the state; missing or unreadable state is empty (it only feeds explanations).
    pub fn load(path: &Path) -> PipelineState {
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Merges `updates` into the state on disk (re-read first, so concurrent runs of other stages
    /// are kept) and writes it atomically.
    pub fn merge_and_save(
        path: &Path,
        updates: BTreeMap<String, StageState>,
    ) -> std::io::Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut state = PipelineState::load(path);
        state.stages.extend(updates);
        let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        fsutil::write_atomic(path, &bytes)
    }
}

/// Why a stage whose key is `now` differs from its last state, in user terms.
pub fn explain(
    last: Option<&StageState>,
    now: &KeyInput,
    deps: &BTreeMap<String, Tree>,
) -> Vec<String> {
    let Some(last) = last else {
        return vec!["never run".to_string()];
    };
    let before = &last.input;
    let mut reasons = Vec::new();
    if before.key_version != now.key_version {
        reasons.push("pipe's key format changed".to_string());
    }
    if before.kind != now.kind {
        reasons.push(format!("kind {} -> {}", before.kind, now.kind));
    } else if before.kind_code != now.kind_code {
        reasons.push(format!(
            "the code of kind `{}` changed ({} -> {})",
            now.kind,
            before.kind_code.get(..8).unwrap_or(&before.kind_code),
            now.kind_code.get(..8).unwrap_or(&now.kind_code)
        ));
    } else if before.action != now.action && before.params == now.params {
        // With changed params the action differs through `${...}`; the param lines say why.
        reasons.push(describe_action_change(&before.action, &now.action));
    }
    for (name, value) in &now.params {
        match before.params.get(name) {
            None => reasons.push(format!("param {name} added")),
            Some(old) if old != value => {
                reasons.push(format!("param {name} {} -> {}", short(old), short(value)))
            }
            _ => {}
        }
    }
    for name in before
        .params
        .keys()
        .filter(|n| !now.params.contains_key(*n))
    {
        reasons.push(format!("param {name} removed"));
    }
    for (path, hash) in &now.inputs {
        match before.inputs.get(path) {
            None => reasons.push(format!("dep {path} added")),
            Some(old) if old != hash => {
                reasons.push(describe_dep_change(path, last, deps.get(path)))
            }
            _ => {}
        }
    }
    for path in before
        .inputs
        .keys()
        .filter(|p| !now.inputs.contains_key(*p))
    {
        reasons.push(format!("dep {path} removed"));
    }
    if before.outs != now.outs {
        reasons.push("outputs changed".to_string());
    }
    if before.wdir != now.wdir {
        reasons.push(format!("wdir {} -> {}", before.wdir, now.wdir));
    }
    if now.nonce.is_some() {
        reasons.push("always_changed".to_string());
    }
    if reasons.is_empty() {
        reasons.push("not in the cache".to_string());
    }
    reasons
}

fn describe_dep_change(path: &str, last: &StageState, tree: Option<&Tree>) -> String {
    let (Some(old), Some(tree)) = (
        last.dep_files.get(path),
        tree.filter(|t| t.kind == TreeKind::Dir),
    ) else {
        return format!("dep {path} modified");
    };
    let now: BTreeMap<&str, &str> = tree
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.hash.as_str()))
        .collect();
    let added = now.keys().filter(|p| !old.contains_key(**p)).count();
    let removed = old.keys().filter(|p| !now.contains_key(p.as_str())).count();
    let modified = now
        .iter()
        .filter(|(p, h)| old.get(**p).is_some_and(|o| o != *h))
        .count();
    if added == 0 && removed == 0 && modified > 0 {
        return format!(
            "dep {path} modified: {modified} file{}",
            if modified == 1 { "" } else { "s" }
        );
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (modified, "modified"),
        (added, "added"),
        (removed, "removed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} file{} {what}", if n == 1 { "" } else { "s" }));
        }
    }
    if parts.is_empty() {
        format!("dep {path} modified")
    } else {
        format!("dep {path} changed: {}", parts.join(", "))
    }
}

fn describe_action_change(before: &Value, now: &Value) -> String {
    match (before, now) {
        (Value::Object(old), Value::Object(new)) => {
            let changed: Vec<String> = new
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .map(|(k, v)| match old.get(k) {
                    Some(o) => format!("setting {k} {} -> {}", short(o), short(v)),
                    None => format!("setting {k} added"),
                })
                .collect();
            if changed.is_empty() {
                "settings changed".to_string()
            } else {
                changed.join("; ")
            }
        }
        _ => "command changed".to_string(),
    }
}

/// A value shortened for one line.
fn short(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hash::FileEntry;
    use crate::store::key::KEY_VERSION;

    fn input(lr: f64, dep_hash: &str) -> KeyInput {
        KeyInput {
            key_version: KEY_VERSION,
            kind: "cmd".into(),
            kind_code: String::new(),
            action: Value::from(vec!["train"]),
            params: [("lr".to_string(), Value::from(lr))].into(),
            inputs: [("data/raw".to_string(), dep_hash.to_string())].into(),
            outs: vec![],
            wdir: ".".into(),
            upstream: BTreeMap::new(),
            nonce: None,
        }
    }

    fn dir(files: &[(&str, &str)]) -> Tree {
        Tree {
            kind: TreeKind::Dir,
            hash: String::new(),
            files: files
                .iter()
                .map(|(p, h)| FileEntry {
                    path: p.to_string(),
                    hash: h.to_string(),
                    size: 1,
                    exec: false,
                    link: None,
                })
                .collect(),
        }
    }

    #[test]
    fn explains_params_and_folder_changes_in_user_terms() {
        let old_tree = dir(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let last = StageState::new(
            "k".into(),
            input(0.001, "h1"),
            &[("data/raw".to_string(), old_tree)].into(),
        );
        let new_tree = dir(&[("a", "9"), ("b", "2"), ("d", "4")]);
        let deps = [("data/raw".to_string(), new_tree)].into();
        let reasons = explain(Some(&last), &input(0.0005, "h2"), &deps);
        assert_eq!(
            reasons,
            [
                "param lr 0.001 -> 0.0005",
                "dep data/raw changed: 1 file modified, 1 file added, 1 file removed"
            ]
        );
        assert_eq!(explain(None, &input(0.1, "h"), &deps), ["never run"]);
        let mut rebuilt = input(0.0005, "h2");
        rebuilt.kind_code = "ab".repeat(32);
        let before = StageState::new("k".into(), input(0.0005, "h2"), &deps);
        assert_eq!(
            explain(Some(&before), &rebuilt, &deps),
            ["the code of kind `cmd` changed ( -> abababab)"]
        );
    }
}
