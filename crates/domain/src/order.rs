//! Orders: several products bought together, all or nothing.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::{
    IdempotencyKey, Money, OrderFingerprint, OrderId, Price, ProductId, Quantity, RequestId,
    UserId, ValidationError,
};

/// One item of an order as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderItem {
    /// What to buy.
    pub product_id: ProductId,
    /// How many units (1..=`MAX_PURCHASE_QUANTITY`).
    pub quantity: Quantity,
}

/// The lines of an order: items of the same product merged, sorted by product id.
/// 1–[`OrderLines::MAX_ITEMS`] items, hence at most that many distinct products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<(ProductId, u32)>);

impl OrderLines {
    /// Most items one order may list (before merging; so also the most products).
    pub const MAX_ITEMS: usize = 50;

    /// Merges `items` (duplicates of a product add up) into lines sorted by product.
    /// Each item's quantity is already bounded, so a line holds at most
    /// `MAX_ITEMS × MAX_PURCHASE_QUANTITY` units.
    pub fn merge(items: &[OrderItem]) -> Result<Self, ValidationError> {
        if items.is_empty() || items.len() > Self::MAX_ITEMS {
            return Err(ValidationError::new(
                "items",
                format!("must list 1–{} items", Self::MAX_ITEMS),
            ));
        }
        let mut merged: BTreeMap<ProductId, u32> = BTreeMap::new();
        for item in items {
            let line = merged.entry(item.product_id).or_insert(0);
            *line = line.checked_add(item.quantity.get()).ok_or_else(|| {
                ValidationError::new("items", "a product's total quantity is too large")
            })?;
        }
        Ok(Self(merged.into_iter().collect()))
    }

    /// The lines, by product id.
    pub fn lines(&self) -> &[(ProductId, u32)] {
        &self.0
    }

    /// The products, in ascending order (the order their locks are taken in).
    pub fn products(&self) -> impl Iterator<Item = ProductId> + '_ {
        self.0.iter().map(|(product, _)| *product)
    }

    /// Units asked of `product`, if the order names it.
    pub fn quantity_of(&self, product: ProductId) -> Option<u32> {
        self.0
            .binary_search_by_key(&product, |(p, _)| *p)
            .ok()
            .map(|index| self.0[index].1)
    }
}

/// A buyer's request to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The buyer (from the authenticated token).
    pub user_id: UserId,
    /// What to buy.
    pub lines: OrderLines,
    /// Makes retries safe, exactly as for purchases.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The request that placed it (audit trail).
    pub request_id: RequestId,
}

impl NewOrder {
    /// What an idempotency key is bound to: the merged lines. Differs from every
    /// purchase fingerprint, so one key cannot serve a purchase and an order.
    pub fn fingerprint(&self) -> OrderFingerprint {
        OrderFingerprint::of_lines(self.lines.lines())
    }
}

/// One line of a recorded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// Units bought.
    pub quantity: u32,
    /// Unit price when the line was bought.
    pub unit_price: Price,
    /// `unit_price × quantity`.
    pub total_price: Money,
}

/// A recorded order: every line was bought. Immutable once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// The buyer.
    pub user_id: UserId,
    /// The lines, by product id.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines' totals.
    pub total_price: Money,
    /// When it was committed.
    pub created_at: OffsetDateTime,
}

/// The answer to a successful order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderReceipt {
    /// The order.
    pub order: Order,
    /// True when this is the stored answer of an earlier request with the same
    /// idempotency key.
    pub replayed: bool,
}

/// A line that could not be served: nothing of the order was bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortLine {
    /// The product.
    pub product_id: ProductId,
    /// Units the order asked for.
    pub requested: u32,
    /// Units on hand when the order was checked.
    pub available: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(product: u64, quantity: i64) -> OrderItem {
        OrderItem {
            product_id: ProductId(product),
            quantity: Quantity::parse(quantity, 100).unwrap(),
        }
    }

    #[test]
    fn duplicates_merge_and_lines_are_sorted() {
        let lines = OrderLines::merge(&[item(9, 1), item(2, 3), item(9, 4)]).unwrap();
        assert_eq!(lines.lines(), [(ProductId(2), 3), (ProductId(9), 5)]);
        assert_eq!(lines.quantity_of(ProductId(9)), Some(5));
        assert_eq!(lines.quantity_of(ProductId(3)), None);
        assert_eq!(
            lines.products().collect::<Vec<_>>(),
            [ProductId(2), ProductId(9)]
        );
    }

    #[test]
    fn item_count_is_bounded() {
        assert!(OrderLines::merge(&[]).is_err());
        let fifty: Vec<_> = (1..=50).map(|p| item(p, 1)).collect();
        assert_eq!(OrderLines::merge(&fifty).unwrap().lines().len(), 50);
        let fifty_one: Vec<_> = (1..=51).map(|p| item(p % 3, 1)).collect();
        assert_eq!(
            OrderLines::merge(&fifty_one).unwrap_err().field,
            "items",
            "more than 50 items, even of 3 products"
        );
    }

    #[test]
    fn fingerprints_are_canonical_and_unlike_purchases() {
        let order = |items: &[OrderItem]| NewOrder {
            user_id: UserId(1),
            lines: OrderLines::merge(items).unwrap(),
            idempotency_key: None,
            request_id: RequestId::parse("r").unwrap(),
        };
        let a = order(&[item(2, 1), item(1, 2), item(2, 1)]).fingerprint();
        let b = order(&[item(1, 2), item(2, 2)]).fingerprint();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "order:1x2,2x2");
        assert_ne!(
            order(&[item(1, 2)]).fingerprint(),
            OrderFingerprint::of(ProductId(1), 2)
        );
    }
}
