//! Purchases of one product committed together: the [`Committer`] behind the
//! Redis store's group commit (see `inventory_lock::GroupCommit`).
//!
//! One batch costs, in order:
//! 1. the idempotency-key claims of its keyed orders, one `SET NX GET` each in
//!    the buyers' `{user:…}` slots, pipelined (skipped when no order has a key);
//! 2. at the same time, in one round trip: the buyers' index entries (`ZADD NX`
//!    of `<product>:<operation id>`, known before the purchase exists) and the
//!    purchase script for the whole batch, in the product's slot — as one fused
//!    acquire → write → release step when the product's lock is free, or as a
//!    guarded write while the batch holds the lock;
//! 3. only if some order bought nothing: the give-back of its key claim and of
//!    the index entry this batch made for it, pipelined.
//!
//! So a purchase without a key is one round trip, with a key two. Everything a
//! purchase *is* — stock, record, log, idempotency record — is written
//! atomically in step 2's script. Claims and index entries are per-buyer
//! bookkeeping in the buyers' own slots: the claim makes "same key, other
//! product" a reuse error, the index lists a buyer's purchases (readers skip
//! an entry whose record does not exist: a refused order before its give-back,
//! or one whose give-back was lost).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use inventory_domain::{
    IDEMPOTENCY_KEY_TTL, IdempotencyKey, OrderFingerprint, Price, ProductId, Purchase,
    PurchaseError, PurchaseId, PurchaseOrder, PurchaseReceipt, StoreError, UserId,
};
use inventory_lock::{Committer, Fused, LockError, LockGuard, LockKey, RedisLock, ScriptArgs};
use redis::aio::ConnectionManager;
use redis::{SortedSetAddOptions, Value};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{codec, keys, scripts};
use crate::lock_failure::LockFailure;

/// How long the record of a request without `Idempotency-Key` is kept: long
/// enough to settle a lost reply (the client retries with the operation id the
/// 503 names), short enough not to pile up.
const OPERATION_RECORD_TTL: Duration = Duration::from_secs(60 * 60);

/// Claims outlive the product-side records they stand for.
const CLAIM_TTL: Duration = Duration::from_secs(IDEMPOTENCY_KEY_TTL.as_secs() + 60 * 60);

/// One order in a product's line.
pub(crate) struct PurchaseItem {
    order: PurchaseOrder,
    /// The key its idempotency record is stored under: the client's key, or one
    /// made here for a request without.
    operation_id: IdempotencyKey,
    fingerprint: OrderFingerprint,
    record_key: String,
    record_ttl: Duration,
    /// Set once, by the first commit attempt that claims keys for its batch.
    claim: OnceLock<Claim>,
    /// Whether this order's attempt added its buyer's index entry (and so must
    /// take it away again if the order buys nothing).
    indexed: AtomicBool,
}

/// What claiming the order's idempotency key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// No key, nothing to claim.
    NotNeeded,
    /// This order made the claim (to give back if it buys nothing).
    Made,
    /// An order with the same fingerprint holds it: a twin or a retry.
    Shared,
    /// An order with another fingerprint holds it.
    Reused,
    /// The claim could not be made (storage failure); the order is not committed.
    Failed,
}

impl PurchaseItem {
    pub(crate) fn new(order: PurchaseOrder) -> Result<Self, StoreError> {
        let (operation_id, record_ttl, claim) = match &order.idempotency_key {
            Some(key) => (key.clone(), IDEMPOTENCY_KEY_TTL, OnceLock::new()),
            None => {
                let id = format!("op-{}", uuid::Uuid::new_v4().simple());
                let id = IdempotencyKey::parse(id)
                    .map_err(|_| StoreError::corrupt("an operation id is not a valid key"))?;
                (id, OPERATION_RECORD_TTL, OnceLock::from(Claim::NotNeeded))
            }
        };
        Ok(Self {
            record_key: keys::purchase_idempotency(order.product_id, order.user_id, &operation_id),
            fingerprint: order.fingerprint(),
            order,
            operation_id,
            record_ttl,
            claim,
            indexed: AtomicBool::new(false),
        })
    }

