//! One Redlock node: its connection, who is answering on it, and the
//! requests Redlock sends it.
//!
//! Each node has one multiplexed connection, opened in the background and
//! replaced only when it breaks. Every new connection is probed
//! (`INFO server persistence`) before any request uses it, and the probe
//! decides from when the node's answers count toward a quorum
//! ([`crate::node_health`]). A restarted server always breaks the connection,
//! so no answer from a restarted server can count before that decision: this
//! is why the crate manages the connection itself instead of using redis-rs's
//! `ConnectionManager`, which reconnects silently.
//!
//! A request that times out keeps its connection: the node may merely be
//! slow or stopped, and the request (say a `SET NX`) may still run later.
//! Anything sent after it on the same connection — the release of that very
//! attempt — runs after it, so a late `SET NX` is still undone. (redis-rs
//! drops a request whose caller gave up before the connection task wrote it;
//! a `SET NX` dropped that way never runs, and a release is given up on only
//! after a whole node timeout, long after it was written.)

use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisError, Script, ScriptInvocation};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::key::LockKey;
use crate::node_health::{self, Admission, Probe};
use crate::quorum::Answer;
use crate::redlock_config::RedlockNode;
use crate::scripts;
use crate::token::LockToken;

/// Take the key on one node, without a fencing token (that is minted on the
/// fence store, once, after a quorum).
///
/// KEYS[1] lock key · ARGV[1] token, ARGV[2] TTL in ms. Returns `{1, 0}` when
/// taken, `{0, pttl}` when held by another token.
///
/// Safety: `SET NX PX` creates the key and its expiry in one step; PTTL in the
/// same script reports the lease of exactly the holder that refused us.
pub(crate) static NODE_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, 0}
end
return {0, redis.call('PTTL', KEYS[1])}
",
    )
});

/// Reconnect backoff after a failed connect: doubles from the first to the last.
const RECONNECT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(25), Duration::from_millis(1_000));

pub(crate) struct Node {
    address: String,
    client: redis::Client,
    durable: bool,
    max_ttl: Duration,
    connect_timeout: Duration,
    link: Mutex<Link>,
    /// Bumped at the end of every connect attempt, successful or not.
    connects: watch::Sender<u64>,
}

#[derive(Default)]
struct Link {
    live: Option<Live>,
    connecting: bool,
    retry_at: Option<Instant>,
    backoff: Option<Duration>,
    admission: Option<Admission>,
    last_error: Option<String>,
    generation: u64,
}

/// A probed connection.
#[derive(Clone)]
struct Live {
    connection: MultiplexedConnection,
    generation: u64,
    /// Who answers on it: the server's `run_id`, or the address if unknown.
    identity: Arc<str>,
    counts_from: Instant,
}

/// A usable answer from a node.
pub(crate) struct Reply<T> {
    pub(crate) value: T,
    /// The answering server's identity if its answer counts toward a quorum
    /// (see [`crate::quorum::Tally::record`]); `None` while it is quarantined.
    pub(crate) voter: Option<Arc<str>>,
}

/// Why a node gave no usable answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No connection in time (down, or still connecting): nothing was sent.
    Down,
    /// Sent, but no answer in time: it may still run, in order with
    /// whatever is sent after it on the same connection.
    Timeout,
    /// The connection broke: unknown whether the request ran. The next
    /// request reconnects and re-identifies the node.
    Dropped(RedisError),
    /// The node answered with an error.
    Error(RedisError),
}

impl Failure {
    /// Whether a release that failed this way should be sent again: not after
    /// a timeout, where it is (all but certainly) already on its way,
    /// queued behind whatever was sent before it on the same connection.
    pub(crate) fn needs_resend(&self) -> bool {
        !matches!(self, Self::Timeout)
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Timeout => "timeout",
            Self::Dropped(_) => "dropped",
            Self::Error(_) => "error",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Down => f.write_str("not connected"),
            Self::Timeout => f.write_str("no answer within the node timeout"),
            Self::Dropped(error) => write!(f, "connection lost: {error}"),
            Self::Error(error) => write!(f, "error reply: {error}"),
        }
    }
}

/// What [`Node::snapshot`] reports.
pub(crate) struct Snapshot {
    pub(crate) address: String,
    pub(crate) durable: bool,
    pub(crate) run_id: Option<String>,
    pub(crate) quarantine_left: Option<Duration>,
    pub(crate) last_error: Option<String>,
}

