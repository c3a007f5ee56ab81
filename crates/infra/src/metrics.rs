//! Business gauges the adapters keep current (through the `metrics` facade).

use inventory_domain::{ProductId, ReconcileReport};

/// Gauge: units in stock, per product. Label: `product_id`.
pub const PRODUCT_STOCK: &str = "lockstock_product_stock";

/// Gauge: differences the last reconciliation found (0 = clean).
pub const RECONCILE_DIFFERENCES: &str = "lockstock_reconcile_differences";
/// Gauge: when the last reconciliation finished (unix seconds).
pub const RECONCILE_LAST_RUN: &str = "lockstock_reconcile_last_run_timestamp_seconds";
/// Counter: incomplete orders finished by reconciliation.
pub const RECONCILE_ORDERS_RECOVERED: &str = "lockstock_reconcile_orders_recovered_total";

/// Records the result of a reconciliation.
pub(crate) fn reconciled(report: &ReconcileReport) {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a count of differences is far below 2^53"
    )]
    let differences = report.differences.len() as f64;
    metrics::gauge!(RECONCILE_DIFFERENCES).set(differences);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    #[expect(
        clippy::cast_precision_loss,
        reason = "unix seconds fit an f64 exactly"
    )]
    metrics::gauge!(RECONCILE_LAST_RUN).set(now as f64);
    metrics::counter!(RECONCILE_ORDERS_RECOVERED).increment(report.orders_recovered);
}

/// Records a product's stock after a change.
pub(crate) fn stock(product: ProductId, units: u64) {
    // Precision loss above 2^53 units cannot happen: stock is capped at 10^9.
    #[expect(
        clippy::cast_precision_loss,
        reason = "stock ≤ 10^9 fits an f64 exactly"
    )]
    let units = units as f64;
    metrics::gauge!(PRODUCT_STOCK, "product_id" => product.to_string()).set(units);
}
