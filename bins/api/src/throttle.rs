//! Login and registration throttling: fixed-window counters per username and per client
//! address.
//!
//! An attempt is counted when it is checked — before bcrypt runs — so concurrent guesses
//! cannot all pass the check while the first ones are still being verified. A login that
//! turns out to be right gives its count back (and clears the username's failures), so
//! successes never use up anybody's budget; a wrong one, or one whose client went away
//! mid-verification, stays counted. Registrations are counted and never given back: what
//! is limited is the bcrypt hash each of them costs.
//!
//! Per process: with several replicas an attacker gets `replicas ×` the budget, which is
//! still far from useful brute force against bcrypt.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Entries beyond which expired windows are swept.
const SWEEP_THRESHOLD: usize = 10_000;
/// Usernames are keyed by at most this many bytes (longer ones are invalid anyway).
const MAX_KEY_LEN: usize = 64;

/// A limit: `max` attempts per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed per window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    ends: Instant,
    count: u32,
}

/// Fixed-window counters, one per key.
struct Windows<K> {
    map: Mutex<HashMap<K, Window>>,
}

/// A charge taken from one key's window, to give back if the attempt succeeds.
#[derive(Debug, Clone)]
struct Charge<K> {
    key: K,
    window_started: Instant,
}

impl<K: Clone + Eq + Hash> Windows<K> {
    fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Charges every `(key, limit)` one attempt, or none of them: `Err(retry_after)` when
    /// any of them has used up its window.
    fn charge(&self, keys: &[(K, Limit)], now: Instant) -> Result<Vec<Charge<K>>, Duration> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > SWEEP_THRESHOLD {
            map.retain(|_, w| now < w.ends);
        }
        let mut wait: Option<Duration> = None;
        for (key, limit) in keys {
            if let Some(w) = map.get(key)
                && now < w.ends
                && w.count >= limit.max
            {
                let left = w.ends - now;
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        Ok(keys
            .iter()
            .map(|(key, limit)| {
                let fresh = Window {
                    started: now,
                    ends: now + limit.window,
                    count: 0,
                };
                let w = map.entry(key.clone()).or_insert(fresh);
                if now >= w.ends {
                    *w = fresh;
                }
                w.count += 1;
                Charge {
                    key: key.clone(),
                    window_started: w.started,
                }
            })
            .collect())
    }

    /// Gives a charge back, unless its window has been replaced since.
    fn refund(&self, charge: &Charge<K>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = map.get_mut(&charge.key)
            && w.started == charge.window_started
        {
            w.count = w.count.saturating_sub(1);
        }
    }

    /// Forgets a key's window.
    fn clear(&self, key: &K) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LoginKey {
    Username(String),
    Address(IpAddr),
}

/// The login throttle: failed attempts per username and per client address.
pub struct LoginThrottle {
    per_username: Limit,
    per_address: Limit,
    windows: Windows<LoginKey>,
}

/// A login attempt that passed the throttle and is counted. Call
/// [`LoginAttempt::succeeded`] when the credentials were right; dropping it keeps it
/// counted as a failure.
#[must_use = "a login attempt stays counted as a failure unless `succeeded` is called"]
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    charges: Vec<Charge<LoginKey>>,
}

impl LoginThrottle {
    /// A throttle with these limits.
    pub fn new(per_username: Limit, per_address: Limit) -> Self {
        Self {
            per_username,
            per_address,
            windows: Windows::new(),
        }
    }

    /// Counts an attempt for `username` from `address`, or `Err(retry_after)` when either
    /// has used up its failures.
    pub fn attempt(
        &self,
        username: &str,
        address: Option<IpAddr>,
    ) -> Result<LoginAttempt<'_>, Duration> {
        let mut keys = vec![(
            LoginKey::Username(username_key(username)),
            self.per_username,
        )];
        if let Some(address) = address {
            keys.push((LoginKey::Address(address_key(address)), self.per_address));
        }
        let charges = self.windows.charge(&keys, Instant::now())?;
        Ok(LoginAttempt {
            throttle: self,
            charges,
        })
    }
}

impl LoginAttempt<'_> {
    /// The credentials were right: the attempt is given back and the username's earlier
    /// failures are forgotten (not the address's: one address can hold many users).
    pub fn succeeded(self) {
        for charge in &self.charges {
            match &charge.key {
                key @ LoginKey::Username(_) => self.throttle.windows.clear(key),
                LoginKey::Address(_) => self.throttle.windows.refund(charge),
            }
        }
    }
}

