//! Typed settings from the environment (and `.env` when present), validated at start-up.
//!
//! Every variable is read here and nowhere else, one function per section. A variable
//! that is set but empty or invalid, or that contradicts another one, stops the start-up
//! with an error naming it.

use std::{net::SocketAddr, num::NonZeroUsize, ops::RangeInclusive, str::FromStr, time::Duration};

use inventory_domain::{Password, Username};
use inventory_infra::redis::DEFAULT_PURCHASE_BATCH_MAX;
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};

use crate::client_addr::TrustedProxies;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable is set but has an unusable value.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it (never its value when it is a secret).
        reason: String,
    },
    /// A variable is set to nothing (or only whitespace), which would otherwise silently
    /// mean "unset" — for `REDIS_URL`, the in-memory development mode.
    #[error("{name} is set but empty: unset it to use its default, or give it a value")]
    Empty {
        /// The variable.
        name: &'static str,
    },
    /// A variable is required in this mode but absent.
    #[error("{name} is required: {reason}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// Why it is required.
        reason: &'static str,
    },
}

impl ConfigError {
    /// The variable the error is about.
    pub fn variable(&self) -> &'static str {
        match self {
            Self::Invalid { name, .. } | Self::Empty { name } | Self::Missing { name, .. } => name,
        }
    }
}

/// The whole configuration of the server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen (`BIND_ADDR`).
    pub bind_addr: SocketAddr,
    /// Which store to use.
    pub storage: StorageSettings,
    /// Token signing and validation.
    pub jwt: JwtSettings,
    /// bcrypt work factor (`BCRYPT_COST`).
    pub bcrypt_cost: u32,
    /// The admin account created at start-up.
    pub admin: AdminSettings,
    /// Product locks.
    pub lock: LockSettings,
    /// Largest quantity of one purchase (`MAX_PURCHASE_QUANTITY`).
    pub max_purchase_quantity: u32,
    /// Most purchases of one product committed under one lock hold; 1 = no batching
    /// (`PURCHASE_BATCH_MAX`).
    pub purchase_batch_max: NonZeroUsize,
    /// Login and registration throttling.
    pub throttle: ThrottleSettings,
    /// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// What happens on SIGTERM.
    pub shutdown: ShutdownSettings,
    /// Log output (`LOG_FORMAT`).
    pub log_format: LogFormat,
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum StorageSettings {
    /// No `REDIS_URL` / `REDIS_CLUSTER_NODES`: in-memory, single process, nothing persists.
    Memory,
    /// Redis is the system of record.
    Redis(RedisConfig),
}

/// Redis connection settings as configured (`REDIS_URL`, `REDIS_CLUSTER_NODES`,
/// `LOCK_MODE`, `REDLOCK_NODES`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The data Redis (and lock node in single mode). May hold a password.
    pub url: Option<SecretString>,
    /// Seed nodes of a Redis Cluster for data (instead of `url`).
    pub cluster_nodes: Vec<SecretString>,
    /// Single-node lock or Redlock.
    pub lock_mode: LockMode,
    /// Independent lock nodes (Redlock mode): at least [`MIN_REDLOCK_NODES`], no duplicates.
    pub redlock_nodes: Vec<SecretString>,
    /// Every lock node runs with `appendonly yes` + `appendfsync always`
    /// (`REDLOCK_FSYNC_ALWAYS`), so a restarted node counts toward quorums at once
    /// instead of sitting out `LOCK_TTL_MS`.
    pub redlock_fsync_always: bool,
    /// How long a Redlock round waits for each lock node
    /// (`REDLOCK_NODE_TIMEOUT_MS`); `None`: the lock's default, TTL / 100 kept
    /// within 10–100 ms.
    pub redlock_node_timeout: Option<Duration>,
    /// Longest wait for a Redis reply, and for a pool connection
    /// (`REDIS_RESPONSE_TIMEOUT_MS`). A purchase whose reply does not come in
    /// time is settled through its idempotency record.
    pub response_timeout: Duration,
    /// Data connections in the pool (`REDIS_POOL_SIZE`).
    pub pool_size: usize,
}

/// How product locks are taken in Redis mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// One Redis node holds the locks.
    Single,
    /// Quorum of independent nodes (Redlock).
    Redlock,
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// HS256 secret, at least 32 bytes.
    pub secret: SecretString,
    /// True when the secret was generated for this run (development mode).
    pub secret_generated: bool,
    /// `iss` claim.
    pub issuer: String,
    /// `aud` claim.
    pub audience: String,
    /// Token lifetime.
    pub ttl: Duration,
}

