//! Orders: several products, every line or nothing — the happy path, refusals,
//! ownership, idempotency, and 500 concurrent orders over 10 products.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::{StreamExt, stream};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Mode, TestApp, TestUser, assert_problem, spawn_app, spawn_app_with};

all_modes!(
    an_order_buys_every_line,
    an_order_whose_last_line_is_short_leaves_every_product_untouched,
    invalid_orders_are_refused_and_change_nothing,
    others_orders_are_404_and_mine_are_newest_first,
    order_keys_replay_refuse_and_are_not_burnt_by_failures,
    simultaneous_twin_orders_order_once,
    five_hundred_concurrent_orders_over_ten_products_stay_exact,
);

async fn products(app: &TestApp, admin: &str, stocks: &[i64]) -> Vec<u64> {
    let mut ids = Vec::new();
    for (index, stock) in stocks.iter().enumerate() {
        let product = app
            .create_product(
                admin,
                &format!("Product {index}"),
                100 * (index as i64 + 1),
                *stock,
            )
            .await;
        ids.push(product["id"].as_u64().unwrap());
    }
    ids
}

async fn stocks(app: &TestApp, token: &str, ids: &[u64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for id in ids {
        let level = app.stock(token, *id).await;
        out.push((
            level["stock"].as_u64().unwrap(),
            level["sold"].as_u64().unwrap(),
        ));
    }
    out
}

async fn an_order_buys_every_line(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let p = products(&app, &admin, &[10, 10, 10]).await;
    let alice = app.user("alice").await;

    let response = app
        .order(&alice.token, &[(p[2], 1), (p[0], 2), (p[2], 3)], None)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get("idempotent-replayed").is_none());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/orders/{}", order["id"]));
    assert_eq!(order["user_id"], alice.id);
    assert_eq!(
        order["items"],
        json!([
            {"product_id": p[0], "quantity": 2, "unit_price": 100, "total_price": 200},
            {"product_id": p[2], "quantity": 4, "unit_price": 300, "total_price": 1200},
        ]),
        "items merged by product and sorted"
    );
    assert_eq!(order["total_price"], 1400);
    assert!(order["created_at"].is_string());
    assert_eq!(
        stocks(&app, &alice.token, &p).await,
        [(8, 2), (10, 0), (6, 4)]
    );
    let read: Value = app.get(&alice.token, &location).await.json().await.unwrap();
    assert_eq!(read, order);
    let anonymous = app
        .client
        .post(app.url("/api/orders"))
        .json(&json!({"items": [{"product_id": p[0], "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
    app.assert_reconciled(&admin).await;
}

async fn an_order_whose_last_line_is_short_leaves_every_product_untouched(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let p = products(&app, &admin, &[10, 10, 3, 1]).await;
    let alice = app.user("alice").await;
    let before: Vec<usize> = {
        let mut lengths = Vec::new();
        for id in &p {
            lengths.push(app.audit(&admin, *id).await.len());
        }
        lengths
    };
    let refused = app
        .order(
            &alice.token,
            &[(p[0], 5), (p[1], 5), (p[2], 4)],
            Some("short"),
        )
        .await;
    let problem = assert_problem(refused, 409, "insufficient-stock").await;
    assert_eq!(
        problem["lines"],
        json!([{"product_id": p[2], "requested": 4, "available": 3}])
    );
    // Several short lines: every one is listed.
    let refused = app
        .order(&alice.token, &[(p[3], 2), (p[0], 5), (p[2], 4)], None)
        .await;
    let problem = assert_problem(refused, 409, "insufficient-stock").await;
    assert_eq!(
        problem["lines"],
        json!([
            {"product_id": p[2], "requested": 4, "available": 3},
            {"product_id": p[3], "requested": 2, "available": 1},
        ])
    );
    assert_eq!(
        stocks(&app, &alice.token, &p).await,
        [(10, 0), (10, 0), (3, 0), (1, 0)],
        "nothing was bought"
    );
    for (id, length) in p.iter().zip(before) {
        assert_eq!(app.audit(&admin, *id).await.len(), length, "no audit entry");
    }
    let mine: Vec<Value> = app
        .read(&alice.token, "/api/orders/me")
        .await
        .as_array()
        .unwrap()
        .clone();
    assert!(mine.is_empty());
    app.assert_reconciled(&admin).await;
}

async fn invalid_orders_are_refused_and_change_nothing(mode: Mode) {
    let app = spawn_app_with(mode, &[("MAX_PURCHASE_QUANTITY", "5")]).await;
    let admin = app.admin_token().await;
    let p = products(&app, &admin, &[10]).await;
    let alice = app.user("alice").await;
    let post = |body: Value| {
        app.client
            .post(app.url("/api/orders"))
            .bearer_auth(&alice.token)
            .json(&body)
            .send()
    };
    for quantity in [0, -1, 6] {
        let problem = assert_problem(
            app.order(&alice.token, &[(p[0], quantity)], None).await,
            422,
            "validation-error",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "quantity");
    }
    let empty = assert_problem(
        post(json!({"items": []})).await.unwrap(),
        422,
        "validation-error",
    )
    .await;
    assert_eq!(empty["errors"][0]["field"], "items");
    let fifty_one: Vec<(u64, i64)> = (0..51).map(|_| (p[0], 1)).collect();
    assert_problem(
        app.order(&alice.token, &fifty_one, None).await,
        422,
        "validation-error",
    )
    .await;
    assert_problem(
        post(json!({"items": [{"product_id": p[0], "quantity": 1, "price": 1}]}))
            .await
            .unwrap(),
        422,
        "unprocessable-request",
    )
    .await;
    assert_problem(post(json!({})).await.unwrap(), 422, "unprocessable-request").await;
    assert_problem(
        app.order(&alice.token, &[(p[0], 1)], Some("k".repeat(256).as_str()))
            .await,
        422,
        "validation-error",
    )
    .await;
    let unknown = assert_problem(
        app.order(&alice.token, &[(p[0], 1), (999_999, 1)], None)
            .await,
        404,
        "not-found",
    )
    .await;
    assert!(
        unknown["detail"].as_str().unwrap().contains("999999"),
        "{unknown}"
    );
    // Fifty items of one product merge into one line of fifty × 1 units.
    let merged: Vec<(u64, i64)> = (0..50).map(|_| (p[0], 1)).collect();
    let problem = assert_problem(
        app.order(&alice.token, &merged, None).await,
        409,
        "insufficient-stock",
    )
    .await;
    assert_eq!(problem["lines"][0]["requested"], 50);
    assert_eq!(stocks(&app, &admin, &p).await, [(10, 0)]);
    app.assert_reconciled(&admin).await;
}

async fn others_orders_are_404_and_mine_are_newest_first(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let p = products(&app, &admin, &[100, 100]).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut mine = Vec::new();
    for quantity in 1..=4 {
        let order: Value = app
            .order(&alice.token, &[(p[0], quantity), (p[1], 1)], None)
            .await
            .json()
            .await
            .unwrap();
        mine.push(order["id"].as_u64().unwrap());
        assert_eq!(
            app.order(&bob.token, &[(p[1], 1)], None).await.status(),
            201
        );
    }
    mine.reverse();
    let listed = app.read(&alice.token, "/api/orders/me").await;
    let ids: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, mine);
    let page = app
        .read(&alice.token, "/api/orders/me?limit=2&offset=1")
        .await;
    let ids: Vec<u64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, mine[1..3]);
    let path = format!("/api/orders/{}", mine[0]);
    assert_eq!(app.get(&alice.token, &path).await.status(), 200);
    let hidden = assert_problem(app.get(&bob.token, &path).await, 404, "not-found").await;
    let missing = assert_problem(
        app.get(&bob.token, "/api/orders/9999").await,
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        hidden["detail"]
            .as_str()
            .unwrap()
            .replace(&mine[0].to_string(), "N"),
        missing["detail"].as_str().unwrap().replace("9999", "N"),
        "someone else's order looks like a missing one"
    );
    assert_eq!(
        app.get(&admin, &path).await.status(),
        200,
        "admins see every order"
    );
    assert_problem(
        app.get(&alice.token, &format!("/api/orders/{}", mine[0] + 1_000))
            .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.get(&alice.token, "/api/orders/me?limit=0").await,
        422,
        "validation-error",
    )
    .await;
    let anonymous = app
        .client
        .get(app.url("/api/orders/me"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
}

async fn order_keys_replay_refuse_and_are_not_burnt_by_failures(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let p = products(&app, &admin, &[10, 10, 1]).await;
    let alice = app.user("alice").await;
    let first = app
        .order(&alice.token, &[(p[0], 2), (p[1], 1)], Some("cart-1"))
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // The same body, items split and in another order: the same order.
    let again = app
        .order(
            &alice.token,
            &[(p[1], 1), (p[0], 1), (p[0], 1)],
            Some("cart-1"),
        )
        .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the stored first response");
    assert_problem(
        app.order(&alice.token, &[(p[0], 3)], Some("cart-1")).await,
        422,
        "idempotency-key-reused",
    )
    .await;
    // Purchases and orders share the key space.
    assert_eq!(
        app.purchase(&alice.token, p[0], 1, Some("bought"))
            .await
            .status(),
        201
    );
    assert_problem(
        app.order(&alice.token, &[(p[0], 1)], Some("bought")).await,
        422,
        "idempotency-key-reused",
    )
    .await;
    assert_problem(
        app.purchase(&alice.token, p[0], 2, Some("cart-1")).await,
        422,
        "idempotency-key-reused",
    )
    .await;
    // A failed order does not consume its key.
    assert_problem(
        app.order(&alice.token, &[(p[2], 2)], Some("cart-2")).await,
        409,
        "insufficient-stock",
    )
    .await;
    let retry = app.order(&alice.token, &[(p[2], 1)], Some("cart-2")).await;
    assert_eq!(retry.status(), 201);
    assert!(retry.headers().get("idempotent-replayed").is_none());
    // Keys are per user.
    let bob = app.user("bob").await;
    let bobs = app
        .order(&bob.token, &[(p[0], 2), (p[1], 1)], Some("cart-1"))
        .await;
    assert_eq!(bobs.status(), 201);
    assert!(bobs.headers().get("idempotent-replayed").is_none());
    assert_eq!(
        stocks(&app, &admin, &p).await,
        [(10 - 2 - 1 - 2, 5), (8, 2), (0, 1)]
    );
    app.assert_reconciled(&admin).await;
}

async fn simultaneous_twin_orders_order_once(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let p = products(&app, &admin, &[100, 100]).await;
    let alice = app.user("alice").await;
    let items = [(p[0], 1), (p[1], 2)];
    let twins = (0..10).map(|_| app.order(&alice.token, &items, Some("twin")));
    let responses = futures::future::join_all(twins).await;
    let mut ids = Vec::new();
    let mut replayed = 0;
    for response in responses {
        assert_eq!(response.status(), 201, "every twin gets the one order");
        replayed += usize::from(response.headers().get("idempotent-replayed").is_some());
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_u64().unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "one order: {ids:?}");
    assert_eq!(replayed, 9);
    assert_eq!(stocks(&app, &admin, &p).await, [(99, 1), (98, 2)]);
    app.assert_reconciled(&admin).await;
}

/// The answer an order finally gets, settled the way the API tells clients to: a 503
/// (lock timeout, unknown outcome) or a dropped connection is retried with the same
/// Idempotency-Key, which can never order twice.
async fn settle(app: &TestApp, user: &TestUser, items: &[(u64, i64)], key: &str) -> (u16, Value) {
    let mut last = String::new();
    for attempt in 0..10u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
        }
        let body: Vec<Value> = items
            .iter()
            .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
            .collect();
        let sent = app
            .client
            .post(app.url("/api/orders"))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "items": body }))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                last = error.to_string();
                continue;
            }
        };
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 503 {
            last = body.to_string();
            continue;
        }
        return (status, body);
    }
    panic!("order {key} never settled: {last}");
}

