//! Configuration of a [`crate::Redlock`]: its nodes and its timeouts.

use std::fmt;
use std::time::Duration;

use crate::error::{InvalidOptions, LockError};
use crate::options::MIN_TTL;
use crate::quorum;

/// Fewest lock nodes Redlock accepts: with fewer, a single failure loses the quorum.
pub const MIN_REDLOCK_NODES: usize = 3;

/// Settings of a [`crate::Redlock`]. `Default` suits leases of up to 30 s.
///
/// ```
/// use std::time::Duration;
/// use inventory_lock::RedlockConfig;
///
/// let config = RedlockConfig {
///     max_ttl: Duration::from_secs(5), // the service's LOCK_TTL_MS
///     ..RedlockConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct RedlockConfig {
    /// The longest lease any process takes on these nodes. Acquisitions and
    /// extensions asking for more are refused
    /// ([`InvalidOptions::TtlAboveMax`]), and a node that restarted without
    /// fsync-always persistence takes no part in quorums until this long after
    /// its restart (by then every lock it forgot has expired). Every process
    /// sharing the nodes must use the same value or a larger one.
    pub max_ttl: Duration,
    /// How long one node may take to answer one request before its vote is
    /// lost. `None` (the default): TTL/100 of the acquisition, within
    /// [10 ms, 100 ms] (50 ms for a 5 s lease). Keep it far below the TTL: an
    /// attempt can take this long, and that time comes off the lease.
    pub node_timeout: Option<Duration>,
    /// Longest wait to (re)connect to one node, including the `INFO` probe
    /// that identifies it. Runs in the background: an acquisition waits for a
    /// reconnecting node no longer than its node timeout.
    pub connect_timeout: Duration,
    /// Response timeout of the fence-store connection: the fencing-token
    /// `INCR` after a quorum and, if the caller uses
    /// [`crate::Redlock::fence_store`], guarded writes.
    pub fence_store_timeout: Duration,
    /// Subscribe to release notifications on every node (recommended). Without
    /// them waiters poll with the jittered backoff of
    /// [`crate::AcquireOptions::with_backoff`].
    pub notifications: bool,
}

impl Default for RedlockConfig {
    fn default() -> Self {
        Self {
            max_ttl: Duration::from_secs(30),
            node_timeout: None,
            connect_timeout: Duration::from_millis(1_000),
            fence_store_timeout: Duration::from_millis(1_000),
            notifications: true,
        }
    }
}

impl RedlockConfig {
    /// Checks the settings once, before anything connects.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        if self.max_ttl < MIN_TTL {
            return Err(InvalidOptions::TtlTooShort { ttl: self.max_ttl });
        }
        let timeouts = [
            Some(self.connect_timeout),
            Some(self.fence_store_timeout),
            self.node_timeout,
        ];
        if let Some(zero) = timeouts.into_iter().flatten().find(|t| t.is_zero()) {
            return Err(InvalidOptions::ZeroTimeout { timeout: zero });
        }
        Ok(())
    }

    /// The per-node timeout for an operation on a lease of `ttl`.
    pub(crate) fn node_timeout_for(&self, ttl: Duration) -> Duration {
        quorum::node_timeout(ttl, self.node_timeout)
    }

    /// The per-node timeout when no TTL is involved (subscribing, status).
    pub(crate) fn node_timeout_untimed(&self) -> Duration {
        self.node_timeout.unwrap_or(quorum::AUTO_NODE_TIMEOUT_MAX)
    }
}

/// One independent Redis master of a [`crate::Redlock`].
///
/// Nodes must not replicate each other (no replicas promoted into the set) and
/// must not share a server: Redlock's safety rests on their failing
/// independently. One server reachable under two addresses is detected by its
/// `run_id` and counted once.
#[derive(Clone)]
pub struct RedlockNode {
    pub(crate) client: redis::Client,
    pub(crate) durable: bool,
}

impl RedlockNode {
    /// A node reached through `client`, assumed not durable (see
    /// [`RedlockNode::fsync_always`]).
    pub fn new(client: redis::Client) -> Self {
        Self {
            client,
            durable: false,
        }
    }

    /// Parses `url` (`redis://host:port/db`).
    pub fn from_url(url: &str) -> Result<Self, LockError> {
        redis::Client::open(url)
            .map(Self::new)
            .map_err(LockError::Connect)
    }

    /// Declares that the node runs with `appendonly yes` and `appendfsync
    /// always`, so a restart loses no lock: it counts toward quorums again as
    /// soon as it answers. (If the node reports AOF off, the declaration is
    /// ignored and a warning logged.) Undeclared nodes sit out `max_ttl` after
    /// every restart.
    pub fn fsync_always(mut self) -> Self {
        self.durable = true;
        self
    }

    /// `host:port/db`, without credentials: for logs, metrics and status.
    pub fn address(&self) -> String {
        let info = self.client.get_connection_info();
        format!("{}/{}", info.addr(), info.redis_settings().db())
    }
}

impl From<redis::Client> for RedlockNode {
    fn from(client: redis::Client) -> Self {
        Self::new(client)
    }
}

impl fmt::Debug for RedlockNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedlockNode")
            .field("address", &self.address())
            .field("fsync_always", &self.durable)
            .finish()
    }
}

/// Checks the node list: at least [`MIN_REDLOCK_NODES`], no address twice.
pub(crate) fn validate_nodes(nodes: &[RedlockNode]) -> Result<(), InvalidOptions> {
    if nodes.len() < MIN_REDLOCK_NODES {
        return Err(InvalidOptions::TooFewNodes { nodes: nodes.len() });
    }
    let mut seen: Vec<String> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let address = node.address();
        if seen.contains(&address) {
            return Err(InvalidOptions::DuplicateNode { address });
        }
        seen.push(address);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(url: &str) -> RedlockNode {
        RedlockNode::from_url(url).unwrap()
    }

    #[test]
    fn fewer_than_three_nodes_are_refused() {
        let two = [node("redis://a:1/"), node("redis://b:1/")];
        assert_eq!(
            validate_nodes(&two),
            Err(InvalidOptions::TooFewNodes { nodes: 2 })
        );
        assert!(validate_nodes(&[]).is_err());
    }

    #[test]
    fn the_same_address_twice_is_refused() {
        let nodes = [
            node("redis://a:1/0"),
            node("redis://b:1/0"),
            node("redis://a:1"),
        ];
        assert!(matches!(
            validate_nodes(&nodes),
            Err(InvalidOptions::DuplicateNode { .. })
        ));
        let other_db = [
            node("redis://a:1/0"),
            node("redis://b:1/0"),
            node("redis://a:1/1"),
        ];
        // Accepted here; at run time both report one run_id and vote once.
        assert!(validate_nodes(&other_db).is_ok());
    }

    #[test]
    fn addresses_carry_no_credentials() {
        let secret = node("redis://:hunter2@a:1/3");
        assert_eq!(secret.address(), "a:1/3");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn config_validation() {
        assert!(RedlockConfig::default().validate().is_ok());
        let zero = RedlockConfig {
            node_timeout: Some(Duration::ZERO),
            ..RedlockConfig::default()
        };
        assert!(matches!(
            zero.validate(),
            Err(InvalidOptions::ZeroTimeout { .. })
        ));
        let tiny = RedlockConfig {
            max_ttl: Duration::from_millis(1),
            ..RedlockConfig::default()
        };
        assert!(tiny.validate().is_err());
    }
}
