//! A remote cache of stage results on S3-compatible storage, shared by every machine of a team: on a
//! local miss a run asks the remote for the stage's key and restores from it; after a stage commits,
//! its objects and then its entry go up in the background, and the run waits for them only before
//! it exits.
//!
//! ```text
//!   config   where the remote is (PIPE_REMOTE, AWS_ENDPOINT_URL, AWS_REGION)
//!   client   the S3 requests, with timeouts, retries, streamed downloads and multipart uploads
//!   signing  the team key that signs entries, so those who check take only what the team pushed
//!   pack     the small files of a result as a few objects (one request, not one a file)
//!   head     a pipeline's last pushed entries in one object (one lookup, not one a stage)
//!   transfer one result's fetch and push, request by request
//! ```
//!
//! In the bucket, under the remote's folder, the layout is the local store's:
//! `objects/ab/<hash>` (named by content, so two machines pushing the same bytes write the same
//! object) and `stages/9c/<key>.json` (written after its objects, only if absent). Nothing from the
//! remote is used before the store's own checks: an entry is parsed and checked like a local one, an
//! object is stored only if its bytes hash to its name. A remote that is down, slow or refuses the
//! credentials costs one warning; the run goes on with the local store. With a team key, pushed
//! entries are signed and looked-up entries without its signature are not used.

mod client;
pub mod config;
mod head;
mod pack;
pub mod signing;
mod transfer;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use self::client::Metadata;
use self::client::{Client, Unavailable};
pub use self::config::{RemoteConfig, RemoteSettings};
pub use self::head::name as head_name;
use self::signing::TeamKey;
use self::transfer::{Suspects, fetch, get_entry, held_here, push};
use crate::store::{Entry, Store};

/// How many objects go up or down at once.
const IN_FLIGHT: usize = 32;

/// What a lookup on the remote found.
#[derive(Debug)]
pub enum Fetched {
    /// The entry (returned) and its objects are now in the local store.
    Restored(Entry),
    /// The remote has no entry for the key (or is known to be unavailable).
    Missing,
    /// The remote could not be used for this key: the warning to show (said once per problem).
    Warning(String),
}

/// What pushes did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pushed {
    /// Entries written.
    pub entries: usize,
    /// Entries the remote had already.
    pub present: usize,
    /// Objects uploaded and their bytes.
    pub objects: usize,
    /// Bytes uploaded.
    pub bytes: u64,
    /// What went wrong with particular entries (one unreadable, an object missing locally).
    pub warnings: Vec<String>,
    /// The keys whose entries (and their files) these pushes wrote.
    on_remote: Vec<String>,
    /// Why the remote could not be reached, if a request failed (settled into one warning).
    unavailable: Option<Unavailable>,
}

impl Pushed {
    /// Adds what `other` pushes did.
    pub fn add(&mut self, other: Pushed) {
        self.entries += other.entries;
        self.present += other.present;
        self.objects += other.objects;
        self.bytes += other.bytes;
        self.warnings.extend(other.warnings);
        self.on_remote.extend(other.on_remote);
        self.unavailable = self.unavailable.take().or(other.unavailable);
    }
}

/// A remote cache in use by one `pipe` process.
pub struct Remote {
    client: Arc<Client>,
    config: RemoteConfig,
    runtime: Runtime,
    /// Set at the first failed request: later ones are not tried (one warning, not one a stage).
    down: AtomicBool,
    /// Pushes under way in the background.
    pending: Mutex<Vec<JoinHandle<Pushed>>>,
    /// Whether runs push what they commit (`--no-push` turns it off).
    push_commits: bool,
    /// The team key: pushed entries are signed with it, looked-up ones must be.
    team_key: Option<TeamKey>,
    /// Keys whose result on the remote could not be used: pushed again whole, over what is there.
    to_replace: Mutex<HashSet<String>>,
    /// Objects and packs on the remote that failed their hash: sent again by any push needing them.
    suspects: Arc<Suspects>,
    /// What the heads lookups were made with hold, each read at its first lookup.
    heads: Mutex<HashMap<String, Arc<Held>>>,
    /// Keys whose entries, with every file they name, this process wrote to the remote or fetched.
    known: Mutex<HashSet<String>>,
}

/// What a head holds: entries' bytes and metadata by key.
type Held = HashMap<String, (Vec<u8>, Metadata)>;

fn record_name(id: &str) -> String {
    format!("runs/{id}.json")
}

