//! The stage key: blake3 over one serializable struct, [`KeyInput`]. Everything that can change a
//! stage's outputs is in it, and nothing else:
//!
//! | field          | what                                                                      |
//! |----------------|---------------------------------------------------------------------------|
//! | `key_version`  | [`KEY_VERSION`]; bumped when this struct's meaning changes                |
//! | `kind`         | `cmd`, or the built-in kind's name                                        |
//! | `kind_code`    | the fingerprint of the built-in kind's code (absent for commands)         |
//! | `action`       | the commands after interpolation, or the kind's resolved settings         |
//! | `params`       | params the stage lists or references, by dotted name, with their values   |
//! | `inputs`       | each dep path -> content hash (file bytes, or a folder's listing hash)    |
//! | `outs`         | declared output paths and whether each is cached                          |
//! | `wdir`         | the directory commands run in                                             |
//! | `upstream`     | each upstream stage -> the hash of the outputs it produced                |
//! | `nonce`        | a fresh value for `always_changed` stages, so they never hit              |
//!
//! Upstream stages enter through the content of what they produced, not through their own keys: when
//! a rerun upstream stage writes byte-identical outputs, this stage's key is unchanged and it does not
//! rerun (early cutoff). Left out on purpose: environment variables, the machine, the time, the tool
//! versions a command uses. A command stage that depends on those should list them as deps or params.
//! The JSON form of this struct is canonical (sorted maps, no floats formatted twice), so the key is
//! stable across runs and machines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the key format.
/// 2: built-in kinds are keyed by their code's fingerprint instead of a declared version.
pub const KEY_VERSION: u32 = 2;

/// Everything a stage key is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInput {
    /// [`KEY_VERSION`].
    pub key_version: u32,
    /// `cmd` or a built-in kind.
    pub kind: String,
    /// The fingerprint of the built-in kind's code (`src/build/kind_code.rs`); empty for commands.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind_code: String,
    /// Commands or settings.
    pub action: Value,
    /// Params by dotted name.
    pub params: BTreeMap<String, Value>,
    /// Dep path -> content hash.
    pub inputs: BTreeMap<String, String>,
    /// Declared outputs (`path`, or `path (uncached)`).
    pub outs: Vec<String>,
    /// Working directory.
    pub wdir: String,
    /// Upstream stage -> hash of its outputs.
    pub upstream: BTreeMap<String, String>,
    /// Set only for `always_changed` stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl KeyInput {
    /// The key: blake3 of the canonical JSON, hex.
    pub fn key(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a KeyInput always serializes");
        blake3::hash(&bytes).to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> KeyInput {
        KeyInput {
            key_version: KEY_VERSION,
            kind: "cmd".into(),
            kind_code: String::new(),
            action: Value::from(vec!["echo hi"]),
            params: [("lr".to_string(), Value::from(0.001))].into(),
            inputs: [("a".to_string(), "00".repeat(32))].into(),
            outs: vec!["out".into()],
            wdir: ".".into(),
            upstream: BTreeMap::new(),
            nonce: None,
        }
    }

    #[test]
    fn key_is_stable_and_sensitive_to_every_field() {
        let base = input();
        assert_eq!(base.key(), input().key());
        let mut changed = input();
        changed.params.insert("lr".into(), Value::from(0.0005));
        assert_ne!(changed.key(), base.key());
        let mut changed = input();
        changed.outs.push("other".into());
        assert_ne!(changed.key(), base.key());
        let mut changed = input();
        changed.nonce = Some("x".into());
        assert_ne!(changed.key(), base.key());
    }
}
