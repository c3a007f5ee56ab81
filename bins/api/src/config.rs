//! Typed settings from the environment (and `.env` when present), validated at start-up.
//!
//! Every variable of SPEC §5 is read here and nowhere else. A variable that is set but
//! invalid stops the start-up with an error naming it.

use std::{net::SocketAddr, num::NonZeroUsize, time::Duration};

use inventory_domain::{Password, Username};
use inventory_infra::redis::DEFAULT_PURCHASE_BATCH_MAX;
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};

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
    /// A variable is required in this mode but absent.
    #[error("{name} is required: {reason}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// Why it is required.
        reason: &'static str,
    },
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
    /// Most purchases of one product committed under one lock hold
    /// (`PURCHASE_BATCH_MAX`; 1 = no batching).
    pub purchase_batch_max: NonZeroUsize,
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
    /// Independent lock nodes (Redlock mode).
    pub redlock_nodes: Vec<SecretString>,
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
pub const PURCHASE_BATCH_MAX_LIMIT: u64 = 1024;

/// Largest `MAX_PURCHASE_QUANTITY` accepted (keeps totals far from overflow).
pub const MAX_PURCHASE_QUANTITY_LIMIT: u32 = 1_000_000;

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
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let bind_addr = parse_or(var("BIND_ADDR"), "BIND_ADDR", "0.0.0.0:8000".parse().ok())?;

        let redis_url = var("REDIS_URL").map(SecretString::from);
        let cluster_nodes = list(var("REDIS_CLUSTER_NODES"));
        let lock_mode = match var("LOCK_MODE").as_deref().map(str::trim) {
            None | Some("single") => LockMode::Single,
            Some("redlock") => LockMode::Redlock,
            Some(other) => {
                return Err(invalid(
                    "LOCK_MODE",
                    format!("expected `single` or `redlock`, got {other:?}"),
                ));
            }
        };
        let redlock_nodes = list(var("REDLOCK_NODES"));
        for (name, urls) in [
            ("REDIS_URL", redis_url.iter().collect::<Vec<_>>()),
            ("REDIS_CLUSTER_NODES", cluster_nodes.iter().collect()),
            ("REDLOCK_NODES", redlock_nodes.iter().collect()),
        ] {
            for url in urls {
                check_redis_url(name, url.expose_secret())?;
            }
        }
        let development = redis_url.is_none() && cluster_nodes.is_empty();
        if redis_url.is_some() && !cluster_nodes.is_empty() {
            return Err(invalid(
                "REDIS_CLUSTER_NODES",
                "set either REDIS_URL or REDIS_CLUSTER_NODES, not both".into(),
            ));
        }
        if lock_mode == LockMode::Redlock && redlock_nodes.is_empty() && !development {
            return Err(ConfigError::Missing {
                name: "REDLOCK_NODES",
                reason: "LOCK_MODE=redlock needs the lock nodes",
            });
        }
        let response_timeout = Duration::from_millis(bounded(
            var("REDIS_RESPONSE_TIMEOUT_MS"),
            "REDIS_RESPONSE_TIMEOUT_MS",
            2000,
            10..=60_000,
        )?);
        let pool_size = usize::try_from(bounded(
            var("REDIS_POOL_SIZE"),
            "REDIS_POOL_SIZE",
            32,
            1..=1024,
        )?)
        .map_err(|e| invalid("REDIS_POOL_SIZE", e.to_string()))?;
        let storage = if development {
            StorageSettings::Memory
        } else {
            StorageSettings::Redis(RedisConfig {
                url: redis_url,
                cluster_nodes,
                lock_mode,
                redlock_nodes,
                response_timeout,
                pool_size,
            })
        };

        let (secret, secret_generated) = match var("JWT_SECRET") {
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
        let jwt = JwtSettings {
            secret,
            secret_generated,
            issuer: var("JWT_ISSUER").unwrap_or_else(|| "lockstock".into()),
            audience: var("JWT_AUDIENCE").unwrap_or_else(|| "lockstock-api".into()),
            ttl: Duration::from_secs(bounded(
                var("JWT_TTL_SECONDS"),
                "JWT_TTL_SECONDS",
                900,
                1..=86_400,
            )?),
        };

        let bcrypt_cost = u32::try_from(bounded(var("BCRYPT_COST"), "BCRYPT_COST", 12, 4..=31)?)
            .map_err(|e| invalid("BCRYPT_COST", e.to_string()))?;

        let username = var("ADMIN_USERNAME").unwrap_or_else(|| "admin".into());
        let username =
            Username::parse(username).map_err(|e| invalid("ADMIN_USERNAME", e.message))?;
        let (password, password_generated) = match var("ADMIN_PASSWORD") {
            Some(p) => {
                Password::parse(p.clone()).map_err(|e| invalid("ADMIN_PASSWORD", e.message))?;
                (Some(SecretString::from(p)), false)
            }
            None if development => (Some(random_secret(18).into()), true),
            None => (None, false),
        };
        let admin = AdminSettings {
            username,
            password,
            password_generated,
        };

        let lock = LockSettings {
            ttl: Duration::from_millis(bounded(
                var("LOCK_TTL_MS"),
                "LOCK_TTL_MS",
                5000,
                10..=600_000,
            )?),
            wait_timeout: Duration::from_millis(bounded(
                var("LOCK_WAIT_TIMEOUT_MS"),
                "LOCK_WAIT_TIMEOUT_MS",
                3000,
                0..=600_000,
            )?),
        };
        let max_purchase_quantity = u32::try_from(bounded(
            var("MAX_PURCHASE_QUANTITY"),
            "MAX_PURCHASE_QUANTITY",
            100,
            1..=u64::from(MAX_PURCHASE_QUANTITY_LIMIT),
        )?)
        .map_err(|e| invalid("MAX_PURCHASE_QUANTITY", e.to_string()))?;
        let purchase_batch_max = usize::try_from(bounded(
            var("PURCHASE_BATCH_MAX"),
            "PURCHASE_BATCH_MAX",
            DEFAULT_PURCHASE_BATCH_MAX.get() as u64,
            1..=PURCHASE_BATCH_MAX_LIMIT,
        )?)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| invalid("PURCHASE_BATCH_MAX", "must be a positive integer".into()))?;
        let log_format = match var("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("expected `json` or `pretty`, got {other:?}"),
                ));
            }
        };

        Ok(Self {
            bind_addr,
            storage,
            jwt,
            bcrypt_cost,
            admin,
            lock,
            max_purchase_quantity,
            purchase_batch_max,
            log_format,
        })
    }

    /// True in the in-memory development mode.
    pub fn is_development(&self) -> bool {
        matches!(self.storage, StorageSettings::Memory)
    }
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