/// The admin account ensured at start-up.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `ADMIN_USERNAME`.
    pub username: Username,
    /// `ADMIN_PASSWORD`; `None` skips creation (Redis mode without a password).
    pub password: Option<SecretString>,
    /// True when the password was generated for this run (development mode).
    pub password_generated: bool,
}

/// Product lock timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSettings {
    /// Lease (`LOCK_TTL_MS`).
    pub ttl: Duration,
    /// Longest wait (`LOCK_WAIT_TIMEOUT_MS`).
    pub wait_timeout: Duration,
}

/// Limits of the login and registration throttles (fixed windows, per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failed logins per username per window (`LOGIN_FAILURES_PER_USERNAME`).
    pub login_per_username: u32,
    /// Failed logins per client address per window (`LOGIN_FAILURES_PER_ADDRESS`).
    pub login_per_address: u32,
    /// The login window (`LOGIN_THROTTLE_WINDOW_SECONDS`).
    pub login_window: Duration,
    /// Registrations per client address per window (`REGISTRATIONS_PER_ADDRESS`).
    pub registrations_per_address: u32,
    /// The registration window (`REGISTRATION_THROTTLE_WINDOW_SECONDS`).
    pub registration_window: Duration,
}

/// Shutdown timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// How long `/ready` answers 503 while the listener still serves, after SIGTERM and
    /// before the listener closes (`READY_DRAIN_MS`).
    pub ready_drain: Duration,
    /// How long in-flight requests get to finish once the listener is closed
    /// (`SHUTDOWN_GRACE_SECONDS`).
    pub grace: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Shortest JWT secret accepted, in bytes.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Largest `PURCHASE_BATCH_MAX` accepted: a batch is one Lua script, and Redis
/// serves nobody else while it runs.
pub const PURCHASE_BATCH_MAX_LIMIT: NonZeroUsize = match NonZeroUsize::new(1024) {
    Some(limit) => limit,
    None => unreachable!(),
};
/// Largest `MAX_PURCHASE_QUANTITY` accepted (keeps totals far from overflow).
pub const MAX_PURCHASE_QUANTITY_LIMIT: u32 = 1_000_000;
/// Fewest Redlock nodes: with fewer, losing one node loses the quorum.
pub const MIN_REDLOCK_NODES: usize = 3;
/// Variables that only mean something with a Redis data store.
const REDIS_ONLY: [&str; 6] = [
    "LOCK_MODE",
    "REDLOCK_NODES",
    "REDLOCK_FSYNC_ALWAYS",
    "REDLOCK_NODE_TIMEOUT_MS",
    "REDIS_RESPONSE_TIMEOUT_MS",
    "REDIS_POOL_SIZE",
];

