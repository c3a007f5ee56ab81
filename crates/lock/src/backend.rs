//! What a lock backend (one Redis node, the in-process table, …) must provide
//! to the shared acquire loop and to guards. Crate-internal: users see
//! [`crate::DistributedLock`] and [`crate::LockGuard`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::LockError;
use crate::key::LockKey;
use crate::token::{FencingToken, LockToken};

/// The result of one attempt to take a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Taken; the fencing token of this acquisition.
    Acquired(FencingToken),
    /// Held by someone else, who has this much lease left (if known).
    Held { pttl: Option<Duration> },
}

#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// Short name for metrics and spans (`redis`, `local`, …).
    fn name(&self) -> &'static str;

    /// One atomic try: take the key for `token` with a `ttl` lease and mint a fencing token.
    async fn attempt(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<Attempt, LockError>;

    /// Owner-checked delete. `Ok(false)`: the key was not ours (any more).
    async fn release(&self, key: &LockKey, token: &LockToken) -> Result<bool, LockError>;

    /// Owner-checked lease renewal; never re-creates an expired key. `Ok(false)`: not ours.
    async fn extend(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, LockError>;

    /// Hands an owner-checked release to a background task and returns at once.
    /// `horizon` is when the lease has surely expired: retrying past it is pointless.
    fn release_detached(&self, key: LockKey, token: LockToken, horizon: Instant);

    /// Starts listening for releases of `key`. Must be listening when it returns,
    /// so a release after any later attempt is observed.
    async fn watch_releases(&self, key: &LockKey) -> ReleaseWatch;
}

/// A subscription to the releases of one key: a counter that moves on every release.
pub(crate) struct ReleaseWatch {
    receiver: Option<watch::Receiver<u64>>,
    /// Keeps the backend's subscription alive while we wait (refcount guard).
    _subscription: Option<Box<dyn Send + Sync>>,
}

impl ReleaseWatch {
    pub(crate) fn new(
        receiver: watch::Receiver<u64>,
        subscription: Option<Box<dyn Send + Sync>>,
    ) -> Self {
        Self {
            receiver: Some(receiver),
            _subscription: subscription,
        }
    }

    /// A watch that never fires (no notifications available): waiters rely on backoff.
    pub(crate) fn none() -> Self {
        Self {
            receiver: None,
            _subscription: None,
        }
    }

    /// Marks every release seen so far as handled; call just before an attempt.
    pub(crate) fn mark_seen(&mut self) {
        if let Some(receiver) = &mut self.receiver {
            receiver.borrow_and_update();
        }
    }

    /// Resolves at the first release after the last [`ReleaseWatch::mark_seen`].
    pub(crate) async fn released(&mut self) {
        match &mut self.receiver {
            Some(receiver) => {
                if receiver.changed().await.is_err() {
                    // Publisher gone: behave like "no notifications".
                    self.receiver = None;
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// An attempt in flight. If the future driving it is dropped after the request
/// was sent, the lock may have been taken with our token without anyone knowing:
/// dropping an armed `PendingAttempt` schedules an owner-checked release of that
/// token, so a cancelled `acquire` never leaves a lock held.
pub(crate) struct PendingAttempt {
    backend: Arc<dyn Backend>,
    key: LockKey,
    token: LockToken,
    ttl: Duration,
    armed: bool,
}

impl PendingAttempt {
    pub(crate) fn new(backend: Arc<dyn Backend>, key: &LockKey, ttl: Duration) -> Self {
        Self {
            backend,
            key: key.clone(),
            token: LockToken::random(),
            ttl,
            armed: true,
        }
    }

    pub(crate) fn token(&self) -> &LockToken {
        &self.token
    }

    /// The outcome is known and owned by someone: stop the cleanup.
    pub(crate) fn disarm(mut self) -> LockToken {
        self.armed = false;
        self.token.clone()
    }
}

impl Drop for PendingAttempt {
    fn drop(&mut self) {
        if self.armed {
            let horizon = Instant::now() + self.ttl;
            self.backend
                .release_detached(self.key.clone(), self.token.clone(), horizon);
        }
    }
}
