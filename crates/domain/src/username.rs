//! Usernames: 3–50 characters of `[A-Za-z0-9_.-]`.

use std::fmt;

use crate::ValidationError;

/// A valid username. Compared case-sensitively, exactly as registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Fewest characters allowed.
    pub const MIN_LEN: usize = 3;
    /// Most characters allowed.
    pub const MAX_LEN: usize = 50;

    /// Parses a username.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ValidationError> {
        let raw = raw.into();
        // Only ASCII is allowed, so counting bytes after the charset check counts chars.
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(ValidationError::new(
                "username",
                format!("may contain only letters, digits, '_', '.' and '-' (found {bad:?})"),
            ));
        }
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len()) {
            return Err(ValidationError::new(
                "username",
                format!(
                    "must be {}–{} characters long",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_boundaries() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse("a".repeat(50)).is_ok());
        assert!(Username::parse("a".repeat(51)).is_err());
        assert!(Username::parse("").is_err());
    }

    #[test]
    fn charset() {
        assert!(Username::parse("Alice_1.b-c").is_ok());
        for bad in ["al ice", "alice!", "ålice", "al\u{0}ce", "al/ce", "алиса"] {
            let err = Username::parse(bad).unwrap_err();
            assert_eq!(err.field, "username", "{bad}");
        }
    }

    #[test]
    fn multibyte_is_not_counted_as_several_chars() {
        // 3 chars but 6 bytes: rejected for its charset, not accepted by byte length.
        assert!(Username::parse("ééé").is_err());
    }
}
