//! [`OrderService`] over Redis: several products, all or nothing, without any
//! script touching two products (each product's keys stay in their own slot).
//!
//! Placing an order (the argument is in docs/LOCKING.md §6a):
//!
//! 1. **Peek** at the buyer's key (one read): a key used for something else is a
//!    422, an order already made under it is replayed, an order left `pending`
//!    under it (interrupted between lines) is finished first, under its locks.
//! 2. **Pre-read** the products' stock (no lock): an unknown product is a 404, a
//!    line short already is a 409 — without taking any lock.
//! 3. **Lock** every product (`acquire_many`: sorted, all or nothing).
//! 4. **Check** every line under the locks; any short line → 409 listing each,
//!    nothing written.
//! 5. **Journal**: [`order_scripts::BEGIN`] in the buyer's slot claims the key,
//!    numbers the order and records it as `pending` with its lines.
//! 6. **Lines**: one guarded [`order_scripts::APPLY_LINE`] per product, all sent
//!    at once; each is idempotent by order id.
//! 7. **Commit**: [`order_scripts::COMMIT`] marks the order `committed`, stores its
//!    record and indexes it — sent together with the locks' release: once every line
//!    is applied, the order no longer needs the products.
//!
//! If the process dies or loses a lease between 5 and 7, the journal stays
//! `pending`. Whoever finishes it — the next request with the same key, or
//! reconcile — first takes every lock of the order; from then on no line of the
//! old attempt can be written (guarded scripts check the fence), so what it reads
//! is final: **every line applied → commit** (roll forward: the order is whole,
//! only its record is missing); **otherwise → undo every line and abort** (roll
//! back; an undone line can never be applied afterwards).

use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use inventory_domain::{
    IDEMPOTENCY_KEY_TTL, IdempotencyKey, Money, NewOrder, Order, OrderError, OrderFingerprint,
    OrderId, OrderLine, OrderReceipt, OrderService, Page, Price, ProductId, RequestId, ShortLine,
    StoreError, UserId,
};
use inventory_lock::{GuardedInvocation, LockError, LockGuard, MultiGuard, ScriptArgs};
use redis::Value;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{RedisStore, codec, keys, order_scripts, unavailable};
use crate::lock_failure::LockFailure;

/// How long the key of an order without `Idempotency-Key` names it: long enough
/// to retry after a lost reply with the operation id from the 503.
const OPERATION_KEY_TTL: Duration = Duration::from_secs(60 * 60);

/// Keys given by clients outlive the 24 h promised (like purchase claims).
const CLIENT_KEY_TTL: Duration = Duration::from_secs(IDEMPOTENCY_KEY_TTL.as_secs() + 60 * 60);

/// An order as stored in the buyer's slot: its journal while `pending` (lines
/// without prices), its record once `committed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredOrder {
    pub(crate) user_id: u64,
    pub(crate) lines: Vec<StoredLine>,
    /// The idempotency key it was placed under (the client's, or an operation id).
    pub(crate) operation_id: String,
    pub(crate) fingerprint: String,
    pub(crate) request_id: String,
    pub(crate) started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) committed_at: Option<i64>,
}

/// One line of a [`StoredOrder`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredLine {
    pub(crate) product_id: u64,
    pub(crate) quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unit_price: Option<u64>,
}

/// A line as [`order_scripts::APPLY_LINE`] records it in the product's slot.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AppliedLine {
    pub(crate) product_id: u64,
    pub(crate) quantity: u32,
    pub(crate) unit_price: u64,
}

impl StoredOrder {
    fn product_ids(&self) -> Vec<ProductId> {
        self.lines.iter().map(|l| ProductId(l.product_id)).collect()
    }

    fn operation_id(&self) -> Result<IdempotencyKey, StoreError> {
        IdempotencyKey::parse(self.operation_id.clone())
            .map_err(|_| StoreError::corrupt("an order journal names an invalid key"))
    }

