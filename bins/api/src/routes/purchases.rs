//! `/api/purchases/*`: buying and the caller's purchases.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderName},
    web,
};
use inventory_domain::{
    IdempotencyKey, ProductId, Purchase, PurchaseId, PurchaseOrder, PurchaseReceipt, Quantity,
    RequestId, ValidationError, ValidationErrors,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    auth::AuthUser,
    error::{ApiError, ProblemResponse, RetryLaterResponse},
    extract::{Json, integer},
    routes::PageQuery,
    state::AppState,
    telemetry::CurrentRequest,
};

/// The optional idempotency header (IETF draft `Idempotency-Key`).
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a response that replays the stored answer of an earlier request.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A purchase order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequest {
    /// What to buy.
    #[schema(example = 1, minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    #[serde(deserialize_with = "integer::json_u64")]
    pub product_id: u64,
    /// How many units: 1..=`MAX_PURCHASE_QUANTITY` (the served document states the
    /// configured maximum).
    #[schema(example = 1, minimum = 1)]
    #[serde(deserialize_with = "integer::json")]
    pub quantity: i64,
}

/// A purchase just made (or replayed).
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseReceiptResponse {
    /// Purchase id.
    pub id: u64,
    /// The buyer.
    pub user_id: u64,
    /// The product.
    pub product_id: u64,
    /// Units bought.
    pub quantity: u32,
    /// Unit price in minor units.
    pub unit_price: u64,
    /// Total in minor units.
    pub total_price: u64,
    /// Units left right after this purchase.
    pub remaining_stock: u64,
    /// When it was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub purchased_at: OffsetDateTime,
}

impl From<PurchaseReceipt> for PurchaseReceiptResponse {
    fn from(r: PurchaseReceipt) -> Self {
        let p = r.purchase;
        Self {
            id: p.id.get(),
            user_id: p.user_id.get(),
            product_id: p.product_id.get(),
            quantity: p.quantity,
            unit_price: p.unit_price.minor_units(),
            total_price: p.total_price.minor_units(),
            remaining_stock: r.remaining_stock,
            purchased_at: p.purchased_at,
        }
    }
}

/// A recorded purchase.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseResponse {
    /// Purchase id.
    pub id: u64,
    /// The buyer.
    pub user_id: u64,
    /// The product.
    pub product_id: u64,
    /// Units bought.
    pub quantity: u32,
    /// Unit price in minor units.
    pub unit_price: u64,
    /// Total in minor units.
    pub total_price: u64,
    /// When it was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub purchased_at: OffsetDateTime,
}

impl From<Purchase> for PurchaseResponse {
    fn from(p: Purchase) -> Self {
        Self {
            id: p.id.get(),
            user_id: p.user_id.get(),
            product_id: p.product_id.get(),
            quantity: p.quantity,
            unit_price: p.unit_price.minor_units(),
            total_price: p.total_price.minor_units(),
            purchased_at: p.purchased_at,
        }
    }
}

/// The optional `Idempotency-Key` header: `Some(None)` when absent, `None` (with
/// the error recorded) when invalid or sent twice. Shared by every keyed route.
pub(crate) fn idempotency_key(
    req: &HttpRequest,
    errors: &mut ValidationErrors,
) -> Option<Option<IdempotencyKey>> {
    let mut keys = req.headers().get_all(IDEMPOTENCY_KEY);
    match (keys.next(), keys.next()) {
        (None, _) => Some(None),
        (Some(_), Some(_)) => {
            errors.push(ValidationError::new(
                "Idempotency-Key",
                "must be sent at most once",
            ));
            None
        }
        (Some(value), None) => errors
            .check(
                value
                    .to_str()
                    .map_err(|_| {
                        ValidationError::new(
                            "Idempotency-Key",
                            "must contain only printable ASCII characters",
                        )
                    })
                    .and_then(IdempotencyKey::parse),
            )
            .map(Some),
    }
}

fn parse_order(
    req: &HttpRequest,
    caller: AuthUser,
    body: PurchaseRequest,
    max_quantity: u32,
    request_id: RequestId,
) -> Result<PurchaseOrder, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let quantity = errors.check(Quantity::parse(body.quantity, max_quantity));
    let idempotency_key = idempotency_key(req, &mut errors);
    match (quantity, idempotency_key) {
        (Some(quantity), Some(idempotency_key)) => Ok(PurchaseOrder {
            user_id: caller.id,
            product_id: ProductId(body.product_id),
            quantity,
            idempotency_key,
            request_id,
        }),
        _ => Err(errors),
    }
}

