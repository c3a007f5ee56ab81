//! Products and their stock accounting.

use time::OffsetDateTime;

use crate::{Description, Price, ProductId, ProductName, Stock};

/// A product on sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Its id.
    pub id: ProductId,
    /// Unique name.
    pub name: ProductName,
    /// Optional free text.
    pub description: Option<Description>,
    /// Unit price.
    pub price: Price,
    /// Units on hand now.
    pub stock: u64,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When its stock or details last changed.
    pub updated_at: OffsetDateTime,
}

/// What product creation hands to the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Unique name; the repository enforces uniqueness atomically.
    pub name: ProductName,
    /// Optional free text.
    pub description: Option<Description>,
    /// Unit price.
    pub price: Price,
    /// Initial units on hand.
    pub stock: Stock,
}

/// The stock accounting of one product.
///
/// Invariant: `stock + sold == initial_stock + restocked + adjusted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLevel {
    /// The product.
    pub product_id: ProductId,
    /// Units on hand now.
    pub stock: u64,
    /// Units sold so far.
    pub sold: u64,
    /// Units on hand when the product was created.
    pub initial_stock: u64,
    /// Units added by restocks since.
    pub restocked: u64,
    /// Net units added (positive) or removed (negative) by stock-take adjustments.
    pub adjusted: i64,
}

impl StockLevel {
    /// A freshly created product's level.
    pub fn new(product_id: ProductId, initial_stock: u64) -> Self {
        Self {
            product_id,
            stock: initial_stock,
            sold: 0,
            initial_stock,
            restocked: 0,
            adjusted: 0,
        }
    }

    /// True when the accounting adds up.
    pub fn is_consistent(&self) -> bool {
        i128::from(self.stock) + i128::from(self.sold)
            == i128::from(self.initial_stock)
                + i128::from(self.restocked)
                + i128::from(self.adjusted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariant() {
        let mut level = StockLevel::new(ProductId(1), 10);
        assert!(level.is_consistent());
        level.stock -= 3;
        level.sold += 3;
        assert!(level.is_consistent());
        level.stock += 5;
        assert!(!level.is_consistent());
        level.restocked += 5;
        assert!(level.is_consistent());
        level.stock -= 8;
        assert!(!level.is_consistent());
        level.adjusted -= 8;
        assert!(level.is_consistent());
    }
}
