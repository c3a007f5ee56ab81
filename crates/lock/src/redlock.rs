//! `Redlock`: the lock over N independent Redis masters, with fencing tokens
//! minted by a separate fence store.
//!
//! One acquisition round (`Backend::attempt`):
//!
//! 1. `SET key token NX PX ttl` on every node at once, each bounded by the
//!    per-node timeout (`RedlockConfig::node_timeout`). A node's error or
//!    silence costs its vote, never the round.
//! 2. A quorum (N/2 + 1 distinct, eligible servers — see
//!    [`crate::node_health`]) said yes → `INCR` the key's fence counter on the
//!    fence store; that value is the guard's fencing token. The round ends as
//!    soon as it is won, or lost to contention, without waiting for slower
//!    nodes.
//! 3. Otherwise, or if the mint fails, the token is released (owner-checked,
//!    in the background) on every node that may hold it: those that said
//!    yes, failed, timed out or had not answered yet. (A node that refused
//!    cannot hold it.) A mint failure fails the acquisition: no guard is ever
//!    handed out without a fence.
//!
//! The shared loop ([`crate::acquire`]) then checks that the lease is still
//! valid — `TTL − elapsed − drift > 0`, `elapsed` counted from before step 1
//! and including the mint — queues same-process callers, sleeps until a
//! release is announced by *any* node (one subscription per node) or a
//! jittered backoff, and reports [`LockError::NoQuorum`] or
//! [`LockError::Timeout`] at the wait deadline.
//!
//! Extension counts only when a quorum renews within the validity; release
//! goes to every node.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::acquire;
use crate::backend::{Attempt, Backend, ReleaseWatch};
use crate::backoff;
use crate::error::{InvalidOptions, LockError};
use crate::guard::LockGuard;
use crate::key::LockKey;
use crate::lock::DistributedLock;
use crate::metrics;
use crate::node::{Failure, Node};
use crate::options::AcquireOptions;
use crate::queue::KeyedQueue;
use crate::quorum::{Answer, Tally, Verdict};
use crate::redlock_config::{self, RedlockConfig, RedlockNode};
use crate::redlock_status::{NodeStatus, RedlockStatus};
use crate::token::{FencingToken, LockToken, WaiterId};
use crate::wakeups::Wakeups;

/// A lock over N ≥ 3 independent Redis masters (Redlock), whose guards carry
/// fencing tokens minted by one further Redis node, the *fence store*.
///
/// It survives the loss of any minority of lock nodes. What it guarantees:
///
/// * **While the timing assumptions hold** (bounded clock drift on the lock
///   nodes, no wall-clock steps there, holders that act before
///   [`LockGuard::deadline`]) at most one holder at a time.
/// * **Whatever the timing**, for writes made with a [`crate::GuardedScript`]
///   on the fence store: a write under a guard is applied only if no later
///   acquisition of the key has minted a fencing token yet. Every acquisition
///   mints right after winning its quorum, before its guard exists, so once a
///   newer holder *holds* the lock, every older holder's writes are refused —
///   even before the newer holder writes anything. A late write from an
///   expired holder that nobody has replaced since is still applied: no other
///   guarded write can have come between.
///
/// The fence store is the node the protected data lives on (for lockstock:
/// `REDIS_URL`); it must not lose its counters (`appendfsync always`, or no
/// restarts without it). See `docs/LOCKING.md` for the full argument.
///
/// Cheap to clone (clones share connections and the same-process FIFO queues).
/// Two `Redlock`s built separately behave as two processes would.
#[derive(Clone)]
pub struct Redlock {
    backend: Arc<RedlockBackend>,
    queue: Arc<KeyedQueue>,
}

struct RedlockBackend {
    nodes: Vec<Arc<Node>>,
    /// One notification connection per node whose notifications work.
    wakeups: Vec<Arc<Wakeups>>,
    fence_store: ConnectionManager,
    config: RedlockConfig,
    detached: mpsc::UnboundedSender<DetachedRelease>,
}

/// A release for the background releaser: `token` off `key` on `nodes`.
struct DetachedRelease {
    key: LockKey,
    token: LockToken,
    horizon: Instant,
    nodes: Vec<usize>,
}

