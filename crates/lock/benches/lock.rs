//! What one acquire + release costs, and how many handoffs per second one hot key
//! sustains, against a `redis-server` this bench starts for itself.
//!
//! * `redis_uncontended/raw_set_nx_del` — the floor: `SET key token NX PX 5000` then
//!   `DEL key` with redis-rs directly (two round trips, no crate).
//! * `redis_uncontended/redis_lock` — `RedisLock::acquire` + `LockGuard::release`, one
//!   task, one key: the same two round trips plus the crate's scripts and bookkeeping.
//! * `redis_contended/tasks/N` — N tasks sharing one `RedisLock` loop acquire → release
//!   on one key; one iteration is one handoff, so the reported throughput is handoffs/s.
//!   Sharing one lock, they line up in its same-process FIFO queue.
//! * `redis_contended/clients/N` — the same with one `RedisLock` per task, as N
//!   processes would contend: each handoff goes release → PUBLISH → wake-up → `SET NX`.
//! * `redis_uncontended/redlock_{3,5}` and `redis_contended/redlock_{3,5}/…` — the
//!   same with a `Redlock` over 3 or 5 local nodes (no persistence, like the single
//!   node; used once their start-up quarantine has passed) whose fence store is one
//!   more server: one round to all nodes in parallel + the fence `INCR`, then the
//!   release round.
//! * `…/redlock_5_fsync…` — 5 nodes with `appendonly yes` + `appendfsync always`,
//!   declared fsync-always: what `docker-compose.redlock.yml` runs.
//! * `local/*` — the same with `LocalLock`, the in-process baseline.
//!
//! Every loop runs in tasks on the 2-worker runtime (not on criterion's `block_on`
//! thread), so all figures pay the same scheduling costs. Every acquire and release
//! must succeed (the wait timeout is far longer than any handoff): a failure panics
//! instead of being timed as a fast operation. After each crate benchmark a line on
//! stderr gives the backend attempts per acquire (1.0 = never refused).
//! `docs/BENCHMARKS.md` records the figures and the command.

#![expect(
    clippy::expect_used,
    reason = "bench harness: a failure must abort the run, not be measured"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use inventory_lock::{
    AcquireOptions, DistributedLock, LocalLock, LockKey, RedisLock, Redlock, RedlockConfig,
    RedlockNode,
};
use lockstock_test_support::{RedisNodes, RedisServer};
use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Lease of every lock taken here; the raw baseline uses the same `PX`.
const TTL: Duration = Duration::from_secs(5);
/// Far longer than any handoff, so no acquire can time out.
const WAIT: Duration = Duration::from_secs(60);
/// Concurrent tasks contending for one Redis key.
const REDIS_CONTENDERS: [usize; 3] = [1, 8, 64];
/// Independent `RedisLock`s (one task each) contending for one Redis key.
const REDIS_CLIENTS: [usize; 2] = [8, 64];
/// Concurrent tasks contending for one in-process key.
const LOCAL_CONTENDERS: usize = 8;
/// Tasks, and independent `Redlock`s, contending for one key in the Redlock rows.
const REDLOCK_CONTENDERS: usize = 8;
/// How long a fresh Redlock may take to see a quorum of nodes counting.
const REDLOCK_READY_DEADLINE: Duration = Duration::from_secs(30);

fn options() -> AcquireOptions {
    AcquireOptions::default()
        .with_ttl(TTL)
        .with_wait_timeout(WAIT)
}

fn key(name: &str) -> LockKey {
    LockKey::new(name).expect("bench keys are valid")
}

/// Two workers: the machine the figures were taken on has two cores.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `SET key token NX PX <ttl>` + `DEL key`, checking both replies.
async fn raw_set_nx_del(mut connection: ConnectionManager, key: &str) {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg("bench-token")
        .arg("NX")
        .arg("PX")
        .arg(TTL.as_millis().to_string())
        .query_async(&mut connection)
        .await
        .expect("SET NX PX");
    assert_eq!(set.as_deref(), Some("OK"), "baseline key {key} was held");
    let deleted: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut connection)
        .await
        .expect("DEL");
    assert_eq!(deleted, 1, "baseline key {key} vanished before DEL");
}

/// Backend attempts per acquire, summed over a whole benchmark (warm-up included).
/// 1.0 means every acquire got the key on its first `SET NX`; more means callers
/// were refused and waited for a release notification (or the backoff).
#[derive(Default)]
struct Attempts {
    acquires: AtomicU64,
    attempts: AtomicU64,
}

