//! A sandbox: a copy of the workspace's layout in which one run of a sweep writes its outputs, so
//! that runs with different params can run at once without writing over each other's files.
//!
//! Nothing is copied. Every entry of the workspace is a symbolic link in the sandbox, except the
//! folders on the way to a stage's output (real folders, whose other entries are links in turn) and
//! the outputs themselves (absent until the run restores or writes them). The store and the run
//! records stay where they are; a frozen stage's outputs are read through links, like sources.
//!
//! ```text
//!   workspace/                      .pipe/tmp/sandbox-<sweep>-<n>/
//!     pipelines/     ◀──link────      pipelines
//!     data/raw/      ◀──link────      data/raw
//!     data/split/                     data/        (a real folder)
//!     params.yaml    ◀──link────      params.yaml
//! ```
//!
//! A command that writes outside its declared outputs writes through the links into the workspace,
//! as it would in an ordinary run.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::util::fsutil::with_path;

/// A sandbox on disk, removed by [`Sandbox::remove`].
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    /// Lays out `dir` as a sandbox of `root`: `outputs` (paths relative to the root) are left out,
    /// the folders above them made, and every other entry linked. Entries of the root named in
    /// `private` (the store, the run records) are left out too.
    pub fn create(
        root: &Path,
        dir: PathBuf,
        outputs: &BTreeSet<String>,
        private: &[&Path],
    ) -> io::Result<Sandbox> {
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| with_path(e, &dir))?;
        }
        fs::create_dir_all(&dir).map_err(|e| with_path(e, &dir))?;
        let sandbox = Sandbox { dir };
        let above: BTreeSet<&str> = outputs.iter().flat_map(|o| ancestors(o)).collect();
        sandbox.mirror(root, "", outputs, &above, private)?;
        Ok(sandbox)
    }

    /// The sandbox's folder: the root of its run.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the sandbox (its links, never what they point to).
    pub fn remove(self) -> io::Result<()> {
        fs::remove_dir_all(&self.dir).map_err(|e| with_path(e, &self.dir))
    }

    /// Mirrors the folder `rel` of `root` (`""` for the root itself).
    fn mirror(
        &self,
        root: &Path,
        rel: &str,
        outputs: &BTreeSet<String>,
        above: &BTreeSet<&str>,
        private: &[&Path],
    ) -> io::Result<()> {
        let source = root.join(rel);
        for entry in fs::read_dir(&source).map_err(|e| with_path(e, &source))? {
            let entry = entry.map_err(|e| with_path(e, &source))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                // A name that is not UTF-8 cannot be a declared path: link it as it is.
                std::os::unix::fs::symlink(
                    entry.path(),
                    self.dir.join(rel).join(entry.file_name()),
                )?;
                continue;
            };
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if outputs.contains(&path) || private.iter().any(|p| entry.path() == *p) {
                continue;
            }
            let target = self.dir.join(&path);
            if above.contains(path.as_str()) {
                fs::create_dir(&target).map_err(|e| with_path(e, &target))?;
                self.mirror(root, &path, outputs, above, private)?;
            } else {
                std::os::unix::fs::symlink(entry.path(), &target)
                    .map_err(|e| with_path(e, &target))?;
            }
        }
        Ok(())
    }
}

/// The folders above `path` (`a`, `a/b` for `a/b/c`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn outputs_are_left_out_the_folders_above_them_made_and_the_rest_linked() {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        fs::create_dir_all(root.join("data/raw")).unwrap();
        fs::write(root.join("data/raw/a.txt"), "a").unwrap();
        fs::create_dir_all(root.join("data/split")).unwrap();
        fs::write(root.join("data/split/old.txt"), "old output").unwrap();
        fs::write(root.join("params.yaml"), "seed: 1\n").unwrap();
        fs::create_dir_all(root.join(".pipe")).unwrap();
        let dir = root.join(".pipe/tmp/sandbox-1");
        let store = root.join(".pipe");
        let sandbox = Sandbox::create(
            root,
            dir.clone(),
            &outputs(&["data/split", "models/model.bin"]),
            &[&store],
        )
        .unwrap();
        assert!(fs::symlink_metadata(dir.join("data")).unwrap().is_dir());
        assert!(
            fs::symlink_metadata(dir.join("data/raw"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(dir.join("data/raw/a.txt")).unwrap(), "a");
        assert_eq!(
            fs::read_to_string(dir.join("params.yaml")).unwrap(),
            "seed: 1\n"
        );
        assert!(!dir.join("data/split").exists(), "an output is left out");
        assert!(!dir.join(".pipe").exists(), "the store is not linked");
        // Writing an output in the sandbox leaves the workspace's as it was.
        fs::create_dir_all(dir.join("data/split")).unwrap();
        fs::write(dir.join("data/split/new.txt"), "new").unwrap();
        assert!(!root.join("data/split/new.txt").exists());
        sandbox.remove().unwrap();
        assert!(!dir.exists());
        assert_eq!(
            fs::read_to_string(root.join("data/raw/a.txt")).unwrap(),
            "a"
        );
        assert_eq!(
            fs::read_to_string(root.join("data/split/old.txt")).unwrap(),
            "old output"
        );
    }

    #[test]
    fn a_leftover_sandbox_is_replaced() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("sb");
        fs::create_dir_all(dir.join("stale")).unwrap();
        fs::create_dir_all(ws.path().join("src")).unwrap();
        let sandbox =
            Sandbox::create(&ws.path().join("src"), dir.clone(), &outputs(&[]), &[]).unwrap();
        assert!(!dir.join("stale").exists());
        sandbox.remove().unwrap();
    }
}
