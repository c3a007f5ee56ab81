//! The OpenAPI 3.1 document served at `/api-docs/openapi.json`.
//!
//! The document states every rule the server enforces on input, and the server accepts
//! everything the document allows; `tests::patterns_agree_with_the_domain` and the
//! schemathesis run (`scripts/schemathesis.sh`) hold the two together. Two things JSON
//! Schema cannot say exactly are stated in prose: the password's limit is in bytes, and
//! `MAX_PURCHASE_QUANTITY` is configuration (the served document carries the configured
//! value, see [`document`]).

use utoipa::{
    Modify, OpenApi,
    openapi::{
        RefOr, Schema,
        path::ParameterIn,
        schema::{SchemaType, Type},
        security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme},
    },
};

use crate::{error, routes};

/// The patterns of string fields, written in the common subset of ECMA-262 (what JSON
/// Schema means), Python `re` and Rust `regex`. Each states exactly what the domain's
/// parser accepts; where the parser trims, the pattern allows the surrounding whitespace
/// it trims (Rust's `White_Space`).
pub mod patterns {
    /// `Username::parse`.
    pub const USERNAME: &str = "^[A-Za-z0-9_.-]{3,50}$";

    /// `Email::parse`: `local@domain` where the domain has an inner dot, without
    /// whitespace, control characters or a second `@`; surrounding whitespace trimmed.
    pub const EMAIL: &str = concat!(
        r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
        r"[^@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+",
        "@",
        r"[^@.\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
        r"[^@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
        r"\.",
        r"[^@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
        r"[^@.\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
        r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$",
    );

    /// `ProductName::parse`: something other than whitespace, no control characters
    /// once the surrounding whitespace is trimmed.
    pub const PRODUCT_NAME: &str = concat!(
        r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
        r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
        r"(?:[^\u0000-\u001F\u007F-\u009F]*",
        r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?",
        r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$",
    );

    /// `IdempotencyKey::parse`: 1–255 printable ASCII characters. HTTP strips spaces at
    /// either end of a header value, so a key cannot start or end with one.
    pub const IDEMPOTENCY_KEY: &str = "^[!-~](?:[ -~]{0,253}[!-~])?$";

    /// `AuditCursor::parse`: an audit entry id, `<ms>-<n>`, 1–19 digits each.
    pub const AUDIT_CURSOR: &str = "^[0-9]{1,19}-[0-9]{1,19}$";
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lockstock",
        description = "Inventory service for limited-quantity sales: stock never oversells under \
            concurrent buyers. Errors are RFC 9457 `application/problem+json`.\n\n\
            Integers: JSON has one number type, and a number without a fractional part is an \
            integer however it is written (`1096`, `1096.0`, `1.096e3`), as JSON Schema says; \
            written with a fraction or exponent, it must lie within ±(2^53 − 1).",
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
        routes::products::adjust,
        routes::products::audit,
        routes::purchases::create,
        routes::purchases::mine,
        routes::purchases::get,
        routes::orders::create,
        routes::orders::mine,
        routes::orders::get,
        routes::admin::reconcile,
        routes::health::health,
        routes::health::ready,
        routes::health::metrics,
    ),
    components(
        schemas(
            error::Problem,
            error::FieldError,
            error::ShortLineBody,
            routes::auth::RegisterRequest,
            routes::auth::LoginRequest,
            routes::auth::UserResponse,
            routes::auth::RoleDto,
            routes::auth::TokenResponse,
            routes::products::CreateProductRequest,
            routes::products::RestockRequest,
            routes::products::ProductResponse,
            routes::products::StockResponse,
            routes::products::AdjustRequest,
            routes::products::AuditResponse,
            routes::products::AuditEntryResponse,
            routes::products::AuditKindDto,
            routes::purchases::PurchaseRequest,
            routes::purchases::PurchaseReceiptResponse,
            routes::purchases::PurchaseResponse,
            routes::orders::OrderRequest,
            routes::orders::OrderItemRequest,
            routes::orders::OrderResponse,
            routes::orders::OrderLineResponse,
            routes::admin::ReconcileResponse,
            routes::admin::DifferenceResponse,
            routes::admin::CheckDto,
            routes::health::Status,
            routes::health::ReadyResponse,
            routes::health::ReadinessChecks,
            routes::health::DataStoreCheck,
            routes::health::LockCheck,
            routes::health::LockModeDto,
            routes::health::LockNodeCheck,
        ),
        responses(error::ProblemResponse, error::RetryLaterResponse),
    ),
    modifiers(&SecuritySchemes, &Patterns),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "products", description = "Catalogue and stock"),
        (name = "purchases", description = "Buying"),
        (name = "orders", description = "Buying several products at once, all or nothing"),
        (name = "admin", description = "Reconciliation"),
        (name = "operations", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// The document as served: [`ApiDoc`] with the configured `MAX_PURCHASE_QUANTITY`.
pub fn document(max_purchase_quantity: u32) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for schema in ["PurchaseRequest", "OrderItemRequest"] {
        if let Some(quantity) = property(&mut doc, schema, "quantity") {
            quantity.maximum = Some(max_purchase_quantity.into());
        }
    }
    doc
}

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

