//! The pipeline's `remote:`: the team's remote cache, as a url or a mapping of `url`, `endpoint`,
//! `region` and `signed`. A pipeline is committed, so it may not hold the team key.

use serde_json::Value;

use super::Checker;
use crate::pipeline::yaml::Node;
use crate::remote::RemoteSettings;
use crate::remote::config::{PIPELINE_KEYS, RemoteConfig, WORKSPACE_FILE};

impl Checker<'_> {
    /// The top-level `remote:`, if it is valid.
    pub(super) fn remote(&mut self, node: &Node) -> Option<RemoteSettings> {
        let settings = match node.as_map() {
            Some(entries) => {
                let mut settings = RemoteSettings::default();
                for (key, value) in entries {
                    match key.as_scalar().unwrap_or_default() {
                        "url" => settings.url = self.string(value, "`remote.url`"),
                        "endpoint" => settings.endpoint = self.string(value, "`remote.endpoint`"),
                        "region" => settings.region = self.string(value, "`remote.region`"),
                        "signed" => settings.signed = Some(self.flag(node, "signed")),
                        "key" | "key_file" | "secret" => self.error(
                            key.pos,
                            "a pipeline may not hold the team key: it is a secret, and pipelines are committed",
                            Some(format!("set PIPE_REMOTE_KEY, or `key_file:` under `remote:` in `.pipe/{WORKSPACE_FILE}`")),
                        ),
                        _ => self.check_key(key, PIPELINE_KEYS, "unknown key in `remote`"),
                    }
                }
                settings
            }
            None => RemoteSettings {
                url: self.string(node, "`remote`"),
                ..Default::default()
            },
        };
        let Some(url) = settings.url.as_deref() else {
            if node.as_map().is_some() {
                self.error(
                    node.pos,
                    "`remote` needs a `url`",
                    Some("for example `remote: {url: s3://team-cache/fracture}`".into()),
                );
            }
            return None;
        };
        if url != "none"
            && let Err(problem) =
                RemoteConfig::parse(url, settings.endpoint.clone(), settings.region.clone())
        {
            self.error(node.pos, problem, None);
            return None;
        }
        Some(settings)
    }
}

/// The `remote:` of the pipeline file `file` (relative to `root`), when it is there and valid; a
/// pipeline with an invalid one fails to load, with the error, before anything uses a remote.
pub fn remote_of(file: &str, root: &std::path::Path) -> Option<RemoteSettings> {
    let file = crate::pipeline::canonical_file_name(file, root);
    let source = std::fs::read_to_string(root.join(&file)).ok()?;
    // A file without the word and without an escape (`"re\x6dote"`) has no `remote:` key: most
    // pipelines are not parsed twice (here, then when the run loads them).
    if !source.contains("remote") && !source.contains('\\') {
        return None;
    }
    let node = crate::pipeline::yaml::parse(&source).ok()??;
    let remote = node.get("remote")?;
    let mut checker = Checker {
        file: &file,
        source: &source,
        root,
        errors: Vec::new(),
        params: Value::Null,
        param_files: Default::default(),
        default_resources: Default::default(),
    };
    let settings = checker.remote(remote);
    checker.errors.is_empty().then_some(settings).flatten()
}
