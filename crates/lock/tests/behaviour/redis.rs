//! `RedisLock` against real redis-server processes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inventory_lock::{
    DistributedLock, Fused, GuardedScript, LockError, LockGuard, RedisLock, RedisLockConfig,
    ScriptArgs,
};
use lockstock_test_support::RedisServer;
use redis::AsyncCommands;

use crate::suite::{self, Fixture, key, options};

const REGISTER: &str = "{test:register}:value";

struct RedisFixture {
    server: RedisServer,
    config: RedisLockConfig,
}

impl RedisFixture {
    fn start() -> Self {
        Self {
            server: RedisServer::start(),
            config: RedisLockConfig::default(),
        }
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.server.url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    async fn lock(&self) -> RedisLock {
        let client = redis::Client::open(self.server.url()).unwrap();
        RedisLock::connect(client, self.config.clone())
            .await
            .unwrap()
    }
}

/// `SET register value`, only while `guard` holds the lock.
static SET_REGISTER: std::sync::LazyLock<GuardedScript> =
    std::sync::LazyLock::new(|| GuardedScript::new("redis.call('SET', KEYS[1], ARGV[1]) return 1"));

#[async_trait]
impl Fixture for RedisFixture {
    async fn process(&self) -> Arc<dyn DistributedLock> {
        Arc::new(self.lock().await)
    }

    async fn guarded_set(&self, guard: &LockGuard, value: u64) -> Result<(), LockError> {
        let mut connection = self.connection().await;
        let _: i64 = SET_REGISTER
            .prepare(guard)
            .key(REGISTER)
            .arg(value)
            .invoke(&mut connection)
            .await?;
        Ok(())
    }

    async fn register(&self) -> u64 {
        let value: Option<u64> = self.connection().await.get(REGISTER).await.unwrap();
        value.unwrap_or(0)
    }
}

macro_rules! group_commit_behaviour {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            crate::group_commit::$name(Arc::new(RedisFixture::start())).await;
        }
    )*};
}

group_commit_behaviour!(
    batches_keep_arrival_order,
    batch_of_one_is_one_hold_per_caller,
    lock_timeout_answers_every_member,
    a_caller_behind_a_timed_out_batch_waits_only_its_own_timeout,
    a_panicking_committer_strands_nobody,
    a_caller_gone_from_the_line_is_skipped,
);

macro_rules! shared_behaviour {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            suite::$name(&RedisFixture::start()).await;
        }
    )*};
}

shared_behaviour!(
    mutual_exclusion,
    fencing_tokens_increase,
    expired_holder_is_powerless,
    release_wakes_the_waiter,
    cancellation_leaves_nothing_held,
    late_drop_does_not_release_the_next_holder,
    try_acquire_does_not_wait,
    wait_timeout_is_reported,
    multi_key_no_deadlock,
    watchdog_renews_long_bodies,
);

// FIFO is checked on a single-threaded runtime, where "waiter i is in line
// before waiter i + 1 starts" is exact.
#[tokio::test]
async fn same_process_waiters_are_fifo() {
    suite::same_process_waiters_are_fifo(&RedisFixture::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_aborts_when_lease_is_lost() {
    let fixture = RedisFixture::start();
    let mut raw = fixture.connection().await;
    suite::watchdog_aborts_when_lease_is_lost(&fixture, async move || {
        let _: i64 = raw.del(key("stolen").as_str()).await.unwrap();
    })
    .await;
}

/// The server-side check: a holder that still believes it holds the lock (its
/// local deadline has not passed) cannot write once the key belongs to another
/// token, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_write_is_refused_by_redis_once_the_lock_changed_hands() {
    let fixture = RedisFixture::start();
    let lock = fixture.lock().await;
    let guard = lock.acquire(&key("guarded"), &options()).await.unwrap();
    fixture.guarded_set(&guard, 7).await.unwrap();

    let mut raw = fixture.connection().await;
    let _: () = raw
        .set(key("guarded").as_str(), "someone-else")
        .await
        .unwrap();
    assert!(guard.is_held(), "locally the lease still looks valid");
    let error = fixture.guarded_set(&guard, 8).await.unwrap_err();
    assert!(error.is_lease_lost(), "{error}");
    assert!(!guard.is_held(), "a refused write marks the lease lost");
    assert_eq!(fixture.register().await, 7);
}

/// An extension never re-creates a lock whose key is gone (expired or deleted),
/// even when the holder's local deadline has not passed yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_never_resurrects_an_expired_lock() {
    let fixture = RedisFixture::start();
    let lock = fixture.lock().await;
    let guard = lock.acquire(&key("resurrect"), &options()).await.unwrap();
    let mut raw = fixture.connection().await;
    // What Redis does when the TTL runs out, done early so the local deadline
    // cannot short-circuit the check: the script itself must refuse.
    let _: i64 = raw.del(key("resurrect").as_str()).await.unwrap();
    let error = guard.extend(Duration::from_secs(10)).await.unwrap_err();
    assert!(error.is_lease_lost(), "{error}");
    let exists: bool = raw.exists(key("resurrect").as_str()).await.unwrap();
    assert!(!exists, "the extension re-created the key");
}

