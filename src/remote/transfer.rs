//! One stage result's way up and down, request by request: fetching an entry (checked, and its
//! signature with a team key), then its packs and lone objects into the store; pushing the lone
//! objects the remote lacks and the packs of small files, then the entry naming its packs. Objects
//! and packs go first, the entry last, so a reader never finds an entry whose data is not there.

use std::collections::HashSet;
use std::sync::Mutex;

use futures::StreamExt as _;

use super::client::{Client, Metadata, Streamed, Unavailable};
use super::pack::{self, Pack, Unpacker};
use super::signing::{self, TeamKey};
use super::{Fetched, IN_FLIGHT, Pushed};
use crate::store::{Entry, Store};

/// Names on the remote (objects, packs) whose bytes failed their hash when fetched: a push that
/// needs one sends it again, whatever the remote says it has.
pub(super) type Suspects = Mutex<HashSet<String>>;

fn suspect(suspects: &Suspects, name: String) {
    suspects.lock().expect("suspects").insert(name);
}

/// How many packs come down at once.
const PACKS_IN_FLIGHT: usize = 4;

/// Objects of this size and more come down in ranges...
const RANGED_FROM: u64 = 2 * RANGE;

/// ...of this size (AWS advises 8 to 16 MB)...
const RANGE: u64 = 8 << 20;

/// ...this many at once.
const RANGES_IN_FLIGHT: usize = 4;

/// The first two characters of `name`, its folder in the bucket (callers pass checked hashes; a
/// shorter name gets a folder of its own rather than a panic).
fn shard(name: &str) -> &str {
    name.get(..2).unwrap_or("--")
}

fn entry_name(key: &str) -> String {
    format!("stages/{}/{key}.json", shard(key))
}

fn object_name(hash: &str) -> String {
    format!("objects/{}/{hash}", shard(hash))
}

fn pack_name(name: &str) -> String {
    format!("packs/{}/{name}", shard(name))
}

/// The remote's entry for `key`, parsed and checked (and its signature, with a team key), with the
/// packs it names: `None` when there is none, else the entry or why it is not used. `held` is what
/// the pipeline's head holds for the key: used when it passes the same checks, else asked for.
pub(super) async fn get_entry(
    client: &Client,
    key: &str,
    team_key: Option<&TeamKey>,
    held: Option<(Vec<u8>, Metadata)>,
) -> Result<Option<Result<(Entry, Vec<String>), String>>, Unavailable> {
    // A key from a record pulled from the remote may be anything: only a hash is asked for.
    if !is_name(key) {
        return Ok(None);
    }
    if let Some((bytes, metadata)) = held
        && let Ok(found) = check_entry(key, &bytes, &metadata, team_key)
    {
        return Ok(Some(Ok(found)));
    }
    let Some((bytes, metadata)) = client.get_with_metadata(&entry_name(key)).await? else {
        return Ok(None);
    };
    Ok(Some(check_entry(key, &bytes, &metadata, team_key)))
}

/// The entry `bytes` for `key` as the remote gave it with `metadata`: checked (and its signature,
/// with a team key), with the packs it names; else why it is not used.
fn check_entry(
    key: &str,
    bytes: &[u8],
    metadata: &Metadata,
    team_key: Option<&TeamKey>,
) -> Result<(Entry, Vec<String>), String> {
    if let Some(team_key) = team_key
        && !team_key.verifies(
            key,
            bytes,
            metadata.get(signing::METADATA).map(String::as_str),
        )
    {
        return Err(format!(
            "the remote's entry for {key} is not signed with the team key; not used"
        ));
    }
    let packs: Vec<String> = metadata
        .get(pack::METADATA)
        .map(|names| names.split(' ').map(String::from).collect())
        .unwrap_or_default();
    if let Some(bad) = packs.iter().find(|name| !is_name(name)) {
        return Err(format!(
            "the remote's entry for {key} names a pack `{bad}` that is not a hash; not used"
        ));
    }
    Store::parse_entry(key, bytes)
        .map(|entry| (entry, packs))
        .map_err(|refused| format!("the remote's {refused}; not used"))
}

/// What `key`'s entry (`bytes`, parsed as `entry`) goes up with: its metadata (its packs' names and,
/// with a team key, its signature), the files sent alone and the packs.
fn outgoing(
    key: &str,
    bytes: &[u8],
    entry: &Entry,
    team_key: Option<&TeamKey>,
) -> (Metadata, Vec<(String, u64)>, Vec<Pack>) {
    let (alone, packs) = pack::plan(Store::sized_objects_of(entry));
    let mut metadata = Metadata::new();
    if !packs.is_empty() {
        let names: Vec<&str> = packs.iter().map(|p| p.name.as_str()).collect();
        metadata.insert(pack::METADATA.into(), names.join(" "));
    }
    if let Some(team_key) = team_key {
        metadata.insert(signing::METADATA.into(), team_key.sign(key, bytes));
    }
    (metadata, alone, packs)
}

