//! Probes, metrics, docs and shutdown.

use std::{process::Command, time::Duration};

use reqwest::{StatusCode, redirect::Policy};
use serde_json::Value;

use crate::helpers::{Mode, assert_problem, run_until_exit, spawn_app};

all_modes!(
    health_and_ready,
    metrics_are_prometheus_text,
    docs_redirect_and_swagger_ui,
    openapi_document_covers_every_path,
    sigterm_stops_gracefully,
    sigterm_drains_before_closing,
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
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["data_store"]["reachable"], true, "{ready}");
    let locks = &ready["checks"]["locks"];
    assert_eq!(locks["ready"], true, "{ready}");
    match mode {
        Mode::Memory => assert_eq!(locks["mode"], "in-process", "{ready}"),
        Mode::Redis => {
            assert_eq!(locks["mode"], "single", "{ready}");
            assert!(locks.get("nodes").is_none(), "{ready}");
        }
        Mode::Redlock => {
            assert_eq!(locks["mode"], "redlock", "{ready}");
            assert_eq!(locks["quorum"], 3, "{ready}");
            assert_eq!(locks["counting"], 5, "{ready}");
            let nodes = locks["nodes"].as_array().unwrap();
            assert_eq!(nodes.len(), 5, "{ready}");
            for node in nodes {
                assert!(
                    node["address"].as_str().unwrap().starts_with("127.0.0.1:"),
                    "{ready}"
                );
                assert_eq!(node["reachable"], true, "{ready}");
                assert_eq!(node["counts_toward_quorum"], true, "{ready}");
                assert_eq!(node["quarantine_left_ms"], 0, "{ready}");
                assert_eq!(node["fsync_always"], true, "{ready}");
            }
        }
    }
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