/// Puts [`patterns`] into the document (derive attributes take only literals, and the
/// patterns are long enough to want one home).
struct Patterns;

impl Modify for Patterns {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (schema, field, pattern) in [
            ("RegisterRequest", "username", patterns::USERNAME),
            ("RegisterRequest", "email", patterns::EMAIL),
            ("CreateProductRequest", "name", patterns::PRODUCT_NAME),
        ] {
            if let Some(object) = property(openapi, schema, field) {
                object.pattern = Some(pattern.to_owned());
            }
        }
        for (path, method) in [
            ("/api/purchases", "post"),
            ("/api/orders", "post"),
            ("/api/products/{id}/restock", "post"),
        ] {
            if let Some(key) = idempotency_key_schema(openapi, path, method) {
                // Optional means absent, never null: a header has no null.
                key.schema_type = SchemaType::Type(Type::String);
                key.min_length = Some(1);
                key.max_length = Some(inventory_domain::IdempotencyKey::MAX_LEN);
                key.pattern = Some(patterns::IDEMPOTENCY_KEY.to_owned());
            }
        }
        if let Some(after) = query_parameter_schema(openapi, "/api/products/{id}/audit", "after") {
            after.schema_type = SchemaType::Type(Type::String);
            after.pattern = Some(patterns::AUDIT_CURSOR.to_owned());
        }
    }
}

/// The schema of the `Idempotency-Key` header parameter of `method path`.
fn idempotency_key_schema<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    path: &str,
    method: &str,
) -> Option<&'a mut utoipa::openapi::schema::Object> {
    let item = openapi.paths.paths.get_mut(path)?;
    let operation = match method {
        "post" => item.post.as_mut(),
        _ => item.get.as_mut(),
    }?;
    parameter_schema(operation, "Idempotency-Key", ParameterIn::Header)
}

/// The schema of query parameter `name` of `GET path`.
fn query_parameter_schema<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    path: &str,
    name: &str,
) -> Option<&'a mut utoipa::openapi::schema::Object> {
    let operation = openapi.paths.paths.get_mut(path)?.get.as_mut()?;
    parameter_schema(operation, name, ParameterIn::Query)
}

fn parameter_schema<'a>(
    operation: &'a mut utoipa::openapi::path::Operation,
    name: &str,
    location: ParameterIn,
) -> Option<&'a mut utoipa::openapi::schema::Object> {
    operation
        .parameters
        .as_mut()?
        .iter_mut()
        .find_map(|p| match p {
            RefOr::T(p) if p.name == name && p.parameter_in == location => Some(p),
            _ => None,
        })
        .and_then(|param| match param.schema.as_mut() {
            Some(RefOr::T(Schema::Object(object))) => Some(object),
            _ => None,
        })
}