    /// The order a committed record stands for.
    fn decode(&self, id: OrderId) -> Result<Order, StoreError> {
        let corrupt = |what: &str| StoreError::corrupt(format!("order {id}: {what}"));
        let mut total = Money::default();
        let mut lines = Vec::with_capacity(self.lines.len());
        for line in &self.lines {
            let unit_price = line
                .unit_price
                .and_then(|p| i64::try_from(p).ok())
                .and_then(|p| Price::parse(p).ok())
                .ok_or_else(|| corrupt("a line has no valid unit price"))?;
            let total_price = unit_price
                .times(line.quantity)
                .ok_or_else(|| corrupt("a line total overflows"))?;
            total = Money(
                total
                    .0
                    .checked_add(total_price.0)
                    .ok_or_else(|| corrupt("the total overflows"))?,
            );
            lines.push(OrderLine {
                product_id: ProductId(line.product_id),
                quantity: line.quantity,
                unit_price,
                total_price,
            });
        }
        let created_at = self
            .committed_at
            .and_then(codec::time_from_unix_ms)
            .ok_or_else(|| corrupt("no commit time"))?;
        Ok(Order {
            id,
            user_id: UserId(self.user_id),
            lines,
            total_price: total,
            created_at,
        })
    }
}

fn parse_stored(raw: &str) -> Result<StoredOrder, StoreError> {
    serde_json::from_str(raw)
        .map_err(|error| StoreError::corrupt(format!("an order record does not parse: {error}")))
}

fn parse_applied(raw: &str) -> Result<AppliedLine, StoreError> {
    serde_json::from_str(raw)
        .map_err(|error| StoreError::corrupt(format!("an order line does not parse: {error}")))
}

/// One order being placed.
struct Attempt {
    order: NewOrder,
    operation_id: IdempotencyKey,
    fingerprint: OrderFingerprint,
    key_ttl: Duration,
}

impl Attempt {
    fn new(order: NewOrder) -> Result<Self, StoreError> {
        let (operation_id, key_ttl) = match &order.idempotency_key {
            Some(key) => (key.clone(), CLIENT_KEY_TTL),
            None => {
                let id = format!("op-{}", uuid::Uuid::new_v4().simple());
                let id = IdempotencyKey::parse(id)
                    .map_err(|_| StoreError::corrupt("an operation id is not a valid key"))?;
                (id, OPERATION_KEY_TTL)
            }
        };
        Ok(Self {
            fingerprint: order.fingerprint(),
            order,
            operation_id,
            key_ttl,
        })
    }

    fn user(&self) -> UserId {
        self.order.user_id
    }

    fn unknown(&self) -> OrderError {
        OrderError::OutcomeUnknown {
            operation_id: self.operation_id.clone(),
        }
    }

    fn journal(&self) -> StoredOrder {
        StoredOrder {
            user_id: self.user().get(),
            lines: self
                .order
                .lines
                .lines()
                .iter()
                .map(|(product, quantity)| StoredLine {
                    product_id: product.get(),
                    quantity: *quantity,
                    unit_price: None,
                })
                .collect(),
            operation_id: self.operation_id.as_str().to_owned(),
            fingerprint: self.fingerprint.as_str().to_owned(),
            request_id: self.order.request_id.as_str().to_owned(),
            started_at: codec::unix_ms(codec::now()),
            committed_at: None,
        }
    }
}

/// What the buyer's slot says about an order's key.
struct Peeked {
    claim: String,
    number: Option<u64>,
    status: String,
    record: String,
}

/// Where an incomplete order ended up once finished.
pub(crate) enum Finished {
    /// Committed: rolled forward here (every line had been applied), or already
    /// committed by the time the locks were held.
    Committed { order: Order, rolled_forward: bool },
    /// Not made: rolled back here (not every line had been applied), or already
    /// aborted.
    Aborted { rolled_back: bool },
}

impl Finished {
    /// Whether finishing changed anything.
    fn did_work(&self) -> bool {
        matches!(
            self,
            Finished::Committed {
                rolled_forward: true,
                ..
            } | Finished::Aborted { rolled_back: true }
        )
    }
}