impl Redlock {
    /// Validates the configuration (at least three nodes, none listed twice),
    /// connects to the fence store (failing fast if it cannot be reached) and
    /// to every lock node, and starts the background releaser. Lock nodes that
    /// cannot be reached are not an error here — Redlock exists to work
    /// without some of them; [`Redlock::status`] reports them. Must be called
    /// within a tokio runtime.
    pub async fn connect(
        nodes: impl IntoIterator<Item = RedlockNode>,
        fence_store: redis::Client,
        config: RedlockConfig,
    ) -> Result<Self, LockError> {
        let nodes: Vec<RedlockNode> = nodes.into_iter().collect();
        config.validate()?;
        redlock_config::validate_nodes(&nodes)?;
        let fence_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.fence_store_timeout))
            .set_connection_timeout(Some(config.connect_timeout))
            .set_number_of_retries(1);
        let fence_store = fence_store
            .get_connection_manager_with_config(fence_config)
            .await
            .map_err(LockError::Connect)?;
        let nodes: Vec<Arc<Node>> = nodes
            .into_iter()
            .map(|node| Arc::new(Node::new(node, config.max_ttl, config.connect_timeout)))
            .collect();
        let connects = futures::future::join_all(nodes.iter().map(|node| node.reconnected()));
        let notifications = async {
            if !config.notifications {
                return Vec::new();
            }
            futures::future::join_all(
                nodes
                    .iter()
                    .map(|node| Wakeups::connect(node.client(), config.connect_timeout)),
            )
            .await
        };
        let (_, wakeups) = tokio::join!(connects, notifications);
        let (detached, queue) = mpsc::unbounded_channel();
        tokio::spawn(run_releaser(
            nodes.clone(),
            config.node_timeout_untimed(),
            queue,
        ));
        let lock = Self {
            backend: Arc::new(RedlockBackend {
                nodes,
                wakeups,
                fence_store,
                config,
                detached,
            }),
            queue: Arc::default(),
        };
        let status = lock.status().await;
        let reachable = status.nodes.iter().filter(|node| node.reachable).count();
        if status.has_quorum() {
            tracing::info!(
                redlock.nodes = status.nodes.len(),
                redlock.reachable = reachable,
                redlock.quorum = status.quorum,
                "redlock connected"
            );
        } else {
            tracing::warn!(
                redlock.nodes = status.nodes.len(),
                redlock.reachable = reachable,
                redlock.counting = status.counting,
                redlock.quorum = status.quorum,
                "redlock connected without a usable quorum; acquisitions fail until enough nodes count"
            );
        }
        Ok(lock)
    }

    /// Opens clients for the node URLs and the fence store URL and connects
    /// with the default configuration (no node declared fsync-always).
    pub async fn from_urls(
        node_urls: impl IntoIterator<Item = impl AsRef<str>>,
        fence_store_url: &str,
    ) -> Result<Self, LockError> {
        let nodes = node_urls
            .into_iter()
            .map(|url| RedlockNode::from_url(url.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let fence_store = redis::Client::open(fence_store_url).map_err(LockError::Connect)?;
        Self::connect(nodes, fence_store, RedlockConfig::default()).await
    }

    /// The fence store's connection (multiplexed, reconnecting). Run
    /// [`crate::GuardedScript`]s for Redlock guards on it: anywhere else the
    /// fence check refuses them.
    pub fn fence_store(&self) -> ConnectionManager {
        self.backend.fence_store.clone()
    }

    /// Votes an acquisition needs: N/2 + 1.
    pub fn quorum(&self) -> usize {
        crate::quorum::quorum(self.backend.nodes.len())
    }

    /// Lock nodes configured.
    pub fn node_count(&self) -> usize {
        self.backend.nodes.len()
    }

    /// Pings every lock node and the fence store (in parallel, each within
    /// the connect timeout) and reports which answer and which count toward a
    /// quorum. A node that is down is also reconnected by this call.
    pub async fn status(&self) -> RedlockStatus {
        let backend = &self.backend;
        let deadline = Instant::now() + backend.config.connect_timeout;
        let pings = futures::future::join_all(backend.nodes.iter().map(|node| node.ping(deadline)));
        let fence = async {
            let mut connection = backend.fence_store.clone();
            let pong: Result<Result<String, _>, _> =
                tokio::time::timeout_at(deadline, redis::cmd("PING").query_async(&mut connection))
                    .await;
            matches!(pong, Ok(Ok(_)))
        };
        let (pings, fence_store_reachable) = tokio::join!(pings, fence);
        let mut voters: Vec<Arc<str>> = Vec::new();
        let nodes = backend
            .nodes
            .iter()
            .zip(pings)
            .map(|(node, ping)| {
                let snapshot = node.snapshot();
                let (reachable, counts, error) = match ping {
                    Ok(reply) => {
                        let counts = reply.voter.is_some();
                        if let Some(voter) = reply.voter
                            && !voters.contains(&voter)
                        {
                            voters.push(voter);
                        }
                        (true, counts, None)
                    }
                    Err(failure) => (
                        false,
                        false,
                        Some(
                            snapshot
                                .last_error
                                .clone()
                                .unwrap_or_else(|| failure.to_string()),
                        ),
                    ),
                };
                NodeStatus {
                    address: snapshot.address,
                    reachable,
                    counts_toward_quorum: counts,
                    quarantine_left: snapshot.quarantine_left,
                    fsync_always: snapshot.durable,
                    run_id: snapshot.run_id,
                    error,
                }
            })
            .collect();
        RedlockStatus {
            nodes,
            quorum: self.quorum(),
            counting: voters.len(),
            fence_store_reachable,
        }
    }

    fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }
}

