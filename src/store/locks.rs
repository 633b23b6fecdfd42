//! Advisory file locks (`flock`) and the store's locks built on them: the workspace lock a `pipe run`
//! holds, the gc lock shared by cluster jobs, and one lock per stage key.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use super::objects::Store;
use crate::util::fsutil;
use crate::util::fsutil::with_path;

/// An advisory lock (`flock`) on a file, exclusive or shared, released when dropped or when the
/// process dies. An exclusive holder writes who it is (`pid 123 on node7, Slurm job 4512`) into the
/// file, for whoever waits.
pub struct FileLock {
    _file: fs::File,
}

impl FileLock {
    /// Takes the lock on `path`, waiting for its holder; `on_wait` is called once, with the holder,
    /// if it must wait.
    pub fn acquire(path: &Path, on_wait: impl FnOnce(&str)) -> io::Result<FileLock> {
        let mut file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                on_wait(holder.trim());
                file.lock()?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(with_path(e, path)),
        }
        file.set_len(0)?;
        write!(
            file,
            "pid {} on {}",
            std::process::id(),
            fsutil::host_name()
        )?;
        if let Ok(job) = std::env::var("SLURM_JOB_ID") {
            write!(file, ", Slurm job {job}")?;
        }
        Ok(FileLock { _file: file })
    }

    /// Takes the lock on `path` shared with other shared holders, waiting for an exclusive holder.
    pub fn acquire_shared(path: &Path) -> io::Result<FileLock> {
        let file = Self::open(path)?;
        file.lock_shared().map_err(|e| with_path(e, path))?;
        Ok(FileLock { _file: file })
    }

    fn open(path: &Path) -> io::Result<fs::File> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
        }
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| with_path(e, path))
    }
}

impl Store {
    /// The lock a `pipe run` holds on the workspace while it evaluates stages here (or submits them).
    pub fn lock_workspace(&self, on_wait: impl FnOnce(&str)) -> io::Result<FileLock> {
        FileLock::acquire(&self.dir().join("lock"), on_wait)
    }

    /// Held (shared) by every cluster job while it evaluates a stage, and (exclusive) by `pipe gc`, so
    /// that gc never removes the objects of an entry being committed. Local runs are kept apart from
    /// gc by the workspace lock.
    pub fn lock_against_gc(&self) -> io::Result<FileLock> {
        FileLock::acquire_shared(&self.dir().join("gc.lock"))
    }

    /// `pipe gc`'s side of [`Store::lock_against_gc`]: waits (calling `on_wait`) for the cluster jobs
    /// at work on this store.
    pub fn lock_for_gc(&self, on_wait: impl FnOnce(&str)) -> io::Result<FileLock> {
        FileLock::acquire(&self.dir().join("gc.lock"), |_| {
            on_wait("cluster jobs at work on this store")
        })
    }

    /// The lock held while a stage with this key is looked up, run and committed, so that two runs
    /// (on any node that sees the store) needing the same key run it once.
    pub fn lock_key(&self, key: &str, on_wait: impl FnOnce(&str)) -> io::Result<FileLock> {
        FileLock::acquire(&self.dir().join("locks").join(&key[..2]).join(key), on_wait)
    }
}