    pub(crate) fn operation_id(&self) -> &IdempotencyKey {
        &self.operation_id
    }

    fn claim(&self) -> Claim {
        self.claim.get().copied().unwrap_or(Claim::Failed)
    }

    /// Whether the order goes into the purchase script.
    fn is_live(&self) -> bool {
        matches!(self.claim(), Claim::NotNeeded | Claim::Made | Claim::Shared)
    }

    fn unknown(&self) -> PurchaseError {
        PurchaseError::OutcomeUnknown {
            operation_id: self.operation_id.clone(),
        }
    }
}

/// What the purchase script (or settling a lost reply) said about one order.
enum Outcome {
    Bought {
        receipt: PurchaseReceipt,
    },
    KeyReused,
    NoProduct,
    Insufficient {
        available: u64,
    },
    /// Nothing was applied (lock or storage failure before the script ran).
    NotApplied(PurchaseError),
    /// The reply was lost and the idempotency record does not show the purchase.
    Unknown,
}

impl Outcome {
    /// Whether the order certainly bought nothing (its claim can be given back).
    fn bought_nothing(&self) -> bool {
        matches!(self, Outcome::KeyReused) || self.refused()
    }

    /// Whether the order bought nothing although its key is its own: its index
    /// entry names no purchase. (A reused key's entry may name the purchase the
    /// key did make.)
    fn refused(&self) -> bool {
        matches!(
            self,
            Outcome::NoProduct | Outcome::Insufficient { .. } | Outcome::NotApplied(_)
        )
    }
}

/// The committer of the Redis store's purchase lines.
pub(crate) struct PurchaseBatches {
    /// The data node; guarded scripts, settling reads and post-steps run here,
    /// so a settling read queues behind the script whose reply it settles.
    data: ConnectionManager,
    /// Present when the lock lives on the data node (single-node mode): then a
    /// batch that finds the lock free runs as one fused step.
    fused: Option<RedisLock>,
}

impl PurchaseBatches {
    pub(crate) fn new(data: ConnectionManager, fused: Option<RedisLock>) -> Self {
        Self { data, fused }
    }
}

#[async_trait]
impl Committer for PurchaseBatches {
    type Item = PurchaseItem;
    type Output = Result<PurchaseReceipt, PurchaseError>;

    async fn commit_if_free(
        &self,
        key: &LockKey,
        items: &[PurchaseItem],
    ) -> Option<Vec<Self::Output>> {
        let lock = self.fused.as_ref()?;
        self.claim_keys(items).await;
        let live = live(items);
        if live.is_empty() {
            return Some(self.finish(items, &live, Ok(Vec::new())).await);
        }
        let now = codec::now();
        let step = fill(scripts::PURCHASE_BATCH.prepare_fused(key), &live, now);
        let ((), fused) = tokio::join!(self.index(&live, now), lock.run_fused::<Vec<Value>>(step));
        match fused {
            Ok(Fused::Busy) => None,
            Ok(Fused::Ran(replies)) => Some(self.finish(items, &live, Ok(replies)).await),
            Err(error) => Some(self.finish(items, &live, Err(error)).await),
        }
    }

    async fn commit(&self, guard: &LockGuard, items: &[PurchaseItem]) -> Vec<Self::Output> {
        self.claim_keys(items).await;
        let live = live(items);
        let replies = if live.is_empty() {
            Ok(Vec::new())
        } else {
            let now = codec::now();
            let mut data = self.data.clone();
            let script = fill(scripts::PURCHASE_BATCH.prepare(guard), &live, now)
                .invoke::<Vec<Value>>(&mut data);
            let ((), replies) = tokio::join!(self.index(&live, now), script);
            replies
        };
        self.finish(items, &live, replies).await
    }

