//! Ports: what the application needs from storage. Implemented over Redis and in memory
//! by `inventory-infra`; used as `Arc<dyn Port>`.

use async_trait::async_trait;

use crate::{
    Actor, Adjustment, AuditPage, AuditQuery, NewOrder, NewProduct, NewUser, Order, OrderError,
    OrderId, OrderReceipt, Page, Product, ProductError, ProductId, Purchase, PurchaseError,
    PurchaseId, PurchaseOrder, PurchaseReceipt, Readiness, ReconcileReport, RequestId,
    RestockOrder, RestockReceipt, StockLevel, StoreError, User, UserError, UserId, Username,
};

/// Accounts.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates an account. Username uniqueness is enforced atomically (two concurrent
    /// registrations of one name: exactly one succeeds, the other gets
    /// [`UserError::UsernameTaken`]).
    async fn create(&self, new: NewUser) -> Result<User, UserError>;

    /// The account with this username, if any.
    async fn find_by_username(&self, username: &Username) -> Result<Option<User>, StoreError>;

    /// The account with this id, if any.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
}

/// The catalogue and its stock.
///
/// Every change of a product's stock — creation, purchase, order line, restock,
/// adjustment — appends an entry to the product's audit trail in the same atomic
/// step as the change itself, stamped with the actor and request.
#[async_trait]
pub trait ProductRepository: Send + Sync {
    /// Creates a product; names are unique ([`ProductError::NameTaken`]).
    async fn create(&self, new: NewProduct, by: &Actor) -> Result<Product, ProductError>;

    /// The product with this id, if any.
    async fn get(&self, id: ProductId) -> Result<Option<Product>, StoreError>;

    /// A page of products, ordered by id.
    async fn list(&self, page: Page) -> Result<Vec<Product>, StoreError>;

    /// The stock accounting of a product, if it exists.
    async fn stock(&self, id: ProductId) -> Result<Option<StockLevel>, StoreError>;

    /// Adds units to a product's stock, under the product's lock. With an
    /// idempotency key, the same key and quantity again answer the first result
    /// (`replayed`) and add nothing — also after a lost reply; another quantity is
    /// [`ProductError::IdempotencyKeyReused`].
    async fn restock(
        &self,
        id: ProductId,
        order: RestockOrder,
        by: &Actor,
    ) -> Result<RestockReceipt, ProductError>;

    /// Sets a product's stock (a stock-take), under the product's lock; the
    /// difference is booked as `adjusted`.
    async fn adjust(
        &self,
        id: ProductId,
        adjustment: Adjustment,
        by: &Actor,
    ) -> Result<StockLevel, ProductError>;

    /// A page of the product's audit trail, oldest first; `None` if no such product.
    async fn audit(
        &self,
        id: ProductId,
        query: AuditQuery,
    ) -> Result<Option<AuditPage>, StoreError>;
}

/// Buying.
///
/// Idempotency: for one user and one key, the same order (see
/// [`PurchaseOrder::fingerprint`]) yields the first receipt again with
/// `replayed: true` and never a second purchase, also when both requests run at the
/// same time (the later one is committed after the first and replays it); a different
/// order yields [`PurchaseError::IdempotencyKeyReused`]. Records live at least
/// [`crate::IDEMPOTENCY_KEY_TTL`]. Failed orders (e.g. sold out) do not consume the key.
///
/// Order: purchases of one product are committed in the order `purchase` was called
/// (within one process), several at a time under one hold of the product's lock.
#[async_trait]
pub trait PurchaseService: Send + Sync {
    /// Buys under the product's lock: checks stock, decrements it and records the
    /// purchase atomically.
    async fn purchase(&self, order: PurchaseOrder) -> Result<PurchaseReceipt, PurchaseError>;

    /// The purchase with this id, if any (ownership is checked by the caller).
    async fn get(&self, id: PurchaseId) -> Result<Option<Purchase>, StoreError>;

    /// A page of one user's purchases, newest first.
    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Purchase>, StoreError>;
}

/// Multi-product orders: every line bought, or nothing.
///
/// Every product's lock is taken (sorted, all or nothing), every line is checked,
/// and only then is stock changed — one guarded write per product, so no step
/// touches several products' data at once. Idempotency keys behave exactly as for
/// purchases (and share their namespace: one key cannot serve a purchase and an
/// order). An order interrupted between its lines is made whole by the next
/// request with its key, or by [`Reconciler::reconcile`].
#[async_trait]
pub trait OrderService: Send + Sync {
    /// Places an order.
    async fn place(&self, order: NewOrder) -> Result<OrderReceipt, OrderError>;

    /// The order with this id, if it was made (ownership is checked by the caller).
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// A page of one user's orders, newest first.
    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Order>, StoreError>;
}

/// Checks that stock, sales records and audit trails agree, product by product,
/// and finishes orders interrupted between their lines.
#[async_trait]
pub trait Reconciler: Send + Sync {
    /// Runs every check; `request_id` is stamped on the entries of orders it rolls back.
    async fn reconcile(&self, request_id: &RequestId) -> Result<ReconcileReport, StoreError>;
}

/// Readiness of the backing store.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Asks every backend part now: the data store, and the lock nodes where locks live
    /// apart from it. [`Readiness::is_ready`] when the data store answers and locks can
    /// be taken (for a quorum-based lock: a quorum of nodes counts).
    async fn readiness(&self) -> Readiness;
}
