//! `LocalLock`: the same lock semantics inside one process, without Redis.
//!
//! For development mode and for unit tests of code that takes a
//! `dyn DistributedLock`: leases expire (on tokio's clock, so tests can use
//! `tokio::time::pause`), fencing tokens increase per key, same-process waiters
//! are served FIFO, and [`LocalLock::guarded`] is the in-process counterpart of
//! a [`crate::GuardedScript`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::acquire;
use crate::backend::{Attempt, Backend, ReleaseWatch};
use crate::error::LockError;
use crate::guard::LockGuard;
use crate::key::LockKey;
use crate::lock::DistributedLock;
use crate::options::AcquireOptions;
use crate::queue::KeyedQueue;
use crate::token::{FencingToken, LockToken, WaiterId};

/// An in-process lock. Clones share the same lock table.
#[derive(Clone, Default)]
pub struct LocalLock {
    backend: Arc<LocalBackend>,
    queue: Arc<KeyedQueue>,
}

#[derive(Default)]
struct LocalBackend {
    table: Mutex<HashMap<LockKey, Slot>>,
}

/// One key's state. Slots are never removed: the fencing counter must survive
/// the lock being free, exactly like the Redis fence key.
struct Slot {
    holder: Option<Holder>,
    fence: u64,
    releases: watch::Sender<u64>,
}

struct Holder {
    token: LockToken,
    expires_at: Instant,
}

impl Slot {
    fn new() -> Self {
        Self {
            holder: None,
            fence: 0,
            releases: watch::channel(0).0,
        }
    }

    /// The current holder, if its lease has not expired.
    fn live_holder(&self, now: Instant) -> Option<&Holder> {
        self.holder
            .as_ref()
            .filter(|holder| holder.expires_at > now)
    }

    fn is_held_by(&self, token: &LockToken, now: Instant) -> bool {
        self.live_holder(now)
            .is_some_and(|holder| &holder.token == token)
    }
}

impl LocalLock {
    /// An empty lock table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `write` only if `guard` still holds its lease, atomically with that
    /// check: no other holder can take the key between the check and the write.
    /// The in-process counterpart of [`crate::GuardedScript`]; keep `write`
    /// short and non-blocking (it runs under the lock table's mutex).
    pub fn guarded<T>(&self, guard: &LockGuard, write: impl FnOnce() -> T) -> Result<T, LockError> {
        let table = self.backend.table();
        let current = table.get(guard.key()).is_some_and(|slot| {
            slot.is_held_by(guard.token(), Instant::now())
                && slot.fence == guard.fencing_token().get()
        });
        if !current {
            drop(table);
            guard.mark_lost();
            return Err(guard.lease_lost());
        }
        Ok(write())
    }

    fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }
}

impl LocalBackend {
    fn table(&self) -> MutexGuard<'_, HashMap<LockKey, Slot>> {
        // Every mutation below leaves a slot consistent before it can panic.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release_now(&self, key: &LockKey, token: &LockToken) -> bool {
        let mut table = self.table();
        let Some(slot) = table.get_mut(key) else {
            return false;
        };
        if !slot.is_held_by(token, Instant::now()) {
            return false;
        }
        slot.holder = None;
        slot.releases.send_modify(|n| *n = n.wrapping_add(1));
        true
    }
}

#[async_trait]
impl DistributedLock for LocalLock {
    async fn acquire(
        &self,
        key: &LockKey,
        options: &AcquireOptions,
    ) -> Result<LockGuard, LockError> {
        acquire::acquire(self.backend(), &self.queue, key, options).await
    }

    async fn try_acquire(
        &self,
        key: &LockKey,
        options: &AcquireOptions,
    ) -> Result<Option<LockGuard>, LockError> {
        acquire::try_acquire(self.backend(), &self.queue, key, options).await
    }

    fn local_waiters(&self, key: &LockKey) -> usize {
        self.queue.waiting(key)
    }

    fn backend_name(&self) -> &'static str {
        "local"
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn attempt(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
        _waiter: Option<&WaiterId>,
    ) -> Result<Attempt, LockError> {
        // One process: the same-process FIFO queue is the whole line.
        let now = Instant::now();
        let mut table = self.table();
        let slot = table.entry(key.clone()).or_insert_with(Slot::new);
        if let Some(holder) = slot.live_holder(now) {
            return Ok(Attempt::Held {
                pttl: Some(holder.expires_at - now),
            });
        }
        slot.fence += 1;
        slot.holder = Some(Holder {
            token: token.clone(),
            expires_at: now + ttl,
        });
        Ok(Attempt::Acquired(FencingToken::new(slot.fence)))
    }

    async fn release(&self, key: &LockKey, token: &LockToken) -> Result<bool, LockError> {
        Ok(self.release_now(key, token))
    }

    async fn extend(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, LockError> {
        let now = Instant::now();
        let mut table = self.table();
        let Some(slot) = table.get_mut(key) else {
            return Ok(false);
        };
        match slot.holder.as_mut() {
            Some(holder) if &holder.token == token && holder.expires_at > now => {
                holder.expires_at = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn release_detached(&self, key: LockKey, token: LockToken, _horizon: Instant) {
        // A mutex-protected map update: quick enough to do right here, even in Drop.
        self.release_now(&key, &token);
    }

    async fn watch_releases(&self, key: &LockKey, _waiter: &WaiterId) -> ReleaseWatch {
        let mut table = self.table();
        let slot = table.entry(key.clone()).or_insert_with(Slot::new);
        ReleaseWatch::new(slot.releases.subscribe(), None)
    }
}
