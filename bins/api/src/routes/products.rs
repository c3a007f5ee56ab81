//! `/api/products/*`: the catalogue and its stock.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use inventory_domain::{
    Actor, AdjustReason, Adjustment, AuditEntry, AuditKind, AuditPage, AuditQuery, Description,
    NewProduct, Price, Product, ProductId, ProductName, RestockOrder, RestockQuantity, Stock,
    StockLevel, ValidationErrors,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    auth::{AdminUser, AuthUser},
    error::{ApiError, ProblemResponse, RetryLaterResponse},
    extract::{Json, integer},
    routes::{
        PageQuery,
        purchases::{IDEMPOTENT_REPLAYED, idempotency_key},
    },
    state::AppState,
    telemetry::CurrentRequest,
};

/// New product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// Unique name: at most 200 characters, not blank, no control characters once the
    /// surrounding whitespace (which is removed) is trimmed.
    #[schema(example = "Limited sneaker", min_length = 1, max_length = 200)]
    pub name: String,
    /// Unit price in minor units (cents), > 0.
    #[schema(example = 12999, minimum = 1, maximum = 100_000_000_000_i64)]
    #[serde(deserialize_with = "integer::json")]
    pub price: i64,
    /// Initial stock, ≥ 0.
    #[schema(example = 100, minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer::json")]
    pub stock: i64,
    /// Optional description, at most 2,000 characters.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
}

impl CreateProductRequest {
    fn parse(self) -> Result<NewProduct, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = errors.check(ProductName::parse(&self.name));
        let price = errors.check(Price::parse(self.price));
        let stock = errors.check(Stock::parse(self.stock));
        let description = match self.description {
            Some(d) => errors.check(Description::parse(d)).map(Some),
            None => Some(None),
        };
        match (name, price, stock, description) {
            (Some(name), Some(price), Some(stock), Some(description)) => Ok(NewProduct {
                name,
                description,
                price,
                stock,
            }),
            _ => Err(errors),
        }
    }
}

/// Units to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    /// Units to add, ≥ 1. The stock may not exceed 1,000,000,000 units (409 otherwise).
    #[schema(example = 50, minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer::json")]
    pub quantity: i64,
}

/// A product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductResponse {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Unit price in minor units.
    pub price: u64,
    /// Units on hand.
    pub stock: u64,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Product> for ProductResponse {
    fn from(p: Product) -> Self {
        Self {
            id: p.id.get(),
            name: p.name.as_str().to_owned(),
            description: p.description.map(Description::into_inner),
            price: p.price.minor_units(),
            stock: p.stock,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A stock-take: the counted units become the stock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// The counted units, 0–1,000,000,000.
    #[schema(example = 42, minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer::json")]
    pub stock: i64,
    /// Why (kept in the audit trail): 1–200 characters.
    #[schema(
        example = "stock-take 2026-11-30: two units damaged",
        min_length = 1,
        max_length = 200
    )]
    pub reason: String,
}

/// Stock accounting: `stock + sold = initial_stock + restocked + adjusted`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockResponse {
    /// The product.
    pub product_id: u64,
    /// Units on hand.
    pub stock: u64,
    /// Units sold (purchases and order lines).
    pub sold: u64,
    /// Units at creation.
    pub initial_stock: u64,
    /// Units added by restocks.
    pub restocked: u64,
    /// Net units added (positive) or removed (negative) by stock-take adjustments.
    pub adjusted: i64,
}

/// `?limit=&after=` of the audit trail.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "integer::query")]
    pub limit: Option<i64>,
    /// Start after this entry id (`<ms>-<n>`, the `next` of the previous page).
    #[param(example = "1764460800000-0")]
    pub after: Option<String>,
}

/// A page of a product's audit trail, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditResponse {
    /// The entries.
    pub entries: Vec<AuditEntryResponse>,
    /// Pass as `after` for the next page; `null` when this page is the last so far.
    pub next: Option<String>,
}

/// One change of a product's stock.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryResponse {
    /// Entry id (`<ms>-<n>`), increasing.
    pub id: String,
    /// What changed the stock.
    pub kind: AuditKindDto,
    /// The user on whose behalf (buyer or admin).
    pub actor: u64,
    /// The signed change of the stock (−3 for a purchase of 3). The entries of a trail
    /// sum to the current stock.
    pub quantity: i64,
    /// The stock right after the change.
    pub stock_after: u64,
    /// Fencing token of the lock hold the change was made under (`null` for `create`).
    pub fence: Option<u64>,
    /// The request that made the change (`X-Request-Id`).
    pub request_id: String,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The purchase or order id, for `purchase`, `order` and `order-rollback`.
    pub reference: Option<u64>,
    /// Why, for `adjust`.
    pub reason: Option<String>,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(entry: AuditEntry) -> Self {
        Self {
            id: entry.id.to_string(),
            kind: entry.kind.into(),
            actor: entry.actor.get(),
            quantity: entry.quantity,
            stock_after: entry.stock_after,
            fence: entry.fence,
            request_id: entry.request_id,
            at: entry.at,
            reference: entry.reference,
            reason: entry.reason,
        }
    }
}

