//! `with_lock`: run a body under a lock whose lease is renewed while it runs,
//! and which is aborted if the lease is lost.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::LockError;
use crate::guard::LockGuard;
use crate::key::LockKey;
use crate::lock::DistributedLock;
use crate::options::AcquireOptions;

/// Acquires `key`, runs `body`, releases.
///
/// While the body runs, the lease is renewed every TTL/3. If a renewal finds
/// the lock gone, or renewals keep failing until the lease deadline passes, the
/// body's future is dropped at its next await point and `Err(LeaseLost)` is
/// returned: "abort when the lease is lost" is enforced, not advisory. (Code
/// between two awaits still runs to the next await; writes that must never
/// happen after a loss belong in a [`crate::GuardedScript`], which Redis itself
/// refuses once the lease is gone.)
///
/// ```no_run
/// # async fn example(lock: &dyn inventory_lock::DistributedLock) -> Result<(), inventory_lock::LockError> {
/// use inventory_lock::{with_lock, AcquireOptions, LockKey};
///
/// let key = LockKey::new("{report:daily}:lock")?;
/// let rows = with_lock(lock, &key, &AcquireOptions::default(), async |guard| {
///     // long work; `guard.fencing_token()` can be passed to other systems
///     42
/// })
/// .await?;
/// # let _ = rows;
/// # Ok(())
/// # }
/// ```
pub async fn with_lock<L, T>(
    lock: &L,
    key: &LockKey,
    options: &AcquireOptions,
    body: impl AsyncFnOnce(&LockGuard) -> T,
) -> Result<T, LockError>
where
    L: DistributedLock + ?Sized,
{
    let guard = lock.acquire(key, options).await?;
    let outcome = tokio::select! {
        value = body(&guard) => Ok(value),
        lost = keep_alive(&guard, options.ttl()) => Err(lost),
    };
    match outcome {
        Ok(value) => {
            if let Err(error) = guard.release().await {
                // The body finished while the lease was ours as far as renewals
                // showed; a late release failure does not undo its result.
                tracing::warn!(lock.key = %key, %error, "release after with_lock body failed");
            }
            Ok(value)
        }
        Err(lost) => {
            drop(guard);
            Err(lost)
        }
    }
}

/// Renews `guard` every `ttl / 3` until the lease is lost; returns that error.
/// Transient failures are retried quickly while the lease still has time left.
pub(crate) async fn keep_alive(guard: &LockGuard, ttl: Duration) -> LockError {
    let period = ttl / 3;
    let mut next = Instant::now() + period;
    loop {
        tokio::select! {
            () = guard.lost() => return guard.lease_lost(),
            () = tokio::time::sleep_until(next) => {}
        }
        match guard.extend(ttl).await {
            Ok(()) => next = Instant::now() + period,
            Err(error) if error.is_lease_lost() => return error,
            Err(error) => {
                tracing::debug!(lock.key = %guard.key(), %error, "lease renewal failed; retrying");
                let retry = (period / 4).min(guard.remaining() / 2);
                next = Instant::now() + retry.max(Duration::from_millis(1));
            }
        }
    }
}
