//! Buying: the happy path, every failure, ownership and idempotency.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Mode, assert_problem, spawn_app, spawn_app_with};

all_modes!(
    purchase_decrements_and_records,
    insufficient_stock_is_409_with_available,
    unknown_product_is_404,
    quantity_outside_bounds_is_422,
    others_purchases_are_404,
    my_purchases_are_newest_first,
    same_key_same_body_replays,
    same_key_different_body_is_422,
    simultaneous_twins_buy_once,
    twins_of_the_last_unit_all_get_it,
    disconnected_buyers_buy_once_or_not_at_all,
    failed_purchase_does_not_burn_the_key,
    invalid_idempotency_key_is_422,
);

async fn purchase_decrements_and_records(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "Sneaker", 1999, 10).await;
    let id = product["id"].as_u64().unwrap();
    let alice = app.user("alice").await;

    let response = app.purchase(&alice.token, id, 3, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get("idempotent-replayed").is_none());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/purchases/{}", receipt["id"]));
    assert_eq!(receipt["user_id"], alice.id);
    assert_eq!(receipt["product_id"], id);
    assert_eq!(receipt["quantity"], 3);
    assert_eq!(receipt["total_price"], 3 * 1999);
    assert_eq!(receipt["remaining_stock"], 7);
    assert!(receipt["purchased_at"].is_string());

    let stock = app.stock(&alice.token, id).await;
    assert_eq!(
        (stock["stock"].as_u64(), stock["sold"].as_u64()),
        (Some(7), Some(3))
    );
    let read: Value = app.get(&alice.token, &location).await.json().await.unwrap();
    assert_eq!(read["id"], receipt["id"]);
    assert_eq!(read["quantity"], 3);
    assert_eq!(read["total_price"], 3 * 1999);

    let anonymous = app
        .client
        .post(app.url("/api/purchases"))
        .json(&serde_json::json!({"product_id": id, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
}

async fn insufficient_stock_is_409_with_available(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 2).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let problem = assert_problem(
        app.purchase(&alice.token, id, 3, None).await,
        409,
        "insufficient-stock",
    )
    .await;
    assert_eq!(problem["available"], 2);
    assert_eq!(problem["requested"], 3);
    assert_eq!(app.purchase(&alice.token, id, 2, None).await.status(), 201);
    let problem = assert_problem(
        app.purchase(&alice.token, id, 1, None).await,
        409,
        "insufficient-stock",
    )
    .await;
    assert_eq!(problem["available"], 0);
    assert_eq!(app.stock(&admin, id).await["sold"], 2);
}

async fn unknown_product_is_404(mode: Mode) {
    let app = spawn_app(mode).await;
    let alice = app.user("alice").await;
    assert_problem(
        app.purchase(&alice.token, 404, 1, None).await,
        404,
        "not-found",
    )
    .await;
}

async fn quantity_outside_bounds_is_422(mode: Mode) {
    let app = spawn_app_with(mode, &[("MAX_PURCHASE_QUANTITY", "5")]).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 100).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    for quantity in [0, -1, 6, i64::MAX] {
        let problem = assert_problem(
            app.purchase(&alice.token, id, quantity, None).await,
            422,
            "validation-error",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "quantity");
    }
    assert_eq!(app.purchase(&alice.token, id, 5, None).await.status(), 201);
    let negative_product = app
        .client
        .post(app.url("/api/purchases"))
        .bearer_auth(&alice.token)
        .json(&serde_json::json!({"product_id": -1, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(negative_product, 422, "unprocessable-request").await;
    assert_eq!(app.stock(&admin, id).await["stock"], 95);
}

async fn others_purchases_are_404(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let receipt: Value = app
        .purchase(&alice.token, id, 1, None)
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/purchases/{}", receipt["id"]);
    assert_eq!(app.get(&alice.token, &path).await.status(), 200);
    let hidden = assert_problem(app.get(&bob.token, &path).await, 404, "not-found").await;
    let missing = assert_problem(
        app.get(&bob.token, "/api/purchases/9999").await,
        404,
        "not-found",
    )
    .await;
    // Someone else's purchase and a missing one are indistinguishable (apart from the id).
    assert_eq!(
        hidden["detail"]
            .as_str()
            .unwrap()
            .replace(&receipt["id"].to_string(), "N"),
        missing["detail"].as_str().unwrap().replace("9999", "N")
    );
    assert_eq!(
        app.get(&admin, &path).await.status(),
        200,
        "admins see every purchase"
    );
    let bobs: Vec<Value> = app
        .get(&bob.token, "/api/purchases/me")
        .await
        .json()
        .await
        .unwrap();
    assert!(bobs.is_empty());
}

async fn my_purchases_are_newest_first(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 100).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut mine = Vec::new();
    for quantity in 1..=4 {
        let receipt: Value = app
            .purchase(&alice.token, id, quantity, None)
            .await
            .json()
            .await
            .unwrap();
        mine.push(receipt["id"].as_u64().unwrap());
        app.purchase(&bob.token, id, 1, None).await;
    }
    mine.reverse();
    let listed: Vec<Value> = app
        .get(&alice.token, "/api/purchases/me")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = listed.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, mine);
    let page: Vec<Value> = app
        .get(&alice.token, "/api/purchases/me?limit=2&offset=1")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = page.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, mine[1..3]);
    let anonymous = app
        .client
        .get(app.url("/api/purchases/me"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
}

async fn same_key_same_body_replays(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let first = app.purchase(&alice.token, id, 2, Some("order-1")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = app.purchase(&alice.token, id, 2, Some("order-1")).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second, "the stored first response");
    assert_eq!(app.stock(&admin, id).await["stock"], 8, "bought once");
    let listed: Vec<Value> = app
        .get(&alice.token, "/api/purchases/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    // Keys are scoped per user.
    let bob = app.user("bob").await;
    let bobs = app.purchase(&bob.token, id, 2, Some("order-1")).await;
    assert_eq!(bobs.status(), 201);
    assert!(bobs.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.stock(&admin, id).await["stock"], 6);
}

async fn same_key_different_body_is_422(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let other = app.create_product(&admin, "Boot", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    assert_eq!(
        app.purchase(&alice.token, id, 1, Some("k")).await.status(),
        201
    );
    assert_problem(
        app.purchase(&alice.token, id, 2, Some("k")).await,
        422,
        "idempotency-key-reused",
    )
    .await;
    assert_problem(
        app.purchase(&alice.token, other, 1, Some("k")).await,
        422,
        "idempotency-key-reused",
    )
    .await;
    assert_eq!(app.stock(&admin, id).await["stock"], 9);
    assert_eq!(app.stock(&admin, other).await["stock"], 10);
}

async fn simultaneous_twins_buy_once(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 100).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let twins = (0..20).map(|_| app.purchase(&alice.token, id, 1, Some("twin")));
    let responses = futures::future::join_all(twins).await;
    let mut ids = Vec::new();
    let mut replayed = 0;
    for response in responses {
        assert_eq!(response.status(), 201, "every twin gets the one purchase");
        if response.headers().get("idempotent-replayed").is_some() {
            replayed += 1;
        }
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_u64().unwrap());
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "one purchase: {ids:?}");
    assert_eq!(replayed, 19, "all but the first are replays");
    assert_eq!(app.stock(&admin, id).await["stock"], 99);
    let listed: Vec<Value> = app
        .get(&alice.token, "/api/purchases/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

async fn failed_purchase_does_not_burn_the_key(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 1).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    assert_problem(
        app.purchase(&alice.token, id, 2, Some("k")).await,
        409,
        "insufficient-stock",
    )
    .await;
    let retry = app.purchase(&alice.token, id, 1, Some("k")).await;
    assert_eq!(retry.status(), 201);
    assert!(retry.headers().get("idempotent-replayed").is_none());
}

async fn invalid_idempotency_key_is_422(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Sneaker", 100, 5).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let long = "k".repeat(256);
    let problem = assert_problem(
        app.purchase(&alice.token, id, 1, Some(&long)).await,
        422,
        "validation-error",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_problem(
        app.purchase(&alice.token, id, 1, Some("")).await,
        422,
        "validation-error",
    )
    .await;
    assert_eq!(
        app.purchase(&alice.token, id, 1, Some(&"k".repeat(255)))
            .await
            .status(),
        201
    );
    assert_eq!(app.stock(&admin, id).await["stock"], 4);
}

/// Ten twins race for the last unit: the first buys it, and every other one —
/// whether it arrived in the same batch or waited behind it — replays that
/// purchase rather than hearing "sold out".
async fn twins_of_the_last_unit_all_get_it(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Last", 100, 1).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let twins = (0..10).map(|_| app.purchase(&alice.token, id, 1, Some("last-one")));
    let rival = app.purchase(&bob.token, id, 1, None);
    let (responses, rival) = futures::join!(futures::future::join_all(twins), rival);
    let mut ids = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 201, "a twin was refused");
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_u64().unwrap());
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "one purchase: {ids:?}");
    assert_problem(rival, 409, "insufficient-stock").await;
    assert_eq!(app.stock(&admin, id).await["stock"], 0);
}

/// Fifty buyers hang up at random moments — before the server read the
/// request, while it was queued, while its batch ran. Each then retries with
/// its key: every retry is a 201, and each key bought exactly once (either the
/// first attempt was applied and the retry replays it, or it was not and the
/// retry buys) — never half, never twice.
async fn disconnected_buyers_buy_once_or_not_at_all(mode: Mode) {
    const BUYERS: u64 = 50;
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Flaky", 100, 1_000).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    let hang_ups = (0..BUYERS).map(|n| {
        app.client
            .post(app.url("/api/purchases"))
            .bearer_auth(&alice.token)
            .header("Idempotency-Key", format!("flaky-{n}"))
            .json(&serde_json::json!({ "product_id": id, "quantity": 1 }))
            .timeout(std::time::Duration::from_micros(100 * n))
            .send()
    });
    let first_tries = futures::future::join_all(hang_ups).await;
    assert!(
        first_tries.iter().any(Result::is_err),
        "no buyer hung up; the test exercised nothing"
    );
    let mut ids = Vec::new();
    for n in 0..BUYERS {
        let key = format!("flaky-{n}");
        let retry = app.purchase(&alice.token, id, 1, Some(&key)).await;
        assert_eq!(retry.status(), 201, "{}", retry.text().await.unwrap());
        let body: Value = retry.json().await.unwrap();
        ids.push(body["id"].as_u64().unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, BUYERS, "two keys share a purchase");
    let level = app.stock(&admin, id).await;
    assert_eq!(level["sold"], BUYERS, "a key bought twice or not at all");
    let listed: Vec<Value> = app
        .get(&alice.token, "/api/purchases/me?limit=100")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len() as u64, BUYERS);
    app.assert_reconciled(&admin).await;
}

