#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod acquire;
mod backend;
mod backoff;
pub mod error;
mod group_commit;
mod guard;
mod guarded;
pub mod key;
mod local;
mod lock;
pub mod metrics;
mod multi;
mod node;
mod node_health;
pub mod options;
mod queue;
mod quorum;
mod redlock;
mod redlock_config;
mod redlock_status;
mod scripts;
mod single;
pub mod token;
mod wakeups;
mod watchdog;

pub use error::{InvalidKey, InvalidOptions, LockError};
pub use group_commit::{Abandoned, Committer, GroupCommit};
pub use guard::LockGuard;
pub use guarded::{Fused, FusedInvocation, GuardedInvocation, GuardedScript, ScriptArgs};
pub use key::LockKey;
pub use local::LocalLock;
pub use lock::DistributedLock;
pub use multi::{MultiGuard, canonical_order};
pub use options::AcquireOptions;
pub use redlock::Redlock;
pub use redlock_config::{MIN_REDLOCK_NODES, RedlockConfig, RedlockNode};
pub use redlock_status::{NodeStatus, RedlockStatus};
pub use single::{RedisLock, RedisLockConfig};
pub use token::{FencingToken, LockToken};
pub use watchdog::with_lock;
