//! Stock counts.

use std::fmt;

use crate::ValidationError;

/// A number of units on hand: 0..=[`Stock::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stock(u64);

impl Stock {
    /// Most units one product may hold (keeps counters far from any integer limit,
    /// including Lua's 2^53 exact-integer range).
    pub const MAX: u64 = 1_000_000_000;

    /// Parses a stock count.
    pub fn parse(units: i64) -> Result<Self, ValidationError> {
        match u64::try_from(units) {
            Ok(v) if v <= Self::MAX => Ok(Self(v)),
            _ => Err(ValidationError::new(
                "stock",
                format!("must be an integer between 0 and {}", Self::MAX),
            )),
        }
    }

    /// The number of units.
    pub fn units(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Stock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert!(Stock::parse(-1).is_err());
        assert_eq!(Stock::parse(0).unwrap().units(), 0);
        assert!(Stock::parse(1_000_000_000).is_ok());
        assert!(Stock::parse(1_000_000_001).is_err());
        assert!(Stock::parse(i64::MAX).is_err());
    }
}
