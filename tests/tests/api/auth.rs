//! Registration, login, tokens and login throttling.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_PASSWORD, ADMIN_USERNAME, Mode, PASSWORD, TestApp, assert_problem, spawn_app,
    spawn_app_with,
};

all_modes!(
    register_creates_a_user,
    duplicate_username_is_409,
    invalid_registration_lists_every_field,
    password_length_counts_bytes,
    login_accepts_form_and_json,
    unknown_user_and_wrong_password_look_the_same,
    me_needs_a_valid_token,
    forged_tokens_are_rejected,
    failed_logins_are_throttled,
    concurrent_wrong_passwords_are_counted_before_bcrypt,
    admin_exists_at_start_up,
);

async fn register_creates_a_user(mode: Mode) {
    let app = spawn_app(mode).await;
    let response = app.register("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/api/auth/me");
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "user");
    assert!(user["id"].as_u64().unwrap() > 0);
    assert!(user["created_at"].is_string());
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let with_email = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "bob", "password": PASSWORD, "email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_email.status(), StatusCode::CREATED);
    let bob: Value = with_email.json().await.unwrap();
    assert_eq!(bob["email"], "bob@example.com");
}

async fn duplicate_username_is_409(mode: Mode) {
    let app = spawn_app(mode).await;
    assert_eq!(
        app.register("alice", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    assert_problem(
        app.register("alice", "another password").await,
        409,
        "username-taken",
    )
    .await;
    // Concurrent registrations of one new name: exactly one wins.
    let attempts = (0..10).map(|_| app.register("carol", PASSWORD));
    let statuses: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
}

async fn invalid_registration_lists_every_field(mode: Mode) {
    let app = spawn_app(mode).await;
    let response = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "ab", "password": "short", "email": "not-an-email"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 422, "validation-error").await;
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["username", "password", "email"]);

    for username in [
        "a".repeat(51),
        "al ice".into(),
        "alice!".into(),
        "ålice".into(),
    ] {
        let r = app.register(&username, PASSWORD).await;
        assert_problem(r, 422, "validation-error").await;
    }
    assert_eq!(app.register(&"a".repeat(50), PASSWORD).await.status(), 201);
    assert_eq!(app.register("abc", PASSWORD).await.status(), 201);

    // Unknown fields are rejected, not ignored.
    let response = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "dave", "password": PASSWORD, "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 422, "unprocessable-request").await;
}

async fn password_length_counts_bytes(mode: Mode) {
    let app = spawn_app(mode).await;
    assert_problem(app.register("u7", "1234567").await, 422, "validation-error").await;
    assert_eq!(app.register("u8a", "12345678").await.status(), 201);
    assert_eq!(app.register("u72", &"a".repeat(72)).await.status(), 201);
    assert_problem(
        app.register("u73", &"a".repeat(73)).await,
        422,
        "validation-error",
    )
    .await;
    // 36 × 'é' = 72 bytes: fine; 37 = 74 bytes: rejected, never truncated.
    assert_eq!(app.register("ue36", &"é".repeat(36)).await.status(), 201);
    assert_problem(
        app.register("ue37", &"é".repeat(37)).await,
        422,
        "validation-error",
    )
    .await;
    // The 72-byte password logs in; its 71-byte prefix does not (no truncation games).
    assert_eq!(app.login("u72", &"a".repeat(72)).await.status(), 200);
    assert_eq!(app.login("u72", &"a".repeat(71)).await.status(), 401);
}

async fn login_accepts_form_and_json(mode: Mode) {
    let app = spawn_app(mode).await;
    app.register("alice", PASSWORD).await;
    let form = app.login("alice", PASSWORD).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert_eq!(form.headers()["cache-control"], "no-store");
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);

    let json = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);

    let text = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "text/plain")
        .body("username=alice")
        .send()
        .await
        .unwrap();
    assert_problem(text, 415, "unsupported-media-type").await;
    let missing = app
        .client
        .post(app.url("/api/auth/login"))
        .form(&[("username", "alice")])
        .send()
        .await
        .unwrap();
    assert_problem(missing, 422, "unprocessable-request").await;
}