/// Buy units of a product.
///
/// With an `Idempotency-Key` header, a retry with the same key and body returns the first
/// answer (with `Idempotent-Replayed: true`) and never buys twice, also when both are sent
/// at once (the later one is committed after the first and replays it); the same key with a
/// different body is a 422. Purchases of one product are committed in the order the server
/// received them.
///
/// Errors: 400 malformed JSON or not UTF-8; 401 no or invalid token; 404 no such
/// product; 409 insufficient stock (`available` says how many units were left at the
/// order's turn); 413 body over 64 KiB; 415 not `application/json`; 422 invalid quantity
/// or key, unknown fields, or the key reused with a different body; 503 the product's lock
/// was not acquired in time (`lock-timeout`, nothing bought), storage unavailable, or the
/// outcome is unknown (`outcome-unknown`, after a lost reply from storage): the problem
/// then names an `operation_id`, and retrying with `Idempotency-Key: <operation_id>`
/// replays the real outcome — also for a request that was sent without a key.
#[utoipa::path(
    post, path = "/api/purchases", operation_id = "purchase", tag = "purchases",
    security(("bearer" = []), ("oauth2" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII characters (no space at either end); makes retries safe")),
    request_body = PurchaseRequest,
    responses(
        (status = 201, description = "Purchased", body = PurchaseReceiptResponse,
            headers(
                ("Location" = String, description = "URL of the purchase"),
                ("Idempotent-Replayed" = bool, description = "Present (true) when this replays an earlier answer"),
            )),
        (status = 400, response = ProblemResponse),
        (status = 401, response = ProblemResponse),
        (status = 404, response = ProblemResponse),
        (status = 409, response = ProblemResponse),
        (status = 413, response = ProblemResponse),
        (status = 415, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn create(
    caller: AuthUser,
    req: HttpRequest,
    request: CurrentRequest,
    state: web::Data<AppState>,
    body: Json<PurchaseRequest>,
) -> Result<HttpResponse, ApiError> {
    let order = parse_order(
        &req,
        caller,
        body.into_inner(),
        state.max_purchase_quantity,
        request.0,
    )?;
    let product_id = order.product_id;
    let result = state.repos.purchases.purchase(order).await;
    let outcome = match &result {
        Ok(receipt) if receipt.replayed => "replayed",
        Ok(_) => "purchased",
        Err(e) => e.outcome(),
    };
    metrics::counter!("lockstock_purchases_total", "outcome" => outcome).increment(1);
    let receipt = result?;
    if !receipt.replayed {
        tracing::info!(purchase.id = %receipt.purchase.id, product.id = %product_id, "purchase made");
    }
    let mut response = HttpResponse::Created();
    response.insert_header((
        header::LOCATION,
        format!("/api/purchases/{}", receipt.purchase.id),
    ));
    if receipt.replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    Ok(response.json(PurchaseReceiptResponse::from(receipt)))
}

/// The caller's purchases, newest first.
///
/// Errors: 401 no or invalid token; 422 `limit` or `offset` out of range; 503 storage
/// unavailable.
#[utoipa::path(
    get, path = "/api/purchases/me", operation_id = "my_purchases", tag = "purchases",
    security(("bearer" = []), ("oauth2" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's purchases", body = Vec<PurchaseResponse>),
        (status = 401, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn mine(
    caller: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let purchases = state
        .repos
        .purchases
        .list_for_user(caller.id, query.page()?)
        .await?;
    let body: Vec<PurchaseResponse> = purchases.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// One purchase: the caller's own (any, for admins). Others' purchases are 404.
///
/// Errors: 401 no or invalid token; 404 no such purchase, or not the caller's; 503
/// storage unavailable.
#[utoipa::path(
    get, path = "/api/purchases/{id}", operation_id = "get_purchase", tag = "purchases",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Purchase id")),
    responses(
        (status = 200, description = "The purchase", body = PurchaseResponse),
        (status = 401, response = ProblemResponse),
        (status = 404, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn get(
    caller: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = PurchaseId(id.into_inner());
    let not_found = || ApiError::NotFound(format!("purchase {id} not found"));
    let purchase = state.repos.purchases.get(id).await?.ok_or_else(not_found)?;
    if purchase.user_id != caller.id && !caller.is_admin() {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(PurchaseResponse::from(purchase)))
}
