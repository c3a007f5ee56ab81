//! What [`crate::Redlock::status`] reports: every node, and whether a quorum
//! (and the fence store) can be reached — what a readiness probe needs.

use std::time::Duration;

/// One lock node as seen just now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// `host:port/db`, without credentials.
    pub address: String,
    /// Answered `PING` in time.
    pub reachable: bool,
    /// Reachable and not in its post-restart quarantine: its votes count.
    pub counts_toward_quorum: bool,
    /// How much longer a recently (re)started node sits out of quorums.
    pub quarantine_left: Option<Duration>,
    /// Declared fsync-always ([`crate::RedlockNode::fsync_always`]).
    pub fsync_always: bool,
    /// The server's `run_id` (changes on every restart), once probed.
    pub run_id: Option<String>,
    /// Why it is not reachable, or the last connection error.
    pub error: Option<String>,
}

/// Every lock node, the quorum, and the fence store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedlockStatus {
    /// In configuration order.
    pub nodes: Vec<NodeStatus>,
    /// Votes an acquisition needs (N/2 + 1).
    pub quorum: usize,
    /// Distinct servers whose votes count right now (one server listed twice counts once).
    pub counting: usize,
    /// The fence store answered `PING` in time.
    pub fence_store_reachable: bool,
}

impl RedlockStatus {
    /// Enough nodes count to form a quorum.
    pub fn has_quorum(&self) -> bool {
        self.counting >= self.quorum
    }

    /// Locks can be taken now: a quorum counts and the fence store answers.
    pub fn is_ready(&self) -> bool {
        self.has_quorum() && self.fence_store_reachable
    }
}
