//! The lease a caller holds: its tokens, its deadline, and what happens when it ends.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::error::LockError;
use crate::key::LockKey;
use crate::metrics;
use crate::options::AcquireOptions;
use crate::token::{FencingToken, LockToken};

/// A held lock.
///
/// * [`LockGuard::deadline`] is when the lease must be assumed gone, on the
///   monotonic clock: TTL − clock-drift allowance, measured from *before* the
///   request that took (or last extended) the lock was sent.
/// * [`LockGuard::lost`] resolves when the lease is lost (deadline passed or a
///   renewal found the key gone); [`LockGuard::ensure_held`] checks before a commit.
/// * [`LockGuard::release`] releases and reports whether the lease was still ours.
///   Dropping the guard instead hands an owner-checked release to a background
///   task: `Drop` never blocks and never releases someone else's lock.
#[must_use = "dropping a guard releases the lock in the background right away"]
pub struct LockGuard {
    key: LockKey,
    token: LockToken,
    fence: FencingToken,
    options: AcquireOptions,
    backend: Arc<dyn Backend>,
    deadline: Mutex<Instant>,
    lost: CancellationToken,
    acquired_at: Instant,
    attempts: u32,
    released: bool,
}

impl LockGuard {
    pub(crate) fn new(
        key: LockKey,
        token: LockToken,
        fence: FencingToken,
        options: AcquireOptions,
        backend: Arc<dyn Backend>,
        sent_at: Instant,
        attempts: u32,
    ) -> Self {
        let deadline = sent_at + options.validity();
        Self {
            key,
            token,
            fence,
            options,
            backend,
            deadline: Mutex::new(deadline),
            lost: CancellationToken::new(),
            acquired_at: Instant::now(),
            attempts,
            released: false,
        }
    }

    /// The locked key.
    pub fn key(&self) -> &LockKey {
        &self.key
    }

    /// The random token stored under the key (the proof of ownership; do not log it).
    pub fn token(&self) -> &LockToken {
        &self.token
    }

    /// This acquisition's fencing token: larger than that of every earlier holder of the key.
    /// (With [`crate::Redlock`] it is minted on the fence store right after the quorum.)
    pub fn fencing_token(&self) -> FencingToken {
        self.fence
    }

    /// Whether a guarded script on the fence-keeping node can also check the
    /// token on the lock key (single node), or only the fence (Redlock).
    pub(crate) fn lock_on_fence_store(&self) -> bool {
        self.backend.lock_on_fence_store()
    }

    /// How many times the backend was asked before the lock was granted.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The options the lock was taken with.
    pub fn options(&self) -> &AcquireOptions {
        &self.options
    }

    /// When the lease must be assumed gone (monotonic clock).
    pub fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lease time left before [`LockGuard::deadline`].
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// Whether the lease is still ours as far as this process can tell.
    pub fn is_held(&self) -> bool {
        !self.lost.is_cancelled() && Instant::now() < self.deadline()
    }

    /// `Err(LeaseLost)` unless the lease is still ours. Call it before committing
    /// work done under the lock to a system that cannot check fencing tokens.
    pub fn ensure_held(&self) -> Result<(), LockError> {
        if self.is_held() {
            Ok(())
        } else {
            self.mark_lost();
            Err(self.lease_lost())
        }
    }

    /// Resolves when the lease is lost: its deadline passed without an extension,
    /// or a renewal found the key gone. Cancel-safe; never resolves while held.
    pub async fn lost(&self) {
        loop {
            let deadline = self.deadline();
            tokio::select! {
                () = self.lost.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => {
                    if self.deadline() <= Instant::now() {
                        self.mark_lost();
                        return;
                    }
                }
            }
        }
    }

    /// Renews the lease to `ttl` from now if, and only if, the key is still held by
    /// this token. A lease already known to be lost is never renewed, and an expired
    /// key is never re-created. On success the deadline moves forward.
    pub async fn extend(&self, ttl: Duration) -> Result<(), LockError> {
        let options = self.options.clone().with_ttl(ttl);
        options.validate()?;
        self.ensure_held()?;
        let sent_at = Instant::now();
        match self.backend.extend(&self.key, &self.token, ttl).await {
            Ok(true) => {
                let deadline = sent_at + options.validity();
                *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
                if deadline <= Instant::now() {
                    // Confirmed too late: the renewed lease may already be gone.
                    metrics::renewal(self.backend.name(), "late");
                    self.mark_lost();
                    return Err(self.lease_lost());
                }
                metrics::renewal(self.backend.name(), "ok");
                Ok(())
            }
            Ok(false) => {
                metrics::renewal(self.backend.name(), "lost");
                self.mark_lost();
                Err(self.lease_lost())
            }
            Err(error) => {
                metrics::renewal(self.backend.name(), "error");
                Err(error)
            }
        }
    }