/// What applying an order's lines came to.
enum Applied {
    /// Every line is applied: the line records, by product.
    All(Vec<AppliedLine>),
    /// The stock changed behind the locks' back (a line no longer fits), or a
    /// product vanished: nothing may be kept.
    Refused(OrderError),
    /// A line's outcome could not be learned, or a lease was lost: the order
    /// stays pending for recovery.
    Unknown,
}

#[async_trait]
impl OrderService for RedisStore {
    #[tracing::instrument(skip_all, fields(user.id = %order.user_id, order.lines = order.lines.lines().len()))]
    async fn place(&self, order: NewOrder) -> Result<OrderReceipt, OrderError> {
        let attempt = Attempt::new(order)?;
        let peeked = self.peek(&attempt).await?;
        if !peeked.claim.is_empty() && peeked.claim != attempt.fingerprint.as_str() {
            return Err(OrderError::IdempotencyKeyReused);
        }
        let pending = match (peeked.status.as_str(), peeked.number) {
            ("committed", Some(number)) => {
                let id = order_id(attempt.user(), number)?;
                let order = parse_stored(&peeked.record)?.decode(id)?;
                return Ok(OrderReceipt {
                    order,
                    replayed: true,
                });
            }
            ("pending", Some(number)) => Some(number),
            _ => None,
        };
        if pending.is_none() {
            // Outside the locks: a quick 404, or a 409 for lines short already.
            self.check_stock(&attempt).await?;
        }
        let lock_keys: Vec<_> = attempt
            .order
            .lines
            .products()
            .map(keys::product_lock)
            .collect();
        let guards = self
            .lock
            .acquire_many(&lock_keys, &self.lock_options)
            .await
            .map_err(|error| {
                OrderError::from(LockFailure::classify(&error, "taking product locks"))
            })?;
        let decided = self.place_locked(&attempt, &guards, pending).await;
        let release = async {
            if let Err(error) = guards.release().await {
                tracing::warn!(%error, "releasing product locks after an order");
            }
        };
        // Once every line is applied the order is whole and the products are done
        // with: the locks go back while the buyer-side commit is written. (A crash
        // in between leaves a pending order whose every line is applied, which
        // whoever finishes it rolls forward — docs/LOCKING.md §6a.)
        let result = match decided {
            Ok(Decided::Commit {
                id,
                journal,
                applied,
            }) => {
                let ((), committed) = tokio::join!(release, self.commit(id, journal, &applied));
                match committed? {
                    Some(order) => Ok(OrderReceipt {
                        order,
                        replayed: false,
                    }),
                    None => Err(attempt.unknown()),
                }
            }
            Ok(Decided::Answer(receipt)) => {
                release.await;
                Ok(receipt)
            }
            Err(error) => {
                release.await;
                Err(error)
            }
        };
        if let Ok(receipt) = &result
            && !receipt.replayed
        {
            tracing::info!(order.id = %receipt.order.id, "order placed");
        }
        result
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let user = id.user();
        let (status, record): (Option<String>, Option<String>) = redis::pipe()
            .hget(keys::user_order_status(user), id.sequence())
            .hget(keys::user_order_records(user), id.sequence())
            .query_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading an order", error))?;
        match (status.as_deref(), record) {
            (Some("committed"), Some(record)) => parse_stored(&record)?.decode(id).map(Some),
            _ => Ok(None),
        }
    }

    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Order>, StoreError> {
        let mut data = self.data();
        let (start, stop) = super::index_range(page);
        let ids: Vec<u64> = redis::cmd("ZREVRANGE")
            .arg(keys::user_orders(user))
            .arg(start)
            .arg(stop)
            .query_async(&mut data)
            .await
            .map_err(|error| unavailable("listing orders", error))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<OrderId> = ids.into_iter().map(OrderId).collect();
        let records: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(keys::user_order_records(user))
            .arg(ids.iter().map(|id| id.sequence()).collect::<Vec<_>>())
            .query_async(&mut data)
            .await
            .map_err(|error| unavailable("reading orders", error))?;
        ids.iter()
            .zip(records)
            .filter_map(|(id, record)| record.map(|raw| (id, raw)))
            .map(|(id, raw)| parse_stored(&raw)?.decode(*id))
            .collect()
    }
}

