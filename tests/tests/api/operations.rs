//! Probes, metrics, docs and shutdown.

use std::{process::Command, time::Duration};

use reqwest::{StatusCode, redirect::Policy};
use serde_json::Value;

use crate::helpers::{Mode, assert_problem, run_until_exit, spawn_app};

both_modes!(
    health_and_ready,
    metrics_are_prometheus_text,
    docs_redirect_and_swagger_ui,
    openapi_document_covers_every_path,
    sigterm_stops_gracefully,
);

async fn health_and_ready(mode: Mode) {
    let app = spawn_app(mode).await;
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

async fn metrics_are_prometheus_text(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 1).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    app.purchase(&alice.token, id, 1, None).await;
    app.purchase(&alice.token, id, 1, None).await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for needle in [
        "http_requests_total{",
        r#"route="/api/purchases""#,
        "http_request_duration_seconds_bucket",
        r#"lockstock_purchases_total{outcome="purchased"} 1"#,
        r#"lockstock_purchases_total{outcome="insufficient_stock"} 1"#,
        &format!(r#"lockstock_product_stock{{product_id="{id}"}} 0"#),
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

async fn docs_redirect_and_swagger_ui(mode: Mode) {
    let app = spawn_app(mode).await;
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let redirect = client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/docs/");
    let ui = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

async fn openapi_document_covers_every_path(mode: Mode) {
    let app = spawn_app(mode).await;
    let doc: Value = app
        .client
        .get(app.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        schemes["oauth2"]["flows"]["password"]["tokenUrl"],
        "/api/auth/login"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

async fn sigterm_stops_gracefully(mode: Mode) {
    let mut app = spawn_app(mode).await;
    assert_eq!(
        app.client
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The shell's builtin `kill`: no dependency on a kill binary being installed.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", app.pid())])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::block_in_place(|| app.wait_for_exit(Duration::from_secs(30)));
    assert!(exit.success(), "exit status {exit:?}:\n{}", app.logs());
    // Nothing answers any more.
    assert!(app.client.get(app.url("/health")).send().await.is_err());
    let _ = assert_problem;
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    for (name, value) in [
        ("BCRYPT_COST", "3"),
        ("JWT_SECRET", "too-short"),
        ("BIND_ADDR", "not-an-address"),
        ("LOG_FORMAT", "xml"),
        ("MAX_PURCHASE_QUANTITY", "0"),
        ("LOCK_WAIT_TIMEOUT_MS", "soon"),
        ("REDIS_RESPONSE_TIMEOUT_MS", "5"),
        ("REDIS_POOL_SIZE", "0"),
    ] {
        let (status, output) = run_until_exit(&[(name, value)]);
        assert!(!status.success(), "{name}={value} started");
        assert!(output.contains(name), "{name} not named in:\n{output}");
        assert!(!output.contains("listening on"), "{output}");
    }
    // With Redis configured, a missing JWT secret is fatal.
    let (status, output) = run_until_exit(&[("REDIS_URL", "redis://127.0.0.1:1")]);
    assert!(!status.success());
    assert!(output.contains("JWT_SECRET"), "{output}");
}

#[test]
fn unreachable_redis_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let (status, output) = run_until_exit(&[
        ("REDIS_URL", url.as_str()),
        ("JWT_SECRET", crate::helpers::JWT_SECRET),
        ("BIND_ADDR", "127.0.0.1:0"),
    ]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("Redis"), "{output}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

/// SIGTERM while a purchase is waiting for its product's lock: the server stops
/// taking new work but lets the purchase finish (201, stock decremented once),
/// then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_purchase_finish() {
    let mut app = crate::helpers::spawn_app_with(
        Mode::Redis,
        &[("LOCK_WAIT_TIMEOUT_MS", "20000"), ("LOCK_TTL_MS", "20000")],
    )
    .await;
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "Draining", 100, 5).await;
    let id = product["id"].as_u64().unwrap();
    let buyer = app.user("drain_buyer").await;
    let redis_addr = app.redis().expect("Redis mode").socket_addr();
    let redis = |args: &[&str]| {
        lockstock_test_support::command(redis_addr, args, Duration::from_secs(5)).unwrap()
    };
    // Someone else holds the product's lock, so the purchase has to wait.
    let lock = format!("{{product:{id}}}:lock");
    let channel = format!("lockstock:released:{lock}");
    redis(&["SET", &lock, "held-by-the-test", "PX", "20000"]);
    let purchase = {
        let request = app
            .client
            .post(app.url("/api/purchases"))
            .bearer_auth(&buyer.token)
            .json(&serde_json::json!({ "product_id": id, "quantity": 1 }));
        tokio::spawn(async move { request.send().await })
    };
    // The server's waiter subscribes to the release channel after its first
    // refusal: that is the event that says the purchase is in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = redis(&["PUBSUB", "NUMSUB", &channel]);
        let subscribed = format!("{reply:?}").contains("Integer(1)");
        if subscribed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the purchase never waited for the lock"
        );
        tokio::task::yield_now().await;
    }

    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", app.pid())])
        .status()
        .unwrap();
    assert!(status.success());
    // Release the lock the way a holder would: the waiting purchase proceeds.
    redis(&["DEL", &lock]);
    redis(&["PUBLISH", &channel, "1"]);

    let response = purchase
        .await
        .unwrap()
        .expect("the in-flight purchase was answered");
    assert_eq!(response.status(), StatusCode::CREATED, "{}", app.logs());
    let exit = tokio::task::block_in_place(|| app.wait_for_exit(Duration::from_secs(30)));
    assert!(exit.success(), "exit status {exit:?}:\n{}", app.logs());
    let stock = redis(&["HGET", &format!("{{product:{id}}}:data"), "stock"]);
    assert_eq!(stock.as_text().as_deref(), Some("4"));
}
