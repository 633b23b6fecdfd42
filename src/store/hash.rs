//! Content hashing of files and folders with blake3, and the stat cache that lets an unchanged file skip
//! rehashing.
//!
//! Folders are hashed file by file in parallel (rayon); a big file is memory-mapped and hashed with
//! blake3's own threads, so nothing reads a whole big file into memory. The stat cache remembers
//! (size, mtime, inode) -> hash per path; a file whose stat changed is rehashed, so a touched file with
//! the same bytes keeps its hash and causes no rerun.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::store::walk::{Links, walk};
use crate::util::fsutil::{self, with_path};

/// Files at least this big are read in chunks of this size, each hashed on several threads.
const CHUNK: usize = 8 << 20;

/// The content of one file or folder: its hash and, for a folder, every file in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// `file` or `dir`.
    pub kind: TreeKind,
    /// blake3 of the file, or of the folder's sorted listing of (path, hash, executable).
    pub hash: String,
    /// The files, relative to the tree's root (one entry with an empty path for a file).
    pub files: Vec<FileEntry>,
}

/// Whether a [`Tree`] is a file or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeKind {
    /// A single file.
    File,
    /// A folder of files.
    Dir,
}

/// One file of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the tree root, `/`-separated; empty for a single-file tree.
    pub path: String,
    /// blake3, hex.
    pub hash: String,
    /// Length in bytes.
    pub size: u64,
    /// Whether the owner may execute it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exec: bool,
    /// For a symbolic link inside an output: its target, relative and inside the output. Its `hash`
    /// is [`link_hash`] of the target and its size 0; it has no object in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl FileEntry {
    fn of(path: String, hash: String, meta: &fs::Metadata, link: Option<String>) -> FileEntry {
        let regular = link.is_none();
        FileEntry {
            path,
            hash,
            size: if regular { meta.len() } else { 0 },
            exec: regular && meta.permissions().mode() & 0o100 != 0,
            link,
        }
    }
}

/// The hash that stands for a symbolic link with target `target`.
pub fn link_hash(target: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"symbolic link\0");
    hasher.update(target.as_bytes());
    hasher.finalize().to_hex().to_string()
}

impl Tree {
    /// Total bytes in the tree.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What the stat cache compares to decide that a file is unchanged. ctime is in it because no one can
/// set it: a rewrite that keeps size and mtime (`cp -p`, `touch -r`, an unpacker) still moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl Stat {
    fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
        }
    }

    /// Whether a hash taken at `hashed_at_ns` can stand for the file as it is now: it was last changed
    /// safely before the hash was taken. A file changed in the same clock tick as its hashing (or
    /// later) is "racily clean", as git calls it: a second write in that tick would leave every stat
    /// field as it was, so it is hashed again.
    fn settled_before(&self, hashed_at_ns: i128) -> bool {
        self.mtime_ns.max(self.ctime_ns) + RACY_NS <= hashed_at_ns
    }
}

/// How long before its hashing a file must have last changed for its stat to be trusted: more than
/// the coarsest file timestamp granularity in common use (FAT's 2 seconds).
const RACY_NS: i128 = 2_000_000_000;

/// The first line of the stat cache file; a cache without it (an older format) is not read.
const STAT_CACHE_HEADER: &str = "pipe stat cache 2";

/// A file's hash, with the stat it had and when (ns since the epoch) it was hashed.
#[derive(Debug, Clone)]
struct Cached {
    stat: Stat,
    hash: String,
    hashed_at_ns: i128,
}

/// Path -> hash with the stat it had when hashed, persisted in `.pipe/stat-cache` between runs.
pub struct StatCache {
    file: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Cached>>,
    dirty: std::sync::atomic::AtomicBool,
}

impl StatCache {
    /// Loads the cache from `file`; a missing or unreadable cache is an empty one (it is only a speed-up).
    pub fn load(file: PathBuf) -> StatCache {
        let mut entries = HashMap::new();
        let text = fs::read_to_string(&file).unwrap_or_default();
        let mut lines = text.lines();
        if lines.next() == Some(STAT_CACHE_HEADER) {
            entries.extend(lines.filter_map(parse_line));
        }
        StatCache {
            file: Some(file),
            entries: Mutex::new(entries),
            dirty: false.into(),
        }
    }

