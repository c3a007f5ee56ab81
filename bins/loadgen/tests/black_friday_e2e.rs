//! End to end: the loadgen binary runs black-friday at a small size (stock 20, 200 buyers)
//! against the real server binary on loopback, in memory mode and in Redis mode (a fresh
//! redis-server from lockstock-test-support), and the JSON report's counts are asserted. The server is built if needed, started on a free port, awaited
//! through GET /health with a deadline, and killed on drop.

#![expect(
    clippy::expect_used,
    reason = "test harness: a failed step aborts the test with its message"
)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ADMIN_USERNAME: &str = "admin";
const ADMIN_PASSWORD: &str = "loadgen-e2e-admin-password";
const SERVER_START_DEADLINE: Duration = Duration::from_secs(60);
const LOADGEN_DEADLINE: Duration = Duration::from_secs(180);

/// The workspace's server binary, next to this package's binary. `cargo build` runs first
/// (a no-op when it is fresh) so that the test never drives a stale server.
fn server_binary() -> PathBuf {
    let loadgen = Path::new(env!("CARGO_BIN_EXE_inventory-loadgen"));
    let server = loadgen.with_file_name(format!("inventory-api{}", std::env::consts::EXE_SUFFIX));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "inventory-api", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .stdin(Stdio::null())
        .status()
        .expect("running cargo build -p inventory-api");
    assert!(status.success(), "cargo build -p inventory-api failed");
    assert!(server.exists(), "no server binary at {}", server.display());
    server
}

/// A running server process; killed on drop.
struct Server {
    child: Child,
    log: PathBuf,
    port: Option<u16>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server on a port of its choosing (`BIND_ADDR` port 0), learns the port
    /// from its `listening on ADDR` line, then waits for GET /health to answer 200.
    fn start(redis_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let output = File::create(&log).expect("server log");
        let mut command = Command::new(server_binary());
        if let Some(url) = redis_url {
            command.env("REDIS_URL", url);
        } else {
            command.env_remove("REDIS_URL");
        }
        let child = command
            .current_dir(dir.path())
            .env_remove("REDIS_CLUSTER_NODES")
            .env_remove("REDLOCK_NODES")
            .env_remove("LOCK_MODE")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("ADMIN_USERNAME", ADMIN_USERNAME)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("BCRYPT_COST", "4")
            .env(
                "JWT_SECRET",
                "loadgen-e2e-secret-that-is-long-enough-0123456789",
            )
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log handle"))
            .stderr(output)
            .spawn()
            .expect("starting inventory-api");
        let mut server = Self {
            child,
            log,
            port: None,
            _dir: dir,
        };
        server.wait_until_healthy();
        server
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.unwrap_or_default())
    }

    fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + SERVER_START_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("polling the server") {
                panic!("the server exited with {status}\n{}", self.log_text());
            }
            self.port = self.port.or_else(|| listening_port(&self.log));
            if self.port.is_some_and(health_is_ok) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "GET /health did not answer 200 within {SERVER_START_DEADLINE:?}\n{}",
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        format!(
            "--- server log (last lines) ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

/// The port of the server's `listening on 127.0.0.1:PORT` line, once it is written.
fn listening_port(log: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(log).ok()?;
    let address = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("listening on "))?;
    address.trim().rsplit_once(':')?.1.parse().ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET /health over a fresh connection; true on a 200.
fn health_is_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Runs the loadgen binary to its end (killed past the deadline); returns its exit
/// status, stdout and stderr.
fn loadgen(args: &[&str], dir: &Path) -> (ExitStatus, String, String) {
    let (stdout, stderr) = (dir.join("loadgen.out"), dir.join("loadgen.err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_inventory-loadgen"))
        .args(args)
        .env_remove("ADMIN_PASSWORD")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).expect("stdout file"))
        .stderr(File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("starting inventory-loadgen");
    let deadline = Instant::now() + LOADGEN_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling loadgen") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("inventory-loadgen ran past {LOADGEN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    (status, read(&stdout), read(&stderr))
}

fn read_report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the JSON report"))
        .expect("valid JSON")
}

#[test]
fn black_friday_in_memory_mode_sells_exactly_the_stock() {
    black_friday_sells_exactly_the_stock(&Server::start(None));
}

#[test]
fn black_friday_in_redis_mode_sells_exactly_the_stock() {
    let redis = lockstock_test_support::RedisServer::start();
    black_friday_sells_exactly_the_stock(&Server::start(Some(&redis.url())));
}

