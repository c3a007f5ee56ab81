//! The errors of this crate.

use std::time::Duration;

pub use crate::key::InvalidKey;
use crate::key::LockKey;

/// Why a lock operation failed.
///
/// Use the predicates ([`LockError::is_timeout`], [`LockError::is_lease_lost`], …)
/// rather than matching exhaustively: new variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock stayed held by someone else for the whole wait.
    #[error("timed out after {waited:?} waiting for lock `{key}` ({attempts} attempts)")]
    Timeout {
        /// The contended key.
        key: LockKey,
        /// How long the caller waited.
        waited: Duration,
        /// How many times the backend was asked for the lock.
        attempts: u32,
    },
    /// This holder's lease is gone: it expired, or a renewal failed. Whatever the
    /// holder was doing under the lock must be treated as not protected any more.
    #[error("the lease on lock `{key}` was lost")]
    LeaseLost {
        /// The key whose lease was lost.
        key: LockKey,
    },
    /// The backend holds the key under another token: a release or extend found
    /// the lock already taken over by someone else (or already gone).
    #[error("lock `{key}` is not held by this token")]
    NotOwner {
        /// The key.
        key: LockKey,
    },
    /// Redlock: too few lock nodes answered (in time, and outside their
    /// post-restart quarantine) to form a quorum. For `acquire` this is
    /// reported once the wait timeout has passed, and nothing is left held;
    /// like [`LockError::Timeout`] it counts as a timeout
    /// ([`LockError::is_timeout`]): retrying later may succeed.
    #[error(
        "no quorum of lock nodes for {operation} on `{key}`: {answered} of {nodes} nodes usable, {quorum} needed (after {waited:?}, {attempts} attempts)"
    )]
    NoQuorum {
        /// `acquire`, `extend` or `release`.
        operation: &'static str,
        /// The key concerned.
        key: LockKey,
        /// Distinct eligible nodes that answered the last attempt.
        answered: usize,
        /// Nodes configured.
        nodes: usize,
        /// Votes needed.
        quorum: usize,
        /// How long the caller waited.
        waited: Duration,
        /// How many rounds were sent.
        attempts: u32,
    },
    /// Redis failed or did not answer in time. For a write, the outcome is unknown.
    #[error("redis error during {operation} on lock `{key}`")]
    Backend {
        /// What was being done: `acquire`, `release`, `extend`, `guarded write`, …
        operation: &'static str,
        /// The key concerned.
        key: LockKey,
        /// The client error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis could not be reached at construction time.
    #[error("could not connect to redis for locking")]
    Connect(#[source] redis::RedisError),
    /// The options cannot work (see [`InvalidOptions`]).
    #[error(transparent)]
    InvalidOptions(#[from] InvalidOptions),
    /// A key failed validation.
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
}

impl LockError {
    /// The lock could not be had within the wait timeout: it stayed held
    /// ([`LockError::Timeout`]) or, with Redlock, too few nodes answered
    /// ([`LockError::NoQuorum`]). Either way nothing is held and retrying
    /// later may succeed (a service answers "503, retry after").
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::NoQuorum { .. })
    }

    /// Redlock could not reach a quorum of its nodes.
    pub fn is_no_quorum(&self) -> bool {
        matches!(self, Self::NoQuorum { .. })
    }

    /// The holder's lease is gone.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::LeaseLost { .. })
    }

    /// The lock was held under another token.
    pub fn is_not_owner(&self) -> bool {
        matches!(self, Self::NotOwner { .. })
    }

    /// Redis failed; [`LockError::is_unknown_outcome`] tells whether a write may have happened.
    pub fn is_backend(&self) -> bool {
        matches!(self, Self::Backend { .. } | Self::Connect(_))
    }

    /// A write was sent but its reply never came (timeout or dropped connection):
    /// Redis may or may not have applied it.
    pub fn is_unknown_outcome(&self) -> bool {
        match self {
            Self::Backend { source, .. } => {
                source.is_timeout() || source.is_connection_dropped() || source.is_io_error()
            }
            _ => false,
        }
    }

    /// The key this error concerns, where there is one.
    pub fn key(&self) -> Option<&LockKey> {
        match self {
            Self::Timeout { key, .. }
            | Self::LeaseLost { key }
            | Self::NotOwner { key }
            | Self::NoQuorum { key, .. }
            | Self::Backend { key, .. } => Some(key),
            _ => None,
        }
    }

    pub(crate) fn backend(
        operation: &'static str,
        key: &LockKey,
        source: redis::RedisError,
    ) -> Self {
        Self::Backend {
            operation,
            key: key.clone(),
            source,
        }
    }
}

/// Options that cannot produce a usable lease.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOptions {
    /// The TTL is below [`crate::options::MIN_TTL`].
    #[error("lock TTL {ttl:?} is shorter than the 10 ms minimum")]
    TtlTooShort {
        /// The rejected TTL.
        ttl: Duration,
    },
    /// The drift factor is outside `[0, 0.5)`.
    #[error("clock-drift factor {factor} is outside [0, 0.5)")]
    DriftFactor {
        /// The rejected factor.
        factor: f64,
    },
    /// The drift allowance leaves no usable lease.
    #[error("the clock-drift allowance leaves no usable lease for TTL {ttl:?}")]
    NoValidity {
        /// The TTL.
        ttl: Duration,
    },
    /// A Redlock acquisition or extension asked for a longer lease than the
    /// configured `max_ttl` (which bounds how long restarted nodes sit out).
    #[error("lock TTL {ttl:?} exceeds the Redlock max_ttl {max:?}")]
    TtlAboveMax {
        /// The requested TTL.
        ttl: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// Redlock was given fewer than three nodes.
    #[error("Redlock needs at least 3 independent lock nodes (5 is typical), got {nodes}")]
    TooFewNodes {
        /// How many were given.
        nodes: usize,
    },
    /// The same Redlock node was listed twice.
    #[error("Redlock node {address} is listed twice")]
    DuplicateNode {
        /// The node's `host:port/db`.
        address: String,
    },
    /// A timeout of zero.
    #[error("timeout {timeout:?} must be positive")]
    ZeroTimeout {
        /// The rejected value.
        timeout: Duration,
    },
    /// The backoff bounds are zero or inverted.
    #[error("backoff bounds must satisfy 0 < min ({min:?}) <= cap ({cap:?})")]
    Backoff {
        /// Lower bound.
        min: Duration,
        /// Upper bound.
        cap: Duration,
    },
}
