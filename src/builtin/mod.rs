//! Implementations of the built-in stage kinds, looked up by name. Each kind's declaration (inputs,
//! outputs, typed params) lives in `stages/<kind>.yaml`; the spec validator has already checked and
//! defaulted every setting before an implementation sees it.

mod augment;
mod evaluate;
mod ingest;
mod manifest;
mod report;
mod split;
pub mod train;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use serde_json::Value;

/// What a built-in stage gets to work with.
pub struct Context<'a> {
    /// The workspace root; settings' paths are relative to it.
    pub root: &'a Path,
    /// The stage's name, for messages.
    pub stage: &'a str,
    /// Every declared setting, resolved (inputs and outputs as normalised paths).
    pub settings: &'a BTreeMap<String, Value>,
    /// Where its log lines and progress go.
    pub reporter: &'a dyn Reporter,
}

/// Where a built-in stage's log lines and progress go while it works. The executor that runs the
/// stage provides it: the local one writes the lines to the stage's log and passes progress on to
/// the run's events, which the terminal draws.
pub trait Reporter: Sync {
    /// Appends a line to the stage's log (a failure to log never fails the stage).
    fn log(&self, line: &str);
    /// Says how far the stage has come.
    fn progress(&self, progress: &Progress);
    /// Records one row of the stage's metrics as it goes (train: one per epoch), for whoever
    /// watches the run (the dashboard draws them live).
    fn metrics(&self, row: &Value);
}

/// How far a stage has come: `done` of `total` `unit`s, and what it is doing now.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Units done so far.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// What is counted (`images`, `steps`).
    pub unit: &'static str,
    /// What it is doing now (`epoch 3/32, loss 0.4121`).
    pub message: String,
}

/// Units of a stage's work done so far, from any thread (see [`Context::counter`]).
pub struct Counter<'a> {
    ctx: &'a Context<'a>,
    done: AtomicU64,
    total: u64,
    every: u64,
    unit: &'static str,
    what: &'static str,
}

impl Counter<'_> {
    /// One more unit done.
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done.is_multiple_of(self.every) || done == self.total {
            self.ctx
                .progress(done, self.total, self.unit, self.what.to_string());
        }
    }
}

/// A reporter that keeps nothing: for a stage run outside a pipeline run.
pub struct Unreported;

impl Reporter for Unreported {
    fn log(&self, _: &str) {}
    fn progress(&self, _: &Progress) {}
    fn metrics(&self, _: &Value) {}
}

impl Context<'_> {
    /// A path setting, joined to the workspace root.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(self.text(name))
    }

    /// An optional path setting: `None` when left empty.
    pub fn optional_path(&self, name: &str) -> Option<PathBuf> {
        let rel = self.text(name);
        (!rel.is_empty()).then(|| self.root.join(rel))
    }

    /// A text setting.
    pub fn text(&self, name: &str) -> &str {
        self.settings[name].as_str().expect("declared as a string")
    }

    /// A boolean setting.
    pub fn flag(&self, name: &str) -> bool {
        self.settings[name].as_bool().expect("declared as a bool")
    }

    /// A whole-number setting that must not be negative (every int declares a range, checked when the
    /// pipeline loaded; this says so again for a caller outside a pipeline).
    pub fn count(&self, name: &str) -> anyhow::Result<u64> {
        let value = &self.settings[name];
        value.as_u64().ok_or_else(|| {
            anyhow::anyhow!(
                "stage `{}`: `{name}` must be 0 or more, not {value}",
                self.stage
            )
        })
    }

    /// A number setting (its declared range was checked when the pipeline loaded).
    pub fn number(&self, name: &str) -> f64 {
        self.settings[name].as_f64().expect("declared as a number")
    }

    /// A list-of-text setting.
    pub fn texts(&self, name: &str) -> anyhow::Result<Vec<String>> {
        self.settings[name]
            .as_array()
            .expect("declared as a list")
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => anyhow::bail!(
                    "stage `{}`: `{name}` must list text, not {other}",
                    self.stage
                ),
            })
            .collect()
    }

    /// Appends `text` to the stage's log (a failure to log never fails the stage).
    pub fn log(&self, text: &str) {
        self.reporter.log(text);
    }

    /// Records one row of metrics as the stage goes (see [`Reporter::metrics`]).
    pub fn metrics(&self, row: &Value) {
        self.reporter.metrics(row);
    }

    /// Says that `done` of `total` `unit`s are done, and what the stage is doing now.
    pub fn progress(&self, done: u64, total: u64, unit: &'static str, message: String) {
        self.reporter.progress(&Progress {
            done,
            total,
            unit,
            message,
        });
    }

    /// A counter for `total` `unit`s of work that parallel workers tick off, reported as progress
    /// (`what` the stage is doing) about 200 times in all.
    pub fn counter(&self, total: usize, unit: &'static str, what: &'static str) -> Counter<'_> {
        Counter {
            ctx: self,
            done: AtomicU64::new(0),
            total: total as u64,
            every: (total as u64 / 200).max(1),
            unit,
            what,
        }
    }

    /// The output folder `name`, created empty.
    pub fn output_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.path(name);
        if dir.exists() {
            crate::util::fsutil::remove_path(&dir)
                .with_context(|| format!("cannot clear `{}`", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        Ok(dir)
    }

    /// Writes `value` as pretty JSON to the output `name`.
    pub fn write_json(&self, name: &str, value: &Value) -> anyhow::Result<()> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write `{}`", path.display()))
    }
}

/// A built-in kind's code.
pub type Implementation = fn(&Context) -> anyhow::Result<()>;

/// The implementation of `kind`, if there is one.
pub fn implementation(kind: &str) -> Option<Implementation> {
    match kind {
        "ingest" => Some(ingest::run),
        "validate" => Some(validate::run),
        "split" => Some(split::run),
        "augment" => Some(augment::run),
        "report" => Some(report::run),
        "manifest" => Some(manifest::run),
        "train" => Some(train::run),
        "evaluate" => Some(evaluate::run),
        _ => None,
    }
}