#[async_trait]
impl DistributedLock for Redlock {
    async fn acquire(
        &self,
        key: &LockKey,
        options: &AcquireOptions,
    ) -> Result<LockGuard, LockError> {
        self.backend.check_ttl(options.ttl())?;
        acquire::acquire(self.backend(), &self.queue, key, options).await
    }

    async fn try_acquire(
        &self,
        key: &LockKey,
        options: &AcquireOptions,
    ) -> Result<Option<LockGuard>, LockError> {
        self.backend.check_ttl(options.ttl())?;
        acquire::try_acquire(self.backend(), &self.queue, key, options).await
    }

    fn local_waiters(&self, key: &LockKey) -> usize {
        self.queue.waiting(key)
    }

    fn backend_name(&self) -> &'static str {
        "redlock"
    }
}

impl RedlockBackend {
    fn check_ttl(&self, ttl: Duration) -> Result<(), InvalidOptions> {
        if ttl > self.config.max_ttl {
            return Err(InvalidOptions::TtlAboveMax {
                ttl,
                max: self.config.max_ttl,
            });
        }
        Ok(())
    }

    /// The fencing token of a new acquisition: `INCR` of the key's fence
    /// counter on the fence store. The counter never expires (see
    /// [`crate::LockKey::fence_key`]).
    async fn mint(&self, key: &LockKey) -> Result<FencingToken, LockError> {
        let fence: u64 = redis::cmd("INCR")
            .arg(key.fence_key())
            .query_async(&mut self.fence_store.clone())
            .await
            .map_err(|error| LockError::backend("mint fencing token", key, error))?;
        Ok(FencingToken::new(fence))
    }

    /// Hands the release of `token` on `nodes` to the background releaser.
    fn release_later(&self, key: &LockKey, token: &LockToken, nodes: Vec<usize>, horizon: Instant) {
        if nodes.is_empty() {
            return;
        }
        // Unbounded send: never blocks, needs no runtime (safe in Drop). If
        // the releaser is gone, the TTL frees the keys.
        let _ = self.detached.send(DetachedRelease {
            key: key.clone(),
            token: token.clone(),
            horizon,
            nodes,
        });
    }

    fn all_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    fn no_quorum(
        &self,
        operation: &'static str,
        key: &LockKey,
        tally: &Tally,
        since: Instant,
    ) -> LockError {
        LockError::NoQuorum {
            operation,
            key: key.clone(),
            answered: tally.answered(),
            nodes: tally.nodes(),
            quorum: tally.quorum(),
            waited: since.elapsed(),
            attempts: 1,
        }
    }
}

