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

use std::collections::BTreeMap;

use async_trait::async_trait;
use inventory_domain::{
    Page, Purchase, PurchaseError, PurchaseId, PurchaseOrder, PurchaseReceipt, PurchaseService,
    StoreError, UserId,
};
use inventory_lock::Abandoned;
use redis::AsyncCommands;

use super::purchase_batch::{PurchaseItem, decode_purchase};
use super::{RedisStore, keys, unavailable};

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
        let raw: Option<String> = self
            .data()
            .hget(keys::purchase_records(id.product()), id.sequence())
            .await
            .map_err(|error| unavailable("reading a purchase", error))?;
        raw.as_deref().map(decode_purchase).transpose()
    }

    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Purchase>, StoreError> {
        let mut data = self.data();
        let (start, stop) = super::index_range(page);
        let ids: Vec<u64> = data
            .zrevrange(keys::user_purchases(user), start, stop)
            .await
            .map_err(|error| unavailable("listing purchases", error))?;
        let ids: Vec<PurchaseId> = ids.into_iter().map(PurchaseId).collect();
        let records = read_records(&mut data, &ids).await?;
        ids.iter()
            .filter_map(|id| records.get(id))
            .map(|raw| decode_purchase(raw))
            .collect()
    }
}

/// The stored records of `ids`, read in one pipelined round trip (one HGET
/// per purchase, each in its product's slot). Ids without a record are absent.
async fn read_records(
    data: &mut redis::aio::ConnectionManager,
    ids: &[PurchaseId],
) -> Result<BTreeMap<PurchaseId, String>, StoreError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hget(keys::purchase_records(id.product()), id.sequence());
    }
    let records: Vec<Option<String>> = pipe
        .query_async(data)
        .await
        .map_err(|error| unavailable("reading purchases", error))?;
    Ok(ids
        .iter()
        .zip(records)
        .filter_map(|(id, record)| record.map(|raw| (*id, raw)))
        .collect())
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
