//! Users and their roles.

use std::{fmt, str::FromStr};

use time::OffsetDateTime;

use crate::{Email, UserId, Username};

/// What a user may do. Admins manage products; users buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A buyer.
    User,
    /// Manages the catalogue and may read every purchase.
    Admin,
}

impl Role {
    /// Stable lowercase name, used in storage, tokens and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// A registered account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Unique login name.
    pub username: Username,
    /// Optional contact address.
    pub email: Option<Email>,
    /// What it may do.
    pub role: Role,
    /// bcrypt hash of the password (never the password itself).
    pub password_hash: String,
    /// When it registered.
    pub created_at: OffsetDateTime,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is left out: it has no place in logs.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What registration hands to the repository; the repository assigns id and time.
#[derive(Clone)]
pub struct NewUser {
    /// Login name; the repository enforces uniqueness atomically.
    pub username: Username,
    /// Optional contact address.
    pub email: Option<Email>,
    /// Role of the new account.
    pub role: Role,
    /// bcrypt hash of the password.
    pub password_hash: String,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trip() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn debug_hides_the_hash() {
        let user = User {
            id: UserId(1),
            username: Username::parse("alice").unwrap(),
            email: None,
            role: Role::User,
            password_hash: "$2b$04$secret-hash".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(!format!("{user:?}").contains("secret-hash"));
    }
}
