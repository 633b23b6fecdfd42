//! One stage result's way up and down, request by request: fetching an entry (checked, and its
//! signature with a team key), then its packs and lone objects into the store; pushing the lone
//! objects the remote lacks and the packs of small files, then the entry naming its packs. Objects
//! and packs go first, the entry last, so a reader never finds an entry whose data is not there.

use std::collections::HashSet;

use futures::StreamExt as _;

use super::client::{Client, Metadata, Streamed, Unavailable};
use super::pack::{self, Pack, Unpacker};
use super::signing::{self, TeamKey};
use super::{Fetched, IN_FLIGHT, Pushed};
use crate::store::{Entry, Store};

/// How many packs come down at once.
const PACKS_IN_FLIGHT: usize = 4;

fn entry_name(key: &str) -> String {
    format!("stages/{}/{key}.json", &key[..2])
}

fn object_name(hash: &str) -> String {
    format!("objects/{}/{hash}", &hash[..2])
}

fn pack_name(name: &str) -> String {
    format!("packs/{}/{name}", &name[..2])
}

/// The remote's entry for `key`, parsed and checked (and its signature, with a team key), with the
/// packs it names: `None` when there is none, else the entry or why it is not used.
pub(super) async fn get_entry(
    client: &Client,
    key: &str,
    team_key: Option<&TeamKey>,
) -> Result<Option<Result<(Entry, Vec<String>), String>>, Unavailable> {
    let Some((bytes, metadata)) = client.get_with_metadata(&entry_name(key)).await? else {
        return Ok(None);
    };
    if let Some(team_key) = team_key
        && !team_key.verifies(
            key,
            &bytes,
            metadata.get(signing::METADATA).map(String::as_str),
        )
    {
        return Ok(Some(Err(format!(
            "the remote's entry for {key} is not signed with the team key; not used"
        ))));
    }
    let packs: Vec<String> = metadata
        .get(pack::METADATA)
        .map(|names| names.split(' ').map(String::from).collect())
        .unwrap_or_default();
    if let Some(bad) = packs.iter().find(|name| !is_name(name)) {
        return Ok(Some(Err(format!(
            "the remote's entry for {key} names a pack `{bad}` that is not a hash; not used"
        ))));
    }
    Ok(Some(
        Store::parse_entry(key, &bytes)
            .map(|entry| (entry, packs))
            .map_err(|refused| format!("the remote's {refused}; not used")),
    ))
}

