//! Idempotency records of the in-memory store.
//!
//! A key moves from absent → in flight (reserved by the first request) → completed (with
//! the purchase it produced). A failed order removes its reservation, so a sold-out
//! attempt does not burn the key. Twins of an in-flight request wait for it to finish and
//! then replay its receipt (or report it still in flight after a deadline).

use inventory_domain::{
    IDEMPOTENCY_KEY_TTL, IdempotencyKey, OrderFingerprint, PurchaseError, PurchaseId,
    PurchaseOrder, PurchaseReceipt, StoreError, UserId,
};
use tokio::{sync::watch, time::Instant};

use super::MemoryStore;

pub(super) type RecordKey = (UserId, IdempotencyKey);

pub(super) enum IdempotencyEntry {
    InFlight {
        fingerprint: OrderFingerprint,
        /// Closed when the owning request finishes, either way.
        done: watch::Receiver<()>,
    },
    Completed {
        fingerprint: OrderFingerprint,
        purchase_id: PurchaseId,
        remaining_stock: u64,
        expires_at: Instant,
    },
}

impl IdempotencyEntry {
    pub(super) fn completed(
        fingerprint: OrderFingerprint,
        purchase_id: PurchaseId,
        remaining_stock: u64,
    ) -> Self {
        Self::Completed {
            fingerprint,
            purchase_id,
            remaining_stock,
            expires_at: Instant::now() + IDEMPOTENCY_KEY_TTL,
        }
    }
}

/// What to do with an order after looking at its idempotency key.
pub(super) enum Admission {
    /// Go ahead; the reservation (if the order has a key) must be completed or dropped.
    Proceed(Option<Reservation>),
    /// The key already produced this receipt.
    Replay(PurchaseReceipt),
}

/// An in-flight claim on an idempotency key. Dropping it without
/// [`Reservation::complete`] frees the key (also when the request's future is cancelled).
pub(super) struct Reservation {
    store: MemoryStore,
    key: RecordKey,
    fingerprint: OrderFingerprint,
    completed: bool,
    _done: watch::Sender<()>,
}

impl Reservation {
    pub(super) fn key(&self) -> &RecordKey {
        &self.key
    }

    pub(super) fn fingerprint(&self) -> &OrderFingerprint {
        &self.fingerprint
    }

    /// The caller has replaced the in-flight entry with a completed one.
    pub(super) fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        let mut state = self.store.state();
        if matches!(
            state.idempotency.get(&self.key),
            Some(IdempotencyEntry::InFlight { .. })
        ) {
            state.idempotency.remove(&self.key);
        }
        // `_done` is dropped after this, waking the twins, which then find the key free.
    }
}

impl MemoryStore {
    pub(super) async fn admit(&self, order: &PurchaseOrder) -> Result<Admission, PurchaseError> {
        let Some(key) = &order.idempotency_key else {
            return Ok(Admission::Proceed(None));
        };
        let record_key = (order.user_id, key.clone());
        let fingerprint = order.fingerprint();
        // A twin waits at most as long as the first request can take to get its lock.
        let deadline =
            Instant::now() + self.inner.settings.lock_wait_timeout + self.inner.settings.lock_ttl;
        loop {
            let mut done = {
                let mut state = self.state();
                if let Some(IdempotencyEntry::Completed { expires_at, .. }) =
                    state.idempotency.get(&record_key)
                    && *expires_at <= Instant::now()
                {
                    state.idempotency.remove(&record_key);
                }
                match state.idempotency.get(&record_key) {
                    None => {
                        let (tx, rx) = watch::channel(());
                        state.idempotency.insert(
                            record_key.clone(),
                            IdempotencyEntry::InFlight {
                                fingerprint: fingerprint.clone(),
                                done: rx,
                            },
                        );
                        return Ok(Admission::Proceed(Some(Reservation {
                            store: self.clone(),
                            key: record_key,
                            fingerprint,
                            completed: false,
                            _done: tx,
                        })));
                    }
                    Some(IdempotencyEntry::Completed {
                        fingerprint: stored,
                        purchase_id,
                        remaining_stock,
                        ..
                    }) => {
                        if *stored != fingerprint {
                            return Err(PurchaseError::IdempotencyKeyReused);
                        }
                        let purchase =
                            state.purchases.get(purchase_id).cloned().ok_or_else(|| {
                                StoreError::corrupt(format!(
                                    "idempotency record points at missing purchase {purchase_id}"
                                ))
                            })?;
                        return Ok(Admission::Replay(PurchaseReceipt {
                            purchase,
                            remaining_stock: *remaining_stock,
                            replayed: true,
                        }));
                    }
                    Some(IdempotencyEntry::InFlight {
                        fingerprint: stored,
                        done,
                    }) => {
                        if *stored != fingerprint {
                            return Err(PurchaseError::IdempotencyKeyReused);
                        }
                        done.clone()
                    }
                }
            };
            // The sender is never used to send: `changed` returns when it is dropped.
            if tokio::time::timeout_at(deadline, done.changed())
                .await
                .is_err()
            {
                return Err(PurchaseError::IdempotencyInFlight);
            }
        }
    }
}
