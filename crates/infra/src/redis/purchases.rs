//! [`PurchaseService`] over Redis.
//!
//! A purchase costs, in order:
//! 1. one pipelined round trip: the product's price and stock, the request's
//!    idempotency record, and a fresh purchase id — replays, unknown products
//!    and sold-out products are answered here, without the lock (stock only
//!    grows under the lock, so a refusal on a slightly old read is the same as
//!    arriving a moment earlier);
//! 2. the product's lock (same-process FIFO, then Redis);
//! 3. the guarded [`scripts::PURCHASE`] script: lock check, idempotency check,
//!    stock check, decrement, record, log, index, idempotency record — one step;
//! 4. the release.
//!
//! While queued for the lock, a request also watches the levels this process's
//! scripts publish ([`super::stock_watch`]): once the product cannot cover it
//! any more, it leaves the queue with "insufficient stock" instead of waiting
//! for a lock turn only to hear the same from the script.
//!
//! Every request carries an idempotency record key: the client's
//! `Idempotency-Key`, or a server-made operation id. If the script's reply is
//! lost (timeout, dropped connection), that record says whether the purchase
//! happened; a purchase is never retried blindly.

use std::time::Duration;

use async_trait::async_trait;
use inventory_domain::{
    IDEMPOTENCY_KEY_TTL, Page, Price, ProductId, Purchase, PurchaseError, PurchaseId,
    PurchaseOrder, PurchaseReceipt, PurchaseService, StoreError, UserId,
};
use inventory_lock::DistributedLock;
use redis::{AsyncCommands, Value};

use super::codec::{self, Fields};
use super::{RedisStore, keys, lock_failure, script_failure, scripts, unavailable};
use inventory_lock::ScriptArgs;

/// How long the record of a request without `Idempotency-Key` is kept: long
/// enough to settle a lost reply, short enough not to pile up.
const OPERATION_RECORD_TTL: Duration = Duration::from_secs(60 * 60);

/// Fields of an idempotency record, in the order they are read.
const RECORD_FIELDS: &[&str] = &["fingerprint", "purchase_id", "remaining"];

/// An idempotency record as read: fingerprint, purchase id, remaining stock.
type StoredRecord = (Option<String>, Option<u64>, Option<u64>);

/// What the script said.
enum Outcome {
    Created {
        remaining: u64,
    },
    Replay {
        purchase: PurchaseId,
        remaining: u64,
    },
    KeyReused,
    NoProduct,
    Insufficient {
        available: u64,
    },
}

/// What one pipelined read before the lock found.
struct Preflight {
    price: Option<u64>,
    stock: Option<u64>,
    recorded: Option<(String, PurchaseId, u64)>,
    purchase_id: PurchaseId,
}

#[async_trait]
impl PurchaseService for RedisStore {
    #[tracing::instrument(skip_all, fields(product.id = %order.product_id, user.id = %order.user_id))]
    async fn purchase(&self, order: PurchaseOrder) -> Result<PurchaseReceipt, PurchaseError> {
        let (record, record_ttl) = match &order.idempotency_key {
            Some(key) => (
                keys::idempotency(order.user_id, key.as_str()),
                IDEMPOTENCY_KEY_TTL,
            ),
            None => (
                keys::operation(&uuid::Uuid::new_v4().to_string()),
                OPERATION_RECORD_TTL,
            ),
        };
        let fingerprint = order.fingerprint();
        let preflight = self.preflight(&order, &record).await?;
        if let Some((stored, purchase, remaining)) = &preflight.recorded {
            if stored != fingerprint.as_str() {
                return Err(PurchaseError::IdempotencyKeyReused);
            }
            return self.replay(*purchase, *remaining).await;
        }
        let (Some(price), Some(stock)) = (preflight.price, preflight.stock) else {
            return Err(PurchaseError::ProductNotFound(order.product_id));
        };
        let requested = order.quantity.get();
        if stock < u64::from(requested) {
            return Err(PurchaseError::InsufficientStock {
                requested,
                available: stock,
            });
        }
        let unit_price = Price::parse(i64::try_from(price).unwrap_or(i64::MAX))
            .map_err(|_| StoreError::corrupt("product has an invalid price"))?;
        let total = unit_price
            .times(requested)
            .ok_or_else(|| StoreError::corrupt("total price overflows"))?;
        let purchase = Purchase {
            id: preflight.purchase_id,
            user_id: order.user_id,
            product_id: order.product_id,
            quantity: requested,
            unit_price,
            total_price: total,
            purchased_at: codec::now(),
        };
        let outcome = self
            .purchase_under_lock(&purchase, &record, record_ttl, fingerprint.as_str())
            .await;
        let outcome = match outcome {
            Err(PurchaseError::OutcomeUnknown) => {
                self.settle(&record, fingerprint.as_str()).await?
            }
            other => other?,
        };
        self.receipt(purchase, outcome).await
    }

