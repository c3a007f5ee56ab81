//! The OpenAPI 3.1 document served at `/api-docs/openapi.json`.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{
        Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
    },
};

use crate::{error, routes};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lockstock",
        description = "Inventory service for limited-quantity sales: stock never oversells under \
            concurrent buyers. Errors are RFC 9457 `application/problem+json`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        routes::auth::register,
        routes::auth::login,
        routes::auth::me,
        routes::products::create,
        routes::products::list,
        routes::products::get,
        routes::products::stock,
        routes::products::restock,
        routes::purchases::create,
        routes::purchases::mine,
        routes::purchases::get,
        routes::health::health,
        routes::health::ready,
        routes::health::metrics,
    ),
    components(schemas(
        error::Problem,
        error::FieldError,
        routes::auth::RegisterRequest,
        routes::auth::LoginRequest,
        routes::auth::UserResponse,
        routes::auth::RoleDto,
        routes::auth::TokenResponse,
        routes::products::CreateProductRequest,
        routes::products::RestockRequest,
        routes::products::ProductResponse,
        routes::products::StockResponse,
        routes::purchases::PurchaseRequest,
        routes::purchases::PurchaseReceiptResponse,
        routes::purchases::PurchaseResponse,
        routes::health::Status,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "products", description = "Catalogue and stock"),
        (name = "purchases", description = "Buying"),
        (name = "operations", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme and the OAuth2 password flow (Swagger UI's Authorize button
/// posts the password form to `/api/auth/login`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/api/auth/login",
                Scopes::new(),
            ))])),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_covers_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/api/auth/register",
            "/api/auth/login",
            "/api/auth/me",
            "/api/products",
            "/api/products/{id}",
            "/api/products/{id}/stock",
            "/api/products/{id}/restock",
            "/api/purchases",
            "/api/purchases/me",
            "/api/purchases/{id}",
            "/health",
            "/ready",
            "/metrics",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"]["tokenUrl"],
            "/api/auth/login"
        );
    }

    #[test]
    fn document_snapshot() {
        let doc = ApiDoc::openapi().to_pretty_json().unwrap();
        insta::assert_snapshot!("openapi", doc);
    }
}
