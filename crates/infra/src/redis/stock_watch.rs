//! Stock levels this process has just seen, pushed to the purchases queued
//! behind the same product's lock.
//!
//! When a purchase takes the last units, every request still queued for that
//! product in this process would otherwise wait for its turn at the lock only to
//! be told "sold out" by the script — a thousand lock turns after a flash sale
//! ends. Instead each queued request watches the product's level and gives up
//! its place (dropping the acquire future is cancellation-safe) as soon as a
//! level *published after it started waiting* is below what it asks for. Only
//! levels read inside the purchase and restock scripts are published, so a
//! refusal always reflects a real moment during the request.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use inventory_domain::ProductId;
use tokio::sync::watch;

/// One channel per product that has had a purchase or restock in this process.
#[derive(Default)]
pub(crate) struct StockWatch {
    levels: Mutex<HashMap<ProductId, watch::Sender<u64>>>,
}

impl StockWatch {
    /// Publishes a level just read by a script.
    pub(crate) fn publish(&self, product: ProductId, stock: u64) {
        let mut levels = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        match levels.get(&product) {
            Some(sender) => {
                sender.send_replace(stock);
            }
            None => {
                levels.insert(product, watch::channel(stock).0);
            }
        }
    }

    /// Resolves with the first level published from now on that is below `wanted`.
    pub(crate) async fn falls_below(&self, product: ProductId, wanted: u64) -> u64 {
        let mut receiver = {
            let mut levels = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
            levels
                .entry(product)
                .or_insert_with(|| watch::channel(u64::MAX).0)
                .subscribe()
        };
        // What was published before we started waiting is not evidence.
        receiver.mark_unchanged();
        loop {
            if receiver.changed().await.is_err() {
                return std::future::pending().await;
            }
            let level = *receiver.borrow_and_update();
            if level < wanted {
                return level;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn only_levels_published_while_waiting_count() {
        let watch = StockWatch::default();
        let product = ProductId(1);
        watch.publish(product, 0);
        let stale = tokio::time::timeout(Duration::from_millis(20), watch.falls_below(product, 1));
        assert!(
            stale.await.is_err(),
            "a level from before the wait ended it"
        );

        let waiting = watch.falls_below(product, 3);
        let publish = async {
            tokio::task::yield_now().await;
            watch.publish(product, 5);
            tokio::task::yield_now().await;
            watch.publish(product, 2);
        };
        let (level, ()) = tokio::join!(waiting, publish);
        assert_eq!(level, 2);
    }
}
