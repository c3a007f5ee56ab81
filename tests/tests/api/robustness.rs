//! Bad input never becomes a 500 or a change of data.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Mode, TestApp, assert_problem, spawn_app};

all_modes!(
    wrong_method_is_405_with_allow,
    malformed_json_is_400,
    wrong_content_type_is_415,
    oversized_body_is_rejected_and_changes_nothing,
    huge_numbers_are_422_and_change_nothing,
    unknown_routes_are_404_problems,
    request_id_is_echoed,
    json_that_is_not_utf8_anywhere_is_400,
    integer_valued_numbers_are_integers,
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

async fn json_that_is_not_utf8_anywhere_is_400(mode: Mode) {
    let app = spawn_app(mode).await;
    let (token, id) = setup(&app).await;
    let post = |path: &str, body: Vec<u8>, token: Option<&str>| {
        let mut request = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // Login JSON with invalid UTF-8 in a field the server ignores (it used to log in).
    let mut login = br#"{"username":"alice","password":"correct horse battery","note":""#.to_vec();
    login.extend_from_slice(b"\xff\xfe\"}");
    let response = post("/api/auth/login", login, None).await.unwrap();
    assert_problem(response, 400, "malformed-request").await;
    // Inside a value that is read, and outside any string.
    let mut register = br#"{"username":"mallory","password":"correct horse "#.to_vec();
    register.extend_from_slice(b"\xc3(\"}");
    let response = post("/api/auth/register", register, None).await.unwrap();
    assert_problem(response, 400, "malformed-request").await;
    let mut purchase = format!(r#"{{"product_id": {id}, "quantity": 1}}"#).into_bytes();
    purchase.push(0xff);
    let response = post("/api/purchases", purchase, Some(&token))
        .await
        .unwrap();
    assert_problem(response, 400, "malformed-request").await;
    assert_eq!(app.stock(&token, id).await["stock"], 10);
    assert_eq!(
        app.login("mallory", "correct horse battery").await.status(),
        401
    );
}

/// JSON has one number type: `2.0` and `1e1` are the integers 2 and 10 (JSON Schema
/// agrees), in bodies and in query strings alike.
async fn integer_valued_numbers_are_integers(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let response = app
        .client
        .post(app.url("/api/products"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"name": "Float", "price": 1096.0, "stock": 1e1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let product: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (product["price"].as_u64(), product["stock"].as_u64()),
        (Some(1096), Some(10))
    );
    let id = product["id"].as_u64().unwrap();

    let restock = app
        .client
        .post(app.url(&format!("/api/products/{id}/restock")))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"quantity": 5.0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(restock.status(), StatusCode::OK);

    let buyer = app.user("floaty").await;
    let purchase = app
        .client
        .post(app.url("/api/purchases"))
        .bearer_auth(&buyer.token)
        .header("content-type", "application/json")
        .body(format!(r#"{{"product_id": {id}.0, "quantity": 2.0}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(purchase.status(), StatusCode::CREATED);
    assert_eq!(app.stock(&admin, id).await["stock"], 13);

    let page = app
        .get(&buyer.token, "/api/purchases/me?limit=1.0&offset=0.0")
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    // A fraction is still not an integer.
    let half = app.get(&buyer.token, "/api/purchases/me?limit=1.5").await;
    assert_problem(half, 422, "unprocessable-request").await;
}

/// Made-up methods and paths collapse into one `method` and one `route` label: 10,000
/// requests, each with its own method and path, leave /metrics the size it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_stay_bounded_under_made_up_methods_and_paths() {
    use futures::StreamExt;

    let app = spawn_app(Mode::Memory).await;
    let send = |i: usize| {
        let method = reqwest::Method::from_bytes(format!("M{i:05}").as_bytes()).unwrap();
        // Unmatched paths, and real resources with a method they do not answer.
        let path = if i.is_multiple_of(2) {
            format!("/made/up/{i}")
        } else {
            format!("/api/products/{i}")
        };
        app.client.request(method, app.url(&path)).send()
    };
    // One of each kind first, so that every series the flood can touch exists.
    for i in 0..2 {
        send(i).await.unwrap();
    }
    let metrics = || async {
        let response = app.client.get(app.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    };
    // The first scrape creates the series of GET /metrics itself.
    metrics().await;
    let before = metrics().await;

    let statuses: Vec<u16> = futures::stream::iter(2..10_002)
        .map(|i| async move { send(i).await.unwrap().status().as_u16() })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 404 || *s == 405),
        "{:?}",
        &statuses[..10]
    );

    let after = metrics().await;
    // Only counters grew (a few more digits per sample line).
    assert!(
        after.len() <= before.len() + 1024,
        "/metrics grew from {} to {} bytes:\n{after}",
        before.len(),
        after.len()
    );
    assert!(after.len() < 64 * 1024, "{} bytes", after.len());
    for needle in ["M00007", "/made/up", "/api/products/7\""] {
        assert!(!after.contains(needle), "{needle} leaked into /metrics");
    }
    assert!(after.contains(r#"method="OTHER""#), "{after}");
    assert!(after.contains(r#"route="unmatched""#), "{after}");
}
