//! The one error type of the HTTP layer: every failure becomes an RFC 9457
//! `application/problem+json` body with a stable `type` URI.

use std::time::Duration;

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use inventory_domain::{
    OrderError, ProductError, PurchaseError, ShortLine, StoreError, UserError, ValidationErrors,
};
use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

use crate::routes::health::ReadinessChecks;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://lockstock.dev/problems/";

/// An RFC 9457 problem details body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://lockstock.dev/problems/insufficient-stock",
    "title": "Insufficient stock",
    "status": 409,
    "detail": "requested 5 units but only 2 are available",
    "requested": 5,
    "available": 2
}))]
pub struct Problem {
    /// Stable URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Units on hand (insufficient-stock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<u64>,
    /// Units asked for (insufficient-stock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<u32>,
    /// Seconds after which a retry makes sense (lock-timeout, rate-limited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The key a purchase whose outcome is unknown is recorded under
    /// (outcome-unknown): retry with `Idempotency-Key: <operation_id>` to learn it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// Every field that failed validation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// What the readiness check found (not-ready): the data store and the lock nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<ReadinessChecks>,
    /// Every short line of an order (insufficient-stock of an order): nothing was bought.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<ShortLineBody>,
}

/// One line of an order that asked for more units than were on hand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShortLineBody {
    /// The product.
    pub product_id: u64,
    /// Units the order asked for.
    pub requested: u32,
    /// Units on hand when the order was checked.
    pub available: u64,
}

impl From<ShortLine> for ShortLineBody {
    fn from(line: ShortLine) -> Self {
        Self {
            product_id: line.product_id.get(),
            requested: line.requested,
            available: line.available,
        }
    }
}

/// One invalid input field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field as the client named it.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The reusable OpenAPI response of every error: an RFC 9457 problem. Its `type` URI says
/// which one; the operation's description lists what each status means there.
#[derive(ToResponse)]
#[response(
    description = "An RFC 9457 problem; its `type` URI says which one",
    content_type = "application/problem+json"
)]
pub struct ProblemResponse(
    #[expect(
        dead_code,
        reason = "only its schema is used, for the OpenAPI document"
    )]
    Problem,
);

/// [`ProblemResponse`] with the `Retry-After` header of a retryable failure.
#[derive(ToResponse)]
#[response(
    description = "An RFC 9457 problem of a retryable failure; retry after `Retry-After` seconds",
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
pub struct RetryLaterResponse(
    #[expect(
        dead_code,
        reason = "only its schema is used, for the OpenAPI document"
    )]
    Problem,
);

