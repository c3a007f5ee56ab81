//! Typed identifiers. Ids come from Redis `INCR` counters (or the in-memory equivalent),
//! so they are positive integers; the types keep a user id from being used as a product id.

use std::{fmt, num::ParseIntError, str::FromStr};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw integer.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        impl From<u64> for $name {
            fn from(raw: u64) -> Self {
                Self(raw)
            }
        }
    };
}

id_type!(
    /// Identifier of a [`crate::User`].
    UserId
);
id_type!(
    /// Identifier of a [`crate::Product`].
    ProductId
);
id_type!(
    /// Identifier of a [`crate::Purchase`].
    PurchaseId
);
id_type!(
    /// Identifier of a [`crate::Order`].
    OrderId
);

impl PurchaseId {
    /// How many purchases one product can number: the low nine decimal digits
    /// of a purchase id are the purchase's number within its product.
    pub const PER_PRODUCT: u64 = 1_000_000_000;

    /// The id of `product`'s purchase number `sequence` (1-based):
    /// `product × 10⁹ + sequence`, e.g. product 42's 17th purchase is
    /// `42000000017`. Purchases are numbered per product so that a purchase is
    /// recorded in its product's own storage (one Redis Cluster slot) and can
    /// still be found from its id alone. `None` when out of range.
    pub fn compose(product: ProductId, sequence: u64) -> Option<Self> {
        if sequence == 0 || sequence >= Self::PER_PRODUCT {
            return None;
        }
        product
            .0
            .checked_mul(Self::PER_PRODUCT)
            .and_then(|base| base.checked_add(sequence))
            .map(Self)
    }

    /// The product this purchase is of.
    pub fn product(self) -> ProductId {
        ProductId(self.0 / Self::PER_PRODUCT)
    }

    /// The purchase's number within its product (0 only for ids that
    /// [`PurchaseId::compose`] never makes).
    pub fn sequence(self) -> u64 {
        self.0 % Self::PER_PRODUCT
    }
}

impl OrderId {
    /// How many orders one user can number: the low nine decimal digits of an
    /// order id are the order's number among its buyer's orders.
    pub const PER_USER: u64 = 1_000_000_000;

    /// The id of `user`'s order number `sequence` (1-based): `user × 10⁹ +
    /// sequence`. Orders are numbered per buyer so that an order's journal and
    /// record live in its buyer's own storage (one Redis Cluster slot) and can be
    /// found from the id alone. `None` when out of range.
    pub fn compose(user: UserId, sequence: u64) -> Option<Self> {
        if sequence == 0 || sequence >= Self::PER_USER {
            return None;
        }
        user.0
            .checked_mul(Self::PER_USER)
            .and_then(|base| base.checked_add(sequence))
            .map(Self)
    }

    /// The buyer of this order.
    pub fn user(self) -> UserId {
        UserId(self.0 / Self::PER_USER)
    }

    /// The order's number among its buyer's orders (0 only for ids that
    /// [`OrderId::compose`] never makes).
    pub fn sequence(self) -> u64 {
        self.0 % Self::PER_USER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_ids_name_their_product_and_number() {
        let id = PurchaseId::compose(ProductId(42), 17).unwrap();
        assert_eq!(id, PurchaseId(42_000_000_017));
        assert_eq!((id.product(), id.sequence()), (ProductId(42), 17));
        assert_eq!(PurchaseId::compose(ProductId(1), 0), None);
        assert_eq!(
            PurchaseId::compose(ProductId(1), PurchaseId::PER_PRODUCT),
            None
        );
        assert_eq!(PurchaseId::compose(ProductId(u64::MAX), 1), None);
        let last = PurchaseId::compose(ProductId(1), PurchaseId::PER_PRODUCT - 1).unwrap();
        assert_eq!(last.product(), ProductId(1));
    }

    #[test]
    fn order_ids_name_their_buyer_and_number() {
        let id = OrderId::compose(UserId(7), 3).unwrap();
        assert_eq!(id, OrderId(7_000_000_003));
        assert_eq!((id.user(), id.sequence()), (UserId(7), 3));
        assert_eq!(OrderId::compose(UserId(7), 0), None);
        assert_eq!(OrderId::compose(UserId(u64::MAX), 1), None);
    }

    #[test]
    fn display_and_parse_round_trip() {
        let id: ProductId = "42".parse().unwrap();
        assert_eq!(id, ProductId(42));
        assert_eq!(id.to_string(), "42");
        assert!("-1".parse::<UserId>().is_err());
        assert!("x".parse::<PurchaseId>().is_err());
    }
}
