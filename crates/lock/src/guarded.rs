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
//! use inventory_lock::{
//!     AcquireOptions, DistributedLock, Fused, GuardedScript, LockKey, ScriptArgs,
//! };
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
//!
//! // The same body as one atomic acquire → write → release step, when the
//! // lock is free: one round trip instead of three.
//! match lock
//!     .run_fused::<i64>(DEBIT.prepare_fused(&key).key("{account:7}:balance").arg(30))
//!     .await?
//! {
//!     Fused::Ran(left) => { let _ = left; }
//!     Fused::Busy => { /* held elsewhere: acquire and `prepare` as above */ }
//! }
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
use crate::key::LockKey;
use crate::scripts::{FUSED_PRELUDE, GUARD_PRELUDE, LEASE_LOST_CODE, LINE_HELPERS, LOCK_HELD_CODE};

/// A Lua body wrapped so that it runs only under a held lock. Build it once
/// (e.g. in a `static LazyLock`): its SHAs are computed once and Redis caches
/// the scripts.
///
/// Two forms share the body: [`GuardedScript::prepare`] runs it under a lock
/// you hold; [`GuardedScript::prepare_fused`] builds one atomic
/// acquire → body → release step for [`crate::RedisLock::run_fused`], which
/// costs one round trip instead of three when the lock is free.
#[derive(Debug)]
pub struct GuardedScript {
    guarded: Script,
    fused: Script,
}

impl GuardedScript {
    /// Wraps `body`. Inside it, `KEYS` and `ARGV` are exactly what the caller
    /// passes to [`ScriptArgs::key`] / [`ScriptArgs::arg`], and the number
    /// `FENCE` is the holder's fencing token.
    pub fn new(body: &str) -> Self {
        let wrap = |prelude: &str| {
            Script::new(&format!(
                "{prelude}\nlocal function body()\n{body}\nend\nreturn body()\n"
            ))
        };
        Self {
            guarded: wrap(GUARD_PRELUDE),
            fused: wrap(&format!("{LINE_HELPERS}{FUSED_PRELUDE}")),
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
        let mut invocation = self.guarded.prepare_invoke();
        invocation
            .key(guard.key().as_str())
            .key(guard.key().fence_key())
            .arg(token)
            .arg(guard.fencing_token().get());
        GuardedInvocation { invocation, guard }
    }

    /// Starts the fused form for `key`: take the lock if it is free, run the
    /// body, release — one atomic step. Run it with [`crate::RedisLock::run_fused`].
    pub fn prepare_fused<'a>(&'a self, key: &'a LockKey) -> FusedInvocation<'a> {
        let mut invocation = self.fused.prepare_invoke();
        invocation
            .key(key.as_str())
            .key(key.fence_key())
            .key(key.line_key())
            .key(key.line_leases_key());
        FusedInvocation { invocation, key }
    }
}

/// Keys and arguments of a guarded or fused invocation. One trait for both
/// forms, so a caller can fill either with the same function.
pub trait ScriptArgs: Sized {
    /// Appends a key (visible to the body as the next `KEYS[i]`).
    #[must_use]
    fn key(self, key: impl ToRedisArgs) -> Self;

    /// Appends an argument (visible to the body as the next `ARGV[i]`).
    #[must_use]
    fn arg(self, arg: impl ToRedisArgs) -> Self;
}

/// Keys and arguments of one guarded write; see [`GuardedScript`].
pub struct GuardedInvocation<'a> {
    invocation: ScriptInvocation<'a>,
    guard: &'a LockGuard,
}

/// Both invocation forms keep their keys and arguments in a redis-rs
/// `ScriptInvocation` named `invocation`.
macro_rules! script_args_for {
    ($($form:ident),*) => {$(
        impl ScriptArgs for $form<'_> {
            fn key(mut self, key: impl ToRedisArgs) -> Self {
                self.invocation.key(key);
                self
            }

            fn arg(mut self, arg: impl ToRedisArgs) -> Self {
                self.invocation.arg(arg);
                self
            }
        }
    )*};
}

script_args_for!(GuardedInvocation, FusedInvocation);

impl GuardedInvocation<'_> {
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

/// What a fused step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fused<T> {
    /// The lock was free: it was taken, the body ran and returned this, and the
    /// lock was released, all in one atomic step.
    Ran(T),
    /// The lock is held (here or elsewhere), or another caller in this process
    /// is already waiting for it: nothing ran. Take the lock the ordinary way.
    Busy,
}

/// Keys and arguments of one fused step; see [`GuardedScript::prepare_fused`].
pub struct FusedInvocation<'a> {
    invocation: ScriptInvocation<'a>,
    key: &'a LockKey,
}

impl FusedInvocation<'_> {
    /// The lock key the step takes.
    pub(crate) fn lock_key(&self) -> &LockKey {
        self.key
    }

    /// Sends the step. Crate-internal: only [`crate::RedisLock::run_fused`]
    /// may run it, after checking that nobody in this process is queued first.
    pub(crate) async fn invoke<T: FromRedisValue>(
        self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> Result<Fused<T>, LockError> {
        match self.invocation.invoke_async(connection).await {
            Ok(value) => Ok(Fused::Ran(value)),
            Err(error) if error.code() == Some(LOCK_HELD_CODE) => Ok(Fused::Busy),
            Err(error) => Err(LockError::backend("fused write", self.key, error)),
        }
    }
}
