//! Product locks of the in-memory store: `inventory-lock`'s [`LocalLock`], the in-process
//! implementation with the same semantics as the Redis lock (FIFO queue per key, leases,
//! fencing, guarded writes), so development mode exercises the same purchase path.

use inventory_domain::ProductId;
use inventory_lock::{AcquireOptions, DistributedLock, LocalLock, LockGuard, LockKey, MultiGuard};

use super::MemorySettings;
use crate::lock_failure::LockFailure;

pub(super) struct ProductLocks {
    lock: LocalLock,
    options: AcquireOptions,
}

impl ProductLocks {
    pub(super) fn new(lock: LocalLock, settings: MemorySettings) -> Self {
        Self {
            lock,
            options: options(settings),
        }
    }

    /// Waits (FIFO, up to the configured timeout) for the product's lock.
    pub(super) async fn acquire(&self, product: ProductId) -> Result<LockGuard, LockFailure> {
        self.lock
            .acquire(&key(product), &self.options)
            .await
            .map_err(|error| LockFailure::classify(&error, "taking a product lock"))
    }

    /// Waits (sorted, all or nothing, up to the configured timeout) for every
    /// product's lock.
    pub(super) async fn acquire_many(
        &self,
        products: impl Iterator<Item = ProductId>,
    ) -> Result<MultiGuard, LockFailure> {
        let keys: Vec<LockKey> = products.map(key).collect();
        self.lock
            .acquire_many(&keys, &self.options)
            .await
            .map_err(|error| LockFailure::classify(&error, "taking product locks"))
    }

    /// Runs `write` only if every guard of `guards` still holds its lease.
    pub(super) fn guarded_many<T>(
        &self,
        guards: &MultiGuard,
        write: impl FnOnce() -> T,
    ) -> Result<T, LockFailure> {
        self.lock
            .guarded_many(guards, write)
            .map_err(|error| LockFailure::classify(&error, "writing under product locks"))
    }

    /// Releases every lock of the set now.
    pub(super) async fn release_many(&self, guards: MultiGuard) {
        if let Err(error) = guards.release().await {
            tracing::warn!(%error, "a product lock was no longer held at release");
        }
    }

    /// Runs `write` only if `guard` still holds the lock with the newest fencing token:
    /// a holder whose lease ran out never writes.
    pub(super) fn guarded<T>(
        &self,
        guard: &LockGuard,
        write: impl FnOnce() -> T,
    ) -> Result<T, LockFailure> {
        self.lock
            .guarded(guard, write)
            .map_err(|error| LockFailure::classify(&error, "writing under a product lock"))
    }

    /// Releases the lock now (dropping the guard would release it in the background).
    pub(super) async fn release(&self, guard: LockGuard) {
        if let Err(error) = guard.release().await {
            // Only possible if the lease ran out first; someone else may hold it now.
            tracing::warn!(%error, "product lock was no longer held at release");
        }
    }
}

/// How products are locked in memory.
pub(super) fn options(settings: MemorySettings) -> AcquireOptions {
    AcquireOptions::default()
        .with_ttl(settings.lock_ttl)
        .with_wait_timeout(settings.lock_wait_timeout)
}

/// Same key as the Redis adapters use, so logs and metrics read alike.
pub(super) fn key(product: ProductId) -> LockKey {
    // Always valid: short, ASCII, no control characters.
    LockKey::new(format!("{{product:{product}}}:lock")).unwrap_or_else(|_| unreachable!())
}
