//! Adapters of the domain ports: Redis (system of record) and in-memory (development mode).

use std::sync::Arc;

use inventory_domain::{
    HealthCheck, OrderService, ProductRepository, PurchaseService, Reconciler, UserRepository,
};

mod lock_failure;
pub mod memory;
pub mod metrics;
pub mod redis;

/// Every port the application needs, as trait objects. Returned by
/// [`memory::MemoryStore::repositories`] and by the Redis `connect`, so the composition
/// root is the only place that knows which one it got.
#[derive(Clone)]
pub struct Repositories {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Catalogue and stock.
    pub products: Arc<dyn ProductRepository>,
    /// Buying.
    pub purchases: Arc<dyn PurchaseService>,
    /// Multi-product orders.
    pub orders: Arc<dyn OrderService>,
    /// Checks that stock, sales and audit trails agree.
    pub reconciler: Arc<dyn Reconciler>,
    /// Readiness of the backing store.
    pub health: Arc<dyn HealthCheck>,
}
