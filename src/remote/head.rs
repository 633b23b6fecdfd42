//! A pipeline's head: the entries of its last pushed run in one object, so that a run on another
//! machine answers all its lookups with one request instead of one a stage (a fresh clone of a
//! 1,000-stage pipeline asks once, not 1,000 times). A head only saves requests: each entry in it is
//! checked as one fetched alone (format, key, paths, hashes, and the signature with a team key), and
//! one that fails, or a key it lacks, is asked for alone. There is one per pipeline and params (a
//! sweep's runs each have theirs); it is rewritten by every run of them that pushes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::client::Metadata;

const FORMAT: u32 = 1;

/// One stage result in a head: its key, its entry's bytes as stored, the metadata it went up with
/// (its packs, its signature).
#[derive(Serialize, Deserialize)]
struct Held {
    key: String,
    entry: String,
    metadata: Metadata,
}

#[derive(Serialize, Deserialize)]
struct Head {
    format: u32,
    entries: Vec<Held>,
}

/// Where the head of pipeline `file` (its name in the workspace) with `params` (after `--set` and a
/// sweep's values) lives in the bucket: one head per configuration, so a sweep's runs each have theirs.
pub fn name(file: &str, params: &serde_json::Value) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(file.as_bytes());
    hasher.update(&[0]);
    hasher.update(params.to_string().as_bytes());
    format!("heads/{}.json", &hasher.finalize().to_hex()[..32])
}

/// A head of `results` (key, entry bytes, metadata).
pub fn build(results: Vec<(String, Vec<u8>, Metadata)>) -> Vec<u8> {
    let entries = results
        .into_iter()
        .filter_map(|(key, bytes, metadata)| {
            let entry = String::from_utf8(bytes).ok()?;
            Some(Held {
                key,
                entry,
                metadata,
            })
        })
        .collect();
    serde_json::to_vec(&Head {
        format: FORMAT,
        entries,
    })
    .expect("a head serialises")
}

/// What a head holds, by key: the entry's bytes and metadata, unchecked (nothing from a head that
/// does not parse or is of another format).
pub fn parse(bytes: &[u8]) -> HashMap<String, (Vec<u8>, Metadata)> {
    match serde_json::from_slice::<Head>(bytes) {
        Ok(head) if head.format == FORMAT => head
            .entries
            .into_iter()
            .map(|held| (held.key, (held.entry.into_bytes(), held.metadata)))
            .collect(),
        _ => HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_gives_back_what_it_was_built_from_and_nothing_from_garbage() {
        let metadata = Metadata::from([("pipe-packs".to_string(), "ab".repeat(32))]);
        let head = build(vec![(
            "k1".into(),
            b"{\"format\":1}".to_vec(),
            metadata.clone(),
        )]);
        let held = parse(&head);
        assert_eq!(held["k1"], (b"{\"format\":1}".to_vec(), metadata));
        assert!(parse(b"not json").is_empty());
        assert!(parse(br#"{"format":2,"entries":[]}"#).is_empty());
        let params = serde_json::json!({"seed": 1});
        assert_ne!(name("a.yaml", &params), name("b.yaml", &params));
        let other = serde_json::json!({"seed": 2});
        assert_ne!(name("a.yaml", &params), name("a.yaml", &other));
    }
}
