//! The data of the in-memory store, guarded by one mutex.

use std::collections::{BTreeMap, HashMap};

use inventory_domain::{
    IdempotencyKey, Product, ProductId, Purchase, PurchaseId, StockLevel, User, UserId, Username,
};

use super::idempotency::IdempotencyRecord;

#[derive(Default)]
pub(super) struct State {
    pub(super) last_user_id: u64,
    pub(super) users: HashMap<UserId, User>,
    pub(super) usernames: HashMap<Username, UserId>,

    pub(super) last_product_id: u64,
    pub(super) products: BTreeMap<ProductId, ProductRecord>,
    pub(super) product_names: HashMap<String, ProductId>,

    pub(super) purchases: HashMap<PurchaseId, Purchase>,
    /// Oldest first; listings walk it backwards.
    pub(super) purchases_by_user: HashMap<UserId, Vec<PurchaseId>>,

    pub(super) idempotency: HashMap<(UserId, IdempotencyKey), IdempotencyRecord>,
}

pub(super) struct ProductRecord {
    pub(super) product: Product,
    pub(super) level: StockLevel,
    /// Purchases numbered so far (purchase ids are per product, as in Redis).
    pub(super) purchases: u64,
}
