//! Lock ownership tokens and fencing tokens.

use std::fmt;

use rand::RngExt;

/// A 128-bit random value that identifies one acquisition of a lock.
///
/// It is the value stored under the lock key; every release, extend and guarded
/// write compares it inside Redis, so only the holder can act on its lock. It is
/// never logged (its `Debug` output is redacted): knowing it is owning the lock.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LockToken(String);

impl LockToken {
    /// A fresh token from the thread-local CSPRNG.
    pub fn random() -> Self {
        let bytes: [u8; 16] = rand::rng().random();
        Self(hex::encode(bytes))
    }

    /// The token as stored in Redis (32 lowercase hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(<redacted>)")
    }
}

/// A 128-bit random value that names one waiting `acquire` in a key's line
/// of processes (kept in Redis), for as long as that call waits.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct WaiterId(String);

impl WaiterId {
    /// A fresh id from the thread-local CSPRNG.
    pub(crate) fn random() -> Self {
        let bytes: [u8; 16] = rand::rng().random();
        Self(hex::encode(bytes))
    }

    /// The id as stored in the line.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A per-key counter value handed out with every successful acquisition.
///
/// Fencing tokens of one key strictly increase over time (the counter is
/// incremented in the same atomic step that takes the lock), so a storage system
/// that remembers the largest token it has accepted can reject writes from a
/// holder whose lease has since passed to someone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// Wraps a raw counter value.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The raw counter value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_and_distinct() {
        let a = LockToken::random();
        let b = LockToken::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "LockToken(<redacted>)");
    }
}