fn parse_or<T: std::str::FromStr>(
    raw: Option<String>,
    name: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match raw {
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| invalid(name, format!("{e} (got {raw:?})"))),
        None => default.ok_or(ConfigError::Missing {
            name,
            reason: "no default",
        }),
    }
}

fn bounded(
    raw: Option<String>,
    name: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let value = parse_or(raw, name, Some(default))?;
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

fn list(raw: Option<String>) -> Vec<SecretString> {
    raw.map(|raw| {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn check_redis_url(name: &'static str, url: &str) -> Result<(), ConfigError> {
    // Only the scheme is checked here (the URL may hold a password: never echo it); the
    // Redis client validates the rest when connecting.
    if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") {
        Ok(())
    } else {
        Err(invalid(
            name,
            "expected a redis://, rediss:// or unix:// URL".into(),
        ))
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

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    fn invalid_name(result: Result<Settings, ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { name, .. } | ConfigError::Missing { name, .. }) => name,
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
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert_eq!(
            (s.jwt.issuer.as_str(), s.jwt.audience.as_str()),
            ("lockstock", "lockstock-api")
        );
    }

    #[test]
    fn redis_mode_requires_a_secret() {
        assert_eq!(
            invalid_name(settings(&[("REDIS_URL", "redis://127.0.0.1:6379")])),
            "JWT_SECRET"
        );
        let s = settings(&[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("JWT_SECRET", &"x".repeat(32)),
        ])
        .unwrap();
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
            ("PURCHASE_BATCH_MAX", "0"),
            ("PURCHASE_BATCH_MAX", "1025"),
            ("BCRYPT_COST", "twelve"),
            ("JWT_TTL_SECONDS", "0"),
            ("LOCK_TTL_MS", "-5"),
            ("LOCK_WAIT_TIMEOUT_MS", "x"),
            ("MAX_PURCHASE_QUANTITY", "0"),
            ("LOG_FORMAT", "xml"),
            ("LOCK_MODE", "multi"),
            ("ADMIN_USERNAME", "a b"),
            ("ADMIN_PASSWORD", "short"),
            ("REDIS_URL", "http://x"),
        ] {
            assert_eq!(
                invalid_name(settings(&[(name, value)])),
                name,
                "{name}={value}"
            );
        }
    }

    #[test]
    fn errors_never_echo_secrets() {
        let err = settings(&[("JWT_SECRET", "tooshort-secret")]).unwrap_err();
        assert!(!err.to_string().contains("tooshort-secret"));
        let err = settings(&[("ADMIN_PASSWORD", "pw")]).unwrap_err();
        assert!(!err.to_string().contains("pw\""));
    }

    #[test]
    fn explicit_values_are_used() {
        let s = settings(&[
            ("BIND_ADDR", "127.0.0.1:0"),
            ("BCRYPT_COST", "4"),
            ("ADMIN_PASSWORD", "correct horse"),
            ("MAX_PURCHASE_QUANTITY", "5"),
            ("LOG_FORMAT", "json"),
            ("LOCK_WAIT_TIMEOUT_MS", "0"),
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
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.lock.wait_timeout, Duration::ZERO);
    }
}