/// SIGTERM: /ready turns 503 at once (load balancers stop sending), the listener keeps
/// serving new connections for READY_DRAIN_MS (requests already routed here still land),
/// then closes and the process exits. Synchronised on events (/ready answering 503, the
/// process exiting), never on sleeps; the elapsed time is only checked afterwards.
async fn sigterm_drains_before_closing(mode: Mode) {
    const DRAIN: Duration = Duration::from_secs(8);
    let mut app = crate::helpers::spawn_app_with(mode, &[("READY_DRAIN_MS", "8000")]).await;
    let token = app.admin_token().await;
    // A fresh connection per request: "the listener keeps serving" means new connections.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    };
    assert_eq!(
        fresh()
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let signalled = std::time::Instant::now();
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", app.pid())])
        .status()
        .unwrap();
    assert!(status.success());

    let deadline = signalled + Duration::from_secs(30);
    let not_ready = loop {
        let response = fresh().get(app.url("/ready")).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/ready never turned 503"
        );
        tokio::task::yield_now().await;
    };
    // Keep-alive clients are told to go elsewhere.
    assert_eq!(not_ready.headers()["connection"], "close");
    let body = assert_problem(not_ready, 503, "not-ready").await;
    assert!(
        body["detail"].as_str().unwrap().contains("shutting down"),
        "{body}"
    );

    // Still serving, on new connections: liveness, and real work.
    let health = fresh().get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let me = fresh()
        .get(app.url("/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(
        signalled.elapsed() < DRAIN,
        "the checks above took longer than the drain window; the test proves nothing"
    );

    let exit = tokio::task::block_in_place(|| app.wait_for_exit(Duration::from_secs(30)));
    assert!(exit.success(), "exit status {exit:?}:\n{}", app.logs());
    assert!(
        signalled.elapsed() >= DRAIN,
        "exited {:?} after SIGTERM, inside the drain window",
        signalled.elapsed()
    );
    assert!(fresh().get(app.url("/health")).send().await.is_err());
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    let secret = ("JWT_SECRET", crate::helpers::JWT_SECRET);
    let redis = ("REDIS_URL", "redis://127.0.0.1:1");
    let three = "redis://127.0.0.1:1,redis://127.0.0.1:2,redis://127.0.0.1:3";
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("BCRYPT_COST", &[("BCRYPT_COST", "3")]),
        ("JWT_SECRET", &[("JWT_SECRET", "too-short")]),
        ("BIND_ADDR", &[("BIND_ADDR", "not-an-address")]),
        ("LOG_FORMAT", &[("LOG_FORMAT", "xml")]),
        ("MAX_PURCHASE_QUANTITY", &[("MAX_PURCHASE_QUANTITY", "0")]),
        ("PURCHASE_BATCH_MAX", &[("PURCHASE_BATCH_MAX", "1025")]),
        ("LOCK_WAIT_TIMEOUT_MS", &[("LOCK_WAIT_TIMEOUT_MS", "soon")]),
        (
            "TRUSTED_PROXIES",
            &[("TRUSTED_PROXIES", "10.0.0.0/8,the-proxy")],
        ),
        ("READY_DRAIN_MS", &[("READY_DRAIN_MS", "-1")]),
        (
            "LOGIN_FAILURES_PER_USERNAME",
            &[("LOGIN_FAILURES_PER_USERNAME", "0")],
        ),
        (
            "REGISTRATIONS_PER_ADDRESS",
            &[("REGISTRATIONS_PER_ADDRESS", "none")],
        ),
        // Set but empty is not "unset": an empty REDIS_URL must not mean memory mode.
        ("REDIS_URL", &[("REDIS_URL", "")]),
        ("REDIS_URL", &[("REDIS_URL", " ")]),
        // Redis-only settings without a data store.
        ("LOCK_MODE", &[("LOCK_MODE", "redlock")]),
        ("REDLOCK_NODES", &[("REDLOCK_NODES", three)]),
        (
            "REDIS_RESPONSE_TIMEOUT_MS",
            &[("REDIS_RESPONSE_TIMEOUT_MS", "500")],
        ),
        ("REDIS_POOL_SIZE", &[("REDIS_POOL_SIZE", "8")]),
        // Redlock needs at least three distinct nodes.
        (
            "REDLOCK_NODES",
            &[
                redis,
                secret,
                ("LOCK_MODE", "redlock"),
                ("REDLOCK_NODES", "redis://a:1,redis://b:1"),
            ],
        ),
        ("REDLOCK_NODES", &[redis, secret, ("LOCK_MODE", "redlock")]),
        ("REDLOCK_NODES", &[redis, secret, ("REDLOCK_NODES", three)]),
        // Timeouts that cannot work together.
        (
            "LOCK_TTL_MS",
            &[
                redis,
                secret,
                ("LOCK_TTL_MS", "3000"),
                ("REDIS_RESPONSE_TIMEOUT_MS", "2000"),
            ],
        ),
        (
            "LOCK_WAIT_TIMEOUT_MS",
            &[("LOCK_WAIT_TIMEOUT_MS", "20000"), ("LOCK_TTL_MS", "15000")],
        ),
        // With Redis configured, a missing JWT secret is fatal.
        ("JWT_SECRET", &[redis]),
    ];
    for (name, env) in cases {
        let (status, output) = run_until_exit(env);
        assert!(!status.success(), "{env:?} started");
        assert!(
            output.contains(name),
            "{name} not named for {env:?} in:\n{output}"
        );
        assert!(!output.contains("listening on"), "{output}");
        assert!(!output.contains("DEVELOPMENT MODE"), "{env:?}: {output}");
    }
}

/// A password holding `@` (or `:`) must not leak, not even the part after the first `@`.
#[test]
fn redis_url_passwords_never_leak() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:p@ss:w0rd@127.0.0.1:{port}/0");
    let (status, output) = run_until_exit(&[
        ("REDIS_URL", url.as_str()),
        ("JWT_SECRET", crate::helpers::JWT_SECRET),
        ("BIND_ADDR", "127.0.0.1:0"),
    ]);
    assert!(!status.success(), "{output}");
    for part in ["p@ss", "ss:w0rd", "w0rd"] {
        assert!(!output.contains(part), "{part:?} leaked:\n{output}");
    }
    assert!(
        output.contains(&format!("***@127.0.0.1:{port}")),
        "{output}"
    );
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
        &[
            ("LOCK_WAIT_TIMEOUT_MS", "20000"),
            ("LOCK_TTL_MS", "20000"),
            ("SHUTDOWN_GRACE_SECONDS", "45"),
        ],
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
