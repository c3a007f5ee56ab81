//! Guarded writes: the caller's own Lua mutation, executed by Redis only while
//! the caller still holds the lock.
//!
//! A lock alone cannot stop a holder that was paused past its lease (GC, swap,
//! a slow network) from writing after someone else took over. A guarded write
//! closes that gap when the protected data lives on the same Redis node as the
//! lock: the ownership check and the mutation run in one script, so a holder
//! whose lease expired can never write.
//!
//! ```no_run
//! # async fn example(
//! #     lock: &inventory_lock::RedisLock,
//! #     conn: &mut redis::aio::ConnectionManager,
//! # ) -> Result<(), inventory_lock::LockError> {
//! use std::sync::LazyLock;
//! use inventory_lock::{AcquireOptions, DistributedLock, GuardedScript, LockKey};
//!
//! // KEYS[1] counter · ARGV[1] amount. `FENCE` holds this holder's fencing token.
//! static DEBIT: LazyLock<GuardedScript> = LazyLock::new(|| {
//!     GuardedScript::new(
//!         "local left = tonumber(redis.call('GET', KEYS[1]) or '0') - tonumber(ARGV[1])
//!          if left < 0 then return -1 end
//!          redis.call('SET', KEYS[1], left)
//!          return left",
//!     )
//! });
//!
//! let key = LockKey::new("{account:7}:lock")?;
//! let guard = lock.acquire(&key, &AcquireOptions::default()).await?;
//! let left: i64 = DEBIT
//!     .prepare(&guard)
//!     .key("{account:7}:balance")
//!     .arg(30)
//!     .invoke(conn)
//!     .await?;
//! guard.release().await?;
//! # let _ = left;
//! # Ok(())
//! # }
//! ```
//!
//! Keys given to the script should share the lock key's hash tag, so that on a
//! Redis Cluster they live on the lock's node (one script cannot span nodes).
//! Return business outcomes as values; an error reply from the body surfaces
//! as [`LockError::Backend`].

use redis::{FromRedisValue, Script, ScriptInvocation, ToRedisArgs};

use crate::error::LockError;
use crate::guard::LockGuard;
use crate::scripts::{GUARD_PRELUDE, LEASE_LOST_CODE};

/// A Lua body wrapped so that it runs only under a held lock. Build it once
/// (e.g. in a `static LazyLock`): its SHA is computed once and Redis caches the script.
#[derive(Debug)]
pub struct GuardedScript {
    script: Script,
}

impl GuardedScript {
    /// Wraps `body`. Inside it, `KEYS` and `ARGV` are exactly what the caller
    /// passes to [`GuardedInvocation::key`] / [`GuardedInvocation::arg`], and the
    /// number `FENCE` is the holder's fencing token.
    pub fn new(body: &str) -> Self {
        let source =
            format!("{GUARD_PRELUDE}\nlocal function body()\n{body}\nend\nreturn body()\n");
        Self {
            script: Script::new(&source),
        }
    }

    /// Starts an invocation on behalf of `guard`'s holder.
    ///
    /// With a [`crate::Redlock`] guard the script must run on the Redlock's
    /// fence store ([`crate::Redlock::fence_store`]); the lock key lives on
    /// other nodes, so only the fence is checked: the body runs if and only if
    /// no later acquisition of the key has minted a fencing token yet.
    pub fn prepare<'a>(&'a self, guard: &'a LockGuard) -> GuardedInvocation<'a> {
        // An empty token tells the prelude that the lock key is not on this node.
        let token = if guard.lock_on_fence_store() {
            guard.token().as_str()
        } else {
            ""
        };
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(guard.key().as_str())
            .key(guard.key().fence_key())
            .arg(token)
            .arg(guard.fencing_token().get());
        GuardedInvocation { invocation, guard }
    }
}

/// Keys and arguments of one guarded write; see [`GuardedScript`].
pub struct GuardedInvocation<'a> {
    invocation: ScriptInvocation<'a>,
    guard: &'a LockGuard,
}

impl GuardedInvocation<'_> {
    /// Appends a key (visible to the body as the next `KEYS[i]`).
    pub fn key(mut self, key: impl ToRedisArgs) -> Self {
        self.invocation.key(key);
        self
    }

    /// Appends an argument (visible to the body as the next `ARGV[i]`).
    pub fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.invocation.arg(arg);
        self
    }

    /// Runs the script. `Err(LeaseLost)` if the lease is known lost locally (then
    /// nothing is sent) or if Redis found the lock no longer ours (then nothing was
    /// written). A [`LockError::Backend`] whose [`LockError::is_unknown_outcome`] is
    /// true means the reply was lost: the write may or may not have happened.
    pub async fn invoke<T: FromRedisValue>(
        self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> Result<T, LockError> {
        self.guard.ensure_held()?;
        match self.invocation.invoke_async(connection).await {
            Ok(value) => Ok(value),
            Err(error) if error.code() == Some(LEASE_LOST_CODE) => {
                self.guard.mark_lost();
                Err(self.guard.lease_lost())
            }
            Err(error) => Err(LockError::backend("guarded write", self.guard.key(), error)),
        }
    }
}