    async fn get(&self, id: PurchaseId) -> Result<Option<Purchase>, StoreError> {
        let mut connection = self.connection().await?;
        let fields: Fields = connection
            .hgetall(keys::purchase(id))
            .await
            .map_err(|error| unavailable("reading a purchase", error))?;
        if fields.is_empty() {
            return Ok(None);
        }
        codec::purchase(&fields).map(Some)
    }

    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Purchase>, StoreError> {
        let mut connection = self.connection().await?;
        let (start, stop) = super::index_range(page);
        let ids: Vec<u64> = connection
            .zrevrange(keys::user_purchases(user), start, stop)
            .await
            .map_err(|error| unavailable("listing purchases", error))?;
        let hashes = ids.into_iter().map(|id| keys::purchase(PurchaseId(id)));
        let rows = super::read_hashes(&mut connection, hashes, "reading purchases").await?;
        rows.iter().map(codec::purchase).collect()
    }
}

impl RedisStore {
    async fn preflight(
        &self,
        order: &PurchaseOrder,
        record: &str,
    ) -> Result<Preflight, PurchaseError> {
        let mut connection = self.connection().await?;
        let ((price, stock), (fingerprint, purchase, remaining), purchase_id): (
            (Option<u64>, Option<u64>),
            StoredRecord,
            u64,
        ) = redis::pipe()
            .cmd("HMGET")
            .arg(keys::product(order.product_id))
            .arg(&["price", "stock"])
            .cmd("HMGET")
            .arg(record)
            .arg(RECORD_FIELDS)
            .incr(keys::PURCHASE_IDS, 1)
            .query_async(&mut connection)
            .await
            .map_err(|error| unavailable("reading the product before a purchase", error))?;
        let recorded = match (fingerprint, purchase, remaining) {
            (Some(fingerprint), Some(purchase), Some(remaining)) => {
                Some((fingerprint, PurchaseId(purchase), remaining))
            }
            _ => None,
        };
        Ok(Preflight {
            price,
            stock,
            recorded,
            purchase_id: PurchaseId(purchase_id),
        })
    }

    /// Lock, run the guarded script, release. `OutcomeUnknown` if the reply was lost.
    async fn purchase_under_lock(
        &self,
        purchase: &Purchase,
        record: &str,
        record_ttl: Duration,
        fingerprint: &str,
    ) -> Result<Outcome, PurchaseError> {
        let lock_key = keys::product_lock(purchase.product_id);
        let acquire = self.lock.acquire(&lock_key, &self.lock_options);
        let sold_out = self
            .stock_watch
            .falls_below(purchase.product_id, u64::from(purchase.quantity));
        let guard = tokio::select! {
            guard = acquire => guard.map_err(|error| {
                match lock_failure(error, self.lock_options.wait_timeout()) {
                    Ok(retry_after) => PurchaseError::LockTimeout { retry_after },
                    Err(store) => PurchaseError::Store(store),
                }
            })?,
            available = sold_out => return Ok(Outcome::Insufficient { available }),
        };
        let mut connection = self.guarded_connection();
        let reply = scripts::PURCHASE
            .prepare(&guard)
            .key(keys::product(purchase.product_id))
            .key(keys::product_purchases(purchase.product_id))
            .key(keys::purchase(purchase.id))
            .key(keys::user_purchases(purchase.user_id))
            .key(record)
            .arg(purchase.quantity)
            .arg(purchase.user_id.get())
            .arg(purchase.id.get())
            .arg(purchase.product_id.get())
            .arg(purchase.unit_price.minor_units())
            .arg(purchase.total_price.minor_units())
            .arg(codec::unix_ms(purchase.purchased_at))
            .arg(fingerprint)
            .arg(u64::try_from(record_ttl.as_millis()).unwrap_or(u64::MAX))
            .invoke::<Vec<Value>>(&mut connection)
            .await;
        if let Err(error) = guard.release().await {
            tracing::warn!(%error, "releasing a product lock after a purchase");
        }
        match reply {
            Ok(reply) => {
                let outcome = parse_outcome(&reply).map_err(PurchaseError::Store)?;
                self.publish_level(purchase.product_id, &outcome);
                Ok(outcome)
            }
            Err(error) if error.is_unknown_outcome() => {
                tracing::warn!(%error, "purchase reply lost; settling through the idempotency record");
                Err(PurchaseError::OutcomeUnknown)
            }
            Err(error) => Err(match script_failure(error) {
                Ok(retry_after) => PurchaseError::LockTimeout { retry_after },
                Err(store) => PurchaseError::Store(store),
            }),
        }
    }

