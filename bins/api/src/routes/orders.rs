//! `/api/orders/*`: several products bought together, all or nothing.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use inventory_domain::{
    NewOrder, Order, OrderId, OrderItem, OrderLines, ProductId, Quantity, ValidationErrors,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    auth::AuthUser,
    error::{ApiError, ProblemResponse, RetryLaterResponse},
    extract::{Json, integer},
    routes::{
        PageQuery,
        purchases::{IDEMPOTENT_REPLAYED, idempotency_key},
    },
    state::AppState,
    telemetry::CurrentRequest,
};

/// An order: 1–50 items; items of the same product are merged (their quantities
/// add up).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// What to buy.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderItemRequest>,
}

/// One item of an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemRequest {
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

/// A recorded order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderResponse {
    /// Order id.
    pub id: u64,
    /// The buyer.
    pub user_id: u64,
    /// The lines, by product id (items of one product merged).
    pub items: Vec<OrderLineResponse>,
    /// Total in minor units.
    pub total_price: u64,
    /// When it was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// One line of a recorded order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineResponse {
    /// The product.
    pub product_id: u64,
    /// Units bought.
    pub quantity: u32,
    /// Unit price in minor units when bought.
    pub unit_price: u64,
    /// `unit_price × quantity`, in minor units.
    pub total_price: u64,
}

impl From<Order> for OrderResponse {
    fn from(order: Order) -> Self {
        Self {
            id: order.id.get(),
            user_id: order.user_id.get(),
            items: order
                .lines
                .into_iter()
                .map(|line| OrderLineResponse {
                    product_id: line.product_id.get(),
                    quantity: line.quantity,
                    unit_price: line.unit_price.minor_units(),
                    total_price: line.total_price.minor_units(),
                })
                .collect(),
            total_price: order.total_price.minor_units(),
            created_at: order.created_at,
        }
    }
}

fn parse_order(
    req: &HttpRequest,
    caller: AuthUser,
    body: OrderRequest,
    max_quantity: u32,
    request: CurrentRequest,
) -> Result<NewOrder, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut items = Vec::with_capacity(body.items.len());
    for item in &body.items {
        match Quantity::parse(item.quantity, max_quantity) {
            Ok(quantity) => items.push(OrderItem {
                product_id: ProductId(item.product_id),
                quantity,
            }),
            // One error per failing field is enough to act on.
            Err(error) if errors.is_empty() => errors.push(error),
            Err(_) => {}
        }
    }
    let lines = if errors.is_empty() {
        errors.check(OrderLines::merge(&items))
    } else {
        None
    };
    let idempotency_key = idempotency_key(req, &mut errors);
    match (lines, idempotency_key) {
        (Some(lines), Some(idempotency_key)) => Ok(NewOrder {
            user_id: caller.id,
            lines,
            idempotency_key,
            request_id: request.0,
        }),
        _ => Err(errors),
    }
}

/// Buy several products at once: every line, or nothing.
///
/// Every product's lock is taken (in one global order, so concurrent orders naming the
/// same products in any order cannot deadlock), every line is checked, and only then is
/// any stock changed. Items of the same product are merged. The `Idempotency-Key` header
/// works exactly as for purchases (and shares their keys: one key cannot serve a
/// purchase and an order); an order whose outcome is unknown is answered 503 naming an
/// `operation_id`, and retrying with it as the key replays the order if it was made, or
/// makes it whole otherwise.
///
/// Errors: 400 malformed JSON or not UTF-8; 401 no or invalid token; 404 a product does
/// not exist; 409 insufficient stock (`lines` lists every short line with the units
/// available; nothing was bought); 413 body over 64 KiB; 415 not `application/json`; 422
/// no items or more than 50, a quantity out of range, an invalid key, unknown fields, or
/// the key reused with a different body; 503 a product's lock was not acquired in time
/// (`lock-timeout`, nothing bought), storage unavailable, or the outcome is unknown
/// (`outcome-unknown`, with `operation_id`).
#[utoipa::path(
    post, path = "/api/orders", operation_id = "place_order", tag = "orders",
    security(("bearer" = []), ("oauth2" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII characters (no space at either end); makes retries safe")),
    request_body = OrderRequest,
    responses(
        (status = 201, description = "Ordered: every line was bought", body = OrderResponse,
            headers(
                ("Location" = String, description = "URL of the order"),
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
    body: Json<OrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let order = parse_order(
        &req,
        caller,
        body.into_inner(),
        state.max_purchase_quantity,
        request,
    )?;
    let result = state.repos.orders.place(order).await;
    let outcome = match &result {
        Ok(receipt) if receipt.replayed => "replayed",
        Ok(_) => "ordered",
        Err(e) => e.outcome(),
    };
    metrics::counter!("lockstock_orders_total", "outcome" => outcome).increment(1);
    let receipt = result?;
    let mut response = HttpResponse::Created();
    response.insert_header((
        header::LOCATION,
        format!("/api/orders/{}", receipt.order.id),
    ));
    if receipt.replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    Ok(response.json(OrderResponse::from(receipt.order)))
}

/// The caller's orders, newest first.
///
/// Errors: 401 no or invalid token; 422 `limit` or `offset` out of range; 503 storage
/// unavailable.
#[utoipa::path(
    get, path = "/api/orders/me", operation_id = "my_orders", tag = "orders",
    security(("bearer" = []), ("oauth2" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's orders", body = Vec<OrderResponse>),
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
    let orders = state
        .repos
        .orders
        .list_for_user(caller.id, query.page()?)
        .await?;
    let body: Vec<OrderResponse> = orders.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// One order: the caller's own (any, for admins). Others' orders are 404.
///
/// Errors: 401 no or invalid token; 404 no such order, or not the caller's; 503
/// storage unavailable.
#[utoipa::path(
    get, path = "/api/orders/{id}", operation_id = "get_order", tag = "orders",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
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
    let id = OrderId(id.into_inner());
    let not_found = || ApiError::NotFound(format!("order {id} not found"));
    // The id names its buyer: someone else's order is not even looked up.
    if id.user() != caller.id && !caller.is_admin() {
        return Err(not_found());
    }
    let order = state.repos.orders.get(id).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(OrderResponse::from(order)))
}
