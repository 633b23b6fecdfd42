//! The S3 client: `object_store`'s `AmazonS3` (SigV4, retries with backoff, multipart uploads) with
//! the few operations a remote cache needs: is a name there, download it (streamed), upload a file
//! (in parts when it is big) and write a name only if it is absent. Every request has a timeout and a
//! bounded number of retries, so a remote that is down or slow costs seconds, not a hung run.
//!
//! Credentials come only from the standard AWS places: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, else the profile (`AWS_PROFILE`, or `default`)
//! of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, or `~/.aws/credentials`).

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as Name;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore as _,
    ObjectStoreExt as _, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::config::RemoteConfig;

/// Files at least this big go up in parts of this size.
const PART: usize = 16 << 20;

/// An object's user metadata (S3's `x-amz-meta-*`), by name.
pub type Metadata = std::collections::BTreeMap<String, String>;

/// How streaming an object ended.
pub enum Streamed {
    /// It is not there.
    Missing,
    /// Every byte was taken.
    Whole,
    /// The taker refused a piece: why.
    Refused(String),
}

/// A request that could not be carried out: the remote is down, slow, or refuses us.
#[derive(Debug, Clone, PartialEq)]
pub struct Unavailable(pub String);

fn unavailable(e: object_store::Error) -> Unavailable {
    // object_store's messages name the request and the status, never a credential.
    Unavailable(e.to_string())
}

/// A connection to one remote.
pub struct Client {
    store: Arc<AmazonS3>,
    config: RemoteConfig,
}

/// `(key id, secret, session token)` of `profile` in the shared credentials file `text`.
fn profile_credentials(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if in_profile {
            let value = Some(value.trim().to_string());
            match key.trim() {
                "aws_access_key_id" => id = value,
                "aws_secret_access_key" => secret = value,
                "aws_session_token" => token = value,
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

/// The credentials the environment gives, else the shared credentials file's profile.
fn with_credentials(builder: AmazonS3Builder) -> AmazonS3Builder {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("AWS_ACCESS_KEY_ID").is_some() {
        return builder;
    }
    let file = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".aws/credentials")));
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let found = file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| profile_credentials(&text, &profile));
    match found {
        Some((id, secret, token)) => {
            let builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            match token {
                Some(token) => builder.with_token(token),
                None => builder,
            }
        }
        None => builder,
    }
}

