//! The one harness: starts the real `inventory-api` binary and talks HTTP to it.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

use lockstock_test_support::{RedisNodes, RedisServer};
use reqwest::{Client, Response, StatusCode, header};
use serde_json::{Value, json};

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No REDIS_URL: in-memory development mode.
    Memory,
    /// A fresh redis-server per test.
    Redis,
    /// Redlock: five fresh lock nodes (AOF, `appendfsync always`, declared so with
    /// `REDLOCK_FSYNC_ALWAYS=true`) and a fresh data node per test.
    Redlock,
}

/// Lock nodes of a Redlock-mode app.
pub(crate) const LOCK_NODES: usize = 5;

/// How the lock nodes of a Redlock-mode app run.
#[derive(Debug, Clone, Default)]
pub(crate) struct RedlockSetup {
    /// Without AOF and not declared fsync-always: every (re)started node sits out
    /// `LOCK_TTL_MS` before it counts (start-up included).
    pub(crate) volatile: bool,
    /// Nodes killed before the server starts.
    pub(crate) down_at_start: Vec<usize>,
}

/// The backing servers of an app, killed with it.
enum Backend {
    Memory,
    Redis(RedisServer),
    Redlock {
        data: RedisServer,
        nodes: Mutex<RedisNodes>,
        /// Nodes without AOF, not declared fsync-always.
        volatile: bool,
    },
}

pub(crate) const ADMIN_USERNAME: &str = "admin";
pub(crate) const ADMIN_PASSWORD: &str = "e2e-admin-password";
pub(crate) const JWT_SECRET: &str = "e2e-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub(crate) const PASSWORD: &str = "correct horse battery";

const START_DEADLINE: Duration = Duration::from_secs(30);
/// Tries of a set-up request (registration, login) before the test gives up.
const SETUP_ATTEMPTS: u32 = 8;

/// Exponential pause before retry `attempt` (none before the first try).
async fn backoff(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
    }
}

/// Builds the server binary once per test run (a no-op when it is fresh) and returns its
/// path. `cargo test` releases the build lock before running tests, so this nested build
/// does not deadlock; it guarantees the tests never run a stale binary.
fn server_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "inventory-api",
                "--bin",
                "inventory-api",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .expect("running cargo build -p inventory-api");
        assert!(status.success(), "cargo build -p inventory-api failed");
        // The test executable is target/<profile>/deps/api-<hash>; the server is in target/<profile>.
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target dir");
        let binary = dir.join(format!("inventory-api{}", std::env::consts::EXE_SUFFIX));
        assert!(binary.exists(), "no server binary at {}", binary.display());
        binary
    })
}

/// A running server (killed on drop) and a client for it.
pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) client: Client,
    server: Child,
    logs: Arc<Mutex<Vec<String>>>,
    backend: Backend,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub(crate) struct TestUser {
    pub(crate) id: u64,
    pub(crate) username: String,
    pub(crate) token: String,
}

pub(crate) async fn spawn_app(mode: Mode) -> TestApp {
    spawn_app_with(mode, &[]).await
}

/// Starts the server with extra environment variables (which override the defaults).
pub(crate) async fn spawn_app_with(mode: Mode, extra_env: &[(&str, &str)]) -> TestApp {
    let backend = match mode {
        Mode::Memory => Backend::Memory,
        Mode::Redis => Backend::Redis(
            tokio::task::spawn_blocking(RedisServer::start)
                .await
                .unwrap(),
        ),
        Mode::Redlock => return spawn_redlock_app(RedlockSetup::default(), extra_env).await,
    };
    spawn_on(backend, extra_env).await
}

/// Starts a Redlock-mode server over lock nodes set up as `setup` says, and returns once
/// `/ready` answers 200 (a quorum of lock nodes counts).
pub(crate) async fn spawn_redlock_app(setup: RedlockSetup, extra_env: &[(&str, &str)]) -> TestApp {
    let volatile = setup.volatile;
    let (data, nodes) = tokio::task::spawn_blocking(move || {
        let args: &[&str] = if volatile {
            &[]
        } else {
            &["--appendonly", "yes", "--appendfsync", "always"]
        };
        let data = std::thread::spawn(RedisServer::start);
        let mut nodes = RedisNodes::start_with(LOCK_NODES, args);
        for &index in &setup.down_at_start {
            nodes[index].kill();
        }
        (data.join().unwrap(), nodes)
    })
    .await
    .unwrap();
    let app = spawn_on(
        Backend::Redlock {
            data,
            nodes: Mutex::new(nodes),
            volatile,
        },
        extra_env,
    )
    .await;
    app.wait_for_ready(|status, _| status == StatusCode::OK)
        .await;
    app
}