/// What changed the stock: `create` (initial stock), `purchase`, `order` (one line of
/// an order), `order-rollback` (a line of an interrupted order given back by recovery),
/// `restock` or `adjust` (a stock-take).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuditKindDto {
    /// The product was created with its initial stock.
    Create,
    /// A single-product purchase.
    Purchase,
    /// One line of an order.
    Order,
    /// A line of an interrupted order, given back.
    OrderRollback,
    /// Units added by an admin.
    Restock,
    /// The stock set by a stock-take.
    Adjust,
}

impl From<AuditKind> for AuditKindDto {
    fn from(kind: AuditKind) -> Self {
        match kind {
            AuditKind::Create => Self::Create,
            AuditKind::Purchase => Self::Purchase,
            AuditKind::Order => Self::Order,
            AuditKind::OrderRollback => Self::OrderRollback,
            AuditKind::Restock => Self::Restock,
            AuditKind::Adjust => Self::Adjust,
        }
    }
}

impl From<AuditPage> for AuditResponse {
    fn from(page: AuditPage) -> Self {
        Self {
            entries: page.entries.into_iter().map(Into::into).collect(),
            next: page.next.map(|cursor| cursor.to_string()),
        }
    }
}

impl From<StockLevel> for StockResponse {
    fn from(l: StockLevel) -> Self {
        Self {
            product_id: l.product_id.get(),
            stock: l.stock,
            sold: l.sold,
            initial_stock: l.initial_stock,
            restocked: l.restocked,
            adjusted: l.adjusted,
        }
    }
}

/// Create a product (admin).
///
/// Errors: 400 malformed JSON or not UTF-8; 401 no or invalid token; 403 not an admin;
/// 409 a product has this name; 413 body over 64 KiB; 415 not `application/json`; 422
/// invalid or unknown fields; 503 storage unavailable.
#[utoipa::path(
    post, path = "/api/products", operation_id = "create_product", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = CreateProductRequest,
    responses(
        (status = 201, description = "Created", body = ProductResponse,
            headers(("Location" = String, description = "URL of the product"))),
        (status = 400, response = ProblemResponse),
        (status = 401, response = ProblemResponse),
        (status = 403, response = ProblemResponse),
        (status = 409, response = ProblemResponse),
        (status = 413, response = ProblemResponse),
        (status = 415, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn create(
    admin: AdminUser,
    request: CurrentRequest,
    state: web::Data<AppState>,
    body: Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().parse()?;
    let by = Actor::new(admin.0.id, request.0);
    let product = state.repos.products.create(new, &by).await?;
    tracing::info!(product.id = %product.id, "product created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/products/{}", product.id)))
        .json(ProductResponse::from(product)))
}

/// List products by id.
///
/// Errors: 401 no or invalid token; 422 `limit` or `offset` out of range; 503 storage
/// unavailable.
#[utoipa::path(
    get, path = "/api/products", operation_id = "list_products", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of products", body = Vec<ProductResponse>),
        (status = 401, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn list(
    _caller: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let products = state.repos.products.list(query.page()?).await?;
    let body: Vec<ProductResponse> = products.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// One product.
///
/// Errors: 401 no or invalid token; 404 no such product; 503 storage unavailable.
#[utoipa::path(
    get, path = "/api/products/{id}", operation_id = "get_product", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 401, response = ProblemResponse),
        (status = 404, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn get(
    _caller: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(id.into_inner());
    let product = state
        .repos
        .products
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("product {id} not found")))?;
    Ok(HttpResponse::Ok().json(ProductResponse::from(product)))
}

/// A product's stock accounting.
///
/// Errors: 401 no or invalid token; 404 no such product; 503 storage unavailable.
#[utoipa::path(
    get, path = "/api/products/{id}/stock", operation_id = "get_stock", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The stock", body = StockResponse),
        (status = 401, response = ProblemResponse),
        (status = 404, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn stock(
    _caller: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(id.into_inner());
    let level = state
        .repos
        .products
        .stock(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("product {id} not found")))?;
    Ok(HttpResponse::Ok().json(StockResponse::from(level)))
}