impl Settings {
    /// Reads `.env` (if present) and then the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is worth a loud failure.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError::Invalid {
                    name: ".env",
                    reason: e.to_string(),
                });
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the settings from any variable source (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let storage = storage(&env)?;
        let development = matches!(storage, StorageSettings::Memory);
        let settings = Self {
            bind_addr: env.parse_or("BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8000)))?,
            jwt: jwt(&env, development)?,
            bcrypt_cost: env.bounded("BCRYPT_COST", 12, 4..=31)?,
            admin: admin(&env, development)?,
            lock: lock(&env)?,
            max_purchase_quantity: env.bounded(
                "MAX_PURCHASE_QUANTITY",
                100,
                1..=MAX_PURCHASE_QUANTITY_LIMIT,
            )?,
            purchase_batch_max: env.bounded(
                "PURCHASE_BATCH_MAX",
                DEFAULT_PURCHASE_BATCH_MAX,
                NonZeroUsize::MIN..=PURCHASE_BATCH_MAX_LIMIT,
            )?,
            throttle: throttle(&env)?,
            trusted_proxies: trusted_proxies(&env)?,
            shutdown: shutdown(&env)?,
            log_format: log_format(&env)?,
            storage,
        };
        settings.check_timeouts()?;
        Ok(settings)
    }

    /// True in the in-memory development mode.
    pub fn is_development(&self) -> bool {
        matches!(self.storage, StorageSettings::Memory)
    }

    /// Timeouts that only work together:
    ///
    /// * a lease must outlast the two Redis round trips a purchase makes under it (the
    ///   acquisition and the guarded write), each of which may take up to
    ///   `REDIS_RESPONSE_TIMEOUT_MS`: otherwise a slow but successful reply hands over a
    ///   lease that has already expired;
    /// * a purchase that starts waiting for its lock just before the listener closes must
    ///   be able to wait, take the lock and finish within the shutdown grace, or shutdown
    ///   cuts it off.
    ///
    /// A wait shorter than the lease is allowed: when a holder dies, waiters then answer
    /// 503 + Retry-After until its lease runs out instead of queueing behind it.
    fn check_timeouts(&self) -> Result<(), ConfigError> {
        if let StorageSettings::Redis(redis) = &self.storage
            && self.lock.ttl <= redis.response_timeout * 2
        {
            return Err(invalid(
                "LOCK_TTL_MS",
                format!(
                    "must be more than twice REDIS_RESPONSE_TIMEOUT_MS ({} ms): a lease has to \
                     outlast the acquisition and the guarded write, each of which may take \
                     that long (got {} ms)",
                    redis.response_timeout.as_millis(),
                    self.lock.ttl.as_millis()
                ),
            ));
        }
        let needed = self.lock.wait_timeout + self.lock.ttl;
        if needed > self.shutdown.grace {
            return Err(invalid(
                "LOCK_WAIT_TIMEOUT_MS",
                format!(
                    "LOCK_WAIT_TIMEOUT_MS + LOCK_TTL_MS ({} ms) must not exceed \
                     SHUTDOWN_GRACE_SECONDS ({} s): a purchase that starts waiting as \
                     shutdown begins must be able to finish within the grace",
                    needed.as_millis(),
                    self.shutdown.grace.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// The variable source, with the rules every variable shares.
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value of `name`; set-but-blank is an error, never "unset".
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.0)(name) {
            Some(value) if value.trim().is_empty() => Err(ConfigError::Empty { name }),
            value => Ok(value),
        }
    }

    fn is_set(&self, name: &str) -> bool {
        (self.0)(name).is_some()
    }

    /// Parses `name` (trimmed) or returns `default`. Only for non-secret variables: the
    /// error quotes the value.
    fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name)? {
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| invalid(name, format!("{e} (got {raw:?})"))),
            None => Ok(default),
        }
    }

    /// An integer in `range`, or `default`.
    fn bounded<T>(
        &self,
        name: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(invalid(
                name,
                format!(
                    "must be between {} and {} (got {value})",
                    range.start(),
                    range.end()
                ),
            ))
        }
    }

    /// Milliseconds in `range`, or `default`.
    fn millis(
        &self,
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default, range)
            .map(Duration::from_millis)
    }

    /// Seconds in `range`, or `default`.
    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default, range).map(Duration::from_secs)
    }

    /// A comma-separated list of Redis URLs (secrets: never echoed). Empty items are
    /// refused rather than skipped: `a,,b` is a typo, not two nodes.
    fn redis_urls(&self, name: &'static str) -> Result<Vec<SecretString>, ConfigError> {
        let Some(raw) = self.get(name)? else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(str::trim)
            .map(|url| {
                if url.is_empty() {
                    return Err(invalid(name, "an item of the list is empty".into()));
                }
                check_redis_url(name, url)?;
                Ok(SecretString::from(url.to_owned()))
            })
            .collect()
    }
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

