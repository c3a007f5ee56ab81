//! Buyer tokens kept between runs, so repeated runs skip the (deliberately slow) bcrypt
//! registrations and logins. The file holds credentials: it is written with mode 0600.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Lifetime assumed when the server does not announce `expires_in` (SPEC default).
const DEFAULT_TTL_SECONDS: u64 = 900;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenCache {
    base_url: String,
    tokens: BTreeMap<String, CachedToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedToken {
    token: String,
    /// Unix seconds.
    expires_at: u64,
}

impl TokenCache {
    pub(crate) fn empty(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            tokens: BTreeMap::new(),
        }
    }

    /// The cache in `path` if it exists and belongs to `base_url`; otherwise an empty one.
    pub(crate) fn load(path: &Path, base_url: &str) -> anyhow::Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::empty(base_url));
            }
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let cache: Self = serde_json::from_str(&text).unwrap_or_else(|_| Self::empty(base_url));
        Ok(if cache.base_url == base_url {
            cache
        } else {
            Self::empty(base_url)
        })
    }

    /// Writes the cache atomically (temporary file, then rename) with mode 0600.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let temporary = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(self)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        file.write_all(&text)?;
        file.sync_all()?;
        fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
    }

    /// The token of `username` if it stays valid for at least `margin` after `now`.
    pub(crate) fn fresh(&self, username: &str, now: u64, margin: Duration) -> Option<&str> {
        let entry = self.tokens.get(username)?;
        (entry.expires_at > now.saturating_add(margin.as_secs())).then_some(entry.token.as_str())
    }

    pub(crate) fn insert(
        &mut self,
        username: &str,
        token: String,
        expires_in: Option<u64>,
        now: u64,
    ) {
        let expires_at = now.saturating_add(expires_in.unwrap_or(DEFAULT_TTL_SECONDS));
        self.tokens
            .insert(username.to_owned(), CachedToken { token, expires_at });
    }

    pub(crate) fn clear(&mut self) {
        self.tokens.clear();
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_valid_past_the_margin_are_fresh() {
        let mut cache = TokenCache::empty("http://x");
        cache.insert("a", "ta".to_owned(), Some(100), 1_000);
        cache.insert("b", "tb".to_owned(), None, 1_000);
        assert_eq!(cache.fresh("a", 1_000, Duration::from_secs(99)), Some("ta"));
        assert_eq!(cache.fresh("a", 1_000, Duration::from_secs(100)), None);
        assert_eq!(
            cache.fresh("b", 1_000, Duration::from_secs(899)),
            Some("tb")
        );
        assert_eq!(cache.fresh("c", 1_000, Duration::ZERO), None);
    }

    #[test]
    fn a_cache_round_trips_and_belongs_to_one_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        assert_eq!(
            TokenCache::load(&path, "http://x").unwrap(),
            TokenCache::empty("http://x")
        );
        let mut cache = TokenCache::empty("http://x");
        cache.insert("a", "ta".to_owned(), Some(100), 1_000);
        cache.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert_eq!(TokenCache::load(&path, "http://x").unwrap(), cache);
        assert_eq!(
            TokenCache::load(&path, "http://y").unwrap(),
            TokenCache::empty("http://y")
        );
    }
}