/// Add stock (admin), under the product's lock.
///
/// With an `Idempotency-Key` header, the same key and quantity again answer the first
/// result (with `Idempotent-Replayed: true`) and add nothing — also after a lost reply; the
/// same key with another quantity is a 422. Keys are scoped per admin and product.
///
/// Errors: 400 malformed JSON or not UTF-8; 401 no or invalid token; 403 not an admin;
/// 404 no such product; 409 the stock would exceed 1,000,000,000 units (nothing added);
/// 413 body over 64 KiB; 415 not `application/json`; 422 invalid quantity or key, unknown
/// fields, or the key reused with another quantity; 503 the product's lock was not
/// acquired in time (nothing added), storage unavailable, or the outcome is unknown
/// (`outcome-unknown`: retry with `Idempotency-Key: <operation_id>`, which never adds
/// twice).
#[utoipa::path(
    post, path = "/api/products/{id}/restock", operation_id = "restock", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(
        ("id" = u64, Path, description = "Product id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII characters (no space at either end); makes retries safe"),
    ),
    request_body = RestockRequest,
    responses(
        (status = 200, description = "The new stock", body = StockResponse,
            headers(("Idempotent-Replayed" = bool, description = "Present (true) when this replays an earlier answer"))),
        (status = 400, response = ProblemResponse),
        (status = 401, response = ProblemResponse),
        (status = 403, response = ProblemResponse),
        (status = 404, response = ProblemResponse),
        (status = 409, response = ProblemResponse),
        (status = 413, response = ProblemResponse),
        (status = 415, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn restock(
    admin: AdminUser,
    req: HttpRequest,
    request: CurrentRequest,
    state: web::Data<AppState>,
    id: web::Path<u64>,
    body: Json<RestockRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(id.into_inner());
    let mut errors = ValidationErrors::new();
    let quantity = errors.check(RestockQuantity::parse(body.quantity));
    let key = idempotency_key(&req, &mut errors);
    let (Some(quantity), Some(idempotency_key)) = (quantity, key) else {
        return Err(errors.into());
    };
    let order = RestockOrder {
        quantity,
        idempotency_key,
    };
    let by = Actor::new(admin.0.id, request.0);
    let receipt = state.repos.products.restock(id, order, &by).await?;
    let mut response = HttpResponse::Ok();
    if receipt.replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    } else {
        tracing::info!(product.id = %id, restock.quantity = quantity.get(), "product restocked");
    }
    Ok(response.json(StockResponse::from(receipt.level)))
}

/// Set the stock after a stock-take (admin), under the product's lock.
///
/// The counted units become the stock; the difference is booked as `adjusted` (so that
/// `stock + sold = initial_stock + restocked + adjusted` still holds) and recorded in the
/// audit trail with the reason. Setting the same stock again changes nothing but adds an
/// entry, so a retry after a lost reply is harmless.
///
/// Errors: 400 malformed JSON or not UTF-8; 401 no or invalid token; 403 not an admin;
/// 404 no such product; 413 body over 64 KiB; 415 not `application/json`; 422 stock
/// outside 0–1,000,000,000, reason not 1–200 characters, or unknown fields; 503 the
/// product's lock was not acquired in time (nothing changed), or storage unavailable.
#[utoipa::path(
    post, path = "/api/products/{id}/adjust", operation_id = "adjust_stock", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id")),
    request_body = AdjustRequest,
    responses(
        (status = 200, description = "The new stock", body = StockResponse),
        (status = 400, response = ProblemResponse),
        (status = 401, response = ProblemResponse),
        (status = 403, response = ProblemResponse),
        (status = 404, response = ProblemResponse),
        (status = 413, response = ProblemResponse),
        (status = 415, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn adjust(
    admin: AdminUser,
    request: CurrentRequest,
    state: web::Data<AppState>,
    id: web::Path<u64>,
    body: Json<AdjustRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(id.into_inner());
    let body = body.into_inner();
    let mut errors = ValidationErrors::new();
    let stock = errors.check(Stock::parse(body.stock));
    let reason = errors.check(AdjustReason::parse(body.reason));
    let (Some(stock), Some(reason)) = (stock, reason) else {
        return Err(errors.into());
    };
    let by = Actor::new(admin.0.id, request.0);
    let level = state
        .repos
        .products
        .adjust(id, Adjustment { stock, reason }, &by)
        .await?;
    tracing::info!(product.id = %id, stock = level.stock, "stock adjusted");
    Ok(HttpResponse::Ok().json(StockResponse::from(level)))
}

/// A product's audit trail (admin): every change of its stock, oldest first.
///
/// Each entry is written in the same atomic step as the change it records. Page with
/// `after=<next>` until `next` is `null`.
///
/// Errors: 401 no or invalid token; 403 not an admin; 404 no such product; 422 `limit`
/// or `after` invalid; 503 storage unavailable.
#[utoipa::path(
    get, path = "/api/products/{id}/audit", operation_id = "product_audit", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id"), AuditParams),
    responses(
        (status = 200, description = "A page of the trail", body = AuditResponse),
        (status = 401, response = ProblemResponse),
        (status = 403, response = ProblemResponse),
        (status = 404, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn audit(
    _admin: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<u64>,
    query: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(id.into_inner());
    let query = AuditQuery::parse(query.limit, query.after.as_deref())?;
    let page = state
        .repos
        .products
        .audit(id, query)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("product {id} not found")))?;
    Ok(HttpResponse::Ok().json(AuditResponse::from(page)))
}