enum Request {
    Script(ScriptInvocation<'static>),
    Command(redis::Cmd),
}

impl Node {
    pub(crate) fn new(node: RedlockNode, max_ttl: Duration, connect_timeout: Duration) -> Self {
        Self {
            address: node.address(),
            client: node.client,
            durable: node.durable,
            max_ttl,
            connect_timeout,
            link: Mutex::default(),
            connects: watch::channel(0).0,
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// `SET NX PX` of `token` (see [`NODE_ACQUIRE`]).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
        deadline: Instant,
        since: Instant,
    ) -> Result<Reply<Answer>, Failure> {
        let mut invocation = NODE_ACQUIRE.prepare_invoke();
        invocation
            .key(key.as_str())
            .arg(token.as_str())
            .arg(millis(ttl));
        let reply: Reply<(i64, i64)> = self
            .request(Request::Script(invocation), deadline, since)
            .await?;
        let (granted, pttl) = reply.value;
        let answer = if granted == 1 {
            Answer::Yes
        } else {
            Answer::No {
                pttl: u64::try_from(pttl)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis),
            }
        };
        Ok(Reply {
            value: answer,
            voter: reply.voter,
        })
    }

    /// Owner-checked `PEXPIRE` (see [`scripts::EXTEND`]).
    pub(crate) async fn extend(
        self: &Arc<Self>,
        key: &LockKey,
        token: &LockToken,
        ttl: Duration,
        deadline: Instant,
        since: Instant,
    ) -> Result<Reply<Answer>, Failure> {
        let mut invocation = scripts::EXTEND.prepare_invoke();
        invocation
            .key(key.as_str())
            .arg(token.as_str())
            .arg(millis(ttl));
        self.yes_or_no(invocation, deadline, since).await
    }

    /// Owner-checked delete that announces the release on the node (see [`scripts::RELEASE`]).
    pub(crate) async fn release(
        self: &Arc<Self>,
        key: &LockKey,
        token: &LockToken,
        deadline: Instant,
    ) -> Result<Reply<Answer>, Failure> {
        let mut invocation = scripts::RELEASE.prepare_invoke();
        invocation
            .key(key.as_str())
            .arg(token.as_str())
            .arg(key.release_channel());
        self.yes_or_no(invocation, deadline, Instant::now()).await
    }

    /// `PING`: whether the node answers, and whether it counts right now.
    pub(crate) async fn ping(self: &Arc<Self>, deadline: Instant) -> Result<Reply<()>, Failure> {
        let reply: Reply<String> = self
            .request(
                Request::Command(redis::cmd("PING")),
                deadline,
                Instant::now(),
            )
            .await?;
        Ok(Reply {
            value: (),
            voter: reply.voter,
        })
    }

    /// Resolves after the next connect attempt ends (however it ends), and
    /// starts one if none is running and the backoff allows.
    pub(crate) async fn reconnected(self: &Arc<Self>) {
        let _ = self.live().await;
    }

    /// When the node may next try to connect, if it is backing off.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.link().retry_at
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let link = self.link();
        let now = Instant::now();
        Snapshot {
            address: self.address.clone(),
            durable: self.durable,
            run_id: link.admission.as_ref().and_then(|a| a.run_id.clone()),
            quarantine_left: link
                .admission
                .as_ref()
                .map(|a| a.counts_from.saturating_duration_since(now))
                .filter(|left| !left.is_zero()),
            last_error: link.last_error.clone(),
        }
    }

    async fn yes_or_no(
        self: &Arc<Self>,
        invocation: ScriptInvocation<'static>,
        deadline: Instant,
        since: Instant,
    ) -> Result<Reply<Answer>, Failure> {
        let reply: Reply<i64> = self
            .request(Request::Script(invocation), deadline, since)
            .await?;
        Ok(Reply {
            value: if reply.value == 1 {
                Answer::Yes
            } else {
                Answer::No { pttl: None }
            },
            voter: reply.voter,
        })
    }

    /// Sends `request` on the node's connection, all by `deadline`. The answer
    /// counts toward a quorum if the server was admitted by `since` (the start
    /// of the round).
    async fn request<T: FromRedisValue>(
        self: &Arc<Self>,
        request: Request,
        deadline: Instant,
        since: Instant,
    ) -> Result<Reply<T>, Failure> {
        let result = self.send(request, deadline, since).await;
        if let Err(failure) = &result {
            crate::metrics::redlock_node_error(&self.address, failure.kind());
        }
        result
    }

