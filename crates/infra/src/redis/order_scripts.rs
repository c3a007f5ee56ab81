//! The Lua scripts of multi-product orders. No script touches two products, or a
//! product and a buyer: each runs in one hash slot, so orders work unchanged on a
//! Redis Cluster. Atomicity across products comes from holding every product's
//! lock and from the journal (see `orders.rs` and docs/LOCKING.md §6a).
//!
//! Buyer side (`{user:<id>}`, plain scripts): [`PEEK`], [`BEGIN`], [`COMMIT`],
//! [`ABORT`]. Product side (`{product:<id>}`, guarded scripts, run only under
//! the product's lock): [`APPLY_LINE`], [`UNDO_LINE`].

use std::sync::LazyLock;

use inventory_lock::GuardedScript;
use redis::Script;

/// What the buyer side knows about an idempotency key, in one read.
///
/// KEYS: 1 key claim · 2 order pointer · 3 order status hash · 4 order records hash
///
/// Returns `{claim, order number, status, record}`, each `''` when absent.
pub(crate) static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local claim = redis.call('GET', KEYS[1]) or ''
local number = redis.call('GET', KEYS[2]) or ''
local status, record = '', ''
if number ~= '' then
  status = redis.call('HGET', KEYS[3], number) or ''
  record = redis.call('HGET', KEYS[4], number) or ''
end
return {claim, number, status, record}
",
    )
});

/// Opens an order's journal — run while every product's lock is held and every
/// line was found to fit: claims the key, numbers the order, writes the journal
/// as `pending` and points the key at it. Twins (same key, same lines) take the
/// same locks, so they run this one after another and the later one finds the
/// earlier one's order.
///
/// KEYS: 1 key claim · 2 order pointer · 3 order counter · 4 order records hash ·
///       5 order status hash · 6 pending set
/// ARGV: 1 fingerprint · 2 key TTL (ms) · 3 the journal (JSON)
///
/// Returns `{'begun', number}`, `{'key-reused'}`, or the order the key already
/// names: `{'committed', number, record}` / `{'pending', number, record}`. An
/// aborted order does not hold its key: a new one is begun.
pub(crate) static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local claim = redis.call('GET', KEYS[1])
if claim and claim ~= ARGV[1] then return {'key-reused'} end
local number = redis.call('GET', KEYS[2])
if number then
  local status = redis.call('HGET', KEYS[5], number)
  if status == 'committed' or status == 'pending' then
    return {status, number, redis.call('HGET', KEYS[4], number) or ''}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
number = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[4], number, ARGV[3])
redis.call('HSET', KEYS[5], number, 'pending')
redis.call('SADD', KEYS[6], number)
redis.call('SET', KEYS[2], number, 'PX', ARGV[2])
return {'begun', number}
",
    )
});

/// Applies one line of an order to its product — idempotent by order id.
///
/// KEYS: 1 product hash · 2 order lines · 3 undone lines · 4 audit trail
/// ARGV: 1 order id · 2 buyer (user id) · 3 quantity · 4 now (unix ms) ·
///       5 request id · 6 product id
///
/// Returns `{'applied', line}` (earlier: the line as JSON), `{'applied', line,
/// stock}` (now, with the stock left), `{'undone'}`
/// (recovery gave this line up: it may never be applied), `{'no-product'}` or
/// `{'insufficient', available}`. The stock, `sold`, the line record and the
/// audit entry change together or not at all.
pub(crate) static APPLY_LINE: LazyLock<GuardedScript> = LazyLock::new(|| {
    GuardedScript::new(
        r#"
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return {'undone'} end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {'applied', existing} end
local product = redis.call('HMGET', KEYS[1], 'stock', 'price')
local stock = tonumber(product[1])
if not stock then return {'no-product'} end
local quantity = tonumber(ARGV[3])
if stock < quantity then return {'insufficient', stock} end
stock = stock - quantity
redis.call('HSET', KEYS[1], 'stock', stock, 'updated_at', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'sold', quantity)
local line = '{"order_id":' .. ARGV[1] .. ',"user_id":' .. ARGV[2] .. ',"product_id":' .. ARGV[6]
  .. ',"quantity":' .. ARGV[3] .. ',"unit_price":' .. product[2] .. ',"at":' .. ARGV[4]
  .. ',"fence":' .. string.format('%d', FENCE) .. '}'
redis.call('HSET', KEYS[2], ARGV[1], line)
redis.call('XADD', KEYS[4], '*', 'kind', 'order', 'actor', ARGV[2], 'quantity', '-' .. ARGV[3],
  'stock_after', string.format('%d', stock), 'fence', string.format('%d', FENCE),
  'request_id', ARGV[5], 'at', ARGV[4], 'ref', ARGV[1])
return {'applied', line, stock}
"#,
    )
});

/// Gives up one line of an incomplete order — idempotent by order id. If the
/// line was applied, its units go back to the stock (and out of `sold`) with an
/// `order-rollback` audit entry; either way the order id is marked undone here,
/// so [`APPLY_LINE`] can never apply it afterwards.
///
/// KEYS: 1 product hash · 2 order lines · 3 undone lines · 4 audit trail
/// ARGV: 1 order id · 2 buyer (user id) · 3 now (unix ms) · 4 request id
///
/// Returns `{'undone', units}` (units given back; 0 when the line had not been
/// applied).
pub(crate) static UNDO_LINE: LazyLock<GuardedScript> = LazyLock::new(|| {
    GuardedScript::new(
        r#"
local line = redis.call('HGET', KEYS[2], ARGV[1])
if not line then
  redis.call('HSETNX', KEYS[3], ARGV[1], '{"applied":false}')
  return {'undone', 0}
end
local quantity = tonumber(string.match(line, '"quantity":(%d+)'))
local stock = redis.call('HINCRBY', KEYS[1], 'stock', quantity)
redis.call('HINCRBY', KEYS[1], 'sold', -quantity)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], line)
redis.call('XADD', KEYS[4], '*', 'kind', 'order-rollback', 'actor', ARGV[2],
  'quantity', string.format('%d', quantity), 'stock_after', stock,
  'fence', string.format('%d', FENCE), 'request_id', ARGV[4], 'at', ARGV[3], 'ref', ARGV[1])
return {'undone', quantity}
"#,
    )
});

/// Closes a pending order as made: every line was applied.
///
/// KEYS: 1 order status hash · 2 order records hash · 3 the buyer's order index ·
///       4 pending set
/// ARGV: 1 order number · 2 the order record (JSON) · 3 commit time (unix ms) ·
///       4 order id
///
/// Returns `{'committed', record}` (the stored record, also when it was already
/// committed) or `{'not-pending', status}`.
pub(crate) static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status == 'committed' then
  return {'committed', redis.call('HGET', KEYS[2], ARGV[1])}
end
if status ~= 'pending' then return {'not-pending', status or ''} end
redis.call('HSET', KEYS[1], ARGV[1], 'committed')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('SREM', KEYS[4], ARGV[1])
return {'committed', ARGV[2]}
",
    )
});

/// Closes a pending order as not made (after every applied line was undone), and
/// gives its key back: a failed order does not consume its key.
///
/// KEYS: 1 order status hash · 2 pending set · 3 key claim · 4 order pointer
/// ARGV: 1 order number · 2 fingerprint
///
/// Returns the status the order has now (`aborted`, or what it already was).
pub(crate) static ABORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status ~= 'pending' then return status or '' end
redis.call('HSET', KEYS[1], ARGV[1], 'aborted')
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
return 'aborted'
",
    )
});
