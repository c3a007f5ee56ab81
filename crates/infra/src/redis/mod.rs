//! Redis adapters: Redis is the system of record, and every stock change is a
//! guarded script run under the product's lock from `inventory-lock`.
//!
//! Data commands go through a deadpool-redis pool; the lock has its own
//! multiplexed connections (and a pub/sub connection for release wake-ups).

mod codec;
mod keys;
mod products;
mod purchases;
mod scripts;
mod stock_watch;
mod users;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use inventory_domain::{HealthCheck, StoreError};
use inventory_lock::{AcquireOptions, DistributedLock, LockError, RedisLock, RedisLockConfig};

use crate::Repositories;

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
    /// Data connections in the pool.
    pub pool_size: usize,
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
    /// The lock could not connect.
    #[error("the lock could not connect to Redis")]
    Lock(#[from] LockError),
}

/// Connects to Redis (failing fast if it does not answer) and returns every port.
pub async fn connect(settings: &RedisSettings) -> Result<Repositories, ConnectError> {
    let store = Arc::new(RedisStore::connect(settings).await?);
    Ok(Repositories {
        users: store.clone(),
        products: store.clone(),
        purchases: store.clone(),
        health: store,
    })
}

/// The Redis-backed store behind every port.
pub struct RedisStore {
    pool: Pool,
    lock: RedisLock,
    lock_options: AcquireOptions,
    stock_watch: stock_watch::StockWatch,
}

impl RedisStore {
    /// Builds the pool and the lock, and checks that Redis answers.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, ConnectError> {
        let client =
            redis::Client::open(settings.url.as_str()).map_err(ConnectError::InvalidUrl)?;
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
        let pool = config.create_pool(Some(Runtime::Tokio1))?;
        let lock_config = RedisLockConfig {
            response_timeout: settings.response_timeout,
            connection_timeout: settings.response_timeout,
            ..RedisLockConfig::default()
        };
        let lock = RedisLock::connect(client, lock_config).await?;
        let store = Self {
            pool,
            lock,
            lock_options: AcquireOptions::default()
                .with_ttl(settings.lock_ttl)
                .with_wait_timeout(settings.lock_wait_timeout),
            stock_watch: stock_watch::StockWatch::default(),
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

    /// The product lock, for callers that need it directly (e.g. tests).
    pub fn lock(&self) -> &dyn DistributedLock {
        &self.lock
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::unavailable("getting a Redis connection", error))
    }

    /// The connection for guarded scripts, used while the product lock is held.
    ///
    /// In single-node mode the lock node is the data node, so the lock's own
    /// multiplexed connection reaches the data. Unlike a pool checkout (which
    /// deadpool-redis verifies with a PING round trip every time), it costs no
    /// round trip — and every round trip inside the critical section is paid
    /// once per purchase of a hot product, serially.
    fn guarded_connection(&self) -> redis::aio::ConnectionManager {
        self.lock.connection()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection().await?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(|error| unavailable("PING", error))
    }
}

#[async_trait]
impl HealthCheck for RedisStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.ping().await
    }
}

/// The inclusive index range of a page in a sorted set (ZRANGE start stop).
fn index_range(page: inventory_domain::Page) -> (isize, isize) {
    let start = isize::try_from(page.offset()).unwrap_or(isize::MAX);
    let len = isize::try_from(page.limit()).unwrap_or(isize::MAX);
    (start, start.saturating_add(len - 1))
}

/// HGETALL of every key, in one pipelined round trip, in order.
async fn read_hashes(
    connection: &mut deadpool_redis::Connection,
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

/// A failed acquire: `Ok(retry_after)` when the caller should retry later
/// (timed out waiting), else the storage failure.
fn lock_failure(error: LockError, wait: Duration) -> Result<Duration, StoreError> {
    if error.is_timeout() {
        // Suggest retrying after about one wait period; at least a second.
        Ok(wait.max(Duration::from_secs(1)))
    } else {
        Err(StoreError::unavailable("taking a product lock", error))
    }
}

/// A failed guarded script: a lost lease wrote nothing and is retryable like a
/// lock timeout; anything else is a storage failure.
fn script_failure(error: LockError) -> Result<Duration, StoreError> {
    if error.is_lease_lost() {
        Ok(Duration::from_secs(1))
    } else {
        Err(StoreError::unavailable("running a guarded script", error))
    }
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
