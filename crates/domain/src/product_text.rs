//! Product names and descriptions.

use std::fmt;

use crate::ValidationError;

/// A product's name: at most 200 characters as given, not blank, without control
/// characters once trimmed. Unique across products.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductName(String);

impl ProductName {
    /// Most characters (not bytes) allowed.
    pub const MAX_CHARS: usize = 200;

    /// Parses a name; surrounding whitespace is trimmed after the length check (so the
    /// rule is the one JSON Schema's `maxLength` states).
    pub fn parse(raw: impl AsRef<str>) -> Result<Self, ValidationError> {
        if raw.as_ref().chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "name",
                format!("must be at most {} characters long", Self::MAX_CHARS),
            ));
        }
        let name = raw.as_ref().trim();
        if name.is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product's free-text description: at most 2,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// Most characters (not bytes) allowed.
    pub const MAX_CHARS: usize = 2000;

    /// Parses a description.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ValidationError> {
        let raw = raw.into();
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "description",
                format!("must be at most {} characters long", Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw))
    }

    /// The description as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The description as an owned string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_boundaries() {
        assert!(ProductName::parse("").is_err());
        assert!(ProductName::parse("   ").is_err());
        assert_eq!(ProductName::parse("  x ").unwrap().as_str(), "x");
        assert!(ProductName::parse("a".repeat(200)).is_ok());
        assert!(ProductName::parse("a".repeat(201)).is_err());
        // 200 two-byte characters are 200 characters.
        assert!(ProductName::parse("é".repeat(200)).is_ok());
        assert!(ProductName::parse("é".repeat(201)).is_err());
        assert!(ProductName::parse("a\nb").is_err());
        // Counted as given, before trimming.
        assert!(ProductName::parse(format!(" {}", "a".repeat(200))).is_err());
        // Whitespace controls at the edges are trimmed away.
        assert_eq!(ProductName::parse("\tx\n").unwrap().as_str(), "x");
    }

    #[test]
    fn description_boundaries() {
        assert!(Description::parse("").is_ok());
        assert!(Description::parse("é".repeat(2000)).is_ok());
        assert!(Description::parse("é".repeat(2001)).is_err());
    }
}