/// 500 orders at once from 50 buyers, each naming 2–5 of 10 products in a random
/// order with random quantities, more than the stock can serve: every order ends
/// whole (201 listing every line it asked for) or refused (409, nothing bought);
/// nothing deadlocks; each product's stock is its initial stock minus exactly the
/// units of the orders made; the trail has one `order` entry per line made and no
/// rollback; reconcile finds nothing.
async fn five_hundred_concurrent_orders_over_ten_products_stay_exact(mode: Mode) {
    const PRODUCTS: usize = 10;
    const BUYERS: usize = 50;
    const ORDERS_EACH: usize = 10;
    const STOCK: i64 = 150;
    let app = spawn_app_with(
        mode,
        &[
            ("LOCK_WAIT_TIMEOUT_MS", "30000"),
            ("LOCK_TTL_MS", "5000"),
            ("SHUTDOWN_GRACE_SECONDS", "40"),
        ],
    )
    .await;
    let admin = app.admin_token().await;
    let p = products(&app, &admin, &[STOCK; PRODUCTS]).await;
    let buyers: Vec<TestUser> = stream::iter(0..BUYERS)
        .map(|i| {
            let app = &app;
            async move { app.user(&format!("cart{i:03}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut rng = StdRng::seed_from_u64(0x0de5);
    let mut plans = Vec::new();
    for (b, buyer) in buyers.iter().enumerate() {
        for n in 0..ORDERS_EACH {
            let mut chosen: Vec<u64> = p.clone();
            for i in (1..chosen.len()).rev() {
                chosen.swap(i, rng.random_range(0..=i));
            }
            chosen.truncate(rng.random_range(2..=5));
            let items: Vec<(u64, i64)> = chosen
                .into_iter()
                .map(|product| (product, rng.random_range(1..=3)))
                .collect();
            plans.push((buyer, items, format!("cart-{b}-{n}")));
        }
    }
    let outcomes = tokio::time::timeout(
        Duration::from_secs(300),
        futures::future::join_all(
            plans
                .iter()
                .map(|(buyer, items, key)| settle(&app, buyer, items, key)),
        ),
    )
    .await
    .expect("the orders did not all finish: a deadlock?");

    let mut sold: BTreeMap<u64, u64> = BTreeMap::new();
    let mut lines_made: HashMap<u64, usize> = HashMap::new();
    let mut made_per_buyer: HashMap<u64, usize> = HashMap::new();
    let (mut made, mut refused) = (0, 0);
    for ((buyer, items, _), (status, body)) in plans.iter().zip(&outcomes) {
        let mut asked: Vec<(u64, i64)> = items.clone();
        asked.sort_unstable();
        match status {
            201 => {
                made += 1;
                *made_per_buyer.entry(buyer.id).or_default() += 1;
                let got: Vec<(u64, i64)> = body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        (
                            l["product_id"].as_u64().unwrap(),
                            l["quantity"].as_i64().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(got, asked, "an order was not whole: {body}");
                for (product, quantity) in got {
                    *sold.entry(product).or_default() += quantity as u64;
                    *lines_made.entry(product).or_default() += 1;
                }
            }
            409 => {
                refused += 1;
                let short = body["lines"].as_array().unwrap();
                assert!(!short.is_empty(), "{body}");
                for line in short {
                    assert!(
                        line["available"].as_u64().unwrap() < line["requested"].as_u64().unwrap()
                    );
                }
            }
            other => panic!("order ended with {other}: {body}"),
        }
    }
    assert_eq!(made + refused, BUYERS * ORDERS_EACH);
    assert!(
        made > 0 && refused > 0,
        "made {made}, refused {refused}: the test exercised too little"
    );
    for product in &p {
        let level = app.stock(&admin, *product).await;
        let sold_here = sold.get(product).copied().unwrap_or(0);
        assert_eq!(level["sold"], sold_here, "product {product}");
        assert_eq!(
            level["stock"],
            STOCK as u64 - sold_here,
            "product {product}"
        );
        let trail = app.audit(&admin, *product).await;
        let orders = trail.iter().filter(|e| e["kind"] == "order").count();
        assert_eq!(orders, lines_made.get(product).copied().unwrap_or(0));
        assert!(trail.iter().all(|e| e["kind"] != "order-rollback"));
    }
    for buyer in &buyers {
        let mine = app.read(&buyer.token, "/api/orders/me?limit=100").await;
        assert_eq!(
            mine.as_array().unwrap().len(),
            made_per_buyer.get(&buyer.id).copied().unwrap_or(0)
        );
    }
    app.assert_reconciled(&admin).await;
}
