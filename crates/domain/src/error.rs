//! Domain errors. Each carries the business facts a caller needs to answer well.

use std::{error::Error as StdError, time::Duration};

use crate::{IdempotencyKey, ProductId, ShortLine, ValidationErrors};

/// The storage backend failed; the operation's effect is unknown or absent.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or answered with an error.
    #[error("storage unavailable: {context}")]
    Unavailable {
        /// What was being done, e.g. `"reading product 42"`.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {context}")]
    Corrupt {
        /// What was read and what was wrong with it.
        context: String,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] with context.
    pub fn unavailable(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A [`StoreError::Corrupt`] with context.
    pub fn corrupt(context: impl Into<String>) -> Self {
        Self::Corrupt {
            context: context.into(),
        }
    }
}

/// Registration failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Another account has this username.
    #[error("username is already taken")]
    UsernameTaken,
    /// The backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A product operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// No product has this id.
    #[error("product {0} not found")]
    NotFound(ProductId),
    /// Another product has this name.
    #[error("a product with this name already exists")]
    NameTaken,
    /// The restock would take the stock past its upper bound.
    #[error("stock would exceed {limit} units (now {current}, adding {adding})")]
    StockLimitExceeded {
        /// Units on hand.
        current: u64,
        /// Units asked to add.
        adding: u64,
        /// Most units a product may hold.
        limit: u64,
    },
    /// The product's lock could not be had in time (restocks run under it).
    #[error("the product is busy; retry in {retry_after:?}")]
    LockTimeout {
        /// When a retry is sensible.
        retry_after: Duration,
    },
    /// The idempotency key was already used by this admin for a different restock.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// A reply from storage was lost and could not be settled: the restock may or may
    /// not have happened. Retrying with `operation_id` as the idempotency key replays
    /// the real outcome (or restocks if it never happened) — never twice.
    #[error("the outcome of the restock is unknown; retry with Idempotency-Key {operation_id}")]
    OutcomeUnknown {
        /// The request's idempotency key (the client's, or one the server made).
        operation_id: IdempotencyKey,
    },
    /// The backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A purchase failed.
#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    /// No product has this id.
    #[error("product {0} not found")]
    ProductNotFound(ProductId),
    /// Fewer units are on hand than requested; nothing was bought.
    #[error("insufficient stock: requested {requested}, available {available}")]
    InsufficientStock {
        /// Units asked for.
        requested: u32,
        /// Units on hand when the order was checked.
        available: u64,
    },
    /// The product's lock could not be acquired within the wait timeout. Nothing was
    /// bought; retrying is safe.
    #[error("the product is busy; retry in {retry_after:?}")]
    LockTimeout {
        /// When a retry is sensible.
        retry_after: Duration,
    },
    /// The idempotency key was already used by this user for a different order.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// A reply from storage was lost and could not be settled: the purchase may or may
    /// not have happened. Retrying with `operation_id` as the idempotency key replays
    /// the real outcome (or makes the purchase if it never happened).
    #[error("the outcome of the purchase is unknown; retry with Idempotency-Key {operation_id}")]
    OutcomeUnknown {
        /// The request's idempotency key: the client's own, or one the server made
        /// for a request that came without.
        operation_id: IdempotencyKey,
    },
    /// The order was invalid (e.g. checked again by an adapter).
    #[error("invalid order: {0}")]
    Invalid(ValidationErrors),
    /// The backend failed before anything was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PurchaseError {
    /// Label for metrics (`purchases_total{outcome=...}`).
    pub fn outcome(&self) -> &'static str {
        match self {
            PurchaseError::ProductNotFound(_) => "product_not_found",
            PurchaseError::InsufficientStock { .. } => "insufficient_stock",
            PurchaseError::LockTimeout { .. } => "lock_timeout",
            PurchaseError::IdempotencyKeyReused => "idempotency_key_reused",
            PurchaseError::OutcomeUnknown { .. } => "outcome_unknown",
            PurchaseError::Invalid(_) => "invalid",
            PurchaseError::Store(_) => "store_error",
        }
    }
}

/// An order failed; nothing of it was bought.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// A product of the order does not exist (the smallest such id).
    #[error("product {0} not found")]
    ProductNotFound(ProductId),
    /// Some lines asked for more units than were on hand: every such line.
    #[error("insufficient stock for {} line(s)", lines.len())]
    InsufficientStock {
        /// Every short line, by product id.
        lines: Vec<ShortLine>,
    },
    /// Some product's lock could not be acquired within the wait timeout. Nothing
    /// was bought; retrying is safe.
    #[error("a product is busy; retry in {retry_after:?}")]
    LockTimeout {
        /// When a retry is sensible.
        retry_after: Duration,
    },
    /// The idempotency key was already used by this user for a different request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// The outcome could not be learned (a reply was lost, or the order was
    /// interrupted between lines): retrying with `operation_id` as the idempotency
    /// key finishes it — replays it if it was made, makes it whole otherwise.
    #[error("the outcome of the order is unknown; retry with Idempotency-Key {operation_id}")]
    OutcomeUnknown {
        /// The request's idempotency key (the client's, or one the server made).
        operation_id: IdempotencyKey,
    },
    /// The order was invalid (e.g. checked again by an adapter).
    #[error("invalid order: {0}")]
    Invalid(ValidationErrors),
    /// The backend failed before anything was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OrderError {
    /// Label for metrics (`lockstock_orders_total{outcome=...}`).
    pub fn outcome(&self) -> &'static str {
        match self {
            OrderError::ProductNotFound(_) => "product_not_found",
            OrderError::InsufficientStock { .. } => "insufficient_stock",
            OrderError::LockTimeout { .. } => "lock_timeout",
            OrderError::IdempotencyKeyReused => "idempotency_key_reused",
            OrderError::OutcomeUnknown { .. } => "outcome_unknown",
            OrderError::Invalid(_) => "invalid",
            OrderError::Store(_) => "store_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_error_keeps_its_source() {
        let io = std::io::Error::other("connection refused");
        let err = StoreError::unavailable("reading product 1", io);
        assert_eq!(err.to_string(), "storage unavailable: reading product 1");
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("connection refused")
        );
    }

    #[test]
    fn insufficient_stock_message_names_the_numbers() {
        let err = PurchaseError::InsufficientStock {
            requested: 5,
            available: 2,
        };
        assert_eq!(
            err.to_string(),
            "insufficient stock: requested 5, available 2"
        );
        assert_eq!(err.outcome(), "insufficient_stock");
    }
}