/// `key`'s entry as the local store holds it, with the metadata it goes up with (for a head).
pub(super) fn held_here(
    store: &Store,
    key: &str,
    team_key: Option<&TeamKey>,
) -> Option<(Vec<u8>, Metadata)> {
    let bytes = store.entry_bytes(key).ok()??;
    let entry = Store::parse_entry(key, &bytes).ok()?;
    let (metadata, _, _) = outgoing(key, &bytes, &entry, team_key);
    Some((bytes, metadata))
}

/// Whether `name` is 64 lowercase hexadecimal digits (a key or a pack's name, before it goes into a
/// path).
fn is_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Brings `key` from the remote into `store`: the files its packs hold, then the rest alone.
pub(super) async fn fetch(
    client: &Client,
    store: &Store,
    key: &str,
    team_key: Option<&TeamKey>,
    suspects: &Suspects,
    held: Option<(Vec<u8>, Metadata)>,
) -> Result<Fetched, Unavailable> {
    let (entry, packs) = match get_entry(client, key, team_key, held).await? {
        None => return Ok(Fetched::Missing),
        Some(Ok(found)) => found,
        Some(Err(problem)) => return Ok(Fetched::Warning(problem)),
    };
    let unusable = |problem: String| {
        Ok(Fetched::Warning(format!(
            "the remote's entry for {key} is not used: {problem}"
        )))
    };
    let sizes: std::collections::HashMap<String, u64> = Store::sized_objects_of(&entry)
        .into_iter()
        .filter(|(hash, _)| store.object_file(hash).is_none())
        .collect();
    let wanted: HashSet<String> = sizes.keys().cloned().collect();
    if !wanted.is_empty() {
        let unpacked = futures::stream::iter(
            packs
                .iter()
                .map(|name| unpack(client, store, &wanted, name, suspects)),
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
    let alone: Vec<(&String, u64)> = sizes
        .iter()
        .filter(|(hash, _)| store.object_file(hash).is_none())
        .map(|(hash, size)| (hash, *size))
        .collect();
    let downloads = futures::stream::iter(
        alone
            .into_iter()
            .map(|(hash, size)| download(client, store, hash, size, suspects)),
    )
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
    suspects: &Suspects,
) -> Result<Option<String>, Unavailable> {
    let mut unpacker = Unpacker::new(store, wanted);
    let remote_name = pack_name(name);
    let missing = Ok(Some(format!("its pack {name} is missing")));
    let Some(size) = client.size(&remote_name).await? else {
        return missing;
    };
    // In ranges, one after the other: a big pack is never one long request (the request timeout
    // stays meaningful on a slow link).
    let mut problem = None;
    for range in ranges(size) {
        match client
            .stream_range(&remote_name, Some(range), |bytes| unpacker.feed(bytes))
            .await?
        {
            Streamed::Missing => return missing,
            Streamed::Refused(refused) => {
                problem = Some(refused);
                break;
            }
            Streamed::Whole => {}
        }
    }
    let problem = problem.or_else(|| unpacker.finish().err());
    Ok(problem.map(|problem| {
        if !problem.starts_with("cannot write into the store") {
            suspect(suspects, remote_name);
        }
        format!("its pack {name} {problem}")
    }))
}

/// The ranges an object of `size` bytes comes down in.
fn ranges(size: u64) -> impl Iterator<Item = std::ops::Range<u64>> {
    (0..size.div_ceil(RANGE)).map(move |i| i * RANGE..size.min((i + 1) * RANGE))
}

/// Downloads object `hash` of `size` bytes into `store`: a big one in ranges fetched at once (as
/// S3 advises: one stream is slower than several); the problem when it is missing or does not
/// match its hash.
async fn download(
    client: &Client,
    store: &Store,
    hash: &str,
    size: u64,
    suspects: &Suspects,
) -> Result<Option<String>, Unavailable> {
    let name = object_name(hash);
    let problem = download_checked(client, store, hash, size).await?;
    if problem
        .as_ref()
        .is_some_and(|p| p.contains("does not match"))
    {
        suspect(suspects, name);
    }
    Ok(problem)
}

/// [`download`]'s transfer and checks.
async fn download_checked(
    client: &Client,
    store: &Store,
    hash: &str,
    size: u64,
) -> Result<Option<String>, Unavailable> {
    // A problem on this machine's side (a full disk) is this stage's miss, not the remote's fault.
    let local = |e: std::io::Error| format!("cannot write into the store: {e}");
    let mut writer = match store.object_writer(hash) {
        Ok(writer) => writer,
        Err(e) => return Ok(Some(local(e))),
    };
    let name = object_name(hash);
    let missing = Ok(Some(format!("its object {hash} is missing")));
    if size < RANGED_FROM {
        return match client
            .stream(&name, |bytes| writer.write(bytes).map_err(local))
            .await?
        {
            Streamed::Missing => missing,
            Streamed::Refused(problem) => Ok(Some(problem)),
            Streamed::Whole => Ok(writer.finish().err().map(|refused| refused.to_string())),
        };
    }
    match client.size(&name).await? {
        None => return missing,
        Some(actual) if actual != size => {
            return Ok(Some(format!(
                "its object {hash} does not match its hash (it has {actual} bytes, not {size})"
            )));
        }
        Some(_) => {}
    }
    let parts = futures::stream::iter(ranges(size).map(|range| {
        let (writer, name) = (&writer, &name);
        async move {
            let (start, len) = (range.start, range.end - range.start);
            let mut written = 0;
            let streamed = client
                .stream_range(name, Some(range), |bytes| {
                    writer.write_at(start + written, bytes).map_err(local)?;
                    written += bytes.len() as u64;
                    Ok(())
                })
                .await?;
            Ok::<_, Unavailable>(match streamed {
                Streamed::Whole if written == len => None,
                Streamed::Refused(problem) => Some(problem),
                _ => Some(format!(
                    "its object {hash} does not match its hash (a range came short)"
                )),
            })
        }
    }))
    .buffer_unordered(RANGES_IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    for part in parts {
        if let Some(problem) = part? {
            return Ok(Some(problem));
        }
    }
    if let Err(e) = writer.hash_written() {
        return Ok(Some(local(e)));
    }
    Ok(writer.finish().err().map(|refused| refused.to_string()))
}

/// Whether the remote has an entry for `key` that needs no push: any entry, or with a team key one
/// signed with it (an unsigned or wrongly signed one is replaced); none when it is to be replaced.
async fn entry_present(
    client: &Client,
    key: &str,
    team_key: Option<&TeamKey>,
    replace: bool,
) -> Result<bool, Unavailable> {
    if replace {
        return Ok(false);
    }
    if team_key.is_none() {
        return client.exists(&entry_name(key)).await;
    }
    Ok(matches!(
        get_entry(client, key, team_key, None).await?,
        Some(Ok(_))
    ))
}

/// Pushes `key`'s lone objects and packs, then its entry (signed with `team_key`, if any), unless
/// the remote has the entry already; with `replace`, all of them over whatever the remote has
/// (which failed a check when it was looked up).
pub(super) async fn push(
    client: &Client,
    store: &Store,
    key: &str,
    team_key: Option<&TeamKey>,
    replace: bool,
    suspects: &Suspects,
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
    match entry_present(client, key, team_key, replace).await {
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
    let (metadata, alone, packs) = outgoing(key, &bytes, &entry, team_key);
    // Replacing, send everything: what is there failed a check when it was looked up.
    let ask = !replace;
    let uploads = futures::stream::iter(
        alone
            .into_iter()
            .map(|object| upload(client, store, object, ask, suspects)),
    )
    .buffer_unordered(IN_FLIGHT)
    .chain(
        futures::stream::iter(
            packs
                .into_iter()
                .map(|pack| upload_pack(client, store, pack, ask, suspects)),
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
    let replace = replace || team_key.is_some();
    match client
        .put_entry(&entry_name(key), bytes, metadata, replace)
        .await
    {
        Ok(true) => pushed.entries += 1,
        Ok(false) => pushed.present += 1,
        Err(why) => {
            pushed.unavailable = Some(why);
            return pushed;
        }
    }
    pushed.on_remote.push(key.to_string());
    pushed
}

/// Whether `name`, of `size` bytes, must go up: always when not to `ask` or when it is a suspect,
/// else when the remote lacks it or holds another size (cut short, or not what it should be).
async fn needs_upload(
    client: &Client,
    name: &str,
    size: u64,
    ask: bool,
    suspects: &Suspects,
) -> Result<bool, Unavailable> {
    if !ask || suspects.lock().expect("suspects").contains(name) {
        return Ok(true);
    }
    Ok(client.size(name).await? != Some(size))
}

/// Uploads object `hash` of `size` bytes unless (when `ask`ed) the remote has it; (1, its size)
/// when it went up.
async fn upload(
    client: &Client,
    store: &Store,
    (hash, size): (String, u64),
    ask: bool,
    suspects: &Suspects,
) -> Result<Option<(usize, u64)>, Unavailable> {
    let name = object_name(&hash);
    if !needs_upload(client, &name, size, ask, suspects).await? {
        return Ok(None);
    }
    // Checked by the caller; gone since only if `pipe gc` ran beside us, which a push survives.
    let Some(file) = store.object_file(&hash) else {
        return Ok(None);
    };
    let size = client.upload(&name, &file).await?;
    suspects.lock().expect("suspects").remove(&name);
    Ok(Some((1, size)))
}

/// Uploads `pack` unless (when `ask`ed) the remote has it; (its files, its size) when it went up.
async fn upload_pack(
    client: &Client,
    store: &Store,
    pack: Pack,
    ask: bool,
    suspects: &Suspects,
) -> Result<Option<(usize, u64)>, Unavailable> {
    let name = pack_name(&pack.name);
    let size = pack.header.len() as u64 + pack.files.iter().map(|(_, size)| size).sum::<u64>();
    if !needs_upload(client, &name, size, ask, suspects).await? {
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
    suspects.lock().expect("suspects").remove(&name);
    Ok(Some((pack.files.len(), size)))
}
