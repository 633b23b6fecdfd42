//! The code fingerprint of each built-in stage kind, computed at build time (by `src/build/main.rs`)
//! and part of every key of the kind's stages, so a change that can change a kind's outputs can never
//! be served from an entry the older code wrote.
//!
//! A kind's code is everything its implementation can reach: `src/builtin/<kind>.rs` (or
//! `src/builtin/<kind>/mod.rs`, with the files of that folder it names), the kinds'
//! shared `src/builtin/mod.rs`, its declaration `stages/<kind>.yaml`, and, followed transitively, every
//! module file a reached file names (`crate::a::b`, `super::c`, a child `d::`), every file it embeds
//! (`include_bytes!`, `include_str!`), and every crate it names, with the crates those depend on, at
//! the versions in `Cargo.lock` and with their lines in `Cargo.toml` (where features are chosen). Rust
//! files enter without their comments and with their whitespace collapsed: a reworded doc comment or a
//! `cargo fmt` keeps the cache; a changed message inside a kind's reach does not (conservative).
//!
//! Deliberately left out: the CPU's vector width and instruction sets (the same code and crates
//! give rounding differences between an AVX2 and an AVX-512 machine; keying on them would split a
//! team's cache per machine, and the run record names the machine), the Rust compiler's version
//! (Rust does not reorder float arithmetic, so it changes no results by itself), and the build
//! profile (likewise).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Each kind (a `stages/<kind>.yaml`) with the hex fingerprint of its code, for the crate at `root`.
pub fn fingerprints(root: &Path) -> io::Result<Vec<(String, String)>> {
    let lock = Lockfile::parse(&fs::read_to_string(root.join("Cargo.lock"))?);
    let manifest = fs::read_to_string(root.join("Cargo.toml"))?;
    let mut kinds = Vec::new();
    for entry in fs::read_dir(root.join("stages"))? {
        let path = entry?.path();
        if let Some(kind) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".yaml"))
        {
            kinds.push(kind.to_string());
        }
    }
    kinds.sort();
    kinds
        .into_iter()
        .map(|kind| {
            let code = kind_code(root, &kind, &lock, &manifest)?;
            Ok((kind, code))
        })
        .collect()
}

/// The fingerprint of one kind: blake3 over each reached file (path, then its normalised text) and
/// each reached crate (its `Cargo.toml` line and its locked versions), in sorted order.
fn kind_code(root: &Path, kind: &str, lock: &Lockfile, manifest: &str) -> io::Result<String> {
    let (files, crates) = reach(root, kind)?;
    let mut hasher = blake3::Hasher::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap_or(file);
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        let bytes = fs::read(file)?;
        match (
            file.extension().is_some_and(|e| e == "rs"),
            String::from_utf8(bytes),
        ) {
            (true, Ok(text)) => hasher.update(collapse_whitespace(&code_of(&text)).as_bytes()),
            (_, Ok(text)) => hasher.update(text.as_bytes()),
            (_, Err(e)) => hasher.update(e.as_bytes()),
        };
        hasher.update(b"\0");
    }
    for name in lock.closure(&crates) {
        hasher.update(name.as_bytes());
        hasher.update(b" ");
        for version in lock.versions(&name) {
            hasher.update(version.as_bytes());
            hasher.update(b" ");
        }
        hasher.update(
            dependency_line(manifest, &name)
                .unwrap_or_default()
                .as_bytes(),
        );
        hasher.update(b"\n");
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// What a kind's code reaches: the files (from its own, transitively) and the crates they name.
///
/// A file is followed (its own references read) when a path ends in it; the `mod.rs` files a path
/// passes through are part of the code but not followed, so `crate::store::hash` does not bring in
/// all of the store. Other kinds never enter: not their declarations, and not their files through
/// the registry in `src/builtin/mod.rs`.
pub fn reach(root: &Path, kind: &str) -> io::Result<(BTreeSet<PathBuf>, BTreeSet<String>)> {
    let src = root.join("src");
    let builtin = src.join("builtin");
    let registry = builtin.join("mod.rs");
    let kinds_files: BTreeSet<PathBuf> = fs::read_dir(root.join("stages"))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".yaml")?.to_string();
            (name != kind).then(|| [kind_file(&builtin, &name), e.path()])
        })
        .flatten()
        .collect();
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    let mut followed: BTreeSet<PathBuf> = BTreeSet::new();
    let mut crates: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<(PathBuf, bool)> = vec![
        (kind_file(&builtin, kind), true),
        (registry.clone(), true),
        (root.join("stages").join(format!("{kind}.yaml")), false),
    ];
    while let Some((file, follow)) = queue.pop() {
        let file = tidy(&file);
        // Other kinds' declarations never enter; their code only when a kind names it itself (not
        // through the registry, below).
        let declaration = file.extension().is_some_and(|e| e == "yaml");
        if !file.exists() || (declaration && kinds_files.contains(&file)) {
            continue;
        }
        files.insert(file.clone());
        let is_rust = file.extension().is_some_and(|e| e == "rs");
        if !follow || !is_rust || !followed.insert(file.clone()) {
            continue;
        }
        let text = code_of(&fs::read_to_string(&file)?);
        for (reference, base) in references(&text) {
            let from = match base {
                Base::Crate => src.clone(),
                Base::Parent => parent_dir(&file),
                Base::Own => children_dir(&file),
            };
            let modules = resolve(&from, &reference);
            if modules.is_empty() && base == Base::Own {
                crates.insert(reference[0].clone());
            }
            if matches!(base, Base::Parent | Base::Crate) {
                // The parent (or the crate root) holds the item when the path names no module in it.
                let root_file = module_file(&from).or_else(|| Some(src.join("lib.rs")));
                queue.extend(root_file.map(|f| (f, modules.is_empty())));
            }
            let last = modules.len().saturating_sub(1);
            for (i, module) in modules.into_iter().enumerate() {
                let other_kind = file == registry && kinds_files.contains(&module);
                if !other_kind {
                    queue.push((module, i == last));
                }
            }
        }
        let here = file.parent().unwrap_or(root);
        queue.extend(embedded(&text).into_iter().map(|p| (here.join(p), false)));
    }
    Ok((files, crates))
}

