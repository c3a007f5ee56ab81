//! In-memory adapters: the whole store in one process, for development mode and tests.
//!
//! They behave like the Redis adapters (unique names, stock accounting, idempotency,
//! newest-first listings, counter ids, audit trails, reconciliation), and purchases,
//! orders, restocks and adjustments take the products' locks from `inventory-lock` like
//! the Redis adapters do, so development mode exercises the same queueing. Nothing
//! survives a restart.

mod idempotency;
mod locks;
mod orders;
mod products;
mod purchases;
mod reconcile;
mod state;
mod users;

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use inventory_domain::{HealthCheck, LockReadiness, Readiness};
use inventory_lock::{GroupCommit, LocalLock};

use crate::Repositories;
use crate::redis::DEFAULT_PURCHASE_BATCH_MAX;

use self::{locks::ProductLocks, purchases::MemoryBatches, state::State};

/// How the in-memory store locks products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySettings {
    /// Lease of a product lock.
    pub lock_ttl: Duration,
    /// How long a purchase or restock waits for the product's lock.
    pub lock_wait_timeout: Duration,
    /// Most purchases of one product committed under one lock hold.
    pub purchase_batch_max: NonZeroUsize,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            lock_ttl: Duration::from_millis(5000),
            lock_wait_timeout: Duration::from_millis(3000),
            purchase_batch_max: DEFAULT_PURCHASE_BATCH_MAX,
        }
    }
}

/// The in-memory store. Cheap to clone (shared state).
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<Mutex<State>>,
    locks: ProductLocks,
    purchases: GroupCommit<MemoryBatches>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(settings: MemorySettings) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let lock = LocalLock::new();
        let purchases = GroupCommit::new(
            Arc::new(lock.clone()),
            locks::options(settings),
            settings.purchase_batch_max,
            MemoryBatches::new(Arc::clone(&state), lock.clone()),
        );
        Self {
            inner: Arc::new(Inner {
                state,
                locks: ProductLocks::new(lock, settings),
                purchases,
            }),
        }
    }

    /// The store behind every port.
    pub fn repositories(&self) -> Repositories {
        let store = Arc::new(self.clone());
        Repositories {
            users: store.clone(),
            products: store.clone(),
            purchases: store.clone(),
            orders: store.clone(),
            reconciler: store.clone(),
            health: store,
        }
    }

    /// The shared state. Held only for short synchronous sections, never across `.await`.
    fn state(&self) -> MutexGuard<'_, State> {
        lock_state(&self.inner.state)
    }
}

#[async_trait]
impl HealthCheck for MemoryStore {
    async fn readiness(&self) -> Readiness {
        Readiness {
            data_store_error: None,
            locks: LockReadiness::InProcess,
        }
    }
}

/// Locks the shared state. A panic while holding the lock cannot leave it
/// half-written: every mutation is checked first and then applied without
/// fallible steps.
fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
