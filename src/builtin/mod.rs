//! Implementations of the built-in stage kinds, looked up by name. Each kind's declaration (inputs,
//! outputs, typed params) lives in `stages/<kind>.yaml`; the spec validator has already checked and
//! defaulted every setting before an implementation sees it.

mod manifest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// What a built-in stage gets to work with.
pub struct Context<'a> {
    /// The workspace root; settings' paths are relative to it.
    pub root: &'a Path,
    /// The stage's name, for messages.
    pub stage: &'a str,
    /// Every declared setting, resolved (inputs and outputs as normalised paths).
    pub settings: &'a BTreeMap<String, Value>,
}

impl Context<'_> {
    /// A path setting, joined to the workspace root.
    pub fn path(&self, name: &str) -> PathBuf {
        let rel = self.settings[name]
            .as_str()
            .expect("path settings are strings");
        self.root.join(rel)
    }

    /// A boolean setting.
    pub fn flag(&self, name: &str) -> bool {
        self.settings[name]
            .as_bool()
            .expect("bool settings are booleans")
    }
}

/// A built-in kind's code.
pub type Implementation = fn(&Context) -> anyhow::Result<()>;

/// The implementation of `kind`, if there is one.
pub fn implementation(kind: &str) -> Option<Implementation> {
    match kind {
        "manifest" => Some(manifest::run),
        _ => None,
    }
}
