//! Business gauges the adapters keep current (through the `metrics` facade).

use inventory_domain::ProductId;

/// Gauge: units in stock, per product. Label: `product_id`.
pub const PRODUCT_STOCK: &str = "lockstock_product_stock";

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