/// Redis frozen with SIGSTOP while a lock is held: every party gets a clear
/// error within its timeouts, nobody is granted the lock twice, and once Redis
/// runs again the lock machinery recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_gives_clear_errors_and_no_double_grant() {
    let mut fixture = RedisFixture::start();
    fixture.config.response_timeout = Duration::from_millis(300);
    let holder_process = fixture.lock().await;
    let waiter_process = fixture.lock().await;
    let holder = holder_process
        .acquire(&key("paused"), &options())
        .await
        .unwrap();
    let fence = holder.fencing_token().get();

    fixture.server.pause();
    let waiting = waiter_process
        .acquire(
            &key("paused"),
            &options().with_wait_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert!(
        waiting.is_backend() && waiting.is_unknown_outcome(),
        "{waiting}"
    );
    let extending = holder.extend(Duration::from_secs(10)).await.unwrap_err();
    assert!(extending.is_backend(), "{extending}");
    assert!(
        holder.is_held(),
        "a failed renewal alone does not end a valid lease"
    );
    fixture.server.resume();

    // The waiter's SET NX that timed out ran once Redis woke up, and was refused
    // (the holder still held the key): no second grant was minted.
    let mut raw = fixture.connection().await;
    let minted: u64 = raw.get(key("paused").fence_key()).await.unwrap();
    assert_eq!(minted, fence, "a second fencing token was minted");
    holder.release().await.unwrap();
    let next = waiter_process
        .acquire(&key("paused"), &options())
        .await
        .unwrap();
    assert_eq!(next.fencing_token().get(), fence + 1);
    next.release().await.unwrap();
}

/// A lock taken while Redis is unreachable fails fast with a backend error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_dead_redis_fails_fast() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let error = match RedisLock::from_url(&url).await {
        Ok(_) => panic!("connected to a dead server"),
        Err(error) => error,
    };
    assert!(error.is_backend(), "{error}");
}

/// Acquire futures dropped at arbitrary points — before sending, while the
/// script is in flight, after the reply — never leave the key held: an attempt
/// whose outcome the caller never saw is released in the background, long
/// before its 10 s lease would have run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_futures_dropped_mid_flight_leave_nothing_held() {
    let fixture = RedisFixture::start();
    let lock = fixture.lock().await;
    let mut raw = fixture.connection().await;
    let mut cancelled = 0;
    for round in 0..200u64 {
        // Cut the future short after 0–199 µs: early rounds drop it before the
        // request leaves, later ones while it is in flight or being answered.
        let budget = Duration::from_micros(round);
        match tokio::time::timeout(budget, lock.acquire(&key("midflight"), &options())).await {
            Ok(guard) => guard.unwrap().release().await.unwrap(),
            Err(_) => cancelled += 1,
        }
        // Whatever happened, the key must become free again without waiting
        // for its TTL.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let exists: bool = raw.exists(key("midflight").as_str()).await.unwrap();
            if !exists {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: key left held"
            );
            tokio::task::yield_now().await;
        }
    }
    assert!(
        cancelled > 0,
        "no acquire was cancelled; the test exercised nothing"
    );
}

