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
use crate::token::{FencingToken, LockToken, WaiterId};

/// The result of one attempt to take a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Taken; the fencing token of this acquisition.
    Acquired(FencingToken),
    /// Held by someone else, who has this much lease left (if known).
    Held { pttl: Option<Duration> },
    /// Redlock: too few nodes answered to decide. Nobody can take the key now;
    /// the caller retries like after `Held` until its wait deadline.
    NoQuorum {
        answered: usize,
        nodes: usize,
        quorum: usize,
    },
}

impl Attempt {
    /// The lease left to whoever holds the key, when known: bounds the fallback sleep.
    pub(crate) fn pttl(&self) -> Option<Duration> {
        match self {
            Self::Held { pttl } => *pttl,
            Self::Acquired(_) | Self::NoQuorum { .. } => None,
        }
    }
}

#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// Short name for metrics and spans (`redis`, `local`, …).
    fn name(&self) -> &'static str;

    /// One atomic try: take the key for `token` with a `ttl` lease and mint a
    /// fencing token. `waiter` names a waiting `acquire` (its place in a
    /// cross-process line, where the backend keeps one); `None` for a single
    /// try that must not queue.
    async fn attempt(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
        waiter: Option<&WaiterId>,
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
    /// so a release after any later attempt is observed. A backend with a
    /// cross-process line wakes `waiter` only when it is its turn.
    async fn watch_releases(&self, key: &LockKey, waiter: &WaiterId) -> ReleaseWatch;

    /// `waiter` stopped waiting (gave up, or its caller went away): take it
    /// out of the key's cross-process line in the background, if the backend
    /// keeps one. Must not block (it runs in `Drop`).
    fn leave_line_detached(&self, key: LockKey, waiter: WaiterId) {
        let _ = (key, waiter);
    }

    /// Whether the lock key lives on the node that keeps the fencing counter,
    /// so a guarded script there can check the holder's token on the lock key
    /// as well as the fence. `false` for Redlock: its lock lives on other
    /// nodes, and guarded scripts on the fence store check the fence alone.
    fn lock_on_fence_store(&self) -> bool {
        true
    }
}

/// A subscription to the releases of one key: counters that move on every
/// release (one per node the key's releases are announced on).
pub(crate) struct ReleaseWatch {
    receivers: Vec<watch::Receiver<u64>>,
    /// Keep the backends' subscriptions alive while we wait (refcount guards).
    _subscriptions: Vec<Box<dyn Send + Sync>>,
}

impl ReleaseWatch {
    pub(crate) fn new(
        receiver: watch::Receiver<u64>,
        subscription: Option<Box<dyn Send + Sync>>,
    ) -> Self {
        Self {
            receivers: vec![receiver],
            _subscriptions: subscription.into_iter().collect(),
        }
    }

    /// A watch that never fires (no notifications available): waiters rely on backoff.
    pub(crate) fn none() -> Self {
        Self {
            receivers: Vec::new(),
            _subscriptions: Vec::new(),
        }
    }

    /// Fires when any of `watches` fires (Redlock: a release announced by any node).
    pub(crate) fn any(watches: impl IntoIterator<Item = ReleaseWatch>) -> Self {
        let mut merged = Self::none();
        for watch in watches {
            merged.receivers.extend(watch.receivers);
            merged._subscriptions.extend(watch._subscriptions);
        }
        merged
    }

    /// Marks every release seen so far as handled; call just before an attempt.
    pub(crate) fn mark_seen(&mut self) {
        for receiver in &mut self.receivers {
            receiver.borrow_and_update();
        }
    }

    /// Resolves at the first release after the last [`ReleaseWatch::mark_seen`].
    pub(crate) async fn released(&mut self) {
        while !self.receivers.is_empty() {
            let (changed, index) = {
                let changes = self
                    .receivers
                    .iter_mut()
                    .map(|receiver| Box::pin(receiver.changed()));
                let (changed, index, _) = futures::future::select_all(changes).await;
                (changed.is_ok(), index)
            };
            if changed {
                return;
            }
            // Publisher gone: that source behaves like "no notifications".
            self.receivers.swap_remove(index);
        }
        std::future::pending::<()>().await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_merged_watch_fires_on_any_source_and_outlives_a_dead_one() {
        let (first, first_rx) = watch::channel(0u64);
        let (second, second_rx) = watch::channel(0u64);
        let mut merged = ReleaseWatch::any([
            ReleaseWatch::new(first_rx, None),
            ReleaseWatch::new(second_rx, None),
        ]);
        merged.mark_seen();
        second.send_modify(|n| *n += 1);
        merged.released().await;

        merged.mark_seen();
        drop(first);
        let quiet = tokio::time::timeout(Duration::from_secs(1), merged.released()).await;
        assert!(quiet.is_err(), "a source that went away is not a release");
        second.send_modify(|n| *n += 1);
        merged.released().await;
    }
}