/// `REDIS_URL`, `REDIS_CLUSTER_NODES`, `LOCK_MODE`, `REDLOCK_NODES`,
/// `REDLOCK_FSYNC_ALWAYS`, `REDIS_RESPONSE_TIMEOUT_MS`, `REDIS_POOL_SIZE`.
fn storage<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<StorageSettings, ConfigError> {
    let url = match env.get("REDIS_URL")? {
        Some(url) => {
            let url = url.trim().to_owned();
            check_redis_url("REDIS_URL", &url)?;
            Some(SecretString::from(url))
        }
        None => None,
    };
    let cluster_nodes = env.redis_urls("REDIS_CLUSTER_NODES")?;
    if url.is_some() && !cluster_nodes.is_empty() {
        return Err(invalid(
            "REDIS_CLUSTER_NODES",
            "set either REDIS_URL or REDIS_CLUSTER_NODES, not both".into(),
        ));
    }
    if url.is_none() && cluster_nodes.is_empty() {
        // Development mode. A Redis-only variable here means the operator expected Redis:
        // better to stop than to run on memory without them noticing.
        if let Some(name) = REDIS_ONLY.into_iter().find(|name| env.is_set(name)) {
            return Err(invalid(
                name,
                format!(
                    "{name} is set but neither REDIS_URL nor REDIS_CLUSTER_NODES is, so the \
                     server would run in the in-memory development mode, where {name} means \
                     nothing: set REDIS_URL, or unset {name}"
                ),
            ));
        }
        return Ok(StorageSettings::Memory);
    }

    let lock_mode = match env.get("LOCK_MODE")?.as_deref().map(str::trim) {
        None | Some("single") => LockMode::Single,
        Some("redlock") => LockMode::Redlock,
        Some(other) => {
            return Err(invalid(
                "LOCK_MODE",
                format!("expected `single` or `redlock`, got {other:?}"),
            ));
        }
    };
    let redlock_nodes = env.redis_urls("REDLOCK_NODES")?;
    check_redlock_nodes(lock_mode, &redlock_nodes)?;
    let redlock_fsync_always = env.parse_or("REDLOCK_FSYNC_ALWAYS", false)?;
    if env.is_set("REDLOCK_FSYNC_ALWAYS") && lock_mode != LockMode::Redlock {
        return Err(invalid(
            "REDLOCK_FSYNC_ALWAYS",
            "is only used with LOCK_MODE=redlock (LOCK_MODE is single)".into(),
        ));
    }
    let redlock_node_timeout = match env.is_set("REDLOCK_NODE_TIMEOUT_MS") {
        true if lock_mode != LockMode::Redlock => {
            return Err(invalid(
                "REDLOCK_NODE_TIMEOUT_MS",
                "is only used with LOCK_MODE=redlock (LOCK_MODE is single)".into(),
            ));
        }
        true => Some(env.millis("REDLOCK_NODE_TIMEOUT_MS", 50, 1..=10_000)?),
        false => None,
    };
    Ok(StorageSettings::Redis(RedisConfig {
        url,
        cluster_nodes,
        lock_mode,
        redlock_nodes,
        redlock_fsync_always,
        redlock_node_timeout,
        response_timeout: env.millis("REDIS_RESPONSE_TIMEOUT_MS", 2000, 10..=60_000)?,
        pool_size: env.bounded("REDIS_POOL_SIZE", 32, 1..=1024)?,
    }))
}

fn check_redlock_nodes(mode: LockMode, nodes: &[SecretString]) -> Result<(), ConfigError> {
    match mode {
        LockMode::Single if !nodes.is_empty() => Err(invalid(
            "REDLOCK_NODES",
            "is only used with LOCK_MODE=redlock (LOCK_MODE is single)".into(),
        )),
        LockMode::Single => Ok(()),
        LockMode::Redlock if nodes.is_empty() => Err(ConfigError::Missing {
            name: "REDLOCK_NODES",
            reason: "LOCK_MODE=redlock needs the independent lock nodes (at least 3, typically 5)",
        }),
        LockMode::Redlock if nodes.len() < MIN_REDLOCK_NODES => Err(invalid(
            "REDLOCK_NODES",
            format!(
                "LOCK_MODE=redlock needs at least {MIN_REDLOCK_NODES} independent lock nodes \
                 (typically 5), got {}: with fewer, losing one node loses the quorum",
                nodes.len()
            ),
        )),
        LockMode::Redlock => {
            let mut seen = std::collections::HashSet::new();
            if nodes.iter().all(|node| seen.insert(node.expose_secret())) {
                Ok(())
            } else {
                Err(invalid(
                    "REDLOCK_NODES",
                    "lists the same node twice: a quorum must be of independent nodes".into(),
                ))
            }
        }
    }
}

/// Checks the shape of a Redis URL without ever echoing it (it may hold a password).
fn check_redis_url(name: &'static str, raw: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(raw)
        .map_err(|e| invalid(name, format!("not a URL ({e}); expected redis://host:port")))?;
    match url.scheme() {
        "redis" | "rediss" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "redis" | "rediss" => Err(invalid(name, "the URL has no host".into())),
        "unix" | "redis+unix" => Ok(()),
        _ => Err(invalid(
            name,
            "expected a redis://, rediss:// or unix:// URL".into(),
        )),
    }
}

