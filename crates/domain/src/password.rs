//! Passwords: 8–72 bytes (bcrypt reads at most 72 bytes; longer ones are refused, never
//! silently truncated).

use std::fmt;

use crate::ValidationError;

/// A plaintext password that passed the length rules. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Fewest bytes allowed.
    pub const MIN_BYTES: usize = 8;
    /// Most bytes allowed (bcrypt's input limit).
    pub const MAX_BYTES: usize = 72;

    /// Parses a password; the length is counted in UTF-8 bytes.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ValidationError> {
        let raw = raw.into();
        let len = raw.len();
        if len < Self::MIN_BYTES {
            return Err(ValidationError::new(
                "password",
                format!("must be at least {} bytes long", Self::MIN_BYTES),
            ));
        }
        if len > Self::MAX_BYTES {
            return Err(ValidationError::new(
                "password",
                format!(
                    "must be at most {} bytes long (UTF-8); longer passwords are not truncated",
                    Self::MAX_BYTES
                ),
            ));
        }
        Ok(Self(raw))
    }

    /// The plaintext, for hashing or verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_boundaries() {
        assert!(Password::parse("a".repeat(7)).is_err());
        assert!(Password::parse("a".repeat(8)).is_ok());
        assert!(Password::parse("a".repeat(72)).is_ok());
        assert!(Password::parse("a".repeat(73)).is_err());
    }

    #[test]
    fn multibyte_counts_bytes() {
        // 'é' is 2 bytes: 4 of them are 8 bytes (ok), 36 are 72 (ok), 37 are 74 (too long).
        assert!(Password::parse("é".repeat(4)).is_ok());
        assert!(Password::parse("é".repeat(3)).is_err());
        assert!(Password::parse("é".repeat(36)).is_ok());
        assert!(Password::parse("é".repeat(37)).is_err());
        // 71 ASCII + one 2-byte char = 73 bytes.
        assert!(Password::parse(format!("{}é", "a".repeat(71))).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Password::parse("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        assert_eq!(p.expose(), "hunter2hunter2");
    }
}
