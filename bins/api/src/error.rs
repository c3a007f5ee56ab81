//! The one error type of the HTTP layer: every failure becomes an RFC 9457
//! `application/problem+json` body with a stable `type` URI.

use std::time::Duration;

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use inventory_domain::{ProductError, PurchaseError, StoreError, UserError, ValidationErrors};
use serde::Serialize;
use utoipa::ToSchema;

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
}

/// One invalid input field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field as the client named it.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Everything a handler or extractor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input values broke the rules.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// The body could not be parsed at all (malformed JSON, bad form encoding).
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
    /// Not enough units.
    #[error("insufficient stock")]
    InsufficientStock {
        /// Units asked for.
        requested: u32,
        /// Units on hand.
        available: u64,
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
    /// The outcome of a purchase is unknown; retrying with `operation_id` as the
    /// Idempotency-Key replays the real outcome.
    #[error("purchase outcome unknown")]
    OutcomeUnknown {
        /// The key the outcome is recorded under.
        operation_id: String,
    },
    /// Too many failed logins.
    #[error("too many failed attempts")]
    RateLimited {
        /// When to retry.
        retry_after: Duration,
    },
    /// The server is shutting down or its store does not answer.
    #[error("not ready")]
    NotReady(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Validation(_) => ("validation-error", "Validation failed"),
            ApiError::Malformed(_) => ("malformed-request", "Malformed request"),
            ApiError::Unprocessable(_) => ("unprocessable-request", "Unprocessable request"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
            ApiError::Unauthenticated => ("unauthenticated", "Authentication required"),
            ApiError::InvalidCredentials => ("invalid-credentials", "Invalid credentials"),
            ApiError::Forbidden => ("forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            ApiError::UsernameTaken => ("username-taken", "Username taken"),
            ApiError::ProductNameTaken => ("product-name-taken", "Product name taken"),
            ApiError::InsufficientStock { .. } => ("insufficient-stock", "Insufficient stock"),
            ApiError::LockTimeout { .. } => ("lock-timeout", "Product busy"),
            ApiError::IdempotencyKeyReused => ("idempotency-key-reused", "Idempotency key reused"),
            ApiError::OutcomeUnknown { .. } => ("outcome-unknown", "Purchase outcome unknown"),
            ApiError::RateLimited { .. } => ("rate-limited", "Too many failed attempts"),
            ApiError::NotReady(_) => ("not-ready", "Service not ready"),
            ApiError::Store(StoreError::Unavailable { .. }) => {
                ("storage-unavailable", "Storage unavailable")
            }
            ApiError::Store(_) | ApiError::Internal(_) => {
                ("internal-error", "Internal server error")
            }
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::Validation(errors) => format!("{} invalid field(s)", errors.errors().len()),
            ApiError::Malformed(d) | ApiError::Unprocessable(d) => d.clone(),
            ApiError::UnsupportedMediaType(d) => d.clone(),
            ApiError::PayloadTooLarge { limit } => {
                format!("the request body is larger than {limit} bytes")
            }
            ApiError::Unauthenticated => "a valid bearer token is required".into(),
            ApiError::InvalidCredentials => "incorrect username or password".into(),
            ApiError::Forbidden => "this operation requires the admin role".into(),
            ApiError::NotFound(d) => d.clone(),
            ApiError::MethodNotAllowed { allow } => {
                format!("this resource answers only {allow}")
            }
            ApiError::UsernameTaken => "this username is already registered".into(),
            ApiError::ProductNameTaken => "a product with this name already exists".into(),
            ApiError::InsufficientStock {
                requested,
                available,
            } => format!("requested {requested} units but only {available} are available"),
            ApiError::LockTimeout { .. } => {
                "the product is busy; nothing was bought, retry shortly".into()
            }
            ApiError::IdempotencyKeyReused => {
                "this Idempotency-Key was already used with a different request body".into()
            }
            ApiError::OutcomeUnknown { operation_id } => format!(
                "the purchase may or may not have been made; retry with the header \
                 `Idempotency-Key: {operation_id}` to learn its outcome (it will never be made twice)"
            ),
            ApiError::RateLimited { .. } => "too many failed login attempts; retry later".into(),
            ApiError::NotReady(d) => d.clone(),
            ApiError::Store(StoreError::Unavailable { .. }) => {
                "the data store is unavailable; retry later".into()
            }
            ApiError::Store(_) | ApiError::Internal(_) => "an unexpected error occurred".into(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::LockTimeout { retry_after } | ApiError::RateLimited { retry_after } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            ApiError::OutcomeUnknown { .. } => Some(1),
            ApiError::NotReady(_) | ApiError::Store(StoreError::Unavailable { .. }) => Some(1),
            _ => None,
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.kind();
        let mut problem = Problem {
            type_uri: format!("{PROBLEM_BASE}{slug}"),
            title: title.into(),
            status: self.status_code().as_u16(),
            detail: self.detail(),
            available: None,
            requested: None,
            retry_after: None,
            operation_id: None,
            errors: Vec::new(),
        };
        match self {
            ApiError::InsufficientStock {
                requested,
                available,
            } => {
                problem.requested = Some(*requested);
                problem.available = Some(*available);
            }
            ApiError::Validation(errors) => {
                problem.errors = errors
                    .errors()
                    .iter()
                    .map(|e| FieldError {
                        field: e.field.into(),
                        message: e.message.clone(),
                    })
                    .collect();
            }
            ApiError::LockTimeout { .. } | ApiError::RateLimited { .. } => {
                problem.retry_after = self.retry_after();
            }
            ApiError::OutcomeUnknown { operation_id } => {
                problem.operation_id = Some(operation_id.clone());
            }
            _ => {}
        }
        problem
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthenticated | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UsernameTaken
            | ApiError::ProductNameTaken
            | ApiError::InsufficientStock { .. } => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::LockTimeout { .. }
            | ApiError::OutcomeUnknown { .. }
            | ApiError::NotReady(_)
            | ApiError::Store(StoreError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
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
        if let Some(seconds) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        match self {
            ApiError::Unauthenticated | ApiError::InvalidCredentials => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        response.json(self.problem())
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
            ProductError::StockLimitExceeded { limit, .. } => ApiError::Validation(
                inventory_domain::ValidationError::new(
                    "quantity",
                    format!("the stock would exceed {limit} units"),
                )
                .into(),
            ),
            ProductError::LockTimeout { retry_after } => ApiError::LockTimeout { retry_after },
            ProductError::Store(e) => ApiError::Store(e),
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
}