/// Retries `try_acquire` on a throwaway key until the lock's connections work
/// again after a Redis restart (the first command after a restart may fail).
async fn until_reconnected(lock: &RedisLock) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match lock.try_acquire(&key("reconnect-probe"), &options()).await {
            Ok(Some(guard)) => {
                guard.release().await.unwrap();
                return;
            }
            Ok(None) => panic!("nobody else uses the probe key"),
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no reconnect: {error}"
                );
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Release notifications survive a Redis restart: a waiter whose fallback
/// backoff is longer than its whole wait is still woken by the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_survive_a_redis_restart() {
    let mut fixture = RedisFixture::start();
    let holder_process = fixture.lock().await;
    let waiter_process = fixture.lock().await;
    let patient = options()
        .with_wait_timeout(Duration::from_secs(3))
        .with_backoff(Duration::from_secs(4), Duration::from_secs(5));
    let hand_off = async |holder_process: &RedisLock, waiter_process: &RedisLock| {
        let holder = holder_process
            .acquire(&key("restart"), &options())
            .await
            .unwrap();
        let waiter = {
            let waiter_process = waiter_process.clone();
            let patient = patient.clone();
            tokio::spawn(async move { waiter_process.acquire(&key("restart"), &patient).await })
        };
        suite::until("waiter to contend", || {
            waiter_process.local_waiters(&key("restart")) == 1
        })
        .await;
        holder.release().await.unwrap();
        let granted = waiter.await.unwrap().expect("woken by the release");
        granted.release().await.unwrap();
    };
    // Before the restart: the waiter's process subscribes to the key's channel.
    hand_off(&holder_process, &waiter_process).await;

    fixture.server.kill();
    fixture.server.restart();
    until_reconnected(&holder_process).await;
    until_reconnected(&waiter_process).await;

    hand_off(&holder_process, &waiter_process).await;
}

/// Scripts Redis has executed so far (`EVALSHA` calls), from `INFO commandstats`.
async fn evalsha_calls(raw: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

/// The background release of a guard dropped after its lease expired has run
/// (Redis executed it) and left the next holder's lock untouched. Unlike the
/// shared test, this waits for the release itself rather than hoping it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_release_of_a_stale_guard_spares_the_next_holder() {
    let fixture = RedisFixture::start();
    let lock = fixture.lock().await;
    let mut raw = fixture.connection().await;
    let stale = lock
        .acquire(
            &key("stale-drop"),
            &options().with_ttl(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    stale.lost().await;
    let next = lock.acquire(&key("stale-drop"), &options()).await.unwrap();
    let before = evalsha_calls(&mut raw).await;
    drop(stale);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while evalsha_calls(&mut raw).await <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background release never ran"
        );
        tokio::task::yield_now().await;
    }
    let holder: Option<String> = raw.get(key("stale-drop").as_str()).await.unwrap();
    assert_eq!(holder.as_deref(), Some(next.token().as_str()));
    next.release().await.unwrap();
}

/// `INCR` of the register as a fused step; the body returns its `FENCE`.
static FUSED_INCR: std::sync::LazyLock<GuardedScript> =
    std::sync::LazyLock::new(|| GuardedScript::new("redis.call('INCR', KEYS[1]) return FENCE"));

/// A fused step never runs while another process holds the lock: it answers
/// `Busy` and writes nothing; once the lock is released it runs, minting the
/// next fencing token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fused_step_never_runs_while_another_process_holds_the_lock() {
    let fixture = RedisFixture::start();
    let holder_process = fixture.lock().await;
    let fused_process = fixture.lock().await;
    let holder = holder_process
        .acquire(&key("fused-held"), &options())
        .await
        .unwrap();
    let fused = fused_process
        .run_fused::<u64>(FUSED_INCR.prepare_fused(&key("fused-held")).key(REGISTER))
        .await
        .unwrap();
    assert_eq!(fused, Fused::Busy);
    assert_eq!(fixture.register().await, 0, "a busy step wrote");
    let fence = holder.fencing_token().get();
    holder.release().await.unwrap();
    let fused = fused_process
        .run_fused::<u64>(FUSED_INCR.prepare_fused(&key("fused-held")).key(REGISTER))
        .await
        .unwrap();
    assert_eq!(fused, Fused::Ran(fence + 1));
    assert_eq!(fixture.register().await, 1);
    let mut raw = fixture.connection().await;
    let exists: bool = raw.exists(key("fused-held").as_str()).await.unwrap();
    assert!(!exists, "the fused step left the lock held");
}