/// Redis freezes while a purchase without a key is committed: the buyer gets a
/// 503 naming an `operation_id` instead of a guess; retrying with it as the
/// Idempotency-Key, once Redis is back, replays the purchase that was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_outcome_names_an_operation_id_that_replays_it() {
    let mut app = spawn_app_with(Mode::Redis, &[("REDIS_RESPONSE_TIMEOUT_MS", "300")]).await;
    let admin = app.admin_token().await;
    let id = app.create_product(&admin, "Frozen", 100, 10).await["id"]
        .as_u64()
        .unwrap();
    let alice = app.user("alice").await;
    // Loads the purchase script (a fresh server would refuse the frozen call
    // with NOSCRIPT rather than run it).
    assert_eq!(app.purchase(&alice.token, id, 1, None).await.status(), 201);
    app.redis_mut().pause();
    let lost = app.purchase(&alice.token, id, 2, None).await;
    app.redis_mut().resume();
    assert_eq!(lost.headers()["retry-after"], "1");
    let problem = assert_problem(lost, 503, "outcome-unknown").await;
    let operation_id = problem["operation_id"].as_str().unwrap().to_owned();
    assert!(
        problem["detail"].as_str().unwrap().contains(&operation_id),
        "{problem}"
    );
    let retry = app.purchase(&alice.token, id, 2, Some(&operation_id)).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let stock = app.stock(&admin, id).await;
    assert_eq!(
        (stock["stock"].as_u64(), stock["sold"].as_u64()),
        (Some(7), Some(3))
    );
    app.assert_reconciled(&admin).await;
}
