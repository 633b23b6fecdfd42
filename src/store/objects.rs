//! The store's objects and entries: stage outputs saved after success and restored on a hit.
//!
//! Every write is temp-then-rename and an entry is written only after all its objects, so a killed
//! `pipe` leaves no entry that points at missing data. A corrupt object (its bytes no longer match its
//! name) is found while restoring: the entry is dropped and the stage reruns.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::hash::{StatCache, Tree, TreeKind, link_hash, listing_hash};
use crate::store::walk::link_stays_inside;
use crate::util::fsutil;
use crate::util::fsutil::with_path;

/// Version of the entry format; entries of another version are misses.
pub(super) const ENTRY_FORMAT: u32 = 1;

/// What the store knows about one stage key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// [`ENTRY_FORMAT`].
    pub format: u32,
    /// The stage key.
    pub key: String,
    /// The stage that produced it.
    pub stage: String,
    /// Output path -> content. Outputs with `cache: false` are listed but have no objects.
    pub outputs: BTreeMap<String, Tree>,
    /// Which outputs have their objects in the store.
    pub cached: Vec<String>,
    /// How long the stage ran, so a hit can report the time it saved.
    pub duration_s: f64,
}

impl Entry {
    /// Whether everything in the entry can be trusted before anything is restored from it: output
    /// and file paths relative, normal and inside their output, hashes 64 hex digits, every folder's
    /// hash that of its listing, and the cached outputs among the outputs.
    pub(super) fn check(&self) -> Result<(), String> {
        for (output, tree) in &self.outputs {
            if !is_plain_relative(output) {
                return Err(format!(
                    "output path `{output}` is not a plain relative path"
                ));
            }
            if !is_hash(&tree.hash) {
                return Err(format!("output `{output}` has a malformed hash"));
            }
            for file in &tree.files {
                if !is_hash(&file.hash) {
                    return Err(format!("a file of output `{output}` has a malformed hash"));
                }
                let path_ok = match tree.kind {
                    TreeKind::File => {
                        file.path.is_empty() && file.hash == tree.hash && file.link.is_none()
                    }
                    TreeKind::Dir => is_plain_relative(&file.path),
                };
                if !path_ok {
                    return Err(format!(
                        "output `{output}` lists the file `{}`, which is not inside it",
                        file.path
                    ));
                }
                if let Some(target) = &file.link
                    && !(link_stays_inside(&file.path, target) && file.hash == link_hash(target))
                {
                    return Err(format!(
                        "output `{output}` has a link `{}` to `{target}`, outside it",
                        file.path
                    ));
                }
            }
            // A walk never lists a path through a link it kept: such a path would be written
            // wherever the link leads.
            let links: std::collections::HashSet<&str> = tree
                .files
                .iter()
                .filter(|f| f.link.is_some())
                .map(|f| f.path.as_str())
                .collect();
            if let Some(file) = tree.files.iter().find(|f| {
                f.path
                    .match_indices('/')
                    .any(|(at, _)| links.contains(&f.path[..at]))
            }) {
                return Err(format!(
                    "output `{output}` lists `{}`, a path through one of its links",
                    file.path
                ));
            }
            let single_file = tree.kind == TreeKind::File && tree.files.len() == 1;
            if !single_file
                && (tree.kind == TreeKind::File || listing_hash(&tree.files) != tree.hash)
            {
                return Err(format!("output `{output}`'s files do not match its hash"));
            }
        }
        match self.cached.iter().find(|c| !self.outputs.contains_key(*c)) {
            Some(stray) => Err(format!("`{stray}` is cached but not an output")),
            None => Ok(()),
        }
    }
}