/// The registration throttle: registrations per client address.
pub struct RegistrationThrottle {
    per_address: Limit,
    windows: Windows<IpAddr>,
}

impl RegistrationThrottle {
    /// A throttle with this limit.
    pub fn new(per_address: Limit) -> Self {
        Self {
            per_address,
            windows: Windows::new(),
        }
    }

    /// Counts a registration from `address`, or `Err(retry_after)` when the address has
    /// used up its window. Requests without a known address are not limited.
    pub fn attempt(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        match address {
            Some(address) => self
                .windows
                .charge(&[(address_key(address), self.per_address)], Instant::now())
                .map(drop),
            None => Ok(()),
        }
    }
}

fn username_key(username: &str) -> String {
    let mut name = username.to_owned();
    if name.len() > MAX_KEY_LEN {
        let mut cut = MAX_KEY_LEN;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

/// IPv6 clients are keyed by their /64: one host usually holds a whole /64, and keying by
/// single addresses would hand it 2^64 budgets.
fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn limit(max: u32) -> Limit {
        Limit {
            max,
            window: Duration::from_secs(60),
        }
    }

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(limit(3), limit(5))
    }

    #[test]
    fn blocks_a_username_after_its_failures() {
        let t = throttle();
        for _ in 0..3 {
            drop(t.attempt("alice", ADDR).unwrap());
        }
        let wait = t.attempt("alice", ADDR).err().unwrap();
        assert!(wait > Duration::from_secs(50));
        assert!(t.attempt("bob", ADDR).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_before_their_outcome_is_known() {
        let t = throttle();
        // Three attempts checked, none finished yet: the fourth is refused already.
        let in_flight: Vec<_> = (0..3).map(|_| t.attempt("alice", ADDR).unwrap()).collect();
        assert!(t.attempt("alice", ADDR).is_err());
        // One of them turns out right: its count comes back (and the failures go).
        let mut in_flight = in_flight.into_iter();
        in_flight.next().unwrap().succeeded();
        assert!(t.attempt("alice", ADDR).is_ok());
    }

    #[test]
    fn concurrent_attempts_never_exceed_the_limit() {
        let t = Arc::new(LoginThrottle::new(limit(5), limit(1000)));
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || usize::from(t.attempt("alice", ADDR).is_ok()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 5);
    }

    #[test]
    fn blocks_an_address_across_usernames() {
        let t = throttle();
        for i in 0..5 {
            drop(t.attempt(&format!("user{i}"), ADDR).unwrap());
        }
        assert!(t.attempt("fresh", ADDR).is_err());
        assert!(t.attempt("fresh", None).is_ok());
    }

    #[test]
    fn a_refused_attempt_charges_nothing() {
        let t = throttle();
        for i in 0..5 {
            drop(t.attempt(&format!("user{i}"), ADDR).unwrap());
        }
        // The address is blocked: these attempts must not use up `victim`'s budget.
        for _ in 0..10 {
            assert!(t.attempt("victim", ADDR).is_err());
        }
        assert!(t.attempt("victim", None).is_ok());
    }

    #[test]
    fn successes_do_not_count() {
        let t = throttle();
        for _ in 0..1000 {
            t.attempt("alice", ADDR).unwrap().succeeded();
        }
        drop(t.attempt("alice", ADDR).unwrap());
        drop(t.attempt("alice", ADDR).unwrap());
        t.attempt("alice", ADDR).unwrap().succeeded();
        drop(t.attempt("alice", ADDR).unwrap());
        assert!(t.attempt("alice", ADDR).is_ok());
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let t = LoginThrottle::new(limit(100), limit(2));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        drop(t.attempt("u1", Some(a)).unwrap());
        drop(t.attempt("u2", Some(b)).unwrap());
        assert!(t.attempt("u3", Some(a)).is_err());
        assert!(t.attempt("u3", Some(c)).is_ok());
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let t = RegistrationThrottle::new(limit(2));
        assert!(t.attempt(ADDR).is_ok());
        assert!(t.attempt(ADDR).is_ok());
        assert!(t.attempt(ADDR).is_err());
        assert!(t.attempt(Some("10.0.0.1".parse().unwrap())).is_ok());
    }
}
