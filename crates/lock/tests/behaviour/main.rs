//! Behaviour of the lock implementations, against real redis-server processes
//! (started per test by `lockstock-test-support`) and in-process.
//!
//! `suite` holds the behaviour every implementation must show; `redis`,
//! `redlock` and `local` run it against `RedisLock`, `Redlock` and
//! `LocalLock`, and add the tests that only make sense for one of them (paused
//! or killed nodes, node restarts, server-side guarded writes and fencing).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests panic on failure"
)]

mod group_commit;
mod local;
mod redis;
mod redlock;
mod suite;
