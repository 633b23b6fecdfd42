//! Signed entries: a team key that whoever may write to the bucket need not have. A pushed entry
//! carries a MAC over its stage key and its bytes (which name every object by its hash), so a reader
//! with the key takes only entries that someone with the key pushed: the objects they name are
//! checked against their hashes as always, so nothing unsigned reaches the store. This is the role of
//! turborepo's `x-artifact-tag`, with BLAKE3's keyed mode as the MAC (a PRF under a 256-bit key, as
//! HMAC-SHA256 is) and the signing key derived from the team's key text.

use std::fmt;
use std::path::Path;

/// The shortest team key accepted, in bytes.
const MIN_KEY_LEN: usize = 16;

/// What the signing key is derived for (another use of the same text gets another key).
const CONTEXT: &str = "pipe 2026-12 remote cache entry signature v1";

/// The S3 user metadata an entry's signature travels in (`x-amz-meta-pipe-signature`).
pub const METADATA: &str = "pipe-signature";

/// A team's signing key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct TeamKey([u8; 32]);

impl fmt::Debug for TeamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TeamKey(..)")
    }
}

impl TeamKey {
    /// The key derived from the team's key text (surrounding whitespace ignored).
    pub fn new(text: &str) -> Result<TeamKey, String> {
        let text = text.trim();
        if text.len() < MIN_KEY_LEN {
            return Err(format!(
                "a team key must be at least {MIN_KEY_LEN} characters (for example `openssl rand -hex 32`)"
            ));
        }
        Ok(TeamKey(blake3::derive_key(CONTEXT, text.as_bytes())))
    }

    /// The key in the file at `path`.
    pub fn read(path: &Path) -> Result<TeamKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the team key file `{}`: {e}", path.display()))?;
        TeamKey::new(&text).map_err(|e| format!("`{}`: {e}", path.display()))
    }

    fn mac(&self, key: &str, entry: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(key.as_bytes());
        hasher.update(&[0]);
        hasher.update(entry);
        hasher.finalize()
    }

    /// The signature of `entry`, the bytes of stage `key`'s entry.
    pub fn sign(&self, key: &str, entry: &[u8]) -> String {
        self.mac(key, entry).to_hex().to_string()
    }

    /// Whether `signature` is this key's signature of `entry` for stage `key` (compared in constant
    /// time).
    pub fn verifies(&self, key: &str, entry: &[u8], signature: Option<&str>) -> bool {
        signature
            .and_then(|s| blake3::Hash::from_hex(s).ok())
            .is_some_and(|given| given == self.mac(key, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_key_its_entry_and_the_team_key() {
        let team = TeamKey::new("  correct horse battery staple\n").unwrap();
        let (key, entry) = ("ab".repeat(32), br#"{"format":1}"#.as_slice());
        let signature = team.sign(&key, entry);
        assert!(team.verifies(&key, entry, Some(&signature)));
        assert!(!team.verifies(&key, entry, None));
        assert!(!team.verifies(&key, br#"{"format":2}"#, Some(&signature)));
        assert!(!team.verifies(&"cd".repeat(32), entry, Some(&signature)));
        assert!(!team.verifies(&key, entry, Some("not hex")));
        let other = TeamKey::new("another team's key text").unwrap();
        assert!(!other.verifies(&key, entry, Some(&signature)));
        assert!(TeamKey::new("short").unwrap_err().contains("at least 16"));
        assert_eq!(format!("{team:?}"), "TeamKey(..)");
    }
}
