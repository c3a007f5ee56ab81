//! Product locks of the in-memory store.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use inventory_domain::ProductId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::MemorySettings;

/// One lock per product. Waiters are served in FIFO order (tokio's mutex is fair) and
/// give up after the configured wait timeout.
pub(super) struct ProductLocks {
    wait_timeout: Duration,
    locks: Mutex<HashMap<ProductId, Arc<AsyncMutex<()>>>>,
}

/// The product's lock could not be had in time.
#[derive(Debug)]
pub(super) struct LockTimeout {
    pub(super) retry_after: Duration,
}

/// Held while the product is locked; dropping it releases the lock.
pub(super) struct ProductGuard {
    _guard: OwnedMutexGuard<()>,
}

impl ProductLocks {
    pub(super) fn new(settings: MemorySettings) -> Self {
        Self {
            wait_timeout: settings.lock_wait_timeout,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn acquire(&self, product: ProductId) -> Result<ProductGuard, LockTimeout> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(product)
            .or_default()
            .clone();
        match tokio::time::timeout(self.wait_timeout, lock.lock_owned()).await {
            Ok(guard) => Ok(ProductGuard { _guard: guard }),
            Err(_) => Err(LockTimeout {
                retry_after: Duration::from_secs(1),
            }),
        }
    }
}
