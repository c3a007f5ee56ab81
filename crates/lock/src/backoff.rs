//! The fallback sleep between attempts when no release notification arrives.

use std::time::Duration;

use rand::RngExt;

/// Upper bound of the next fallback sleep: never longer than the holder's
/// remaining lease (`pttl`; once it has passed the key is free, so sleeping
/// longer only adds latency), never longer than `cap`, never shorter than `min`.
pub(crate) fn ceiling(min: Duration, cap: Duration, pttl: Option<Duration>) -> Duration {
    let bound = match pttl {
        Some(pttl) => pttl.min(cap),
        None => cap,
    };
    bound.max(min)
}

/// A uniformly jittered sleep in `[min, ceiling]` ("full jitter" above the floor),
/// so waiters that lost the same notification do not retry in lockstep.
pub(crate) fn jittered(min: Duration, cap: Duration, pttl: Option<Duration>) -> Duration {
    let ceiling = ceiling(min, cap, pttl);
    if ceiling <= min {
        return min;
    }
    let span = u64::try_from((ceiling - min).as_micros()).unwrap_or(u64::MAX);
    min + Duration::from_micros(rand::rng().random_range(0..=span))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceiling_is_bounded_by_pttl_and_cap() {
        assert_eq!(ceiling(5 * MS, 250 * MS, Some(40 * MS)), 40 * MS);
        assert_eq!(ceiling(5 * MS, 250 * MS, Some(9_000 * MS)), 250 * MS);
        assert_eq!(ceiling(5 * MS, 250 * MS, None), 250 * MS);
        assert_eq!(ceiling(5 * MS, 250 * MS, Some(MS)), 5 * MS);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..1_000 {
            let sleep = jittered(5 * MS, 250 * MS, Some(100 * MS));
            assert!(sleep >= 5 * MS && sleep <= 100 * MS, "{sleep:?}");
        }
    }
}
