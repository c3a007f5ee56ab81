//! [`PurchaseService`] in memory.

use async_trait::async_trait;
use inventory_domain::{
    Page, Purchase, PurchaseError, PurchaseId, PurchaseOrder, PurchaseReceipt, PurchaseService,
    StoreError, UserId,
};
use time::OffsetDateTime;

use super::{
    MemoryStore,
    idempotency::{Admission, IdempotencyEntry, Reservation},
    locks::LockFailure,
};

#[async_trait]
impl PurchaseService for MemoryStore {
    #[tracing::instrument(skip_all, fields(product.id = %order.product_id, user.id = %order.user_id))]
    async fn purchase(&self, order: PurchaseOrder) -> Result<PurchaseReceipt, PurchaseError> {
        let mut reservation = match self.admit(&order).await? {
            Admission::Replay(receipt) => return Ok(receipt),
            Admission::Proceed(reservation) => reservation,
        };
        if !self.state().products.contains_key(&order.product_id) {
            return Err(PurchaseError::ProductNotFound(order.product_id));
        }
        let guard = self
            .inner
            .locks
            .acquire(order.product_id)
            .await
            .map_err(purchase_lock_error)?;
        let result = self
            .inner
            .locks
            .guarded(&guard, || self.commit(&order, reservation.as_mut()));
        self.inner.locks.release(guard).await;
        result.map_err(purchase_lock_error)?
        // `reservation` drops after the state lock taken by `commit` is released.
    }

    async fn get(&self, id: PurchaseId) -> Result<Option<Purchase>, StoreError> {
        Ok(self.state().purchases.get(&id).cloned())
    }

    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Purchase>, StoreError> {
        let (offset, limit) = page.bounds();
        let state = self.state();
        let Some(ids) = state.purchases_by_user.get(&user) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .filter_map(|id| state.purchases.get(id).cloned())
            .collect())
    }
}

fn purchase_lock_error(failure: LockFailure) -> PurchaseError {
    match failure {
        LockFailure::Retryable { retry_after } => PurchaseError::LockTimeout { retry_after },
        LockFailure::Failed(error) => PurchaseError::Store(error),
    }
}

