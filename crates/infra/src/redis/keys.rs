//! Every Redis key lockstock uses, in one place (layout: docs/ARCHITECTURE.md).
//!
//! A product's keys share the hash tag `{product:<id>}` so that its data, lock,
//! fencing counter, purchase records, purchase log and idempotency records are
//! touched by one script (and, on a cluster, live in one slot). A user's
//! purchase index and idempotency-key claims share the tag `{user:<id>}`; they
//! are written in a separate step, never in the same script as a product's keys.

use inventory_domain::{IdempotencyKey, ProductId, UserId, Username};
use inventory_lock::LockKey;

/// Counter of user ids.
pub(crate) const USER_IDS: &str = "lockstock:users:next-id";
/// Counter of product ids.
pub(crate) const PRODUCT_IDS: &str = "lockstock:products:next-id";
/// Sorted set of product ids (score = id), for listing in id order.
pub(crate) const PRODUCTS: &str = "lockstock:products";

/// Hash of one user's fields.
pub(crate) fn user(id: UserId) -> String {
    format!("lockstock:user:{id}")
}

/// Username → user id; `SET NX` on it is what makes usernames unique.
pub(crate) fn username(name: &Username) -> String {
    format!("lockstock:username:{}", name.as_str())
}

/// Product name → product id; `SET NX` on it makes names unique.
pub(crate) fn product_name(name: &str) -> String {
    format!("lockstock:product-name:{name}")
}

/// The hash tag of everything belonging to one user's purchases.
fn user_tag(user: UserId) -> String {
    format!("{{user:{user}}}")
}

/// Sorted set of a user's purchases, as [`purchase_ref`]s scored by the time
/// they were submitted (unix ms), so newest = highest. Written alongside the
/// purchase script; an entry whose purchase was refused is removed afterwards,
/// and readers skip an entry without a record.
pub(crate) fn user_purchases(user: UserId) -> String {
    format!("{}:purchases", user_tag(user))
}

/// A purchase as the buyer's index names it: `<product id>:<operation id>`
/// (the operation id is the order's idempotency key, or one the server made).
/// Known before the purchase script runs, so the index entry can be written
/// in the same round trip.
pub(crate) fn purchase_ref(product: ProductId, operation: &IdempotencyKey) -> String {
    format!("{product}:{}", operation.as_str())
}

/// Splits a [`purchase_ref`] back into its product and operation id.
pub(crate) fn parse_purchase_ref(reference: &str) -> Option<(ProductId, &str)> {
    let (product, operation) = reference.split_once(':')?;
    Some((ProductId(product.parse().ok()?), operation))
}

/// The field of a purchase in its product's [`purchase_records`]:
/// `<user id>:<operation id>` (operation ids are per user).
pub(crate) fn purchase_record_field(user: UserId, operation: &str) -> String {
    format!("{user}:{operation}")
}

/// A user's claim on an idempotency key: the fingerprint of the order that
/// first used it, whatever the product. Makes "same key, different product"
/// a reuse error although each product keeps its own records.
pub(crate) fn idempotency_claim(user: UserId, key: &IdempotencyKey) -> String {
    format!("{}:idem:{}", user_tag(user), key.as_str())
}

/// The hash tag of everything belonging to one product.
fn product_tag(id: ProductId) -> String {
    format!("{{product:{id}}}")
}

/// Hash of a product's fields and stock counters.
pub(crate) fn product(id: ProductId) -> String {
    format!("{}:data", product_tag(id))
}

/// List of a product's purchase ids, in the order they were made.
pub(crate) fn product_purchases(id: ProductId) -> String {
    format!("{}:purchases", product_tag(id))
}

/// Hash of a product's purchase records: [`purchase_record_field`] → the
/// record as JSON.
pub(crate) fn purchase_records(id: ProductId) -> String {
    format!("{}:purchase-records", product_tag(id))
}

/// Hash of a product's purchase numbers: number → its [`purchase_record_field`],
/// to find a purchase from its id.
pub(crate) fn purchase_numbers(id: ProductId) -> String {
    format!("{}:purchase-numbers", product_tag(id))
}

/// The idempotency record of (user, key) for purchases of one product:
/// fingerprint, the purchase record and the stock left right after it.
pub(crate) fn purchase_idempotency(
    product: ProductId,
    user: UserId,
    key: &IdempotencyKey,
) -> String {
    format!("{}:idem:{user}:{}", product_tag(product), key.as_str())
}

/// The product's lock (its fencing counter is derived by `inventory-lock`).
pub(crate) fn product_lock(id: ProductId) -> LockKey {
    // Always valid: short, ASCII, no control characters.
    LockKey::new(format!("{}:lock", product_tag(id))).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_keys_share_one_hash_tag() {
        let id = ProductId(42);
        assert_eq!(product(id), "{product:42}:data");
        assert_eq!(product_purchases(id), "{product:42}:purchases");
        assert_eq!(product_lock(id).as_str(), "{product:42}:lock");
        assert_eq!(product_lock(id).fence_key(), "{product:42}:lock:fence");
        assert_eq!(purchase_records(id), "{product:42}:purchase-records");
        let key = IdempotencyKey::parse("a}{b").unwrap();
        assert_eq!(
            purchase_idempotency(id, UserId(7), &key),
            "{product:42}:idem:7:a}{b",
            "the first {{…}} is the hash tag, whatever the key contains"
        );
    }

    #[test]
    fn purchase_refs_round_trip_whatever_the_key() {
        let key = IdempotencyKey::parse("order:7:a").unwrap();
        let reference = purchase_ref(ProductId(42), &key);
        assert_eq!(reference, "42:order:7:a");
        assert_eq!(
            parse_purchase_ref(&reference),
            Some((ProductId(42), "order:7:a"))
        );
        assert_eq!(parse_purchase_ref("x:y"), None);
    }

    #[test]
    fn user_keys_share_one_hash_tag() {
        let key = IdempotencyKey::parse("k").unwrap();
        assert_eq!(user_purchases(UserId(7)), "{user:7}:purchases");
        assert_eq!(idempotency_claim(UserId(7), &key), "{user:7}:idem:k");
    }
}
