//! End-to-end tests: the real server binary, over HTTP. Every contract test runs in all
//! three storage modes (`memory::…`, `redis::…` and `redlock::…`: five lock nodes and a
//! data node); `redlock_faults` kills, pauses and restarts lock nodes under load.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

/// Generates one `#[tokio::test]` per mode for each listed `async fn name(mode: Mode)`.
macro_rules! all_modes {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::helpers::Mode::Memory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::helpers::Mode::Redis).await;
                }
            )*
        }
        mod redlock {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::helpers::Mode::Redlock).await;
                }
            )*
        }
    };
}

mod auth;
mod black_friday;
mod helpers;
mod operations;
mod orders;
mod products;
mod purchases;
mod redlock_faults;
mod robustness;
mod stock_changes;
