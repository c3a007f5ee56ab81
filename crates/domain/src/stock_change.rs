//! Admin changes of a product's stock: restocks and stock-take adjustments.

use crate::{
    IdempotencyKey, OrderFingerprint, RestockQuantity, Stock, StockLevel, ValidationError,
};

/// Units to add, with an optional idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestockOrder {
    /// Units to add.
    pub quantity: RestockQuantity,
    /// The same key and quantity again answer the first result and add nothing;
    /// the same key with another quantity is a reuse error. Scoped per admin and
    /// product (the product is the resource the request names).
    pub idempotency_key: Option<IdempotencyKey>,
}

impl RestockOrder {
    /// What an idempotency key is bound to.
    pub fn fingerprint(&self) -> OrderFingerprint {
        OrderFingerprint::of_restock(self.quantity.get())
    }
}

/// The answer to a restock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestockReceipt {
    /// The stock accounting right after the restock.
    pub level: StockLevel,
    /// True when this replays the stored answer of an earlier request with the
    /// same key (nothing was added this time).
    pub replayed: bool,
}

/// Why a stock-take changed the stock: 1–200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustReason(String);

impl AdjustReason {
    /// Most characters (not bytes) allowed.
    pub const MAX_CHARS: usize = 200;

    /// Parses a reason.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ValidationError> {
        let raw = raw.into();
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "reason",
                format!("must be 1–{} characters long", Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw))
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stock-take: the stock becomes `stock`, whatever it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// The counted units.
    pub stock: Stock,
    /// Why.
    pub reason: AdjustReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_1_to_200_characters() {
        assert!(AdjustReason::parse("").is_err());
        assert!(AdjustReason::parse("x").is_ok());
        assert!(AdjustReason::parse("é".repeat(200)).is_ok());
        assert!(AdjustReason::parse("é".repeat(201)).is_err());
    }
}
