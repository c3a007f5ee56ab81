//! Money as integer minor units (cents): no floating point anywhere near a price.

use std::fmt;

use crate::ValidationError;

/// An amount of money in minor units (e.g. cents). Totals of purchases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub u64);

impl Money {
    /// The amount in minor units.
    pub fn minor_units(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A unit price: strictly positive, at most [`Price::MAX`] minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(u64);

impl Price {
    /// Largest price accepted: 10^11 minor units (a billion in major units). With
    /// quantities of at most a million, `price × quantity` cannot overflow a `u64`.
    pub const MAX: u64 = 100_000_000_000;

    /// Parses a price given in minor units.
    pub fn parse(minor_units: i64) -> Result<Self, ValidationError> {
        match u64::try_from(minor_units) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(ValidationError::new(
                "price",
                format!(
                    "must be an integer number of minor units between 1 and {}",
                    Self::MAX
                ),
            )),
        }
    }

    /// The price in minor units.
    pub fn minor_units(self) -> u64 {
        self.0
    }

    /// The total for `quantity` units. `None` only on overflow, which the bounds on
    /// price and quantity rule out in practice.
    pub fn times(self, quantity: u32) -> Option<Money> {
        self.0.checked_mul(u64::from(quantity)).map(Money)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_boundaries() {
        assert!(Price::parse(0).is_err());
        assert!(Price::parse(-1).is_err());
        assert!(Price::parse(i64::MIN).is_err());
        assert_eq!(Price::parse(1).unwrap().minor_units(), 1);
        assert!(Price::parse(Price::MAX as i64).is_ok());
        assert!(Price::parse(Price::MAX as i64 + 1).is_err());
        assert!(Price::parse(i64::MAX).is_err());
    }

    #[test]
    fn totals() {
        let p = Price::parse(1999).unwrap();
        assert_eq!(p.times(3), Some(Money(5997)));
        let max = Price::parse(Price::MAX as i64).unwrap();
        assert_eq!(max.times(1_000_000), Some(Money(Price::MAX * 1_000_000)));
        assert_eq!(max.times(u32::MAX), None);
    }
}
