//! Release notifications over Redis pub/sub: one subscription per key per
//! process, shared by whoever in the process is waiting for that key.
//!
//! The release script PUBLISHes on the key's channel. A dedicated RESP3
//! connection receives the messages as push frames and bumps a per-channel
//! counter ([`tokio::sync::watch`]); a waiter notes the counter before each
//! attempt and sleeps until it moves. A message can be lost (reconnect, a
//! publisher on another node): waiters then fall back to a bounded backoff, and
//! on a disconnect every channel is bumped so that nobody sleeps on a signal
//! that may never come.
//!
//! Subscriptions linger after their last waiter leaves (a hot key is waited on
//! again and again) and are swept when idle for a whole sweep interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::watch;

use crate::backend::ReleaseWatch;
use crate::scripts::TURN_PREFIX;
use crate::token::WaiterId;

/// How often idle subscriptions are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

type Channels = Arc<Mutex<HashMap<String, Channel>>>;

struct Channel {
    releases: watch::Sender<u64>,
    waiters: usize,
    subscribed: bool,
    idle_sweeps: u32,
    /// The id of this process's waiter in the key's cross-process line, if it
    /// has one: a release announcement naming another waiter's turn is then
    /// not for us (see [`crate::scripts::TURN_PREFIX`]).
    turn_of: Option<String>,
}

pub(crate) struct Wakeups {
    channels: Channels,
    connection: Option<ConnectionManager>,
    /// Serialises SUBSCRIBE/UNSUBSCRIBE so a sweep cannot undo a fresh subscription.
    subscribing: tokio::sync::Mutex<()>,
}

/// Decrements the channel's waiter count when the waiter stops listening.
struct WaiterSlot {
    channels: Channels,
    channel: String,
    waiter: Option<String>,
}

impl Wakeups {
    /// Opens the RESP3 notification connection. Failing to open it is not fatal:
    /// locking still works, waiters just rely on backoff.
    pub(crate) async fn connect(client: &redis::Client, response_timeout: Duration) -> Arc<Self> {
        let channels: Channels = Arc::default();
        let connection = match resp3_client(client) {
            Ok(client) => {
                let sink = Arc::clone(&channels);
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(response_timeout))
                    .set_number_of_retries(2)
                    .set_automatic_resubscription()
                    .set_push_sender(move |push: PushInfo| {
                        on_push(&sink, push);
                        Ok::<(), redis::aio::SendError>(())
                    });
                match client.get_connection_manager_with_config(config).await {
                    Ok(connection) => Some(connection),
                    Err(error) => {
                        tracing::warn!(%error, "lock release notifications unavailable; waiters will poll with backoff");
                        None
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "lock release notifications unavailable; waiters will poll with backoff");
                None
            }
        };
        let wakeups = Arc::new(Self {
            channels,
            connection,
            subscribing: tokio::sync::Mutex::new(()),
        });
        if wakeups.connection.is_some() {
            tokio::spawn(sweep_idle(Arc::downgrade(&wakeups)));
        }
        wakeups
    }

    /// Listens on `channel`; subscribed (when notifications work) before it returns.
    /// `waiter`, when given, is this process's waiter in the key's line: the
    /// watch then ignores announcements that name another waiter's turn.
    pub(crate) async fn watch(&self, channel: &str, waiter: Option<&WaiterId>) -> ReleaseWatch {
        self.subscribe(channel, waiter).await.0
    }

    /// Like [`Wakeups::watch`] without a waiter, and tells whether the server
    /// has the subscription (`false`: this watch fires only on a reconnect).
    pub(crate) async fn listen(&self, channel: &str) -> (ReleaseWatch, bool) {
        self.subscribe(channel, None).await
    }