/// Whether `name` is 64 lowercase hexadecimal digits (a pack's name, before it goes into a path).
fn is_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Brings `key` from the remote into `store`: the files its packs hold, then the rest alone.
pub(super) async fn fetch(
    client: &Client,
    store: &Store,
    key: &str,
    team_key: Option<&TeamKey>,
) -> Result<Fetched, Unavailable> {
    let (entry, packs) = match get_entry(client, key, team_key).await? {
        None => return Ok(Fetched::Missing),
        Some(Ok(found)) => found,
        Some(Err(problem)) => return Ok(Fetched::Warning(problem)),
    };
    let unusable = |problem: String| {
        Ok(Fetched::Warning(format!(
            "the remote's entry for {key} is not used: {problem}"
        )))
    };
    let wanted: HashSet<String> = Store::objects_of(&entry)
        .into_iter()
        .filter(|hash| store.object_file(hash).is_none())
        .collect();
    if !wanted.is_empty() {
        let unpacked = futures::stream::iter(
            packs
                .iter()
                .map(|name| unpack(client, store, &wanted, name)),
        )
        .buffer_unordered(PACKS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
        for result in unpacked {
            if let Some(problem) = result? {
                return unusable(problem);
            }
        }
    }
    let alone: Vec<&String> = wanted
        .iter()
        .filter(|hash| store.object_file(hash).is_none())
        .collect();
    let downloads =
        futures::stream::iter(alone.into_iter().map(|hash| download(client, store, hash)))
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
    for result in downloads {
        if let Some(problem) = result? {
            return unusable(problem);
        }
    }
    match store.import_entry(&entry) {
        Ok(()) => Ok(Fetched::Restored(entry)),
        Err(refused) => Ok(Fetched::Warning(refused.to_string())),
    }
}

/// Streams pack `name` into `store`, keeping the files of `wanted`; the problem when it is missing
/// or not a valid pack.
async fn unpack(
    client: &Client,
    store: &Store,
    wanted: &HashSet<String>,
    name: &str,
) -> Result<Option<String>, Unavailable> {
    let mut unpacker = Unpacker::new(store, wanted);
    let problem = match client
        .stream(&pack_name(name), |bytes| unpacker.feed(bytes))
        .await?
    {
        Streamed::Missing => Some("is missing".to_string()),
        Streamed::Refused(problem) => Some(problem),
        Streamed::Whole => unpacker.finish().err(),
    };
    Ok(problem.map(|problem| format!("its pack {name} {problem}")))
}

/// Downloads object `hash` into `store`; the problem when it is missing or does not match its hash.
async fn download(
    client: &Client,
    store: &Store,
    hash: &str,
) -> Result<Option<String>, Unavailable> {
    let mut writer = store
        .object_writer(hash)
        .map_err(|e| Unavailable(format!("cannot write into the store: {e}")))?;
    if !client.download(&object_name(hash), &mut writer).await? {
        return Ok(Some(format!("its object {hash} is missing")));
    }
    Ok(writer.finish().err().map(|refused| refused.to_string()))
}

/// Whether the remote has an entry for `key` that needs no push: any entry, or with a team key one
/// signed with it (an unsigned or wrongly signed one is replaced).
async fn entry_present(
    client: &Client,
    key: &str,
    team_key: Option<&TeamKey>,
) -> Result<bool, Unavailable> {
    if team_key.is_none() {
        return client.exists(&entry_name(key)).await;
    }
    Ok(matches!(
        get_entry(client, key, team_key).await?,
        Some(Ok(_))
    ))
}

/// Pushes `key`'s lone objects and packs, then its entry (signed with `team_key`, if any), unless
/// the remote has the entry already.
pub(super) async fn push(
    client: &Client,
    store: &Store,
    key: &str,
    team_key: Option<&TeamKey>,
) -> Pushed {
    let mut pushed = Pushed::default();
    let bytes = match store.entry_bytes(key) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return pushed,
        Err(e) => {
            pushed
                .warnings
                .push(format!("cannot read entry {key}: {e}"));
            return pushed;
        }
    };
    let entry = match Store::parse_entry(key, &bytes) {
        Ok(entry) => entry,
        Err(refused) => {
            pushed.warnings.push(format!("not pushed: {refused}"));
            return pushed;
        }
    };
    match entry_present(client, key, team_key).await {
        Ok(true) => {
            pushed.present += 1;
            return pushed;
        }
        Ok(false) => {}
        Err(why) => {
            pushed.unavailable = Some(why);
            return pushed;
        }
    }
    let objects = Store::sized_objects_of(&entry);
    if let Some((missing, _)) = objects.iter().find(|(h, _)| store.object_file(h).is_none()) {
        pushed.warnings.push(format!(
            "entry {key} not pushed: its object {missing} is not in the local store"
        ));
        return pushed;
    }
    let (alone, packs) = pack::plan(objects);
    let mut metadata = Metadata::new();
    if !packs.is_empty() {
        let names: Vec<&str> = packs.iter().map(|p| p.name.as_str()).collect();
        metadata.insert(pack::METADATA.into(), names.join(" "));
    }
    let uploads = futures::stream::iter(alone.into_iter().map(|hash| upload(client, store, hash)))
        .buffer_unordered(IN_FLIGHT)
        .chain(
            futures::stream::iter(
                packs
                    .into_iter()
                    .map(|pack| upload_pack(client, store, pack)),
            )
            .buffer_unordered(PACKS_IN_FLIGHT),
        )
        .collect::<Vec<_>>()
        .await;
    for upload in uploads {
        match upload {
            Ok(Some((objects, bytes))) => {
                pushed.objects += objects;
                pushed.bytes += bytes;
            }
            Ok(None) => {}
            Err(why) => {
                pushed.unavailable = Some(why);
                return pushed;
            }
        }
    }
    if let Some(team_key) = team_key {
        metadata.insert(signing::METADATA.into(), team_key.sign(key, &bytes));
    }
    let replace = team_key.is_some();
    match client
        .put_entry(&entry_name(key), bytes, metadata, replace)
        .await
    {
        Ok(true) => pushed.entries += 1,
        Ok(false) => pushed.present += 1,
        Err(why) => pushed.unavailable = Some(why),
    }
    pushed
}

/// Uploads object `hash` unless the remote has it; (1, its size) when it went up.
async fn upload(
    client: &Client,
    store: &Store,
    hash: String,
) -> Result<Option<(usize, u64)>, Unavailable> {
    if client.exists(&object_name(&hash)).await? {
        return Ok(None);
    }
    // Checked by the caller; gone since only if `pipe gc` ran beside us, which a push survives.
    let Some(file) = store.object_file(&hash) else {
        return Ok(None);
    };
    let size = client.upload(&object_name(&hash), &file).await?;
    Ok(Some((1, size)))
}

/// Uploads `pack` unless the remote has it; (its files, its size) when it went up.
async fn upload_pack(
    client: &Client,
    store: &Store,
    pack: Pack,
) -> Result<Option<(usize, u64)>, Unavailable> {
    let name = pack_name(&pack.name);
    if client.exists(&name).await? {
        return Ok(None);
    }
    let mut files = Vec::with_capacity(pack.files.len());
    for (hash, _) in &pack.files {
        // Checked by the caller, as above.
        let Some(file) = store.object_file(hash) else {
            return Ok(None);
        };
        files.push(file);
    }
    let size = client.upload_joined(&name, &pack.header, &files).await?;
    Ok(Some((pack.files.len(), size)))
}
