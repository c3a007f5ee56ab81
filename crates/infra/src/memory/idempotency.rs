//! Idempotency records of the in-memory store: what a (user, key) pair bought.
//!
//! Records are written in the same critical section as the purchase they stand
//! for, and looked up there too, so twins — even two in one batch — resolve in
//! commit order exactly as the Redis script resolves them. A failed order writes
//! no record, so it does not consume its key.

use inventory_domain::{IDEMPOTENCY_KEY_TTL, OrderFingerprint, PurchaseId};
use tokio::time::Instant;

/// The first answer given to a (user, key) pair.
pub(super) struct IdempotencyRecord {
    pub(super) fingerprint: OrderFingerprint,
    pub(super) purchase_id: PurchaseId,
    pub(super) remaining_stock: u64,
    expires_at: Instant,
}

impl IdempotencyRecord {
    pub(super) fn new(
        fingerprint: OrderFingerprint,
        purchase_id: PurchaseId,
        remaining_stock: u64,
    ) -> Self {
        Self {
            fingerprint,
            purchase_id,
            remaining_stock,
            expires_at: Instant::now() + IDEMPOTENCY_KEY_TTL,
        }
    }

    /// Whether the record still counts (records live [`IDEMPOTENCY_KEY_TTL`]).
    pub(super) fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}