    async fn subscribe(&self, channel: &str, waiter: Option<&WaiterId>) -> (ReleaseWatch, bool) {
        let Some(connection) = &self.connection else {
            return (ReleaseWatch::none(), false);
        };
        let (receiver, needs_subscribe) = {
            let mut channels = lock(&self.channels);
            let entry = channels
                .entry(channel.to_owned())
                .or_insert_with(|| Channel {
                    releases: watch::channel(0).0,
                    waiters: 0,
                    subscribed: false,
                    idle_sweeps: 0,
                    turn_of: None,
                });
            entry.waiters += 1;
            if let Some(waiter) = waiter {
                entry.turn_of = Some(waiter.as_str().to_owned());
            }
            (entry.releases.subscribe(), !entry.subscribed)
        };
        let slot = WaiterSlot {
            channels: Arc::clone(&self.channels),
            channel: channel.to_owned(),
            waiter: waiter.map(|waiter| waiter.as_str().to_owned()),
        };
        let mut subscribed = !needs_subscribe;
        if needs_subscribe {
            let _serial = self.subscribing.lock().await;
            let mut connection = connection.clone();
            match connection.subscribe(channel).await {
                Ok(()) => {
                    if let Some(entry) = lock(&self.channels).get_mut(channel) {
                        entry.subscribed = true;
                    }
                    subscribed = true;
                }
                Err(error) => {
                    tracing::debug!(%error, channel, "subscribe failed; falling back to backoff");
                }
            }
        }
        (
            ReleaseWatch::new(receiver, Some(Box::new(slot))),
            subscribed,
        )
    }

    /// Wakes this process's waiters on `channel` at once, without waiting for
    /// the release's PUBLISH to come back from Redis. The PUBLISH still arrives
    /// (and wakes them again, harmlessly: a woken waiter that finds the lock
    /// taken just waits again) and is what wakes other processes.
    pub(crate) fn notify_local(&self, channel: &str) {
        if let Some(entry) = lock(&self.channels).get(channel) {
            entry.releases.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Unsubscribes channels that had no waiter for a whole sweep interval.
    async fn sweep(&self) {
        let Some(connection) = &self.connection else {
            return;
        };
        let _serial = self.subscribing.lock().await;
        let idle: Vec<String> = {
            let mut channels = lock(&self.channels);
            let mut idle = Vec::new();
            channels.retain(|name, channel| {
                if channel.waiters > 0 {
                    channel.idle_sweeps = 0;
                    return true;
                }
                channel.idle_sweeps += 1;
                if channel.idle_sweeps < 2 {
                    return true;
                }
                if channel.subscribed {
                    idle.push(name.clone());
                }
                false
            });
            idle
        };
        if !idle.is_empty() {
            let mut connection = connection.clone();
            if let Err(error) = connection.unsubscribe(&idle).await {
                tracing::debug!(%error, "unsubscribe of idle lock channels failed");
            }
        }
    }
}

impl Drop for WaiterSlot {
    fn drop(&mut self) {
        if let Some(entry) = lock(&self.channels).get_mut(&self.channel) {
            entry.waiters = entry.waiters.saturating_sub(1);
            if self.waiter.is_some() && entry.turn_of == self.waiter {
                entry.turn_of = None;
            }
        }
    }
}

async fn sweep_idle(wakeups: Weak<Wakeups>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.tick().await;
    loop {
        interval.tick().await;
        let Some(wakeups) = wakeups.upgrade() else {
            return;
        };
        wakeups.sweep().await;
    }
}

/// Called on the connection's task for every push frame: must not block.
fn on_push(channels: &Channels, push: PushInfo) {
    let mut channels = lock(channels);
    match push.kind {
        PushKind::Message => {
            let Some(Value::BulkString(name)) = push.data.first() else {
                return;
            };
            let Ok(name) = std::str::from_utf8(name) else {
                return;
            };
            if let Some(channel) = channels.get(name)
                && is_for(channel, push.data.get(1))
            {
                channel.releases.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        // Messages published while we were disconnected are gone: wake everyone
        // to look again rather than sleep on a signal that may never come.
        // The next waiter subscribes again, which also makes the connection
        // manager reconnect if it has not yet.
        PushKind::Disconnection => {
            for channel in channels.values_mut() {
                channel.subscribed = false;
                channel.releases.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        _ => {}
    }
}

/// Whether a release announcement concerns this process's waiter: yes, unless
/// it names the turn of a waiter other than the one registered here.
fn is_for(channel: &Channel, payload: Option<&Value>) -> bool {
    let Some(Value::BulkString(payload)) = payload else {
        return true;
    };
    let Some(turn) = payload.strip_prefix(TURN_PREFIX.as_bytes()) else {
        return true;
    };
    channel
        .turn_of
        .as_ref()
        .is_none_or(|waiter| waiter.as_bytes() == turn)
}

fn resp3_client(client: &redis::Client) -> redis::RedisResult<redis::Client> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
}

fn lock(channels: &Channels) -> MutexGuard<'_, HashMap<String, Channel>> {
    // No invariant spans a panic here: counters and flags only.
    channels.lock().unwrap_or_else(PoisonError::into_inner)
}