impl Client {
    /// A client for `config` (nothing is sent until the first request).
    pub fn new(config: &RemoteConfig) -> Result<Client, String> {
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(60))
            .with_allow_http(
                config
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
            );
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
        };
        let mut builder = with_credentials(AmazonS3Builder::from_env())
            .with_bucket_name(&config.bucket)
            .with_region(config.region.as_deref().unwrap_or("us-east-1"))
            .with_client_options(options)
            .with_retry(retry)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder
            .build()
            .map_err(|e| format!("remote {config}: {e}"))?;
        Ok(Client {
            store: Arc::new(store),
            config: config.clone(),
        })
    }

    fn name(&self, name: &str) -> Name {
        Name::from(self.config.path(name))
    }

    /// Whether `name` is there.
    pub async fn exists(&self, name: &str) -> Result<bool, Unavailable> {
        Ok(self.size(name).await?.is_some())
    }

    /// The size of `name`, or `None` when it is not there.
    pub async fn size(&self, name: &str) -> Result<Option<u64>, Unavailable> {
        match self.store.head(&self.name(name)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The bytes of `name`, or `None` when it is not there.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        Ok(self.get_with_metadata(name).await?.map(|(bytes, _)| bytes))
    }

    /// The bytes of `name` and its user metadata, or `None` when it is not there.
    pub async fn get_with_metadata(
        &self,
        name: &str,
    ) -> Result<Option<(Vec<u8>, Metadata)>, Unavailable> {
        match self.store.get(&self.name(name)).await {
            Ok(found) => {
                let metadata = found
                    .attributes
                    .iter()
                    .filter_map(|(key, value)| match key {
                        Attribute::Metadata(key) => Some((key.to_string(), value.to_string())),
                        _ => None,
                    })
                    .collect();
                let bytes = found.bytes().await.map_err(unavailable)?.to_vec();
                Ok(Some((bytes, metadata)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The file names directly in folder `folder` (listed with a delimiter, one level only).
    pub async fn list_folder(&self, folder: &str) -> Result<Vec<String>, Unavailable> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.name(folder)))
            .await
            .map_err(unavailable)?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|object| object.location.filename().map(String::from))
            .collect())
    }

    /// Streams `name` into `take`, piece by piece, until the end or what `take` refuses.
    pub async fn stream(
        &self,
        name: &str,
        take: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<Streamed, Unavailable> {
        self.stream_range(name, None, take).await
    }

    /// Streams bytes `range` of `name` (all of it without one) into `take`, piece by piece, so a
    /// big object is never held in memory.
    pub async fn stream_range(
        &self,
        name: &str,
        range: Option<std::ops::Range<u64>>,
        mut take: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<Streamed, Unavailable> {
        let options = GetOptions {
            range: range.map(Into::into),
            ..GetOptions::default()
        };
        let found = match self.store.get_opts(&self.name(name), options).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(Streamed::Missing),
            Err(e) => return Err(unavailable(e)),
        };
        let mut stream = found.into_stream();
        while let Some(chunk) = stream.next().await {
            if let Err(problem) = take(&chunk.map_err(unavailable)?) {
                return Ok(Streamed::Refused(problem));
            }
        }
        Ok(Streamed::Whole)
    }

    /// Uploads the file at `path` as `name`: in one request, or in parts when it is big.
    pub async fn upload(&self, name: &str, path: &Path) -> Result<u64, Unavailable> {
        self.upload_joined(name, &[], &[path.to_path_buf()]).await
    }

    /// Uploads `head` followed by the files at `paths` as one object `name`: in one request, or in
    /// parts when it is big; its size.
    pub async fn upload_joined(
        &self,
        name: &str,
        head: &[u8],
        paths: &[std::path::PathBuf],
    ) -> Result<u64, Unavailable> {
        let local = |path: &Path, e: std::io::Error| {
            Unavailable(format!("cannot read `{}`: {e}", path.display()))
        };
        let mut size = head.len() as u64;
        for path in paths {
            size += std::fs::metadata(path).map_err(|e| local(path, e))?.len();
        }
        if size < PART as u64 {
            let mut bytes = head.to_vec();
            for path in paths {
                let mut file = std::fs::File::open(path).map_err(|e| local(path, e))?;
                file.read_to_end(&mut bytes).map_err(|e| local(path, e))?;
            }
            self.put(name, bytes).await?;
            return Ok(size);
        }
        let upload = self
            .store
            .put_multipart(&self.name(name))
            .await
            .map_err(unavailable)?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
        parts.write(head);
        let mut buffer = vec![0; PART];
        for path in paths {
            let mut file = std::fs::File::open(path).map_err(|e| local(path, e))?;
            loop {
                let read = file.read(&mut buffer).map_err(|e| local(path, e))?;
                if read == 0 {
                    break;
                }
                parts.wait_for_capacity(4).await.map_err(unavailable)?;
                parts.write(&buffer[..read]);
            }
        }
        parts.finish().await.map_err(unavailable)?;
        Ok(size)
    }

    /// Writes `bytes` as `name`, replacing what is there.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), Unavailable> {
        let payload = PutPayload::from(bytes);
        self.store
            .put(&self.name(name), payload)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Writes `bytes` as `name` with user `metadata`: only if nothing is there already, or else
    /// (`replace`) whatever is there; true when this wrote it.
    pub async fn put_entry(
        &self,
        name: &str,
        bytes: Vec<u8>,
        metadata: Metadata,
        replace: bool,
    ) -> Result<bool, Unavailable> {
        let mut attributes = Attributes::new();
        for (key, value) in metadata {
            attributes.insert(Attribute::Metadata(key.into()), value.into());
        }
        let options = PutOptions {
            mode: if replace {
                PutMode::Overwrite
            } else {
                PutMode::Create
            },
            attributes,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.name(name), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_read_from_the_shared_credentials_file() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        assert_eq!(
            profile_credentials(text, "default"),
            Some(("A".into(), "B".into(), None))
        );
        assert_eq!(
            profile_credentials(text, "ci"),
            Some(("C".into(), "D".into(), Some("E".into())))
        );
        assert_eq!(profile_credentials(text, "other"), None);
    }
}
