//! Redis adapters: Redis is the system of record, and every stock change is a
//! guarded script run under the product's lock from `inventory-lock`.
//!
//! Two ways to hold the product locks, picked by the caller's choice of
//! constructor ([`connect`] or [`connect_redlock`]):
//!
//! * **single node**: the lock lives on the data node (`REDIS_URL`), and a
//!   purchase batch that finds the lock free runs as one fused acquire → write →
//!   release script;
//! * **Redlock**: the locks live on independent lock nodes; the data node is the
//!   Redlock's fence store (fencing tokens are minted there), guarded scripts run
//!   there, and there is no fused step (it needs the lock and the data on one node).
//!
//! Connections: reads, purchases and restocks use one multiplexed connection to
//! the data node (the lock's own in single-node mode, the fence store's in
//! Redlock mode): no checkout, so no per-request PING, and a broken connection
//! is replaced by the connection manager on the next command. Account and
//! catalogue creation go through a deadpool-redis pool, where a checkout PING is
//! noise next to bcrypt. The lock also has pub/sub connections for release
//! wake-ups (one per lock node).

mod codec;
mod keys;
mod order_scripts;
mod orders;
mod products;
mod purchase_batch;
mod purchases;
mod reconcile;
mod redlock;
mod scripts;
mod users;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use inventory_domain::{HealthCheck, LockReadiness, Readiness, StoreError};
use inventory_lock::{
    AcquireOptions, DistributedLock, GroupCommit, LockError, RedisLock, RedisLockConfig, Redlock,
};
use redis::aio::ConnectionManager;

use self::purchase_batch::PurchaseBatches;
pub use self::redlock::RedlockSettings;

use crate::Repositories;

/// Default of `PURCHASE_BATCH_MAX`: a batch of 64 runs in well under a
/// millisecond inside Redis, and more buyers than that rarely queue for one
/// product between two batches of one process.
pub const DEFAULT_PURCHASE_BATCH_MAX: NonZeroUsize = match NonZeroUsize::new(64) {
    Some(max) => max,
    None => unreachable!(),
};

/// How to reach Redis and how to lock.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://…` URL of the data node (also the lock node in single mode).
    pub url: String,
    /// Lease of a product lock.
    pub lock_ttl: Duration,
    /// How long a purchase or restock waits for the product's lock.
    pub lock_wait_timeout: Duration,
    /// Longest wait for any Redis reply. A purchase whose reply does not come in
    /// time has an unknown outcome, settled through its idempotency record.
    pub response_timeout: Duration,
    /// Connections in the pool used for account and catalogue creation.
    pub pool_size: usize,
    /// Most purchases of one product committed under one lock hold.
    pub purchase_batch_max: NonZeroUsize,
}

impl RedisSettings {
    /// Settings with lockstock's defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            lock_ttl: Duration::from_millis(5_000),
            lock_wait_timeout: Duration::from_millis(3_000),
            response_timeout: Duration::from_millis(2_000),
            pool_size: 32,
            purchase_batch_max: DEFAULT_PURCHASE_BATCH_MAX,
        }
    }
}

