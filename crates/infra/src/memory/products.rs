//! [`ProductRepository`] in memory.

use async_trait::async_trait;
use inventory_domain::{
    Actor, Adjustment, AuditKind, AuditPage, AuditQuery, NewProduct, Page, Product, ProductError,
    ProductId, ProductRepository, RestockOrder, RestockReceipt, Stock, StockLevel, StoreError,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{
    MemoryStore,
    idempotency::RestockRecord,
    state::{Change, ProductRecord},
};

#[async_trait]
impl ProductRepository for MemoryStore {
    async fn create(&self, new: NewProduct, by: &Actor) -> Result<Product, ProductError> {
        let mut state = self.state();
        if state.product_names.contains_key(new.name.as_str()) {
            return Err(ProductError::NameTaken);
        }
        state.last_product_id += 1;
        let id = ProductId(state.last_product_id);
        let now = OffsetDateTime::now_utc();
        let product = Product {
            id,
            name: new.name,
            description: new.description,
            price: new.price,
            stock: new.stock.units(),
            created_at: now,
            updated_at: now,
        };
        state
            .product_names
            .insert(product.name.as_str().to_owned(), id);
        let mut record = ProductRecord {
            product: product.clone(),
            level: StockLevel::new(id, new.stock.units()),
            purchases: 0,
            audit: Vec::new(),
        };
        record.audit(
            Change {
                kind: AuditKind::Create,
                actor: by.user_id,
                quantity: i64::try_from(new.stock.units()).unwrap_or(i64::MAX),
                fence: None,
                request_id: by.request_id.as_str(),
                reference: None,
                reason: None,
            },
            now,
        );
        state.products.insert(id, record);
        crate::metrics::stock(id, product.stock);
        Ok(product)
    }

    async fn get(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        Ok(self.state().products.get(&id).map(|r| r.product.clone()))
    }

    async fn list(&self, page: Page) -> Result<Vec<Product>, StoreError> {
        let (offset, limit) = page.bounds();
        Ok(self
            .state()
            .products
            .values()
            .skip(offset)
            .take(limit)
            .map(|r| r.product.clone())
            .collect())
    }

    async fn stock(&self, id: ProductId) -> Result<Option<StockLevel>, StoreError> {
        Ok(self.state().products.get(&id).map(|r| r.level))
    }

    async fn restock(
        &self,
        id: ProductId,
        order: RestockOrder,
        by: &Actor,
    ) -> Result<RestockReceipt, ProductError> {
        if !self.state().products.contains_key(&id) {
            return Err(ProductError::NotFound(id));
        }
        let guard = self
            .inner
            .locks
            .acquire(id)
            .await
            .map_err(ProductError::from)?;
        let fence = guard.fencing_token().get();
        let result = self
            .inner
            .locks
            .guarded(&guard, || self.apply_restock(id, &order, by, fence));
        self.inner.locks.release(guard).await;
        result.map_err(ProductError::from)?
    }

    async fn adjust(
        &self,
        id: ProductId,
        adjustment: Adjustment,
        by: &Actor,
    ) -> Result<StockLevel, ProductError> {
        if !self.state().products.contains_key(&id) {
            return Err(ProductError::NotFound(id));
        }
        let guard = self
            .inner
            .locks
            .acquire(id)
            .await
            .map_err(ProductError::from)?;
        let fence = guard.fencing_token().get();
        let result = self
            .inner
            .locks
            .guarded(&guard, || self.apply_adjustment(id, &adjustment, by, fence));
        self.inner.locks.release(guard).await;
        result.map_err(ProductError::from)?
    }

    async fn audit(
        &self,
        id: ProductId,
        query: AuditQuery,
    ) -> Result<Option<AuditPage>, StoreError> {
        let state = self.state();
        let Some(record) = state.products.get(&id) else {
            return Ok(None);
        };
        let entries = record
            .audit
            .iter()
            .filter(|entry| query.after_cursor().is_none_or(|after| entry.id > after))
            .take(query.limit() as usize)
            .cloned()
            .collect();
        Ok(Some(AuditPage::new(entries, query)))
    }
}

impl MemoryStore {
    /// Adds the units, under the state lock (the in-memory "restock script"):
    /// its idempotency record first, as the Redis script does.
    fn apply_restock(
        &self,
        id: ProductId,
        order: &RestockOrder,
        by: &Actor,
        fence: u64,
    ) -> Result<RestockReceipt, ProductError> {
        let mut state = self.state();
        let fingerprint = order.fingerprint();
        let record_key = order
            .idempotency_key
            .clone()
            .map(|key| (id, by.user_id, key));
        if let Some(record_key) = &record_key
            && let Some(record) = state.restock_idempotency.get(record_key)
            && record.is_live(Instant::now())
        {
            if record.fingerprint != fingerprint {
                return Err(ProductError::IdempotencyKeyReused);
            }
            return Ok(RestockReceipt {
                level: record.level,
                replayed: true,
            });
        }
        let record = state
            .products
            .get_mut(&id)
            .ok_or(ProductError::NotFound(id))?;
        let adding = order.quantity.get();
        let current = record.level.stock;
        let new_stock = current
            .checked_add(adding)
            .filter(|s| *s <= Stock::MAX)
            .ok_or(ProductError::StockLimitExceeded {
                current,
                adding,
                limit: Stock::MAX,
            })?;
        let now = OffsetDateTime::now_utc();
        record.level.stock = new_stock;
        record.level.restocked += adding;
        record.product.stock = new_stock;
        record.product.updated_at = now;
        record.audit(
            Change {
                kind: AuditKind::Restock,
                actor: by.user_id,
                quantity: i64::try_from(adding).unwrap_or(i64::MAX),
                fence: Some(fence),
                request_id: by.request_id.as_str(),
                reference: None,
                reason: None,
            },
            now,
        );
        let level = record.level;
        if let Some(record_key) = record_key {
            state
                .restock_idempotency
                .insert(record_key, RestockRecord::new(fingerprint, level));
        }
        crate::metrics::stock(id, new_stock);
        Ok(RestockReceipt {
            level,
            replayed: false,
        })
    }

    /// Sets the stock, booking the difference as `adjusted`.
    fn apply_adjustment(
        &self,
        id: ProductId,
        adjustment: &Adjustment,
        by: &Actor,
        fence: u64,
    ) -> Result<StockLevel, ProductError> {
        let mut state = self.state();
        let record = state
            .products
            .get_mut(&id)
            .ok_or(ProductError::NotFound(id))?;
        let counted = adjustment.stock.units();
        let delta = i64::try_from(counted).unwrap_or(i64::MAX)
            - i64::try_from(record.level.stock).unwrap_or(i64::MAX);
        let now = OffsetDateTime::now_utc();
        record.level.stock = counted;
        record.level.adjusted += delta;
        record.product.stock = counted;
        record.product.updated_at = now;
        record.audit(
            Change {
                kind: AuditKind::Adjust,
                actor: by.user_id,
                quantity: delta,
                fence: Some(fence),
                request_id: by.request_id.as_str(),
                reference: None,
                reason: Some(adjustment.reason.as_str()),
            },
            now,
        );
        crate::metrics::stock(id, counted);
        Ok(record.level)
    }
}

#[cfg(test)]
mod tests {
    use inventory_domain::{
        IdempotencyKey, Price, ProductName, RequestId, RestockQuantity, UserId,
    };

    use super::*;
    use crate::memory::MemorySettings;

    fn admin() -> Actor {
        Actor::new(UserId(1), RequestId::parse("test").unwrap())
    }

    fn restock(units: i64, key: Option<&str>) -> RestockOrder {
        RestockOrder {
            quantity: RestockQuantity::parse(units).unwrap(),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        }
    }

    fn new_product(name: &str, stock: i64) -> NewProduct {
        NewProduct {
            name: ProductName::parse(name).unwrap(),
            description: None,
            price: Price::parse(1999).unwrap(),
            stock: Stock::parse(stock).unwrap(),
        }
    }

    #[tokio::test]
    async fn create_get_list_in_id_order() {
        let store = MemoryStore::new(MemorySettings::default());
        for i in 0..5 {
            ProductRepository::create(&store, new_product(&format!("p{i}"), i), &admin())
                .await
                .unwrap();
        }
        let page = store
            .list(Page::parse(Some(2), Some(1)).unwrap())
            .await
            .unwrap();
        let ids: Vec<_> = page.iter().map(|p| p.id.get()).collect();
        assert_eq!(ids, [2, 3]);
        let p = ProductRepository::get(&store, ProductId(4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.name.as_str(), "p3");
        assert_eq!(p.stock, 3);
        assert!(
            ProductRepository::get(&store, ProductId(9))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn names_are_unique() {
        let store = MemoryStore::new(MemorySettings::default());
        ProductRepository::create(&store, new_product("Widget", 1), &admin())
            .await
            .unwrap();
        let err = ProductRepository::create(&store, new_product(" Widget ", 1), &admin())
            .await
            .unwrap_err();
        assert!(matches!(err, ProductError::NameTaken));
    }

    #[tokio::test]
    async fn restock_keeps_the_accounting() {
        let store = MemoryStore::new(MemorySettings::default());
        let p = ProductRepository::create(&store, new_product("w", 10), &admin())
            .await
            .unwrap();
        let level = store
            .restock(p.id, restock(5, None), &admin())
            .await
            .unwrap()
            .level;
        assert_eq!(
            (
                level.stock,
                level.sold,
                level.initial_stock,
                level.restocked
            ),
            (15, 0, 10, 5)
        );
        assert!(level.is_consistent());
        assert_eq!(
            ProductRepository::get(&store, p.id)
                .await
                .unwrap()
                .unwrap()
                .stock,
            15
        );
        let err = store
            .restock(ProductId(42), restock(1, None), &admin())
            .await
            .unwrap_err();
        assert!(matches!(err, ProductError::NotFound(ProductId(42))));
        let err = store
            .restock(p.id, restock(Stock::MAX as i64, None), &admin())
            .await
            .unwrap_err();
        assert!(matches!(err, ProductError::StockLimitExceeded { .. }));
    }

    #[tokio::test]
    async fn a_keyed_restock_counts_once_and_a_reused_key_is_refused() {
        let store = MemoryStore::new(MemorySettings::default());
        let p = ProductRepository::create(&store, new_product("w", 10), &admin())
            .await
            .unwrap();
        let first = store
            .restock(p.id, restock(5, Some("k")), &admin())
            .await
            .unwrap();
        let again = store
            .restock(p.id, restock(5, Some("k")), &admin())
            .await
            .unwrap();
        assert!(!first.replayed && again.replayed);
        assert_eq!(again.level, first.level);
        assert_eq!(store.stock(p.id).await.unwrap().unwrap().stock, 15);
        let err = store
            .restock(p.id, restock(6, Some("k")), &admin())
            .await
            .unwrap_err();
        assert!(matches!(err, ProductError::IdempotencyKeyReused));
    }

    #[tokio::test]
    async fn adjustments_set_the_stock_and_keep_the_books() {
        let store = MemoryStore::new(MemorySettings::default());
        let p = ProductRepository::create(&store, new_product("w", 10), &admin())
            .await
            .unwrap();
        let adjustment = Adjustment {
            stock: Stock::parse(7).unwrap(),
            reason: inventory_domain::AdjustReason::parse("stock-take").unwrap(),
        };
        let level = store.adjust(p.id, adjustment, &admin()).await.unwrap();
        assert_eq!((level.stock, level.adjusted), (7, -3));
        assert!(level.is_consistent());
        let trail = store
            .audit(p.id, AuditQuery::first(10))
            .await
            .unwrap()
            .unwrap();
        let kinds: Vec<_> = trail
            .entries
            .iter()
            .map(|e| (e.kind, e.quantity, e.stock_after))
            .collect();
        assert_eq!(
            kinds,
            [(AuditKind::Create, 10, 10), (AuditKind::Adjust, -3, 7)]
        );
        assert_eq!(trail.entries[1].reason.as_deref(), Some("stock-take"));
        assert!(trail.entries[0].id < trail.entries[1].id);
    }
}
