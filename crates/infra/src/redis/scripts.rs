//! The Lua scripts of the Redis adapters. Each runs atomically on the node.
//!
//! Stock changes are [`GuardedScript`]s: `inventory-lock` prepends a check that
//! the caller still holds the product's lock (token and fencing token), inside
//! the same script, so a holder whose lease expired can never change stock.

use std::sync::LazyLock;

use inventory_lock::GuardedScript;
use redis::Script;

/// A batch of purchases of one product, under the product's lock (or as one
/// fused acquire → write → release step), committed in order.
///
/// KEYS: 1 product hash · 2 product purchase log · 3 product purchase records ·
///       4 product purchase numbers · 4 + i the idempotency record of item i
/// ARGV: 1 now (unix ms) · 2 product id · then five per item, from 3 + 5(i − 1):
///       quantity · user id · order fingerprint · record TTL (ms) · operation id
///
/// Returns one reply per item: `{'created', remaining, record}`,
/// `{'replay', remaining, record}`, `{'key-reused'}`, `{'no-product'}` or
/// `{'insufficient', available}`, where `record` is the purchase as JSON.
///
/// Why each item gets exactly the answer it would have had alone at its place:
/// items are applied one after another with the stock as the items before them
/// left it, and each writes its idempotency record before the next is looked
/// at — so a twin later in the same batch finds the record and replays it, a
/// sold-out item is refused with the units left at its turn, and an item that
/// fits after a refused one is still served. Every unit that leaves the stock
/// has exactly one purchase record (under `<user>:<operation id>`, the name the
/// buyer's index already carries), number, log entry and idempotency record,
/// written in this one atomic script; a refused item writes nothing (and so
/// does not consume its key). Every key is in the product's hash slot.
///
/// Numbers: ids and counts are handled as strings or integers below 2^53 (stock
/// and sequence numbers are bounded far below), so Lua's doubles stay exact;
/// the purchase id `product × 10⁹ + sequence` is built by string concatenation.
pub(crate) static PURCHASE_BATCH: LazyLock<GuardedScript> = LazyLock::new(|| {
    GuardedScript::new(
        r#"
local product = redis.call('HMGET', KEYS[1], 'stock', 'price', 'purchase_seq')
local stock = tonumber(product[1])
local price = product[2]
local seq = tonumber(product[3] or '0')
local sold = 0
local replies = {}
for i = 1, #KEYS - 4 do
  local a = 3 + 5 * (i - 1)
  local quantity, user, fingerprint = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local ttl, operation = ARGV[a + 3], ARGV[a + 4]
  local record_key = KEYS[4 + i]
  local existing = redis.call('HMGET', record_key, 'fingerprint', 'remaining', 'purchase')
  if existing[1] then
    if existing[1] == fingerprint then
      replies[i] = {'replay', existing[2], existing[3]}
    else
      replies[i] = {'key-reused'}
    end
  elseif not stock then
    replies[i] = {'no-product'}
  elseif stock < quantity then
    replies[i] = {'insufficient', stock}
  else
    stock = stock - quantity
    sold = sold + quantity
    seq = seq + 1
    local id = ARGV[2] .. string.format('%09d', seq)
    local record = '{"id":' .. id .. ',"user_id":' .. user .. ',"product_id":' .. ARGV[2]
      .. ',"quantity":' .. quantity .. ',"unit_price":' .. price
      .. ',"purchased_at":' .. ARGV[1] .. ',"fence":' .. string.format('%d', FENCE) .. '}'
    local field = user .. ':' .. operation
    redis.call('HSET', KEYS[3], field, record)
    redis.call('HSET', KEYS[4], seq, field)
    redis.call('RPUSH', KEYS[2], id)
    redis.call('HSET', record_key, 'fingerprint', fingerprint, 'remaining', stock, 'purchase', record)
    redis.call('PEXPIRE', record_key, ttl)
    replies[i] = {'created', stock, record}
  end
end
if sold > 0 then
  redis.call('HSET', KEYS[1], 'stock', stock, 'purchase_seq', seq, 'updated_at', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'sold', sold)
end
return replies
"#,
    )
});

/// A purchase by its number: the record whose field the number points at.
///
/// KEYS: 1 product purchase numbers · 2 product purchase records
/// ARGV: 1 purchase number. Returns the record (JSON) or nil. Both keys are in
/// the product's hash slot; a read, one round trip instead of two.
pub(crate) static PURCHASE_BY_NUMBER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local field = redis.call('HGET', KEYS[1], ARGV[1])
if not field then return false end
return redis.call('HGET', KEYS[2], field)
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