    async fn lock_failed(&self, error: &LockError, items: &[PurchaseItem]) -> Vec<Self::Output> {
        let outcomes: Vec<Outcome> = items
            .iter()
            .map(|_| {
                Outcome::NotApplied(LockFailure::classify(error, "taking a product lock").into())
            })
            .collect();
        self.give_back(items, &outcomes).await;
        items
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| answer(item, outcome))
            .collect()
    }
}

impl PurchaseBatches {
    /// Claims the keys of the batch's keyed orders not claimed yet (a batch
    /// that found the lock busy comes back with its claims made and new
    /// members without): one `SET claim fingerprint NX GET PX ttl` per order,
    /// all in one pipeline — one round trip, whatever the buyers' slots.
    async fn claim_keys(&self, items: &[PurchaseItem]) {
        let unclaimed: Vec<&PurchaseItem> = items
            .iter()
            .filter(|item| item.claim.get().is_none())
            .collect();
        if unclaimed.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for item in &unclaimed {
            pipe.cmd("SET")
                .arg(keys::idempotency_claim(
                    item.order.user_id,
                    &item.operation_id,
                ))
                .arg(item.fingerprint.as_str())
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(millis(CLAIM_TTL));
        }
        let found: Result<Vec<Option<String>>, _> = pipe.query_async(&mut self.data.clone()).await;
        if let Err(error) = &found {
            tracing::warn!(%error, "claiming idempotency keys");
        }
        for (index, item) in unclaimed.iter().enumerate() {
            let previous = found.as_ref().ok().and_then(|found| found.get(index));
            let claim = match previous {
                Some(None) => Claim::Made,
                Some(Some(fingerprint)) if fingerprint == item.fingerprint.as_str() => {
                    Claim::Shared
                }
                Some(Some(_)) => Claim::Reused,
                None => Claim::Failed,
            };
            let _ = item.claim.set(claim);
        }
    }

