//! [`ProductRepository`] over Redis. Restocks and adjustments run under the
//! product's lock, as guarded scripts (or as one fused acquire → write → release
//! step when the lock is free and lives on the data node), like purchases; each
//! writes its audit entry in the same script.

use std::time::Duration;

use async_trait::async_trait;
use inventory_domain::{
    Actor, Adjustment, AuditPage, AuditQuery, IDEMPOTENCY_KEY_TTL, IdempotencyKey, NewProduct,
    Page, Product, ProductError, ProductId, ProductRepository, RestockOrder, RestockReceipt, Stock,
    StockLevel, StoreError,
};
use inventory_lock::{Fused, GuardedScript, LockError, ScriptArgs};
use redis::{AsyncCommands, Value};

use super::codec::{self, Fields};
use super::{RedisStore, keys, scripts, unavailable};
use crate::lock_failure::LockFailure;

/// How long the record of a restock without `Idempotency-Key` is kept: long
/// enough to retry with the operation id a lost reply's 503 names.
const OPERATION_RECORD_TTL: Duration = Duration::from_secs(60 * 60);

#[async_trait]
impl ProductRepository for RedisStore {
    #[tracing::instrument(skip_all, fields(product.name = %new.name.as_str()))]
    async fn create(&self, new: NewProduct, by: &Actor) -> Result<Product, ProductError> {
        let mut connection = self.pooled().await?;
        let id: u64 = connection
            .incr(keys::PRODUCT_IDS, 1)
            .await
            .map_err(|error| unavailable("allocating a product id", error))?;
        let now = codec::now();
        let product = Product {
            id: ProductId(id),
            name: new.name,
            description: new.description,
            price: new.price,
            stock: new.stock.units(),
            created_at: now,
            updated_at: now,
        };
        let created: i64 = scripts::CREATE_PRODUCT
            .key(keys::product_name(product.name.as_str()))
            .key(keys::product(product.id))
            .key(keys::PRODUCTS)
            .key(keys::product_audit(product.id))
            .arg(id)
            .arg(product.name.as_str())
            .arg(product.price.minor_units())
            .arg(product.stock)
            .arg(codec::unix_ms(now))
            .arg(product.description.as_ref().map_or("", |d| d.as_str()))
            .arg(if product.description.is_some() {
                "1"
            } else {
                "0"
            })
            .arg(by.user_id.get())
            .arg(by.request_id.as_str())
            .invoke_async(&mut connection)
            .await
            .map_err(|error| unavailable("creating a product", error))?;
        if created != 1 {
            return Err(ProductError::NameTaken);
        }
        crate::metrics::stock(product.id, product.stock);
        Ok(product)
    }

    async fn get(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        let fields = self.product_fields(id).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        codec::product(&fields).map(Some)
    }

    async fn list(&self, page: Page) -> Result<Vec<Product>, StoreError> {
        let mut connection = self.data();
        let (start, stop) = super::index_range(page);
        let ids: Vec<u64> = connection
            .zrange(keys::PRODUCTS, start, stop)
            .await
            .map_err(|error| unavailable("listing products", error))?;
        let hashes = ids.into_iter().map(|id| keys::product(ProductId(id)));
        let rows = super::read_hashes(&mut connection, hashes, "reading products").await?;
        rows.iter()
            .filter(|fields| !fields.is_empty())
            .map(codec::product)
            .collect()
    }

    async fn stock(&self, id: ProductId) -> Result<Option<StockLevel>, StoreError> {
        let fields = self.product_fields(id).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        codec::stock_level(&fields).map(Some)
    }

