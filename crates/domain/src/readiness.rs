//! What a readiness check found: the data store, and how product locks are taken.

use std::time::Duration;

/// The answer of [`crate::HealthCheck::readiness`]: every backend part, as seen just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Why the data store did not answer; `None` when it did.
    pub data_store_error: Option<String>,
    /// Where product locks are held.
    pub locks: LockReadiness,
}

/// Where product locks are held, and whether they can be taken now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockReadiness {
    /// In this process (development mode).
    InProcess,
    /// On the data store itself: ready when it is.
    DataStore,
    /// On a quorum of independent lock nodes (Redlock).
    Quorum(LockQuorum),
}

/// The lock nodes of a quorum-based lock, and how many of them count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockQuorum {
    /// Votes an acquisition needs.
    pub quorum: usize,
    /// Distinct servers whose votes count right now.
    pub counting: usize,
    /// Every configured node, in configuration order.
    pub nodes: Vec<LockNode>,
}

/// One lock node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockNode {
    /// `host:port/db`, never with credentials.
    pub address: String,
    /// It answered just now.
    pub reachable: bool,
    /// Reachable and not sitting out a restart: its votes count.
    pub counts_toward_quorum: bool,
    /// How much longer a recently (re)started node sits out of quorums.
    pub quarantine_left: Option<Duration>,
    /// Declared durable (fsync-always): counts at once after a restart.
    pub fsync_always: bool,
}

impl Readiness {
    /// The data store answered.
    pub fn data_store_reachable(&self) -> bool {
        self.data_store_error.is_none()
    }

    /// Locks can be taken.
    pub fn locks_ready(&self) -> bool {
        match &self.locks {
            LockReadiness::InProcess | LockReadiness::DataStore => true,
            LockReadiness::Quorum(quorum) => quorum.has_quorum(),
        }
    }

    /// Purchases can be served: the data store answers and locks can be taken.
    pub fn is_ready(&self) -> bool {
        self.data_store_reachable() && self.locks_ready()
    }
}

impl LockQuorum {
    /// Enough nodes count to form a quorum.
    pub fn has_quorum(&self) -> bool {
        self.counting >= self.quorum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum(counting: usize) -> LockReadiness {
        LockReadiness::Quorum(LockQuorum {
            quorum: 3,
            counting,
            nodes: Vec::new(),
        })
    }

    #[test]
    fn ready_needs_the_data_store_and_a_lock_quorum() {
        let ready = |error: Option<&str>, locks| Readiness {
            data_store_error: error.map(str::to_owned),
            locks,
        };
        assert!(ready(None, LockReadiness::DataStore).is_ready());
        assert!(ready(None, LockReadiness::InProcess).is_ready());
        assert!(!ready(Some("down"), LockReadiness::DataStore).is_ready());
        assert!(ready(None, quorum(3)).is_ready());
        assert!(!ready(None, quorum(2)).is_ready());
        assert!(!ready(Some("down"), quorum(5)).is_ready());
    }
}