/// Why the Redis adapters could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] redis::RedisError),
    /// The pool could not be built.
    #[error("could not create the Redis connection pool")]
    Pool(#[from] deadpool_redis::CreatePoolError),
    /// Redis did not answer.
    #[error("Redis at {url} is not reachable")]
    Unreachable {
        /// Where we tried (without credentials).
        url: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A lock node's URL does not parse.
    #[error("invalid lock node URL {url}")]
    InvalidLockNodeUrl {
        /// The URL without credentials.
        url: String,
        /// What is wrong with it.
        #[source]
        source: redis::RedisError,
    },
    /// The lock could not be set up.
    #[error("the lock could not be set up")]
    Lock(#[from] LockError),
}

/// Connects to Redis with the single-node lock (the lock lives on the data node),
/// failing fast if Redis does not answer, and returns every port.
pub async fn connect(settings: &RedisSettings) -> Result<Repositories, ConnectError> {
    Ok(RedisStore::connect(settings).await?.into_repositories())
}

/// Connects to Redis with a Redlock over `redlock.nodes` (the data node,
/// `settings.url`, is its fence store), and returns every port. Fails fast if the
/// data node does not answer; lock nodes that are down are not an error (the
/// readiness check reports them).
pub async fn connect_redlock(
    settings: &RedisSettings,
    redlock: &RedlockSettings,
) -> Result<Repositories, ConnectError> {
    Ok(RedisStore::connect_redlock(settings, redlock)
        .await?
        .into_repositories())
}

/// The Redis-backed store behind every port.
pub struct RedisStore {
    /// Account and catalogue creation.
    pool: Pool,
    /// Reads, purchases, restocks: multiplexed, no per-command checkout.
    data: ConnectionManager,
    lock: Arc<dyn DistributedLock>,
    lock_options: AcquireOptions,
    purchases: GroupCommit<PurchaseBatches>,
    /// The Redlock, when the locks live on their own nodes (for readiness).
    redlock: Option<Redlock>,
}

impl RedisStore {
    /// Builds the pool and the single-node lock (on the data node), and checks
    /// that Redis answers.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, ConnectError> {
        let client =
            redis::Client::open(settings.url.as_str()).map_err(ConnectError::InvalidUrl)?;
        let pool = pool(settings)?;
        let lock_config = RedisLockConfig {
            response_timeout: settings.response_timeout,
            connection_timeout: settings.response_timeout,
            ..RedisLockConfig::default()
        };
        let lock = RedisLock::connect(client, lock_config).await?;
        // Single-node mode: the lock node is the data node, so the lock's
        // multiplexed connection reaches the data, and a batch that finds the
        // lock free can run as one fused step.
        let data = lock.connection();
        let batches = PurchaseBatches::new(data.clone(), Some(lock.clone()));
        Self::assemble(settings, pool, data, Arc::new(lock), batches, None).await
    }

    /// Builds the pool and a Redlock over `redlock.nodes` whose fence store is
    /// the data node, and checks that the data node answers.
    pub async fn connect_redlock(
        settings: &RedisSettings,
        redlock: &RedlockSettings,
    ) -> Result<Self, ConnectError> {
        let pool = pool(settings)?;
        let lock = redlock::connect(settings, redlock).await?;
        // The fence store is the data node: guarded scripts must run there (the
        // fence check refuses them anywhere else), and settling reads share the
        // connection the scripts went out on. No fused step: the lock is not on
        // this node.
        let data = lock.fence_store();
        let batches = PurchaseBatches::new(data.clone(), None);
        Self::assemble(
            settings,
            pool,
            data,
            Arc::new(lock.clone()),
            batches,
            Some(lock),
        )
        .await
    }

    async fn assemble(
        settings: &RedisSettings,
        pool: Pool,
        data: ConnectionManager,
        lock: Arc<dyn DistributedLock>,
        batches: PurchaseBatches,
        redlock: Option<Redlock>,
    ) -> Result<Self, ConnectError> {
        let lock_options = AcquireOptions::default()
            .with_ttl(settings.lock_ttl)
            .with_wait_timeout(settings.lock_wait_timeout);
        let purchases = GroupCommit::new(
            lock.clone(),
            lock_options.clone(),
            settings.purchase_batch_max,
            batches,
        );
        let store = Self {
            pool,
            data,
            lock,
            lock_options,
            purchases,
            redlock,
        };
        store
            .ping()
            .await
            .map_err(|error| ConnectError::Unreachable {
                url: redacted(&settings.url),
                source: Box::new(error),
            })?;
        Ok(store)
    }

    fn into_repositories(self) -> Repositories {
        let store = Arc::new(self);
        Repositories {
            users: store.clone(),
            products: store.clone(),
            purchases: store.clone(),
            orders: store.clone(),
            reconciler: store.clone(),
            health: store,
        }
    }

    /// The product lock, for callers that need it directly (e.g. tests).
    pub fn lock(&self) -> &dyn DistributedLock {
        self.lock.as_ref()
    }

    /// A pool connection, for account and catalogue creation.
    async fn pooled(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::unavailable("getting a Redis connection", error))
    }

    /// The multiplexed data connection (a cheap handle).
    fn data(&self) -> ConnectionManager {
        self.data.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut pooled = self.pooled().await?;
        redis::cmd("PING")
            .query_async::<()>(&mut pooled)
            .await
            .map_err(|error| unavailable("PING", error))?;
        redis::cmd("PING")
            .query_async::<()>(&mut self.data())
            .await
            .map_err(|error| unavailable("PING", error))
    }
}