    #[tracing::instrument(skip_all, fields(product.id = %id, quantity = order.quantity.get()))]
    async fn restock(
        &self,
        id: ProductId,
        order: RestockOrder,
        by: &Actor,
    ) -> Result<RestockReceipt, ProductError> {
        let (operation_id, ttl) = match &order.idempotency_key {
            Some(key) => (key.clone(), IDEMPOTENCY_KEY_TTL),
            None => (operation_id()?, OPERATION_RECORD_TTL),
        };
        let record_key = keys::restock_idempotency(id, by.user_id, &operation_id);
        let fingerprint = order.fingerprint();
        let write = StockWrite {
            keys: vec![
                keys::product(id),
                keys::product_audit(id),
                record_key.clone(),
            ],
            args: vec![
                order.quantity.get().to_string(),
                Stock::MAX.to_string(),
                codec::unix_ms(codec::now()).to_string(),
                by.user_id.to_string(),
                by.request_id.to_string(),
                fingerprint.as_str().to_owned(),
                millis(ttl).to_string(),
            ],
        };
        let reply = match self.locked_write(id, &scripts::RESTOCK, &write).await {
            Ok(reply) => reply,
            Err(Written::Unknown(error)) => {
                tracing::warn!(%error, "restock reply lost; settling through its record");
                self.settle_restock(&record_key, fingerprint.as_str())
                    .await
                    .ok_or(ProductError::OutcomeUnknown { operation_id })?
            }
            Err(Written::NotWritten(failure)) => return Err(failure.into()),
        };
        let receipt = restock_outcome(id, order.quantity.get(), &reply)?;
        if !receipt.replayed {
            crate::metrics::stock(id, receipt.level.stock);
        }
        Ok(receipt)
    }

    #[tracing::instrument(skip_all, fields(product.id = %id, stock = adjustment.stock.units()))]
    async fn adjust(
        &self,
        id: ProductId,
        adjustment: Adjustment,
        by: &Actor,
    ) -> Result<StockLevel, ProductError> {
        let write = StockWrite {
            keys: vec![keys::product(id), keys::product_audit(id)],
            args: vec![
                adjustment.stock.units().to_string(),
                codec::unix_ms(codec::now()).to_string(),
                by.user_id.to_string(),
                by.request_id.to_string(),
                adjustment.reason.as_str().to_owned(),
            ],
        };
        let reply = match self.locked_write(id, &scripts::ADJUST, &write).await {
            Ok(reply) => reply,
            // Setting the stock again is harmless: the client may simply retry.
            Err(Written::Unknown(error)) => {
                return Err(StoreError::unavailable("adjusting stock: reply lost", error).into());
            }
            Err(Written::NotWritten(failure)) => return Err(failure.into()),
        };
        match reply_tag(&reply).as_deref() {
            Some("ok") => {
                let level = level_of(id, &reply, 1)?;
                crate::metrics::stock(id, level.stock);
                Ok(level)
            }
            Some("no-product") => Err(ProductError::NotFound(id)),
            _ => Err(StoreError::corrupt("unexpected reply from the adjust script").into()),
        }
    }

    async fn audit(
        &self,
        id: ProductId,
        query: AuditQuery,
    ) -> Result<Option<AuditPage>, StoreError> {
        let start = query
            .after_cursor()
            .map_or_else(|| "-".to_owned(), |after| format!("({after}"));
        let (exists, entries): (bool, Vec<(String, Vec<String>)>) = redis::pipe()
            .exists(keys::product(id))
            .cmd("XRANGE")
            .arg(keys::product_audit(id))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(query.limit())
            .query_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading an audit trail", error))?;
        if !exists {
            return Ok(None);
        }
        let entries = entries
            .iter()
            .map(|(id, fields)| codec::audit_entry(id, fields))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(AuditPage::new(entries, query)))
    }
}

/// Why a locked write did not give a reply.
enum Written {
    /// The script was sent but its reply lost: it may or may not have run.
    Unknown(LockError),
    /// Nothing was written (lock not had, lease lost, backend refused).
    NotWritten(LockFailure),
}

impl RedisStore {
    async fn product_fields(&self, id: ProductId) -> Result<Fields, StoreError> {
        self.data()
            .hgetall(keys::product(id))
            .await
            .map_err(|error| unavailable("reading a product", error))
    }

