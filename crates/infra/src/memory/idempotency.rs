//! Idempotency records of the in-memory store: what a (user, key) pair bought or
//! ordered, and what an (admin, product, key) restock answered.
//!
//! Records are written in the same critical section as the change they stand
//! for, and looked up there too, so twins — even two in one batch — resolve in
//! commit order exactly as the Redis scripts resolve them. A failed request
//! writes no record, so it does not consume its key.

use inventory_domain::{IDEMPOTENCY_KEY_TTL, OrderFingerprint, OrderId, PurchaseId, StockLevel};
use tokio::time::Instant;

/// What a (user, key) pair was first used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Made {
    /// A purchase, and the stock left right after it.
    Purchase {
        id: PurchaseId,
        remaining_stock: u64,
    },
    /// An order.
    Order(OrderId),
}

/// The first answer given to a (user, key) pair.
pub(super) struct IdempotencyRecord {
    pub(super) fingerprint: OrderFingerprint,
    pub(super) made: Made,
    expires_at: Instant,
}

impl IdempotencyRecord {
    pub(super) fn new(fingerprint: OrderFingerprint, made: Made) -> Self {
        Self {
            fingerprint,
            made,
            expires_at: Instant::now() + IDEMPOTENCY_KEY_TTL,
        }
    }

    /// Whether the record still counts (records live [`IDEMPOTENCY_KEY_TTL`]).
    pub(super) fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

/// The first answer given to an (admin, product, key) restock.
pub(super) struct RestockRecord {
    pub(super) fingerprint: OrderFingerprint,
    pub(super) level: StockLevel,
    expires_at: Instant,
}

impl RestockRecord {
    pub(super) fn new(fingerprint: OrderFingerprint, level: StockLevel) -> Self {
        Self {
            fingerprint,
            level,
            expires_at: Instant::now() + IDEMPOTENCY_KEY_TTL,
        }
    }

    /// Whether the record still counts.
    pub(super) fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}
