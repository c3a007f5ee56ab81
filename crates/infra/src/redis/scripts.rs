//! The Lua scripts of the Redis adapters. Each runs atomically on the node.
//!
//! Stock changes are [`GuardedScript`]s: `inventory-lock` prepends a check that
//! the caller still holds the product's lock (token and fencing token), inside
//! the same script, so a holder whose lease expired can never change stock.

use std::sync::LazyLock;

use inventory_lock::GuardedScript;
use redis::Script;

/// A purchase, under the product's lock.
///
/// KEYS: 1 product hash · 2 product purchase log · 3 purchase record ·
///       4 buyer's purchase index · 5 idempotency record
/// ARGV: 1 quantity · 2 user id · 3 purchase id · 4 product id · 5 unit price ·
///       6 total price · 7 now (unix ms) · 8 order fingerprint · 9 record TTL (ms)
///
/// Returns `{'created', remaining}`, `{'replay', purchase_id, remaining}`,
/// `{'key-reused'}`, `{'no-product'}` or `{'insufficient', available}`.
///
/// Why it is safe: the idempotency record is read and written in the same atomic
/// step as the stock, so two requests with one key (even simultaneous ones, which
/// the lock serialises) produce one purchase: the second finds the record and
/// replays it. The stock check and the decrement cannot interleave with another
/// purchase, so stock never goes below zero and every unit that leaves the stock
/// has exactly one purchase record, log entry and index entry — all or nothing.
/// A sold-out order writes nothing, so it does not consume the key.
pub(crate) static PURCHASE: LazyLock<GuardedScript> = LazyLock::new(|| {
    GuardedScript::new(
        r"
local existing = redis.call('HMGET', KEYS[5], 'fingerprint', 'purchase_id', 'remaining')
if existing[1] then
  if existing[1] ~= ARGV[8] then return {'key-reused'} end
  return {'replay', existing[2], existing[3]}
end
local stock = redis.call('HGET', KEYS[1], 'stock')
if not stock then return {'no-product'} end
local quantity = tonumber(ARGV[1])
if tonumber(stock) < quantity then return {'insufficient', tonumber(stock)} end
local remaining = redis.call('HINCRBY', KEYS[1], 'stock', -quantity)
redis.call('HINCRBY', KEYS[1], 'sold', quantity)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[7])
redis.call('HSET', KEYS[3], 'id', ARGV[3], 'user_id', ARGV[2], 'product_id', ARGV[4],
  'quantity', ARGV[1], 'unit_price', ARGV[5], 'total_price', ARGV[6],
  'purchased_at', ARGV[7], 'fence', FENCE)
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[3])
redis.call('HSET', KEYS[5], 'fingerprint', ARGV[8], 'purchase_id', ARGV[3], 'remaining', remaining)
redis.call('PEXPIRE', KEYS[5], ARGV[9])
return {'created', remaining}
",
    )
});

/// A restock, under the product's lock.
///
/// KEYS: 1 product hash · ARGV: 1 units to add · 2 stock limit · 3 now (unix ms)
///
/// Returns `{'ok', stock, sold, initial_stock, restocked}`, `{'no-product'}` or
/// `{'limit', stock}`. Adding to `stock` and `restocked` together keeps
/// stock + sold = initial_stock + restocked.
pub(crate) static RESTOCK: LazyLock<GuardedScript> = LazyLock::new(|| {
    GuardedScript::new(
        r"
local stock = redis.call('HGET', KEYS[1], 'stock')
if not stock then return {'no-product'} end
if tonumber(stock) + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return {'limit', tonumber(stock)}
end
redis.call('HINCRBY', KEYS[1], 'stock', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'restocked', ARGV[1])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
local level = redis.call('HMGET', KEYS[1], 'stock', 'sold', 'initial_stock', 'restocked')
return {'ok', level[1], level[2], level[3], level[4]}
",
    )
});

/// Registration: claim the username and write the user, or do nothing.
///
/// KEYS: 1 username claim · 2 user hash
/// ARGV: 1 id · 2 username · 3 role · 4 password hash · 5 created_at (unix ms) ·
///       6 email ('' when absent)
///
/// Returns 1 when created, 0 when the username is taken. `SET NX` on the claim
/// is the uniqueness check and the claim in one step: of two concurrent
/// registrations exactly one gets the name (no check-then-set race).
pub(crate) static CREATE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'username', ARGV[2], 'role', ARGV[3],
  'password_hash', ARGV[4], 'created_at', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], 'email', ARGV[6]) end
return 1
",
    )
});

/// Catalogue entry: claim the name, write the product, index it — or nothing.
///
/// KEYS: 1 name claim · 2 product hash · 3 product index
/// ARGV: 1 id · 2 name · 3 price · 4 stock · 5 now (unix ms) · 6 description
///       · 7 '1' when a description is given
///
/// Returns 1 when created, 0 when the name is taken.
pub(crate) static CREATE_PRODUCT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'name', ARGV[2], 'price', ARGV[3],
  'stock', ARGV[4], 'sold', 0, 'initial_stock', ARGV[4], 'restocked', 0,
  'created_at', ARGV[5], 'updated_at', ARGV[5])
if ARGV[7] == '1' then redis.call('HSET', KEYS[2], 'description', ARGV[6]) end
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
return 1
",
    )
});
