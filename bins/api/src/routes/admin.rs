//! `/api/admin/*`: operator tools.

use actix_web::{HttpResponse, web};
use inventory_domain::{Check, Difference, ReconcileReport};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::AdminUser,
    error::{ApiError, ProblemResponse, RetryLaterResponse},
    state::AppState,
    telemetry::CurrentRequest,
};

/// What reconciliation found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileResponse {
    /// No difference.
    pub ok: bool,
    /// Products looked at.
    pub products_checked: u64,
    /// Every disagreement, by product.
    pub differences: Vec<DifferenceResponse>,
    /// Orders interrupted between their lines that were made whole on the way
    /// (committed when every line had been applied, rolled back otherwise).
    pub orders_recovered: u64,
}

/// One disagreement.
#[derive(Debug, Serialize, ToSchema)]
pub struct DifferenceResponse {
    /// The product.
    pub product_id: u64,
    /// Which check.
    pub what: CheckDto,
    /// What the check computed from the other figures.
    pub expected: i64,
    /// What is stored.
    pub found: i64,
}

/// A check of reconciliation: `stock` (initial_stock + restocked + adjusted − sold
/// against the stock), `sold` (purchase records and order lines against sold),
/// `audit-replay` (the audit trail's changes against the stock), `audit-chain` (an entry
/// whose stock_after does not follow from the ones before; expected is the replayed
/// stock there), `orphan-order-lines` (order lines without a recorded order).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckDto {
    /// Stock accounting.
    Stock,
    /// Sales records against `sold`.
    Sold,
    /// The audit trail against the stock.
    AuditReplay,
    /// The audit trail's own chain.
    AuditChain,
    /// Order lines without an order.
    OrphanOrderLines,
}

impl From<Check> for CheckDto {
    fn from(check: Check) -> Self {
        match check {
            Check::Stock => Self::Stock,
            Check::Sold => Self::Sold,
            Check::AuditReplay => Self::AuditReplay,
            Check::AuditChain => Self::AuditChain,
            Check::OrphanOrderLines => Self::OrphanOrderLines,
        }
    }
}

impl From<Difference> for DifferenceResponse {
    fn from(difference: Difference) -> Self {
        Self {
            product_id: difference.product_id.get(),
            what: difference.what.into(),
            expected: difference.expected,
            found: difference.found,
        }
    }
}

impl From<ReconcileReport> for ReconcileResponse {
    fn from(report: ReconcileReport) -> Self {
        Self {
            ok: report.is_clean(),
            products_checked: report.products_checked,
            differences: report.differences.into_iter().map(Into::into).collect(),
            orders_recovered: report.orders_recovered,
        }
    }
}

/// Check that stock, sales and audit trails agree (admin).
///
/// Per product: `initial_stock + restocked + adjusted − sold = stock`, the purchase
/// records and order lines add up to `sold`, and the audit trail replays to the stock.
/// Orders interrupted between their lines are finished first. Each product is read
/// under its lock, so its sales pause for that read. The result also sets the
/// `lockstock_reconcile_differences` gauge. `inventory-api reconcile` runs the same.
///
/// Errors: 401 no or invalid token; 403 not an admin; 503 storage unavailable.
#[utoipa::path(
    get, path = "/api/admin/reconcile", operation_id = "reconcile", tag = "admin",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The report (`ok` is false when anything differs)", body = ReconcileResponse),
        (status = 401, response = ProblemResponse),
        (status = 403, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn reconcile(
    _admin: AdminUser,
    request: CurrentRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = state.repos.reconciler.reconcile(&request.0).await?;
    if !report.is_clean() {
        for difference in &report.differences {
            tracing::warn!(%difference, "reconcile found a difference");
        }
    }
    Ok(HttpResponse::Ok().json(ReconcileResponse::from(report)))
}
