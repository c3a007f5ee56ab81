//! Metric names and recording, through the `metrics` facade.
//!
//! The crate never installs a recorder: an embedding service that installs one
//! (Prometheus, StatsD, …) gets these series, one that doesn't pays nothing.
//! Labels are the backend name and an outcome, never the key (unbounded cardinality).

use std::time::Duration;

/// Histogram: seconds from the start of `acquire` to its outcome. Labels: `backend`, `outcome`.
pub const WAIT_SECONDS: &str = "lock_wait_seconds";
/// Histogram: seconds a lock was held, from acquisition to release. Label: `backend`.
pub const HOLD_SECONDS: &str = "lock_hold_seconds";
/// Counter: acquisitions that gave up at the wait timeout. Label: `backend`.
pub const TIMEOUTS: &str = "lock_timeouts_total";
/// Counter: attempts that found the lock held by someone else. Label: `backend`.
pub const CONTENDED: &str = "lock_contended_attempts_total";
/// Counter: lease renewals. Labels: `backend`, `result` (`ok`, `lost`, `error`).
pub const RENEWALS: &str = "lock_renewals_total";
/// Counter: leases that were lost while held. Label: `backend`.
pub const LEASES_LOST: &str = "lock_leases_lost_total";
/// Counter: releases. Labels: `backend`, `result` (`released`, `not_owner`, `error`).
pub const RELEASES: &str = "lock_releases_total";
/// Histogram: eligible yes-votes per Redlock acquire round. Label: `verdict`
/// (`quorum`, `contended`, `no_quorum`).
pub const REDLOCK_VOTES: &str = "lock_redlock_votes";
/// Counter: Redlock node requests without a usable answer. Labels: `node`
/// (`host:port/db`), `kind` (`down`, `timeout`, `dropped`, `error`).
pub const REDLOCK_NODE_ERRORS: &str = "lock_redlock_node_errors_total";
/// Counter: Redlock node restarts noticed (a new `run_id` after a reconnect). Label: `node`.
pub const REDLOCK_NODE_RESTARTS: &str = "lock_redlock_node_restarts_total";

/// Histogram: items committed per group-commit batch. Label: `backend`.
pub const BATCH_SIZE: &str = "lock_group_commit_batch_size";
/// Counter: fused acquire-run-release steps. Labels: `backend`, `result` (`ran`, `busy`).
pub const FUSED: &str = "lock_fused_total";

pub(crate) fn wait(backend: &'static str, outcome: &'static str, waited: Duration) {
    metrics::histogram!(WAIT_SECONDS, "backend" => backend, "outcome" => outcome)
        .record(waited.as_secs_f64());
    if outcome == "timeout" {
        metrics::counter!(TIMEOUTS, "backend" => backend).increment(1);
    }
}

pub(crate) fn contended(backend: &'static str) {
    metrics::counter!(CONTENDED, "backend" => backend).increment(1);
}

pub(crate) fn hold(backend: &'static str, held: Duration) {
    metrics::histogram!(HOLD_SECONDS, "backend" => backend).record(held.as_secs_f64());
}

pub(crate) fn renewal(backend: &'static str, result: &'static str) {
    metrics::counter!(RENEWALS, "backend" => backend, "result" => result).increment(1);
}

pub(crate) fn lease_lost(backend: &'static str) {
    metrics::counter!(LEASES_LOST, "backend" => backend).increment(1);
}

pub(crate) fn release(backend: &'static str, result: &'static str) {
    metrics::counter!(RELEASES, "backend" => backend, "result" => result).increment(1);
}

pub(crate) fn batch(backend: &'static str, items: usize) {
    #[expect(clippy::cast_precision_loss, reason = "batch sizes are small")]
    metrics::histogram!(BATCH_SIZE, "backend" => backend).record(items as f64);
}

pub(crate) fn fused(backend: &'static str, result: &'static str) {
    metrics::counter!(FUSED, "backend" => backend, "result" => result).increment(1);
}

pub(crate) fn redlock_votes(verdict: &'static str, granted: usize) {
    let granted = f64::from(u32::try_from(granted).unwrap_or(u32::MAX));
    metrics::histogram!(REDLOCK_VOTES, "verdict" => verdict).record(granted);
}

pub(crate) fn redlock_node_error(node: &str, kind: &'static str) {
    metrics::counter!(REDLOCK_NODE_ERRORS, "node" => node.to_owned(), "kind" => kind).increment(1);
}

pub(crate) fn redlock_node_restart(node: &str) {
    metrics::counter!(REDLOCK_NODE_RESTARTS, "node" => node.to_owned()).increment(1);
}