    async fn send<T: FromRedisValue>(
        self: &Arc<Self>,
        request: Request,
        deadline: Instant,
        since: Instant,
    ) -> Result<Reply<T>, Failure> {
        let live = match tokio::time::timeout_at(deadline, self.live()).await {
            Ok(Some(live)) => live,
            Ok(None) | Err(_) => return Err(Failure::Down),
        };
        let mut connection = live.connection.clone();
        let sent = async {
            match &request {
                Request::Script(invocation) => invocation.invoke_async(&mut connection).await,
                Request::Command(command) => command.query_async(&mut connection).await,
            }
        };
        match tokio::time::timeout_at(deadline, sent).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Ok(value)) => Ok(Reply {
                value,
                voter: (live.counts_from <= since).then(|| Arc::clone(&live.identity)),
            }),
            Ok(Err(error)) if error.is_unrecoverable_error() => {
                self.broken(live.generation, &error);
                Err(Failure::Dropped(error))
            }
            Ok(Err(error)) => Err(Failure::Error(error)),
        }
    }

    /// The probed connection; connects first if needed (one connect at a
    /// time, in the background, so a caller giving up does not abort it).
    /// `None` if the connect failed or the node is backing off.
    async fn live(self: &Arc<Self>) -> Option<Live> {
        let mut connects = {
            let mut link = self.link();
            if let Some(live) = &link.live {
                return Some(live.clone());
            }
            if !link.connecting {
                if link.retry_at.is_some_and(|at| Instant::now() < at) {
                    return None;
                }
                link.connecting = true;
                tokio::spawn(Arc::clone(self).connect());
            }
            self.connects.subscribe()
        };
        // The sender lives as long as `self`: `changed` cannot fail here.
        let _ = connects.changed().await;
        self.link().live.clone()
    }

    async fn connect(self: Arc<Self>) {
        let outcome = tokio::time::timeout(self.connect_timeout, self.open()).await;
        let probed_at = Instant::now();
        let mut link = self.link();
        link.connecting = false;
        match outcome {
            Ok(Ok((connection, probe))) => {
                let admission = node_health::admit(
                    link.admission.as_ref(),
                    &probe,
                    self.durable,
                    self.max_ttl,
                    probed_at,
                );
                self.report_admission(link.admission.as_ref(), &admission, &probe);
                link.generation += 1;
                link.live = Some(Live {
                    connection,
                    generation: link.generation,
                    identity: admission
                        .run_id
                        .as_deref()
                        .map_or_else(|| Arc::from(format!("@{}", self.address)), Arc::from),
                    counts_from: admission.counts_from,
                });
                link.admission = Some(admission);
                link.retry_at = None;
                link.backoff = None;
                link.last_error = None;
            }
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no connection within {:?}", self.connect_timeout),
                };
                let backoff = link
                    .backoff
                    .map_or(RECONNECT_BACKOFF.0, |b| (b * 2).min(RECONNECT_BACKOFF.1));
                tracing::debug!(lock.node = %self.address, %error, "redlock node connect failed");
                link.backoff = Some(backoff);
                link.retry_at = Some(probed_at + backoff);
                link.last_error = Some(error);
            }
        }
        drop(link);
        self.connects.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Connects, identifies the server and loads the lock scripts (so that
    /// no lock operation pays a NOSCRIPT round trip).
    async fn open(&self) -> redis::RedisResult<(MultiplexedConnection, Probe)> {
        // No response timeout on the connection: every request carries its own deadline.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("server")
            .arg("persistence")
            .query_async(&mut connection)
            .await;
        let probe = match info {
            Ok(info) => Probe::parse(&info),
            // INFO refused (ACL): the node is usable but cannot be identified.
            Err(error) if error.kind() != redis::ErrorKind::Io => Probe::default(),
            Err(error) => return Err(error),
        };
        for script in [&*NODE_ACQUIRE, &*scripts::EXTEND, &*scripts::RELEASE] {
            script.load_async(&mut connection).await?;
        }
        Ok((connection, probe))
    }

    fn report_admission(&self, previous: Option<&Admission>, admission: &Admission, probe: &Probe) {
        let restarted = previous.is_some_and(|p| p.run_id != admission.run_id);
        if restarted {
            crate::metrics::redlock_node_restart(&self.address);
        }
        if self.durable && probe.aof_enabled == Some(false) {
            tracing::warn!(lock.node = %self.address, "redlock node declared fsync-always reports AOF off; it sits out max_ttl after restarts");
        }
        let wait = admission
            .counts_from
            .saturating_duration_since(Instant::now());
        if restarted || !wait.is_zero() {
            tracing::warn!(
                lock.node = %self.address,
                restarted,
                reason = ?admission.reason,
                quarantine = ?wait,
                "redlock node (re)started; its votes count toward quorums once the quarantine is over"
            );
        }
    }

    /// The connection of `generation` broke: drop it so the next request
    /// reconnects (and re-probes) at once.
    fn broken(&self, generation: u64, error: &RedisError) {
        let mut link = self.link();
        if link
            .live
            .as_ref()
            .is_some_and(|live| live.generation == generation)
        {
            tracing::debug!(lock.node = %self.address, %error, "redlock node connection lost");
            link.live = None;
            link.last_error = Some(error.to_string());
        }
    }

    fn link(&self) -> MutexGuard<'_, Link> {
        // Plain fields, each written in one step: a panic cannot leave them torn.
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
