//! Login throttling: counts FAILED attempts per username and per client address in a
//! fixed window. Successful logins are never counted, so many users behind one address
//! (or a load test from 127.0.0.1) are not locked out.
//!
//! Per process: with several replicas an attacker gets `replicas ×` the budget, which is
//! still far from useful brute force against bcrypt.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Limits of the throttle.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failed attempts allowed per username per window.
    pub per_username: u32,
    /// Failed attempts allowed per client address per window.
    pub per_address: u32,
    /// Window length.
    pub window: Duration,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            per_username: 5,
            per_address: 50,
            window: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Username(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Entries beyond which expired windows are swept.
const SWEEP_THRESHOLD: usize = 10_000;
/// Usernames are keyed by at most this many bytes (longer ones are invalid anyway).
const MAX_KEY_LEN: usize = 64;

/// The throttle.
pub struct LoginThrottle {
    limits: ThrottleLimits,
    windows: Mutex<HashMap<Key, Window>>,
}

impl LoginThrottle {
    /// A throttle with these limits.
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
        let mut name = username.to_owned();
        if name.len() > MAX_KEY_LEN {
            let mut cut = MAX_KEY_LEN;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        std::iter::once(Key::Username(name)).chain(address.map(Key::Address))
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::Username(_) => self.limits.per_username,
            Key::Address(_) => self.limits.per_address,
        }
    }

    /// `Err(retry_after)` when the username or the address used up its failures.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wait = None;
        for key in Self::keys(username, address) {
            if let Some(w) = windows.get(&key) {
                let elapsed = now.duration_since(w.started);
                if elapsed < self.limits.window && w.failures >= self.limit(&key) {
                    let left = self.limits.window - elapsed;
                    wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed attempt against the username and the address.
    pub fn record_failure(&self, username: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() > SWEEP_THRESHOLD {
            let window = self.limits.window;
            windows.retain(|_, w| now.duration_since(w.started) < window);
        }
        for key in Self::keys(username, address) {
            let w = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(w.started) >= self.limits.window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// A successful login clears the username's failures (not the address's).
    pub fn record_success(&self, username: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for key in Self::keys(username, None) {
            windows.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleLimits {
            per_username: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn blocks_a_username_after_its_failures() {
        let t = throttle();
        for _ in 0..3 {
            assert!(t.check("alice", ADDR).is_ok());
            t.record_failure("alice", ADDR);
        }
        let wait = t.check("alice", ADDR).unwrap_err();
        assert!(wait > Duration::from_secs(50));
        assert!(t.check("bob", ADDR).is_ok());
    }

    #[test]
    fn blocks_an_address_across_usernames() {
        let t = throttle();
        for i in 0..5 {
            t.record_failure(&format!("user{i}"), ADDR);
        }
        assert!(t.check("fresh", ADDR).is_err());
        assert!(t.check("fresh", None).is_ok());
    }

    #[test]
    fn successes_do_not_count() {
        let t = throttle();
        for _ in 0..1000 {
            assert!(t.check("alice", ADDR).is_ok());
            t.record_success("alice");
        }
        t.record_failure("alice", ADDR);
        t.record_failure("alice", ADDR);
        t.record_success("alice");
        t.record_failure("alice", ADDR);
        assert!(t.check("alice", ADDR).is_ok());
    }
}