async fn unknown_user_and_wrong_password_look_the_same(mode: Mode) {
    let app = spawn_app(mode).await;
    app.register("alice", PASSWORD).await;
    let wrong = app.login("alice", "wrong password").await;
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    let wrong = assert_problem(wrong, 401, "invalid-credentials").await;
    let unknown = assert_problem(
        app.login("nobody", PASSWORD).await,
        401,
        "invalid-credentials",
    )
    .await;
    let invalid_name =
        assert_problem(app.login("x", PASSWORD).await, 401, "invalid-credentials").await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, invalid_name);
}

async fn me_needs_a_valid_token(mode: Mode) {
    let app = spawn_app(mode).await;
    let alice = app.user("alice").await;
    let me = app.get(&alice.token, "/api/auth/me").await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], alice.id);
    assert_eq!(me["username"], "alice");

    let none = app
        .client
        .get(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_problem(none, 401, "unauthenticated").await;
    let garbage = app.get("not.a.token", "/api/auth/me").await;
    assert_problem(garbage, 401, "unauthenticated").await;
    let basic = app
        .client
        .get(app.url("/api/auth/me"))
        .header("authorization", format!("Basic {}", alice.token))
        .send()
        .await
        .unwrap();
    assert_problem(basic, 401, "unauthenticated").await;
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn forged_tokens_are_rejected(mode: Mode) {
    let app = spawn_app(mode).await;
    let alice = app.user("alice").await;
    let parts: Vec<&str> = alice.token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    for claim in ["sub", "iat", "exp", "iss", "aud"] {
        assert!(claims.get(claim).is_some(), "token lacks {claim}");
    }
    claims["role"] = json!("admin");
    claims["sub"] = json!("1");

    // Tampered payload, original signature.
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_problem(
        app.get(&tampered, "/api/auth/me").await,
        401,
        "unauthenticated",
    )
    .await;
    // alg: none, with and without a signature.
    let none_header = b64(&json!({"alg": "none", "typ": "JWT"}));
    for forged in [
        format!("{none_header}.{}.", b64(&claims)),
        format!("{none_header}.{}", b64(&claims)),
        format!("{none_header}.{}.{}", b64(&claims), parts[2]),
    ] {
        assert_problem(
            app.get(&forged, "/api/auth/me").await,
            401,
            "unauthenticated",
        )
        .await;
    }
    // A token that says HS512 is refused even though the secret is the same.
    let hs512 = b64(&json!({"alg": "HS512", "typ": "JWT"}));
    let swapped = format!("{hs512}.{}.{}", parts[1], parts[2]);
    assert_problem(
        app.get(&swapped, "/api/auth/me").await,
        401,
        "unauthenticated",
    )
    .await;
    // An admin route with the forged admin claim.
    let create = app
        .client
        .post(app.url("/api/products"))
        .bearer_auth(&tampered)
        .json(&json!({"name": "x", "price": 1, "stock": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(create, 401, "unauthenticated").await;
}

async fn failed_logins_are_throttled(mode: Mode) {
    let app = spawn_app(mode).await;
    app.register("alice", PASSWORD).await;
    app.register("bob", PASSWORD).await;
    // Successes never count: many in a row pass.
    for _ in 0..60 {
        assert_eq!(app.login("bob", PASSWORD).await.status(), 200);
    }
    for _ in 0..5 {
        assert_problem(
            app.login("alice", "wrong password").await,
            401,
            "invalid-credentials",
        )
        .await;
    }
    let blocked = app.login("alice", PASSWORD).await;
    let retry_after: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    let body = assert_problem(blocked, 429, "rate-limited").await;
    assert!(body["retry_after"].as_u64().unwrap() > 0);
    // Another user from the same address is unaffected.
    assert_eq!(app.login("bob", PASSWORD).await.status(), 200);
}

async fn admin_exists_at_start_up(mode: Mode) {
    let app = spawn_app(mode).await;
    let token = app.token(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let me: Value = app.get(&token, "/api/auth/me").await.json().await.unwrap();
    assert_eq!(me["role"], "admin");
    assert!(
        !app.logs().contains(ADMIN_PASSWORD),
        "the admin password appeared in the logs"
    );
}

/// 50 wrong passwords for one user at once: each is counted when it is checked, before
/// its bcrypt verification, so exactly the 5 allowed are answered 401 and the other 45
/// 429 — however much the verifications overlap. (bcrypt cost 10, ~75 ms a verification
/// here, so that they do overlap: counting after the verification let all 50 through.)
async fn concurrent_wrong_passwords_are_counted_before_bcrypt(mode: Mode) {
    let app = spawn_app_with(mode, &[("BCRYPT_COST", "10")]).await;
    assert_eq!(app.register("alice", PASSWORD).await.status(), 201);
    assert_eq!(app.register("bob", PASSWORD).await.status(), 201);
    let wrong: Vec<String> = (0..50).map(|i| format!("wrong password {i}")).collect();
    let guesses = wrong.iter().map(|password| app.login("alice", password));
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((unauthorized, limited), (5, 45), "{statuses:?}");
    // The right password is refused too until the window passes...
    let blocked = app.login("alice", PASSWORD).await;
    assert!(blocked.headers().contains_key("retry-after"));
    assert_problem(blocked, 429, "rate-limited").await;
    // ...but only for alice: the address has used 5 of its 50.
    assert_eq!(app.login("bob", PASSWORD).await.status(), 200);
}

/// A login from `forwarded_for` (sent as `X-Forwarded-For`), with a wrong password.
async fn failed_login_via(app: &TestApp, username: &str, forwarded_for: Option<&str>) -> u16 {
    let mut request = app
        .client
        .post(app.url("/api/auth/login"))
        .form(&[("username", username), ("password", "wrong password")]);
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Behind a trusted proxy, each client address has its own budget, found as the rightmost
/// untrusted hop of X-Forwarded-For; what a client writes further left changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let limits = [
        ("LOGIN_FAILURES_PER_ADDRESS", "3"),
        ("LOGIN_FAILURES_PER_USERNAME", "100"),
    ];
    let mut env = limits.to_vec();
    env.push(("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8"));
    let app = spawn_app_with(Mode::Memory, &env).await;
    let client = Some("203.0.113.7");
    for i in 0..3 {
        assert_eq!(failed_login_via(&app, &format!("u{i}"), client).await, 401);
    }
    assert_eq!(failed_login_via(&app, "u3", client).await, 429);
    // A forged hop on the left, or a trusted proxy hop on the right, changes nothing.
    for forged in ["198.51.100.1, 203.0.113.7", "203.0.113.7, 10.1.2.3"] {
        assert_eq!(
            failed_login_via(&app, "u4", Some(forged)).await,
            429,
            "{forged}"
        );
    }
    // Another client behind the same proxy has its own budget, and so has the proxy.
    assert_eq!(failed_login_via(&app, "u5", Some("203.0.113.8")).await, 401);
    assert_eq!(failed_login_via(&app, "u6", None).await, 401);

    // Without TRUSTED_PROXIES the header is ignored: everybody is the socket peer.
    let app = spawn_app_with(Mode::Memory, &limits).await;
    for (i, forwarded) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            failed_login_via(&app, &format!("u{i}"), Some(forwarded)).await,
            401
        );
    }
    assert_eq!(failed_login_via(&app, "u9", Some("203.0.113.4")).await, 429);
}

/// Registrations cost a bcrypt hash each: counted per address when checked, so that
/// concurrent sign-ups cannot exceed the limit either. A name already taken costs
/// nothing and is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_throttled_per_address() {
    let app = spawn_app_with(
        Mode::Memory,
        &[
            ("REGISTRATIONS_PER_ADDRESS", "3"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let register_via = |name: String, forwarded: &'static str| {
        app.client
            .post(app.url("/api/auth/register"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
    };
    assert_eq!(
        register_via("first".into(), "203.0.113.7")
            .await
            .unwrap()
            .status(),
        201
    );
    assert_problem(
        register_via("first".into(), "203.0.113.7").await.unwrap(),
        409,
        "username-taken",
    )
    .await;
    let attempts = (0..10).map(|i| register_via(format!("user{i}"), "203.0.113.7"));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((created, limited), (2, 8), "{statuses:?}");
    let refused = register_via("late".into(), "203.0.113.7").await.unwrap();
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 3000, "{retry_after}");
    let body = assert_problem(refused, 429, "rate-limited").await;
    assert!(
        body["detail"].as_str().unwrap().contains("registrations"),
        "{body}"
    );
    // Another address is not affected.
    assert_eq!(
        register_via("other".into(), "203.0.113.8")
            .await
            .unwrap()
            .status(),
        201
    );
}