/// For the crash tests: `PIPE_TEST_CRASH_AT=<point>` makes pipe kill itself with SIGKILL (no cleanup,
/// as the OOM killer would) the first time it reaches that point of a commit or a restore.
fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("PIPE_TEST_CRASH_AT").ok());
    if at.as_deref() == Some(point) {
        // SAFETY: kill(2) on our own pid; it touches no memory.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Whether `text` is a blake3 hash as the store writes them: 64 lowercase hexadecimal digits.
pub(super) fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `path` is relative and normal: no leading `/`, no empty, `.` or `..` parts.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// Why a store entry cannot be used (the stage runs again).
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// It exists but cannot be read.
    #[error("cannot read store entry {}: {source}", path.display())]
    Unreadable {
        /// The entry's file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// It is for another key or another entry format.
    #[error("store entry {} is for another key or format", path.display())]
    Foreign {
        /// The entry's file.
        path: PathBuf,
    },
    /// It parses, but something in it cannot be trusted (a path out of its output, a malformed hash).
    #[error("store entry {} is invalid: {problem}", path.display())]
    Invalid {
        /// The entry's file (or the key asked for, when the key itself is malformed).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// It is not an entry.
    #[error("store entry {} is corrupt ({source})", path.display())]
    Corrupt {
        /// The entry's file.
        path: PathBuf,
        /// What the JSON reader said.
        source: serde_json::Error,
    },
}

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store's copy is damaged or gone; the entry has been dropped.
    #[error("store object for `{path}` is {problem}")]
    Corrupt {
        /// The output being restored.
        path: String,
        /// What is wrong with the object.
        problem: String,
    },
    /// An output that is not cached is missing or different in the workspace.
    #[error("output `{0}` is not cached (`cache: false`) and is missing or changed")]
    Uncached(String),
    /// The workspace could not be written.
    #[error("cannot restore `{path}`: {source}")]
    Io {
        /// The output being restored.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// A handle on one store directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store at `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn object_path(&self, hash: &str) -> PathBuf {
        self.dir.join("objects").join(&hash[..2]).join(hash)
    }

    pub(super) fn entry_path(&self, key: &str) -> PathBuf {
        self.dir
            .join("stages")
            .join(&key[..2])
            .join(format!("{key}.json"))
    }

    /// The folder of the sandboxes of sweeps' runs, in the store's scratch folder, which `pipe gc`
    /// clears.
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.dir.join("tmp").join("sandboxes")
    }

    pub(super) fn tmp_path(&self, what: &str) -> PathBuf {
        self.dir
            .join("tmp")
            .join(format!("{what}.{}", fsutil::unique_suffix()))
    }

    /// The entry for `key`. A missing entry is `Ok(None)`; an unreadable one is a warning and a miss.
    pub fn lookup(&self, key: &str) -> Result<Option<Entry>, EntryError> {
        if !is_hash(key) {
            return Err(EntryError::Invalid {
                path: PathBuf::from(key),
                problem: "a key must be 64 hexadecimal digits".into(),
            });
        }
        let path = self.entry_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(EntryError::Unreadable { path, source }),
        };
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) if entry.format == ENTRY_FORMAT && entry.key == key => match entry.check() {
                Ok(()) => Ok(Some(entry)),
                Err(problem) => Err(EntryError::Invalid { path, problem }),
            },
            Ok(_) => Err(EntryError::Foreign { path }),
            Err(source) => Err(EntryError::Corrupt { path, source }),
        }
    }

    /// Removes the entry for `key` (after finding it corrupt).
    pub fn drop_entry(&self, key: &str) {
        let _ = fs::remove_file(self.entry_path(key));
    }

    /// Saves a finished stage's outputs: objects first, then the entry.
    pub fn commit(&self, root: &Path, entry: &Entry) -> io::Result<()> {
        for path in &entry.cached {
            let tree = &entry.outputs[path];
            for file in tree.files.iter().filter(|f| f.link.is_none()) {
                let source = if file.path.is_empty() {
                    root.join(path)
                } else {
                    root.join(path).join(&file.path)
                };
                self.save_object(&source, &file.hash)?;
            }
        }
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        fsutil::write_atomic(&self.entry_path(&entry.key), &json)?;
        crash_point("entry-written");
        Ok(())
    }

    fn save_object(&self, source: &Path, hash: &str) -> io::Result<()> {
        let target = self.object_path(hash);
        if target.exists() {
            return Ok(());
        }
        fs::create_dir_all(target.parent().expect("objects have a parent"))?;
        fs::create_dir_all(self.dir.join("tmp"))?;
        let tmp = self.tmp_path("object");
        fs::copy(source, &tmp).map_err(|e| with_path(e, source))?;
        crash_point("object-copied");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))?;
        fs::rename(&tmp, &target)?;
        crash_point("object-renamed");
        Ok(())
    }

    /// Makes the workspace hold `entry`'s outputs. Outputs that already match are left alone (checked
    /// through the stat cache, so this is cheap on a no-op run). Returns whether anything was written.
    pub fn restore(
        &self,
        root: &Path,
        entry: &Entry,
        stats: &StatCache,
    ) -> Result<bool, RestoreError> {
        let mut wrote = false;
        for (path, tree) in &entry.outputs {
            let full = root.join(path);
            let matches = stats
                .hash_output(&full)
                .map(|t| t.hash == tree.hash)
                .unwrap_or(false);
            if matches {
                continue;
            }
            if !entry.cached.contains(path) {
                return Err(RestoreError::Uncached(path.clone()));
            }
            self.restore_one(&full, path, tree, stats)?;
            wrote = true;
        }
        Ok(wrote)
    }

    fn restore_one(
        &self,
        full: &Path,
        path: &str,
        tree: &Tree,
        stats: &StatCache,
    ) -> Result<(), RestoreError> {
        let io_err = |source| RestoreError::Io {
            path: path.to_string(),
            source,
        };
        fs::create_dir_all(self.dir.join("tmp")).map_err(io_err)?;
        let staging = self.tmp_path("restore");
        let result = (|| {
            for file in &tree.files {
                let target = match tree.kind {
                    TreeKind::File => staging.clone(),
                    TreeKind::Dir => staging.join(&file.path),
                };
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err)?;
                }
                if let Some(link) = &file.link {
                    std::os::unix::fs::symlink(link, &target).map_err(io_err)?;
                    continue;
                }
                self.copy_verified(&file.hash, &target, path)?;
                crash_point("restore-copied");
                let mode = if file.exec { 0o755 } else { 0o644 };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err)?;
            }
            if tree.kind == TreeKind::Dir && tree.files.is_empty() {
                fs::create_dir_all(&staging).map_err(io_err)?;
            }
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).map_err(io_err)?;
            }
            fsutil::remove_path(full).map_err(io_err)?;
            crash_point("restore-removed");
            fs::rename(&staging, full).map_err(io_err)
        })();
        if result.is_err() {
            let _ = fsutil::remove_path(&staging);
            return result;
        }
        for file in tree.files.iter().filter(|f| f.link.is_none()) {
            let target = if file.path.is_empty() {
                full.to_path_buf()
            } else {
                full.join(&file.path)
            };
            if let Ok(meta) = fs::metadata(&target) {
                stats.remember(&target, &meta, &file.hash);
            }
        }
        Ok(())
    }

    /// Copies object `hash` to `target`, hashing the bytes on the way: a mismatch is corruption.
    fn copy_verified(&self, hash: &str, target: &Path, path: &str) -> Result<(), RestoreError> {
        let object = self.object_path(hash);
        let corrupt = |problem: String| RestoreError::Corrupt {
            path: path.to_string(),
            problem,
        };
        let mut input =
            fs::File::open(&object).map_err(|e| corrupt(format!("unreadable ({e})")))?;
        let mut output = fs::File::create(target).map_err(|source| RestoreError::Io {
            path: path.to_string(),
            source,
        })?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| corrupt(format!("unreadable ({e})")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            output
                .write_all(&buf[..n])
                .map_err(|source| RestoreError::Io {
                    path: path.to_string(),
                    source,
                })?;
        }
        let actual = hasher.finalize().to_hex();
        if actual.as_str() != hash {
            let _ = fs::remove_file(&object);
            return Err(corrupt(format!(
                "damaged (content hash {} instead of {})",
                &actual[..12],
                &hash[..12]
            )));
        }
        Ok(())
    }

    /// Every entry key in the store.
    pub fn entry_keys(&self) -> Vec<String> {
        walk_names(&self.dir.join("stages"))
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect()
    }

    /// Removes entries not in `keep` and objects no kept entry uses. Returns (entries, objects, bytes)
    /// removed (or that would be, with `dry_run`).
    pub fn gc(
        &self,
        keep: &std::collections::HashSet<String>,
        dry_run: bool,
    ) -> io::Result<(usize, usize, u64)> {
        let mut live_objects = std::collections::HashSet::new();
        let mut dropped = 0;
        for key in self.entry_keys() {
            let entry = self.lookup(&key).ok().flatten();
            match entry {
                Some(e) if keep.contains(&key) => {
                    for path in &e.cached {
                        live_objects.extend(e.outputs[path].files.iter().map(|f| f.hash.clone()));
                    }
                }
                _ => {
                    dropped += 1;
                    if !dry_run {
                        fs::remove_file(self.entry_path(&key))?;
                    }
                }
            }
        }
        let mut objects = 0;
        let mut bytes = 0;
        for hash in walk_names(&self.dir.join("objects")) {
            if !live_objects.contains(&hash) {
                let path = self.object_path(&hash);
                objects += 1;
                bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if !dry_run {
                    fs::remove_file(&path)?;
                }
            }
        }
        if !dry_run {
            // The caller holds the gc lock: no stage is being committed, and no key lock is held.
            let _ = fs::remove_dir_all(self.dir.join("tmp"));
            let _ = fs::remove_dir_all(self.dir.join("locks"));
        }
        Ok((dropped, objects, bytes))
    }
}