impl RedisStore {
    async fn peek(&self, attempt: &Attempt) -> Result<Peeked, StoreError> {
        let user = attempt.user();
        let (claim, number, status, record): (String, String, String, String) = order_scripts::PEEK
            .key(keys::idempotency_claim(user, &attempt.operation_id))
            .key(keys::order_idempotency(user, &attempt.operation_id))
            .key(keys::user_order_status(user))
            .key(keys::user_order_records(user))
            .invoke_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading an order's key", error))?;
        Ok(Peeked {
            claim,
            number: number.parse().ok(),
            status,
            record,
        })
    }

    /// The stock of every product of the order, in line order; `None` for a
    /// product that does not exist.
    async fn read_stock(&self, products: &[ProductId]) -> Result<Vec<Option<u64>>, StoreError> {
        let mut pipe = redis::pipe();
        for product in products {
            pipe.hget(keys::product(*product), "stock");
        }
        pipe.query_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading stock", error))
    }

    /// 404 for the first unknown product, 409 for every short line.
    async fn check_stock(&self, attempt: &Attempt) -> Result<(), OrderError> {
        let lines = attempt.order.lines.lines();
        let products: Vec<ProductId> = lines.iter().map(|(p, _)| *p).collect();
        let stock = self.read_stock(&products).await?;
        let mut short = Vec::new();
        for ((product, requested), available) in lines.iter().zip(stock) {
            let Some(available) = available else {
                return Err(OrderError::ProductNotFound(*product));
            };
            if available < u64::from(*requested) {
                short.push(ShortLine {
                    product_id: *product,
                    requested: *requested,
                    available,
                });
            }
        }
        if short.is_empty() {
            Ok(())
        } else {
            Err(OrderError::InsufficientStock { lines: short })
        }
    }

    /// Steps 4–7 of placing, with every lock held. `pending`: an order the key
    /// names that was interrupted, to finish first.
    async fn place_locked(
        &self,
        attempt: &Attempt,
        guards: &MultiGuard,
        mut pending: Option<u64>,
    ) -> Result<Decided, OrderError> {
        let user = attempt.user();
        let request_id = &attempt.order.request_id;
        // Each pass either ends or finishes one interrupted order; twins holding
        // these locks one after another cannot leave more than one behind.
        for _ in 0..3 {
            if let Some(number) = pending.take() {
                let journal = self.journal(user, number).await?;
                if journal.fingerprint != attempt.fingerprint.as_str() {
                    return Err(OrderError::IdempotencyKeyReused);
                }
                match self
                    .finish_held(user, number, &journal, guards, request_id)
                    .await
                {
                    Ok(Finished::Committed { order, .. }) => {
                        return Ok(Decided::Answer(OrderReceipt {
                            order,
                            replayed: true,
                        }));
                    }
                    Ok(Finished::Aborted { .. }) => {}
                    // Still pending: the next retry with the key (or reconcile) goes on.
                    Err(error) => {
                        tracing::warn!(%error, "finishing an interrupted order");
                        return Err(attempt.unknown());
                    }
                }
            }
            guards.ensure_held().map_err(|error| {
                OrderError::from(LockFailure::classify(&error, "holding product locks"))
            })?;
            self.check_stock(attempt).await?;
            let begun = self.begin(attempt).await?;
            match begun {
                Begun::KeyReused => return Err(OrderError::IdempotencyKeyReused),
                Begun::Committed(number, record) => {
                    let order = parse_stored(&record)?.decode(order_id(user, number)?)?;
                    return Ok(Decided::Answer(OrderReceipt {
                        order,
                        replayed: true,
                    }));
                }
                Begun::Pending(number) => pending = Some(number),
                Begun::New(number) => return self.apply(attempt, number, guards).await,
            }
        }
        Err(attempt.unknown())
    }

