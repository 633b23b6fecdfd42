//! Property tests of what the store reads: entries built from hostile parts (paths with `..`, `/`,
//! empty and odd parts, malformed hashes, links out) are looked up and restored without a panic and
//! without a write outside the workspace; well-formed folders round-trip byte for byte.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::hash::{FileEntry, StatCache, Tree, TreeKind, link_hash, listing_hash};
use super::{Entry, Store};

/// A fixed budget, so CI time is bounded; no failure files written into the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A path part: mostly ordinary, sometimes hostile.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "out", "x y", "\u{e9}"]),
        1 => prop::sample::select(vec!["..", ".", "", "%2e%2e", ".pipe", "~"]),
    ]
    .prop_map(str::to_string)
}

/// A path of 1 to 4 parts, now and then absolute.
fn path() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.1),
        prop::collection::vec(part(), 1..4),
    )
        .prop_map(|(absolute, parts)| {
            let joined = parts.join("/");
            if absolute {
                format!("/{joined}")
            } else {
                joined
            }
        })
}

/// Mostly `real`, sometimes malformed or naming no object.
fn hash(real: String) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(real),
        1 => prop::sample::select(vec![
            "zz".to_string(),
            String::new(),
            "\u{e9}".repeat(32),
            "A".repeat(64),
            "0".repeat(64),
        ]),
    ]
}

fn file(real: String) -> impl Strategy<Value = FileEntry> {
    (
        path(),
        hash(real),
        0u64..10,
        any::<bool>(),
        prop::option::weighted(0.2, path()),
    )
        .prop_map(|(path, hash, size, exec, link)| FileEntry {
            path,
            hash,
            size,
            exec,
            link,
        })
}

/// A tree whose own hash is mostly right for its files (so the checks past it are reached).
fn tree(real: String) -> impl Strategy<Value = Tree> {
    (
        any::<bool>(),
        prop::collection::vec(file(real.clone()), 0..4),
        prop::bool::weighted(0.75),
        hash(real),
    )
        .prop_map(|(dir, mut files, consistent, hash)| {
            let kind = if dir { TreeKind::Dir } else { TreeKind::File };
            if consistent {
                if kind == TreeKind::File {
                    files.truncate(1);
                    for f in &mut files {
                        f.path.clear();
                        f.link = None;
                    }
                }
                for f in &mut files {
                    if let Some(target) = &f.link {
                        f.hash = link_hash(target);
                    }
                }
            }
            let hash = match (consistent, kind, files.first()) {
                (true, TreeKind::Dir, _) => listing_hash(&files),
                (true, TreeKind::File, Some(f)) => f.hash.clone(),
                _ => hash,
            };
            Tree { kind, hash, files }
        })
}

/// Every path under `dir`, relative.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk_all(dir) {
        out.push(
            entry
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    out.sort();
    out
}

fn walk_all(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_all(&path));
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_entries_never_panic_nor_write_outside_the_workspace(
        outputs in prop::collection::btree_map(path(), tree("f".repeat(64)), 1..3),
        cached_all in any::<bool>(),
    ) {
        let sandbox = tempfile::tempdir().unwrap();
        let root = sandbox.path().join("ws");
        fs::create_dir_all(&root).unwrap();
        let store = Store::new(root.join(".pipe"));
        let stats = StatCache::in_memory();
        // One real object, so some entries get as far as copying bytes.
        fs::write(root.join("seed.txt"), "seed").unwrap();
        let seed = stats.hash_output(&root.join("seed.txt")).unwrap();
        let real = seed.hash.clone();
        let outputs: BTreeMap<String, Tree> = outputs
            .into_iter()
            .map(|(p, mut t)| {
                for f in &mut t.files {
                    if f.hash == "f".repeat(64) {
                        f.hash = real.clone();
                    }
                }
                (p, t)
            })
            .collect();
        let key = "ab".repeat(32);
        let seed_entry = Entry {
            format: 1,
            key: "cd".repeat(32),
            stage: "seed".into(),
            outputs: [("seed.txt".to_string(), seed)].into(),
            cached: vec!["seed.txt".into()],
            duration_s: 0.0,
        };
        store.commit(&root, &seed_entry).unwrap();
        let cached = if cached_all { outputs.keys().cloned().collect() } else { Vec::new() };
        let entry = serde_json::json!({
            "format": 1, "key": key, "stage": "s", "outputs": outputs,
            "cached": cached, "duration_s": 1.0,
        });
        let file = root.join(".pipe/stages").join(&key[..2]).join(format!("{key}.json"));
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, serde_json::to_vec(&entry).unwrap()).unwrap();
        if let Ok(Some(found)) = store.lookup(&key) {
            let _ = store.restore(&root, &found, &stats);
        }
        // Nothing beside the workspace, and nothing in it outside the store but the entry's outputs
        // and the folders that hold them.
        prop_assert_eq!(listing(sandbox.path()).iter().filter(|p| !p.starts_with("ws")).count(), 0);
        for written in listing(&root) {
            let top = written.split('/').next().unwrap_or_default();
            prop_assert!(
                top == ".pipe"
                    || top == "seed.txt"
                    || outputs.keys().any(|o| {
                        let (o, w) = (Path::new(o), Path::new(&written));
                        w.starts_with(o) || o.starts_with(w)
                    }),
                "{} written",
                written
            );
        }
    }

    #[test]
    fn folders_round_trip_byte_for_byte(
        files in prop::collection::btree_map(
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..3)
                .prop_map(|p| p.join("/")),
            prop::collection::vec(any::<u8>(), 0..64),
            1..6,
        ),
    ) {
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        let out = root.join("out");
        let mut written = BTreeMap::new();
        for (rel, bytes) in &files {
            // A path that is a folder of another (`a` and `a/b`) keeps only the first.
            let target = out.join(rel);
            if target.parent().is_some_and(|p| p.is_file()) || target.is_dir() {
                continue;
            }
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(&target, bytes).unwrap();
            written.insert(rel.clone(), bytes.clone());
        }
        let store = Store::new(root.join(".pipe"));
        let stats = StatCache::in_memory();
        let tree = stats.hash_output(&out).unwrap();
        let entry = Entry {
            format: 1,
            key: "ef".repeat(32),
            stage: "s".into(),
            outputs: [("out".to_string(), tree)].into(),
            cached: vec!["out".into()],
            duration_s: 0.0,
        };
        store.commit(root, &entry).unwrap();
        fs::remove_dir_all(&out).unwrap();
        let found = store.lookup(&entry.key).unwrap().unwrap();
        prop_assert!(store.restore(root, &found, &stats).unwrap());
        for (rel, bytes) in &written {
            prop_assert_eq!(&fs::read(out.join(rel)).unwrap(), bytes);
        }
    }
}