    /// Runs `script` for product `id` under its lock: as one fused step when the
    /// lock is free (single-node mode), else acquire → guarded write → release.
    async fn locked_write(
        &self,
        id: ProductId,
        script: &GuardedScript,
        write: &StockWrite,
    ) -> Result<Vec<Value>, Written> {
        let lock_key = keys::product_lock(id);
        let written = |error: LockError| {
            if error.is_unknown_outcome() {
                Written::Unknown(error)
            } else {
                Written::NotWritten(LockFailure::classify(&error, "running a product script"))
            }
        };
        if let Some(lock) = self.purchases.committer().fused_lock() {
            let step = write.fill(script.prepare_fused(&lock_key));
            match lock.run_fused::<Vec<Value>>(step).await {
                Ok(Fused::Ran(reply)) => return Ok(reply),
                Ok(Fused::Busy) => {}
                Err(error) => return Err(written(error)),
            }
        }
        let guard = self
            .lock
            .acquire(&lock_key, &self.lock_options)
            .await
            .map_err(|error| {
                Written::NotWritten(LockFailure::classify(&error, "taking a product lock"))
            })?;
        let reply = write
            .fill(script.prepare(&guard))
            .invoke::<Vec<Value>>(&mut self.data())
            .await;
        if let Err(error) = guard.release().await {
            tracing::warn!(%error, "releasing a product lock after a stock change");
        }
        reply.map_err(written)
    }

    /// After a lost restock reply: the record, written with the restock, says
    /// whether it happened. Read on the connection the script was sent on.
    async fn settle_restock(&self, record_key: &str, fingerprint: &str) -> Option<Vec<Value>> {
        let found: Result<(Option<String>, Option<String>), _> = redis::cmd("HMGET")
            .arg(record_key)
            .arg(&["fingerprint", "level"])
            .query_async(&mut self.data())
            .await;
        match found {
            Ok((Some(stored), Some(level))) if stored == fingerprint => Some(vec![
                Value::SimpleString("ok".to_owned()),
                Value::BulkString(level.into_bytes()),
            ]),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "settling a lost restock reply");
                None
            }
        }
    }
}

/// The keys and arguments of one stock-change script, for either of its forms.
struct StockWrite {
    keys: Vec<String>,
    args: Vec<String>,
}

impl StockWrite {
    fn fill<A: ScriptArgs>(&self, invocation: A) -> A {
        let invocation = self.keys.iter().fold(invocation, |i, key| i.key(key));
        self.args.iter().fold(invocation, |i, arg| i.arg(arg))
    }
}

fn operation_id() -> Result<IdempotencyKey, StoreError> {
    IdempotencyKey::parse(format!("op-{}", uuid::Uuid::new_v4().simple()))
        .map_err(|_| StoreError::corrupt("an operation id is not a valid key"))
}

fn reply_tag(reply: &[Value]) -> Option<String> {
    reply
        .first()
        .and_then(|tag| redis::from_redis_value_ref::<String>(tag).ok())
}

/// `stock,sold,initial_stock,restocked,adjusted` at `reply[index]`.
fn level_of(id: ProductId, reply: &[Value], index: usize) -> Result<StockLevel, StoreError> {
    let corrupt = || StoreError::corrupt("unexpected stock level from a product script");
    let text = reply
        .get(index)
        .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
        .ok_or_else(corrupt)?;
    let parts: Vec<&str> = text.split(',').collect();
    let [stock, sold, initial_stock, restocked, adjusted] = parts[..] else {
        return Err(corrupt());
    };
    let unsigned = |raw: &str| raw.parse::<u64>().map_err(|_| corrupt());
    Ok(StockLevel {
        product_id: id,
        stock: unsigned(stock)?,
        sold: unsigned(sold)?,
        initial_stock: unsigned(initial_stock)?,
        restocked: unsigned(restocked)?,
        adjusted: adjusted.parse().map_err(|_| corrupt())?,
    })
}

fn restock_outcome(
    id: ProductId,
    adding: u64,
    reply: &[Value],
) -> Result<RestockReceipt, ProductError> {
    match reply_tag(reply).as_deref() {
        Some("ok") => Ok(RestockReceipt {
            level: level_of(id, reply, 1)?,
            replayed: false,
        }),
        Some("replay") => Ok(RestockReceipt {
            level: level_of(id, reply, 1)?,
            replayed: true,
        }),
        Some("key-reused") => Err(ProductError::IdempotencyKeyReused),
        Some("no-product") => Err(ProductError::NotFound(id)),
        Some("limit") => Err(ProductError::StockLimitExceeded {
            current: reply
                .get(1)
                .and_then(|value| redis::from_redis_value_ref::<u64>(value).ok())
                .ok_or_else(|| StoreError::corrupt("unexpected reply from the restock script"))?,
            adding,
            limit: Stock::MAX,
        }),
        _ => Err(StoreError::corrupt("unexpected reply from the restock script").into()),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
