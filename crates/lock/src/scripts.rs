//! The Lua scripts of the single-node Redis lock.
//!
//! Each runs atomically on the node (Redis executes one script at a time), which
//! is what makes every check-then-act below race-free. They are sent with
//! EVALSHA; redis-rs falls back to loading the script on `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

/// Lua helpers of the cross-process line (prepended to the scripts that use
/// it). The line of a key is a LIST of waiter ids, oldest first, and a ZSET of
/// their leases (expiry in ms of the *server's* clock, so no client clock is
/// trusted). A waiter renews its lease with every attempt; one whose lease ran
/// out (its process died or stopped trying) is dropped when it reaches the
/// front, so a dead waiter delays the line by at most its lease.
pub(crate) const LINE_HELPERS: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function line_head(line, leases, now)
  while true do
    local head = redis.call('LINDEX', line, 0)
    if not head then return nil end
    local lease = tonumber(redis.call('ZSCORE', leases, head))
    if lease and lease > now then return head end
    redis.call('LPOP', line)
    redis.call('ZREM', leases, head)
  end
end
";

/// The prefix of a release announcement that names the one waiter whose turn
/// it is (the rest is its id). Any other payload wakes every listener.
pub(crate) const TURN_PREFIX: &str = "turn:";

/// Take the lock — in turn — and mint a fencing token, in one step.
///
/// KEYS[1] lock key, KEYS[2] fencing counter, KEYS[3] line, KEYS[4] line leases
/// · ARGV[1] token, ARGV[2] TTL in ms, ARGV[3] waiter id ('' = do not queue:
/// `try_acquire`), ARGV[4] waiter lease in ms, ARGV[5] release channel.
/// Returns `{1, fence}` when taken, `{0, pttl}` when not (pttl −2: the lock is
/// free but another process's waiter is first in line).
///
/// Safety: the lock is set only if absent, with its expiry, in the same step
/// (no window in which a crashed client leaves a lock without TTL), and the
/// fence is incremented in that step, so fencing tokens are issued in exactly
/// the order the lock was granted; the counter never expires (if it did, tokens
/// would restart at 1). Fairness: a free lock goes to the first live waiter in
/// line, or to anyone if the line is empty; a refused waiter joins the end of
/// the line (once) and renews its lease. If the lock is free and someone else
/// is first, that waiter is told (a targeted PUBLISH), in case the release that
/// should have woken it named a waiter that has since died.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LINE_HELPERS}
local now = now_ms()
local head = line_head(KEYS[3], KEYS[4], now)
local waiter = ARGV[3]
local free = redis.call('EXISTS', KEYS[1]) == 0
if free and (not head or head == waiter) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if head then
    redis.call('LPOP', KEYS[3])
    redis.call('ZREM', KEYS[4], waiter)
  end
  return {{1, redis.call('INCR', KEYS[2])}}
end
if waiter ~= '' then
  if not redis.call('ZSCORE', KEYS[4], waiter) then
    redis.call('RPUSH', KEYS[3], waiter)
  end
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), waiter)
  if free and head and head ~= waiter then
    redis.call('PUBLISH', ARGV[5], '{TURN_PREFIX}' .. head)
  end
end
return {{0, redis.call('PTTL', KEYS[1])}}
"
    ))
});

/// Release the lock if, and only if, it is still ours, and hand the turn on.
///
/// KEYS[1] lock key, KEYS[2] line, KEYS[3] line leases · ARGV[1] token,
/// ARGV[2] release channel. Returns 1 when released, 0 when the key is absent
/// or holds another token.
///
/// Safety: compare-and-delete in one script, so a holder whose lease expired
/// (and whose key now carries a newer holder's token) deletes nothing. The
/// PUBLISH names the first live waiter in line, so only that waiter's process
/// wakes and tries (one attempt per hand-off, not one per process); with an
/// empty line it wakes every listener. It is sent only when something was
/// actually released.
pub(crate) static RELEASE_IN_TURN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LINE_HELPERS}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local head = line_head(KEYS[2], KEYS[3], now_ms())
if head then
  redis.call('PUBLISH', ARGV[2], '{TURN_PREFIX}' .. head)
else
  redis.call('PUBLISH', ARGV[2], '1')
end
return 1
"
    ))
});

/// A waiter leaves the line (it gave up, or its caller went away).
///
/// KEYS[1] lock key, KEYS[2] line, KEYS[3] line leases · ARGV[1] waiter id,
/// ARGV[2] release channel. If the lock is free, the next live waiter is told
/// it is its turn (the one leaving may have been first). Always returns 1.
pub(crate) static LEAVE_LINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LINE_HELPERS}
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local head = line_head(KEYS[2], KEYS[3], now_ms())
  if head then redis.call('PUBLISH', ARGV[2], '{TURN_PREFIX}' .. head) end
end
return 1
"
    ))
});

/// Release the lock if, and only if, it is still ours; announce the release.
/// (The Redlock nodes' release; the single-node lock uses [`RELEASE_IN_TURN`].)
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
/// Expects KEYS[1] lock key, KEYS[2] fencing counter, KEYS[3] line, KEYS[4]
/// line leases (and [`LINE_HELPERS`] before it); removes them, so the body sees
/// its own KEYS and ARGV starting at 1, plus the local `FENCE`. A live waiter
/// of another process in line counts as held: the fused step never jumps the
/// cross-process line.
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
local line_key = table.remove(KEYS, 1)
local leases_key = table.remove(KEYS, 1)
local held = redis.call('PTTL', lock_key)
if held ~= -2 then
  return redis.error_reply('LOCK_HELD ' .. held)
end
if line_head(line_key, leases_key, now_ms()) then
  return redis.error_reply('LOCK_HELD -3 waiters in line')
end
local FENCE = redis.call('INCR', fence_key)
";

/// The error code the fused prelude answers with when the lock is held.
pub(crate) const LOCK_HELD_CODE: &str = "LOCK_HELD";

/// The error code the guard prelude answers with.
pub(crate) const LEASE_LOST_CODE: &str = "LEASE_LOST";
