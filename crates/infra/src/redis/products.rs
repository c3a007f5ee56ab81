//! [`ProductRepository`] over Redis. Restocks run under the product's lock, as
//! guarded scripts, like purchases.

use async_trait::async_trait;
use inventory_domain::{
    NewProduct, Page, Product, ProductError, ProductId, ProductRepository, RestockQuantity, Stock,
    StockLevel, StoreError,
};
use redis::{AsyncCommands, Value};

use super::codec::{self, Fields};
use super::{RedisStore, keys, scripts, unavailable};
use crate::lock_failure::LockFailure;
use inventory_lock::ScriptArgs;

#[async_trait]
impl ProductRepository for RedisStore {
    #[tracing::instrument(skip_all, fields(product.name = %new.name.as_str()))]
    async fn create(&self, new: NewProduct) -> Result<Product, ProductError> {
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

    #[tracing::instrument(skip_all, fields(product.id = %id, quantity = quantity.get()))]
    async fn restock(
        &self,
        id: ProductId,
        quantity: RestockQuantity,
    ) -> Result<StockLevel, ProductError> {
        let guard = self
            .lock
            .acquire(&keys::product_lock(id), &self.lock_options)
            .await
            .map_err(|error| LockFailure::classify(&error, "taking a product lock"))?;
        let reply = scripts::RESTOCK
            .prepare(&guard)
            .key(keys::product(id))
            .arg(quantity.get())
            .arg(Stock::MAX)
            .arg(codec::unix_ms(codec::now()))
            .invoke::<Vec<Value>>(&mut self.data())
            .await;
        if let Err(error) = guard.release().await {
            tracing::warn!(%error, "releasing a product lock after restock");
        }
        let reply =
            reply.map_err(|error| LockFailure::classify(&error, "running the restock script"))?;
        let level = restock_outcome(id, quantity, &reply)?;
        crate::metrics::stock(id, level.stock);
        Ok(level)
    }
}

impl RedisStore {
    async fn product_fields(&self, id: ProductId) -> Result<Fields, StoreError> {
        self.data()
            .hgetall(keys::product(id))
            .await
            .map_err(|error| unavailable("reading a product", error))
    }
}

fn restock_outcome(
    id: ProductId,
    quantity: RestockQuantity,
    reply: &[Value],
) -> Result<StockLevel, ProductError> {
    let number = |index: usize| -> Result<u64, StoreError> {
        reply
            .get(index)
            .and_then(|value| redis::from_redis_value_ref::<u64>(value).ok())
            .ok_or_else(|| StoreError::corrupt("unexpected reply from the restock script"))
    };
    match reply
        .first()
        .and_then(|tag| redis::from_redis_value_ref::<String>(tag).ok())
        .as_deref()
    {
        Some("ok") => Ok(StockLevel {
            product_id: id,
            stock: number(1)?,
            sold: number(2)?,
            initial_stock: number(3)?,
            restocked: number(4)?,
        }),
        Some("no-product") => Err(ProductError::NotFound(id)),
        Some("limit") => Err(ProductError::StockLimitExceeded {
            current: number(1)?,
            adding: quantity.get(),
            limit: Stock::MAX,
        }),
        _ => Err(StoreError::corrupt("unexpected reply from the restock script").into()),
    }
}
