//! Who asked for a change, and in which request: stamped on every audit entry.
//!
//! The HTTP layer makes (or accepts) one request id per request and passes it down
//! as data, in the commands it hands to the ports; nothing reads it from a global.

use std::fmt;

use crate::{UserId, ValidationError};

/// The id of one API request (`X-Request-Id`): 1–128 printable ASCII characters
/// without spaces. Ids that come from clients are accepted as they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Most characters allowed.
    pub const MAX_LEN: usize = 128;

    /// Parses a request id.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ValidationError> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ValidationError::new(
                "X-Request-Id",
                format!(
                    "must be 1–{} printable ASCII characters without spaces",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who makes a change (the authenticated user) and in which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user on whose behalf the change is made.
    pub user_id: UserId,
    /// The request that asked for it.
    pub request_id: RequestId,
}

impl Actor {
    /// An actor.
    pub fn new(user_id: UserId, request_id: RequestId) -> Self {
        Self {
            user_id,
            request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert!(RequestId::parse("").is_err());
        assert!(RequestId::parse("a").is_ok());
        assert!(RequestId::parse("a".repeat(128)).is_ok());
        assert!(RequestId::parse("a".repeat(129)).is_err());
        assert!(RequestId::parse("with space").is_err());
        assert!(RequestId::parse("é").is_err());
        assert_eq!(RequestId::parse("0b4c-9f").unwrap().to_string(), "0b4c-9f");
    }
}
