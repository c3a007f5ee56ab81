//! Lock keys and the Redis names derived from them.

use std::fmt;

/// Longest accepted lock key, in bytes. Redis allows far more; a bound keeps
/// derived names, log lines and metric labels sane.
pub const MAX_KEY_LEN: usize = 512;

/// The name of a lockable resource, e.g. `{product:42}:lock`.
///
/// Keys are compared and ordered bytewise; [`crate::DistributedLock::acquire_many`]
/// uses that order to take several locks without deadlock.
///
/// Every Redis key the lock touches for this resource (the lock itself and its
/// fencing counter) shares one Redis Cluster hash slot: if the key has a hash tag
/// (`{…}`) the derived names keep it, otherwise the whole key becomes the tag of
/// the derived names, which hashes exactly like the untagged key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockKey(String);

impl LockKey {
    /// Validates a key: non-empty, at most [`MAX_KEY_LEN`] bytes, no ASCII control characters.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidKey> {
        let key = key.into();
        if key.is_empty() {
            return Err(InvalidKey::Empty);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(InvalidKey::TooLong { len: key.len() });
        }
        if key.chars().any(|c| c.is_ascii_control()) {
            return Err(InvalidKey::ControlCharacter);
        }
        Ok(Self(key))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Redis key of the per-resource fencing counter (same cluster slot as the lock key).
    pub fn fence_key(&self) -> String {
        self.derived("fence")
    }

    /// Redis key of the line of processes waiting for this key, oldest first
    /// (same cluster slot as the lock key).
    pub fn line_key(&self) -> String {
        self.derived("line")
    }

    /// Redis key of the leases of the waiters in [`LockKey::line_key`] (same
    /// cluster slot as the lock key).
    pub fn line_leases_key(&self) -> String {
        self.derived("line-leases")
    }

    /// Pub/sub channel on which releases of this key are announced.
    pub fn release_channel(&self) -> String {
        format!("lockstock:released:{}", self.0)
    }

    fn derived(&self, suffix: &str) -> String {
        if has_hash_tag(&self.0) {
            format!("{}:{suffix}", self.0)
        } else {
            format!("{{{}}}:{suffix}", self.0)
        }
    }
}

/// Whether Redis Cluster would hash `key` by a `{tag}` rather than by the whole key:
/// the first `{` is followed, later, by a `}` with at least one byte between them.
fn has_hash_tag(key: &str) -> bool {
    let Some(open) = key.find('{') else {
        return false;
    };
    matches!(key[open + 1..].find('}'), Some(len) if len > 0)
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockKey({:?})", self.0)
    }
}

impl TryFrom<&str> for LockKey {
    type Error = InvalidKey;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for LockKey {
    type Error = InvalidKey;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

/// A lock key that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKey {
    /// The key is empty.
    #[error("lock key is empty")]
    Empty,
    /// The key is longer than [`crate::key::MAX_KEY_LEN`].
    #[error("lock key is {len} bytes long; the limit is 512")]
    TooLong {
        /// The key's length.
        len: usize,
    },
    /// The key contains an ASCII control character.
    #[error("lock key contains a control character")]
    ControlCharacter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_long_and_control_keys() {
        assert_eq!(LockKey::new(""), Err(InvalidKey::Empty));
        assert_eq!(
            LockKey::new("x".repeat(MAX_KEY_LEN + 1)),
            Err(InvalidKey::TooLong {
                len: MAX_KEY_LEN + 1
            })
        );
        assert_eq!(LockKey::new("a\nb"), Err(InvalidKey::ControlCharacter));
        assert!(LockKey::new("x".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn derived_names_keep_the_hash_slot() {
        let tagged = LockKey::new("{product:42}:lock").unwrap();
        assert_eq!(tagged.fence_key(), "{product:42}:lock:fence");
        let plain = LockKey::new("orders").unwrap();
        // `{orders}:fence` hashes on "orders", exactly like the key "orders".
        assert_eq!(plain.fence_key(), "{orders}:fence");
        // An empty tag `{}` is not a tag: Redis hashes the whole key.
        let empty_tag = LockKey::new("a{}b").unwrap();
        assert_eq!(empty_tag.fence_key(), "{a{}b}:fence");
    }

    #[test]
    fn keys_order_bytewise() {
        let mut keys = [LockKey::new("b").unwrap(), LockKey::new("a").unwrap()];
        keys.sort();
        assert_eq!(keys[0].as_str(), "a");
    }
}
