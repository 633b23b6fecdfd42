//! Packs: the small files of one stage result go up and come down as a few large objects instead of
//! one request each (a folder of 10,000 images is a handful of requests, not 20,000). Files of
//! [`SMALL`] bytes and more still travel alone, named by their hash, so big files shared between
//! results are stored and sent once.
//!
//! A pack is `PIPEPACK1\n`, its index as one line of JSON (`[["<hash>", size], ...]`, sorted by
//! hash), then each file's bytes in index order. Its name is the BLAKE3 of that header, which
//! fixes its whole content (every file is named by its own hash). A pack is read as it streams in:
//! each file it holds that the store lacks goes through the store's [`ObjectWriter`], which keeps it
//! only if its bytes hash to its name, so a pack can never put into the store what a single object
//! could not. An entry names its packs in its S3 metadata ([`METADATA`]).

use std::collections::HashSet;

use crate::store::{ObjectWriter, Store};

/// Files smaller than this go into packs.
pub const SMALL: u64 = 1 << 20;

/// A result with fewer small files than this sends them alone (a pack would save nothing).
pub const PACK_FROM: usize = 16;

/// A result's small files are spread over at most this many packs, fetched at once...
const MAX_PACKS: u64 = 16;

/// ...of at least this size each...
const PACK_SIZE: u64 = 256 << 20;

/// ...and at most this many files (an index line of a few MB).
const PACK_FILES: usize = 50_000;

/// The S3 user metadata an entry names its packs in (`x-amz-meta-pipe-packs`), space-separated.
pub const METADATA: &str = "pipe-packs";

const MAGIC: &[u8] = b"PIPEPACK1\n";

/// The most header bytes read before giving up on a pack (an index of over a million files).
const MAX_HEADER: usize = 128 << 20;

/// One pack to upload: its name, its header and the files (hash, size) whose bytes follow.
#[derive(Debug)]
pub struct Pack {
    /// The BLAKE3 of `header`.
    pub name: String,
    /// The magic line and the index line.
    pub header: Vec<u8>,
    /// The files, in the order their bytes follow the header.
    pub files: Vec<(String, u64)>,
}

impl Pack {
    fn new(files: Vec<(String, u64)>) -> Pack {
        let mut header = MAGIC.to_vec();
        serde_json::to_writer(&mut header, &files).expect("an index serialises");
        header.push(b'\n');
        Pack {
            name: blake3::hash(&header).to_hex().to_string(),
            header,
            files,
        }
    }
}

/// Splits a result's objects (hash, size) into those sent alone and packs of the small ones.
pub fn plan(objects: Vec<(String, u64)>) -> (Vec<(String, u64)>, Vec<Pack>) {
    let (mut small, mut alone): (Vec<_>, Vec<_>) =
        objects.into_iter().partition(|(_, s)| *s < SMALL);
    if small.len() < PACK_FROM {
        alone.extend(small);
        return (alone, Vec::new());
    }
    small.sort();
    let total: u64 = small.iter().map(|(_, size)| size).sum();
    let target = PACK_SIZE.max(total.div_ceil(MAX_PACKS));
    let mut packs = Vec::new();
    let mut files = Vec::new();
    let mut size = 0;
    for (hash, file_size) in small {
        if (size + file_size > target || files.len() == PACK_FILES) && !files.is_empty() {
            packs.push(Pack::new(std::mem::take(&mut files)));
            size = 0;
        }
        size += file_size;
        files.push((hash, file_size));
    }
    packs.push(Pack::new(files));
    (alone, packs)
}

/// Reads a pack as its bytes arrive, storing the files the store wants.
pub struct Unpacker<'a> {
    store: &'a Store,
    wanted: &'a HashSet<String>,
    /// Header bytes until the index is read.
    header: Vec<u8>,
    index: Option<Vec<(String, u64)>>,
    /// The file being read (an index into `index`), its bytes still to come and where they go.
    current: usize,
    left: u64,
    writer: Option<ObjectWriter>,
    /// The files stored so far.
    pub stored: Vec<String>,
}