    async fn begin(&self, attempt: &Attempt) -> Result<Begun, OrderError> {
        let user = attempt.user();
        let journal = serde_json::to_string(&attempt.journal())
            .map_err(|error| StoreError::corrupt(format!("encoding a journal: {error}")))?;
        let reply: Vec<Value> = match order_scripts::BEGIN
            .key(keys::idempotency_claim(user, &attempt.operation_id))
            .key(keys::order_idempotency(user, &attempt.operation_id))
            .key(keys::user_order_seq(user))
            .key(keys::user_order_records(user))
            .key(keys::user_order_status(user))
            .key(keys::user_orders_pending(user))
            .arg(attempt.fingerprint.as_str())
            .arg(millis(attempt.key_ttl))
            .arg(journal)
            .invoke_async(&mut self.data())
            .await
        {
            Ok(reply) => reply,
            // The journal may have been written: whoever finishes it next (a retry
            // with the key, or reconcile) decides; nothing was applied yet.
            Err(error) if is_unknown(&error) => return Err(attempt.unknown()),
            Err(error) => return Err(unavailable("opening an order journal", error).into()),
        };
        let text = |index: usize| {
            reply
                .get(index)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        };
        let number = || text(1).and_then(|n| n.parse::<u64>().ok());
        let corrupt = || StoreError::corrupt("unexpected reply from the order journal");
        Ok(match text(0).as_deref() {
            Some("begun") => Begun::New(number().ok_or_else(corrupt)?),
            Some("key-reused") => Begun::KeyReused,
            Some("committed") => {
                Begun::Committed(number().ok_or_else(corrupt)?, text(2).ok_or_else(corrupt)?)
            }
            Some("pending") => Begun::Pending(number().ok_or_else(corrupt)?),
            _ => return Err(corrupt().into()),
        })
    }

    /// Step 6 and 7: every line at once, then the commit.
    /// Step 6: every line; what is left to do is the commit (step 7), which
    /// needs no product lock.
    async fn apply(
        &self,
        attempt: &Attempt,
        number: u64,
        guards: &MultiGuard,
    ) -> Result<Decided, OrderError> {
        let user = attempt.user();
        let id = order_id(user, number)?;
        let journal = attempt.journal();
        let request_id = &attempt.order.request_id;
        match self.apply_lines(id, &journal, guards, request_id).await? {
            Applied::All(applied) => Ok(Decided::Commit {
                id,
                journal,
                applied,
            }),
            Applied::Refused(refusal) => {
                match self
                    .roll_back(user, number, &journal, guards, request_id)
                    .await
                {
                    Ok(()) => Err(refusal),
                    Err(_) => Err(attempt.unknown()),
                }
            }
            Applied::Unknown => Err(attempt.unknown()),
        }
    }