/// The file that implements `kind`: `<kind>.rs` in the built-ins' folder, or `<kind>/mod.rs` for a kind
/// that has a folder of its own.
fn kind_file(builtin: &Path, kind: &str) -> PathBuf {
    let file = builtin.join(format!("{kind}.rs"));
    let folder = builtin.join(kind).join("mod.rs");
    if !file.exists() && folder.exists() {
        folder
    } else {
        file
    }
}

/// `path` with its `.` and `..` parts resolved in the text.
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where a module path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// `crate::`
    Crate,
    /// `super::`
    Parent,
    /// A bare name: a child module of the file's own, or a crate.
    Own,
}

/// Every path a file names: `crate::a::b`, `super::c`, `d::e`, with `{...}` groups expanded.
fn references(text: &str) -> Vec<(Vec<String>, Base)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_word_byte(bytes[i - 1]);
        let after_colon = i >= 1 && bytes[i - 1] == b':';
        if starts_word && !after_colon && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
            let (paths, end) = path_at(text, i);
            for mut path in paths {
                if path.len() < 2 {
                    continue;
                }
                let base = match path[0].as_str() {
                    "crate" => Base::Crate,
                    "super" => Base::Parent,
                    _ => Base::Own,
                };
                if matches!(path[0].as_str(), "crate" | "super" | "self") {
                    path.remove(0);
                }
                if !path.is_empty() {
                    out.push((path, base));
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The path(s) starting at byte `start`: `a::b::{c, d::e}` gives `a::b::c` and `a::b::d::e`.
fn path_at(text: &str, start: usize) -> (Vec<Vec<String>>, usize) {
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        let word_end = i + bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if word_end == i {
            return (vec![segments], i);
        }
        segments.push(text[i..word_end].to_string());
        i = word_end;
        let rest = &text[i..];
        let spaced = rest.trim_start();
        if !spaced.starts_with("::") {
            return (vec![segments], i);
        }
        i += rest.len() - spaced.len() + 2;
        let rest = &text[i..];
        i += rest.len() - rest.trim_start().len();
        if bytes.get(i) == Some(&b'{') {
            let close = matching_brace(text, i);
            let mut all = Vec::new();
            for part in split_top_level(&text[i + 1..close]) {
                let part_start = part.as_ptr() as usize - text.as_ptr() as usize;
                let offset = part.len() - part.trim_start().len();
                if part.trim().is_empty() || part.trim() == "self" || part.trim() == "*" {
                    continue;
                }
                let (inner, _) = path_at(text, part_start + offset);
                for path in inner {
                    all.push(segments.iter().cloned().chain(path).collect());
                }
            }
            all.push(segments);
            return (all, close + 1);
        }
    }
}

fn matching_brace(text: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, b) in text.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len().saturating_sub(1)
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&text[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[from..]);
    parts
}

/// The module files along `path` from the folder `from`: `a` is `from/a.rs` or `from/a/mod.rs`, then
/// `b` inside it, until a segment is not a module (an item).
fn resolve(from: &Path, path: &[String]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dir = from.to_path_buf();
    for segment in path {
        let file = dir.join(format!("{segment}.rs"));
        let folder = dir.join(segment);
        if file.is_file() {
            files.push(file);
        } else if folder.join("mod.rs").is_file() {
            files.push(folder.join("mod.rs"));
        } else {
            break;
        }
        dir = folder;
    }
    files
}

/// The folder holding a file's child modules: `x/` for `x.rs`, its own folder for `mod.rs`.
fn children_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("."));
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod") | Some("lib") | Some("main") => dir.to_path_buf(),
        Some(stem) => dir.join(stem),
        None => dir.to_path_buf(),
    }
}