#[async_trait]
impl Backend for RedlockBackend {
    fn name(&self) -> &'static str {
        "redlock"
    }

    async fn attempt(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
        _waiter: Option<&WaiterId>,
    ) -> Result<Attempt, LockError> {
        // No cross-process line over independent nodes: waiters of different
        // processes race for a quorum (same-process callers still queue FIFO).
        self.check_ttl(ttl)?;
        let since = Instant::now();
        let deadline = since + self.config.node_timeout_for(ttl);
        let mut tally = Tally::new(self.nodes.len());
        // Nodes on which our token may now be stored: all, until one refuses.
        let mut may_hold = vec![true; self.nodes.len()];
        let mut votes: FuturesUnordered<_> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| async move {
                (index, node.acquire(key, token, ttl, deadline, since).await)
            })
            .collect();
        while let Some((index, vote)) = votes.next().await {
            match vote {
                Ok(reply) => {
                    if let Answer::No { .. } = reply.value {
                        may_hold[index] = false;
                    }
                    tally.record(reply.voter.as_deref(), reply.value);
                }
                Err(_) => tally.record(None, Answer::Failed),
            }
            if tally.settled(votes.len()) {
                // Requests already written still run on their nodes: our
                // token may be there, and is released below or by the guard.
                break;
            }
        }
        drop(votes);
        let verdict = tally.verdict();
        let horizon = since + ttl;
        let may_hold: Vec<usize> = (0..may_hold.len()).filter(|&i| may_hold[i]).collect();
        match verdict {
            Verdict::Quorum => {
                metrics::redlock_votes("quorum", tally.granted());
                match self.mint(key).await {
                    Ok(fence) => Ok(Attempt::Acquired(fence)),
                    Err(error) => {
                        tracing::warn!(lock.key = %key, %error, "quorum won but the fencing token could not be minted; released");
                        self.release_later(key, token, self.all_nodes(), horizon);
                        Err(error)
                    }
                }
            }
            Verdict::Contended { pttl } => {
                metrics::redlock_votes("contended", tally.granted());
                self.release_later(key, token, may_hold, horizon);
                Ok(Attempt::Held { pttl })
            }
            Verdict::NoQuorum { answered } => {
                metrics::redlock_votes("no_quorum", tally.granted());
                tracing::debug!(
                    lock.key = %key,
                    redlock.answered = answered,
                    redlock.failed = tally.failed(),
                    redlock.quorum = tally.quorum(),
                    "redlock round without a quorum of usable nodes"
                );
                self.release_later(key, token, may_hold, horizon);
                Ok(Attempt::NoQuorum {
                    answered,
                    nodes: tally.nodes(),
                    quorum: tally.quorum(),
                })
            }
        }
    }

    /// `Ok(true)` when a quorum renewed (the guard then checks that this
    /// happened within the validity); `Ok(false)` when so many nodes lack the
    /// token that a quorum never can hold it again (the lease is lost);
    /// `Err(NoQuorum)` when failures left it undecided (the watchdog retries
    /// while the lease lasts).
    async fn extend(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, LockError> {
        self.check_ttl(ttl)?;
        let since = Instant::now();
        let deadline = since + self.config.node_timeout_for(ttl);
        let mut tally = Tally::new(self.nodes.len());
        let mut votes: FuturesUnordered<_> = self
            .nodes
            .iter()
            .map(|node| {
                let (node, key, token) = (Arc::clone(node), key.clone(), token.clone());
                async move { node.extend(&key, &token, ttl, deadline, since).await }
            })
            .collect();
        while let Some(vote) = votes.next().await {
            match vote {
                Ok(reply) => tally.record(reply.voter.as_deref(), reply.value),
                Err(_) => tally.record(None, Answer::Failed),
            }
            if tally.has_quorum() || tally.is_lost() {
                break;
            }
        }
        if !votes.is_empty() {
            // Renew the slower nodes too (owner-checked, so harmless if late):
            // the more nodes hold the lease, the more failures it survives.
            tokio::spawn(async move { while votes.next().await.is_some() {} });
        }
        if tally.has_quorum() {
            Ok(true)
        } else if tally.is_lost() {
            Ok(false)
        } else {
            Err(self.no_quorum("extend", key, &tally, since))
        }
    }

    /// `Ok(true)` when a quorum of nodes deleted the token, `Ok(false)` when
    /// so many lacked it that the lease had already ended, `Err(NoQuorum)`
    /// when failures left it undecided. Returns as soon as that is known;
    /// slower nodes finish in the background, and nodes the request did not
    /// reach get it again from the background releaser.
    async fn release(&self, key: &LockKey, token: &LockToken) -> Result<bool, LockError> {
        let since = Instant::now();
        let deadline = since + self.config.node_timeout_untimed();
        let horizon = since + self.config.max_ttl;
        let mut tally = Tally::new(self.nodes.len());
        let mut deleted = 0;
        let mut resend = Vec::new();
        let mut requests: FuturesUnordered<_> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let (node, key, token) = (Arc::clone(node), key.clone(), token.clone());
                async move { (index, node.release(&key, &token, deadline).await) }
            })
            .collect();
        while let Some((index, reply)) = requests.next().await {
            match reply {
                Ok(reply) => {
                    if reply.value == Answer::Yes {
                        deleted += 1;
                    }
                    tally.record(reply.voter.as_deref(), reply.value);
                }
                Err(failure) => {
                    if failure.needs_resend() {
                        resend.push(index);
                    }
                    tally.record(None, Answer::Failed);
                }
            }
            if deleted >= tally.quorum() || tally.is_lost() {
                break;
            }
        }
        self.release_later(key, token, resend, horizon);
        if !requests.is_empty() {
            let detached = self.detached.clone();
            let (key, token) = (key.clone(), token.clone());
            tokio::spawn(async move {
                let mut resend = Vec::new();
                while let Some((index, reply)) = requests.next().await {
                    if let Err(failure) = reply
                        && failure.needs_resend()
                    {
                        resend.push(index);
                    }
                }
                if !resend.is_empty() {
                    let _ = detached.send(DetachedRelease {
                        key,
                        token,
                        horizon,
                        nodes: resend,
                    });
                }
            });
        }
        if deleted > 0 {
            let channel = key.release_channel();
            for wakeups in &self.wakeups {
                wakeups.notify_local(&channel);
            }
        }
        if deleted >= tally.quorum() {
            Ok(true)
        } else if tally.is_lost() {
            Ok(false)
        } else {
            Err(self.no_quorum("release", key, &tally, since))
        }
    }

    fn release_detached(&self, key: LockKey, token: LockToken, horizon: Instant) {
        self.release_later(&key, &token, self.all_nodes(), horizon);
    }

    /// Subscribes on every node and returns once enough subscriptions are in
    /// place: a lease is released on at least a quorum of nodes, so listening
    /// on N − quorum + 1 of them hears every release. Subscriptions to slow or
    /// dead nodes are not waited for (at most the node timeout).
    async fn watch_releases(&self, key: &LockKey, _waiter: &WaiterId) -> ReleaseWatch {
        let channel = key.release_channel();
        let deadline = Instant::now() + self.config.node_timeout_untimed();
        let enough = self.nodes.len() + 1 - crate::quorum::quorum(self.nodes.len());
        let mut subscribing: FuturesUnordered<_> = self
            .wakeups
            .iter()
            .map(|wakeups| tokio::time::timeout_at(deadline, wakeups.listen(&channel)))
            .collect();
        let mut watches = Vec::with_capacity(self.wakeups.len());
        let mut listening = 0;
        while let Some(result) = subscribing.next().await {
            if let Ok((watch, subscribed)) = result {
                watches.push(watch);
                listening += usize::from(subscribed);
            }
            if listening >= enough {
                break;
            }
        }
        ReleaseWatch::any(watches)
    }

    fn lock_on_fence_store(&self) -> bool {
        false
    }
}

