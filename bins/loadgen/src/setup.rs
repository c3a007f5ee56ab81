//! Setup before a run: the admin's token, fresh products, and N logged-in buyers
//! (registered with bounded concurrency, since bcrypt is slow by design).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{Api, ApiError, Id, Registered};
use crate::token_cache::{TokenCache, unix_now};

/// Attempts of one setup call that failed transiently (429, 5xx, connection trouble).
const SETUP_ATTEMPTS: u32 = 6;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A buyer account ready to purchase.
#[derive(Debug, Clone)]
pub(crate) struct Buyer {
    pub(crate) username: String,
    pub(crate) token: String,
}

/// What `buyers` needs to know.
#[derive(Debug, Clone)]
pub(crate) struct BuyerPlan {
    pub(crate) prefix: String,
    pub(crate) password: String,
    pub(crate) count: usize,
    pub(crate) concurrency: usize,
    pub(crate) cache: Option<PathBuf>,
    /// How long cached tokens must still be valid to be reused.
    pub(crate) min_validity: Duration,
    pub(crate) progress: bool,
}

/// Username of buyer `index`.
pub(crate) fn username(prefix: &str, index: usize) -> String {
    format!("{prefix}_{index:05}")
}

/// Logs the admin in.
pub(crate) async fn admin_token(
    api: &Api,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let token = with_retries(|| api.login(username, password))
        .await
        .with_context(|| format!("logging in as admin `{username}`"))?;
    Ok(token.access_token)
}

/// Creates `count` products with a name unique to this run.
pub(crate) async fn create_products(
    api: &Api,
    admin_token: &str,
    scenario: &str,
    count: usize,
    price: u64,
    stock: u64,
) -> anyhow::Result<Vec<Id>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::with_capacity(count);
    for index in 0..count {
        let name = format!("loadgen-{scenario}-{}-{index}", &run[..12]);
        let id = with_retries(|| api.create_product(admin_token, &name, price, stock))
            .await
            .with_context(|| format!("creating product `{name}`"))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Logged-in buyers `0..plan.count`, from the token cache where possible.
pub(crate) async fn buyers(
    api: &Api,
    base_url: &str,
    plan: &BuyerPlan,
) -> anyhow::Result<Vec<Buyer>> {
    let mut cache = match &plan.cache {
        Some(path) => TokenCache::load(path, base_url)?,
        None => TokenCache::empty(base_url),
    };
    drop_cache_if_rejected(api, &mut cache, plan).await?;
    let now = unix_now();
    let names: Vec<String> = (0..plan.count)
        .map(|index| username(&plan.prefix, index))
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| cache.fresh(name, now, plan.min_validity).is_none())
        .collect();
    if !missing.is_empty() {
        enrol_all(api, plan, &missing, &mut cache).await?;
        if let Some(path) = &plan.cache {
            cache.save(path)?;
        }
    }
    names
        .into_iter()
        .map(|name| {
            let token = cache.fresh(&name, now, Duration::ZERO).map(str::to_owned);
            token
                .map(|token| Buyer {
                    username: name.clone(),
                    token,
                })
                .with_context(|| format!("no token for `{name}`"))
        })
        .collect()
}

/// A server restarted in development mode signs with a new key: cached tokens then fail.
async fn drop_cache_if_rejected(
    api: &Api,
    cache: &mut TokenCache,
    plan: &BuyerPlan,
) -> anyhow::Result<()> {
    let first = username(&plan.prefix, 0);
    if let Some(token) = cache.fresh(&first, unix_now(), plan.min_validity) {
        let valid = with_retries(|| api.token_is_valid(token))
            .await
            .context("checking a cached token")?;
        if !valid {
            cache.clear();
        }
    }
    Ok(())
}

async fn enrol_all(
    api: &Api,
    plan: &BuyerPlan,
    missing: &[&String],
    cache: &mut TokenCache,
) -> anyhow::Result<()> {
    let bar = progress_bar(
        plan.progress,
        missing.len(),
        "registering and logging in buyers",
    );
    let tokens: Vec<(String, crate::client::Token)> = stream::iter(missing.iter().copied())
        .map(|name| {
            let bar = &bar;
            async move {
                let token = enrol(api, name, &plan.password).await?;
                bar.inc(1);
                anyhow::Ok((name.clone(), token))
            }
        })
        .buffer_unordered(plan.concurrency.max(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();
    let now = unix_now();
    for (name, token) in tokens {
        cache.insert(&name, token.access_token, token.expires_in, now);
    }
    Ok(())
}

/// Registers `name` (or finds it registered) and logs it in.
async fn enrol(api: &Api, name: &str, password: &str) -> anyhow::Result<crate::client::Token> {
    let registered: Registered = with_retries(|| api.register(name, password))
        .await
        .with_context(|| format!("registering `{name}`"))?;
    let token = with_retries(|| api.login(name, password))
        .await
        .with_context(|| match registered {
            Registered::Created => format!("logging in `{name}`"),
            Registered::AlreadyExists => {
                format!(
                    "logging in `{name}` (it existed already: was it made with another password?)"
                )
            }
        })?;
    Ok(token)
}

/// A progress bar on stderr, or a hidden one.
pub(crate) fn progress_bar(visible: bool, length: usize, message: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// Runs `call` until it succeeds, fails for good, or `SETUP_ATTEMPTS` are spent; waits
/// what the server asks (Retry-After) or an exponential backoff between attempts.
/// Only for setup and read-back calls: purchases are never retried blindly.
pub(crate) async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if error.is_transient() && attempt + 1 < SETUP_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt, error.retry_after())).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Wait before retry `attempt` (0-based): the server's word if it gave one, else 100 ms
/// doubling, both capped.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(100).saturating_mul(1 << attempt.min(10)))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_stable_and_valid() {
        assert_eq!(username("lg", 7), "lg_00007");
        assert_eq!(username("lg", 123_456), "lg_123456");
    }

    #[test]
    fn backoff_honours_retry_after_and_is_capped() {
        assert_eq!(backoff(0, None), Duration::from_millis(100));
        assert_eq!(backoff(3, None), Duration::from_millis(800));
        assert_eq!(backoff(9, None), MAX_BACKOFF);
        assert_eq!(
            backoff(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(0, Some(Duration::from_secs(60))), MAX_BACKOFF);
    }
}
