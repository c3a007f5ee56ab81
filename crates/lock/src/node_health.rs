//! When a Redlock node may count toward a quorum after it (re)started.
//!
//! A Redis node without fsync-always persistence forgets every lock when it
//! restarts. If it then voted at once, a second client could gather a quorum
//! out of restarted nodes while the first still holds the lock on the same
//! nodes' former selves. The Redlock remedy is a *delayed restart*: a restarted
//! node takes no part in quorums until the longest lease anyone may hold
//! (`max_ttl`) has passed since its restart; by then every lock it forgot has
//! expired on the other nodes too.
//!
//! The client cannot delay the node's start, so it delays the node's *vote*.
//! Each node is probed with `INFO server persistence` on every (re)connect —
//! a restart always breaks the connection, so it is always followed by a
//! probe — and the probe's `run_id` and `uptime_in_seconds` decide when the
//! node counts again. A node first seen with a short uptime is treated the
//! same way: it may have restarted just before this process looked.

use std::time::Duration;

use tokio::time::Instant;

/// How far `uptime_in_seconds` can overstate the real uptime: Redis computes
/// it from two whole-second wall-clock readings, so a server started at
/// x.99 s reports 1 s at (x+1).00 s.
const UPTIME_SLACK: Duration = Duration::from_secs(1);

/// What one probe of a node reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Probe {
    /// `run_id`: random per server process, so it changes with every restart.
    pub(crate) run_id: Option<String>,
    /// `uptime_in_seconds` (whole seconds; up to [`UPTIME_SLACK`] more than the truth).
    pub(crate) uptime: Option<Duration>,
    /// `aof_enabled`.
    pub(crate) aof_enabled: Option<bool>,
}

impl Probe {
    /// Parses the reply of `INFO server persistence`; missing fields stay `None`.
    pub(crate) fn parse(info: &str) -> Self {
        let mut probe = Self::default();
        for line in info.lines() {
            let Some((name, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            match name {
                "run_id" if !value.is_empty() => probe.run_id = Some(value.to_owned()),
                "uptime_in_seconds" => {
                    probe.uptime = value.parse().ok().map(Duration::from_secs);
                }
                "aof_enabled" => probe.aof_enabled = Some(value == "1"),
                _ => {}
            }
        }
        probe
    }
}

/// What this process concluded about one server process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admission {
    /// The server process this applies to.
    pub(crate) run_id: Option<String>,
    /// From when the node's votes count.
    pub(crate) counts_from: Instant,
    /// Why.
    pub(crate) reason: Reason,
}

/// Why a node counts from when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Declared fsync-always (and AOF is on): it forgets nothing, counts at once.
    Durable,
    /// Same server process as before this reconnect: it forgot nothing.
    SameProcess,
    /// First probe of this node, or a new `run_id`: counts once `max_ttl` has
    /// passed since it started (at once if it has been up that long).
    Started,
    /// The node did not say who it is (INFO refused): every reconnect is
    /// treated as a restart that just happened.
    Unidentified,
}

