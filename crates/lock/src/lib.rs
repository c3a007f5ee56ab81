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
pub mod options;
mod queue;
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
pub use single::{RedisLock, RedisLockConfig};
pub use token::{FencingToken, LockToken};
pub use watchdog::with_lock;
