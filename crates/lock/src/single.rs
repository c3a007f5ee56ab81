//! `RedisLock`: the pessimistic lock on one Redis node.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::acquire;
use crate::backend::{Attempt, Backend, ReleaseWatch};
use crate::backoff;
use crate::error::LockError;
use crate::guard::LockGuard;
use crate::guarded::{Fused, FusedInvocation};
use crate::key::LockKey;
use crate::lock::DistributedLock;
use crate::options::AcquireOptions;
use crate::queue::KeyedQueue;
use crate::scripts;
use crate::token::{FencingToken, LockToken, WaiterId};
use crate::wakeups::Wakeups;

/// Connection settings of a [`RedisLock`].
#[derive(Clone, Debug)]
pub struct RedisLockConfig {
    /// Longest wait for any reply. A reply that does not come in time makes the
    /// operation fail with an unknown outcome (see [`LockError::is_unknown_outcome`]).
    pub response_timeout: Duration,
    /// Longest wait to (re)connect.
    pub connection_timeout: Duration,
    /// Subscribe to release notifications (recommended). Without them waiters
    /// poll with the jittered backoff of [`AcquireOptions::with_backoff`].
    pub notifications: bool,
    /// How long a waiting process keeps its place in a key's cross-process
    /// line without trying again. Every attempt renews it; a process that
    /// dies (or stops trying) is dropped from the line once it runs out, so
    /// this is also the most a dead waiter can delay the others. Must exceed
    /// the longest pause between attempts: the backoff cap of
    /// [`AcquireOptions::with_backoff`] plus a reply.
    pub line_lease: Duration,
}

impl Default for RedisLockConfig {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_millis(1_000),
            connection_timeout: Duration::from_millis(2_000),
            notifications: true,
            line_lease: Duration::from_millis(2_000),
        }
    }
}

/// A lock on a single Redis node.
///
/// Cheap to clone (clones share connections and the same-process FIFO queues).
/// Two `RedisLock`s built separately behave as two independent processes would:
/// they exclude each other through Redis alone.
#[derive(Clone)]
pub struct RedisLock {
    backend: Arc<RedisBackend>,
    queue: Arc<KeyedQueue>,
}

struct RedisBackend {
    connection: ConnectionManager,
    wakeups: Option<Arc<Wakeups>>,
    detached: mpsc::UnboundedSender<Detached>,
    line_lease: Duration,
}

/// Work for the background task: things that must happen although nobody
/// waits for them (a guard dropped, a waiter gone).
enum Detached {
    /// An owner-checked release, retried until `horizon`.
    Release {
        key: LockKey,
        token: LockToken,
        horizon: Instant,
    },
    /// A waiter leaving a key's line.
    Leave { key: LockKey, waiter: WaiterId },
}

impl RedisLock {
    /// Connects (failing fast if Redis cannot be reached) and starts the
    /// background releaser. Must be called within a tokio runtime.
    pub async fn connect(
        client: redis::Client,
        config: RedisLockConfig,
    ) -> Result<Self, LockError> {
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(1);
        let connection = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(LockError::Connect)?;
        let wakeups = if config.notifications {
            Some(Wakeups::connect(&client, config.response_timeout).await)
        } else {
            None
        };
        let (detached, queue) = mpsc::unbounded_channel();
        let backend = Arc::new(RedisBackend {
            connection,
            wakeups,
            detached,
            line_lease: config.line_lease,
        });
        tokio::spawn(run_releaser(
            backend.connection.clone(),
            config.response_timeout,
            queue,
        ));
        Ok(Self {
            backend,
            queue: Arc::default(),
        })
    }

    /// Opens a client for `url` and connects with the default configuration.
    pub async fn from_url(url: &str) -> Result<Self, LockError> {
        let client = redis::Client::open(url).map_err(LockError::Connect)?;
        Self::connect(client, RedisLockConfig::default()).await
    }

    /// The command connection (multiplexed, reconnecting), e.g. for guarded writes
    /// when the protected data lives on the lock's node.
    pub fn connection(&self) -> ConnectionManager {
        self.backend.connection.clone()
    }

    /// Runs a fused step ([`crate::GuardedScript::prepare_fused`]): if `key` is
    /// free, Redis takes it, runs the body and releases it in one atomic script
    /// (one round trip, a fresh fencing token); otherwise nothing runs and the
    /// answer is [`Fused::Busy`].
    ///
    /// Same-process FIFO is kept: the step is only sent when nobody in this
    /// process is queued for or contending for `key`; otherwise it is `Busy`
    /// at once, and the caller should [`DistributedLock::acquire`] (joining the
    /// line). A lost reply is a [`LockError::Backend`] whose
    /// [`LockError::is_unknown_outcome`] is true: the body may or may not have
    /// run. Nothing is left held either way.
    pub async fn run_fused<T: redis::FromRedisValue>(
        &self,
        invocation: FusedInvocation<'_>,
    ) -> Result<Fused<T>, LockError> {
        let Some(_head) = self.queue.try_enter(invocation.lock_key()) else {
            crate::metrics::fused("redis", "busy");
            return Ok(Fused::Busy);
        };
        let result = invocation
            .invoke(&mut self.backend.connection.clone())
            .await;
        if let Ok(outcome) = &result {
            let label = match outcome {
                Fused::Ran(_) => "ran",
                Fused::Busy => "busy",
            };
            crate::metrics::fused("redis", label);
        }
        result
    }

    fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }
}

#[async_trait]
impl DistributedLock for RedisLock {
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
        "redis"
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn attempt(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
        waiter: Option<&WaiterId>,
    ) -> Result<Attempt, LockError> {
        let (granted, value): (i64, i64) = scripts::ACQUIRE
            .key(key.as_str())
            .key(key.fence_key())
            .key(key.line_key())
            .key(key.line_leases_key())
            .arg(token.as_str())
            .arg(millis(ttl))
            .arg(waiter.map_or("", WaiterId::as_str))
            .arg(millis(self.line_lease))
            .arg(key.release_channel())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|error| LockError::backend("acquire", key, error))?;
        Ok(match granted {
            1 => Attempt::Acquired(FencingToken::new(value.unsigned_abs())),
            // PTTL is -2 if the key vanished in between, -1 if it has no TTL
            // (someone else's key without expiry): no usable bound then.
            _ => Attempt::Held {
                pttl: u64::try_from(value)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis),
            },
        })
    }

    async fn release(&self, key: &LockKey, token: &LockToken) -> Result<bool, LockError> {
        let released = release(&self.connection, key, token).await?;
        if released && let Some(wakeups) = &self.wakeups {
            wakeups.notify_local(&key.release_channel());
        }
        Ok(released)
    }

    async fn extend(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, LockError> {
        let extended: i64 = scripts::EXTEND
            .key(key.as_str())
            .arg(token.as_str())
            .arg(millis(ttl))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|error| LockError::backend("extend", key, error))?;
        Ok(extended == 1)
    }

    fn release_detached(&self, key: LockKey, token: LockToken, horizon: Instant) {
        // Sending on an unbounded channel never blocks and needs no runtime, so
        // this is safe from `Drop`. If the releaser is gone, the TTL frees the key.
        let _ = self.detached.send(Detached::Release {
            key,
            token,
            horizon,
        });
    }

    async fn watch_releases(&self, key: &LockKey, waiter: &WaiterId) -> ReleaseWatch {
        match &self.wakeups {
            Some(wakeups) => wakeups.watch(&key.release_channel(), Some(waiter)).await,
            None => ReleaseWatch::none(),
        }
    }

    fn leave_line_detached(&self, key: LockKey, waiter: WaiterId) {
        // As above: never blocks. If the task is gone, the waiter's line lease
        // runs out and the line drops it.
        let _ = self.detached.send(Detached::Leave { key, waiter });
    }
}

/// Owner-checked release that hands the turn on (see [`scripts::RELEASE_IN_TURN`]).
async fn release(
    connection: &ConnectionManager,
    key: &LockKey,
    token: &LockToken,
) -> Result<bool, LockError> {
    let released: i64 = scripts::RELEASE_IN_TURN
        .key(key.as_str())
        .key(key.line_key())
        .key(key.line_leases_key())
        .arg(token.as_str())
        .arg(key.release_channel())
        .invoke_async(&mut connection.clone())
        .await
        .map_err(|error| LockError::backend("release", key, error))?;
    Ok(released == 1)
}

/// Runs detached work, each item in its own task so one unreachable key does
/// not delay the others. It owns its connection handle, so releases queued by
/// guards that outlive their `RedisLock` still run; it ends once every sender
/// (the lock and all its guards) is gone and the queue is drained.
async fn run_releaser(
    connection: ConnectionManager,
    response_timeout: Duration,
    mut queue: mpsc::UnboundedReceiver<Detached>,
) {
    while let Some(work) = queue.recv().await {
        match work {
            Detached::Release {
                key,
                token,
                horizon,
            } => {
                tokio::spawn(release_until_horizon(
                    connection.clone(),
                    response_timeout,
                    key,
                    token,
                    horizon,
                ));
            }
            Detached::Leave { key, waiter } => {
                tokio::spawn(leave_line(connection.clone(), key, waiter));
            }
        }
    }
}

/// Takes a waiter out of a key's line, and tells the next one if the lock is
/// free (see [`scripts::LEAVE_LINE`]). One try: if it fails, the waiter's line
/// lease runs out instead.
async fn leave_line(connection: ConnectionManager, key: LockKey, waiter: WaiterId) {
    let left: Result<i64, _> = scripts::LEAVE_LINE
        .key(key.as_str())
        .key(key.line_key())
        .key(key.line_leases_key())
        .arg(waiter.as_str())
        .arg(key.release_channel())
        .invoke_async(&mut connection.clone())
        .await;
    if let Err(error) = left {
        tracing::debug!(lock.key = %key, %error, "leaving the line failed; the waiter's lease will run out");
    }
}

/// Retries an owner-checked release until it gets an answer or the lease has
/// surely expired (after which there is nothing left to release).
async fn release_until_horizon(
    connection: ConnectionManager,
    response_timeout: Duration,
    key: LockKey,
    token: LockToken,
    horizon: Instant,
) {
    loop {
        match release(&connection, &key, &token).await {
            Ok(true) => {
                crate::metrics::release("redis", "released");
                return;
            }
            Ok(false) => return,
            Err(error) => {
                let pause = backoff::jittered(Duration::from_millis(10), response_timeout, None);
                if Instant::now() + pause >= horizon {
                    tracing::warn!(lock.key = %key, %error, "background release gave up; the lock expires at its TTL");
                    crate::metrics::release("redis", "error");
                    return;
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
