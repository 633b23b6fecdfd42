//! The store's side of a remote cache: an entry and its objects handed out as they are stored, and
//! taken in only after the same checks a local read makes. An entry from elsewhere is parsed and
//! checked (format, key, paths, hashes) before it is written; an object is written only if its bytes
//! hash to its name. A remote therefore can never put into the store what the store would not trust.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::objects::{ENTRY_FORMAT, Entry, Store, is_hash};
use crate::util::fsutil;

/// Why something from a remote was not taken in.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The entry does not parse, is of another format or key, or fails the entry checks.
    #[error("the entry for {key} is not usable: {problem}")]
    Entry {
        /// The key asked for.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The object's bytes do not hash to its name.
    #[error("object {hash} does not match its hash (its bytes hash to {actual})")]
    Object {
        /// The hash it was asked for by.
        hash: String,
        /// What its bytes hash to.
        actual: String,
    },
    /// Writing it into the store failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Store {
    /// The entry for `key` as stored (for a remote), or `None`.
    pub fn entry_bytes(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        if !is_hash(key) {
            return Ok(None);
        }
        match fs::read(self.entry_path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fsutil::with_path(e, &self.entry_path(key))),
        }
    }

    /// The file holding object `hash`, if the store has it.
    pub fn object_file(&self, hash: &str) -> Option<PathBuf> {
        let path = self.object_path(hash);
        (is_hash(hash) && path.is_file()).then_some(path)
    }

    /// The hashes of the objects `entry`'s cached outputs need (links have none), sorted.
    pub fn objects_of(entry: &Entry) -> Vec<String> {
        Store::sized_objects_of(entry)
            .into_iter()
            .map(|(hash, _)| hash)
            .collect()
    }

    /// The same with each object's size.
    pub fn sized_objects_of(entry: &Entry) -> Vec<(String, u64)> {
        let mut objects: Vec<(String, u64)> = entry
            .cached
            .iter()
            .filter_map(|path| entry.outputs.get(path))
            .flat_map(|tree| tree.files.iter().filter(|f| f.link.is_none()))
            .map(|f| (f.hash.clone(), f.size))
            .collect();
        objects.sort();
        objects.dedup_by(|a, b| a.0 == b.0);
        objects
    }

    /// Parses and checks `bytes` as the entry for `key` without storing it.
    pub fn parse_entry(key: &str, bytes: &[u8]) -> Result<Entry, Refused> {
        let refuse = |problem: String| Refused::Entry {
            key: key.to_string(),
            problem,
        };
        if !is_hash(key) {
            return Err(refuse("a key must be 64 hexadecimal digits".into()));
        }
        let entry: Entry = serde_json::from_slice(bytes).map_err(|e| refuse(e.to_string()))?;
        if entry.format != ENTRY_FORMAT || entry.key != key {
            return Err(refuse(format!(
                "it is entry format {} for key {}",
                entry.format, entry.key
            )));
        }
        entry.check().map_err(refuse)?;
        Ok(entry)
    }

    /// A writer for object `hash`: its bytes go to a temporary file, hashed as they come, and
    /// [`ObjectWriter::finish`] stores them only if they hash to `hash`.
    pub fn object_writer(&self, hash: &str) -> io::Result<ObjectWriter> {
        fs::create_dir_all(self.dir().join("tmp"))?;
        let tmp = self.tmp_path("download");
        Ok(ObjectWriter {
            file: fs::File::create(&tmp).map_err(|e| fsutil::with_path(e, &tmp))?,
            tmp,
            hasher: blake3::Hasher::new(),
            hash: hash.to_string(),
            target: self.object_path(hash),
        })
    }

    /// Stores object `hash` from `bytes`, after checking that they hash to it.
    pub fn import_object(&self, hash: &str, bytes: &[u8]) -> Result<(), Refused> {
        let mut writer = self.object_writer(hash)?;
        writer.write(bytes)?;
        writer.finish()
    }

    /// Stores `entry` (checked by [`Store::parse_entry`]) once every object it needs is here.
    pub fn import_entry(&self, entry: &Entry) -> Result<(), Refused> {
        if let Some(missing) = Store::objects_of(entry)
            .into_iter()
            .find(|h| self.object_file(h).is_none())
        {
            return Err(Refused::Entry {
                key: entry.key.clone(),
                problem: format!("its object {missing} is not in the store"),
            });
        }
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        fsutil::write_atomic(&self.entry_path(&entry.key), &json)?;
        Ok(())
    }
}

/// An object being downloaded: written to a temporary file and hashed on the way.
pub struct ObjectWriter {
    file: fs::File,
    tmp: PathBuf,
    hasher: blake3::Hasher,
    hash: String,
    target: PathBuf,
}

impl ObjectWriter {
    /// Appends the next bytes.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.file.write_all(bytes)
    }

    /// Writes `bytes` at `offset`, for a download in parts that arrive in any order; call
    /// [`ObjectWriter::hash_written`] once every part is written.
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, bytes, offset)
    }

    /// Hashes what the file holds (after [`ObjectWriter::write_at`]), for [`ObjectWriter::finish`].
    pub fn hash_written(&mut self) -> io::Result<()> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(fs::File::open(&self.tmp)?)?;
        self.hasher = hasher;
        Ok(())
    }

    /// Moves the object into the store if its bytes hash to its name; otherwise removes them.
    pub fn finish(self) -> Result<(), Refused> {
        let actual = self.hasher.finalize().to_hex().to_string();
        let stored = if actual != self.hash || !is_hash(&self.hash) {
            Err(Refused::Object {
                hash: self.hash.clone(),
                actual,
            })
        } else if self.target.is_file() {
            Ok(())
        } else {
            let placed = fs::set_permissions(&self.tmp, fs::Permissions::from_mode(0o444))
                .and_then(|()| {
                    fs::create_dir_all(self.target.parent().expect("objects have a parent"))
                })
                .and_then(|()| fs::rename(&self.tmp, &self.target));
            placed.map_err(Refused::from)
        };
        let _ = fs::remove_file(&self.tmp);
        stored
    }
}

impl Drop for ObjectWriter {
    /// A download abandoned half-way leaves nothing behind (after `finish`, the file is gone).
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_store_would_trust_is_taken_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join(".pipe"));
        let hash = blake3::hash(b"model").to_hex().to_string();
        let error = store.import_object(&hash, b"tampered").unwrap_err();
        assert!(matches!(error, Refused::Object { .. }), "{error}");
        assert!(store.object_file(&hash).is_none());
        store.import_object(&hash, b"model").unwrap();
        assert!(store.object_file(&hash).is_some());

        let key = "a".repeat(64);
        let entry = format!(
            r#"{{"format":1,"key":"{key}","stage":"train","outputs":{{"../escape":{{"kind":"file","hash":"{hash}","files":[{{"path":"","hash":"{hash}","size":5}}]}}}},"cached":["../escape"],"duration_s":1.0}}"#
        );
        let error = Store::parse_entry(&key, entry.as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("not a plain relative path"),
            "{error}"
        );
        let error = Store::parse_entry(&"b".repeat(64), entry.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("for key"), "{error}");
        let good = entry.replace("../escape", "model.bin");
        let parsed = Store::parse_entry(&key, good.as_bytes()).unwrap();
        assert_eq!(Store::objects_of(&parsed), [hash]);
        store.import_entry(&parsed).unwrap();
        assert_eq!(store.lookup(&key).unwrap().unwrap().stage, "train");
    }
}
