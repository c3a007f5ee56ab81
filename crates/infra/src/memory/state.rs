//! The data of the in-memory store, guarded by one mutex.

use std::collections::{BTreeMap, HashMap};

use inventory_domain::{
    AuditCursor, AuditEntry, AuditKind, IdempotencyKey, Order, OrderId, Product, ProductId,
    Purchase, PurchaseId, StockLevel, User, UserId, Username,
};
use time::OffsetDateTime;

use super::idempotency::{IdempotencyRecord, RestockRecord};

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

    pub(super) orders: HashMap<OrderId, Order>,
    /// Oldest first; listings walk it backwards. Its length numbers the next order.
    pub(super) orders_by_user: HashMap<UserId, Vec<OrderId>>,

    pub(super) idempotency: HashMap<(UserId, IdempotencyKey), IdempotencyRecord>,
    pub(super) restock_idempotency: HashMap<(ProductId, UserId, IdempotencyKey), RestockRecord>,
}

pub(super) struct ProductRecord {
    pub(super) product: Product,
    pub(super) level: StockLevel,
    /// Purchases numbered so far (purchase ids are per product, as in Redis).
    pub(super) purchases: u64,
    /// The audit trail, oldest first.
    pub(super) audit: Vec<AuditEntry>,
}

/// What an audit entry says besides its position, time and stock.
pub(super) struct Change<'a> {
    pub(super) kind: AuditKind,
    pub(super) actor: UserId,
    pub(super) quantity: i64,
    pub(super) fence: Option<u64>,
    pub(super) request_id: &'a str,
    pub(super) reference: Option<u64>,
    pub(super) reason: Option<&'a str>,
}

impl ProductRecord {
    /// Appends `change` to the trail, stamped with the stock as it is now. Entry ids
    /// take the shape of Redis stream ids: `<ms>-<n>`, increasing.
    pub(super) fn audit(&mut self, change: Change<'_>, at: OffsetDateTime) {
        let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let id = match self.audit.last() {
            Some(last) if last.id.ms >= ms => last.id.successor().unwrap_or(last.id),
            _ => AuditCursor { ms, seq: 0 },
        };
        self.audit.push(AuditEntry {
            id,
            kind: change.kind,
            actor: change.actor,
            quantity: change.quantity,
            stock_after: self.level.stock,
            fence: change.fence,
            request_id: change.request_id.to_owned(),
            at,
            reference: change.reference,
            reason: change.reason.map(str::to_owned),
        });
    }
}