impl MemoryStore {
    /// Checks the stock, decrements it, records the purchase and completes the
    /// idempotency record, all under the state lock (the in-memory "Lua script").
    fn commit(
        &self,
        order: &PurchaseOrder,
        reservation: Option<&mut Reservation>,
    ) -> Result<PurchaseReceipt, PurchaseError> {
        let mut state = self.state();
        let record = state
            .products
            .get_mut(&order.product_id)
            .ok_or(PurchaseError::ProductNotFound(order.product_id))?;
        let requested = order.quantity.get();
        let available = record.level.stock;
        if available < u64::from(requested) {
            return Err(PurchaseError::InsufficientStock {
                requested,
                available,
            });
        }
        let unit_price = record.product.price;
        let total_price = unit_price.times(requested).ok_or_else(|| {
            StoreError::corrupt(format!("total of {requested} × {unit_price} overflows"))
        })?;
        let now = OffsetDateTime::now_utc();
        record.level.stock -= u64::from(requested);
        record.level.sold += u64::from(requested);
        record.product.stock = record.level.stock;
        record.product.updated_at = now;
        let remaining_stock = record.level.stock;
        crate::metrics::stock(order.product_id, remaining_stock);

        state.last_purchase_id += 1;
        let purchase = Purchase {
            id: PurchaseId(state.last_purchase_id),
            user_id: order.user_id,
            product_id: order.product_id,
            quantity: requested,
            unit_price,
            total_price,
            purchased_at: now,
        };
        state.purchases.insert(purchase.id, purchase.clone());
        state
            .purchases_by_user
            .entry(order.user_id)
            .or_default()
            .push(purchase.id);
        if let Some(reservation) = reservation {
            state.idempotency.insert(
                reservation.key().clone(),
                IdempotencyEntry::completed(
                    reservation.fingerprint().clone(),
                    purchase.id,
                    remaining_stock,
                ),
            );
            reservation.complete();
        }
        Ok(PurchaseReceipt {
            purchase,
            remaining_stock,
            replayed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::join_all;
    use inventory_domain::{
        IdempotencyKey, NewProduct, Price, ProductId, ProductName, ProductRepository, Quantity,
        Stock,
    };

    use super::*;
    use crate::memory::MemorySettings;

    async fn store_with_product(stock: i64) -> (MemoryStore, ProductId) {
        store_with_product_and(stock, MemorySettings::default()).await
    }

    async fn store_with_product_and(
        stock: i64,
        settings: MemorySettings,
    ) -> (MemoryStore, ProductId) {
        let store = MemoryStore::new(settings);
        let product = ProductRepository::create(
            &store,
            NewProduct {
                name: ProductName::parse("Widget").unwrap(),
                description: None,
                price: Price::parse(250).unwrap(),
                stock: Stock::parse(stock).unwrap(),
            },
        )
        .await
        .unwrap();
        (store, product.id)
    }

    /// Leases far longer than the waits, so a held lock stays held for the whole test.
    fn long_lease() -> MemorySettings {
        MemorySettings {
            lock_ttl: Duration::from_secs(600),
            lock_wait_timeout: Duration::from_secs(3),
        }
    }

    fn order(user: u64, product: ProductId, quantity: i64, key: Option<&str>) -> PurchaseOrder {
        PurchaseOrder {
            user_id: UserId(user),
            product_id: product,
            quantity: Quantity::parse(quantity, 100).unwrap(),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        }
    }

    #[tokio::test]
    async fn purchase_decrements_and_records() {
        let (store, product) = store_with_product(10).await;
        let receipt = store.purchase(order(7, product, 3, None)).await.unwrap();
        assert_eq!(receipt.remaining_stock, 7);
        assert!(!receipt.replayed);
        assert_eq!(receipt.purchase.total_price.minor_units(), 750);
        assert_eq!(receipt.purchase.quantity, 3);
        let level = store.stock(product).await.unwrap().unwrap();
        assert_eq!((level.stock, level.sold), (7, 3));
        assert!(level.is_consistent());
        assert_eq!(
            PurchaseService::get(&store, receipt.purchase.id)
                .await
                .unwrap(),
            Some(receipt.purchase)
        );
    }

    #[tokio::test]
    async fn insufficient_stock_and_unknown_product() {
        let (store, product) = store_with_product(2).await;
        let err = store
            .purchase(order(1, product, 3, None))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            PurchaseError::InsufficientStock {
                requested: 3,
                available: 2
            }
        ));
        let err = store
            .purchase(order(1, ProductId(99), 1, None))
            .await
            .unwrap_err();
        assert!(matches!(err, PurchaseError::ProductNotFound(ProductId(99))));
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 2);
    }

