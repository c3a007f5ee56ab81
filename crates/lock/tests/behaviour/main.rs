//! Behaviour of the lock implementations, against real redis-server processes
//! (started per test by `lockstock-test-support`) and in-process.
//!
//! `suite` holds the behaviour every implementation must show; `redis` and
//! `local` run it against `RedisLock` and `LocalLock`, and add the tests that
//! only make sense for one of them (paused Redis, server-side guarded writes).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests panic on failure"
)]

mod group_commit;
mod local;
mod redis;
mod suite;
