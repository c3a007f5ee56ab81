//! [`Reconciler`] over Redis.
//!
//! First it finishes orders left `pending` (interrupted between their lines):
//! every buyer's pending set is read, and each such order is finished under all
//! of its products' locks (see `orders.rs`). Then, product by product and under
//! that product's lock (so that no purchase, order line, restock or adjustment
//! can land in the middle of the reading), it reads the product's counters, its
//! purchase records, its order lines and its whole audit trail, and checks that
//! they agree. Holding the lock pauses that product's sales for the time of one
//! pipelined read (plus the trail, 10,000 entries per round trip).

use async_trait::async_trait;
use inventory_domain::{
    AuditEntry, Check, Difference, OrderId, ProductId, ReconcileReport, Reconciler, RequestId,
    StoreError, UserId, check_accounting, check_audit,
};
use redis::AsyncCommands;
use serde::Deserialize;

use super::codec::{self, Fields, Record};
use super::{RedisStore, keys, unavailable};
use crate::lock_failure::LockFailure;

/// Users whose pending sets are read per round trip.
const USERS_PER_READ: u64 = 500;
/// Audit entries read per round trip.
const AUDIT_PER_READ: usize = 10_000;

#[async_trait]
impl Reconciler for RedisStore {
    #[tracing::instrument(skip_all, fields(request.id = %request_id))]
    async fn reconcile(&self, request_id: &RequestId) -> Result<ReconcileReport, StoreError> {
        let orders_recovered = self.finish_incomplete_orders(request_id).await?;
        let products: Vec<u64> = self
            .data()
            .zrange(keys::PRODUCTS, 0, -1)
            .await
            .map_err(|error| unavailable("listing products", error))?;
        let mut report = ReconcileReport {
            orders_recovered,
            ..ReconcileReport::default()
        };
        for product in products {
            report
                .differences
                .extend(self.check_product(ProductId(product)).await?);
            report.products_checked += 1;
        }
        crate::metrics::reconciled(&report);
        Ok(report)
    }
}

/// A purchase record, as far as reconciliation needs it.
#[derive(Deserialize)]
struct RecordedUnits {
    quantity: u64,
}