/// 1,000 fused increments from one process interleaved with 1,000 increments
/// by a lock holder in another process that reads the register with a plain
/// GET, yields, and writes back read + 1 with a guarded SET. If a fused step
/// ever ran inside the other process's hold, that write-back would erase it.
/// Fencing tokens seen by both stay strictly increasing, shared between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fused_and_lock_holding_writers_interleaved_stay_exact() {
    const ROUNDS: usize = 1_000;
    let fixture = Arc::new(RedisFixture::start());
    let fused_process = fixture.lock().await;
    let holder_process = fixture.lock().await;
    let fused_writer = {
        let fixture = Arc::clone(&fixture);
        tokio::spawn(async move {
            let lock_key = key("interleave");
            let mut fences = Vec::new();
            while fences.len() < ROUNDS {
                let step = FUSED_INCR.prepare_fused(&lock_key).key(REGISTER);
                match fused_process.run_fused::<u64>(step).await.unwrap() {
                    Fused::Ran(fence) => fences.push(fence),
                    // Busy: take the lock the ordinary way, as a caller would.
                    Fused::Busy => {
                        let guard = fused_process
                            .acquire(&key("interleave"), &options())
                            .await
                            .unwrap();
                        let value = fixture.register().await;
                        fixture.guarded_set(&guard, value + 1).await.unwrap();
                        fences.push(guard.fencing_token().get());
                        guard.release().await.unwrap();
                    }
                }
            }
            fences
        })
    };
    let holding_writer = {
        let fixture = Arc::clone(&fixture);
        tokio::spawn(async move {
            let mut fences = Vec::new();
            for _ in 0..ROUNDS {
                let guard = holder_process
                    .acquire(&key("interleave"), &options())
                    .await
                    .unwrap();
                let value = fixture.register().await;
                tokio::task::yield_now().await;
                fixture.guarded_set(&guard, value + 1).await.unwrap();
                fences.push(guard.fencing_token().get());
                guard.release().await.unwrap();
            }
            fences
        })
    };
    let fused_fences = fused_writer.await.unwrap();
    let holder_fences = holding_writer.await.unwrap();
    assert_eq!(fixture.register().await, 2 * ROUNDS as u64);
    for fences in [&fused_fences, &holder_fences] {
        assert!(
            fences.windows(2).all(|pair| pair[0] < pair[1]),
            "{fences:?}"
        );
    }
    let mut all: Vec<u64> = fused_fences.iter().chain(&holder_fences).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        2 * ROUNDS,
        "a fencing token was handed out twice"
    );
}

/// Length of a key's cross-process line.
async fn line_len(raw: &mut redis::aio::MultiplexedConnection, name: &str) -> usize {
    raw.llen(key(name).line_key()).await.unwrap()
}

/// Puts a waiter that never tries again at the front of a key's line, with a
/// line lease of `lease` from now (server time): a process that died waiting.
async fn dead_waiter(raw: &mut redis::aio::MultiplexedConnection, name: &str, lease: Duration) {
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(raw).await.unwrap();
    let expires = seconds * 1000 + micros / 1000 + u64::try_from(lease.as_millis()).unwrap();
    let _: () = raw.lpush(key(name).line_key(), "dead").await.unwrap();
    let _: () = raw
        .zadd(key(name).line_leases_key(), "dead", expires)
        .await
        .unwrap();
}

