//! The headline: 1,000 logged-in buyers, 100 units, all at once.

use std::collections::HashSet;

use futures::{StreamExt, stream};
use rand::RngExt;
use serde_json::Value;

use crate::helpers::{Mode, TestApp, TestUser, spawn_app_with};

all_modes!(
    exactly_the_stock_is_sold_to_a_thousand_buyers,
    random_quantities_sum_to_what_left
);

const BUYERS: usize = 1000;
const STOCK: i64 = 100;

async fn app(mode: Mode) -> TestApp {
    // A generous lock wait: this test is about correctness under contention, not timeouts.
    // Wait + lease must fit in the shutdown grace, hence the longer grace.
    spawn_app_with(
        mode,
        &[
            ("LOCK_WAIT_TIMEOUT_MS", "30000"),
            ("LOCK_TTL_MS", "5000"),
            ("SHUTDOWN_GRACE_SECONDS", "40"),
        ],
    )
    .await
}

/// Registers and logs in `n` users, a bounded number at a time (bcrypt runs for each).
pub(crate) async fn buyers(app: &TestApp, n: usize) -> Vec<TestUser> {
    let users: Vec<TestUser> = stream::iter(0..n)
        .map(|i| app.user_named(format!("buyer{i:04}")))
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(users.len(), n);
    users
}

impl TestApp {
    async fn user_named(&self, name: String) -> TestUser {
        self.user(&name).await
    }

    /// One buyer's order, settled the way the API tells clients to: a 503 (lock timeout,
    /// unknown outcome) or a dropped connection is retried with the same Idempotency-Key,
    /// which can never buy twice. Returns the final status and body.
    pub(crate) async fn settle(
        &self,
        user: &TestUser,
        product: u64,
        quantity: i64,
    ) -> (u16, Value) {
        let key = format!("bf-{}", user.id);
        let mut last = String::new();
        for attempt in 0..10u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt.min(5))).await;
            }
            let request = self
                .client
                .post(self.url("/api/purchases"))
                .bearer_auth(&user.token)
                .header("Idempotency-Key", &key)
                .json(&serde_json::json!({ "product_id": product, "quantity": quantity }));
            let response = match request.send().await {
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
        panic!("order of {} never settled: {last}", user.username);
    }
}

async fn exactly_the_stock_is_sold_to_a_thousand_buyers(mode: Mode) {
    let app = app(mode).await;
    let admin = app.admin_token().await;
    let id = app
        .create_product(&admin, "Black Friday TV", 49_999, STOCK)
        .await["id"]
        .as_u64()
        .unwrap();
    let users = buyers(&app, BUYERS).await;

    // Every request is built first, then all are sent at once.
    let requests = users.iter().map(|u| app.settle(u, id, 1));
    let outcomes = futures::future::join_all(requests).await;
    let mut created = Vec::new();
    let mut sold_out = 0;
    for (status, body) in outcomes {
        match status {
            201 => created.push(body),
            409 => {
                assert_eq!(
                    body["type"],
                    "https://lockstock.dev/problems/insufficient-stock"
                );
                assert_eq!(body["available"], 0);
                sold_out += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 100);
    assert_eq!(sold_out, 900);

    let stock = app.read(&admin, &format!("/api/products/{id}/stock")).await;
    assert_eq!(stock["stock"], 0);
    assert_eq!(stock["sold"], 100);
    let ids: HashSet<u64> = created.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 100, "100 distinct purchase records");
    let mut remaining: Vec<u64> = created
        .iter()
        .map(|r| r["remaining_stock"].as_u64().unwrap())
        .collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..100).collect::<Vec<_>>(),
        "each unit sold once"
    );

    // Every buyer's own list agrees: the 100 winners have one purchase each, nobody else any.
    let winners: HashSet<u64> = created
        .iter()
        .map(|r| r["user_id"].as_u64().unwrap())
        .collect();
    assert_eq!(winners.len(), 100);
    let records: usize = stream::iter(users.iter())
        .map(|u| async {
            let list = app.read(&u.token, "/api/purchases/me").await;
            let list = list.as_array().unwrap();
            assert_eq!(
                list.len(),
                usize::from(winners.contains(&u.id)),
                "{}",
                u.username
            );
            list.len()
        })
        .buffer_unordered(32)
        .fold(0, |acc, n| async move { acc + n })
        .await;
    assert_eq!(records, 100);
    let trail = app.audit(&admin, id).await;
    assert_eq!(
        trail.iter().filter(|e| e["kind"] == "purchase").count(),
        100
    );
    app.assert_reconciled(&admin).await;
}

async fn random_quantities_sum_to_what_left(mode: Mode) {
    let app = app(mode).await;
    let admin = app.admin_token().await;
    let id = app
        .create_product(&admin, "Black Friday Console", 29_999, STOCK)
        .await["id"]
        .as_u64()
        .unwrap();
    let users = buyers(&app, BUYERS).await;
    let quantities: Vec<i64> = {
        let mut rng = rand::rng();
        users.iter().map(|_| rng.random_range(1..=5)).collect()
    };
    let requests = users
        .iter()
        .zip(&quantities)
        .map(|(u, q)| app.settle(u, id, *q));
    let outcomes = futures::future::join_all(requests).await;
    let mut accepted = 0u64;
    let mut purchases = HashSet::new();
    for ((status, body), quantity) in outcomes.into_iter().zip(&quantities) {
        match status {
            201 => {
                assert_eq!(body["quantity"], *quantity);
                accepted += body["quantity"].as_u64().unwrap();
                assert!(
                    purchases.insert(body["id"].as_u64().unwrap()),
                    "one record per buyer"
                );
            }
            409 => {
                assert_eq!(
                    body["type"],
                    "https://lockstock.dev/problems/insufficient-stock"
                );
                assert!(body["available"].as_i64().unwrap() < *quantity);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let stock = app.read(&admin, &format!("/api/products/{id}/stock")).await;
    assert_eq!(stock["sold"], accepted);
    assert_eq!(stock["stock"].as_u64().unwrap() + accepted, STOCK as u64);
    // 1,000 buyers asking 1–5 units each drain 100 units to below the smallest refused ask.
    assert!(stock["stock"].as_u64().unwrap() < 5);
    assert!(purchases.len() >= 20);
    app.assert_reconciled(&admin).await;
}
