//! Per-acquisition options: lease length, how long to wait, fallback backoff.

use std::time::Duration;

use crate::error::InvalidOptions;

/// Shortest lease accepted. Below this the clock-drift allowance eats the lease.
pub const MIN_TTL: Duration = Duration::from_millis(10);

/// How one acquisition behaves. `Default` gives a 5 s lease and a 3 s wait.
///
/// ```
/// use std::time::Duration;
/// use inventory_lock::AcquireOptions;
///
/// let options = AcquireOptions::default()
///     .with_ttl(Duration::from_secs(2))
///     .with_wait_timeout(Duration::from_millis(500));
/// assert!(options.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AcquireOptions {
    ttl: Duration,
    wait_timeout: Duration,
    backoff_min: Duration,
    backoff_cap: Duration,
    drift_factor: f64,
    drift_fixed: Duration,
}

impl Default for AcquireOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(5),
            backoff_cap: Duration::from_millis(250),
            drift_factor: 0.01,
            drift_fixed: Duration::from_millis(2),
        }
    }
}

impl AcquireOptions {
    /// Lease length: the lock expires this long after it is taken unless extended.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Longest time `acquire` waits before giving up with [`crate::LockError::Timeout`].
    /// Zero means a single attempt.
    pub fn with_wait_timeout(mut self, wait: Duration) -> Self {
        self.wait_timeout = wait;
        self
    }

    /// Bounds of the jittered sleep used when no release notification arrives
    /// (a lost pub/sub message, a holder that crashed). The sleep never exceeds
    /// the holder's remaining lease either.
    pub fn with_backoff(mut self, min: Duration, cap: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_cap = cap;
        self
    }

    /// Clock-drift allowance subtracted from every lease: `ttl × factor + fixed`.
    /// Defaults to 1 % + 2 ms, as in the Redlock description.
    pub fn with_drift(mut self, factor: f64, fixed: Duration) -> Self {
        self.drift_factor = factor;
        self.drift_fixed = fixed;
        self
    }

    /// Lease length.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Longest wait for the lock.
    pub fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    /// Lower bound of the fallback backoff.
    pub fn backoff_min(&self) -> Duration {
        self.backoff_min
    }

    /// Upper bound of the fallback backoff.
    pub fn backoff_cap(&self) -> Duration {
        self.backoff_cap
    }

    /// The part of a lease of this TTL that the holder must not count on.
    pub fn drift(&self) -> Duration {
        self.ttl.mul_f64(self.drift_factor) + self.drift_fixed
    }

    /// How long a lease of this TTL is usable, measured from before the request
    /// that took (or extended) it was sent.
    pub fn validity(&self) -> Duration {
        self.ttl.saturating_sub(self.drift())
    }

    /// Checks the options once, before any request is sent.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        if self.ttl < MIN_TTL {
            return Err(InvalidOptions::TtlTooShort { ttl: self.ttl });
        }
        if !(0.0..0.5).contains(&self.drift_factor) {
            return Err(InvalidOptions::DriftFactor {
                factor: self.drift_factor,
            });
        }
        if self.validity().is_zero() {
            return Err(InvalidOptions::NoValidity { ttl: self.ttl });
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_cap {
            return Err(InvalidOptions::Backoff {
                min: self.backoff_min,
                cap: self.backoff_cap,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_subtracts_one_percent_plus_two_ms() {
        let options = AcquireOptions::default().with_ttl(Duration::from_secs(10));
        assert_eq!(options.drift(), Duration::from_millis(102));
        assert_eq!(options.validity(), Duration::from_millis(9_898));
    }

    #[test]
    fn rejects_unusable_options() {
        let short = AcquireOptions::default().with_ttl(Duration::from_millis(5));
        assert!(matches!(
            short.validate(),
            Err(InvalidOptions::TtlTooShort { .. })
        ));
        let drift = AcquireOptions::default().with_drift(0.7, Duration::ZERO);
        assert!(matches!(
            drift.validate(),
            Err(InvalidOptions::DriftFactor { .. })
        ));
        let eaten = AcquireOptions::default()
            .with_ttl(Duration::from_millis(10))
            .with_drift(0.0, Duration::from_millis(10));
        assert!(matches!(
            eaten.validate(),
            Err(InvalidOptions::NoValidity { .. })
        ));
        let backoff = AcquireOptions::default()
            .with_backoff(Duration::from_millis(50), Duration::from_millis(10));
        assert!(matches!(
            backoff.validate(),
            Err(InvalidOptions::Backoff { .. })
        ));
        assert!(AcquireOptions::default().validate().is_ok());
    }
}