/// `JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_TTL_SECONDS`.
fn jwt<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    development: bool,
) -> Result<JwtSettings, ConfigError> {
    let (secret, secret_generated) = match env.get("JWT_SECRET")? {
        Some(secret) if secret.len() >= MIN_JWT_SECRET_BYTES => (secret.into(), false),
        Some(secret) => {
            return Err(invalid(
                "JWT_SECRET",
                format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes (got {})",
                    secret.len()
                ),
            ));
        }
        None if development => (random_secret(48).into(), true),
        None => {
            return Err(ConfigError::Missing {
                name: "JWT_SECRET",
                reason: "an HS256 secret of at least 32 bytes is required with Redis",
            });
        }
    };
    Ok(JwtSettings {
        secret,
        secret_generated,
        issuer: env.get("JWT_ISSUER")?.unwrap_or_else(|| "lockstock".into()),
        audience: env
            .get("JWT_AUDIENCE")?
            .unwrap_or_else(|| "lockstock-api".into()),
        ttl: env.seconds("JWT_TTL_SECONDS", 900, 1..=86_400)?,
    })
}

/// `ADMIN_USERNAME`, `ADMIN_PASSWORD`.
fn admin<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    development: bool,
) -> Result<AdminSettings, ConfigError> {
    let username = env.get("ADMIN_USERNAME")?.unwrap_or_else(|| "admin".into());
    let username = Username::parse(username).map_err(|e| invalid("ADMIN_USERNAME", e.message))?;
    let (password, password_generated) = match env.get("ADMIN_PASSWORD")? {
        Some(p) => {
            Password::parse(p.clone()).map_err(|e| invalid("ADMIN_PASSWORD", e.message))?;
            (Some(SecretString::from(p)), false)
        }
        None if development => (Some(random_secret(18).into()), true),
        None => (None, false),
    };
    Ok(AdminSettings {
        username,
        password,
        password_generated,
    })
}

/// `LOCK_TTL_MS`, `LOCK_WAIT_TIMEOUT_MS`.
fn lock<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<LockSettings, ConfigError> {
    Ok(LockSettings {
        ttl: env.millis("LOCK_TTL_MS", 5000, 10..=600_000)?,
        wait_timeout: env.millis("LOCK_WAIT_TIMEOUT_MS", 3000, 0..=600_000)?,
    })
}

/// `LOGIN_FAILURES_PER_USERNAME`, `LOGIN_FAILURES_PER_ADDRESS`,
/// `LOGIN_THROTTLE_WINDOW_SECONDS`, `REGISTRATIONS_PER_ADDRESS`,
/// `REGISTRATION_THROTTLE_WINDOW_SECONDS`.
fn throttle<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<ThrottleSettings, ConfigError> {
    Ok(ThrottleSettings {
        login_per_username: env.bounded("LOGIN_FAILURES_PER_USERNAME", 5, 1..=1000)?,
        login_per_address: env.bounded("LOGIN_FAILURES_PER_ADDRESS", 50, 1..=1_000_000)?,
        login_window: env.seconds("LOGIN_THROTTLE_WINDOW_SECONDS", 300, 1..=86_400)?,
        registrations_per_address: env.bounded("REGISTRATIONS_PER_ADDRESS", 1000, 1..=1_000_000)?,
        registration_window: env.seconds(
            "REGISTRATION_THROTTLE_WINDOW_SECONDS",
            3600,
            1..=86_400,
        )?,
    })
}

/// `TRUSTED_PROXIES`.
fn trusted_proxies<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<TrustedProxies, ConfigError> {
    match env.get("TRUSTED_PROXIES")? {
        Some(raw) => {
            TrustedProxies::parse(&raw).map_err(|reason| invalid("TRUSTED_PROXIES", reason))
        }
        None => Ok(TrustedProxies::none()),
    }
}

/// `READY_DRAIN_MS`, `SHUTDOWN_GRACE_SECONDS`.
fn shutdown<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<ShutdownSettings, ConfigError> {
    Ok(ShutdownSettings {
        ready_drain: env.millis("READY_DRAIN_MS", 5000, 0..=300_000)?,
        grace: env.seconds("SHUTDOWN_GRACE_SECONDS", 30, 1..=3600)?,
    })
}

/// `LOG_FORMAT`.
fn log_format<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<LogFormat, ConfigError> {
    match env.get("LOG_FORMAT")?.as_deref().map(str::trim) {
        None | Some("pretty") => Ok(LogFormat::Pretty),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid(
            "LOG_FORMAT",
            format!("expected `json` or `pretty`, got {other:?}"),
        )),
    }
}

