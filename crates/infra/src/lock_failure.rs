//! What a failed lock step means for the caller, in one place for every
//! adapter and every locked operation.
//!
//! One rule: the lock could not be had in time, or the lease was gone before
//! the guarded write ran — in both cases nothing was written and retrying is
//! safe, so the caller is told to retry after [`RETRY_AFTER`]. Anything else
//! (a backend that failed, invalid options) is a storage failure.

use std::time::Duration;

use inventory_domain::{OrderError, ProductError, PurchaseError, StoreError};
use inventory_lock::LockError;

/// How long a client is asked to wait before retrying a locked operation that
/// could not run. A batch under group commit takes milliseconds, so a second
/// is ample for a line to move, and short enough for a buyer to wait.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A failed lock step.
#[derive(Debug)]
pub(crate) enum LockFailure {
    /// Nothing was written; retry after the given time.
    Retryable {
        /// When a retry is sensible.
        retry_after: Duration,
    },
    /// The backend failed.
    Failed(StoreError),
}

impl LockFailure {
    /// Classifies `error`; `context` says what was being done (for the storage error).
    pub(crate) fn classify(error: &LockError, context: &str) -> Self {
        if error.is_timeout() || error.is_lease_lost() {
            Self::Retryable {
                retry_after: RETRY_AFTER,
            }
        } else {
            Self::Failed(StoreError::unavailable(
                context.to_owned(),
                error.to_string(),
            ))
        }
    }
}

impl From<LockFailure> for PurchaseError {
    fn from(failure: LockFailure) -> Self {
        match failure {
            LockFailure::Retryable { retry_after } => PurchaseError::LockTimeout { retry_after },
            LockFailure::Failed(error) => PurchaseError::Store(error),
        }
    }
}

impl From<LockFailure> for ProductError {
    fn from(failure: LockFailure) -> Self {
        match failure {
            LockFailure::Retryable { retry_after } => ProductError::LockTimeout { retry_after },
            LockFailure::Failed(error) => ProductError::Store(error),
        }
    }
}

impl From<LockFailure> for OrderError {
    fn from(failure: LockFailure) -> Self {
        match failure {
            LockFailure::Retryable { retry_after } => OrderError::LockTimeout { retry_after },
            LockFailure::Failed(error) => OrderError::Store(error),
        }
    }
}
