//! `/api/products/*`: the catalogue and its stock.

use actix_web::{HttpResponse, http::header, web};
use inventory_domain::{
    Description, NewProduct, Price, Product, ProductId, ProductName, RestockQuantity, Stock,
    StockLevel, ValidationErrors,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    auth::{AdminUser, AuthUser},
    error::{ApiError, ProblemResponse, RetryLaterResponse},
    extract::{Json, integer},
    routes::PageQuery,
    state::AppState,
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

/// Stock accounting: `stock + sold = initial_stock + restocked`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockResponse {
    /// The product.
    pub product_id: u64,
    /// Units on hand.
    pub stock: u64,
    /// Units sold.
    pub sold: u64,
    /// Units at creation.
    pub initial_stock: u64,
    /// Units added by restocks.
    pub restocked: u64,
}

impl From<StockLevel> for StockResponse {
    fn from(l: StockLevel) -> Self {
        Self {
            product_id: l.product_id.get(),
            stock: l.stock,
            sold: l.sold,
            initial_stock: l.initial_stock,
            restocked: l.restocked,
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
    _admin: AdminUser,
    state: web::Data<AppState>,
    body: Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().parse()?;
    let product = state.repos.products.create(new).await?;
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
/// Errors: 400 malformed JSON or not UTF-8; 401 no or invalid token; 403 not an admin;
/// 404 no such product; 409 the stock would exceed 1,000,000,000 units (nothing added);
/// 413 body over 64 KiB; 415 not `application/json`; 422 invalid quantity or unknown
/// fields; 503 the product's lock was not acquired in time (nothing added), or storage
/// unavailable.
#[utoipa::path(
    post, path = "/api/products/{id}/restock", operation_id = "restock", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id")),
    request_body = RestockRequest,
    responses(
        (status = 200, description = "The new stock", body = StockResponse),
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
    _admin: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<u64>,
    body: Json<RestockRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(id.into_inner());
    let quantity = RestockQuantity::parse(body.quantity)?;
    let level = state.repos.products.restock(id, quantity).await?;
    tracing::info!(product.id = %id, restock.quantity = quantity.get(), "product restocked");
    Ok(HttpResponse::Ok().json(StockResponse::from(level)))
}
