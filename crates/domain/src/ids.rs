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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let id: ProductId = "42".parse().unwrap();
        assert_eq!(id, ProductId(42));
        assert_eq!(id.to_string(), "42");
        assert!("-1".parse::<UserId>().is_err());
        assert!("x".parse::<PurchaseId>().is_err());
    }
}
