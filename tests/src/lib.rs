//! End-to-end tests of lockstock.
//!
//! The tests live in `tests/api/` and compile into one test binary (`api`). Each test
//! starts the real `inventory-api` binary (built by the harness with
//! `cargo build -p inventory-api` the first time it is needed, so it is never stale) on a
//! free port, in memory mode or against a fresh `redis-server` from
//! `lockstock-test-support`, and talks HTTP to it. Set `TEST_LOG=1` to see the server's
//! logs live.