/// Two sales in a row against `server`: the first registers the buyers, the second
/// reuses their cached tokens.
fn black_friday_sells_exactly_the_stock(server: &Server) {
    let work = tempfile::tempdir().expect("temp dir");
    let json = work.path().join("report.json");
    let chart = work.path().join("chart.svg");
    let cache = work.path().join("tokens.json");
    let base_url = server.base_url();
    let paths = [&json, &chart, &cache].map(|p| p.to_str().expect("utf-8 path").to_owned());
    let args = [
        "black-friday",
        "--base-url",
        &base_url,
        "--admin-username",
        ADMIN_USERNAME,
        "--admin-password",
        ADMIN_PASSWORD,
        "--stock",
        "20",
        "--buyers",
        "200",
        "--window-ms",
        "500",
        "--setup-concurrency",
        "8",
        // A loaded CI machine may answer 503 (lock wait timeout); the retry reuses the
        // Idempotency-Key, so it cannot buy twice, and the counts below stay exact.
        "--retries-on-503",
        "5",
        "--json",
        &paths[0],
        "--chart",
        &paths[1],
        "--token-cache",
        &paths[2],
        "--quiet",
    ];
    let (status, stdout, stderr) = loadgen(&args, work.path());
    assert!(
        status.success(),
        "loadgen failed: {status}\n{stdout}\n{stderr}\n{}",
        server.log_text()
    );

    let report = read_report(&json);
    let context = format!("{report:#}\n{}", server.log_text());
    assert_eq!(report["scenario"], "black-friday", "{context}");
    assert_eq!(report["requests"], 200, "{context}");
    assert_eq!(report["accepted"], 20, "{context}");
    assert_eq!(report["refused_sold_out"], 180, "{context}");
    assert_eq!(report["other_errors"], 0, "{context}");
    assert_eq!(report["status_counts"]["201"], 20, "{context}");
    assert_eq!(report["status_counts"]["409"], 180, "{context}");
    assert_eq!(report["final_stock"], 0, "{context}");
    assert_eq!(report["units_accepted"], 20, "{context}");
    assert_eq!(report["units_removed_from_stock"], 20, "{context}");
    assert_eq!(report["purchase_records"], 20, "{context}");
    assert_eq!(report["oversell"], 0, "{context}");
    assert_eq!(report["lost"], 0, "{context}");
    assert_eq!(report["ok"], true, "{context}");
    assert_eq!(report["fairness"]["first_k"], 20, "{context}");
    let served_first = report["fairness"]["first_k_accepted"]
        .as_u64()
        .expect("first_k_accepted");
    assert!(served_first <= 20, "{context}");
    assert!(
        report["fairness"]["inversions"].as_u64().is_some(),
        "{context}"
    );
    assert!(
        report["latency_ms"]["p99"]
            .as_f64()
            .is_some_and(|p99| p99 > 0.0),
        "{context}"
    );
    assert!(stdout.contains("result        OK"), "{stdout}");
    let svg = std::fs::read_to_string(&chart).expect("the chart");
    assert!(
        svg.starts_with("<svg") && svg.contains("send order"),
        "not the chart: {}",
        &svg[..200.min(svg.len())]
    );

    // A second sale reuses the cached tokens (no registration) and sells out as well.
    let (status, stdout, stderr) = loadgen(&args, work.path());
    assert!(
        status.success(),
        "second run failed: {status}\n{stdout}\n{stderr}"
    );
    let again = read_report(&json);
    assert_eq!(
        (again["accepted"].as_u64(), again["lost"].as_u64()),
        (Some(20), Some(0)),
        "{again:#}"
    );
}

#[test]
fn cart_in_memory_mode_is_whole_or_refused_and_reconciles() {
    cart_is_whole_or_refused_and_reconciles(&Server::start(None));
}

#[test]
fn cart_in_redis_mode_is_whole_or_refused_and_reconciles() {
    let redis = lockstock_test_support::RedisServer::start();
    cart_is_whole_or_refused_and_reconciles(&Server::start(Some(&redis.url())));
}

/// 150 baskets of 2–5 of 4 products (stock 40 each, more asked than there is): every
/// order is answered 201 or 409, the per-product books balance (oversell 0, lost 0),
/// and the server's own reconciliation is clean.
fn cart_is_whole_or_refused_and_reconciles(server: &Server) {
    let work = tempfile::tempdir().expect("temp dir");
    let json = work.path().join("report.json");
    let base_url = server.base_url();
    let json_path = json.to_str().expect("utf-8 path").to_owned();
    let args = [
        "cart",
        "--base-url",
        &base_url,
        "--admin-username",
        ADMIN_USERNAME,
        "--admin-password",
        ADMIN_PASSWORD,
        "--products",
        "4",
        "--stock",
        "40",
        "--buyers",
        "150",
        "--quantity",
        "1..2",
        "--window-ms",
        "300",
        "--user-prefix",
        "cart",
        "--setup-concurrency",
        "8",
        "--retries-on-503",
        "5",
        "--reconcile",
        "--json",
        &json_path,
        "--quiet",
    ];
    let (status, stdout, stderr) = loadgen(&args, work.path());
    assert!(
        status.success(),
        "loadgen failed: {status}\n{stdout}\n{stderr}\n{}",
        server.log_text()
    );
    let report = read_report(&json);
    let context = format!("{report:#}\n{}", server.log_text());
    assert_eq!(report["scenario"], "cart", "{context}");
    assert_eq!(report["requests"], 150, "{context}");
    let accepted = report["accepted"].as_u64().expect("accepted");
    let refused = report["refused_sold_out"].as_u64().expect("refused");
    assert_eq!(accepted + refused, 150, "{context}");
    assert!(accepted > 0 && refused > 0, "{context}");
    assert_eq!(
        (report["oversell"].as_u64(), report["lost"].as_u64()),
        (Some(0), Some(0)),
        "{context}"
    );
    assert_eq!(report["reconcile"]["ok"], true, "{context}");
    assert_eq!(report["ok"], true, "{context}");
    // Every order line is one record of its product, keyed by its order.
    assert_eq!(
        report["units_recorded"], report["units_removed_from_stock"],
        "{context}"
    );
    assert!(
        report["purchase_records"].as_u64().unwrap_or(0) >= 2 * accepted,
        "{context}"
    );
    assert!(stdout.contains("reconcile     clean"), "{stdout}");
}
