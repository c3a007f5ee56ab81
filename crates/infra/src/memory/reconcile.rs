//! [`Reconciler`] in memory: the same checks as in Redis mode, on a snapshot
//! taken under the state lock (every write happens under it). Orders are never
//! left half-made in memory (they are applied in one critical section), so there
//! is nothing to finish.

use std::collections::HashMap;

use async_trait::async_trait;
use inventory_domain::{
    ProductId, ReconcileReport, Reconciler, RequestId, StoreError, check_accounting, check_audit,
};

use super::MemoryStore;

#[async_trait]
impl Reconciler for MemoryStore {
    async fn reconcile(&self, _request_id: &RequestId) -> Result<ReconcileReport, StoreError> {
        let state = self.state();
        let mut recorded: HashMap<ProductId, i64> = HashMap::new();
        for purchase in state.purchases.values() {
            *recorded.entry(purchase.product_id).or_default() += i64::from(purchase.quantity);
        }
        for order in state.orders.values() {
            for line in &order.lines {
                *recorded.entry(line.product_id).or_default() += i64::from(line.quantity);
            }
        }
        let number = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut report = ReconcileReport::default();
        for (id, record) in &state.products {
            let level = record.level;
            report.differences.extend(check_accounting(
                *id,
                number(level.stock),
                number(level.sold),
                number(level.initial_stock),
                number(level.restocked),
                level.adjusted,
                recorded.get(id).copied().unwrap_or(0),
            ));
            report
                .differences
                .extend(check_audit(*id, number(level.stock), &record.audit));
            report.products_checked += 1;
        }
        drop(state);
        crate::metrics::reconciled(&report);
        Ok(report)
    }
}