/// The folder of a file's parent module's children (what `super::` names from).
fn parent_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("."));
    if file.file_stem().is_some_and(|s| s == "mod") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The file of the module whose children live in `dir` (`dir/mod.rs` or `dir.rs`), if any.
fn module_file(dir: &Path) -> Option<PathBuf> {
    let inside = dir.join("mod.rs");
    let beside = dir.with_extension("rs");
    [inside, beside].into_iter().find(|p| p.is_file())
}

/// The files a Rust text embeds with `include_bytes!("...")` or `include_str!("...")`.
fn embedded(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["include_bytes!(\"", "include_str!(\""] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found
}

/// Rust text as far as it can change what the program does: no comments, no `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let mut code = strip_comments(text);
    while let Some(at) = code.find("#[cfg(test)]") {
        let rest = code[at + "#[cfg(test)]".len()..].trim_start();
        let body = rest.strip_prefix("mod ").and_then(|r| {
            let open = r.find('{')?;
            // `mod x;` (a file of its own) ends at its `;`, before any `{`.
            (r.find(';').is_none_or(|semi| open < semi)).then_some(open)
        });
        let end = match body {
            Some(open) => {
                let open = code.len() - rest.len() + "mod ".len() + open;
                matching_brace(&code, open) + 1
            }
            // A test-only item other than an inline module: only the attribute goes.
            None => at + "#[cfg(test)]".len(),
        };
        code.replace_range(at..end, " ");
    }
    code
}

/// Rust text without its comments; strings, characters and lifetimes kept as written.
pub fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut kept_from = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                out.push_str(&text[kept_from..i]);
                i += bytes[i..].iter().take_while(|b| **b != b'\n').count();
                kept_from = i;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                out.push_str(&text[kept_from..i]);
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if bytes[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
                kept_from = i;
            }
            b'r' if raw_string_hashes(&bytes[i..]).is_some()
                && (i == 0 || !is_word_byte(bytes[i - 1]) || bytes[i - 1] == b'b') =>
            {
                let hashes = raw_string_hashes(&bytes[i..]).unwrap_or(0);
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let body = i + 2 + hashes;
                i = bytes[body..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(bytes.len(), |p| body + p + close.len());
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'\'' if bytes.get(i + 1) == Some(&b'\\') => {
                i += 3;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 3,
            _ => i += 1,
        }
    }
    out.push_str(&text[kept_from.min(text.len())..]);
    out
}

/// For text starting `r"` or `r#..#"` (and not inside a word): how many `#`.
fn raw_string_hashes(bytes: &[u8]) -> Option<usize> {
    let hashes = bytes[1..].iter().take_while(|b| **b == b'#').count();
    (bytes.get(1 + hashes) == Some(&b'"')).then_some(hashes)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Runs of whitespace as one space.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The line of `Cargo.toml` that declares dependency `name` (`-` and `_` alike), if it is direct.
fn dependency_line(manifest: &str, name: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let (key, _) = line.split_once('=')?;
        (key.trim().replace('-', "_") == name.replace('-', "_")).then(|| line.trim().to_string())
    })
}

/// `Cargo.lock`: each package's versions and dependencies.
struct Lockfile {
    /// Crate name (with `_` for `-`) -> (name as written, version, dependency names).
    packages: BTreeMap<String, Vec<(String, String, Vec<String>)>>,
}

impl Lockfile {
    fn parse(text: &str) -> Lockfile {
        let mut packages: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for block in text.split("[[package]]").skip(1) {
            let field = |name: &str| {
                block.lines().find_map(|l| {
                    let value = l.strip_prefix(name)?.trim_start().strip_prefix('=')?;
                    Some(value.trim().trim_matches('"').to_string())
                })
            };
            let (Some(name), Some(version)) = (field("name"), field("version")) else {
                continue;
            };
            let deps = block
                .split_once("dependencies = [")
                .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
                .unwrap_or_default()
                .split(',')
                .filter_map(|d| {
                    d.trim()
                        .trim_matches('"')
                        .split(' ')
                        .next()
                        .map(str::to_string)
                })
                .filter(|d| !d.is_empty())
                .collect();
            packages
                .entry(name.replace('-', "_"))
                .or_default()
                .push((name, version, deps));
        }
        Lockfile { packages }
    }

    /// The crates among `names` that are packages, and everything they depend on.
    fn closure(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue: Vec<String> = names.iter().cloned().collect();
        while let Some(name) = queue.pop() {
            let Some(versions) = self.packages.get(&name.replace('-', "_")) else {
                continue;
            };
            if seen.insert(name.replace('-', "_")) {
                for (_, _, deps) in versions {
                    queue.extend(deps.iter().cloned());
                }
            }
        }
        seen
    }

    fn versions(&self, name: &str) -> Vec<String> {
        self.packages
            .get(name)
            .map(|v| v.iter().map(|(n, ver, _)| format!("{n}@{ver}")).collect())
            .unwrap_or_default()
    }
}
