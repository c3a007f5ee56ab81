//! [`ProductRepository`] in memory.

use async_trait::async_trait;
use inventory_domain::{
    NewProduct, Page, Product, ProductError, ProductId, ProductRepository, RestockQuantity, Stock,
    StockLevel, StoreError,
};
use time::OffsetDateTime;

use super::{MemoryStore, state::ProductRecord};

#[async_trait]
impl ProductRepository for MemoryStore {
    async fn create(&self, new: NewProduct) -> Result<Product, ProductError> {
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
        state.products.insert(
            id,
            ProductRecord {
                product: product.clone(),
                level: StockLevel::new(id, new.stock.units()),
                purchases: 0,
            },
        );
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
        quantity: RestockQuantity,
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
        let result = self
            .inner
            .locks
            .guarded(&guard, || self.apply_restock(id, quantity));
        self.inner.locks.release(guard).await;
        result.map_err(ProductError::from)?
    }
}

impl MemoryStore {
    /// Adds the units, under the state lock (the in-memory "restock script").
    fn apply_restock(
        &self,
        id: ProductId,
        quantity: RestockQuantity,
    ) -> Result<StockLevel, ProductError> {
        let mut state = self.state();
        let record = state
            .products
            .get_mut(&id)
            .ok_or(ProductError::NotFound(id))?;
        let adding = quantity.get();
        let current = record.level.stock;
        let new_stock = current
            .checked_add(adding)
            .filter(|s| *s <= Stock::MAX)
            .ok_or(ProductError::StockLimitExceeded {
                current,
                adding,
                limit: Stock::MAX,
            })?;
        record.level.stock = new_stock;
        record.level.restocked += adding;
        record.product.stock = new_stock;
        record.product.updated_at = OffsetDateTime::now_utc();
        crate::metrics::stock(id, new_stock);
        Ok(record.level)
    }
}

#[cfg(test)]
mod tests {
    use inventory_domain::{Price, ProductName};

    use super::*;
    use crate::memory::MemorySettings;

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
            ProductRepository::create(&store, new_product(&format!("p{i}"), i))
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
        ProductRepository::create(&store, new_product("Widget", 1))
            .await
            .unwrap();
        let err = ProductRepository::create(&store, new_product(" Widget ", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, ProductError::NameTaken));
    }

    #[tokio::test]
    async fn restock_keeps_the_accounting() {
        let store = MemoryStore::new(MemorySettings::default());
        let p = ProductRepository::create(&store, new_product("w", 10))
            .await
            .unwrap();
        let level = store
            .restock(p.id, RestockQuantity::parse(5).unwrap())
            .await
            .unwrap();
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
            .restock(ProductId(42), RestockQuantity::parse(1).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, ProductError::NotFound(ProductId(42))));
        let err = store
            .restock(p.id, RestockQuantity::parse(Stock::MAX as i64).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, ProductError::StockLimitExceeded { .. }));
    }
}
