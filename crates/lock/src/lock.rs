//! The lock trait every implementation offers.

use async_trait::async_trait;

use crate::error::LockError;
use crate::guard::LockGuard;
use crate::key::LockKey;
use crate::multi::{self, MultiGuard};
use crate::options::AcquireOptions;

/// A pessimistic, lease-based lock over named keys.
///
/// Object-safe: services hold an `Arc<dyn DistributedLock>` and choose the
/// implementation ([`crate::RedisLock`], [`crate::LocalLock`], …) at start-up.
#[async_trait]
pub trait DistributedLock: Send + Sync {
    /// Waits up to `options.wait_timeout()` for `key`.
    ///
    /// Same-process callers are served in arrival order. Waiting is driven by
    /// release notifications, with a bounded jittered backoff as the fallback.
    /// Dropping the returned future at any point leaves no lock behind.
    async fn acquire(
        &self,
        key: &LockKey,
        options: &AcquireOptions,
    ) -> Result<LockGuard, LockError>;

    /// One attempt without waiting: `Ok(None)` if the key is held, or if another
    /// caller in this process is already waiting for it.
    async fn try_acquire(
        &self,
        key: &LockKey,
        options: &AcquireOptions,
    ) -> Result<Option<LockGuard>, LockError>;

    /// Takes every key or none. Keys are sorted and deduplicated first, so callers
    /// naming the same keys in different orders cannot deadlock; on any failure
    /// the keys already taken are released. `options.wait_timeout()` bounds the
    /// whole operation.
    async fn acquire_many(
        &self,
        keys: &[LockKey],
        options: &AcquireOptions,
    ) -> Result<MultiGuard, LockError> {
        multi::acquire_all(self, keys, options).await
    }

    /// How many callers in this process are waiting for `key` (including the one
    /// currently contending for it). Useful as a queue-depth gauge.
    fn local_waiters(&self, key: &LockKey) -> usize;

    /// Short name of the implementation (`redis`, `local`, …), for logs and metrics.
    fn backend_name(&self) -> &'static str;
}
