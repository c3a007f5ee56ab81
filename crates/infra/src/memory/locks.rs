//! Product locks of the in-memory store: `inventory-lock`'s [`LocalLock`], the in-process
//! implementation with the same semantics as the Redis lock (FIFO queue per key, leases,
//! fencing, guarded writes), so development mode exercises the same purchase path.

use std::time::Duration;

use inventory_domain::{ProductId, StoreError};
use inventory_lock::{AcquireOptions, DistributedLock, LocalLock, LockError, LockGuard, LockKey};

use super::MemorySettings;

pub(super) struct ProductLocks {
    lock: LocalLock,
    options: AcquireOptions,
}

/// Why a product could not be locked (or a locked write did not happen).
#[derive(Debug)]
pub(super) enum LockFailure {
    /// Busy for the whole wait, or the lease ran out before the write: nothing was
    /// written, retrying is safe.
    Retryable { retry_after: Duration },
    /// Anything else (invalid options or key): a bug or a misconfiguration.
    Failed(StoreError),
}

impl From<LockError> for LockFailure {
    fn from(error: LockError) -> Self {
        if error.is_timeout() || error.is_lease_lost() {
            LockFailure::Retryable {
                retry_after: Duration::from_secs(1),
            }
        } else {
            LockFailure::Failed(StoreError::unavailable("locking a product", error))
        }
    }
}

impl ProductLocks {
    pub(super) fn new(settings: MemorySettings) -> Self {
        Self {
            lock: LocalLock::new(),
            options: AcquireOptions::default()
                .with_ttl(settings.lock_ttl)
                .with_wait_timeout(settings.lock_wait_timeout),
        }
    }

    /// Same key as the Redis adapters use, so logs and metrics read alike.
    fn key(product: ProductId) -> Result<LockKey, LockFailure> {
        LockKey::new(format!("{{product:{product}}}:lock"))
            .map_err(|e| LockFailure::Failed(StoreError::unavailable("building a lock key", e)))
    }

    /// Waits (FIFO, up to the configured timeout) for the product's lock.
    pub(super) async fn acquire(&self, product: ProductId) -> Result<LockGuard, LockFailure> {
        let key = Self::key(product)?;
        Ok(self.lock.acquire(&key, &self.options).await?)
    }

    /// Runs `write` only if `guard` still holds the lock with the newest fencing token:
    /// a holder whose lease ran out never writes.
    pub(super) fn guarded<T>(
        &self,
        guard: &LockGuard,
        write: impl FnOnce() -> T,
    ) -> Result<T, LockFailure> {
        Ok(self.lock.guarded(guard, write)?)
    }

    /// Releases the lock now (dropping the guard would release it in the background).
    pub(super) async fn release(&self, guard: LockGuard) {
        if let Err(error) = guard.release().await {
            // Only possible if the lease ran out first; someone else may hold it now.
            tracing::warn!(%error, "product lock was no longer held at release");
        }
    }
}
