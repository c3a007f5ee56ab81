//! Purchases, the orders that create them and their receipts.

use std::fmt;

use time::OffsetDateTime;

use crate::{IdempotencyKey, Money, Price, ProductId, PurchaseId, Quantity, RequestId, UserId};

/// A recorded purchase. Immutable once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// Its id.
    pub id: PurchaseId,
    /// The buyer.
    pub user_id: UserId,
    /// What was bought.
    pub product_id: ProductId,
    /// Units bought (≥ 1).
    pub quantity: u32,
    /// Unit price at the time of purchase.
    pub unit_price: Price,
    /// `unit_price × quantity`.
    pub total_price: Money,
    /// When the stock was decremented.
    pub purchased_at: OffsetDateTime,
}

/// A buyer's request to purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOrder {
    /// The buyer (from the authenticated token, never from the body).
    pub user_id: UserId,
    /// What to buy.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
    /// Makes retries safe: the same key with the same order replays the first receipt.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The request that placed it (audit trail).
    pub request_id: RequestId,
}

impl PurchaseOrder {
    /// The part of the order an idempotency key is bound to: the same key with a
    /// different fingerprint is a reuse error.
    pub fn fingerprint(&self) -> OrderFingerprint {
        OrderFingerprint::of(self.product_id, self.quantity.get())
    }
}

/// A canonical text form of an order's body (`product_id` and `quantity`), stored with
/// the idempotency record so that adapters agree on what "the same request" means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderFingerprint(String);

impl OrderFingerprint {
    /// The fingerprint of an order for `quantity` units of `product_id`.
    pub fn of(product_id: ProductId, quantity: u32) -> Self {
        Self(format!("p={product_id};q={quantity}"))
    }

    /// The fingerprint of a multi-product order (its merged lines, by product):
    /// `order:<product>x<quantity>,…`. Never equal to a purchase's fingerprint.
    pub fn of_lines(lines: &[(ProductId, u32)]) -> Self {
        let lines: Vec<String> = lines
            .iter()
            .map(|(product, quantity)| format!("{product}x{quantity}"))
            .collect();
        Self(format!("order:{}", lines.join(",")))
    }

    /// The fingerprint of a restock of `units` (the product is in the record's
    /// key): `restock:<units>`.
    pub fn of_restock(units: u64) -> Self {
        Self(format!("restock:{units}"))
    }

    /// Rebuilds a fingerprint read back from storage.
    pub fn from_stored(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer to a successful purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseReceipt {
    /// The purchase recorded.
    pub purchase: Purchase,
    /// Units left right after this purchase.
    pub remaining_stock: u64,
    /// True when this is the stored answer of an earlier request with the same
    /// idempotency key (no new purchase was made).
    pub replayed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_product_and_quantity_only() {
        let order = |product, quantity, key: Option<&str>| PurchaseOrder {
            user_id: UserId(1),
            product_id: ProductId(product),
            quantity: Quantity::parse(quantity, 100).unwrap(),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
            request_id: RequestId::parse("test").unwrap(),
        };
        assert_eq!(
            order(1, 2, Some("a")).fingerprint(),
            order(1, 2, None).fingerprint()
        );
        assert_ne!(
            order(1, 2, None).fingerprint(),
            order(1, 3, None).fingerprint()
        );
        assert_ne!(
            order(1, 2, None).fingerprint(),
            order(2, 2, None).fingerprint()
        );
        assert_eq!(order(12, 3, None).fingerprint().as_str(), "p=12;q=3");
        // No ambiguity between "p=1;q=23" and "p=12;q=3".
        assert_ne!(
            order(1, 23, None).fingerprint(),
            order(12, 3, None).fingerprint()
        );
    }
}
