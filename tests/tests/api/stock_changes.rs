//! Restocks with idempotency keys, stock-take adjustments, the audit trail and
//! reconciliation (endpoint, command, gauge).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Mode, assert_problem, spawn_app, spawn_app_with};

all_modes!(
    a_keyed_restock_counts_once,
    adjustments_set_the_stock_and_keep_the_books,
    the_audit_trail_records_every_change_in_order,
    audit_and_reconcile_are_for_admins,
    reconcile_is_clean_after_every_kind_of_change,
);

async fn a_keyed_restock_counts_once(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Boot", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let first = app.restock(&admin, id, 5, Some("delivery-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["stock"], 15);
    let again = app.restock(&admin, id, 5, Some("delivery-1")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the first answer"
    );
    assert_problem(
        app.restock(&admin, id, 6, Some("delivery-1")).await,
        422,
        "idempotency-key-reused",
    )
    .await;
    // A refused restock does not consume its key.
    assert_problem(
        app.restock(&admin, id, 1_000_000_000, Some("delivery-2"))
            .await,
        409,
        "stock-limit-exceeded",
    )
    .await;
    assert_eq!(
        app.restock(&admin, id, 2, Some("delivery-2"))
            .await
            .status(),
        200
    );
    assert_problem(
        app.restock(&admin, id, 1, Some("k".repeat(256).as_str()))
            .await,
        422,
        "validation-error",
    )
    .await;
    let level = app.stock(&admin, id).await;
    assert_eq!(
        (level["stock"].as_u64(), level["restocked"].as_u64()),
        (Some(17), Some(7))
    );
    let restocks = app
        .audit(&admin, id)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "restock")
        .count();
    assert_eq!(restocks, 2);
    app.assert_reconciled(&admin).await;
}