    /// Sends every line of `journal` at once (each under its product's guard);
    /// a line whose reply was lost is sent once more (it is idempotent).
    async fn apply_lines(
        &self,
        id: OrderId,
        journal: &StoredOrder,
        guards: &MultiGuard,
        request_id: &RequestId,
    ) -> Result<Applied, StoreError> {
        let now = codec::unix_ms(codec::now());
        let line_guards = line_guards(journal, guards)?;
        fn send<'g>(
            line: &StoredLine,
            guard: &'g LockGuard,
            id: OrderId,
            user: u64,
            now: i64,
            request_id: &RequestId,
        ) -> GuardedInvocation<'g> {
            let product = ProductId(line.product_id);
            line_args(order_scripts::APPLY_LINE.prepare(guard), product)
                .arg(keys::order_field(id))
                .arg(user)
                .arg(line.quantity)
                .arg(now)
                .arg(request_id.as_str())
                .arg(product.get())
        }
        let send =
            |line: &StoredLine, guard| send(line, guard, id, journal.user_id, now, request_id);
        let mut replies = join_all(
            journal
                .lines
                .iter()
                .zip(&line_guards)
                .map(|(line, guard)| invoke(send(line, guard), self.data())),
        )
        .await;
        for (index, (line, guard)) in journal.lines.iter().zip(&line_guards).enumerate() {
            if replies[index]
                .as_ref()
                .is_err_and(LockError::is_unknown_outcome)
            {
                replies[index] = invoke(send(line, guard), self.data()).await;
            }
        }
        let mut applied = Vec::with_capacity(journal.lines.len());
        let mut short = Vec::new();
        let mut missing = None;
        let mut unknown = false;
        for (line, reply) in journal.lines.iter().zip(replies) {
            let product = ProductId(line.product_id);
            let Ok(reply) = reply else {
                unknown = true;
                continue;
            };
            let text = |index: usize| {
                reply
                    .get(index)
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            };
            match text(0).as_deref() {
                Some("applied") => {
                    let raw = text(1).ok_or_else(corrupt_line_reply)?;
                    applied.push(parse_applied(&raw)?);
                    if let Some(stock) = reply
                        .get(2)
                        .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                    {
                        crate::metrics::stock(product, stock);
                    }
                }
                Some("insufficient") => short.push(ShortLine {
                    product_id: product,
                    requested: line.quantity,
                    available: reply
                        .get(1)
                        .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                        .unwrap_or(0),
                }),
                Some("no-product") => {
                    missing.get_or_insert(product);
                }
                // Recovery gave this order up already: it cannot be completed.
                Some("undone") => unknown = true,
                _ => return Err(corrupt_line_reply()),
            }
        }
        Ok(if unknown {
            Applied::Unknown
        } else if let Some(product) = missing {
            Applied::Refused(OrderError::ProductNotFound(product))
        } else if !short.is_empty() {
            Applied::Refused(OrderError::InsufficientStock { lines: short })
        } else {
            Applied::All(applied)
        })
    }

    /// Step 7: the record (with the prices the lines were bought at), indexed.
    /// `Ok(None)`: the reply was lost (the commit may or may not have happened).
    async fn commit(
        &self,
        id: OrderId,
        mut journal: StoredOrder,
        applied: &[AppliedLine],
    ) -> Result<Option<Order>, StoreError> {
        for line in &mut journal.lines {
            let bought = applied
                .iter()
                .find(|a| a.product_id == line.product_id)
                .filter(|a| a.quantity == line.quantity)
                .ok_or_else(|| {
                    StoreError::corrupt(format!(
                        "order {id}: product {}'s line does not match its journal",
                        line.product_id
                    ))
                })?;
            line.unit_price = Some(bought.unit_price);
        }
        let committed_at = codec::unix_ms(codec::now());
        journal.committed_at = Some(committed_at);
        let record = serde_json::to_string(&journal)
            .map_err(|error| StoreError::corrupt(format!("encoding an order: {error}")))?;
        let user = id.user();
        let reply: Vec<Value> = match order_scripts::COMMIT
            .key(keys::user_order_status(user))
            .key(keys::user_order_records(user))
            .key(keys::user_orders(user))
            .key(keys::user_orders_pending(user))
            .arg(id.sequence())
            .arg(record)
            .arg(committed_at)
            .arg(id.get())
            .invoke_async(&mut self.data())
            .await
        {
            Ok(reply) => reply,
            Err(error) if is_unknown(&error) => {
                tracing::warn!(%error, order.id = %id, "an order's commit reply was lost");
                return Ok(None);
            }
            Err(error) => return Err(unavailable("committing an order", error)),
        };
        let text = |index: usize| {
            reply
                .get(index)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        };
        match (text(0).as_deref(), text(1)) {
            (Some("committed"), Some(record)) => Ok(Some(parse_stored(&record)?.decode(id)?)),
            _ => Err(StoreError::corrupt(format!(
                "order {id} was not pending at its commit"
            ))),
        }
    }

    /// Undoes every line of order `number` (applied or not: an undone line can
    /// never be applied later) and aborts it, giving its key back.
    async fn roll_back(
        &self,
        user: UserId,
        number: u64,
        journal: &StoredOrder,
        guards: &MultiGuard,
        request_id: &RequestId,
    ) -> Result<(), OrderError> {
        let id = order_id(user, number)?;
        let now = codec::unix_ms(codec::now());
        let line_guards = line_guards(journal, guards)?;
        fn undo<'g>(
            line: &StoredLine,
            guard: &'g LockGuard,
            id: OrderId,
            user: u64,
            now: i64,
            request_id: &RequestId,
        ) -> GuardedInvocation<'g> {
            let product = ProductId(line.product_id);
            line_args(order_scripts::UNDO_LINE.prepare(guard), product)
                .arg(keys::order_field(id))
                .arg(user)
                .arg(now)
                .arg(request_id.as_str())
        }
        let undo =
            |line: &StoredLine, guard| undo(line, guard, id, journal.user_id, now, request_id);
        let replies = join_all(
            journal
                .lines
                .iter()
                .zip(&line_guards)
                .map(|(line, guard)| invoke(undo(line, guard), self.data())),
        )
        .await;
        for line in &journal.lines {
            refresh_stock_gauge(&mut self.data(), ProductId(line.product_id)).await;
        }
        if let Some(error) = replies.into_iter().find_map(Result::err) {
            tracing::warn!(%error, order.id = %id, "undoing the lines of an incomplete order");
            return Err(LockFailure::classify(&error, "undoing order lines").into());
        }
        let key = journal.operation_id()?;
        let _: Value = order_scripts::ABORT
            .key(keys::user_order_status(user))
            .key(keys::user_orders_pending(user))
            .key(keys::idempotency_claim(user, &key))
            .key(keys::order_idempotency(user, &key))
            .arg(number)
            .arg(&journal.fingerprint)
            .invoke_async(&mut self.data())
            .await
            .map_err(|error| unavailable("aborting an order", error))?;
        tracing::info!(order.id = %id, "incomplete order rolled back");
        Ok(())
    }

    /// The journal (or record) of order `number` of `user`.
    pub(crate) async fn journal(
        &self,
        user: UserId,
        number: u64,
    ) -> Result<StoredOrder, StoreError> {
        let raw: Option<String> = redis::cmd("HGET")
            .arg(keys::user_order_records(user))
            .arg(number)
            .query_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading an order journal", error))?;
        parse_stored(&raw.ok_or_else(|| StoreError::corrupt("an order has no journal"))?)
    }

    /// Finishes order `number` of `user`, whose every product lock `guards`
    /// holds (taken after the order was begun, so no line of the attempt that
    /// began it can be written any more): commits it if every line was applied,
    /// rolls it back otherwise. Idempotent.
    pub(crate) async fn finish_held(
        &self,
        user: UserId,
        number: u64,
        journal: &StoredOrder,
        guards: &MultiGuard,
        request_id: &RequestId,
    ) -> Result<Finished, OrderError> {
        let id = order_id(user, number)?;
        let status: Option<String> = redis::cmd("HGET")
            .arg(keys::user_order_status(user))
            .arg(number)
            .query_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading an order's status", error))?;
        match status.as_deref() {
            Some("committed") => {
                return Ok(Finished::Committed {
                    order: self.journal(user, number).await?.decode(id)?,
                    rolled_forward: false,
                });
            }
            Some("pending") => {}
            _ => return Ok(Finished::Aborted { rolled_back: false }),
        }
        guards.ensure_held().map_err(|error| {
            OrderError::from(LockFailure::classify(&error, "holding product locks"))
        })?;
        let mut pipe = redis::pipe();
        for product in journal.product_ids() {
            pipe.hget(keys::order_lines(product), keys::order_field(id));
        }
        let lines: Vec<Option<String>> = pipe
            .query_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading order lines", error))?;
        if lines.iter().all(Option::is_some) {
            let applied = lines
                .iter()
                .flatten()
                .map(|raw| parse_applied(raw))
                .collect::<Result<Vec<_>, _>>()?;
            let order = self
                .commit(id, journal.clone(), &applied)
                .await?
                .ok_or_else(|| StoreError::unavailable("committing an order", "reply lost"))?;
            tracing::info!(order.id = %id, "incomplete order rolled forward: every line was applied");
            return Ok(Finished::Committed {
                order,
                rolled_forward: true,
            });
        }
        self.roll_back(user, number, journal, guards, request_id)
            .await?;
        Ok(Finished::Aborted { rolled_back: true })
    }

    /// Finishes order `number` of `user` if it is pending: takes every lock of
    /// its products first. For reconcile. `Ok(false)` when there was nothing to
    /// do by then (e.g. the attempt that began it was still running, and finished).
    pub(crate) async fn finish_pending(
        &self,
        user: UserId,
        number: u64,
        request_id: &RequestId,
    ) -> Result<bool, OrderError> {
        let journal = self.journal(user, number).await?;
        let lock_keys: Vec<_> = journal
            .product_ids()
            .into_iter()
            .map(keys::product_lock)
            .collect();
        let guards = self
            .lock
            .acquire_many(&lock_keys, &self.lock_options)
            .await
            .map_err(|error| {
                OrderError::from(LockFailure::classify(&error, "taking product locks"))
            })?;
        let finished = self
            .finish_held(user, number, &journal, &guards, request_id)
            .await;
        if let Err(error) = guards.release().await {
            tracing::warn!(%error, "releasing product locks after finishing an order");
        }
        finished.map(|finished| finished.did_work())
    }
}