    #[tokio::test]
    async fn listing_is_newest_first_and_per_user() {
        let (store, product) = store_with_product(100).await;
        let mut mine = Vec::new();
        for q in 1..=5 {
            mine.push(store.purchase(order(1, product, q, None)).await.unwrap());
            store.purchase(order(2, product, 1, None)).await.unwrap();
        }
        let listed = store
            .list_for_user(UserId(1), Page::parse(Some(2), Some(1)).unwrap())
            .await
            .unwrap();
        let quantities: Vec<_> = listed.iter().map(|p| p.quantity).collect();
        assert_eq!(quantities, [4, 3]);
        assert!(listed.iter().all(|p| p.user_id == UserId(1)));
        assert!(
            store
                .list_for_user(UserId(3), Page::default())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_buyers_never_oversell() {
        let (store, product) = store_with_product(100).await;
        let buyers = (0..1000).map(|user| {
            let store = store.clone();
            tokio::spawn(async move { store.purchase(order(user, product, 1, None)).await })
        });
        let results: Vec<_> = join_all(buyers)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let sold = results.iter().filter(|r| r.is_ok()).count();
        let sold_out = results
            .iter()
            .filter(|r| matches!(r, Err(PurchaseError::InsufficientStock { .. })))
            .count();
        assert_eq!((sold, sold_out), (100, 900));
        let level = store.stock(product).await.unwrap().unwrap();
        assert_eq!((level.stock, level.sold), (0, 100));
        assert_eq!(store.state().purchases.len(), 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_quantities_sum_to_what_left_the_stock() {
        let (store, product) = store_with_product(100).await;
        let buyers = (0..300u64).map(|user| {
            let store = store.clone();
            let quantity = (user * 7 % 5 + 1) as i64;
            tokio::spawn(async move { store.purchase(order(user, product, quantity, None)).await })
        });
        let accepted: u64 = join_all(buyers)
            .await
            .into_iter()
            .filter_map(|r| r.unwrap().ok())
            .map(|r| u64::from(r.purchase.quantity))
            .sum();
        let level = store.stock(product).await.unwrap().unwrap();
        assert_eq!(level.sold, accepted);
        assert_eq!(level.stock + accepted, 100);
        // With 300 buyers asking 1–5 units, the stock runs dry (at most 4 units left).
        assert!(level.stock < 5);
    }

    #[tokio::test]
    async fn same_key_same_order_replays_the_first_receipt() {
        let (store, product) = store_with_product(10).await;
        let first = store
            .purchase(order(1, product, 2, Some("k1")))
            .await
            .unwrap();
        let second = store
            .purchase(order(1, product, 2, Some("k1")))
            .await
            .unwrap();
        assert!(second.replayed);
        assert_eq!(second.purchase, first.purchase);
        assert_eq!(second.remaining_stock, first.remaining_stock);
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 8);
        // Keys are per user: another user with the same key makes a new purchase.
        let other = store
            .purchase(order(2, product, 2, Some("k1")))
            .await
            .unwrap();
        assert!(!other.replayed);
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 6);
    }

    #[tokio::test]
    async fn same_key_different_order_is_rejected() {
        let (store, product) = store_with_product(10).await;
        store
            .purchase(order(1, product, 2, Some("k1")))
            .await
            .unwrap();
        let err = store
            .purchase(order(1, product, 3, Some("k1")))
            .await
            .unwrap_err();
        assert!(matches!(err, PurchaseError::IdempotencyKeyReused));
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 8);
    }

    #[tokio::test]
    async fn a_failed_order_does_not_consume_the_key() {
        let (store, product) = store_with_product(1).await;
        let err = store
            .purchase(order(1, product, 2, Some("k1")))
            .await
            .unwrap_err();
        assert!(matches!(err, PurchaseError::InsufficientStock { .. }));
        let receipt = store
            .purchase(order(1, product, 1, Some("k1")))
            .await
            .unwrap();
        assert!(!receipt.replayed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simultaneous_twins_make_one_purchase() {
        let (store, product) = store_with_product(100).await;
        let twins = (0..20).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.purchase(order(1, product, 1, Some("twin"))).await })
        });
        let receipts: Vec<_> = join_all(twins)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(receipts.iter().filter(|r| !r.replayed).count(), 1);
        assert!(receipts.iter().all(|r| r.purchase == receipts[0].purchase));
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 99);
    }

    #[tokio::test(start_paused = true)]
    async fn lock_timeout_when_the_product_stays_locked() {
        let (store, product) = store_with_product_and(10, long_lease()).await;
        let held = store.inner.locks.acquire(product).await.unwrap();
        let err = store
            .purchase(order(1, product, 1, None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, PurchaseError::LockTimeout { retry_after } if retry_after > Duration::ZERO)
        );
        store.inner.locks.release(held).await;
        store.purchase(order(1, product, 1, None)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_never_writes() {
        let settings = MemorySettings {
            lock_ttl: Duration::from_millis(100),
            lock_wait_timeout: Duration::from_secs(1),
        };
        let (store, product) = store_with_product_and(10, settings).await;
        let guard = store.inner.locks.acquire(product).await.unwrap();
        tokio::time::advance(Duration::from_millis(200)).await;
        let write = store
            .inner
            .locks
            .guarded(&guard, || store.commit(&order(1, product, 1, None), None));
        assert!(write.is_err(), "a holder past its lease must not write");
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_twin_of_a_failed_request_takes_the_key_over() {
        let (store, product) = store_with_product_and(10, long_lease()).await;
        let held = store.inner.locks.acquire(product).await.unwrap();
        let first = tokio::spawn({
            let store = store.clone();
            async move { store.purchase(order(1, product, 1, Some("k"))).await }
        });
        tokio::task::yield_now().await;
        // The first request times out on the lock (3 s), freeing the key; the twin, which
        // waits for it, then takes the key itself and times out too.
        let twin = store.purchase(order(1, product, 1, Some("k"))).await;
        assert!(matches!(
            first.await.unwrap(),
            Err(PurchaseError::LockTimeout { .. })
        ));
        assert!(matches!(twin, Err(PurchaseError::LockTimeout { .. })));
        store.inner.locks.release(held).await;
        let receipt = store
            .purchase(order(1, product, 1, Some("k")))
            .await
            .unwrap();
        assert!(!receipt.replayed);
    }
}
