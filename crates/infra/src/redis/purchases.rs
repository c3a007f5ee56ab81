//! [`PurchaseService`] over Redis.
//!
//! A purchase joins its product's line the moment it arrives (no I/O first),
//! and is committed with whatever else queued, in arrival order, by the line's
//! group commit ([`super::purchase_batch`]): one purchase script per batch, as
//! a fused acquire → write → release step when the product's lock is free.
//! There is no read before the script: unknown products, sold-out products,
//! replays and key reuse are all answered by the script itself, so an answer
//! always reflects the moment the order's turn came.
//!
//! Every order carries an idempotency record key: the client's
//! `Idempotency-Key`, or an operation id made here. If a batch's reply is lost,
//! that record says whether the purchase happened; if it cannot be read either,
//! the caller is told the operation id, and retrying with it as the key replays
//! the real outcome. A purchase is never retried blindly.

use async_trait::async_trait;
use inventory_domain::{
    Page, Purchase, PurchaseError, PurchaseId, PurchaseOrder, PurchaseReceipt, PurchaseService,
    StoreError, UserId,
};
use inventory_lock::Abandoned;
use redis::AsyncCommands;

use super::purchase_batch::{PurchaseItem, decode_purchase};
use super::{RedisStore, keys, scripts, unavailable};

#[async_trait]
impl PurchaseService for RedisStore {
    #[tracing::instrument(skip_all, fields(product.id = %order.product_id, user.id = %order.user_id))]
    async fn purchase(&self, order: PurchaseOrder) -> Result<PurchaseReceipt, PurchaseError> {
        let lock_key = keys::product_lock(order.product_id);
        let item = PurchaseItem::new(order)?;
        let operation_id = item.operation_id().clone();
        match self.purchases.submit(&lock_key, item).await {
            Ok(answer) => answer,
            Err(Abandoned) => Err(PurchaseError::OutcomeUnknown { operation_id }),
        }
    }

    async fn get(&self, id: PurchaseId) -> Result<Option<Purchase>, StoreError> {
        let raw: Option<String> = scripts::PURCHASE_BY_NUMBER
            .key(keys::purchase_numbers(id.product()))
            .key(keys::purchase_records(id.product()))
            .arg(id.sequence())
            .invoke_async(&mut self.data())
            .await
            .map_err(|error| unavailable("reading a purchase", error))?;
        raw.as_deref().map(decode_purchase).transpose()
    }

    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Purchase>, StoreError> {
        let mut data = self.data();
        let (start, stop) = super::index_range(page);
        let references: Vec<String> = data
            .zrevrange(keys::user_purchases(user), start, stop)
            .await
            .map_err(|error| unavailable("listing purchases", error))?;
        let records = read_records(&mut data, user, &references).await?;
        records.iter().map(|raw| decode_purchase(raw)).collect()
    }
}

/// The stored records the buyer's index entries name, in index order, read in
/// one pipelined round trip (one HGET per entry, each in its product's slot).
/// An entry without a record — an order refused before its entry was given
/// back — is skipped.
async fn read_records(
    data: &mut redis::aio::ConnectionManager,
    user: UserId,
    references: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut pipe = redis::pipe();
    for reference in references {
        let Some((product, operation)) = keys::parse_purchase_ref(reference) else {
            return Err(StoreError::corrupt(format!(
                "purchase index entry {reference:?} is malformed"
            )));
        };
        pipe.hget(
            keys::purchase_records(product),
            keys::purchase_record_field(user, operation),
        );
    }
    if pipe.is_empty() {
        return Ok(Vec::new());
    }
    let records: Vec<Option<String>> = pipe
        .query_async(data)
        .await
        .map_err(|error| unavailable("reading purchases", error))?;
    Ok(records.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use inventory_domain::ProductId;

    use super::*;

    #[test]
    fn purchase_records_are_found_from_the_id_alone() {
        let id = PurchaseId::compose(ProductId(42), 7).unwrap();
        assert_eq!(
            keys::purchase_records(id.product()),
            "{product:42}:purchase-records"
        );
        assert_eq!(id.sequence(), 7);
    }
}
