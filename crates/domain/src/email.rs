//! E-mail addresses, lightly checked: deliverability is not this service's business.

use std::fmt;

use crate::ValidationError;

/// A plausible e-mail address: `local@domain.tld`, no whitespace, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Most characters allowed, as given (RFC 5321's path limit, counted in characters
    /// so that the rule is the one JSON Schema's `maxLength` states).
    pub const MAX_LEN: usize = 254;

    /// Parses an address (surrounding whitespace is trimmed, after the length check).
    pub fn parse(raw: impl AsRef<str>) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("email", "must be an e-mail address");
        if raw.as_ref().chars().count() > Self::MAX_LEN {
            return Err(invalid());
        }
        let raw = raw.as_ref().trim();
        if raw.is_empty() {
            return Err(invalid());
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_addresses() {
        assert_eq!(
            Email::parse(" alice@example.com ").unwrap().as_str(),
            "alice@example.com"
        );
        assert!(Email::parse("a.b+c@sub.example.org").is_ok());
    }

    #[test]
    fn rejects_the_obviously_wrong() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a@b@c.com",
            "al ice@example.com",
            "alice@.com",
            "alice@com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(long).is_err());
        // Characters, not bytes, and counted before trimming.
        let wide = format!("{}@example.com", "é".repeat(242));
        assert_eq!(wide.chars().count(), 254);
        assert!(Email::parse(&wide).is_ok());
        assert!(Email::parse(format!(" {wide}")).is_err());
    }
}
