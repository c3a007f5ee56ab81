//! Every Redis key lockstock uses, in one place (layout: docs/ARCHITECTURE.md).
//!
//! A product's keys share the hash tag `{product:<id>}` so that its data, lock,
//! fencing counter, purchase log and idempotency records can be touched by one
//! script (and, on a cluster, live in one slot).

use inventory_domain::{ProductId, PurchaseId, UserId, Username};
use inventory_lock::LockKey;

/// Counter of user ids.
pub(crate) const USER_IDS: &str = "lockstock:users:next-id";
/// Counter of product ids.
pub(crate) const PRODUCT_IDS: &str = "lockstock:products:next-id";
/// Counter of purchase ids.
pub(crate) const PURCHASE_IDS: &str = "lockstock:purchases:next-id";
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

/// Sorted set of a user's purchase ids (score = id, so newest = highest).
pub(crate) fn user_purchases(user: UserId) -> String {
    format!("lockstock:user:{user}:purchases")
}

/// Hash of one purchase record.
pub(crate) fn purchase(id: PurchaseId) -> String {
    format!("lockstock:purchase:{id}")
}

/// Idempotency record of (user, client-chosen key): fingerprint of the order,
/// purchase id, remaining stock. Kept 24 h.
pub(crate) fn idempotency(user: UserId, key: &str) -> String {
    format!("lockstock:idem:{user}:{key}")
}

/// Idempotency record of a request that came without a key: the server's own
/// operation id, used to settle a purchase whose reply was lost.
pub(crate) fn operation(id: &str) -> String {
    format!("lockstock:op:{id}")
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
    }
}