/// A random alphanumeric secret of `len` characters from the OS generator.
fn random_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NODES: &str = "redis://l1:6379,redis://l2:6379,redis://l3:6379";

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    /// Redis mode with a secret, plus `vars`.
    fn redis(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut all = vec![
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("JWT_SECRET", SECRET),
        ];
        all.extend_from_slice(vars);
        settings(&all)
    }

    /// The variable an error names; also checks that its message names it.
    fn refused(result: Result<Settings, ConfigError>) -> &'static str {
        match result {
            Err(e) => {
                assert!(e.to_string().contains(e.variable()), "{e}");
                e.variable()
            }
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn defaults_are_development_mode() {
        let s = settings(&[]).unwrap();
        assert!(s.is_development());
        assert_eq!(s.bind_addr.to_string(), "0.0.0.0:8000");
        assert!(s.jwt.secret_generated);
        assert!(s.jwt.secret.expose_secret().len() >= MIN_JWT_SECRET_BYTES);
        assert!(s.admin.password_generated);
        assert_eq!(s.admin.username.as_str(), "admin");
        assert_eq!(s.bcrypt_cost, 12);
        assert_eq!(s.jwt.ttl, Duration::from_secs(900));
        assert_eq!(s.lock.ttl, Duration::from_millis(5000));
        assert_eq!(s.lock.wait_timeout, Duration::from_millis(3000));
        assert_eq!(s.max_purchase_quantity, 100);
        assert_eq!(s.purchase_batch_max.get(), 64);
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert_eq!(
            (s.jwt.issuer.as_str(), s.jwt.audience.as_str()),
            ("lockstock", "lockstock-api")
        );
        assert_eq!(
            s.throttle,
            ThrottleSettings {
                login_per_username: 5,
                login_per_address: 50,
                login_window: Duration::from_secs(300),
                registrations_per_address: 1000,
                registration_window: Duration::from_secs(3600),
            }
        );
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(
            s.shutdown,
            ShutdownSettings {
                ready_drain: Duration::from_millis(5000),
                grace: Duration::from_secs(30),
            }
        );
    }

    #[test]
    fn redis_mode_requires_a_secret() {
        assert_eq!(
            refused(settings(&[("REDIS_URL", "redis://127.0.0.1:6379")])),
            "JWT_SECRET"
        );
        let s = redis(&[]).unwrap();
        assert!(!s.is_development());
        assert!(s.admin.password.is_none());
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("BIND_ADDR", "nowhere"),
            ("JWT_SECRET", "short"),
            ("BCRYPT_COST", "3"),
            ("BCRYPT_COST", "32"),
            ("BCRYPT_COST", "twelve"),
            ("JWT_TTL_SECONDS", "0"),
            ("LOCK_TTL_MS", "-5"),
            ("LOCK_WAIT_TIMEOUT_MS", "x"),
            ("MAX_PURCHASE_QUANTITY", "0"),
            ("PURCHASE_BATCH_MAX", "0"),
            ("PURCHASE_BATCH_MAX", "1025"),
            ("PURCHASE_BATCH_MAX", "many"),
            ("LOG_FORMAT", "xml"),
            ("ADMIN_USERNAME", "a b"),
            ("ADMIN_PASSWORD", "short"),
            ("REDIS_URL", "http://x"),
            ("REDIS_URL", "redis://"),
            ("REDIS_URL", "not a url"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,proxy"),
            ("LOGIN_FAILURES_PER_USERNAME", "0"),
            ("LOGIN_FAILURES_PER_ADDRESS", "-1"),
            ("LOGIN_THROTTLE_WINDOW_SECONDS", "0"),
            ("REGISTRATIONS_PER_ADDRESS", "0"),
            ("REGISTRATION_THROTTLE_WINDOW_SECONDS", "86401"),
            ("READY_DRAIN_MS", "300001"),
            ("SHUTDOWN_GRACE_SECONDS", "0"),
        ] {
            assert_eq!(refused(settings(&[(name, value)])), name, "{name}={value}");
        }
        assert_eq!(refused(redis(&[("LOCK_MODE", "multi")])), "LOCK_MODE");
        assert_eq!(
            refused(redis(&[("REDIS_RESPONSE_TIMEOUT_MS", "5")])),
            "REDIS_RESPONSE_TIMEOUT_MS"
        );
        assert_eq!(
            refused(redis(&[("REDIS_POOL_SIZE", "0")])),
            "REDIS_POOL_SIZE"
        );
    }

    #[test]
    fn set_but_empty_is_refused_not_taken_for_unset() {
        // An empty REDIS_URL must not quietly mean the in-memory development mode.
        for value in ["", "  "] {
            let err = settings(&[("REDIS_URL", value)]).unwrap_err();
            assert!(
                matches!(err, ConfigError::Empty { name: "REDIS_URL" }),
                "{err}"
            );
        }
        for name in [
            "JWT_SECRET",
            "ADMIN_PASSWORD",
            "BIND_ADDR",
            "TRUSTED_PROXIES",
            "LOG_FORMAT",
        ] {
            assert_eq!(refused(settings(&[(name, "")])), name);
        }
    }

    #[test]
    fn redis_only_variables_without_a_data_store_are_refused() {
        for (name, value) in [
            ("LOCK_MODE", "single"),
            ("LOCK_MODE", "redlock"),
            ("REDLOCK_NODES", NODES),
            ("REDLOCK_FSYNC_ALWAYS", "true"),
            ("REDIS_RESPONSE_TIMEOUT_MS", "2000"),
            ("REDIS_POOL_SIZE", "8"),
        ] {
            let err = settings(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable(), name);
            assert!(err.to_string().contains("REDIS_URL"), "{err}");
        }
        // The same variables are fine with a data store.
        assert!(redis(&[("LOCK_MODE", "single"), ("REDIS_POOL_SIZE", "8")]).is_ok());
    }

    #[test]
    fn redlock_needs_three_distinct_nodes() {
        assert_eq!(refused(redis(&[("LOCK_MODE", "redlock")])), "REDLOCK_NODES");
        let two = "redis://l1:6379,redis://l2:6379";
        let err = redis(&[("LOCK_MODE", "redlock"), ("REDLOCK_NODES", two)]).unwrap_err();
        assert_eq!(err.variable(), "REDLOCK_NODES");
        assert!(err.to_string().contains("at least 3"), "{err}");
        let twice = "redis://l1:6379,redis://l2:6379,redis://l1:6379";
        assert_eq!(
            refused(redis(&[("LOCK_MODE", "redlock"), ("REDLOCK_NODES", twice)])),
            "REDLOCK_NODES"
        );
        let gap = "redis://l1:6379,,redis://l2:6379,redis://l3:6379";
        assert_eq!(
            refused(redis(&[("LOCK_MODE", "redlock"), ("REDLOCK_NODES", gap)])),
            "REDLOCK_NODES"
        );
        let http = "redis://l1:6379,http://l2:6379,redis://l3:6379";
        assert_eq!(
            refused(redis(&[("LOCK_MODE", "redlock"), ("REDLOCK_NODES", http)])),
            "REDLOCK_NODES"
        );
        // Nodes without redlock mode are a contradiction, not something to ignore.
        assert_eq!(refused(redis(&[("REDLOCK_NODES", NODES)])), "REDLOCK_NODES");

        let s = redis(&[("LOCK_MODE", "redlock"), ("REDLOCK_NODES", NODES)]).unwrap();
        let StorageSettings::Redis(config) = s.storage else {
            panic!("not Redis mode");
        };
        assert_eq!(config.lock_mode, LockMode::Redlock);
        assert_eq!(config.redlock_nodes.len(), 3);
        assert!(
            !config.redlock_fsync_always,
            "nodes are not durable unless declared"
        );
    }

    #[test]
    fn lock_nodes_are_declared_fsync_always_explicitly() {
        let redlock = |value| {
            redis(&[
                ("LOCK_MODE", "redlock"),
                ("REDLOCK_NODES", NODES),
                ("REDLOCK_FSYNC_ALWAYS", value),
            ])
        };
        for (value, expected) in [("true", true), ("false", false), (" true ", true)] {
            let StorageSettings::Redis(config) = redlock(value).unwrap().storage else {
                panic!("not Redis mode");
            };
            assert_eq!(config.redlock_fsync_always, expected, "{value:?}");
        }
        for value in ["yes", "1", "TRUE!"] {
            assert_eq!(refused(redlock(value)), "REDLOCK_FSYNC_ALWAYS", "{value:?}");
        }
        // A durability promise about lock nodes without lock nodes is a mistake.
        assert_eq!(
            refused(redis(&[("REDLOCK_FSYNC_ALWAYS", "true")])),
            "REDLOCK_FSYNC_ALWAYS"
        );
    }

    #[test]
    fn the_redlock_node_timeout_is_optional_bounded_and_redlock_only() {
        let redlock = |value| {
            redis(&[
                ("LOCK_MODE", "redlock"),
                ("REDLOCK_NODES", NODES),
                ("REDLOCK_NODE_TIMEOUT_MS", value),
            ])
        };
        let StorageSettings::Redis(config) = redlock("500").unwrap().storage else {
            panic!("not Redis mode");
        };
        assert_eq!(
            config.redlock_node_timeout,
            Some(Duration::from_millis(500))
        );
        let StorageSettings::Redis(config) =
            redis(&[("LOCK_MODE", "redlock"), ("REDLOCK_NODES", NODES)])
                .unwrap()
                .storage
        else {
            panic!("not Redis mode");
        };
        assert_eq!(config.redlock_node_timeout, None, "the lock's default");
        for value in ["0", "10001", "fast"] {
            assert_eq!(
                refused(redlock(value)),
                "REDLOCK_NODE_TIMEOUT_MS",
                "{value:?}"
            );
        }
        assert_eq!(
            refused(redis(&[("REDLOCK_NODE_TIMEOUT_MS", "500")])),
            "REDLOCK_NODE_TIMEOUT_MS"
        );
    }

    #[test]
    fn timeouts_are_checked_against_each_other() {
        // The lease must outlast two replies at the slowest tolerated reply time.
        let err = redis(&[("LOCK_TTL_MS", "4000")]).unwrap_err();
        assert_eq!(err.variable(), "LOCK_TTL_MS");
        assert!(
            err.to_string().contains("REDIS_RESPONSE_TIMEOUT_MS"),
            "{err}"
        );
        assert!(redis(&[("LOCK_TTL_MS", "4001")]).is_ok());
        assert!(redis(&[("LOCK_TTL_MS", "300"), ("REDIS_RESPONSE_TIMEOUT_MS", "100")]).is_ok());
        // Without Redis there are no replies to wait for.
        assert!(settings(&[("LOCK_TTL_MS", "100")]).is_ok());

        // Wait + lease must fit in the shutdown grace.
        let err = settings(&[("LOCK_WAIT_TIMEOUT_MS", "25001")]).unwrap_err();
        assert_eq!(err.variable(), "LOCK_WAIT_TIMEOUT_MS");
        for name in ["LOCK_TTL_MS", "SHUTDOWN_GRACE_SECONDS"] {
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(settings(&[("LOCK_WAIT_TIMEOUT_MS", "25000")]).is_ok());
        assert!(
            settings(&[
                ("LOCK_WAIT_TIMEOUT_MS", "30000"),
                ("SHUTDOWN_GRACE_SECONDS", "35")
            ])
            .is_ok()
        );
        // A wait shorter than the lease is a legitimate choice.
        assert!(settings(&[("LOCK_WAIT_TIMEOUT_MS", "0"), ("LOCK_TTL_MS", "20000")]).is_ok());
    }

    #[test]
    fn errors_never_echo_secrets() {
        let err = settings(&[("JWT_SECRET", "tooshort-secret")]).unwrap_err();
        assert!(!err.to_string().contains("tooshort-secret"));
        let err = settings(&[("ADMIN_PASSWORD", "pw")]).unwrap_err();
        assert!(!err.to_string().contains("pw\""));
        for url in [
            "http://user:hunter2@x",
            "redis://:hunter2@",
            "redis://:hunter2@h:port",
        ] {
            let err = settings(&[("REDIS_URL", url)]).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn explicit_values_are_used() {
        let s = settings(&[
            ("BIND_ADDR", "127.0.0.1:0"),
            ("BCRYPT_COST", "4"),
            ("ADMIN_PASSWORD", "correct horse"),
            ("MAX_PURCHASE_QUANTITY", "5"),
            ("PURCHASE_BATCH_MAX", "1"),
            ("LOG_FORMAT", "json"),
            ("LOCK_WAIT_TIMEOUT_MS", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("LOGIN_FAILURES_PER_USERNAME", "3"),
            ("REGISTRATIONS_PER_ADDRESS", "7"),
            ("READY_DRAIN_MS", "0"),
            ("SHUTDOWN_GRACE_SECONDS", "10"),
        ])
        .unwrap();
        assert_eq!(s.bind_addr.port(), 0);
        assert_eq!(s.bcrypt_cost, 4);
        assert_eq!(
            s.admin
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
            Some("correct horse".to_owned())
        );
        assert!(!s.admin.password_generated);
        assert_eq!(s.max_purchase_quantity, 5);
        assert_eq!(s.purchase_batch_max.get(), 1);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.lock.wait_timeout, Duration::ZERO);
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(s.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(s.throttle.login_per_username, 3);
        assert_eq!(s.throttle.registrations_per_address, 7);
        assert_eq!(s.shutdown.ready_drain, Duration::ZERO);
        assert_eq!(s.shutdown.grace, Duration::from_secs(10));
    }
}
