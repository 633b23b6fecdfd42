//! Where a remote cache is: `s3://bucket/prefix`, with the endpoint and region of an S3-compatible
//! service, and whether its entries are signed. Three places may say so, each key taken from the
//! first that gives it: the environment (`PIPE_REMOTE`, `AWS_ENDPOINT_URL`, `AWS_REGION` as the AWS
//! CLI reads them, `PIPE_REMOTE_KEY`), the workspace's own file (`.pipe/config.yaml`, this machine's
//! settings) and the pipeline's `remote:` (what the team commits). Plain HTTP is allowed only to a
//! loopback endpoint (a server on this machine), so credentials and results never cross a network
//! unencrypted. Credentials are not part of it: they come from the standard AWS environment
//! variables and profile file and are never written anywhere; the team key is read from the
//! environment or a file the workspace names, never from a pipeline.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::signing::TeamKey;

use crate::util::net::{host_of, is_loopback_host};

/// A remote's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The bucket.
    pub bucket: String,
    /// The folder in the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// An S3-compatible service's address (`http://127.0.0.1:9000`), or AWS when absent.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when absent).
    pub region: Option<String>,
}

impl fmt::Display for RemoteConfig {
    /// `s3://bucket/prefix` (at the endpoint): what messages name; never a credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        if let Some(endpoint) = &self.endpoint {
            write!(f, " at {endpoint}")?;
        }
        Ok(())
    }
}

/// Whether `name` is a bucket name S3 accepts: 3 to 63 lowercase letters, digits, `.` and `-`.
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// Whether `endpoint` (`scheme://host:port/...`) names this machine: `localhost`, `127.x.x.x` or `[::1]`.
fn is_loopback(endpoint: &str) -> bool {
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    is_loopback_host(host_of(authority))
}

impl RemoteConfig {
    /// Parses `url` (`s3://bucket/prefix`) with an endpoint and region; the error says what is wrong.
    pub fn parse(
        url: &str,
        endpoint: Option<String>,
        region: Option<String>,
    ) -> Result<RemoteConfig, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("remote `{url}` must start with `s3://`"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(format!(
                "remote `{url}`: `{bucket}` is not a bucket name (3 to 63 lowercase letters, digits, `.` and `-`)"
            ));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(format!(
                "remote `{url}`: its folder may not contain `.` or `..`"
            ));
        }
        let endpoint = endpoint.filter(|e| !e.is_empty());
        if let Some(e) = &endpoint {
            let authority = e.split_once("://").map_or(e.as_str(), |(_, r)| r);
            if authority.split('/').next().unwrap_or("").contains('@') {
                return Err(format!(
                    "remote endpoint `{e}` may not hold a user name or password (`user@host`): credentials come from the AWS environment"
                ));
            }
            let local_http = e.starts_with("http://") && is_loopback(e);
            if !(e.starts_with("https://") || local_http) {
                return Err(format!(
                    "remote endpoint `{e}` must be https:// (plain http:// only to this machine: localhost, 127.0.0.1, [::1])"
                ));
            }
        }
        Ok(RemoteConfig {
            bucket: bucket.to_string(),
            prefix,
            endpoint,
            region: region.filter(|r| !r.is_empty()),
        })
    }

    /// Where `name` (`objects/ab/ab12…`) lives in the bucket.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

/// What one place says about the remote. A pipeline's `remote:` and the workspace's file are read
/// into it; every key may be left out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSettings {
    /// `s3://bucket/folder`, or `none` for no remote.
    pub url: Option<String>,
    /// The S3-compatible service's address.
    pub endpoint: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// Whether entries must carry the team key's signature (a run without the key is refused).
    pub signed: Option<bool>,
    /// A file holding the team key (relative to the workspace); the workspace's file only.
    pub key_file: Option<PathBuf>,
}

/// The keys a pipeline's `remote:` may have (secrets stay out of files that are committed).
pub const PIPELINE_KEYS: &[&str] = &["url", "endpoint", "region", "signed"];

/// The workspace's own settings file, under the store's folder (so not committed, as DVC's
/// `config.local`).
pub const WORKSPACE_FILE: &str = "config.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceFile {
    remote: Option<RemoteSettings>,
}

