//! The catalogue: creation, reading, listing, stock and restocks.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Mode, TestApp, assert_problem, spawn_app};

all_modes!(
    admin_creates_and_anyone_logged_in_reads,
    only_admins_write,
    duplicate_product_name_is_409,
    invalid_products_are_422,
    unknown_products_are_404,
    listing_pages_by_id,
    restock_adds_under_the_invariant,
    restock_past_the_stock_limit_is_409,
);

async fn post_product(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/products"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn admin_creates_and_anyone_logged_in_reads(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let response = post_product(
        &app,
        &admin,
        json!({"name": "Sneaker", "price": 12999, "stock": 100, "description": "limited"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/products/{}", created["id"]));
    assert_eq!(created["name"], "Sneaker");
    assert_eq!(created["price"], 12999);
    assert_eq!(created["stock"], 100);
    assert_eq!(created["description"], "limited");
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());

    let alice = app.user("alice").await;
    let read: Value = app.get(&alice.token, &location).await.json().await.unwrap();
    assert_eq!(read, created);
    let stock: Value = app
        .stock(&alice.token, created["id"].as_u64().unwrap())
        .await;
    assert_eq!(
        stock,
        json!({"product_id": created["id"], "stock": 100, "sold": 0, "initial_stock": 100, "restocked": 0, "adjusted": 0})
    );
    // Reading needs a token.
    let anonymous = app.client.get(app.url(&location)).send().await.unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
    let anonymous = app
        .client
        .get(app.url("/api/products"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
}

async fn only_admins_write(mode: Mode) {
    let app = spawn_app(mode).await;
    let alice = app.user("alice").await;
    let body = json!({"name": "Sneaker", "price": 1, "stock": 1});
    assert_problem(
        post_product(&app, &alice.token, body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    let anonymous = app
        .client
        .post(app.url("/api/products"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
    // 403 comes before body validation: a non-admin learns nothing about the schema.
    assert_problem(
        post_product(&app, &alice.token, json!({})).await,
        403,
        "forbidden",
    )
    .await;

    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "Widget", 100, 1).await;
    let restock = app
        .client
        .post(app.url(&format!("/api/products/{}/restock", product["id"])))
        .bearer_auth(&alice.token)
        .json(&json!({"quantity": 5}))
        .send()
        .await
        .unwrap();
    assert_problem(restock, 403, "forbidden").await;
}

async fn duplicate_product_name_is_409(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    app.create_product(&admin, "Sneaker", 100, 1).await;
    let again = post_product(
        &app,
        &admin,
        json!({"name": "Sneaker", "price": 5, "stock": 5}),
    )
    .await;
    assert_problem(again, 409, "product-name-taken").await;
}

async fn invalid_products_are_422(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let problem = assert_problem(
        post_product(&app, &admin, json!({"name": " ", "price": 0, "stock": -1})).await,
        422,
        "validation-error",
    )
    .await;
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "price", "stock"]);
    for body in [
        json!({"name": "a", "price": -5, "stock": 1}),
        json!({"name": "a", "price": 1, "stock": 1_000_000_001}),
        json!({"name": "a".repeat(201), "price": 1, "stock": 1}),
    ] {
        assert_problem(
            post_product(&app, &admin, body).await,
            422,
            "validation-error",
        )
        .await;
    }
    for body in [
        json!({"name": "a", "price": 1.5, "stock": 1}),
        json!({"name": "a", "price": "1", "stock": 1}),
        json!({"name": "a", "price": 1e30, "stock": 1}),
        json!({"name": "a", "price": 1, "stock": 1, "sold": 0}),
        json!({"name": "a", "price": 1}),
    ] {
        assert_problem(
            post_product(&app, &admin, body).await,
            422,
            "unprocessable-request",
        )
        .await;
    }
    // Integers beyond i64 never become a 500.
    let huge = app
        .client
        .post(app.url("/api/products"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"name":"a","price":99999999999999999999999999,"stock":1}"#)
        .send()
        .await
        .unwrap();
    assert_problem(huge, 422, "unprocessable-request").await;
    let list: Value = app.get(&admin, "/api/products").await.json().await.unwrap();
    assert_eq!(list, json!([]), "nothing was created");
}

async fn unknown_products_are_404(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    for path in [
        "/api/products/999",
        "/api/products/999/stock",
        "/api/products/abc",
        "/api/products/-1",
        "/api/products/99999999999999999999999",
    ] {
        assert_problem(app.get(&admin, path).await, 404, "not-found").await;
    }
    let restock = app
        .client
        .post(app.url("/api/products/999/restock"))
        .bearer_auth(&admin)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(restock, 404, "not-found").await;
}

async fn listing_pages_by_id(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_product(&admin, &format!("p{i}"), 100, i).await["id"]
                .as_u64()
                .unwrap(),
        );
    }
    let all: Vec<Value> = app.get(&admin, "/api/products").await.json().await.unwrap();
    let listed: Vec<u64> = all.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(listed, ids);
    let page: Vec<Value> = app
        .get(&admin, "/api/products?limit=2&offset=1")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<u64> = page.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(listed, ids[1..3]);
    for query in [
        "limit=0",
        "limit=101",
        "offset=-1",
        "limit=abc",
        "limit=1e3",
    ] {
        let r = app.get(&admin, &format!("/api/products?{query}")).await;
        assert_eq!(r.status(), 422, "{query}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
}

async fn restock_adds_under_the_invariant(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let product = app.create_product(&admin, "Widget", 100, 10).await;
    let id = product["id"].as_u64().unwrap();
    let alice = app.user("alice").await;
    assert_eq!(app.purchase(&alice.token, id, 4, None).await.status(), 201);
    let restock = |quantity: Value| {
        app.client
            .post(app.url(&format!("/api/products/{id}/restock")))
            .bearer_auth(&admin)
            .json(&json!({ "quantity": quantity }))
            .send()
    };
    let response = restock(json!(5)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let level: Value = response.json().await.unwrap();
    assert_eq!(
        level,
        json!({"product_id": id, "stock": 11, "sold": 4, "initial_stock": 10, "restocked": 5, "adjusted": 0})
    );
    for bad in [json!(0), json!(-3), json!(1_000_000_001)] {
        assert_problem(restock(bad).await.unwrap(), 422, "validation-error").await;
    }
    assert_problem(
        restock(json!("5")).await.unwrap(),
        422,
        "unprocessable-request",
    )
    .await;
    assert_eq!(app.stock(&admin, id).await["stock"], 11);
    let product: Value = app
        .get(&admin, &format!("/api/products/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(product["stock"], 11);
}

/// The stock limit depends on the stock, not on the request: a restock past it is a
/// conflict (409, nothing added), the same body being fine on another product.
async fn restock_past_the_stock_limit_is_409(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = app.admin_token().await;
    let full = app.create_product(&admin, "Full", 100, 1_000_000_000).await["id"]
        .as_u64()
        .unwrap();
    let empty = app.create_product(&admin, "Empty", 100, 0).await["id"]
        .as_u64()
        .unwrap();
    let restock = |id: u64| {
        app.client
            .post(app.url(&format!("/api/products/{id}/restock")))
            .bearer_auth(&admin)
            .json(&json!({"quantity": 1}))
            .send()
    };
    let body = assert_problem(restock(full).await.unwrap(), 409, "stock-limit-exceeded").await;
    assert!(
        body["detail"].as_str().unwrap().contains("1000000000"),
        "{body}"
    );
    assert_eq!(app.stock(&admin, full).await["stock"], 1_000_000_000);
    assert_eq!(restock(empty).await.unwrap().status(), StatusCode::OK);
}
