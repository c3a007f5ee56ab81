//! Group commit: one line per key, whose holder commits everything queued
//! behind it under a single lock hold and hands each caller its own result.
//!
//! A hot key serialises on round trips, not on work: every caller pays its own
//! acquire → write → release → hand-off, one after another. Here callers of one
//! key join a line in this process (their place is fixed the moment they call
//! [`GroupCommit::submit`], before any I/O), and a per-key worker takes the
//! line in batches of up to `max_batch`, in arrival order: it obtains the lock
//! once, asks the [`Committer`] to apply the whole batch in one guarded call,
//! and answers every caller. Nothing waits on purpose to fill a batch: a batch
//! is whatever queued while the previous one was being committed.
//!
//! Each caller's wait is bounded by the wait timeout from its own arrival: a
//! batch waits for the lock only until its oldest member's deadline, so a
//! caller queued behind a batch that timed out is not made to wait a second
//! full timeout.
//!
//! The pessimistic-lock guarantees are exactly those of one lock hold: the
//! committer runs only while the lock is held (or, with
//! [`Committer::commit_if_free`], inside one atomic step that finds the lock
//! free), so its guarded write is refused if the lease was lost. What changes is
//! only how many callers share one hold. With `max_batch = 1` every caller gets
//! a hold of its own, as without group commit.
//!
//! The worker is a spawned task, not one of the callers: a caller whose future
//! is dropped (client gone) never strands the callers behind it. A dropped
//! caller still in the line is skipped; one already in a batch is committed and
//! its result discarded (the committer's own records, e.g. idempotency keys,
//! make it retrievable).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::LockError;
use crate::guard::LockGuard;
use crate::key::LockKey;
use crate::lock::DistributedLock;
use crate::metrics;
use crate::options::AcquireOptions;

/// What a [`GroupCommit`] does with a batch. Implemented by the embedding
/// service: the lock crate knows nothing of what an item means.
#[async_trait]
pub trait Committer: Send + Sync + 'static {
    /// One caller's request.
    type Item: Send + Sync + 'static;
    /// One caller's answer (typically a `Result` of the service's own types).
    type Output: Send + 'static;

    /// Applies `items`, in order, while `guard` holds the key's lock (typically
    /// one [`crate::GuardedScript`] call for the whole batch). Returns one output
    /// per item, in the same order; each must be exactly what that item would
    /// have got alone at its place in the order. An output missing at the end of
    /// the returned vector leaves its caller with [`Abandoned`].
    async fn commit(&self, guard: &LockGuard, items: &[Self::Item]) -> Vec<Self::Output>;

    /// Applies `items` in one atomic step that finds the lock free (e.g.
    /// [`crate::RedisLock::run_fused`]), or returns `None`, having applied
    /// nothing, when the lock is not free: the batch then waits for the lock and
    /// goes through [`Committer::commit`]. The default always returns `None`.
    async fn commit_if_free(
        &self,
        key: &LockKey,
        items: &[Self::Item],
    ) -> Option<Vec<Self::Output>> {
        let _ = (key, items);
        None
    }

    /// The answers for a batch that could not get the lock (timed out waiting,
    /// or the backend failed): nothing was applied by the lock holder. Also the
    /// place to undo whatever [`Committer::commit_if_free`] prepared for these
    /// items. One output per item, in order.
    async fn lock_failed(&self, error: &LockError, items: &[Self::Item]) -> Vec<Self::Output>;
}

/// The caller's batch ended without an answer for it: the committer panicked or
/// returned too few outputs. Whether its item was applied is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the group commit ended without an answer for this request")]
pub struct Abandoned;

/// Lines of callers per key, committed in batches under one lock hold each.
/// Cheap to clone (clones share the lines).
pub struct GroupCommit<C: Committer> {
    inner: Arc<Inner<C>>,
}

impl<C: Committer> Clone for GroupCommit<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C: Committer> {
    /// Where workers run: the runtime `new` was called on, not the caller's.
    runtime: tokio::runtime::Handle,
    lock: Arc<dyn DistributedLock>,
    options: AcquireOptions,
    max_batch: NonZeroUsize,
    committer: C,
    /// A key has an entry exactly while its worker runs.
    lines: Mutex<HashMap<LockKey, VecDeque<Waiter<C>>>>,
}

struct Waiter<C: Committer> {
    item: C::Item,
    reply: oneshot::Sender<C::Output>,
    /// When this caller's wait for the lock ends: its arrival + the wait timeout.
    deadline: Instant,
}

impl<C: Committer> GroupCommit<C> {
    /// Lines over `lock`: each batch takes the key with `options` and holds at
    /// most `max_batch` items.
    ///
    /// Workers run on the tokio runtime this is called on, whichever runtime
    /// later callers submit from. (In a server with one runtime per worker
    /// thread, as actix-web has, this keeps the commit work of a hot key off
    /// the thread of whichever request happened to arrive first, so that thread
    /// does not fall behind reading its own requests — which would skew the
    /// arrival order of the line.)
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(
        lock: Arc<dyn DistributedLock>,
        options: AcquireOptions,
        max_batch: NonZeroUsize,
        committer: C,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime: tokio::runtime::Handle::current(),
                lock,
                options,
                max_batch,
                committer,
                lines: Mutex::default(),
            }),
        }
    }

    /// The committer, e.g. for operations that do not go through a line.
    pub fn committer(&self) -> &C {
        &self.inner.committer
    }

    /// Queues `item` at the end of `key`'s line and waits for its output.
    ///
    /// The place in the line is taken before this function first awaits, so
    /// callers are committed in the order they called `submit`. Dropping the
    /// future gives up the place if the item's batch has not started yet.
    pub async fn submit(&self, key: &LockKey, item: C::Item) -> Result<C::Output, Abandoned> {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + self.inner.options.wait_timeout();
        let start_worker = {
            let mut lines = self.inner.lines();
            let line = lines.entry(key.clone());
            let start = matches!(line, std::collections::hash_map::Entry::Vacant(_));
            line.or_default().push_back(Waiter {
                item,
                reply,
                deadline,
            });
            start
        };
        if start_worker {
            let worker = Worker::new(Arc::clone(&self.inner), key.clone());
            self.inner.runtime.spawn(worker.run());
        }
        answer.await.map_err(|_| Abandoned)
    }

    /// Callers waiting in `key`'s line (not counting a batch being committed).
    pub fn waiting(&self, key: &LockKey) -> usize {
        self.inner.lines().get(key).map_or(0, VecDeque::len)
    }
}