/// File names two levels down (`<shard>/<name>`).
fn walk_names(dir: &Path) -> Vec<String> {
    let Ok(shards) = fs::read_dir(dir) else {
        return Vec::new();
    };
    shards
        .flatten()
        .filter_map(|shard| fs::read_dir(shard.path()).ok())
        .flat_map(|files| files.flatten())
        .filter_map(|f| f.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hash::StatCache;

    fn commit_one(root: &Path, store: &Store, stats: &StatCache) -> Entry {
        fs::write(root.join("out.txt"), "result").unwrap();
        let tree = stats.hash_tree(&root.join("out.txt")).unwrap();
        let entry = Entry {
            format: ENTRY_FORMAT,
            key: "ab".repeat(32),
            stage: "s".into(),
            outputs: [("out.txt".to_string(), tree)].into(),
            cached: vec!["out.txt".into()],
            duration_s: 1.0,
        };
        store.commit(root, &entry).unwrap();
        entry
    }

    #[test]
    fn restore_brings_back_a_deleted_output() {
        let ws = tempfile::tempdir().unwrap();
        let store = Store::new(ws.path().join(".pipe"));
        let stats = StatCache::load(ws.path().join("stat"));
        let entry = commit_one(ws.path(), &store, &stats);
        fs::remove_file(ws.path().join("out.txt")).unwrap();
        assert!(store.restore(ws.path(), &entry, &stats).unwrap());
        assert_eq!(
            fs::read_to_string(ws.path().join("out.txt")).unwrap(),
            "result"
        );
        assert!(!store.restore(ws.path(), &entry, &stats).unwrap());
    }

    #[test]
    fn corrupt_object_is_an_error_not_a_wrong_output() {
        let ws = tempfile::tempdir().unwrap();
        let store = Store::new(ws.path().join(".pipe"));
        let stats = StatCache::load(ws.path().join("stat"));
        let entry = commit_one(ws.path(), &store, &stats);
        let object = store.object_path(&entry.outputs["out.txt"].hash);
        fs::set_permissions(&object, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&object, "resulT").unwrap();
        fs::remove_file(ws.path().join("out.txt")).unwrap();
        let err = store.restore(ws.path(), &entry, &stats).unwrap_err();
        assert!(matches!(err, RestoreError::Corrupt { .. }), "{err}");
        assert!(!ws.path().join("out.txt").exists());
    }

    /// Rewrites the committed entry's JSON with `tamper` and looks it up again.
    fn tampered(
        tamper: impl Fn(&mut serde_json::Value),
    ) -> (tempfile::TempDir, Result<Option<Entry>, EntryError>) {
        let ws = tempfile::tempdir().unwrap();
        let store = Store::new(ws.path().join(".pipe"));
        let stats = StatCache::load(ws.path().join("stat"));
        let entry = commit_one(ws.path(), &store, &stats);
        let path = store.entry_path(&entry.key);
        let mut json: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        tamper(&mut json);
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let found = store.lookup(&entry.key);
        (ws, found)
    }

    #[test]
    fn an_entry_whose_paths_leave_the_output_is_refused_before_anything_is_written() {
        for bad in [
            "../escape.txt",
            "/tmp/escape.txt",
            "a/../../escape.txt",
            "./out.txt",
            "",
        ] {
            let (ws, found) = tampered(|json| {
                let tree = json["outputs"]["out.txt"].take();
                json["outputs"] = serde_json::json!({ bad: tree });
                json["cached"] = serde_json::json!([bad]);
            });
            let err = found.expect_err(bad);
            assert!(matches!(err, EntryError::Invalid { .. }), "{bad}: {err}");
            assert!(!ws.path().parent().unwrap().join("escape.txt").exists());
        }
        // A folder output listing a file outside itself.
        let (_ws, found) = tampered(|json| {
            json["outputs"]["out.txt"]["kind"] = "dir".into();
            json["outputs"]["out.txt"]["files"][0]["path"] = "../../escape.txt".into();
        });
        assert!(matches!(found, Err(EntryError::Invalid { .. })));
    }

    #[test]
    fn malformed_hashes_and_keys_are_errors_not_panics() {
        let (_ws, found) = tampered(|json| json["outputs"]["out.txt"]["hash"] = "zz".into());
        assert!(matches!(found, Err(EntryError::Invalid { .. })));
        let (_ws, found) = tampered(|json| {
            json["outputs"]["out.txt"]["files"][0]["hash"] = "é".repeat(32).into();
        });
        assert!(matches!(found, Err(EntryError::Invalid { .. })));
        let ws = tempfile::tempdir().unwrap();
        let store = Store::new(ws.path().join(".pipe"));
        for key in ["", "a", "../../etc/passwd", &"Z".repeat(64)] {
            assert!(
                matches!(store.lookup(key), Err(EntryError::Invalid { .. })),
                "{key}"
            );
        }
    }

    #[test]
    fn links_inside_a_folder_output_come_back_as_links() {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        let store = Store::new(root.join(".pipe"));
        let stats = StatCache::load(root.join("stat"));
        fs::create_dir_all(root.join("out/sub")).unwrap();
        fs::write(root.join("out/sub/model.bin"), "weights").unwrap();
        std::os::unix::fs::symlink("sub/model.bin", root.join("out/latest")).unwrap();
        let tree = stats.hash_output(&root.join("out")).unwrap();
        let entry = Entry {
            format: ENTRY_FORMAT,
            key: "cd".repeat(32),
            stage: "s".into(),
            outputs: [("out".to_string(), tree)].into(),
            cached: vec!["out".into()],
            duration_s: 1.0,
        };
        store.commit(root, &entry).unwrap();
        assert_eq!(
            store.lookup(&entry.key).unwrap().unwrap().outputs,
            entry.outputs
        );
        fs::remove_dir_all(root.join("out")).unwrap();
        assert!(store.restore(root, &entry, &stats).unwrap());
        let latest = root.join("out/latest");
        assert_eq!(fs::read_link(&latest).unwrap(), Path::new("sub/model.bin"));
        assert_eq!(fs::read_to_string(&latest).unwrap(), "weights");
        // Repointing the link changes the output's hash.
        fs::remove_file(&latest).unwrap();
        std::os::unix::fs::symlink("sub", &latest).unwrap();
        let hash = stats.hash_output(&root.join("out")).unwrap().hash;
        assert_ne!(hash, entry.outputs["out"].hash);
    }

    #[test]
    fn links_that_leave_their_output_are_errors_naming_them() {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        let stats = StatCache::in_memory();
        fs::create_dir_all(root.join("out")).unwrap();
        fs::write(root.join("secret.txt"), "outside").unwrap();
        for target in ["../secret.txt", "/etc/hostname"] {
            let link = root.join("out/leak");
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
            let err = stats
                .hash_output(&root.join("out"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("out/leak is a symbolic link") && err.contains(target),
                "{err}"
            );
        }
        std::os::unix::fs::symlink("secret.txt", root.join("alias.txt")).unwrap();
        let err = stats.hash_output(&root.join("alias.txt")).unwrap_err();
        assert!(
            err.to_string().contains("alias.txt is a symbolic link"),
            "{err}"
        );
        // A store entry that says a link leads out is refused before anything is restored.
        let (_ws, found) = tampered(|json| {
            let file = &mut json["outputs"]["out.txt"];
            file["kind"] = "dir".into();
            file["files"][0]["path"] = "leak".into();
            file["files"][0]["link"] = "../../etc".into();
            file["files"][0]["hash"] = link_hash("../../etc").into();
            let files: Vec<crate::store::hash::FileEntry> =
                serde_json::from_value(file["files"].clone()).unwrap();
            file["hash"] = listing_hash(&files).into();
        });
        assert!(
            matches!(found, Err(EntryError::Invalid { .. })),
            "{found:?}"
        );
    }

    #[test]
    fn a_path_through_a_kept_link_is_refused() {
        // Links that each stay inside, and a file listed through them, which would land outside.
        let (_ws, found) = tampered(|json| {
            let file = &mut json["outputs"]["out.txt"];
            let link = |path: &str, target: &str| serde_json::json!({"path": path, "hash": link_hash(target), "size": 0, "link": target});
            let mut through = file["files"][0].clone();
            through["path"] = "d/up/d/up/e/esc/x.txt".into();
            file["kind"] = "dir".into();
            file["files"] = serde_json::json!([
                link("d/up", ".."),
                link("d/up/d/up/e/esc", "../../../../.."),
                through
            ]);
            let files: Vec<crate::store::hash::FileEntry> =
                serde_json::from_value(file["files"].clone()).unwrap();
            file["hash"] = listing_hash(&files).into();
        });
        let err = found.expect_err("a path through a link");
        assert!(
            err.to_string().contains("a path through one of its links"),
            "{err}"
        );
    }
}