/// Runs detached releases, one task per node and request, so that a dead
/// node delays nothing. Ends once every sender (the lock and its guards) is gone.
async fn run_releaser(
    nodes: Vec<Arc<Node>>,
    timeout: Duration,
    mut queue: mpsc::UnboundedReceiver<DetachedRelease>,
) {
    while let Some(release) = queue.recv().await {
        for &index in &release.nodes {
            if let Some(node) = nodes.get(index) {
                tokio::spawn(release_on_node(
                    Arc::clone(node),
                    release.key.clone(),
                    release.token.clone(),
                    release.horizon,
                    timeout,
                ));
            }
        }
    }
}

/// Delivers one owner-checked release to one node, until it is delivered or
/// the lease has surely expired (`horizon`).
async fn release_on_node(
    node: Arc<Node>,
    key: LockKey,
    token: LockToken,
    horizon: Instant,
    timeout: Duration,
) {
    loop {
        let retry_at = match node.release(&key, &token, Instant::now() + timeout).await {
            Ok(_) => return,
            // Sent on a live connection (see `Failure::needs_resend`): it runs
            // when the node answers again, after everything sent before it on
            // that connection, such as a late `SET NX`.
            Err(Failure::Timeout) => return,
            // No connection: try again once the node may be reachable.
            Err(Failure::Down | Failure::Dropped(_)) => node
                .retry_at()
                .unwrap_or_else(Instant::now)
                .max(Instant::now() + Duration::from_millis(10)),
            Err(Failure::Error(_)) => {
                Instant::now() + backoff::jittered(Duration::from_millis(10), timeout, None)
            }
        };
        if retry_at >= horizon {
            tracing::debug!(lock.node = node.address(), lock.key = %key, "background release gave up; the key expires at its TTL");
            return;
        }
        tokio::time::sleep_until(retry_at).await;
    }
}