/// When the node probed at `at` may count toward quorums.
///
/// * declared `durable` and AOF not reported off → at once;
/// * the same `run_id` as the previous admission → the previous decision stands;
/// * otherwise it started more than `uptime − 1 s` ago (see
///   [`UPTIME_SLACK`]), so it counts from `at + max_ttl − (uptime − 1 s)`,
///   which is never earlier than restart + `max_ttl`;
/// * no `run_id` or uptime → `at + max_ttl`.
pub(crate) fn admit(
    previous: Option<&Admission>,
    probe: &Probe,
    durable: bool,
    max_ttl: Duration,
    at: Instant,
) -> Admission {
    let run_id = probe.run_id.clone();
    if durable && probe.aof_enabled != Some(false) {
        return Admission {
            run_id,
            counts_from: at,
            reason: Reason::Durable,
        };
    }
    if let Some(previous) = previous
        && previous.run_id.is_some()
        && previous.run_id == run_id
    {
        return Admission {
            run_id,
            counts_from: previous.counts_from,
            reason: Reason::SameProcess,
        };
    }
    match (&run_id, probe.uptime) {
        (Some(_), Some(uptime)) => Admission {
            run_id,
            counts_from: at + max_ttl.saturating_sub(uptime.saturating_sub(UPTIME_SLACK)),
            reason: Reason::Started,
        },
        _ => Admission {
            run_id,
            counts_from: at + max_ttl,
            reason: Reason::Unidentified,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    fn probe(run_id: &str, uptime_secs: u64) -> Probe {
        Probe {
            run_id: Some(run_id.to_owned()),
            uptime: Some(Duration::from_secs(uptime_secs)),
            aof_enabled: Some(false),
        }
    }

    #[test]
    fn parses_info_server_and_persistence() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f1c9e\r\nuptime_in_seconds:42\r\n\r\n# Persistence\r\naof_enabled:1\r\n";
        assert_eq!(
            Probe::parse(info),
            Probe {
                run_id: Some("4f1c9e".into()),
                uptime: Some(Duration::from_secs(42)),
                aof_enabled: Some(true),
            }
        );
        assert_eq!(Probe::parse("garbage"), Probe::default());
    }

    #[test]
    fn a_node_up_longer_than_max_ttl_counts_at_once() {
        let now = Instant::now();
        let admission = admit(None, &probe("a", 3_600), false, TTL, now);
        assert_eq!(admission.counts_from, now);
        assert_eq!(admission.reason, Reason::Started);
    }

    #[test]
    fn a_freshly_started_node_waits_out_max_ttl_from_its_start() {
        let now = Instant::now();
        // Up "10 s" may be 9.01 s: 20.99 s are left, at most.
        let admission = admit(None, &probe("a", 10), false, TTL, now);
        assert_eq!(admission.counts_from, now + Duration::from_secs(21));
        // "1 s" may be a few milliseconds: the whole max_ttl is left.
        let just = admit(None, &probe("a", 1), false, TTL, now);
        assert_eq!(just.counts_from, now + TTL);
        let zero = admit(None, &probe("a", 0), false, TTL, now);
        assert_eq!(zero.counts_from, now + TTL);
    }

    #[test]
    fn a_reconnect_to_the_same_process_keeps_the_earlier_decision() {
        let start = Instant::now();
        let first = admit(None, &probe("a", 0), false, TTL, start);
        let later = start + Duration::from_secs(5);
        let again = admit(Some(&first), &probe("a", 5), false, TTL, later);
        assert_eq!(again.counts_from, first.counts_from);
        assert_eq!(again.reason, Reason::SameProcess);
    }

    #[test]
    fn a_new_run_id_is_a_restart_even_for_a_node_that_counted() {
        let start = Instant::now();
        let counted = admit(None, &probe("a", 3_600), false, TTL, start);
        assert_eq!(counted.counts_from, start);
        let later = start + Duration::from_secs(100);
        let restarted = admit(Some(&counted), &probe("b", 1), false, TTL, later);
        assert_eq!(restarted.counts_from, later + TTL);
        assert_eq!(restarted.run_id.as_deref(), Some("b"));
    }

    #[test]
    fn a_restart_noticed_late_costs_only_what_is_left() {
        let now = Instant::now();
        let previous = admit(None, &probe("a", 3_600), false, TTL, now);
        let restarted = admit(Some(&previous), &probe("b", 31), false, TTL, now);
        assert_eq!(restarted.counts_from, now);
    }

    #[test]
    fn a_durable_node_counts_at_once_unless_aof_is_off() {
        let now = Instant::now();
        let durable = Probe {
            aof_enabled: Some(true),
            ..probe("a", 0)
        };
        let admission = admit(None, &durable, true, TTL, now);
        assert_eq!(admission.counts_from, now);
        assert_eq!(admission.reason, Reason::Durable);
        // Declared durable, but the node says AOF is off: not trusted.
        let not_really = admit(None, &probe("a", 0), true, TTL, now);
        assert_eq!(not_really.counts_from, now + TTL);
    }

    #[test]
    fn an_unidentified_node_is_treated_as_just_restarted() {
        let now = Instant::now();
        let admission = admit(None, &Probe::default(), false, TTL, now);
        assert_eq!(admission.counts_from, now + TTL);
        assert_eq!(admission.reason, Reason::Unidentified);
        // Without a run id there is nothing to recognise on reconnect.
        let again = admit(Some(&admission), &Probe::default(), false, TTL, now + TTL);
        assert_eq!(again.counts_from, now + TTL + TTL);
    }
}