async fn adjustments_set_the_stock_and_keep_the_books(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Boot", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    assert_eq!(app.purchase(&alice.token, id, 3, None).await.status(), 201);
    let down = app
        .adjust(
            &admin,
            id,
            json!({"stock": 5, "reason": "two broken in the stock-take"}),
        )
        .await;
    assert_eq!(down.status(), StatusCode::OK);
    assert_eq!(
        down.json::<Value>().await.unwrap(),
        json!({"product_id": id, "stock": 5, "sold": 3, "initial_stock": 10, "restocked": 0, "adjusted": -2})
    );
    let up: Value = app
        .adjust(&admin, id, json!({"stock": 9, "reason": "found a box"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (up["stock"].as_u64(), up["adjusted"].as_i64()),
        (Some(9), Some(2))
    );
    for (body, field) in [
        (json!({"stock": -1, "reason": "x"}), "stock"),
        (json!({"stock": 1_000_000_001_i64, "reason": "x"}), "stock"),
        (json!({"stock": 1, "reason": ""}), "reason"),
        (json!({"stock": 1, "reason": "é".repeat(201)}), "reason"),
    ] {
        let problem =
            assert_problem(app.adjust(&admin, id, body).await, 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(
        app.adjust(&admin, id, json!({"stock": 9, "reason": "é".repeat(200)}))
            .await
            .status(),
        200
    );
    assert_problem(
        app.adjust(&admin, id, json!({"stock": 1})).await,
        422,
        "unprocessable-request",
    )
    .await;
    assert_problem(
        app.adjust(&admin, 999_999, json!({"stock": 1, "reason": "x"}))
            .await,
        404,
        "not-found",
    )
    .await;
    let forbidden = app
        .adjust(&alice.token, id, json!({"stock": 1, "reason": "x"}))
        .await;
    assert_problem(forbidden, 403, "forbidden").await;
    assert_eq!(app.stock(&admin, id).await["stock"], 9);
    app.assert_reconciled(&admin).await;
}

async fn the_audit_trail_records_every_change_in_order(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Boot", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let other = app.create_product(&admin, "Sock", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let admin_id = app.read(&admin, "/api/auth/me").await["id"]
        .as_u64()
        .unwrap();
    let purchase: Value = app
        .client
        .post(app.url("/api/purchases"))
        .bearer_auth(&alice.token)
        .header("X-Request-Id", "req-purchase-1")
        .json(&json!({"product_id": id, "quantity": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order: Value = app
        .order(&alice.token, &[(id, 1), (other, 1)], None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app.restock(&admin, id, 5, None).await.status(), 200);
    assert_eq!(
        app.adjust(&admin, id, json!({"stock": 10, "reason": "count"}))
            .await
            .status(),
        200
    );
    let trail = app.audit(&admin, id).await;
    let summary: Vec<(String, i64, u64, u64)> = trail
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["quantity"].as_i64().unwrap(),
                e["stock_after"].as_u64().unwrap(),
                e["actor"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("create".into(), 10, 10, admin_id),
            ("purchase".into(), -2, 8, alice.id),
            ("order".into(), -1, 7, alice.id),
            ("restock".into(), 5, 12, admin_id),
            ("adjust".into(), -2, 10, admin_id),
        ]
    );
    assert_eq!(
        trail[1]["request_id"], "req-purchase-1",
        "the request id is recorded"
    );
    assert_eq!(trail[1]["reference"], purchase["id"]);
    assert_eq!(trail[2]["reference"], order["id"]);
    assert_eq!(trail[4]["reason"], "count");
    assert!(trail[0]["fence"].is_null(), "no lock at creation");
    let fences: Vec<u64> = trail[1..]
        .iter()
        .map(|e| e["fence"].as_u64().unwrap())
        .collect();
    assert!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "fences increase: {fences:?}"
    );
    let ids: Vec<&str> = trail.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| !id.is_empty()));
    // Paging: limit and the `next` cursor, oldest first, nothing repeated.
    let first = app
        .read(&admin, &format!("/api/products/{id}/audit?limit=2"))
        .await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    assert_eq!(next, ids[1]);
    let rest = app
        .read(&admin, &format!("/api/products/{id}/audit?after={next}"))
        .await;
    let rest_ids: Vec<&str> = rest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest_ids, ids[2..]);
    assert!(rest["next"].is_null());
}

async fn audit_and_reconcile_are_for_admins(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Boot", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let path = format!("/api/products/{id}/audit");
    assert_problem(app.get(&alice.token, &path).await, 403, "forbidden").await;
    assert_problem(
        app.get(&alice.token, "/api/admin/reconcile").await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get(&admin, "/api/products/999999/audit").await,
        404,
        "not-found",
    )
    .await;
    for bad in [
        "limit=0",
        "limit=1001",
        "after=1",
        "after=a-1",
        "after=00000000000000000000-0",
    ] {
        assert_problem(
            app.get(&admin, &format!("{path}?{bad}")).await,
            422,
            "validation-error",
        )
        .await;
    }
    assert_eq!(
        app.get(&admin, &format!("{path}?after=0-0")).await.status(),
        200
    );
    let anonymous = app
        .client
        .get(app.url("/api/admin/reconcile"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
}

async fn reconcile_is_clean_after_every_kind_of_change(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let a = app.create_product(&admin, "A", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let b = app.create_product(&admin, "B", 250, 4).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    app.purchase(&alice.token, a, 2, None).await;
    app.order(&alice.token, &[(a, 1), (b, 4)], None).await;
    app.order(&alice.token, &[(a, 1), (b, 1)], None).await; // refused: b is sold out
    app.restock(&admin, b, 3, Some("r")).await;
    app.adjust(&admin, a, json!({"stock": 4, "reason": "count"}))
        .await;
    let report = app.reconcile(&admin).await;
    assert_eq!(
        report,
        json!({"ok": true, "products_checked": 2, "differences": [], "orders_recovered": 0})
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "lockstock_reconcile_differences 0"),
        "{metrics}"
    );
}

/// Redis stops answering while a restock is committed: the admin gets a 503 naming
/// the key as `operation_id` rather than a guess; retried once Redis is back, the
/// restock replays — the units were added exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restock_retried_after_a_lost_reply_counts_once() {
    let mut app = spawn_app_with(Mode::Redis, &[("REDIS_RESPONSE_TIMEOUT_MS", "300")]).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Frozen", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    // Loads the restock script (a fresh server would refuse the frozen call with
    // NOSCRIPT rather than run it).
    assert_eq!(
        app.restock(&admin, id, 1, Some("warm-up")).await.status(),
        200
    );
    app.redis_mut().pause();
    let lost = app.restock(&admin, id, 5, Some("delivery-7")).await;
    app.redis_mut().resume();
    let problem = assert_problem(lost, 503, "outcome-unknown").await;
    assert_eq!(problem["operation_id"], "delivery-7");
    let retry = app.restock(&admin, id, 5, Some("delivery-7")).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let level: Value = retry.json().await.unwrap();
    assert_eq!(
        (level["stock"].as_u64(), level["restocked"].as_u64()),
        (Some(16), Some(6))
    );
    assert_eq!(app.stock(&admin, id).await["stock"], 16, "restocked once");
    let restocks = app
        .audit(&admin, id)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "restock")
        .count();
    assert_eq!(restocks, 2);
    app.assert_reconciled(&admin).await;
}

/// `inventory-api reconcile` with the server's configuration: exit 0 while the books
/// agree; a stock value changed behind the service's back (HSET on a raw connection)
/// makes it print the difference and exit 1, and the endpoint and gauge say the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_catches_a_stock_changed_behind_the_services_back() {
    let app = spawn_app(Mode::Redis).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Tampered", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    assert_eq!(app.purchase(&alice.token, id, 3, None).await.status(), 201);
    let (status, output) = app.reconcile_cli().await;
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("reconcile: clean"), "{output}");

    let key = format!("{{product:{id}}}:data");
    app.redis()
        .unwrap()
        .command(
            &["HSET", &key, "stock", "99"],
            std::time::Duration::from_secs(2),
        )
        .unwrap();
    let (status, output) = app.reconcile_cli().await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!("product {id}: stock — expected 7, found 99")),
        "{output}"
    );
    assert!(output.contains("audit-replay"), "{output}");
    let report = app.reconcile(&admin).await;
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["differences"],
        json!([
            {"product_id": id, "what": "stock", "expected": 7, "found": 99},
            {"product_id": id, "what": "audit-replay", "expected": 7, "found": 99},
        ])
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "lockstock_reconcile_differences 2"),
        "{metrics}"
    );
}