impl Attempts {
    fn record(&self, acquires: u64, attempts: u64) {
        self.acquires.fetch_add(acquires, Ordering::Relaxed);
        self.attempts.fetch_add(attempts, Ordering::Relaxed);
    }

    fn report(&self, bench: &str) {
        let acquires = self.acquires.load(Ordering::Relaxed);
        let attempts = self.attempts.load(Ordering::Relaxed);
        let ratio = attempts as f64 / acquires.max(1) as f64;
        eprintln!("{bench}: {ratio:.3} backend attempts per acquire ({acquires} acquires)");
    }
}

/// One acquire + release through the crate; any error aborts the run.
/// Returns how many backend attempts the acquire took.
async fn cycle<L: DistributedLock + ?Sized>(
    lock: &L,
    key: &LockKey,
    options: &AcquireOptions,
) -> u32 {
    let guard = lock
        .acquire(key, options)
        .await
        .unwrap_or_else(|error| panic!("acquire of {key} failed: {error}"));
    let attempts = guard.attempts();
    guard
        .release()
        .await
        .unwrap_or_else(|error| panic!("release of {key} failed: {error}"));
    attempts
}

/// `iters` raw `SET NX` + `DEL` pairs in one task on a runtime worker (where the
/// crate's loops run too, so both pay the same scheduling costs).
async fn raw_loop(connection: &ConnectionManager, key: &'static str, iters: u64) -> Duration {
    let connection = connection.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        for _ in 0..iters {
            raw_set_nx_del(connection.clone(), key).await;
        }
        started.elapsed()
    })
    .await
    .expect("the baseline task panicked")
}

/// `tasks` tasks together perform `iters` acquire + release cycles on `key`,
/// task `i` through `locks[i % locks.len()]`; returns the wall time until the
/// last one finished.
async fn handoffs<L>(
    locks: &[L],
    key: &LockKey,
    tasks: usize,
    iters: u64,
    stats: &Arc<Attempts>,
) -> Duration
where
    L: DistributedLock + Clone + 'static,
{
    let tasks = u64::try_from(tasks).expect("task count fits in u64");
    let started = Instant::now();
    let mut contenders = JoinSet::new();
    for (task, lock) in (0..tasks).zip(locks.iter().cycle()) {
        let share = iters / tasks + u64::from(task < iters % tasks);
        let (lock, key, options, stats) = (lock.clone(), key.clone(), options(), stats.clone());
        contenders.spawn(async move {
            let mut attempts = 0;
            for _ in 0..share {
                attempts += u64::from(cycle(&lock, &key, &options).await);
            }
            stats.record(share, attempts);
        });
    }
    while let Some(joined) = contenders.join_next().await {
        joined.expect("a contending task panicked");
    }
    started.elapsed()
}

/// Benchmarks `tasks` tasks cycling on one key through `locks` as `group_name/id`,
/// then reports their attempts per acquire.
fn bench_handoffs<L>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    id: &str,
    runtime: &Runtime,
    locks: &[L],
    tasks: usize,
) where
    L: DistributedLock + Clone + 'static,
{
    let key = key(&format!("bench:{group_name}:{id}"));
    let stats = Arc::new(Attempts::default());
    group.bench_function(id, |b| {
        b.to_async(runtime)
            .iter_custom(|iters| handoffs(locks, &key, tasks, iters, &stats));
    });
    stats.report(&format!("{group_name}/{id}"));
}

/// The lock nodes and the fence store of the Redlock rows.
struct RedlockServers {
    /// Five nodes without persistence.
    volatile: RedisNodes,
    /// Five nodes with `appendfsync always`.
    durable: RedisNodes,
    fence_store: RedisServer,
}

impl RedlockServers {
    fn start() -> Self {
        Self {
            volatile: RedisNodes::start(5),
            durable: RedisNodes::start_with(5, &["--appendonly", "yes", "--appendfsync", "always"]),
            fence_store: RedisServer::start(),
        }
    }

