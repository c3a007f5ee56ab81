//! Idempotency keys of purchases (IETF `Idempotency-Key` header draft).

use std::{fmt, time::Duration};

use crate::ValidationError;

/// How long an idempotency record is kept at least: 24 hours.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A client-chosen key: 1–255 printable ASCII characters. Scoped per user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Most characters allowed.
    pub const MAX_LEN: usize = 255;

    /// Parses a key (the header value, as received).
    pub fn parse(raw: impl Into<String>) -> Result<Self, ValidationError> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "Idempotency-Key",
                format!("must be 1–{} characters long", Self::MAX_LEN),
            ));
        }
        if !raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ValidationError::new(
                "Idempotency-Key",
                "must contain only printable ASCII characters",
            ));
        }
        Ok(Self(raw))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse("a".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("a".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("with space ~").is_ok());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("é").is_err());
        assert!(IdempotencyKey::parse("nl\n").is_err());
    }
}