impl<'a> Unpacker<'a> {
    /// An unpacker that stores into `store` the files of `wanted` that it lacks.
    pub fn new(store: &'a Store, wanted: &'a HashSet<String>) -> Unpacker<'a> {
        Unpacker {
            store,
            wanted,
            header: Vec::new(),
            index: None,
            current: 0,
            left: 0,
            writer: None,
            stored: Vec::new(),
        }
    }

    /// Takes the next bytes of the pack; the problem when it is not a valid pack or a file in it
    /// does not match its hash.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        if self.index.is_none() {
            bytes = self.read_header(bytes)?;
            if self.index.is_none() {
                return Ok(());
            }
            self.start(0)?;
        }
        while !bytes.is_empty() {
            let index = self.index.as_ref().expect("read above");
            if self.current >= index.len() {
                return Err("the pack has bytes after its last file".into());
            }
            let take = self.left.min(bytes.len() as u64) as usize;
            if let Some(writer) = &mut self.writer {
                writer
                    .write(&bytes[..take])
                    .map_err(|e| format!("cannot write into the store: {e}"))?;
            }
            self.left -= take as u64;
            bytes = &bytes[take..];
            if self.left == 0 {
                self.start(self.current + 1)?;
            }
        }
        Ok(())
    }

    /// Reads header bytes from `bytes`; what follows the header.
    fn read_header<'b>(&mut self, bytes: &'b [u8]) -> Result<&'b [u8], String> {
        let seen = self.header.len();
        self.header.extend_from_slice(bytes);
        // The magic line ends where it says; the index line is looked for in the new bytes only.
        let from = seen.max(MAGIC.len());
        let index_end = self
            .header
            .get(from..)
            .and_then(|new| new.iter().position(|b| *b == b'\n'))
            .map(|i| i + from);
        if self.header.len() >= MAGIC.len() && !self.header.starts_with(MAGIC) {
            return Err("not a pack".into());
        }
        let Some(end) = index_end.map(|newline| newline + 1) else {
            if self.header.len() > MAX_HEADER {
                return Err("the pack's index is too long".into());
            }
            return Ok(&[]);
        };
        let index: Vec<(String, u64)> = serde_json::from_slice(&self.header[MAGIC.len()..end])
            .map_err(|e| format!("the pack's index does not parse: {e}"))?;
        self.index = Some(index);
        self.header.truncate(end);
        Ok(&bytes[end - seen..])
    }

    /// Finishes file `current - 1`'s writer (if any) and starts file `next`, passing over files of
    /// no bytes at once.
    fn start(&mut self, next: usize) -> Result<(), String> {
        let mut next = next;
        loop {
            if let Some(writer) = self.writer.take() {
                writer.finish().map_err(|refused| refused.to_string())?;
                let index = self.index.as_ref().expect("read");
                self.stored.push(index[self.current].0.clone());
            }
            self.current = next;
            let index = self.index.as_ref().expect("read");
            let Some((hash, size)) = index.get(next) else {
                return Ok(());
            };
            self.left = *size;
            if self.wanted.contains(hash) && self.store.object_file(hash).is_none() {
                self.writer = Some(
                    self.store
                        .object_writer(hash)
                        .map_err(|e| format!("cannot write into the store: {e}"))?,
                );
            }
            if self.left > 0 {
                return Ok(());
            }
            next += 1;
        }
    }

    /// Checks that the whole pack came; the files stored.
    pub fn finish(self) -> Result<Vec<String>, String> {
        match &self.index {
            Some(index) if self.current >= index.len() => Ok(self.stored),
            _ => Err("the pack is cut short".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(contents: &[&[u8]]) -> Vec<(String, u64)> {
        contents
            .iter()
            .map(|c| (blake3::hash(c).to_hex().to_string(), c.len() as u64))
            .collect()
    }

    fn pack_bytes(pack: &Pack, contents: &[&[u8]]) -> Vec<u8> {
        let mut bytes = pack.header.clone();
        for (hash, _) in &pack.files {
            let content = contents
                .iter()
                .find(|c| blake3::hash(c).to_hex().as_str() == hash)
                .unwrap();
            bytes.extend_from_slice(content);
        }
        bytes
    }

    #[test]
    fn small_files_go_in_packs_and_come_out_whole_however_the_bytes_arrive() {
        let owned: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize * 7]).collect();
        let contents: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let mut objects = hashed(&contents);
        objects.push(("f".repeat(64), SMALL));
        let (alone, packs) = plan(objects);
        assert_eq!(alone, [("f".repeat(64), SMALL)]);
        assert_eq!(packs.len(), 1);
        let bytes = pack_bytes(&packs[0], &contents);
        let sizes: u64 = packs[0].files.iter().map(|(_, size)| size).sum();
        assert_eq!(bytes.len() as u64, packs[0].header.len() as u64 + sizes);
        for chunk in [1, 3, 64, bytes.len()] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::new(dir.path().join(".pipe"));
            let wanted: HashSet<String> = packs[0].files.iter().map(|(h, _)| h.clone()).collect();
            let mut unpacker = Unpacker::new(&store, &wanted);
            for piece in bytes.chunks(chunk) {
                unpacker.feed(piece).unwrap();
            }
            assert_eq!(unpacker.finish().unwrap().len(), 20, "chunks of {chunk}");
            for content in &contents {
                let file = store.object_file(&blake3::hash(content).to_hex()).unwrap();
                assert_eq!(&std::fs::read(file).unwrap(), content);
            }
        }
        // Few small files travel alone.
        let (alone, packs) = plan(hashed(&contents[..3]));
        assert_eq!((alone.len(), packs.len()), (3, 0));
    }

    #[test]
    fn a_pack_that_lies_about_a_file_or_is_cut_short_stores_nothing_false() {
        let owned: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i + 1; 100]).collect();
        let contents: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let (_, packs) = plan(hashed(&contents));
        let mut bytes = pack_bytes(&packs[0], &contents);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join(".pipe"));
        let wanted: HashSet<String> = packs[0].files.iter().map(|(h, _)| h.clone()).collect();
        let mut cut = Unpacker::new(&store, &wanted);
        cut.feed(&bytes[..bytes.len() - 50]).unwrap();
        assert_eq!(cut.finish().unwrap_err(), "the pack is cut short");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut lying = Unpacker::new(&store, &wanted);
        let error = lying.feed(&bytes).unwrap_err();
        assert!(error.contains("does not match its hash"), "{error}");
        assert_eq!(
            Unpacker::new(&store, &wanted)
                .feed(b"GARBAGE\n[]\n")
                .unwrap_err(),
            "not a pack"
        );
    }
}
