//! All-or-nothing locking of several keys.
//!
//! Deadlock freedom: every caller takes its keys in one global order (bytewise
//! key order), so no two callers can each hold a key the other waits for.

use tokio::time::Instant;

use crate::error::LockError;
use crate::guard::LockGuard;
use crate::key::LockKey;
use crate::lock::DistributedLock;
use crate::options::AcquireOptions;

/// Several held locks, in key order.
#[derive(Debug)]
#[must_use = "dropping a guard releases the locks in the background right away"]
pub struct MultiGuard {
    guards: Vec<LockGuard>,
}

impl MultiGuard {
    /// The individual guards, sorted by key.
    pub fn guards(&self) -> &[LockGuard] {
        &self.guards
    }

    /// The guard of `key`, if it is one of the locked keys.
    pub fn get(&self, key: &LockKey) -> Option<&LockGuard> {
        self.guards
            .binary_search_by(|guard| guard.key().cmp(key))
            .ok()
            .map(|index| &self.guards[index])
    }

    /// The earliest deadline: the set is only safe to use until then.
    pub fn deadline(&self) -> Option<Instant> {
        self.guards.iter().map(LockGuard::deadline).min()
    }

    /// `Err(LeaseLost)` unless every lease is still held.
    pub fn ensure_held(&self) -> Result<(), LockError> {
        self.guards.iter().try_for_each(LockGuard::ensure_held)
    }

    /// Extends every lease; stops at the first failure.
    pub async fn extend(&self, ttl: std::time::Duration) -> Result<(), LockError> {
        for guard in &self.guards {
            guard.extend(ttl).await?;
        }
        Ok(())
    }

    /// Releases every lock, all at once (releases cannot deadlock, so unlike
    /// acquisitions they need no order); returns the first error in key order.
    pub async fn release(self) -> Result<(), LockError> {
        let results =
            futures::future::join_all(self.guards.into_iter().map(LockGuard::release)).await;
        results.into_iter().collect()
    }
}

/// Sorted, deduplicated keys: the one order in which every caller locks.
pub fn canonical_order(keys: &[LockKey]) -> Vec<LockKey> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    keys
}

pub(crate) async fn acquire_all<L: DistributedLock + ?Sized>(
    lock: &L,
    keys: &[LockKey],
    options: &AcquireOptions,
) -> Result<MultiGuard, LockError> {
    let deadline = Instant::now() + options.wait_timeout();
    let mut guards = Vec::with_capacity(keys.len());
    for key in canonical_order(keys) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let step = options.clone().with_wait_timeout(remaining);
        match lock.acquire(&key, &step).await {
            Ok(guard) => guards.push(guard),
            Err(error) => {
                release_quietly(guards).await;
                return Err(error);
            }
        }
    }
    Ok(MultiGuard { guards })
}

/// Rolls back a partial acquisition. A failed release here is not the caller's
/// error to handle: the guard has already handed it to the background releaser.
async fn release_quietly(guards: Vec<LockGuard>) {
    for guard in guards.into_iter().rev() {
        if let Err(error) = guard.release().await {
            tracing::debug!(%error, "rollback of a partial multi-key acquisition");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_order_sorts_and_dedups() {
        let keys: Vec<LockKey> = ["c", "a", "b", "a"]
            .into_iter()
            .map(|k| LockKey::new(k).unwrap())
            .collect();
        let ordered = canonical_order(&keys);
        let names: Vec<&str> = ordered.iter().map(LockKey::as_str).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
