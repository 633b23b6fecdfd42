//! Pipeline files: the only module that reads YAML. [`load`] turns a file plus `--set` overrides into a
//! validated [`Pipeline`], or into every problem found, each with file, line and column.
//!
//! ```text
//!   text --yaml::parse--> Node --overrides--> params --validate (interpolate, expand foreach)--> Pipeline
//! ```

pub mod diagnostic;
pub mod graph;
pub mod interpolate;
pub mod kinds;
pub mod overrides;
mod shell;
pub mod sweep;
mod validate;
pub mod yaml;

pub use self::validate::remote_of;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use overrides::Override;
pub use yaml::Pos;

/// A validated pipeline: params resolved, stages expanded and interpolated, paths normalised.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file as the user named it.
    pub file: String,
    /// The file's text, for diagnostics found later (graph checks).
    pub source: String,
    /// Pipeline-wide params after `--set`.
    pub params: Value,
    /// Stages in file order (`foreach`/`matrix` stages expanded in place).
    pub stages: Vec<Stage>,
    /// Where its stages run unless `pipe run --executor` says otherwise (`executor:`).
    pub executor: Option<ExecutorKind>,
    /// The top-level `resources:` (each stage's are merged over them).
    pub resources: Resources,
    /// The top-level `sweep:`: the axes `pipe run` sweeps unless told otherwise.
    pub sweep: Vec<sweep::Axis>,
}

/// Where the stages that must run are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// In worker threads of the `pipe run` process.
    Local,
    /// As Slurm jobs (`sbatch`), one per stage, ordered by job dependencies.
    Slurm,
}

impl ExecutorKind {
    /// The name used in pipeline files, on the command line and in `run.json`.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

impl std::str::FromStr for ExecutorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<ExecutorKind, String> {
        match s {
            "local" => Ok(ExecutorKind::Local),
            "slurm" => Ok(ExecutorKind::Slurm),
            other => Err(format!(
                "unknown executor `{other}` (expected `local` or `slurm`)"
            )),
        }
    }
}

/// What a stage asks of a cluster scheduler (`resources:`, merged over the pipeline's top-level
/// `resources:`). Not part of the key: where a stage runs does not change what it writes. Ignored by
/// the local executor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs for the stage (`--cpus-per-task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory, Slurm's syntax: megabytes, or a number with K, M, G or T (`--mem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// GPUs (`--gpus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Time limit, Slurm's syntax: minutes, `H:MM:SS` or `D-HH:MM:SS` (`--time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Partition (`--partition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Account charged (`--account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Resources {
    /// These resources with every field `over` sets replaced.
    pub fn overlaid(&self, over: &Resources) -> Resources {
        Resources {
            cpus: over.cpus.or(self.cpus),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            gpus: over.gpus.or(self.gpus),
            time: over.time.clone().or_else(|| self.time.clone()),
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            account: over.account.clone().or_else(|| self.account.clone()),
        }
    }
}

/// One stage, ready to be hashed and run.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Unique name; expanded stages are `group@item`.
    pub name: String,
    /// The `foreach`/`matrix` stage this one was expanded from.
    pub group: Option<String>,
    /// Where the stage is defined.
    pub pos: Pos,
    /// What the stage does.
    pub action: Action,
    /// Files and folders it reads, relative to the workspace root (or absolute).
    pub deps: Vec<PathRef>,
    /// Files and folders it writes, relative to the workspace root.
    pub outs: Vec<Out>,
    /// Params that are part of its key (dotted name -> value): those listed under `params:` and those
    /// referenced with `${...}`.
    pub params: BTreeMap<String, Value>,
    /// Directory the command runs in, relative to the workspace root (`.` by default).
    pub wdir: String,
    /// Run every time (DVC's `always_changed`); dependents still see early cutoff.
    pub always_changed: bool,
    /// Never run (DVC's `frozen`): its outputs are used as they are.
    pub frozen: bool,
    /// Free-text description.
    pub desc: Option<String>,
    /// What it asks of a cluster scheduler.
    pub resources: Resources,
}

/// What a stage runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Shell commands run one after another with `sh -c`.
    Command(Vec<String>),
    /// A built-in kind with its resolved settings (defaults filled in).
    Builtin {
        /// The kind's name.
        kind: String,
        /// The fingerprint of the kind's code.
        code: &'static str,
        /// Every setting of the kind, resolved.
        settings: BTreeMap<String, Value>,
    },
}

/// A path with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    /// Normalised path, `/`-separated.
    pub path: String,
    /// Where it was written.
    pub pos: Pos,
}

/// A stage output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// The path and its position.
    pub path: PathRef,
    /// Whether it goes into the store (DVC's `cache`); uncached outputs are hashed but not restored.
    pub cache: bool,
    /// Whether it is kept, not deleted, before the stage runs (DVC's `persist`).
    pub persist: bool,
    /// Whether it is a metrics file (JSON or YAML) whose values go into `run.json`.
    pub metrics: bool,
}

/// Why a pipeline could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read pipeline `{file}`: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems, all listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads, parses and validates a pipeline file. `root` is the workspace root, where DVC-style
/// `params.yaml` files are looked up.
pub fn load(file: &str, root: &Path, overrides: &[Override]) -> Result<Pipeline, LoadError> {
    let file = canonical_file_name(file, root);
    let source = std::fs::read_to_string(root.join(&file)).map_err(|source| LoadError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, source, root, overrides).map_err(|d| LoadError::Invalid(Diagnostics(d)))
}