async fn spawn_on(backend: Backend, extra_env: &[(&str, &str)]) -> TestApp {
    let binary = server_binary();
    let mut command = Command::new(binary);
    // A clean environment, and a working directory without a `.env`.
    command
        .env_clear()
        .current_dir(std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("BCRYPT_COST", "4")
        .env("JWT_SECRET", JWT_SECRET)
        .env("ADMIN_USERNAME", ADMIN_USERNAME)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("LOG_FORMAT", "json")
        // Every test client is 127.0.0.1, and some register a thousand buyers; the
        // registration throttle has its own tests.
        .env("REGISTRATIONS_PER_ADDRESS", "1000000")
        // SIGTERM closes the listener at once; the drain window has its own test.
        .env("READY_DRAIN_MS", "0")
        .env(
            "RUST_LOG",
            if std::env::var_os("TEST_LOG").is_some() {
                "info"
            } else {
                "warn"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &backend {
        Backend::Memory => {}
        Backend::Redis(redis) => {
            command.env("REDIS_URL", redis.url());
        }
        Backend::Redlock {
            data,
            nodes,
            volatile,
        } => {
            command
                .env("REDIS_URL", data.url())
                .env("LOCK_MODE", "redlock")
                .env("REDLOCK_NODES", nodes.lock().unwrap().urls().join(","))
                .env("REDLOCK_FSYNC_ALWAYS", (!volatile).to_string())
                // The nodes fsync every write on a disk shared with the whole test
                // run: a 50 ms node timeout (the default at a 5 s lease) turns one
                // slow fsync into a lost quorum and a 503. Tests may override it.
                .env("REDLOCK_NODE_TIMEOUT_MS", "500");
        }
    }
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let mut server = command.spawn().expect("starting inventory-api");

    // Drain both pipes for the whole life of the server (a full pipe would block it), keep
    // the lines for failure messages and report the `listening on` line.
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let echo = std::env::var_os("TEST_LOG").is_some();
    let stdout = server.stdout.take().expect("stdout");
    let stderr = server.stderr.take().expect("stderr");
    for (pipe, tx) in [
        (Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)),
        (Box::new(stderr), None),
    ] {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[server] {line}");
                }
                if let (Some(tx), Some(addr)) = (&tx, line.strip_prefix("listening on ")) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                logs.lock().unwrap().push(line);
            }
        });
    }

    let dump = |logs: &Arc<Mutex<Vec<String>>>| logs.lock().unwrap().join("\n");
    let addr = match rx.recv_timeout(START_DEADLINE) {
        Ok(addr) => addr,
        Err(_) => {
            let status = server.try_wait().ok().flatten();
            let _ = server.kill();
            let _ = server.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "server did not report its address (exit: {status:?}); output:\n{}",
                dump(&logs)
            );
        }
    };
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(64)
        // Well under the server's 5 s keep-alive: never reuse a connection the server may be
        // closing at that very moment (a loaded machine otherwise sees spurious resets).
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let app = TestApp {
        address: format!("http://{addr}"),
        client,
        server,
        logs,
        backend,
    };
    app.wait_until_healthy().await;
    app
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Everything the server printed so far.
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The test's own data redis-server (Redis and Redlock modes).
    pub(crate) fn redis(&self) -> Option<&RedisServer> {
        match &self.backend {
            Backend::Memory => None,
            Backend::Redis(redis) | Backend::Redlock { data: redis, .. } => Some(redis),
        }
    }

    /// The data Redis server, to pause, resume or kill it (Redis and Redlock modes).
    pub(crate) fn redis_mut(&mut self) -> &mut RedisServer {
        match &mut self.backend {
            Backend::Memory => panic!("not a Redis-mode app"),
            Backend::Redis(redis) | Backend::Redlock { data: redis, .. } => redis,
        }
    }

    /// Does something to the lock nodes (Redlock mode): kill, pause, resume, restart.
    /// Callable while requests are in flight (it takes `&self`).
    pub(crate) fn lock_nodes<T>(&self, action: impl FnOnce(&mut RedisNodes) -> T) -> T {
        match &self.backend {
            Backend::Redlock { nodes, .. } => action(&mut nodes.lock().unwrap()),
            _ => panic!("not a Redlock-mode app"),
        }
    }

    /// GET /ready until `expected(status, body)` holds, and returns the body. Polls, as
    /// an orchestrator does, with a deadline.
    pub(crate) async fn wait_for_ready(
        &self,
        expected: impl Fn(StatusCode, &Value) -> bool,
    ) -> Value {
        let until = Instant::now() + START_DEADLINE;
        let mut last = (StatusCode::OK, Value::Null);
        loop {
            if let Ok(response) = self.client.get(self.url("/ready")).send().await {
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if expected(status, &body) {
                    return body;
                }
                last = (status, body);
            }
            assert!(
                Instant::now() < until,
                "/ready never answered as expected; last: {} {}\n{}",
                last.0,
                last.1,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.server.id()
    }

    /// Waits for the process to exit (after a signal), with a deadline.
    pub(crate) fn wait_for_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.server.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "server did not exit:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn wait_until_healthy(&self) {
        let until = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(r) = self.client.get(self.url("/health")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "server never became healthy:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn register(&self, username: &str, password: &str) -> Response {
        self.try_register(username, password).await.unwrap()
    }

    async fn try_register(&self, username: &str, password: &str) -> reqwest::Result<Response> {
        self.client
            .post(self.url("/api/auth/register"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
    }

    /// Logs in with the OAuth2 password form.
    pub(crate) async fn login(&self, username: &str, password: &str) -> Response {
        self.try_login(username, password).await.unwrap()
    }

    async fn try_login(&self, username: &str, password: &str) -> reqwest::Result<Response> {
        self.client
            .post(self.url("/api/auth/login"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
    }

    /// Logs in and returns the token. Retries what a loaded machine can make transient
    /// (a reset connection, a 503); logging in twice is harmless.
    pub(crate) async fn token(&self, username: &str, password: &str) -> String {
        let mut last = String::new();
        for attempt in 0..SETUP_ATTEMPTS {
            backoff(attempt).await;
            match self.try_login(username, password).await {
                Ok(response) if response.status() == StatusCode::OK => {
                    let body: Value = response.json().await.unwrap();
                    return body["access_token"].as_str().unwrap().to_owned();
                }
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    last = response.text().await.unwrap_or_default();
                }
                Ok(response) => {
                    let status = response.status();
                    panic!("login failed: {status} {}", response.text().await.unwrap());
                }
                Err(error) => last = error.to_string(),
            }
        }
        panic!("login kept failing: {last}\n{}", self.logs());
    }

    pub(crate) async fn admin_token(&self) -> String {
        self.token(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    /// Registers and logs in a user. Retries transient failures (reset connections,
    /// 503s); a retried registration that finds the name taken was the first attempt
    /// succeeding unseen.
    pub(crate) async fn user(&self, username: &str) -> TestUser {
        let mut registered = false;
        let mut id = None;
        let mut last = String::new();
        for attempt in 0..SETUP_ATTEMPTS {
            backoff(attempt).await;
            let response = match self.try_register(username, PASSWORD).await {
                Ok(response) => response,
                Err(error) => {
                    last = error.to_string();
                    continue;
                }
            };
            match response.status() {
                StatusCode::CREATED => {
                    let body: Value = response.json().await.unwrap();
                    id = body["id"].as_u64();
                    registered = true;
                    break;
                }
                StatusCode::CONFLICT if attempt > 0 => {
                    registered = true;
                    break;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    last = response.text().await.unwrap_or_default();
                }
                status => panic!(
                    "register failed: {status} {}",
                    response.text().await.unwrap()
                ),
            }
        }
        assert!(
            registered,
            "registration kept failing: {last}\n{}",
            self.logs()
        );
        let token = self.token(username, PASSWORD).await;
        let id = match id {
            Some(id) => id,
            None => self.own_id(&token).await,
        };
        TestUser {
            id,
            username: username.to_owned(),
            token,
        }
    }

    /// GET a JSON document, retrying transient failures (reads are safe to repeat).
    pub(crate) async fn read(&self, token: &str, path: &str) -> Value {
        let mut last = String::new();
        for attempt in 0..SETUP_ATTEMPTS {
            backoff(attempt).await;
            match self
                .client
                .get(self.url(path))
                .bearer_auth(token)
                .send()
                .await
            {
                Ok(response) if response.status() == StatusCode::OK => {
                    return response.json().await.unwrap();
                }
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    last = response.text().await.unwrap_or_default();
                }
                Ok(response) => {
                    let status = response.status();
                    panic!("GET {path}: {status} {}", response.text().await.unwrap());
                }
                Err(error) => last = error.to_string(),
            }
        }
        panic!("GET {path} kept failing: {last}\n{}", self.logs());
    }

    /// The caller's id from `/api/auth/me`, retrying transient failures.
    async fn own_id(&self, token: &str) -> u64 {
        let mut last = String::new();
        for attempt in 0..SETUP_ATTEMPTS {
            backoff(attempt).await;
            match self
                .client
                .get(self.url("/api/auth/me"))
                .bearer_auth(token)
                .send()
                .await
            {
                Ok(response) if response.status() == StatusCode::OK => {
                    let me: Value = response.json().await.unwrap();
                    return me["id"].as_u64().unwrap();
                }
                Ok(response) => last = response.text().await.unwrap_or_default(),
                Err(error) => last = error.to_string(),
            }
        }
        panic!("/api/auth/me kept failing: {last}\n{}", self.logs());
    }

    pub(crate) async fn create_product(
        &self,
        admin: &str,
        name: &str,
        price: i64,
        stock: i64,
    ) -> Value {
        let response = self
            .client
            .post(self.url("/api/products"))
            .bearer_auth(admin)
            .json(&json!({ "name": name, "price": price, "stock": stock }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "create product failed: {body}");
        body
    }

    pub(crate) async fn purchase(
        &self,
        token: &str,
        product_id: u64,
        quantity: i64,
        idempotency_key: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url("/api/purchases"))
            .bearer_auth(token)
            .json(&json!({ "product_id": product_id, "quantity": quantity }));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// POST /api/orders with `items` as `(product_id, quantity)`.
    pub(crate) async fn order(
        &self,
        token: &str,
        items: &[(u64, i64)],
        idempotency_key: Option<&str>,
    ) -> Response {
        let items: Vec<Value> = items
            .iter()
            .map(|(product, quantity)| json!({ "product_id": product, "quantity": quantity }))
            .collect();
        let mut request = self
            .client
            .post(self.url("/api/orders"))
            .bearer_auth(token)
            .json(&json!({ "items": items }));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// POST /api/products/{id}/restock.
    pub(crate) async fn restock(
        &self,
        admin: &str,
        product_id: u64,
        quantity: i64,
        idempotency_key: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url(&format!("/api/products/{product_id}/restock")))
            .bearer_auth(admin)
            .json(&json!({ "quantity": quantity }));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// POST /api/products/{id}/adjust.
    pub(crate) async fn adjust(&self, admin: &str, product_id: u64, body: Value) -> Response {
        self.client
            .post(self.url(&format!("/api/products/{product_id}/adjust")))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The whole audit trail of a product, every page (checks the paging as it goes).
    pub(crate) async fn audit(&self, admin: &str, product_id: u64) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut path = format!("/api/products/{product_id}/audit?limit=7");
        loop {
            let page = self.read(admin, &path).await;
            entries.extend(page["entries"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => {
                    path = format!("/api/products/{product_id}/audit?limit=7&after={next}");
                }
                None => break,
            }
        }
        entries
    }

    /// GET /api/admin/reconcile.
    pub(crate) async fn reconcile(&self, admin: &str) -> Value {
        self.read(admin, "/api/admin/reconcile").await
    }

    /// Asserts that reconciliation finds nothing to report.
    pub(crate) async fn assert_reconciled(&self, admin: &str) {
        let report = self.reconcile(admin).await;
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["differences"], json!([]), "{report}");
    }

    /// Runs `inventory-api reconcile` with this app's storage configuration; its exit
    /// status and output.
    pub(crate) async fn reconcile_cli(&self) -> (std::process::ExitStatus, String) {
        let url = self.redis().map(RedisServer::url);
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(server_binary());
            command
                .arg("reconcile")
                .env_clear()
                .current_dir(std::env::temp_dir())
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("JWT_SECRET", JWT_SECRET)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null());
            if let Some(url) = url {
                command.env("REDIS_URL", url);
            }
            let output = command.output().expect("running inventory-api reconcile");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (output.status, text)
        })
        .await
        .unwrap()
    }

    pub(crate) async fn get(&self, token: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn stock(&self, token: &str, product_id: u64) -> Value {
        let response = self
            .get(token, &format!("/api/products/{product_id}/stock"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// Asserts a problem+json response of `status` whose `type` ends with `/slug`; returns the body.
pub(crate) async fn assert_problem(response: Response, status: u16, slug: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_eq!(
        content_type, "application/problem+json",
        "not a problem body: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["type"],
        format!("https://lockstock.dev/problems/{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert!(body["detail"].is_string(), "{body}");
    body
}

/// Starts the server with only `env` (plus PATH) and waits for it to exit on its own, as
/// it must when the configuration is unusable. Returns the exit status and all output.
pub(crate) fn run_until_exit(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(server_binary())
        .env_clear()
        .current_dir(std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting inventory-api");
    let until = Instant::now() + START_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server kept running with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (status, text)
}
