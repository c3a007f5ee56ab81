//! Bad input never becomes a 500 or a change of data.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Mode, TestApp, assert_problem, spawn_app};

both_modes!(
    wrong_method_is_405_with_allow,
    malformed_json_is_400,
    wrong_content_type_is_415,
    oversized_body_is_rejected_and_changes_nothing,
    huge_numbers_are_422_and_change_nothing,
    unknown_routes_are_404_problems,
    request_id_is_echoed,
);

/// A product with 10 units and a logged-in buyer.
async fn setup(app: &TestApp) -> (String, u64) {
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    (alice.token, id)
}

async fn wrong_method_is_405_with_allow(mode: Mode) {
    let app = spawn_app(mode).await;
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/api/products", "GET, POST"),
        (reqwest::Method::PUT, "/api/products/1", "GET"),
        (reqwest::Method::GET, "/api/purchases", "POST"),
        (reqwest::Method::GET, "/api/auth/login", "POST"),
        (reqwest::Method::POST, "/health", "GET"),
    ] {
        let response = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        let mut allowed: Vec<String> = response.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        allowed.sort();
        assert_eq!(allowed.join(", "), allow, "{path}");
        assert_problem(response, 405, "method-not-allowed").await;
    }
}

async fn malformed_json_is_400(mode: Mode) {
    let app = spawn_app(mode).await;
    let (token, id) = setup(&app).await;
    for body in [
        r#"{"product_id": 1, "quantity": "#,
        "not json",
        r#"{"product_id":1,}"#,
        "",
    ] {
        let response = app
            .client
            .post(app.url("/api/purchases"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "malformed-request").await;
    }
    assert_eq!(app.stock(&token, id).await["stock"], 10);
}

async fn wrong_content_type_is_415(mode: Mode) {
    let app = spawn_app(mode).await;
    let (token, id) = setup(&app).await;
    let body = json!({"product_id": id, "quantity": 1}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .client
            .post(app.url("/api/purchases"))
            .bearer_auth(&token)
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_problem(request.send().await.unwrap(), 415, "unsupported-media-type").await;
    }
    assert_eq!(app.stock(&token, id).await["stock"], 10);
}

async fn oversized_body_is_rejected_and_changes_nothing(mode: Mode) {
    let app = spawn_app(mode).await;
    let (token, id) = setup(&app).await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let body = format!(r#"{{"product_id": {id}, "quantity": 1, "padding": "{padding}"}}"#);
    let result = app
        .client
        .post(app.url("/api/purchases"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    // The server answers as soon as Content-Length exceeds the limit; depending on timing
    // the client may see the 413 or a connection closed while it was still sending.
    if let Ok(response) = result {
        assert_problem(response, 413, "payload-too-large").await;
    }
    let admin = app.admin_token().await;
    let register = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "mallory", "password": "x".repeat(2 * 1024 * 1024)}))
        .send()
        .await;
    if let Ok(response) = register {
        assert_problem(response, 413, "payload-too-large").await;
    }
    assert_eq!(app.stock(&admin, id).await["stock"], 10);
    assert_eq!(
        app.login("mallory", "whatever1").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn huge_numbers_are_422_and_change_nothing(mode: Mode) {
    let app = spawn_app(mode).await;
    let (token, id) = setup(&app).await;
    for body in [
        format!(r#"{{"product_id": {id}, "quantity": 100000000000000000000000}}"#),
        format!(r#"{{"product_id": {id}, "quantity": 1e30}}"#),
        format!(r#"{{"product_id": {id}, "quantity": -100000000000000000000}}"#),
        format!(r#"{{"product_id": {id}, "quantity": 1.5}}"#),
        r#"{"product_id": 100000000000000000000000, "quantity": 1}"#.to_owned(),
        format!(r#"{{"product_id": {id}, "quantity": 1, "unit_price": 0}}"#),
    ] {
        let response = app
            .client
            .post(app.url("/api/purchases"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_problem(response, 422, "unprocessable-request").await;
    }
    assert_eq!(app.stock(&token, id).await["stock"], 10);
}

async fn unknown_routes_are_404_problems(mode: Mode) {
    let app = spawn_app(mode).await;
    for path in ["/nope", "/api", "/api/products/1/nothing"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(response, 404, "not-found").await;
    }
}

async fn request_id_is_echoed(mode: Mode) {
    let app = spawn_app(mode).await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let generated = app.client.get(app.url("/nope")).send().await.unwrap();
    assert!(!generated.headers()["x-request-id"].is_empty());
}