/// Everything a handler or extractor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input values broke the rules.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// The body could not be parsed at all (malformed JSON, invalid UTF-8, bad form
    /// encoding).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body was well-formed but did not fit the schema (wrong types, unknown fields,
    /// out-of-range numbers).
    #[error("unprocessable request: {0}")]
    Unprocessable(String),
    /// The body is not of a supported media type.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The body is larger than allowed.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No or an invalid bearer token.
    #[error("authentication required")]
    Unauthenticated,
    /// Unknown user or wrong password (deliberately indistinguishable).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Authenticated, but not allowed.
    #[error("forbidden")]
    Forbidden,
    /// No such resource (or not the caller's).
    #[error("not found: {0}")]
    NotFound(String),
    /// Wrong method; `allow` lists the methods the resource answers.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: String,
    },
    /// The username is registered already.
    #[error("username taken")]
    UsernameTaken,
    /// A product has this name already.
    #[error("product name taken")]
    ProductNameTaken,
    /// A restock would take the stock past its upper bound.
    #[error("stock limit exceeded")]
    StockLimitExceeded {
        /// Most units a product may hold.
        limit: u64,
    },
    /// Not enough units.
    #[error("insufficient stock")]
    InsufficientStock {
        /// Units asked for.
        requested: u32,
        /// Units on hand.
        available: u64,
    },
    /// Not enough units for some lines of an order; nothing was bought.
    #[error("insufficient stock for an order")]
    InsufficientStockLines {
        /// Every short line.
        lines: Vec<ShortLine>,
    },
    /// The product's lock could not be had in time.
    #[error("lock timeout")]
    LockTimeout {
        /// When to retry.
        retry_after: Duration,
    },
    /// Same idempotency key, different request body.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// The outcome of a purchase, order or restock is unknown; retrying with
    /// `operation_id` as the Idempotency-Key replays the real outcome.
    #[error("outcome unknown")]
    OutcomeUnknown {
        /// The key the outcome is recorded under.
        operation_id: String,
    },
    /// Too many attempts (failed logins, registrations) from one client or for one user.
    #[error("rate limited")]
    RateLimited {
        /// When to retry.
        retry_after: Duration,
        /// What was limited, for the client.
        detail: &'static str,
    },
    /// The server is shutting down, its store does not answer, or too few lock nodes
    /// count toward a quorum.
    #[error("not ready: {detail}")]
    NotReady {
        /// What is missing.
        detail: String,
        /// What the readiness check found, when it ran.
        checks: Option<Box<ReadinessChecks>>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// One row of the error table: everything the response of an [`ApiError`] is made of.
struct Row {
    status: StatusCode,
    /// The last segment of the problem `type` URI.
    slug: &'static str,
    title: &'static str,
    detail: String,
    /// `Retry-After` (header and body), in whole seconds, at least 1.
    retry_after: Option<Duration>,
}

impl Row {
    fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

impl ApiError {
    /// The table: status, problem type, title, detail and retry hint of every error.
    #[rustfmt::skip]
    fn row(&self) -> Row {
        use StatusCode as S;
        const SECOND: Duration = Duration::from_secs(1);
        let row = Row::new;
        match self {
            Self::Validation(errors) => row(S::UNPROCESSABLE_ENTITY, "validation-error", "Validation failed",
                format!("{} invalid field(s)", errors.errors().len())),
            Self::Malformed(detail) => row(S::BAD_REQUEST, "malformed-request", "Malformed request",
                detail.clone()),
            Self::Unprocessable(detail) => row(S::UNPROCESSABLE_ENTITY, "unprocessable-request", "Unprocessable request",
                detail.clone()),
            Self::UnsupportedMediaType(detail) => row(S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type",
                detail.clone()),
            Self::PayloadTooLarge { limit } => row(S::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large",
                format!("the request body is larger than {limit} bytes")),
            Self::Unauthenticated => row(S::UNAUTHORIZED, "unauthenticated", "Authentication required",
                "a valid bearer token is required".into()),
            Self::InvalidCredentials => row(S::UNAUTHORIZED, "invalid-credentials", "Invalid credentials",
                "incorrect username or password".into()),
            Self::Forbidden => row(S::FORBIDDEN, "forbidden", "Forbidden",
                "this operation requires the admin role".into()),
            Self::NotFound(detail) => row(S::NOT_FOUND, "not-found", "Not found",
                detail.clone()),
            Self::MethodNotAllowed { allow } => row(S::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed",
                format!("this resource answers only {allow}")),
            Self::UsernameTaken => row(S::CONFLICT, "username-taken", "Username taken",
                "this username is already registered".into()),
            Self::ProductNameTaken => row(S::CONFLICT, "product-name-taken", "Product name taken",
                "a product with this name already exists".into()),
            Self::StockLimitExceeded { limit } => row(S::CONFLICT, "stock-limit-exceeded", "Stock limit exceeded",
                format!("the stock would exceed {limit} units; nothing was added")),
            Self::InsufficientStock { requested, available } => row(S::CONFLICT, "insufficient-stock", "Insufficient stock",
                format!("requested {requested} units but only {available} are available")),
            Self::InsufficientStockLines { lines } => row(S::CONFLICT, "insufficient-stock", "Insufficient stock",
                format!("{} line(s) of the order asked for more units than are available; nothing was bought", lines.len())),
            Self::LockTimeout { retry_after } => row(S::SERVICE_UNAVAILABLE, "lock-timeout", "Product busy",
                "the product is busy; nothing was bought, retry shortly".into())
                .retry_after(*retry_after),
            Self::IdempotencyKeyReused => row(S::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency key reused",
                "this Idempotency-Key was already used with a different request body".into()),
            Self::OutcomeUnknown { operation_id } => row(S::SERVICE_UNAVAILABLE, "outcome-unknown", "Outcome unknown",
                format!("the request may or may not have taken effect; retry it with the header \
                 `Idempotency-Key: {operation_id}` to learn its outcome (it will never take effect twice)"))
                .retry_after(SECOND),
            Self::RateLimited { retry_after, detail } => row(S::TOO_MANY_REQUESTS, "rate-limited", "Too many attempts",
                (*detail).into())
                .retry_after(*retry_after),
            Self::NotReady { detail, .. } => row(S::SERVICE_UNAVAILABLE, "not-ready", "Service not ready",
                detail.clone())
                .retry_after(SECOND),
            Self::Store(StoreError::Unavailable { .. }) => row(S::SERVICE_UNAVAILABLE, "storage-unavailable", "Storage unavailable",
                "the data store is unavailable; retry later".into())
                .retry_after(SECOND),
            Self::Store(_) | Self::Internal(_) => row(S::INTERNAL_SERVER_ERROR, "internal-error", "Internal server error",
                "an unexpected error occurred".into()),
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let row = self.row();
        let mut problem = Problem {
            type_uri: format!("{PROBLEM_BASE}{}", row.slug),
            title: row.title.into(),
            status: row.status.as_u16(),
            detail: row.detail,
            available: None,
            requested: None,
            retry_after: row.retry_after.map(whole_seconds),
            operation_id: None,
            errors: Vec::new(),
            checks: None,
            lines: Vec::new(),
        };
        match self {
            Self::InsufficientStock {
                requested,
                available,
            } => {
                problem.requested = Some(*requested);
                problem.available = Some(*available);
            }
            Self::Validation(errors) => {
                problem.errors = errors
                    .errors()
                    .iter()
                    .map(|e| FieldError {
                        field: e.field.into(),
                        message: e.message.clone(),
                    })
                    .collect();
            }
            Self::OutcomeUnknown { operation_id } => {
                problem.operation_id = Some(operation_id.clone());
            }
            Self::NotReady { checks, .. } => {
                problem.checks = checks.as_deref().cloned();
            }
            Self::InsufficientStockLines { lines } => {
                problem.lines = lines.iter().copied().map(Into::into).collect();
            }
            _ => {}
        }
        problem
    }
}

/// `Retry-After` is in whole seconds: rounded up, at least 1.
fn whole_seconds(after: Duration) -> u64 {
    after.as_secs() + u64::from(after.subsec_nanos() > 0 || after.is_zero())
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.row().status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // Logged once, here, with the whole cause chain; the client gets a generic detail.
            let mut chain = String::new();
            let mut source: Option<&dyn std::error::Error> = Some(self);
            while let Some(err) = source {
                if !chain.is_empty() {
                    chain.push_str(": ");
                }
                chain.push_str(&err.to_string());
                source = err.source();
            }
            tracing::error!(error.chain = %chain, http.status = status.as_u16(), "request failed");
        }
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        if let Some(seconds) = problem.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        match self {
            Self::Unauthenticated | Self::InvalidCredentials => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        response.json(problem)
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<inventory_domain::ValidationError> for ApiError {
    fn from(error: inventory_domain::ValidationError) -> Self {
        ApiError::Validation(error.into())
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::UsernameTaken => ApiError::UsernameTaken,
            UserError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<ProductError> for ApiError {
    fn from(error: ProductError) -> Self {
        match error {
            ProductError::NotFound(id) => ApiError::NotFound(format!("product {id} not found")),
            ProductError::NameTaken => ApiError::ProductNameTaken,
            // A state conflict (the same body may succeed after purchases), not invalid input.
            ProductError::StockLimitExceeded { limit, .. } => {
                ApiError::StockLimitExceeded { limit }
            }
            ProductError::LockTimeout { retry_after } => ApiError::LockTimeout { retry_after },
            ProductError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ProductError::OutcomeUnknown { operation_id } => ApiError::OutcomeUnknown {
                operation_id: operation_id.as_str().to_owned(),
            },
            ProductError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::ProductNotFound(id) => {
                ApiError::NotFound(format!("product {id} not found"))
            }
            OrderError::InsufficientStock { lines } => ApiError::InsufficientStockLines { lines },
            OrderError::LockTimeout { retry_after } => ApiError::LockTimeout { retry_after },
            OrderError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            OrderError::OutcomeUnknown { operation_id } => ApiError::OutcomeUnknown {
                operation_id: operation_id.as_str().to_owned(),
            },
            OrderError::Invalid(errors) => ApiError::Validation(errors),
            OrderError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<PurchaseError> for ApiError {
    fn from(error: PurchaseError) -> Self {
        match error {
            PurchaseError::ProductNotFound(id) => {
                ApiError::NotFound(format!("product {id} not found"))
            }
            PurchaseError::InsufficientStock {
                requested,
                available,
            } => ApiError::InsufficientStock {
                requested,
                available,
            },
            PurchaseError::LockTimeout { retry_after } => ApiError::LockTimeout { retry_after },
            PurchaseError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            PurchaseError::OutcomeUnknown { operation_id } => ApiError::OutcomeUnknown {
                operation_id: operation_id.as_str().to_owned(),
            },
            PurchaseError::Invalid(errors) => ApiError::Validation(errors),
            PurchaseError::Store(e) => ApiError::Store(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    async fn body(error: ApiError) -> (StatusCode, serde_json::Value, HttpResponse) {
        let response = error.error_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body()).await.unwrap();
        let mut rebuilt = HttpResponse::build(status);
        for (k, v) in &headers {
            rebuilt.insert_header((k.clone(), v.clone()));
        }
        (
            status,
            serde_json::from_slice(&bytes).unwrap(),
            rebuilt.finish(),
        )
    }

    #[actix_web::test]
    async fn insufficient_stock_carries_the_numbers() {
        let (status, json, response) = body(ApiError::InsufficientStock {
            requested: 5,
            available: 2,
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            json["type"],
            "https://lockstock.dev/problems/insufficient-stock"
        );
        assert_eq!(json["status"], 409);
        assert_eq!(json["available"], 2);
        assert_eq!(json["requested"], 5);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
    }

    #[actix_web::test]
    async fn lock_timeout_sets_retry_after() {
        let (status, json, response) = body(ApiError::LockTimeout {
            retry_after: Duration::from_millis(1500),
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").unwrap(), "2");
        assert_eq!(json["retry_after"], 2);
    }

    #[actix_web::test]
    async fn internal_errors_hide_their_cause() {
        let (status, json, _) = body(ApiError::Internal(anyhow::anyhow!("secret detail"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!json["detail"].as_str().unwrap().contains("secret"));
    }

    #[test]
    fn every_error_has_its_row() {
        let second = Duration::from_secs(1);
        let cases: Vec<(ApiError, u16, &str, bool)> = vec![
            (
                ValidationErrors::new().into(),
                422,
                "validation-error",
                false,
            ),
            (
                ApiError::Malformed("x".into()),
                400,
                "malformed-request",
                false,
            ),
            (
                ApiError::Unprocessable("x".into()),
                422,
                "unprocessable-request",
                false,
            ),
            (
                ApiError::UnsupportedMediaType("x".into()),
                415,
                "unsupported-media-type",
                false,
            ),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "payload-too-large",
                false,
            ),
            (ApiError::Unauthenticated, 401, "unauthenticated", false),
            (
                ApiError::InvalidCredentials,
                401,
                "invalid-credentials",
                false,
            ),
            (ApiError::Forbidden, 403, "forbidden", false),
            (ApiError::NotFound("x".into()), 404, "not-found", false),
            (
                ApiError::MethodNotAllowed {
                    allow: "GET".into(),
                },
                405,
                "method-not-allowed",
                false,
            ),
            (ApiError::UsernameTaken, 409, "username-taken", false),
            (ApiError::ProductNameTaken, 409, "product-name-taken", false),
            (
                ApiError::StockLimitExceeded { limit: 9 },
                409,
                "stock-limit-exceeded",
                false,
            ),
            (
                ApiError::InsufficientStock {
                    requested: 2,
                    available: 1,
                },
                409,
                "insufficient-stock",
                false,
            ),
            (
                ApiError::InsufficientStockLines { lines: Vec::new() },
                409,
                "insufficient-stock",
                false,
            ),
            (
                ApiError::LockTimeout {
                    retry_after: second,
                },
                503,
                "lock-timeout",
                true,
            ),
            (
                ApiError::IdempotencyKeyReused,
                422,
                "idempotency-key-reused",
                false,
            ),
            (
                ApiError::OutcomeUnknown {
                    operation_id: "op-1".into(),
                },
                503,
                "outcome-unknown",
                true,
            ),
            (
                ApiError::RateLimited {
                    retry_after: second,
                    detail: "d",
                },
                429,
                "rate-limited",
                true,
            ),
            (
                ApiError::NotReady {
                    detail: "x".into(),
                    checks: None,
                },
                503,
                "not-ready",
                true,
            ),
            (
                StoreError::unavailable("x", std::io::Error::other("down")).into(),
                503,
                "storage-unavailable",
                true,
            ),
            (
                ApiError::Internal(anyhow::anyhow!("x")),
                500,
                "internal-error",
                false,
            ),
        ];
        for (error, status, slug, retry) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
            let problem = error.problem();
            assert_eq!(problem.status, status, "{error:?}");
            assert_eq!(
                problem.type_uri,
                format!("{PROBLEM_BASE}{slug}"),
                "{error:?}"
            );
            assert_eq!(problem.retry_after.is_some(), retry, "{error:?}");
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                retry,
                "{error:?}"
            );
        }
    }

    #[actix_web::test]
    async fn an_orders_short_lines_are_listed() {
        use inventory_domain::ProductId;
        let line = |product, requested, available| ShortLine {
            product_id: ProductId(product),
            requested,
            available,
        };
        let (status, json, _) = body(ApiError::from(OrderError::InsufficientStock {
            lines: vec![line(2, 3, 1), line(9, 1, 0)],
        }))
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            json["type"],
            "https://lockstock.dev/problems/insufficient-stock"
        );
        assert_eq!(
            json["lines"],
            serde_json::json!([
                {"product_id": 2, "requested": 3, "available": 1},
                {"product_id": 9, "requested": 1, "available": 0},
            ])
        );
        assert!(json.get("available").is_none());
    }

    #[test]
    fn a_restock_past_the_limit_is_a_conflict() {
        let error = ApiError::from(ProductError::StockLimitExceeded {
            current: 10,
            adding: 5,
            limit: 12,
        });
        assert_eq!(error.status_code(), StatusCode::CONFLICT);
        assert!(error.problem().detail.contains("12"));
    }
}
