//! Reconciliation: do the stock, the sales records and the audit trail agree?

use std::fmt;

use crate::{AuditEntry, ProductId, replay};

/// One disagreement found by reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The product.
    pub product_id: ProductId,
    /// Which check failed (a stable code, see [`Check`]).
    pub what: Check,
    /// What the check computed from the other figures.
    pub expected: i64,
    /// What is stored.
    pub found: i64,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "product {}: {} — expected {}, found {} ({})",
            self.product_id,
            self.what.as_str(),
            self.expected,
            self.found,
            self.what.explain()
        )
    }
}

/// The checks reconciliation makes, per product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// `initial_stock + restocked + adjusted − sold` against the stock.
    Stock,
    /// The units of the purchase records and order lines against `sold`.
    Sold,
    /// The stock the audit trail replays to against the stock.
    AuditReplay,
    /// An entry whose `stock_after` does not follow from the entries before it:
    /// expected is the replayed stock there, found its `stock_after`.
    AuditChain,
    /// Order lines whose order has no journal (expected 0, found how many).
    OrphanOrderLines,
}

impl Check {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Stock => "stock",
            Check::Sold => "sold",
            Check::AuditReplay => "audit-replay",
            Check::AuditChain => "audit-chain",
            Check::OrphanOrderLines => "orphan-order-lines",
        }
    }

    /// A sentence for people reading the report.
    pub fn explain(self) -> &'static str {
        match self {
            Check::Stock => "initial_stock + restocked + adjusted - sold should equal the stock",
            Check::Sold => "purchase records and order lines should add up to sold",
            Check::AuditReplay => "the audit trail should replay to the stock",
            Check::AuditChain => {
                "each audit entry's stock_after should follow from the ones before"
            }
            Check::OrphanOrderLines => "every order line should belong to a recorded order",
        }
    }
}

/// What reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Products looked at.
    pub products_checked: u64,
    /// Every disagreement, by product.
    pub differences: Vec<Difference>,
    /// Incomplete orders (interrupted between lines) made whole on the way:
    /// committed when every line had been applied, rolled back otherwise.
    pub orders_recovered: u64,
}

impl ReconcileReport {
    /// No difference.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// The stock checks of one product's figures: [`Check::Stock`] and
/// [`Check::Sold`]. `recorded` is the units of its purchase records plus its
/// order lines.
pub fn check_accounting(
    product_id: ProductId,
    stock: i64,
    sold: i64,
    initial_stock: i64,
    restocked: i64,
    adjusted: i64,
    recorded: i64,
) -> Vec<Difference> {
    let mut differences = Vec::new();
    let expected = initial_stock
        .saturating_add(restocked)
        .saturating_add(adjusted)
        .saturating_sub(sold);
    if expected != stock {
        differences.push(Difference {
            product_id,
            what: Check::Stock,
            expected,
            found: stock,
        });
    }
    if recorded != sold {
        differences.push(Difference {
            product_id,
            what: Check::Sold,
            expected: recorded,
            found: sold,
        });
    }
    differences
}

/// [`Check::AuditChain`] at the first break, and [`Check::AuditReplay`] when the
/// trail's changes do not add up to `stock`.
pub fn check_audit(product: ProductId, stock: i64, audit: &[AuditEntry]) -> Vec<Difference> {
    let mut differences = Vec::new();
    if let Err((_, expected, found)) = replay(audit) {
        differences.push(Difference {
            product_id: product,
            what: Check::AuditChain,
            expected: i64::try_from(expected).unwrap_or(i64::MAX),
            found: i64::try_from(found).unwrap_or(i64::MAX),
        });
    }
    let replayed: i128 = audit.iter().map(|e| i128::from(e.quantity)).sum();
    if replayed != i128::from(stock) {
        differences.push(Difference {
            product_id: product,
            what: Check::AuditReplay,
            expected: i64::try_from(replayed).unwrap_or(i64::MAX),
            found: stock,
        });
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_checks_name_what_differs() {
        let p = ProductId(3);
        assert!(check_accounting(p, 7, 3, 10, 0, 0, 3).is_empty());
        assert!(check_accounting(p, 12, 3, 10, 10, -5, 3).is_empty());
        let found = check_accounting(p, 99, 3, 10, 0, 0, 2);
        assert_eq!(
            found
                .iter()
                .map(|d| (d.what, d.expected, d.found))
                .collect::<Vec<_>>(),
            [(Check::Stock, 7, 99), (Check::Sold, 2, 3)]
        );
        assert!(found[0].to_string().contains("product 3: stock"));
    }
}