impl Remote {
    /// A remote at `config` whose entries are signed with `team_key` (if any); `push_commits` says
    /// whether runs push what their stages commit.
    pub fn new(
        config: RemoteConfig,
        team_key: Option<TeamKey>,
        push_commits: bool,
    ) -> Result<Remote, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the remote's client: {e}"))?;
        Ok(Remote {
            client: Arc::new(Client::new(&config)?),
            config,
            runtime,
            down: AtomicBool::new(false),
            pending: Mutex::new(Vec::new()),
            push_commits,
            team_key,
            to_replace: Mutex::new(HashSet::new()),
            suspects: Arc::default(),
            heads: Mutex::default(),
            known: Mutex::new(HashSet::new()),
        })
    }

    /// What head `head` holds for `key` (each head is read once, at its first lookup).
    async fn held(
        &self,
        key: &str,
        head: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Metadata)>, Unavailable> {
        let Some(head) = head else {
            return Ok(None);
        };
        let read = self.heads.lock().expect("heads").get(head).cloned();
        let held = match read {
            Some(held) => held,
            None => {
                let bytes = self.client.get(head).await?;
                let held = Arc::new(bytes.map(|b| head::parse(&b)).unwrap_or_default());
                self.heads
                    .lock()
                    .expect("heads")
                    .insert(head.to_string(), held.clone());
                held
            }
        };
        Ok(held.get(key).cloned())
    }

    /// Writes head `head`: the entries of `keys`, when this process wrote or fetched every one of
    /// them (so the remote has each file they name: an entry found there already may name other
    /// files than ours); the warning when it could not be written.
    pub fn push_head(&self, store: &Store, head: &str, keys: &[String]) -> Option<String> {
        if self.is_down() || keys.is_empty() {
            return None;
        }
        {
            let known = self.known.lock().expect("known keys");
            if !keys.iter().all(|k| known.contains(k)) {
                return None;
            }
        }
        let team_key = self.team_key.as_ref();
        let held: Option<Vec<(String, Vec<u8>, Metadata)>> = keys
            .iter()
            .map(|key| {
                let (bytes, metadata) = held_here(store, key, team_key)?;
                Some((key.clone(), bytes, metadata))
            })
            .collect();
        let written = self
            .runtime
            .block_on(self.client.put(head, head::build(held?)));
        written.err().and_then(|why| self.failed(why))
    }

    /// Where it is, for messages.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// Notes that the remote failed; the warning to show, or `None` when one was shown already.
    fn failed(&self, why: Unavailable) -> Option<String> {
        let already = self.down.swap(true, Ordering::Relaxed);
        (!already).then(|| {
            format!(
                "the remote cache {} is unavailable ({}); going on with the local cache",
                self.config, why.0
            )
        })
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// The remote's entry for `key` (from head `head` when it holds it), checked, without its
    /// objects (for plans); `None` when it has none, or it is unusable or unavailable.
    pub fn entry(&self, key: &str, head: Option<&str>) -> Option<Entry> {
        if self.is_down() {
            return None;
        }
        let found = self.runtime.block_on(async {
            let held = self.held(key, head).await?;
            get_entry(&self.client, key, self.team_key.as_ref(), held).await
        });
        match found {
            Ok(Some(Ok((entry, _)))) => Some(entry),
            Ok(_) => None,
            Err(why) => {
                self.failed(why);
                None
            }
        }
    }

    /// Looks `key` up on the remote (in head `head` first) and, when it is there, brings its entry
    /// and objects into `store`, each checked before it is kept.
    pub fn fetch(&self, store: &Store, key: &str, head: Option<&str>) -> Fetched {
        self.runtime.block_on(self.fetch_one(store, key, head))
    }

    /// Looks `keys` up and brings what the remote has into `store`, 16 at a time (`pipe pull`).
    pub fn fetch_many(&self, store: &Store, keys: &[String]) -> Vec<Fetched> {
        self.runtime.block_on(
            futures::stream::iter(keys.iter().map(|key| self.fetch_one(store, key, None)))
                .buffer_unordered(16)
                .collect(),
        )
    }

    /// One lookup. A result the remote holds but that cannot be used (a corrupt file, a crafted
    /// or unsigned entry) is noted, so that this process's push of the key replaces it.
    async fn fetch_one(&self, store: &Store, key: &str, head: Option<&str>) -> Fetched {
        if self.is_down() {
            return Fetched::Missing;
        }
        let team_key = self.team_key.as_ref();
        let fetched = match self.held(key, head).await {
            Ok(Some(held)) => {
                match fetch(
                    &self.client,
                    store,
                    key,
                    team_key,
                    &self.suspects,
                    Some(held),
                )
                .await
                {
                    // A head is only a shortcut: when what it holds fails, the key's own entry
                    // (perhaps another machine's, naming other files) is asked for.
                    Ok(Fetched::Warning(_)) => {
                        fetch(&self.client, store, key, team_key, &self.suspects, None).await
                    }
                    other => other,
                }
            }
            Ok(None) => fetch(&self.client, store, key, team_key, &self.suspects, None).await,
            Err(why) => Err(why),
        };
        match fetched {
            Ok(Fetched::Restored(entry)) => {
                self.known
                    .lock()
                    .expect("known keys")
                    .insert(key.to_string());
                Fetched::Restored(entry)
            }
            Ok(Fetched::Warning(warning)) => {
                self.to_replace
                    .lock()
                    .expect("keys to replace")
                    .insert(key.to_string());
                Fetched::Warning(warning)
            }
            Ok(fetched) => fetched,
            Err(why) => self.failed(why).map_or(Fetched::Missing, Fetched::Warning),
        }
    }

    /// The names of the runs whose records are on the remote (`runs/<name>.json`), sorted; the
    /// caller checks that each is a run id.
    pub fn run_ids(&self) -> Result<Vec<String>, String> {
        let names = self
            .runtime
            .block_on(self.client.list_folder("runs"))
            .map_err(|why| {
                format!(
                    "the remote cache {} is unavailable ({})",
                    self.config, why.0
                )
            })?;
        let mut ids: Vec<String> = names
            .iter()
            .filter_map(|name| name.strip_suffix(".json"))
            .map(String::from)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Starts pushing `key`'s entry (and its objects first) in the background.
    pub fn push_in_background(&self, store: &Store, key: &str) {
        if !self.push_commits || self.is_down() {
            return;
        }
        let (client, store, key, team_key, suspects) = (
            self.client.clone(),
            Store::new(store.dir().to_path_buf()),
            key.to_string(),
            self.team_key.clone(),
            self.suspects.clone(),
        );
        let replace = self
            .to_replace
            .lock()
            .expect("keys to replace")
            .remove(&key);
        let task = self.runtime.spawn(async move {
            push(&client, &store, &key, team_key.as_ref(), replace, &suspects).await
        });
        self.pending.lock().expect("pending pushes").push(task);
    }

    /// Whether runs push what they commit (not with `--no-push`).
    pub fn pushes_commits(&self) -> bool {
        self.push_commits
    }

    /// Uploads run `id`'s record (`run.json`'s bytes), so that `pipe pull ID` works on a machine
    /// that does not have it; the warning when it could not.
    pub fn push_record(&self, id: &str, bytes: Vec<u8>) -> Option<String> {
        if self.is_down() {
            return None;
        }
        let put = self
            .runtime
            .block_on(self.client.put(&record_name(id), bytes));
        put.err().and_then(|why| self.failed(why))
    }

    /// The bytes of run `id`'s record on the remote, if it is there.
    pub fn record(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        self.runtime
            .block_on(self.client.get(&record_name(id)))
            .map_err(|why| {
                format!(
                    "the remote cache {} is unavailable ({})",
                    self.config, why.0
                )
            })
    }

    /// Waits for every push started in the background; what they did.
    pub fn finish_pushes(&self) -> Pushed {
        let tasks = std::mem::take(&mut *self.pending.lock().expect("pending pushes"));
        let mut total = Pushed::default();
        for task in tasks {
            match self.runtime.block_on(task) {
                Ok(pushed) => total.add(pushed),
                Err(e) => total.warnings.push(format!("a push failed: {e}")),
            }
        }
        self.settle(total)
    }

    /// Pushes `keys` now (`pipe push`), 16 at once (as a run's lookups go: many results are one
    /// small file each, a request or two).
    pub fn push(&self, store: &Store, keys: &[String]) -> Pushed {
        let total = self.runtime.block_on(async {
            let team_key = self.team_key.as_ref();
            let pushes = futures::stream::iter(
                keys.iter()
                    .map(|key| push(&self.client, store, key, team_key, false, &self.suspects)),
            )
            .buffer_unordered(16)
            .collect::<Vec<Pushed>>()
            .await;
            let mut total = Pushed::default();
            for pushed in pushes {
                total.add(pushed);
            }
            total
        });
        self.settle(total)
    }

    /// Notes the keys `pushed` left on the remote, and turns a failed request among its requests
    /// into the one warning about the remote.
    fn settle(&self, mut pushed: Pushed) -> Pushed {
        let on_remote = std::mem::take(&mut pushed.on_remote);
        self.known.lock().expect("known keys").extend(on_remote);
        if let Some(warning) = pushed.unavailable.take().and_then(|why| self.failed(why)) {
            pushed.warnings.push(warning);
        }
        pushed
    }
}