impl RedisStore {
    /// Finishes every pending order; returns how many were finished.
    async fn finish_incomplete_orders(&self, request_id: &RequestId) -> Result<u64, StoreError> {
        let last_user: Option<u64> = self
            .data()
            .get(keys::USER_IDS)
            .await
            .map_err(|error| unavailable("reading the user counter", error))?;
        let mut finished = 0;
        let mut first = 1;
        while first <= last_user.unwrap_or(0) {
            let last = (first + USERS_PER_READ - 1).min(last_user.unwrap_or(0));
            let mut pipe = redis::pipe();
            for user in first..=last {
                pipe.smembers(keys::user_orders_pending(UserId(user)));
            }
            let pending: Vec<Vec<u64>> = pipe
                .query_async(&mut self.data())
                .await
                .map_err(|error| unavailable("reading pending orders", error))?;
            for (user, numbers) in (first..=last).zip(pending) {
                for number in numbers {
                    match self.finish_pending(UserId(user), number, request_id).await {
                        Ok(true) => finished += 1,
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!(%error, user.id = user, order.number = number,
                                "an incomplete order could not be finished; it stays pending");
                        }
                    }
                }
            }
            first = last + 1;
        }
        Ok(finished)
    }

    /// Every check of one product, read under its lock.
    async fn check_product(&self, product: ProductId) -> Result<Vec<Difference>, StoreError> {
        let guard = self
            .lock
            .acquire(&keys::product_lock(product), &self.lock_options)
            .await
            .map_err(
                |error| match LockFailure::classify(&error, "taking a product lock") {
                    LockFailure::Failed(error) => error,
                    LockFailure::Retryable { .. } => StoreError::unavailable(
                        format!("product {product} stayed locked"),
                        error.to_string(),
                    ),
                },
            )?;
        let read = self.read_books(product).await;
        let held = guard.ensure_held();
        if let Err(error) = guard.release().await {
            tracing::warn!(%error, "releasing a product lock after reconciling it");
        }
        let books = read?;
        held.map_err(|error| {
            StoreError::unavailable(
                format!("product {product}'s lock was lost while reading its books"),
                error.to_string(),
            )
        })?;
        books.differences(product)
    }

    async fn read_books(&self, product: ProductId) -> Result<Books, StoreError> {
        let mut data = self.data();
        let (fields, purchases, lines): (Fields, Vec<String>, Vec<String>) = redis::pipe()
            .hgetall(keys::product(product))
            .hvals(keys::purchase_records(product))
            .hvals(keys::order_lines(product))
            .query_async(&mut data)
            .await
            .map_err(|error| unavailable("reading a product's books", error))?;
        let mut audit = Vec::new();
        let mut start = "-".to_owned();
        loop {
            let page: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(keys::product_audit(product))
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(AUDIT_PER_READ)
                .query_async(&mut data)
                .await
                .map_err(|error| unavailable("reading an audit trail", error))?;
            let full = page.len() == AUDIT_PER_READ;
            for (id, pairs) in &page {
                audit.push(codec::audit_entry(id, pairs)?);
            }
            match (full, page.last()) {
                (true, Some((last, _))) => start = format!("({last}"),
                _ => break,
            }
        }
        let lines = lines
            .iter()
            .map(|raw| {
                serde_json::from_str::<LineOwner>(raw).map_err(|error| {
                    StoreError::corrupt(format!("an order line does not parse: {error}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let orphans = self.orphan_lines(&lines).await?;
        Ok(Books {
            fields,
            purchases,
            lines,
            audit,
            orphans,
        })
    }

    /// How many of `lines` belong to no committed or pending order.
    async fn orphan_lines(&self, lines: &[LineOwner]) -> Result<u64, StoreError> {
        if lines.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for line in lines {
            let id = OrderId(line.order_id);
            pipe.hget(keys::user_order_status(id.user()), id.sequence());
        }
        let statuses: Vec<Option<String>> = pipe
            .query_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading order statuses", error))?;
        Ok(statuses
            .iter()
            .filter(|status| !matches!(status.as_deref(), Some("committed" | "pending")))
            .count() as u64)
    }
}

/// An order line, as far as reconciliation needs it.
#[derive(Deserialize)]
struct LineOwner {
    order_id: u64,
    quantity: u32,
}

/// Everything read about one product.
struct Books {
    fields: Fields,
    purchases: Vec<String>,
    lines: Vec<LineOwner>,
    audit: Vec<AuditEntry>,
    orphans: u64,
}

impl Books {
    fn differences(&self, product: ProductId) -> Result<Vec<Difference>, StoreError> {
        let record = Record::new("product", &self.fields);
        let number = |field: &str| record.parse::<i64>(field);
        let stock = number("stock")?;
        let adjusted = if self.fields.contains_key("adjusted") {
            number("adjusted")?
        } else {
            0
        };
        let mut recorded: i64 = 0;
        for raw in &self.purchases {
            let units: RecordedUnits = serde_json::from_str(raw).map_err(|error| {
                StoreError::corrupt(format!("a purchase record does not parse: {error}"))
            })?;
            recorded = recorded.saturating_add(i64::try_from(units.quantity).unwrap_or(i64::MAX));
        }
        for line in &self.lines {
            recorded = recorded.saturating_add(i64::from(line.quantity));
        }
        let mut differences = check_accounting(
            product,
            stock,
            number("sold")?,
            number("initial_stock")?,
            number("restocked")?,
            adjusted,
            recorded,
        );
        differences.extend(check_audit(product, stock, &self.audit));
        if self.orphans > 0 {
            differences.push(Difference {
                product_id: product,
                what: Check::OrphanOrderLines,
                expected: 0,
                found: i64::try_from(self.orphans).unwrap_or(i64::MAX),
            });
        }
        Ok(differences)
    }
}