    /// After a lost reply: the idempotency record, written atomically with the
    /// purchase, tells whether it happened. If it is absent the script has not
    /// run *yet* as far as we can see (it may still be queued), so the outcome
    /// stays unknown and the client must retry with the same key.
    async fn settle(&self, record: &str, fingerprint: &str) -> Result<Outcome, PurchaseError> {
        let mut connection = self
            .connection()
            .await
            .map_err(|_| PurchaseError::OutcomeUnknown)?;
        let (stored, purchase, remaining): StoredRecord = redis::cmd("HMGET")
            .arg(record)
            .arg(RECORD_FIELDS)
            .query_async(&mut connection)
            .await
            .map_err(|_| PurchaseError::OutcomeUnknown)?;
        match (stored, purchase, remaining) {
            (Some(stored), Some(_), Some(remaining)) if stored == fingerprint => {
                Ok(Outcome::Created { remaining })
            }
            _ => Err(PurchaseError::OutcomeUnknown),
        }
    }

    /// Tells the requests queued behind this product's lock the level the script
    /// just read. Only script replies are published: a level a queued request
    /// learned from the watch itself is not news, and republishing it would wake
    /// every other queued request once per refusal.
    fn publish_level(&self, product: ProductId, outcome: &Outcome) {
        match *outcome {
            Outcome::Created { remaining } => self.stock_watch.publish(product, remaining),
            Outcome::Insufficient { available } => self.stock_watch.publish(product, available),
            Outcome::Replay { .. } | Outcome::KeyReused | Outcome::NoProduct => {}
        }
    }

    async fn receipt(
        &self,
        purchase: Purchase,
        outcome: Outcome,
    ) -> Result<PurchaseReceipt, PurchaseError> {
        match outcome {
            Outcome::Created { remaining } => {
                crate::metrics::stock(purchase.product_id, remaining);
                Ok(PurchaseReceipt {
                    purchase,
                    remaining_stock: remaining,
                    replayed: false,
                })
            }
            Outcome::Replay {
                purchase,
                remaining,
            } => self.replay(purchase, remaining).await,
            Outcome::KeyReused => Err(PurchaseError::IdempotencyKeyReused),
            Outcome::NoProduct => Err(PurchaseError::ProductNotFound(purchase.product_id)),
            Outcome::Insufficient { available } => Err(PurchaseError::InsufficientStock {
                requested: purchase.quantity,
                available,
            }),
        }
    }

    async fn replay(
        &self,
        id: PurchaseId,
        remaining: u64,
    ) -> Result<PurchaseReceipt, PurchaseError> {
        let purchase = PurchaseService::get(self, id).await?.ok_or_else(|| {
            StoreError::corrupt(format!(
                "idempotency record points at missing purchase {id}"
            ))
        })?;
        Ok(PurchaseReceipt {
            purchase,
            remaining_stock: remaining,
            replayed: true,
        })
    }
}

fn parse_outcome(reply: &[Value]) -> Result<Outcome, StoreError> {
    let unexpected = || StoreError::corrupt("unexpected reply from the purchase script");
    let number = |index: usize| -> Result<u64, StoreError> {
        reply
            .get(index)
            .and_then(|value| redis::from_redis_value_ref::<u64>(value).ok())
            .ok_or_else(unexpected)
    };
    let tag = reply
        .first()
        .and_then(|tag| redis::from_redis_value_ref::<String>(tag).ok())
        .ok_or_else(unexpected)?;
    Ok(match tag.as_str() {
        "created" => Outcome::Created {
            remaining: number(1)?,
        },
        "replay" => Outcome::Replay {
            purchase: PurchaseId(number(1)?),
            remaining: number(2)?,
        },
        "key-reused" => Outcome::KeyReused,
        "no-product" => Outcome::NoProduct,
        "insufficient" => Outcome::Insufficient {
            available: number(1)?,
        },
        _ => return Err(unexpected()),
    })
}
