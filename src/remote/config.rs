//! Where a remote cache is: `s3://bucket/prefix`, with the endpoint and region of an S3-compatible
//! service. Read from the environment (`PIPE_REMOTE`, with the endpoint from `AWS_ENDPOINT_URL` and
//! the region from `AWS_REGION` as the AWS CLI reads them). Plain HTTP is
//! allowed only to a loopback endpoint (a server on this machine), so credentials and results never
//! cross a network unencrypted. Credentials are not part of it: they come from the standard AWS
//! environment variables and are never written anywhere.

use std::fmt;

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

    /// The remote the environment names (`PIPE_REMOTE`), if any.
    pub fn from_env() -> Result<Option<RemoteConfig>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(url) = var("PIPE_REMOTE") else {
            return Ok(None);
        };
        let endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
        RemoteConfig::parse(&url, endpoint, region)
            .map(Some)
            .map_err(|e| format!("PIPE_REMOTE: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

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
