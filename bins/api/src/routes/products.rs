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
    error::{ApiError, Problem},
    routes::PageQuery,
    state::AppState,
};

/// New product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// Unique name, 1–200 characters.
    #[schema(example = "Limited sneaker", min_length = 1, max_length = 200)]
    pub name: String,
    /// Unit price in minor units (cents), > 0.
    #[schema(example = 12999, minimum = 1, maximum = 100_000_000_000_i64)]
    pub price: i64,
    /// Initial stock, ≥ 0.
    #[schema(example = 100, minimum = 0, maximum = 1_000_000_000)]
    pub stock: i64,
    /// Optional description (≤ 2,000 characters).
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
    /// Units to add, ≥ 1.
    #[schema(example = 50, minimum = 1, maximum = 1_000_000_000)]
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
#[utoipa::path(
    post, path = "/api/products", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = CreateProductRequest,
    responses(
        (status = 201, description = "Created", body = ProductResponse,
            headers(("Location" = String, description = "URL of the product"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    _admin: AdminUser,
    state: web::Data<AppState>,
    body: web::Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().parse()?;
    let product = state.repos.products.create(new).await?;
    tracing::info!(product.id = %product.id, "product created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/products/{}", product.id)))
        .json(ProductResponse::from(product)))
}

/// List products by id.
#[utoipa::path(
    get, path = "/api/products", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of products", body = Vec<ProductResponse>),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or offset", body = Problem, content_type = "application/problem+json"),
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
#[utoipa::path(
    get, path = "/api/products/{id}", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
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
#[utoipa::path(
    get, path = "/api/products/{id}/stock", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The stock", body = StockResponse),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
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
#[utoipa::path(
    post, path = "/api/products/{id}/restock", tag = "products",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = u64, Path, description = "Product id")),
    request_body = RestockRequest,
    responses(
        (status = 200, description = "The new stock", body = StockResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid quantity", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Product lock not acquired in time", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn restock(
    _admin: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<u64>,
    body: web::Json<RestockRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(id.into_inner());
    let quantity = RestockQuantity::parse(body.quantity)?;
    let level = state.repos.products.restock(id, quantity).await?;
    tracing::info!(product.id = %id, restock.quantity = quantity.get(), "product restocked");
    Ok(HttpResponse::Ok().json(StockResponse::from(level)))
}