    /// A `Redlock` over the first `n` nodes of `nodes`, once a quorum of them counts
    /// (non-durable nodes sit out `max_ttl` after their start; the single-node rows
    /// run meanwhile, so it has usually passed).
    async fn redlock(&self, nodes: &RedisNodes, n: usize, durable: bool) -> Redlock {
        let nodes = nodes.urls().into_iter().take(n).map(|url| {
            let node = RedlockNode::from_url(&url).expect("node url");
            if durable { node.fsync_always() } else { node }
        });
        let fence = redis::Client::open(self.fence_store.url()).expect("fence store url");
        let config = RedlockConfig {
            max_ttl: TTL,
            ..RedlockConfig::default()
        };
        let lock = Redlock::connect(nodes, fence, config)
            .await
            .expect("Redlock connects");
        let deadline = Instant::now() + REDLOCK_READY_DEADLINE;
        while !lock.status().await.is_ready() {
            assert!(Instant::now() < deadline, "the Redlock never had a quorum");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        lock
    }
}

fn lock_benches(c: &mut Criterion) {
    let server = RedisServer::start();
    // Started first, so that their start-up quarantine passes while the single-node
    // rows run.
    let redlock_servers = RedlockServers::start();
    let runtime = runtime();
    let url = server.url();
    let (shared, clients, raw) = runtime.block_on(async {
        let connect = || async { RedisLock::from_url(&url).await.expect("RedisLock connects") };
        let shared = [connect().await];
        let mut clients = Vec::new();
        for _ in 0..REDIS_CLIENTS.into_iter().max().unwrap_or(0) {
            clients.push(connect().await);
        }
        let raw = redis::Client::open(url.as_str())
            .expect("redis url")
            .get_connection_manager()
            .await
            .expect("raw connection");
        (shared, clients, raw)
    });

    // Uncontended: one task, one key. `redis_lock` runs the same code as
    // `redis_contended/tasks/1`, so the two figures also show the run-to-run noise.
    let name = "redis_uncontended";
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_set_nx_del", |b| {
        b.to_async(&runtime)
            .iter_custom(|iters| raw_loop(&raw, "bench:raw", iters));
    });
    bench_handoffs(&mut group, name, "redis_lock", &runtime, &shared, 1);
    group.finish();

    // Contended: N tasks sharing one `RedisLock` (one process, so they line up
    // in its FIFO queue), one key, zero hold time; one iteration = one handoff.
    let name = "redis_contended";
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for tasks in REDIS_CONTENDERS {
        let id = format!("tasks/{tasks}");
        bench_handoffs(&mut group, name, &id, &runtime, &shared, tasks);
    }
    // The same with one `RedisLock` per task, i.e. as N processes would contend:
    // no shared queue, every handoff goes through Redis and its release PUBLISH.
    for tasks in REDIS_CLIENTS {
        let id = format!("clients/{tasks}");
        bench_handoffs(&mut group, name, &id, &runtime, &clients[..tasks], tasks);
    }
    group.finish();

    // Redlock over 3 and 5 nodes, beside the single node above.
    let redlocks = runtime.block_on(async {
        let s = &redlock_servers;
        let mut sets = Vec::new();
        for (name, nodes, n, durable) in [
            ("redlock_3", &s.volatile, 3, false),
            ("redlock_5", &s.volatile, 5, false),
            ("redlock_5_fsync", &s.durable, 5, true),
        ] {
            let mut locks = Vec::new();
            for _ in 0..REDLOCK_CONTENDERS {
                locks.push(s.redlock(nodes, n, durable).await);
            }
            sets.push((name, locks));
        }
        sets
    });
    let name = "redis_uncontended";
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for (id, locks) in &redlocks {
        bench_handoffs(&mut group, name, id, &runtime, &locks[..1], 1);
    }
    group.finish();
    let name = "redis_contended";
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for (id, locks) in &redlocks {
        if *id != "redlock_5_fsync" {
            let tasks = format!("{id}/tasks/{REDLOCK_CONTENDERS}");
            bench_handoffs(
                &mut group,
                name,
                &tasks,
                &runtime,
                &locks[..1],
                REDLOCK_CONTENDERS,
            );
        }
        let clients = format!("{id}/clients/{REDLOCK_CONTENDERS}");
        bench_handoffs(
            &mut group,
            name,
            &clients,
            &runtime,
            locks,
            REDLOCK_CONTENDERS,
        );
    }
    group.finish();

    let local = [LocalLock::new()];
    let name = "local";
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    bench_handoffs(&mut group, name, "uncontended", &runtime, &local, 1);
    let id = format!("tasks/{LOCAL_CONTENDERS}");
    bench_handoffs(&mut group, name, &id, &runtime, &local, LOCAL_CONTENDERS);
    group.finish();

    // Connections first, then the servers they talk to.
    drop((shared, clients, raw, redlocks, runtime));
    drop((server, redlock_servers));
}

criterion_group! {
    name = benches;
    // 17 benchmarks × (2 s warm-up + 6 s measurement + analysis) ≈ 150 s. No plots:
    // drawing them took longer than measuring on the loaded 2-core machine.
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .without_plots();
    targets = lock_benches
}
criterion_main!(benches);
