//! The Lua scripts of the single-node Redis lock.
//!
//! Each runs atomically on the node (Redis executes one script at a time), which
//! is what makes every check-then-act below race-free. They are sent with
//! EVALSHA; redis-rs falls back to loading the script on `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

/// Take the lock and mint a fencing token, in one step.
///
/// KEYS[1] lock key, KEYS[2] fencing counter · ARGV[1] token, ARGV[2] TTL in ms.
/// Returns `{1, fence}` when taken, `{0, pttl}` when held by someone else.
///
/// Safety: `SET NX PX` creates the key with its expiry atomically (no window in
/// which a crashed client leaves a lock without TTL), and the fence is only
/// incremented when the SET succeeded, in the same script, so fencing tokens are
/// issued in exactly the order the lock was granted. The counter has no TTL on
/// purpose: if it expired, tokens would restart at 1 and stop being monotonic.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
",
    )
});

/// Release the lock if, and only if, it is still ours; announce the release.
///
/// KEYS[1] lock key · ARGV[1] token, ARGV[2] release channel. Returns 1 when
/// released, 0 when the key is absent or holds another token.
///
/// Safety: compare-and-delete in one script, so a holder whose lease expired
/// (and whose key now carries a newer holder's token) deletes nothing. The
/// PUBLISH wakes waiters in every process subscribed to the key's channel; it is
/// only sent when something was actually released.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
",
    )
});

/// Renew the lease if, and only if, the lock is still ours.
///
/// KEYS[1] lock key · ARGV[1] token, ARGV[2] TTL in ms. Returns 1 when renewed,
/// 0 otherwise.
///
/// Safety: compare-and-PEXPIRE. An expired key reads as nil, so an extension
/// never resurrects a lock that lapsed (and may since have been granted and
/// released by others).
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Prepended to every [`crate::GuardedScript`]: refuse to run the caller's
/// mutation unless the caller still holds the lock.
///
/// Expects KEYS[1] lock key, KEYS[2] fencing counter, ARGV[1] token, ARGV[2]
/// fence; removes them, so the caller's body sees its own KEYS and ARGV starting
/// at 1, plus the local `FENCE` (the caller's fencing token, a number).
///
/// Safety: the ownership check and the mutation run in the same script, so there
/// is no instant between them at which the lease could pass to someone else.
/// The token check alone already implies the fence is current (the counter only
/// moves when someone takes the free lock); checking the fence as well guards
/// against a counter reset by an operator and makes the fence usable by the body.
///
/// An empty token (Redlock guards, whose lock lives on other nodes) skips the
/// lock-key check: the fence check alone then admits the write if and only if
/// no later acquisition has minted a fence on this node, which every Redlock
/// acquisition does right after winning its quorum and before it can write.
pub(crate) const GUARD_PRELUDE: &str = r"
local lock_key = table.remove(KEYS, 1)
local fence_key = table.remove(KEYS, 1)
local token = table.remove(ARGV, 1)
local FENCE = tonumber(table.remove(ARGV, 1))
if token ~= '' and redis.call('GET', lock_key) ~= token then
  return redis.error_reply('LEASE_LOST lock is not held by this token')
end
if tonumber(redis.call('GET', fence_key)) ~= FENCE then
  return redis.error_reply('LEASE_LOST fencing token superseded')
end
";

/// Prepended to the fused form of every [`crate::GuardedScript`]: take the
/// lock, run the caller's mutation and release the lock, as one atomic step —
/// or do nothing if the lock is held.
///
/// Expects KEYS[1] lock key, KEYS[2] fencing counter; removes them, so the body
/// sees its own KEYS and ARGV starting at 1, plus the local `FENCE`.
///
/// Why this is the same as acquire → guarded write → release: Redis runs one
/// script at a time, so between this script's first and last command nobody
/// else can take, observe or release the lock. "Take the free lock, write,
/// delete the lock" inside one script is therefore indistinguishable from
/// "find the lock free, write" — except for the fencing counter, which must
/// move exactly as an ordinary acquisition moves it, so that fencing tokens
/// stay strictly increasing across fused and ordinary holds and a paused
/// ordinary holder from before is refused by its guarded write's fence check.
/// `PTTL` answers -2 only for a missing key; a key without expiry (-1) or with
/// a lease left counts as held, and its remaining lease comes back in the error.
pub(crate) const FUSED_PRELUDE: &str = r"
local lock_key = table.remove(KEYS, 1)
local fence_key = table.remove(KEYS, 1)
local held = redis.call('PTTL', lock_key)
if held ~= -2 then
  return redis.error_reply('LOCK_HELD ' .. held)
end
local FENCE = redis.call('INCR', fence_key)
";

/// The error code the fused prelude answers with when the lock is held.
pub(crate) const LOCK_HELD_CODE: &str = "LOCK_HELD";

/// The error code the guard prelude answers with.
pub(crate) const LEASE_LOST_CODE: &str = "LEASE_LOST";
