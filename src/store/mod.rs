//! The content-addressed store under `.pipe/`: what makes a stage's key ([`key`]), the content of files
//! and folders with a stat cache ([`hash`]) found by a walk that keeps or follows links ([`walk`]), stage outputs saved after success and restored on a hit
//! ([`objects`]), the same entries and objects exchanged with a remote cache, checked on the way in
//! ([`exchange`]), the locks that keep runs, cluster jobs and `pipe gc` apart ([`locks`]), and each
//! pipeline's last state, which says why a stage must run again ([`state`]).
//!
//! ```text
//! .pipe/
//!   objects/ab/ab12…      file contents, named by their blake3 (identical files stored once, read-only)
//!   stages/9c/9c1e….json  one entry per stage key: its outputs as trees of object hashes, its duration
//!   tmp/                  where objects and restored outputs are assembled before their rename
//!   locks/9c/9c1e…        held while a stage with that key runs (two runs needing it run it once)
//!   lock                  held by the `pipe run` that is writing this workspace
//!   gc.lock               shared by cluster jobs at work, taken whole by `pipe gc`
//!   running/…             the process groups of stage commands running now (see `run::groups`)
//!   state/…               each pipeline's last state (what its stages' keys were made of)
//!   stat-cache            size, mtime, ctime, inode and when hashed -> hash (unchanged files are not read again)
//! ```

mod exchange;
pub mod hash;
pub mod key;
mod locks;
mod objects;
pub mod state;
pub mod walk;

#[cfg(test)]
mod proptests;

pub use exchange::{ObjectWriter, Refused};
pub use locks::FileLock;
pub use objects::{Entry, EntryError, RestoreError, Store};