impl<C: Committer> Inner<C> {
    fn lines(&self) -> MutexGuard<'_, HashMap<LockKey, VecDeque<Waiter<C>>>> {
        // Queue pushes and pops only: a panic cannot leave a line half-updated.
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Commits one key's line, batch after batch, until it is empty; then removes
/// the line (under the same mutex that `submit` pushes under, so a caller
/// arriving at that moment either joins this worker's line or starts a new one).
struct Worker<C: Committer> {
    inner: Arc<Inner<C>>,
    key: LockKey,
}

impl<C: Committer> Worker<C> {
    fn new(inner: Arc<Inner<C>>, key: LockKey) -> Self {
        Self { inner, key }
    }

    async fn run(self) {
        loop {
            let mut batch = Batch::default();
            self.take_into(&mut batch, true);
            if batch.items.is_empty() {
                return;
            }
            self.commit(batch).await;
        }
    }

    /// Moves waiters from the front of the line into `batch` until it holds
    /// `max_batch` items, skipping callers that gave up. With
    /// `retire_when_empty`, a line found empty is removed, ending the worker.
    fn take_into(&self, batch: &mut Batch<C>, retire_when_empty: bool) {
        let mut lines = self.inner.lines();
        let Some(line) = lines.get_mut(&self.key) else {
            return;
        };
        while batch.items.len() < self.inner.max_batch.get() {
            match line.pop_front() {
                Some(waiter) if waiter.reply.is_closed() => {}
                Some(waiter) => {
                    batch.deadline = Some(batch.deadline.unwrap_or(waiter.deadline));
                    batch.items.push(waiter.item);
                    batch.replies.push(waiter.reply);
                }
                None => break,
            }
        }
        if batch.items.is_empty() && retire_when_empty {
            lines.remove(&self.key);
        }
    }

    async fn commit(&self, mut batch: Batch<C>) {
        let _retire = RetireOnPanic(self);
        let inner = &self.inner;
        let outputs = match inner
            .committer
            .commit_if_free(&self.key, &batch.items)
            .await
        {
            Some(outputs) => outputs,
            None => match inner
                .lock
                .acquire(&self.key, &batch.options(&inner.options))
                .await
            {
                Ok(guard) => {
                    // Whoever queued while we waited for the lock comes along.
                    self.take_into(&mut batch, false);
                    let outputs = inner.committer.commit(&guard, &batch.items).await;
                    if let Err(error) = guard.release().await {
                        tracing::debug!(lock.key = %self.key, %error, "release after a group commit");
                    }
                    outputs
                }
                Err(error) => inner.committer.lock_failed(&error, &batch.items).await,
            },
        };
        metrics::batch(inner.lock.backend_name(), batch.items.len());
        for (reply, output) in batch.replies.into_iter().zip(outputs) {
            // A caller that gave up meanwhile: its output is dropped.
            let _ = reply.send(output);
        }
    }
}

/// Removes the line if the committer panics. Declared inside
/// [`Worker::commit`] after the batch, so it runs before the batch's reply
/// channels are dropped: a caller answered `Abandoned` that submits again at
/// once must find no line (and start a new worker), not join the dying one.
/// Dropping the remaining waiters answers them `Abandoned` too.
struct RetireOnPanic<'a, C: Committer>(&'a Worker<C>);

impl<C: Committer> Drop for RetireOnPanic<'_, C> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.inner.lines().remove(&self.0.key);
        }
    }
}

/// Items and their callers' reply channels, index for index.
struct Batch<C: Committer> {
    items: Vec<C::Item>,
    replies: Vec<oneshot::Sender<C::Output>>,
    /// The first item's deadline: the line is FIFO, so the earliest.
    deadline: Option<Instant>,
}

impl<C: Committer> Batch<C> {
    /// The lock options for this batch: the wait ends at the oldest member's
    /// deadline, so no caller waits longer than its wait timeout in all — time
    /// spent in the line behind a batch that failed to get the lock included.
    /// (Without this, a caller that queued behind a batch timing out would
    /// wait that batch's timeout and then a whole one of its own.) A batch whose
    /// oldest member's time is up still makes one attempt.
    fn options(&self, options: &AcquireOptions) -> AcquireOptions {
        let left = self.deadline.map_or(options.wait_timeout(), |deadline| {
            deadline.saturating_duration_since(Instant::now())
        });
        options.clone().with_wait_timeout(left)
    }
}

impl<C: Committer> Default for Batch<C> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            replies: Vec::new(),
            deadline: None,
        }
    }
}
