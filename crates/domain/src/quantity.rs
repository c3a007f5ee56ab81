//! Quantities of a purchase and of a restock.

use std::fmt;

use crate::{Stock, ValidationError};

/// Units asked for in one purchase: 1..=max, where max is configuration
/// (`MAX_PURCHASE_QUANTITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u32);

impl Quantity {
    /// Parses a purchase quantity against the configured maximum.
    pub fn parse(units: i64, max: u32) -> Result<Self, ValidationError> {
        match u32::try_from(units) {
            Ok(v) if (1..=max).contains(&v) => Ok(Self(v)),
            _ => Err(ValidationError::new(
                "quantity",
                format!("must be an integer between 1 and {max}"),
            )),
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Units added by one restock: 1..=[`Stock::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RestockQuantity(u64);

impl RestockQuantity {
    /// Parses a restock quantity.
    pub fn parse(units: i64) -> Result<Self, ValidationError> {
        match u64::try_from(units) {
            Ok(v) if (1..=Stock::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(ValidationError::new(
                "quantity",
                format!("must be an integer between 1 and {}", Stock::MAX),
            )),
        }
    }

    /// The number of units.
    pub fn get(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_quantity_boundaries() {
        assert!(Quantity::parse(0, 100).is_err());
        assert!(Quantity::parse(-1, 100).is_err());
        assert_eq!(Quantity::parse(1, 100).unwrap().get(), 1);
        assert_eq!(Quantity::parse(100, 100).unwrap().get(), 100);
        assert!(Quantity::parse(101, 100).is_err());
        assert!(Quantity::parse(i64::MAX, u32::MAX).is_err());
        assert!(Quantity::parse(i64::from(u32::MAX) + 1, u32::MAX).is_err());
        assert_eq!(
            Quantity::parse(101, 100).unwrap_err().message,
            "must be an integer between 1 and 100"
        );
    }

    #[test]
    fn restock_quantity_boundaries() {
        assert!(RestockQuantity::parse(0).is_err());
        assert!(RestockQuantity::parse(-5).is_err());
        assert!(RestockQuantity::parse(1).is_ok());
        assert!(RestockQuantity::parse(1_000_000_000).is_ok());
        assert!(RestockQuantity::parse(1_000_000_001).is_err());
    }
}