/// What placing decided while holding the locks.
enum Decided {
    /// The answer (a replay).
    Answer(OrderReceipt),
    /// Every line is applied: commit the order (after, or while, releasing the locks).
    Commit {
        id: OrderId,
        journal: StoredOrder,
        applied: Vec<AppliedLine>,
    },
}

/// What [`order_scripts::BEGIN`] found.
enum Begun {
    New(u64),
    KeyReused,
    Committed(u64, String),
    Pending(u64),
}

/// The guard of each line's product, in line order.
fn line_guards<'a>(
    journal: &StoredOrder,
    guards: &'a MultiGuard,
) -> Result<Vec<&'a LockGuard>, StoreError> {
    journal
        .product_ids()
        .into_iter()
        .map(|product| {
            guards
                .get(&keys::product_lock(product))
                .ok_or_else(|| StoreError::corrupt(format!("product {product}'s lock is not held")))
        })
        .collect()
}

/// Sends one guarded line script.
async fn invoke(
    invocation: GuardedInvocation<'_>,
    mut data: ConnectionManager,
) -> Result<Vec<Value>, LockError> {
    invocation.invoke(&mut data).await
}

/// The product-side keys of [`order_scripts::APPLY_LINE`] / [`order_scripts::UNDO_LINE`].
fn line_args<A: ScriptArgs>(invocation: A, product: ProductId) -> A {
    invocation
        .key(keys::product(product))
        .key(keys::order_lines(product))
        .key(keys::order_lines_undone(product))
        .key(keys::product_audit(product))
}

async fn refresh_stock_gauge(data: &mut ConnectionManager, product: ProductId) {
    let stock: Result<Option<u64>, _> = redis::cmd("HGET")
        .arg(keys::product(product))
        .arg("stock")
        .query_async(data)
        .await;
    if let Ok(Some(stock)) = stock {
        crate::metrics::stock(product, stock);
    }
}

fn order_id(user: UserId, number: u64) -> Result<OrderId, StoreError> {
    OrderId::compose(user, number).ok_or_else(|| {
        StoreError::corrupt(format!(
            "order number {number} of user {user} is out of range"
        ))
    })
}

fn corrupt_line_reply() -> StoreError {
    StoreError::corrupt("unexpected reply from an order line script")
}

/// A Redis error after which the command may or may not have run.
fn is_unknown(error: &redis::RedisError) -> bool {
    error.is_timeout() || error.is_connection_dropped() || error.is_io_error()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