    /// Turns the script's replies (or its failure) into one answer per item,
    /// after writing the buyers' indexes and giving back unused claims.
    async fn finish(
        &self,
        items: &[PurchaseItem],
        live: &[&PurchaseItem],
        replies: Result<Vec<Value>, LockError>,
    ) -> Vec<Result<PurchaseReceipt, PurchaseError>> {
        let mut live_outcomes = match replies {
            Ok(replies) => (0..live.len())
                .map(|index| parse_reply(replies.get(index)))
                .collect(),
            // Refused before anything was written: the lease was gone.
            Err(error) if error.is_lease_lost() || error.is_timeout() => live
                .iter()
                .map(|_| {
                    Outcome::NotApplied(LockFailure::classify(&error, "running a purchase batch").into())
                })
                .collect::<Vec<_>>(),
            // A lost reply, or an error from inside the script (which may have
            // applied the orders before it): the records say what happened.
            Err(error) => {
                tracing::warn!(%error, "purchase batch without a usable reply; settling through the idempotency records");
                self.settle_lost_reply(live).await
            }
        }
        .into_iter();
        let outcomes: Vec<Outcome> = items
            .iter()
            .map(|item| match item.claim() {
                Claim::Reused => Outcome::KeyReused,
                Claim::Failed => Outcome::NotApplied(PurchaseError::Store(
                    StoreError::unavailable("claiming an idempotency key", "Redis did not answer"),
                )),
                Claim::NotNeeded | Claim::Made | Claim::Shared => {
                    live_outcomes.next().unwrap_or(Outcome::Unknown)
                }
            })
            .collect();
        self.give_back(items, &outcomes).await;
        record_stock_level(&outcomes);
        items
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| answer(item, outcome))
            .collect()
    }

    /// After a lost reply (or a script error): each order's idempotency record,
    /// written atomically with its purchase, says whether it happened. Read on the connection the
    /// script was sent on, so the read cannot overtake a script still queued.
    async fn settle_lost_reply(&self, live: &[&PurchaseItem]) -> Vec<Outcome> {
        let mut pipe = redis::pipe();
        for item in live {
            pipe.cmd("HMGET")
                .arg(&item.record_key)
                .arg(&["fingerprint", "remaining", "purchase"]);
        }
        let records: Vec<(Option<String>, Option<u64>, Option<String>)> =
            match pipe.query_async(&mut self.data.clone()).await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(%error, "settling a lost purchase reply");
                    return live.iter().map(|_| Outcome::Unknown).collect();
                }
            };
        live.iter()
            .zip(records)
            .map(|(item, record)| match record {
                (Some(fingerprint), Some(remaining), Some(purchase))
                    if fingerprint == item.fingerprint.as_str() =>
                {
                    bought(&purchase, remaining, false)
                }
                _ => Outcome::Unknown,
            })
            .collect()
    }

    /// Step 2's other half: each live order's entry in its buyer's index,
    /// `ZADD NX` (a retry of a key finds its entry there already). Sent with
    /// the script, so it costs no round trip of its own. A failure is logged,
    /// not answered: the purchases stand, and a replay of the key adds the
    /// entry again.
    async fn index(&self, live: &[&PurchaseItem], now: OffsetDateTime) {
        let mut pipe = redis::pipe();
        for item in live {
            pipe.zadd_options(
                keys::user_purchases(item.order.user_id),
                keys::purchase_ref(item.order.product_id, &item.operation_id),
                codec::unix_ms(now),
                &SortedSetAddOptions::add_only(),
            );
        }
        match pipe.query_async::<Vec<u64>>(&mut self.data.clone()).await {
            Ok(added) => {
                for (item, added) in live.iter().zip(added) {
                    if added == 1 {
                        item.indexed.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(error) => tracing::error!(%error, "indexing purchases for their buyers"),
        }
    }

    /// Step 3: orders that bought nothing give back the key claim they made
    /// and the index entry they added — one pipeline, only when there are
    /// any. A claim is given back only by the order that made it (`SET NX`
    /// above), so no other order's claim is deleted. A failure is logged: a
    /// stale claim only delays reusing that key for another body, and a stale
    /// index entry names no record and is skipped by readers.
    async fn give_back(&self, items: &[PurchaseItem], outcomes: &[Outcome]) {
        let mut pipe = redis::pipe();
        for (item, outcome) in items.iter().zip(outcomes) {
            if item.claim() == Claim::Made && outcome.bought_nothing() {
                pipe.del(keys::idempotency_claim(
                    item.order.user_id,
                    &item.operation_id,
                ))
                .ignore();
            }
            if item.indexed.load(Ordering::Relaxed) && outcome.refused() {
                pipe.zrem(
                    keys::user_purchases(item.order.user_id),
                    keys::purchase_ref(item.order.product_id, &item.operation_id),
                )
                .ignore();
            }
        }
        if pipe.is_empty() {
            return;
        }
        if let Err(error) = pipe.query_async::<()>(&mut self.data.clone()).await {
            tracing::error!(%error, "giving back key claims and index entries");
        }
    }
}

/// The orders that go into the purchase script, in order.
fn live(items: &[PurchaseItem]) -> Vec<&PurchaseItem> {
    items.iter().filter(|item| item.is_live()).collect()
}

/// Keys and arguments of [`scripts::PURCHASE_BATCH`] for `live` (non-empty,
/// all of one product), made at `now`.
fn fill<A: ScriptArgs>(invocation: A, live: &[&PurchaseItem], now: OffsetDateTime) -> A {
    let product = live
        .first()
        .map_or(ProductId(0), |item| item.order.product_id);
    let mut invocation = invocation
        .key(keys::product(product))
        .key(keys::product_purchases(product))
        .key(keys::purchase_records(product))
        .key(keys::purchase_numbers(product))
        .arg(codec::unix_ms(now))
        .arg(product.get());
    for item in live {
        invocation = invocation
            .key(&item.record_key)
            .arg(item.order.quantity.get())
            .arg(item.order.user_id.get())
            .arg(item.fingerprint.as_str())
            .arg(millis(item.record_ttl))
            .arg(item.operation_id.as_str());
    }
    invocation
}

fn parse_reply(reply: Option<&Value>) -> Outcome {
    let corrupt = || {
        Outcome::NotApplied(PurchaseError::Store(StoreError::corrupt(
            "unexpected reply from the purchase script",
        )))
    };
    let Some(Ok(fields)) = reply.map(redis::from_redis_value_ref::<Vec<Value>>) else {
        return corrupt();
    };
    let text = |index: usize| {
        fields
            .get(index)
            .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
    };
    let number = |index: usize| {
        fields
            .get(index)
            .and_then(|value| redis::from_redis_value_ref::<u64>(value).ok())
    };
    match (text(0).as_deref(), number(1), text(2)) {
        (Some("created"), Some(remaining), Some(record)) => bought(&record, remaining, false),
        (Some("replay"), Some(remaining), Some(record)) => bought(&record, remaining, true),
        (Some("key-reused"), ..) => Outcome::KeyReused,
        (Some("no-product"), ..) => Outcome::NoProduct,
        (Some("insufficient"), Some(available), _) => Outcome::Insufficient { available },
        _ => corrupt(),
    }
}

/// A purchase record as the script writes it (JSON).
#[derive(Deserialize)]
struct StoredPurchase {
    id: u64,
    user_id: u64,
    product_id: u64,
    quantity: u32,
    unit_price: i64,
    purchased_at: i64,
}

/// Decodes a stored purchase record.
pub(crate) fn decode_purchase(raw: &str) -> Result<Purchase, StoreError> {
    let stored: StoredPurchase = serde_json::from_str(raw)
        .map_err(|error| StoreError::corrupt(format!("purchase record does not parse: {error}")))?;
    let unit_price = Price::parse(stored.unit_price)
        .map_err(|_| StoreError::corrupt("purchase record has an invalid unit price"))?;
    Ok(Purchase {
        id: PurchaseId(stored.id),
        user_id: UserId(stored.user_id),
        product_id: ProductId(stored.product_id),
        quantity: stored.quantity,
        unit_price,
        total_price: unit_price
            .times(stored.quantity)
            .ok_or_else(|| StoreError::corrupt("purchase record's total overflows"))?,
        purchased_at: codec::time_from_unix_ms(stored.purchased_at)
            .ok_or_else(|| StoreError::corrupt("purchase record has an invalid time"))?,
    })
}

fn bought(record: &str, remaining: u64, replayed: bool) -> Outcome {
    match decode_purchase(record) {
        Ok(purchase) => Outcome::Bought {
            receipt: PurchaseReceipt {
                purchase,
                remaining_stock: remaining,
                replayed,
            },
        },
        Err(error) => Outcome::NotApplied(PurchaseError::Store(error)),
    }
}

/// The product's stock gauge follows the last level the script reported.
fn record_stock_level(outcomes: &[Outcome]) {
    let last = outcomes.iter().rev().find_map(|outcome| match outcome {
        Outcome::Bought { receipt } if !receipt.replayed => {
            Some((receipt.purchase.product_id, receipt.remaining_stock))
        }
        _ => None,
    });
    if let Some((product, level)) = last {
        crate::metrics::stock(product, level);
    }
}

fn answer(item: &PurchaseItem, outcome: Outcome) -> Result<PurchaseReceipt, PurchaseError> {
    match outcome {
        Outcome::Bought { receipt } => Ok(receipt),
        Outcome::KeyReused => Err(PurchaseError::IdempotencyKeyReused),
        Outcome::NoProduct => Err(PurchaseError::ProductNotFound(item.order.product_id)),
        Outcome::Insufficient { available } => Err(PurchaseError::InsufficientStock {
            requested: item.order.quantity.get(),
            available,
        }),
        Outcome::NotApplied(error) => Err(error),
        Outcome::Unknown => Err(item.unknown()),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
