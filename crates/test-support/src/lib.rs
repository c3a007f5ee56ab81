//! Real `redis-server` processes for tests: no mocks.
//!
//! Every server gets a free port on 127.0.0.1, a fresh temporary directory and no
//! persistence unless asked for; `start` returns only once the server answers `PING`
//! (deadline [`READY_TIMEOUT`]), and panics with the server's log otherwise. Servers are
//! killed and reaped on drop, also when a test panics. The API is synchronous (std only),
//! so it works from plain `#[test]`s and from `#[tokio::test]`s alike.
//!
//! ```no_run
//! use std::time::Duration;
//! use lockstock_test_support::{RedisNodes, RedisServer};
//!
//! let mut server = RedisServer::start();
//! let url = server.url(); // "redis://127.0.0.1:<port>/"
//! server.pause(); // SIGSTOP: connections hang
//! server.resume(); // SIGCONT
//! server.kill(); // SIGKILL
//! server.restart(); // same port, same directory
//! server.ping(Duration::from_millis(300)).unwrap();
//!
//! let nodes = RedisNodes::start(5); // independent masters for Redlock
//! let urls: Vec<String> = nodes.urls();
//! ```
//!
//! [`RedisCluster`] builds a real Redis Cluster (masters only) with `redis-cli`.
//!
//! The binary is `redis-server` from `PATH` unless `REDIS_SERVER_BIN` names another one
//! (`REDIS_CLI_BIN` likewise for `redis-cli`).

mod cluster;
mod nodes;
mod port;
mod resp;
mod server;

pub use cluster::{REDIS_CLI_BIN_ENV, RedisCluster};
pub use nodes::RedisNodes;
pub use resp::{Reply, command};
pub use server::{READY_TIMEOUT, REDIS_SERVER_BIN_ENV, RedisServer, RedisServerBuilder};