#[async_trait]
impl HealthCheck for RedisStore {
    async fn readiness(&self) -> Readiness {
        let data = async { self.ping().await.err().map(|error| error.to_string()) };
        let locks = async {
            match &self.redlock {
                Some(lock) => LockReadiness::Quorum(redlock::quorum(lock.status().await)),
                None => LockReadiness::DataStore,
            }
        };
        let (data_store_error, locks) = tokio::join!(data, locks);
        Readiness {
            data_store_error,
            locks,
        }
    }
}

/// The pool for account and catalogue creation.
fn pool(settings: &RedisSettings) -> Result<Pool, ConnectError> {
    let mut config = deadpool_redis::Config::from_url(settings.url.as_str());
    config.pool = Some(PoolConfig {
        max_size: settings.pool_size,
        timeouts: Timeouts {
            wait: Some(settings.response_timeout),
            create: Some(settings.response_timeout),
            recycle: Some(settings.response_timeout),
        },
        ..PoolConfig::default()
    });
    Ok(config.create_pool(Some(Runtime::Tokio1))?)
}

/// The inclusive index range of a page in a sorted set (ZRANGE start stop).
fn index_range(page: inventory_domain::Page) -> (isize, isize) {
    let start = isize::try_from(page.offset()).unwrap_or(isize::MAX);
    let len = isize::try_from(page.limit()).unwrap_or(isize::MAX);
    (start, start.saturating_add(len - 1))
}

/// HGETALL of every key, in one pipelined round trip, in order.
async fn read_hashes(
    connection: &mut ConnectionManager,
    keys: impl Iterator<Item = String>,
    context: &str,
) -> Result<Vec<codec::Fields>, StoreError> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.hgetall(key);
    }
    if pipe.is_empty() {
        // An empty pipeline is an error in redis-rs, not an empty answer.
        return Ok(Vec::new());
    }
    pipe.query_async(connection)
        .await
        .map_err(|error| unavailable(context, error))
}

/// A Redis failure as the domain sees it.
fn unavailable(context: &str, error: redis::RedisError) -> StoreError {
    StoreError::unavailable(context.to_owned(), error)
}

/// The URL without its credentials or query (which may carry `pass=`), for logs and error
/// messages. Parsed as a URL, so a password holding `@`, `:` or `/` cannot leak: the
/// userinfo ends at the last `@`, and a URL that does not parse is not echoed at all.
pub fn redacted(url: &str) -> String {
    let Some(parsed) = redis::parse_redis_url(url) else {
        return "<unparsable Redis URL>".to_owned();
    };
    let credentials = if parsed.username().is_empty() && parsed.password().is_none() {
        ""
    } else {
        "***@"
    };
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{credentials}{host}{port}{}",
        parsed.scheme(),
        parsed.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redacted("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            redacted("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(
            redacted("rediss://user:secret@host/1"),
            "rediss://***@host/1"
        );
        assert_eq!(redacted("redis://user@host"), "redis://***@host");
    }

    #[test]
    fn no_part_of_an_awkward_password_leaks() {
        for (url, expected) in [
            ("redis://:p@ss@host:6379/0", Some("redis://***@host:6379/0")),
            ("redis://u:s3cr@t@p@ss@host", Some("redis://***@host")),
            ("redis://:p:a@ss@host:6379", Some("redis://***@host:6379")),
            (
                "unix:///run/redis.sock?db=0&pass=s3cr@t",
                Some("unix:///run/redis.sock"),
            ),
            ("redis://:pa/ss@host:6379", None),
            ("redis://:pa#ss@host:6379", None),
            ("redis://:pa?ss@host:6379", None),
        ] {
            let shown = redacted(url);
            for secret in ["p@ss", "ss@", "s3cr", "@t", "pa/", "pa#", "pa?", "a@ss"] {
                assert!(!shown.contains(secret), "{url} -> {shown}");
            }
            if let Some(expected) = expected {
                assert_eq!(shown, expected, "{url}");
            }
        }
    }
}