impl RemoteSettings {
    /// What the environment says: `PIPE_REMOTE`, `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`),
    /// `AWS_REGION` (else `AWS_DEFAULT_REGION`).
    pub fn from_env() -> RemoteSettings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        RemoteSettings {
            url: var("PIPE_REMOTE"),
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            signed: None,
            key_file: None,
        }
    }

    /// The `remote:` of the workspace's settings file at `path` (nothing when there is no file).
    pub fn from_workspace_file(path: &Path) -> Result<RemoteSettings, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        };
        let file: WorkspaceFile =
            serde_yaml::from_str(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
        Ok(file.remote.unwrap_or_default())
    }

    /// These settings, with what they leave out taken from `under`.
    pub fn over(self, under: RemoteSettings) -> RemoteSettings {
        RemoteSettings {
            url: self.url.or(under.url),
            endpoint: self.endpoint.or(under.endpoint),
            region: self.region.or(under.region),
            signed: self.signed.or(under.signed),
            key_file: self.key_file.or(under.key_file),
        }
    }

    /// The remote these settings name (none without a url, or with `none`) and the team key to sign
    /// and check entries with: `key` (from the environment) or else the `key_file`, read relative
    /// to `root`. `signed` without either is an error.
    pub fn resolve(
        self,
        key: Option<String>,
        root: &Path,
    ) -> Result<Option<(RemoteConfig, Option<TeamKey>)>, String> {
        let Some(url) = self.url.filter(|url| url != "none") else {
            return Ok(None);
        };
        let config = RemoteConfig::parse(&url, self.endpoint, self.region)?;
        let key = match (key, &self.key_file) {
            (Some(text), _) => {
                Some(TeamKey::new(&text).map_err(|e| format!("PIPE_REMOTE_KEY: {e}"))?)
            }
            (None, Some(file)) => Some(TeamKey::read(&root.join(file))?),
            (None, None) => None,
        };
        if self.signed == Some(true) && key.is_none() {
            return Err(format!(
                "the remote {config} takes only signed entries: set PIPE_REMOTE_KEY to the team key, or `key_file:` under `remote:` in `.pipe/{WORKSPACE_FILE}` (or PIPE_REMOTE=none to run without the remote)"
            ));
        }
        Ok(Some((config, key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_comes_from_the_first_place_that_gives_it_and_signed_needs_a_key() {
        let pipeline = RemoteSettings {
            url: Some("s3://team-cache/fracture".into()),
            endpoint: Some("https://minio.lab.example".into()),
            region: Some("eu-west-1".into()),
            signed: Some(true),
            key_file: None,
        };
        let env = RemoteSettings {
            region: Some("us-west-2".into()),
            ..Default::default()
        };
        let root = Path::new("/nonexistent");
        let merged = env
            .clone()
            .over(RemoteSettings::default())
            .over(pipeline.clone());
        assert_eq!(merged.url, pipeline.url);
        assert_eq!(merged.region.as_deref(), Some("us-west-2"));
        let error = merged.clone().resolve(None, root).unwrap_err();
        assert!(error.contains("takes only signed entries"), "{error}");
        let (config, key) = merged
            .resolve(Some("a team key of some length".into()), root)
            .unwrap()
            .unwrap();
        assert_eq!(
            config.to_string(),
            "s3://team-cache/fracture at https://minio.lab.example"
        );
        assert!(key.is_some());
        let off = RemoteSettings {
            url: Some("none".into()),
            ..Default::default()
        };
        assert!(matches!(off.over(pipeline).resolve(None, root), Ok(None)));
    }

    #[test]
    fn the_workspace_file_is_checked_and_names_itself_in_its_errors() {
        let dir = std::env::temp_dir().join(format!("pipe-remote-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(WORKSPACE_FILE);
        assert_eq!(
            RemoteSettings::from_workspace_file(&path),
            Ok(Default::default())
        );
        std::fs::write(&path, "remote:\n  url: s3://b-1/x\n  key_file: team.key\n").unwrap();
        let settings = RemoteSettings::from_workspace_file(&path).unwrap();
        assert_eq!(settings.key_file, Some(PathBuf::from("team.key")));
        std::fs::write(&path, "remote:\n  urll: s3://b-1/x\n").unwrap();
        let error = RemoteSettings::from_workspace_file(&path).unwrap_err();
        assert!(
            error.contains("config.yaml") && error.contains("unknown field `urll`"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_remote_is_an_s3_url_with_plain_http_only_to_this_machine() {
        let local = Some("http://127.0.0.1:9000".to_string());
        let remote = RemoteConfig::parse("s3://team-cache/fracture/", local, None).unwrap();
        assert_eq!(remote.prefix, "fracture");
        assert_eq!(remote.path("stages/ab/x.json"), "fracture/stages/ab/x.json");
        assert_eq!(
            remote.to_string(),
            "s3://team-cache/fracture at http://127.0.0.1:9000"
        );
        for (url, endpoint, problem) in [
            ("gs://b/x", None, "must start with `s3://`"),
            ("s3://B_ad/x", None, "not a bucket name"),
            ("s3://bucket/../x", None, "`.` or `..`"),
            (
                "s3://bucket",
                Some("http://cache.example.org"),
                "must be https://",
            ),
            (
                "s3://bucket",
                Some("http://127.0.0.1.example.org:80"),
                "must be https://",
            ),
            (
                "s3://bucket",
                Some("http://localhost:@cache.example.org"),
                "may not hold a user name",
            ),
            (
                "s3://bucket",
                Some("http://[::1]@cache.example.org/"),
                "may not hold a user name",
            ),
        ] {
            let error = RemoteConfig::parse(url, endpoint.map(String::from), None).unwrap_err();
            assert!(error.contains(problem), "{url}: {error}");
        }
        for ok in [
            "http://localhost:9000",
            "http://[::1]:9000/",
            "https://s3.example.org",
        ] {
            assert!(
                RemoteConfig::parse("s3://bucket", Some(ok.into()), None).is_ok(),
                "{ok}"
            );
        }
    }
}