/// One name per pipeline file, whatever way it was typed (`p.yaml`, `./p.yaml`, `sub/../p.yaml`, or
/// an absolute path inside the workspace): the name that keys its last state and its records.
pub fn canonical_file_name(file: &str, root: &Path) -> String {
    let inside = Path::new(file)
        .strip_prefix(root)
        .ok()
        .and_then(Path::to_str)
        .unwrap_or(file);
    normalize(".", inside)
}

/// Validates pipeline text that has already been read.
pub fn parse(
    file: &str,
    source: String,
    root: &Path,
    overrides: &[Override],
) -> Result<Pipeline, Vec<Diagnostic>> {
    let node = match yaml::parse(&source) {
        Ok(Some(node)) => node,
        Ok(None) => {
            return Err(vec![
                Diagnostic::general(file, "the pipeline file is empty")
                    .with_help("a pipeline needs a `stages:` mapping"),
            ]);
        }
        Err(e) => {
            return Err(vec![Diagnostic::at(
                file,
                &source,
                e.pos,
                format!("invalid YAML: {}", e.message),
            )]);
        }
    };
    let validated = validate::validate(file, &source, &node, root, overrides)?;
    Ok(Pipeline {
        file: file.to_string(),
        source,
        params: validated.params,
        stages: validated.stages,
        executor: validated.executor,
        resources: validated.resources,
        sweep: validated.sweep,
    })
}

impl Pipeline {
    /// A diagnostic pointing at `pos` in this pipeline's file.
    pub fn diagnostic(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.file, &self.source, pos, message)
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Outputs that would overwrite what the workspace keeps: the `reserved` folders (path, what:
    /// the store, the runs folder), this pipeline file or its params files. A
    /// stage's outputs are deleted before it runs, so `outs: [.pipe]` would wipe the store.
    pub fn reserved_output_errors(&self, reserved: &[(String, &str)]) -> Vec<Diagnostic> {
        let mut kept: Vec<(String, String)> = reserved
            .iter()
            .map(|(path, what)| (path.clone(), what.to_string()))
            .collect();
        kept.push((self.file.clone(), "the pipeline file".into()));
        // Each params file once, however many stages read it.
        let params_files: std::collections::BTreeSet<&str> = self
            .stages
            .iter()
            .flat_map(|s| s.params.keys())
            .filter_map(|key| key.split_once(':').map(|(file, _)| file))
            .collect();
        kept.extend(
            params_files
                .into_iter()
                .map(|file| (file.to_string(), format!("the params file `{file}`"))),
        );
        let mut errors = Vec::new();
        for stage in &self.stages {
            for out in &stage.outs {
                let path = &out.path.path;
                // (The workspace root itself is refused earlier, as not inside the workspace.)
                let clash = kept
                    .iter()
                    .find(|(r, _)| is_within(path, r) || is_within(r, path))
                    .map(|(_, what)| what.clone());
                if let Some(what) = clash {
                    errors.push(
                        self.diagnostic(
                            out.path.pos,
                            format!(
                                "output `{path}` of stage `{}` would overwrite {what}",
                                stage.name
                            ),
                        )
                        .with_help(
                            "a stage's outputs are deleted before it runs; write somewhere else",
                        ),
                    );
                }
            }
        }
        errors
    }
}

impl Stage {
    /// `cmd` for command stages, the kind's name for built-in ones.
    pub fn kind_name(&self) -> &str {
        match &self.action {
            Action::Command(_) => "cmd",
            Action::Builtin { kind, .. } => kind,
        }
    }

    /// For a `report` stage, the folder of figures the run's report is published around.
    pub fn report_figures(&self) -> Option<&str> {
        match &self.action {
            Action::Builtin { kind, settings, .. } if kind == "report" => {
                settings.get("figures").and_then(Value::as_str)
            }
            _ => None,
        }
    }
}

/// Lexically normalises `path` joined to `wdir`: `.` and `..` resolved, `/` separators, no trailing
/// slash. A relative path that climbs above the workspace root keeps its leading `..` parts.
pub fn normalize(wdir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') || wdir == "." || wdir.is_empty() {
        path.to_string()
    } else {
        format!("{wdir}/{path}")
    };
    let absolute = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&"..") => parts.push(".."),
                Some(_) => {
                    parts.pop();
                }
                None if !absolute => parts.push(".."),
                None => {}
            },
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    match (absolute, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// Whether a normalised path lies outside the workspace (absolute, or climbing above the root).
pub fn is_outside(path: &str) -> bool {
    path.starts_with('/') || path == ".." || path.starts_with("../")
}

/// Whether `inner` is `outer` or lies under it (path-component-wise).
pub fn is_within(inner: &str, outer: &str) -> bool {
    outer == "."
        || inner == outer
        || (inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes()[outer.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_joins_and_resolves() {
        assert_eq!(normalize(".", "./a//b/"), "a/b");
        assert_eq!(normalize("sub", "../x"), "x");
        assert_eq!(normalize(".", "/abs/../y"), "/y");
        assert_eq!(normalize("a", "../../shared/data"), "../shared/data");
        assert!(is_outside("../shared/data") && is_outside("/y") && !is_outside("a/..b"));
    }

    #[test]
    fn within_is_by_component() {
        assert!(is_within("data/raw/x", "data/raw"));
        assert!(is_within("data/raw", "data/raw"));
        assert!(!is_within("data/rawer", "data/raw"));
    }
}