/// Five processes wait for a key another process holds, each joining the
/// line in Redis after the one before: the releases hand the lock on in
/// exactly that order, and each hand-off wakes only the waiter whose turn it
/// is (a handful of attempts each, not one per process per release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_different_processes_are_served_in_arrival_order() {
    let fixture = RedisFixture::start();
    let mut raw = fixture.connection().await;
    let holder = fixture
        .lock()
        .await
        .acquire(&key("line"), &options())
        .await
        .unwrap();
    let (order, mut served) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for process in 0..5usize {
        let lock = fixture.lock().await;
        let order = order.clone();
        waiters.push(tokio::spawn(async move {
            let guard = lock.acquire(&key("line"), &options()).await.unwrap();
            order.send((process, guard.attempts())).unwrap();
            guard.release().await.unwrap();
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while line_len(&mut raw, "line").await < process + 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiter {process} never joined the line"
            );
            tokio::task::yield_now().await;
        }
    }
    holder.release().await.unwrap();
    for waiter in waiters {
        waiter.await.unwrap();
    }
    drop(order);
    let mut sequence = Vec::new();
    while let Some((process, attempts)) = served.recv().await {
        assert!(attempts <= 4, "waiter {process} needed {attempts} attempts");
        sequence.push(process);
    }
    assert_eq!(sequence, [0, 1, 2, 3, 4]);
    assert_eq!(
        line_len(&mut raw, "line").await,
        0,
        "the line was left behind"
    );
}

/// A waiter whose process died at the front of the line (it never tries
/// again) holds the line up only until its line lease runs out; then the
/// next waiter gets the lock, and the dead one is gone from the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_waiter_delays_the_line_only_until_its_lease_runs_out() {
    let mut fixture = RedisFixture::start();
    fixture.config.line_lease = Duration::from_millis(300);
    let mut raw = fixture.connection().await;
    dead_waiter(&mut raw, "dead-head", Duration::from_millis(300)).await;
    let lock = fixture.lock().await;
    let started = tokio::time::Instant::now();
    let guard = lock
        .acquire(
            &key("dead-head"),
            &options().with_wait_timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let line: Vec<String> = raw
        .lrange(key("dead-head").line_key(), 0, -1)
        .await
        .unwrap();
    assert!(line.is_empty(), "{line:?}");
    guard.release().await.unwrap();
}

/// While a live waiter of another process is first in line, the lock is not
/// free for anyone else: `try_acquire` answers `None` and a fused step is
/// `Busy`, although no one holds the lock key itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_jumps_the_line() {
    let fixture = RedisFixture::start();
    let mut raw = fixture.connection().await;
    dead_waiter(&mut raw, "no-jumping", Duration::from_secs(60)).await;
    let lock = fixture.lock().await;
    assert!(
        lock.try_acquire(&key("no-jumping"), &options())
            .await
            .unwrap()
            .is_none()
    );
    let lock_key = key("no-jumping");
    let step = FUSED_INCR.prepare_fused(&lock_key).key(REGISTER);
    assert_eq!(lock.run_fused::<u64>(step).await.unwrap(), Fused::Busy);
    assert_eq!(fixture.register().await, 0);
}

/// A waiter that gives up (wait timeout) leaves the line at once, so the
/// waiter behind it is first when the holder lets go and is woken by that
/// release, not after the gone waiter's line lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_leaves_the_line() {
    let fixture = RedisFixture::start();
    let mut raw = fixture.connection().await;
    let holder = fixture
        .lock()
        .await
        .acquire(&key("give-up"), &options())
        .await
        .unwrap();
    let impatient = fixture.lock().await;
    let quitting = tokio::spawn(async move {
        impatient
            .acquire(
                &key("give-up"),
                &options().with_wait_timeout(Duration::from_millis(300)),
            )
            .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while line_len(&mut raw, "give-up").await < 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    let patient_lock = fixture.lock().await;
    // A fallback backoff longer than the test: only the release can wake it.
    let patient_options = options().with_backoff(Duration::from_secs(20), Duration::from_secs(30));
    let patient = tokio::spawn(async move {
        patient_lock
            .acquire(&key("give-up"), &patient_options)
            .await
    });
    while line_len(&mut raw, "give-up").await < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    assert!(quitting.await.unwrap().unwrap_err().is_timeout());
    while line_len(&mut raw, "give-up").await > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quitter stayed in line"
        );
        tokio::task::yield_now().await;
    }
    holder.release().await.unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(5), patient)
        .await
        .expect("the release woke the next waiter")
        .unwrap()
        .unwrap();
    granted.release().await.unwrap();
}
