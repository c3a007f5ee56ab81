//! [`PurchaseService`] in memory: the same group commit as the Redis store, over
//! [`LocalLock`], so both modes line purchases up, batch them and answer alike.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use inventory_domain::{
    AuditKind, Page, Purchase, PurchaseError, PurchaseId, PurchaseOrder, PurchaseReceipt,
    PurchaseService, StoreError, UserId,
};
use inventory_lock::{Abandoned, Committer, LocalLock, LockError, LockGuard};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{
    MemoryStore,
    idempotency::{IdempotencyRecord, Made},
    lock_state, locks,
    state::{Change, State},
};
use crate::lock_failure::LockFailure;

#[async_trait]
impl PurchaseService for MemoryStore {
    #[tracing::instrument(skip_all, fields(product.id = %order.product_id, user.id = %order.user_id))]
    async fn purchase(&self, order: PurchaseOrder) -> Result<PurchaseReceipt, PurchaseError> {
        let key = locks::key(order.product_id);
        match self.inner.purchases.submit(&key, order).await {
            Ok(answer) => answer,
            // Only if committing panicked; in memory nothing outlives the process.
            Err(Abandoned) => Err(PurchaseError::Store(StoreError::corrupt(
                "the purchase batch ended without an answer",
            ))),
        }
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

/// The committer of the in-memory purchase lines: a batch is applied under the
/// state mutex, inside [`LocalLock::guarded`] (the in-memory "guarded script").
pub(super) struct MemoryBatches {
    state: Arc<Mutex<State>>,
    lock: LocalLock,
}

impl MemoryBatches {
    pub(super) fn new(state: Arc<Mutex<State>>, lock: LocalLock) -> Self {
        Self { state, lock }
    }
}

#[async_trait]
impl Committer for MemoryBatches {
    type Item = PurchaseOrder;
    type Output = Result<PurchaseReceipt, PurchaseError>;

    async fn commit(&self, guard: &LockGuard, orders: &[PurchaseOrder]) -> Vec<Self::Output> {
        let fence = guard.fencing_token().get();
        let applied = self.lock.guarded(guard, || {
            let mut state = lock_state(&self.state);
            let now = OffsetDateTime::now_utc();
            orders
                .iter()
                .map(|order| commit_one(&mut state, order, now, fence))
                .collect()
        });
        match applied {
            Ok(answers) => answers,
            Err(error) => self.lock_failed(&error, orders).await,
        }
    }

    async fn lock_failed(&self, error: &LockError, orders: &[PurchaseOrder]) -> Vec<Self::Output> {
        orders
            .iter()
            .map(|_| Err(LockFailure::classify(error, "taking a product lock").into()))
            .collect()
    }
}

/// One order at its turn, exactly as the Redis purchase script decides it:
/// its key's record first (replay or reuse), then the product, then the stock.
fn commit_one(
    state: &mut State,
    order: &PurchaseOrder,
    now: OffsetDateTime,
    fence: u64,
) -> Result<PurchaseReceipt, PurchaseError> {
    let fingerprint = order.fingerprint();
    let record_key = order
        .idempotency_key
        .clone()
        .map(|key| (order.user_id, key));
    if let Some(record_key) = &record_key
        && let Some(record) = state.idempotency.get(record_key)
        && record.is_live(Instant::now())
    {
        let Made::Purchase {
            id,
            remaining_stock,
        } = record.made
        else {
            return Err(PurchaseError::IdempotencyKeyReused);
        };
        if record.fingerprint != fingerprint {
            return Err(PurchaseError::IdempotencyKeyReused);
        }
        let purchase = state.purchases.get(&id).cloned().ok_or_else(|| {
            StoreError::corrupt(format!(
                "idempotency record points at missing purchase {id}"
            ))
        })?;
        return Ok(PurchaseReceipt {
            purchase,
            remaining_stock,
            replayed: true,
        });
    }
    let product = state
        .products
        .get_mut(&order.product_id)
        .ok_or(PurchaseError::ProductNotFound(order.product_id))?;
    let requested = order.quantity.get();
    let available = product.level.stock;
    if available < u64::from(requested) {
        return Err(PurchaseError::InsufficientStock {
            requested,
            available,
        });
    }
    let unit_price = product.product.price;
    let total_price = unit_price.times(requested).ok_or_else(|| {
        StoreError::corrupt(format!("total of {requested} × {unit_price} overflows"))
    })?;
    let id = PurchaseId::compose(order.product_id, product.purchases + 1)
        .ok_or_else(|| StoreError::corrupt("the product has run out of purchase numbers"))?;
    product.purchases += 1;
    product.level.stock -= u64::from(requested);
    product.level.sold += u64::from(requested);
    product.product.stock = product.level.stock;
    product.product.updated_at = now;
    product.audit(
        Change {
            kind: AuditKind::Purchase,
            actor: order.user_id,
            quantity: -i64::from(requested),
            fence: Some(fence),
            request_id: order.request_id.as_str(),
            reference: Some(id.get()),
            reason: None,
        },
        now,
    );
    let remaining_stock = product.level.stock;
    crate::metrics::stock(order.product_id, remaining_stock);

    let purchase = Purchase {
        id,
        user_id: order.user_id,
        product_id: order.product_id,
        quantity: requested,
        unit_price,
        total_price,
        purchased_at: now,
    };
    state.purchases.insert(id, purchase.clone());
    state
        .purchases_by_user
        .entry(order.user_id)
        .or_default()
        .push(id);
    if let Some(record_key) = record_key {
        state.idempotency.insert(
            record_key,
            IdempotencyRecord::new(
                fingerprint,
                Made::Purchase {
                    id,
                    remaining_stock,
                },
            ),
        );
    }
    Ok(PurchaseReceipt {
        purchase,
        remaining_stock,
        replayed: false,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::join_all;
    use inventory_domain::{
        Actor, IdempotencyKey, NewProduct, Price, ProductId, ProductName, ProductRepository,
        Quantity, RequestId, Stock,
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
            &Actor::new(UserId(1), RequestId::parse("test").unwrap()),
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
            ..MemorySettings::default()
        }
    }

    fn order(user: u64, product: ProductId, quantity: i64, key: Option<&str>) -> PurchaseOrder {
        PurchaseOrder {
            user_id: UserId(user),
            product_id: product,
            quantity: Quantity::parse(quantity, 100).unwrap(),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
            request_id: RequestId::parse("test").unwrap(),
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
            ..MemorySettings::default()
        };
        let (store, product) = store_with_product_and(10, settings).await;
        let guard = store.inner.locks.acquire(product).await.unwrap();
        tokio::time::advance(Duration::from_millis(200)).await;
        let answers = store
            .inner
            .purchases
            .committer()
            .commit(&guard, &[order(1, product, 1, None)])
            .await;
        assert!(
            matches!(answers[..], [Err(PurchaseError::LockTimeout { .. })]),
            "a holder past its lease must not write"
        );
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 10);
    }

    /// Twins and a short line inside one batch: each answered as alone, in order.
    #[tokio::test]
    async fn a_batch_answers_each_order_at_its_turn() {
        let (store, product) = store_with_product(3).await;
        let guard = store.inner.locks.acquire(product).await.unwrap();
        let answers = store
            .inner
            .purchases
            .committer()
            .commit(
                &guard,
                &[
                    order(1, product, 2, Some("a")),
                    order(2, product, 2, None),
                    order(1, product, 2, Some("a")),
                    order(3, product, 1, None),
                    order(1, product, 1, Some("a")),
                ],
            )
            .await;
        store.inner.locks.release(guard).await;
        let first = answers[0].as_ref().unwrap();
        assert!(!first.replayed);
        assert_eq!(first.remaining_stock, 1);
        assert!(matches!(
            answers[1],
            Err(PurchaseError::InsufficientStock {
                requested: 2,
                available: 1
            })
        ));
        let twin = answers[2].as_ref().unwrap();
        assert!(twin.replayed);
        assert_eq!(twin.purchase, first.purchase);
        assert_eq!(answers[3].as_ref().unwrap().remaining_stock, 0);
        assert!(matches!(
            answers[4],
            Err(PurchaseError::IdempotencyKeyReused)
        ));
        assert_eq!(store.stock(product).await.unwrap().unwrap().stock, 0);
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