/// The object schema of `schema.field` (a string or integer property), if present.
fn property<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    schema: &str,
    field: &str,
) -> Option<&'a mut utoipa::openapi::schema::Object> {
    let RefOr::T(Schema::Object(object)) = openapi.components.as_mut()?.schemas.get_mut(schema)?
    else {
        return None;
    };
    match object.properties.get_mut(field)? {
        RefOr::T(Schema::Object(property)) => Some(property),
        // `Option<String>` is `oneOf [null, string]` in some utoipa versions.
        RefOr::T(Schema::OneOf(one_of)) => one_of.items.iter_mut().find_map(|item| match item {
            RefOr::T(Schema::Object(o)) if o.pattern.is_none() => Some(o),
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use inventory_domain::{Email, IdempotencyKey, Page, ProductName, Username};
    use regex::Regex;
    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(document(100)).unwrap()
    }

    #[test]
    fn document_covers_every_route() {
        let doc = doc();
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
            "/api/products/{id}/adjust",
            "/api/products/{id}/audit",
            "/api/orders",
            "/api/orders/me",
            "/api/orders/{id}",
            "/api/admin/reconcile",
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
    fn every_error_response_is_the_reusable_problem() {
        let doc = doc();
        let mut errors = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        errors += 1;
                        let target = response["$ref"].as_str().unwrap_or_default();
                        assert!(
                            target == "#/components/responses/ProblemResponse"
                                || target == "#/components/responses/RetryLaterResponse",
                            "{method} {path} {status}: {response}"
                        );
                        if matches!(status.as_str(), "429" | "503") {
                            assert!(target.ends_with("RetryLaterResponse"), "{method} {path}");
                        }
                    }
                }
            }
        }
        assert!(errors > 40, "{errors}");
        let problem = &doc["components"]["responses"]["ProblemResponse"]["content"]["application/problem+json"]
            ["schema"]["$ref"];
        assert_eq!(problem, "#/components/schemas/Problem");
    }

    #[test]
    fn json_bodies_document_400_413_415() {
        let doc = doc();
        for (path, method) in [
            ("/api/auth/register", "post"),
            ("/api/auth/login", "post"),
            ("/api/products", "post"),
            ("/api/products/{id}/restock", "post"),
            ("/api/products/{id}/adjust", "post"),
            ("/api/purchases", "post"),
            ("/api/orders", "post"),
        ] {
            let responses = &doc["paths"][path][method]["responses"];
            for status in ["400", "413", "415", "422"] {
                assert!(
                    responses[status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }

    #[test]
    fn bounds_match_the_domain() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let page = doc["paths"]["/api/products"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let param = |name: &str| {
            page.iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"].clone())
                .unwrap()
        };
        assert_eq!(param("limit")["maximum"], Page::MAX_LIMIT);
        assert_eq!(param("limit")["minimum"], 1);
        assert_eq!(param("offset")["maximum"], Page::MAX_OFFSET);
        assert_eq!(param("offset")["minimum"], 0);

        let register = &schemas["RegisterRequest"]["properties"];
        assert_eq!(register["username"]["minLength"], Username::MIN_LEN);
        assert_eq!(register["username"]["maxLength"], Username::MAX_LEN);
        assert_eq!(register["username"]["pattern"], patterns::USERNAME);
        assert_eq!(register["email"]["pattern"], patterns::EMAIL);
        assert_eq!(register["email"]["maxLength"], Email::MAX_LEN);
        assert_eq!(schemas["RegisterRequest"]["additionalProperties"], false);

        let product = &schemas["CreateProductRequest"]["properties"];
        assert_eq!(product["name"]["pattern"], patterns::PRODUCT_NAME);
        assert_eq!(product["name"]["maxLength"], ProductName::MAX_CHARS);
        assert_eq!(product["price"]["maximum"], inventory_domain::Price::MAX);
        assert_eq!(product["stock"]["maximum"], inventory_domain::Stock::MAX);
        assert_eq!(
            schemas["RestockRequest"]["properties"]["quantity"]["maximum"],
            inventory_domain::Stock::MAX
        );

        let purchase = &schemas["PurchaseRequest"]["properties"];
        assert_eq!(purchase["quantity"]["maximum"], 100);
        assert_eq!(purchase["quantity"]["minimum"], 1);
        assert_eq!(
            purchase["product_id"]["maximum"],
            crate::extract::integer::MAX_SAFE
        );
        let served = serde_json::to_value(document(7)).unwrap();
        assert_eq!(
            served["components"]["schemas"]["PurchaseRequest"]["properties"]["quantity"]["maximum"],
            7
        );

        for path in [
            "/api/purchases",
            "/api/orders",
            "/api/products/{id}/restock",
        ] {
            let key = doc["paths"][path]["post"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "Idempotency-Key")
                .unwrap()["schema"]
                .clone();
            assert_eq!(key["pattern"], patterns::IDEMPOTENCY_KEY, "{path}");
            assert_eq!(key["maxLength"], IdempotencyKey::MAX_LEN, "{path}");
            assert_eq!(key["minLength"], 1, "{path}");
            assert_eq!(key["type"], "string", "{path}");
        }

        let order = &schemas["OrderRequest"];
        assert_eq!(order["properties"]["items"]["minItems"], 1);
        assert_eq!(
            order["properties"]["items"]["maxItems"],
            inventory_domain::OrderLines::MAX_ITEMS
        );
        assert_eq!(
            schemas["OrderItemRequest"]["properties"]["quantity"]["maximum"],
            100
        );
        assert_eq!(
            served["components"]["schemas"]["OrderItemRequest"]["properties"]["quantity"]["maximum"],
            7
        );
        let adjust = &schemas["AdjustRequest"]["properties"];
        assert_eq!(
            adjust["reason"]["maxLength"],
            inventory_domain::AdjustReason::MAX_CHARS
        );
        assert_eq!(adjust["stock"]["maximum"], inventory_domain::Stock::MAX);
        let audit = doc["paths"]["/api/products/{id}/audit"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let after = audit.iter().find(|p| p["name"] == "after").unwrap();
        assert_eq!(after["schema"]["type"], "string");
        assert_eq!(after["schema"]["pattern"], patterns::AUDIT_CURSOR);
        let limit = audit.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(
            limit["schema"]["maximum"],
            inventory_domain::AuditQuery::MAX_LIMIT
        );
    }

    /// Tricky inputs for every pattern: each pattern accepts exactly what the domain's
    /// parser accepts.
    #[test]
    fn patterns_agree_with_the_domain() {
        let edges = [
            "", " ", "\t", "\n", "\u{85}", "\u{a0}", "\u{2003}", "\u{3000}", "\u{feff}", "\u{1}",
            "\u{7f}", "\u{9f}", "\u{0}", "@", ".", "a", "é", "😀", "ß", "-", "_", "~", "!",
        ];
        let mut corpus: Vec<String> = Vec::new();
        for a in edges {
            for b in edges {
                corpus.push(format!("{a}x{b}"));
                corpus.push(format!("{a}alice{b}@example.com"));
                corpus.push(format!("alice@{a}example{b}.com"));
                corpus.push(format!("alice@example.{a}com{b}"));
                corpus.push(format!("{a}{b}"));
                corpus.push(format!("ab{a}c{b}"));
            }
        }
        corpus.extend(
            [
                "a@b.c", "a@.b", "a@b.", "a@b", "a@@b.c", "@b.c", "a@b..c", "a.b@c.d", "abc", "ab",
                "A-b_c.9", "a\nb", "abc\n",
            ]
            .map(String::from),
        );
        corpus.push("a".repeat(50));
        corpus.push("a".repeat(51));
        corpus.extend(
            [
                "1-0",
                "0-0",
                "1764460800000-12",
                "-1",
                "1-",
                "1--1",
                "a-1",
                "1-1-1",
                " 1-1",
                "9999999999999999999-1",
                "99999999999999999999-1",
                "1-9999999999999999999",
                "١-1",
            ]
            .map(String::from),
        );

        let check = |pattern: &str, accepts: &dyn Fn(&str) -> bool| {
            let regex = Regex::new(pattern).unwrap();
            for input in &corpus {
                assert_eq!(
                    regex.is_match(input),
                    accepts(input),
                    "pattern {pattern} disagrees with the domain on {input:?}"
                );
            }
        };
        check(patterns::USERNAME, &|s| Username::parse(s).is_ok());
        // Lengths are maxLength's business; the corpus stays under them.
        check(patterns::EMAIL, &|s| Email::parse(s).is_ok());
        check(patterns::PRODUCT_NAME, &|s| ProductName::parse(s).is_ok());
        check(patterns::AUDIT_CURSOR, &|s| {
            inventory_domain::AuditCursor::parse(s).is_ok()
        });
        check(patterns::IDEMPOTENCY_KEY, &|s| {
            // What a header value can carry once HTTP has trimmed it.
            s == s.trim_matches(' ') && IdempotencyKey::parse(s).is_ok()
        });
    }

    #[test]
    fn document_snapshot() {
        let doc = document(100).to_pretty_json().unwrap();
        insta::assert_snapshot!("openapi", doc);
    }
}
