//! Walking a folder on disk: every file under it, sorted by path. Symbolic links are read through for
//! a stage's deps (a data folder may be a link to a dataset) and kept as links for its outputs, where
//! a link may lead only to somewhere inside its own output: anything else would carry files from
//! outside the workspace into the shared store.

use std::fs;
use std::io;
use std::path::Path;

use crate::util::fsutil::with_path;

/// Folders nested deeper than this are refused (a symlink loop, most likely).
const MAX_DEPTH: usize = 64;

/// How a walk treats symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Read through them; a link back to a folder containing it is an error.
    Follow,
    /// List each as a link with its target; a link whose target is not inside the walked folder is
    /// an error naming it.
    Keep,
}

/// One file (or, with [`Links::Keep`], link) found by a walk.
#[derive(Debug)]
pub struct Listed {
    /// Path relative to the walked folder, `/`-separated.
    pub path: String,
    /// Its metadata (the link's own for a kept link).
    pub meta: fs::Metadata,
    /// The target of a kept link, as written in the link.
    pub link: Option<String>,
}

/// Every file under `dir`, following symbolic links, as (path relative to `dir` with `/` separators,
/// metadata), sorted by path. A link that leads back to a folder containing it is an error.
pub fn list_files(dir: &Path) -> io::Result<Vec<(String, fs::Metadata)>> {
    Ok(walk(dir, Links::Follow)?
        .into_iter()
        .map(|l| (l.path, l.meta))
        .collect())
}

/// Every file under `dir`, sorted by path, with links treated as `links` says.
pub fn walk(dir: &Path, links: Links) -> io::Result<Vec<Listed>> {
    let mut listed = Vec::new();
    collect(dir, "", 0, links, &mut listed)?;
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listed)
}

/// Whether a link at `path` (relative to its output's root) with target `target` stays inside that
/// output, judged from the text alone: relative, any `..` only at its start, and no more of them than
/// the link has folders above it. With `..` nowhere after a name, the text is resolved exactly as
/// the system would, and every link inside the output obeying the same rule keeps the whole output
/// closed.
pub fn link_stays_inside(path: &str, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let folders_above = path.split('/').count() - 1;
    let mut ups = 0;
    let mut named = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if named => return false,
            ".." => ups += 1,
            _ => named = true,
        }
    }
    ups <= folders_above
}

fn collect(
    dir: &Path,
    prefix: &str,
    depth: usize,
    links: Links,
    out: &mut Vec<Listed>,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{} is nested more than {MAX_DEPTH} folders deep (a symlink loop?)",
            dir.display()
        )));
    }
    for entry in fs::read_dir(dir).map_err(|e| with_path(e, dir))? {
        let entry = entry.map_err(|e| with_path(e, dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(io::Error::other(format!(
                "{} is not a UTF-8 name",
                path.display()
            )));
        };
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link && links == Links::Keep {
            let link = kept_link(&path, &rel)?;
            let meta = fs::symlink_metadata(&path).map_err(|e| with_path(e, &path))?;
            out.push(Listed {
                path: rel,
                meta,
                link: Some(link),
            });
            continue;
        }
        let meta = fs::metadata(&path).map_err(|e| with_path(e, &path))?;
        if meta.is_dir() {
            if is_link {
                refuse_loop(dir, &path)?;
            }
            collect(&path, &rel, depth + 1, links, out)?;
        } else if meta.is_file() {
            out.push(Listed {
                path: rel,
                meta,
                link: None,
            });
        }
    }
    Ok(())
}

/// The target of the link at `full` (`rel` inside its output), if it stays inside the output.
fn kept_link(full: &Path, rel: &str) -> io::Result<String> {
    let target = fs::read_link(full).map_err(|e| with_path(e, full))?;
    let text = target.to_str().filter(|t| link_stays_inside(rel, t));
    text.map(str::to_string).ok_or_else(|| {
        io::Error::other(format!(
            "{} is a symbolic link to `{}`, outside its output: an output may hold links only to \
             its own files (copy the file in, or make the link relative and inside the output)",
            full.display(),
            target.display()
        ))
    })
}

/// Fails if the folder link `link` inside `dir` points at `dir` or a folder above it.
fn refuse_loop(dir: &Path, link: &Path) -> io::Result<()> {
    let target = fs::canonicalize(link).map_err(|e| with_path(e, link))?;
    let here = fs::canonicalize(dir).map_err(|e| with_path(e, dir))?;
    if here.starts_with(&target) {
        return Err(io::Error::other(format!(
            "symbolic link loop: {} leads back to {}, which contains it",
            link.display(),
            target.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_inside_only_when_their_text_cannot_climb_out() {
        assert!(link_stays_inside("a", "b"));
        assert!(link_stays_inside("a", "./b/c"));
        assert!(link_stays_inside("sub/a", "../b"));
        assert!(link_stays_inside("sub/deep/a", "../../b"));
        assert!(!link_stays_inside("a", "../b"));
        assert!(!link_stays_inside("sub/a", "../../b"));
        assert!(!link_stays_inside("a", "/etc/passwd"));
        assert!(!link_stays_inside("a", ""));
        // `s/..` is not `.` when `s` is itself a link: `..` after a name is refused.
        assert!(!link_stays_inside("sub/a", "s/../b"));
    }
}