    /// A cache that lives only in memory (for hashing outside a run).
    pub fn in_memory() -> StatCache {
        StatCache {
            file: None,
            entries: Mutex::new(HashMap::new()),
            dirty: false.into(),
        }
    }

    /// Writes the cache back if it changed (atomically; a failure only costs speed next time).
    pub fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let entries = self.entries.lock().expect("stat cache lock");
        let mut text = Vec::with_capacity(entries.len() * 120);
        writeln!(text, "{STAT_CACHE_HEADER}")?;
        for (path, cached) in entries.iter() {
            let Cached {
                stat,
                hash,
                hashed_at_ns,
            } = cached;
            if let Some(p) = path.to_str().filter(|p| !p.contains('\n')) {
                writeln!(
                    text,
                    "{hash} {} {} {} {} {hashed_at_ns} {p}",
                    stat.size, stat.mtime_ns, stat.ctime_ns, stat.ino
                )?;
            }
        }
        fsutil::write_atomic(file, &text)
    }

    /// Drops what is known of the files under `dir`.
    pub fn forget_under(&self, dir: &Path) {
        let mut entries = self.entries.lock().expect("stat cache lock");
        let before = entries.len();
        entries.retain(|path, _| !path.starts_with(dir));
        if entries.len() != before {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The cached hash of `path` if its stat is unchanged and settled before it was hashed.
    fn get(&self, path: &Path, stat: Stat) -> Option<String> {
        let entries = self.entries.lock().expect("stat cache lock");
        entries
            .get(path)
            .filter(|c| c.stat == stat && stat.settled_before(c.hashed_at_ns))
            .map(|c| c.hash.clone())
    }

    /// Records that `path`, with its current metadata, has `hash` (after writing or restoring it).
    pub fn remember(&self, path: &Path, meta: &fs::Metadata, hash: &str) {
        let cached = Cached {
            stat: Stat::of(meta),
            hash: hash.to_string(),
            hashed_at_ns: now_ns(),
        };
        self.entries
            .lock()
            .expect("stat cache lock")
            .insert(path.to_path_buf(), cached);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The hash of one file: `known` (what the cache holds for it) or, when there is none, its
    /// contents hashed and remembered; `hashed` is told how many bytes it reads, as it reads them.
    fn hash_file(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        known: Option<String>,
        hashed: &(dyn Fn(u64) + Sync),
    ) -> io::Result<String> {
        if let Some(hash) = known {
            return Ok(hash);
        }
        let hash = hash_file_contents(path, meta.len(), hashed)?;
        self.remember(path, meta, &hash);
        Ok(hash)
    }

    /// Hashes the file or folder at `path`, reading through symbolic links (a stage's deps). Errors
    /// name the path.
    pub fn hash_tree(&self, path: &Path) -> io::Result<Tree> {
        self.hash_tree_reporting(path, &|_, _| {})
    }

    /// [`StatCache::hash_tree`], telling `progress` how many bytes of those the cache does not know
    /// are hashed so far, and of how many (`done`, `total`), as each chunk is read.
    pub fn hash_tree_reporting(
        &self,
        path: &Path,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> io::Result<Tree> {
        self.hash_walk(path, Links::Follow, progress)
    }

    /// Hashes a stage's output: a link inside it is part of it as a link; a link that leads out of
    /// it, or an output that is itself a link, is an error naming the link.
    pub fn hash_output(&self, path: &Path) -> io::Result<Tree> {
        let meta = fs::symlink_metadata(path).map_err(|e| with_path(e, path))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(path).map_err(|e| with_path(e, path))?;
            return Err(io::Error::other(format!(
                "{} is a symbolic link to `{}`: an output must be a file or a folder of its own",
                path.display(),
                target.display()
            )));
        }
        self.hash_walk(path, Links::Keep, &|_, _| {})
    }

    fn hash_walk(
        &self,
        path: &Path,
        links: Links,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> io::Result<Tree> {
        let meta = fs::metadata(path).map_err(|e| with_path(e, path))?;
        let done = AtomicU64::new(0);
        if meta.is_file() {
            let total = meta.len();
            let hashed = |n: u64| progress(done.fetch_add(n, Ordering::Relaxed) + n, total);
            let known = self.get(path, Stat::of(&meta));
            let hash = self
                .hash_file(path, &meta, known, &hashed)
                .map_err(|e| with_path(e, path))?;
            return Ok(Tree {
                kind: TreeKind::File,
                hash: hash.clone(),
                files: vec![FileEntry::of(String::new(), hash, &meta, None)],
            });
        }
        // One cache lookup per file: what it knows, and (for the progress) how much it does not.
        // A kept link's hash is that of its target's text.
        let listed: Vec<_> = walk(path, links)?
            .into_iter()
            .map(|listed| {
                let known = match &listed.link {
                    Some(target) => Some(link_hash(target)),
                    None => self.get(&path.join(&listed.path), Stat::of(&listed.meta)),
                };
                (listed, known)
            })
            .collect();
        let total: u64 = listed
            .iter()
            .filter(|(_, known)| known.is_none())
            .map(|(listed, _)| listed.meta.len())
            .sum();
        let hashed = |n: u64| progress(done.fetch_add(n, Ordering::Relaxed) + n, total);
        let files = listed
            .into_par_iter()
            .map(|(listed, known)| {
                let full = path.join(&listed.path);
                let hash = self
                    .hash_file(&full, &listed.meta, known, &hashed)
                    .map_err(|e| with_path(e, &full))?;
                Ok(FileEntry::of(listed.path, hash, &listed.meta, listed.link))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Tree {
            kind: TreeKind::Dir,
            hash: listing_hash(&files),
            files,
        })
    }
}

/// One line of the stat cache file: `hash size mtime ctime inode hashed-at path`.
fn parse_line(line: &str) -> Option<(PathBuf, Cached)> {
    let mut parts = line.splitn(7, ' ');
    let hash = parts.next().filter(|h| h.len() == 64)?;
    let mut number = || parts.next()?.parse::<i128>().ok();
    let (size, mtime_ns, ctime_ns, ino, hashed_at_ns) =
        (number()?, number()?, number()?, number()?, number()?);
    let stat = Stat {
        size: u64::try_from(size).ok()?,
        mtime_ns,
        ctime_ns,
        ino: u64::try_from(ino).ok()?,
    };
    let cached = Cached {
        stat,
        hash: hash.to_string(),
        hashed_at_ns,
    };
    Some((PathBuf::from(parts.next()?), cached))
}

/// Now, in nanoseconds since the epoch.
fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The hash of a folder: blake3 over its sorted (path, hash, executable) lines.
pub fn listing_hash(files: &[FileEntry]) -> String {
    let mut hasher = blake3::Hasher::new();
    for f in files {
        hasher.update(f.path.as_bytes());
        hasher.update(b"\0");
        hasher.update(f.hash.as_bytes());
        hasher.update(match (&f.link, f.exec) {
            (Some(_), _) => b"\0l\n",
            (None, true) => b"\0x\n",
            (None, false) => b"\0-\n",
        });
    }
    hasher.finalize().to_hex().to_string()
}

/// blake3 of a file's bytes: read in one go when small; streamed in fixed chunks, each hashed on
/// blake3's threads, when big (memory stays at one chunk whatever the file's size).
/// `hashed` is told each chunk's size once it is hashed.
fn hash_file_contents(path: &Path, len: u64, hashed: &(dyn Fn(u64) + Sync)) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    if len >= CHUNK as u64 {
        let mut file = fs::File::open(path)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_full(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
            hashed(n as u64);
        }
    } else {
        let bytes = fs::read(path)?;
        hasher.update(&bytes);
        hashed(bytes.len() as u64);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match io::Read::read(file, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_file_keeps_its_hash_and_edited_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        fs::write(&f, "hello").unwrap();
        let cache = StatCache::load(dir.path().join("stat"));
        let first = cache.hash_tree(&f).unwrap();
        assert_eq!(first.hash, blake3::hash(b"hello").to_hex().to_string());
        fs::write(&f, "hello").unwrap(); // same bytes, new mtime
        assert_eq!(cache.hash_tree(&f).unwrap().hash, first.hash);
        fs::write(&f, "hellp").unwrap();
        assert_ne!(cache.hash_tree(&f).unwrap().hash, first.hash);
    }

    #[test]
    fn folder_hash_depends_on_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/x"), "1").unwrap();
        fs::write(d.join("y"), "2").unwrap();
        let cache = StatCache::load(dir.path().join("stat"));
        let t = cache.hash_tree(&d).unwrap();
        assert_eq!(
            t.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["sub/x", "y"]
        );
        fs::rename(d.join("y"), d.join("z")).unwrap();
        assert_ne!(cache.hash_tree(&d).unwrap().hash, t.hash);
    }

    #[test]
    fn hashing_reports_the_new_bytes_as_it_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("big.bin"), vec![7u8; CHUNK * 2 + 5]).unwrap();
        fs::write(d.join("small.txt"), "hello").unwrap();
        let cache = StatCache::in_memory();
        let seen = Mutex::new(Vec::new());
        let record = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
        let tree = cache.hash_tree_reporting(&d, &record).unwrap();
        let total = (CHUNK * 2 + 10) as u64;
        let mut seen = std::mem::take(&mut *seen.lock().unwrap());
        seen.sort();
        // Three chunks of the big file and the small one, ending at all of it.
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.iter().all(|&(_, t)| t == total));
        assert_eq!(seen.last(), Some(&(total, total)));
        assert_eq!(tree.hash, cache.hash_tree(&d).unwrap().hash);
        // What the stat cache knows (hashed well after the files settled) is not hashed again, so
        // not reported.
        for cached in cache.entries.lock().unwrap().values_mut() {
            cached.hashed_at_ns += 10 * RACY_NS;
        }
        let again = Mutex::new(0);
        cache
            .hash_tree_reporting(&d, &|_, _| *again.lock().unwrap() += 1)
            .unwrap();
        assert_eq!(*again.lock().unwrap(), 0);
    }

    #[test]
    fn a_rewrite_that_keeps_size_mtime_and_inode_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("params.txt");
        fs::write(&f, "aaaa").unwrap();
        let before = fs::metadata(&f).unwrap();
        let cache = StatCache::in_memory();
        // A hash taken long after the file settled is trusted...
        let stat = Stat::of(&before);
        let settled = Cached {
            stat,
            hash: "1".repeat(64),
            hashed_at_ns: stat.mtime_ns.max(stat.ctime_ns) + 10 * RACY_NS,
        };
        cache.entries.lock().unwrap().insert(f.clone(), settled);
        assert_eq!(cache.get(&f, stat), Some("1".repeat(64)));
        // ...until the file is rewritten in place with its old size and mtime (`cp -p`, `touch -r`).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut file = fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.write_all(b"bbbb").unwrap();
        file.set_modified(before.modified().unwrap()).unwrap();
        drop(file);
        let after = fs::metadata(&f).unwrap();
        assert_eq!(
            (after.len(), after.mtime_nsec(), after.ino()),
            (before.len(), before.mtime_nsec(), before.ino())
        );
        assert_eq!(cache.get(&f, Stat::of(&after)), None);
        assert_eq!(
            cache.hash_tree(&f).unwrap().hash,
            blake3::hash(b"bbbb").to_hex().to_string()
        );
    }

    #[test]
    fn a_file_changed_as_it_was_hashed_is_hashed_again() {
        let second = 1_000_000_000;
        let stat = Stat {
            size: 4,
            mtime_ns: 10 * second,
            ctime_ns: 10 * second,
            ino: 1,
        };
        // Hashed in the same second as the change: a second write then would leave the stat as is.
        assert!(!stat.settled_before(10 * second + second / 2));
        assert!(!stat.settled_before(11 * second));
        assert!(stat.settled_before(12 * second));
        // A freshly written file is never served from the cache on the run that wrote it.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out.txt");
        fs::write(&f, "x").unwrap();
        let cache = StatCache::in_memory();
        cache.hash_tree(&f).unwrap();
        assert_eq!(cache.get(&f, Stat::of(&fs::metadata(&f).unwrap())), None);
    }

    #[test]
    fn stat_cache_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a b.txt");
        fs::write(&f, "x").unwrap();
        let cache = StatCache::load(dir.path().join("stat"));
        cache.hash_tree(&f).unwrap();
        cache.save().unwrap();
        let again = StatCache::load(dir.path().join("stat"));
        let entry = |c: &StatCache| {
            let entries = c.entries.lock().unwrap();
            let e = &entries[&f];
            (e.stat, e.hash.clone(), e.hashed_at_ns)
        };
        assert_eq!(entry(&again), entry(&cache));
        // A cache in an older format (no header) is not read: it is only a speed-up.
        fs::write(
            dir.path().join("old"),
            format!("{} 1 2 3 {}\n", "a".repeat(64), f.display()),
        )
        .unwrap();
        assert!(
            StatCache::load(dir.path().join("old"))
                .entries
                .lock()
                .unwrap()
                .is_empty()
        );
    }
}