    /// Releases the lock now. `Err(NotOwner)` means the lease had already expired
    /// (and the key may belong to someone else, whom this call did not disturb).
    pub async fn release(mut self) -> Result<(), LockError> {
        // `released` is set only once the reply is in: if this future is dropped
        // while the request is in flight (a cancelled caller, a script reload),
        // `Drop` still hands an owner-checked release to the background releaser.
        let result = self.backend.release(&self.key, &self.token).await;
        self.released = true;
        metrics::hold(self.backend.name(), self.acquired_at.elapsed());
        match &result {
            Ok(true) => metrics::release(self.backend.name(), "released"),
            Ok(false) => metrics::release(self.backend.name(), "not_owner"),
            Err(_) => metrics::release(self.backend.name(), "error"),
        }
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(LockError::NotOwner {
                key: self.key.clone(),
            }),
            Err(error) => {
                // The release may not have reached Redis: let the background
                // releaser retry it until the lease would have expired anyway.
                self.backend.release_detached(
                    self.key.clone(),
                    self.token.clone(),
                    Instant::now() + self.options.ttl(),
                );
                Err(error)
            }
        }
    }

    /// Marks the lease lost (idempotent) and wakes every [`LockGuard::lost`] waiter.
    pub(crate) fn mark_lost(&self) {
        if !self.lost.is_cancelled() {
            self.lost.cancel();
            metrics::lease_lost(self.backend.name());
            tracing::warn!(lock.key = %self.key, lock.fence = self.fence.get(), "lock lease lost");
        }
    }

    pub(crate) fn lease_lost(&self) -> LockError {
        LockError::LeaseLost {
            key: self.key.clone(),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            metrics::hold(self.backend.name(), self.acquired_at.elapsed());
            self.backend.release_detached(
                self.key.clone(),
                self.token.clone(),
                Instant::now() + self.options.ttl(),
            );
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .field("fence", &self.fence)
            .field("backend", &self.backend.name())
            .field("remaining", &self.remaining())
            .field("lost", &self.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::backend::{Attempt, ReleaseWatch};
    use crate::token::WaiterId;

    /// A backend whose release request never gets a reply, and which counts
    /// releases handed to the background.
    #[derive(Default)]
    struct Unanswered {
        detached: AtomicUsize,
    }

    #[async_trait]
    impl Backend for Unanswered {
        fn name(&self) -> &'static str {
            "unanswered"
        }
        async fn attempt(
            &self,
            _: &LockKey,
            _: &LockToken,
            _: Duration,
            _: Option<&WaiterId>,
        ) -> Result<Attempt, LockError> {
            unreachable!("the test builds its guard directly")
        }
        async fn release(&self, _: &LockKey, _: &LockToken) -> Result<bool, LockError> {
            std::future::pending().await
        }
        async fn extend(&self, _: &LockKey, _: &LockToken, _: Duration) -> Result<bool, LockError> {
            std::future::pending().await
        }
        fn release_detached(&self, _: LockKey, _: LockToken, _: Instant) {
            self.detached.fetch_add(1, Ordering::SeqCst);
        }
        async fn watch_releases(&self, _: &LockKey, _: &WaiterId) -> ReleaseWatch {
            ReleaseWatch::none()
        }
    }

    /// A `release()` abandoned while its request is in flight still releases:
    /// the guard hands the owner-checked release to the background.
    #[tokio::test]
    async fn a_release_cancelled_mid_flight_falls_back_to_the_background() {
        let backend = Arc::new(Unanswered::default());
        let guard = LockGuard::new(
            LockKey::new("k").unwrap(),
            LockToken::random(),
            FencingToken::new(1),
            AcquireOptions::default(),
            backend.clone(),
            Instant::now(),
            1,
        );
        let release = tokio::time::timeout(Duration::ZERO, guard.release()).await;
        assert!(release.is_err(), "the release cannot have completed");
        assert_eq!(backend.detached.load(Ordering::SeqCst), 1);
    }
}
