//! Redlock mode: product locks on independent lock nodes, fencing tokens minted
//! on the data node (the Redlock's fence store), where the guarded scripts run.

use std::fmt;
use std::time::Duration;

use inventory_domain::{LockNode, LockQuorum};
use inventory_lock::{LockError, Redlock, RedlockConfig, RedlockNode, RedlockStatus};

use super::{ConnectError, RedisSettings, redacted};

/// The lock nodes of Redlock mode.
#[derive(Clone)]
pub struct RedlockSettings {
    /// `redis://…` URLs of the independent lock nodes (at least 3, typically 5).
    pub nodes: Vec<String>,
    /// Every node runs with `appendonly yes` + `appendfsync always`, so a restart
    /// loses no lock: it counts toward quorums again at once. Otherwise a node sits
    /// out `lock_ttl` after every (re)start, start-up included. A node reporting AOF
    /// off is not trusted whatever this says.
    pub fsync_always: bool,
    /// How long a round waits for each node; `None`: the lock's default
    /// (TTL / 100, kept within 10–100 ms).
    pub node_timeout: Option<Duration>,
}

impl fmt::Debug for RedlockSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URLs may carry passwords.
        let nodes: Vec<String> = self.nodes.iter().map(|url| redacted(url)).collect();
        f.debug_struct("RedlockSettings")
            .field("nodes", &nodes)
            .field("fsync_always", &self.fsync_always)
            .field("node_timeout", &self.node_timeout)
            .finish()
    }
}

/// Connects the Redlock: fails fast if the data node (the fence store) does not
/// answer; lock nodes that are down only count as missing votes.
pub(super) async fn connect(
    settings: &RedisSettings,
    redlock: &RedlockSettings,
) -> Result<Redlock, ConnectError> {
    let data = redis::Client::open(settings.url.as_str()).map_err(ConnectError::InvalidUrl)?;
    let nodes = redlock
        .nodes
        .iter()
        .map(|url| {
            let node = RedlockNode::from_url(url).map_err(|error| match error {
                LockError::Connect(error) => ConnectError::InvalidLockNodeUrl {
                    url: redacted(url),
                    source: error,
                },
                other => ConnectError::Lock(other),
            })?;
            Ok(if redlock.fsync_always {
                node.fsync_always()
            } else {
                node
            })
        })
        .collect::<Result<Vec<_>, ConnectError>>()?;
    let config = RedlockConfig {
        // Every lease this service takes is LOCK_TTL_MS long; a restarted
        // non-durable node sits out that long.
        max_ttl: settings.lock_ttl,
        // The fence store is the data node: its connection carries the guarded
        // scripts too, so it waits for replies as long as the data connection does.
        fence_store_timeout: settings.response_timeout,
        node_timeout: redlock.node_timeout,
        ..RedlockConfig::default()
    };
    Redlock::connect(nodes, data, config)
        .await
        .map_err(|error| match error {
            LockError::Connect(source) => ConnectError::Unreachable {
                url: redacted(&settings.url),
                source: Box::new(source),
            },
            other => ConnectError::Lock(other),
        })
}

/// The Redlock's status as the readiness check reports it.
pub(super) fn quorum(status: RedlockStatus) -> LockQuorum {
    LockQuorum {
        quorum: status.quorum,
        counting: status.counting,
        nodes: status
            .nodes
            .into_iter()
            .map(|node| LockNode {
                address: node.address,
                reachable: node.reachable,
                counts_toward_quorum: node.counts_toward_quorum,
                quarantine_left: node.quarantine_left,
                fsync_always: node.fsync_always,
            })
            .collect(),
    }
}
