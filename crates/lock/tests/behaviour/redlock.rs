//! `Redlock` against real redis-server processes: N lock nodes plus a data
//! node (the fence store), all started per test.
//!
//! Lock nodes run with `appendfsync always` and are declared so, except in the
//! restart test: a node that is not durable sits out `max_ttl` after it starts,
//! which is exactly what that test checks.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use inventory_lock::{
    DistributedLock, GuardedScript, LockError, LockGuard, LockKey, MIN_REDLOCK_NODES, Redlock,
    RedlockConfig, RedlockNode, ScriptArgs,
};
use lockstock_test_support::{RedisNodes, RedisServer};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::suite::{self, Fixture, key, options};

const REGISTER: &str = "{test:register}:value";
const DURABLE: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

struct RedlockFixture {
    nodes: RedisNodes,
    data: RedisServer,
    config: RedlockConfig,
}

impl RedlockFixture {
    /// `n` durable lock nodes and a data node.
    fn start(n: usize) -> Self {
        Self {
            nodes: RedisNodes::start_with(n, DURABLE),
            data: RedisServer::start(),
            config: RedlockConfig {
                // Generous: the test machine is shared and busy, and the nodes
                // fsync every write (a stalled fsync once took a node past
                // 250 ms). Tests about the node timeout set their own.
                node_timeout: Some(Duration::from_secs(1)),
                ..RedlockConfig::default()
            },
        }
    }

    /// A new "process": its own connections, queues and notification subscriptions.
    async fn lock(&self) -> Redlock {
        let nodes = self
            .nodes
            .urls()
            .iter()
            .map(|url| RedlockNode::from_url(url).unwrap().fsync_always())
            .collect::<Vec<_>>();
        let fence_store = redis::Client::open(self.data.url()).unwrap();
        Redlock::connect(nodes, fence_store, self.config.clone())
            .await
            .unwrap()
    }

    async fn data(&self) -> MultiplexedConnection {
        connect(&self.data.url()).await
    }

    /// Waits until no lock node among `alive` stores `key` (the background
    /// releases have run), and panics after 10 s.
    async fn until_free(&self, key: &LockKey, alive: impl IntoIterator<Item = usize>) {
        for index in alive {
            let mut node = connect(&self.nodes[index].url()).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let exists: bool = node.exists(key.as_str()).await.unwrap();
                if !exists {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {index} still holds {key} 10 s later"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

async fn connect(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// `SET register value`, only while `guard` holds the lock.
static SET_REGISTER: LazyLock<GuardedScript> =
    LazyLock::new(|| GuardedScript::new("redis.call('SET', KEYS[1], ARGV[1]) return 1"));

#[async_trait]
impl Fixture for RedlockFixture {
    async fn process(&self) -> Arc<dyn DistributedLock> {
        Arc::new(self.lock().await)
    }

    async fn guarded_set(&self, guard: &LockGuard, value: u64) -> Result<(), LockError> {
        let mut connection = self.data().await;
        let _: i64 = SET_REGISTER
            .prepare(guard)
            .key(REGISTER)
            .arg(value)
            .invoke(&mut connection)
            .await?;
        Ok(())
    }

    async fn register(&self) -> u64 {
        let value: Option<u64> = self.data().await.get(REGISTER).await.unwrap();
        value.unwrap_or(0)
    }
}

macro_rules! shared_behaviour {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            suite::$name(&RedlockFixture::start(5)).await;
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

#[tokio::test]
async fn same_process_waiters_are_fifo() {
    suite::same_process_waiters_are_fifo(&RedlockFixture::start(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_aborts_when_lease_is_lost() {
    let fixture = RedlockFixture::start(3);
    let urls = fixture.nodes.urls();
    suite::watchdog_aborts_when_lease_is_lost(&fixture, async move || {
        for url in urls {
            let _: i64 = connect(&url)
                .await
                .del(key("stolen").as_str())
                .await
                .unwrap();
        }
    })
    .await;
}

/// Fewer than three nodes, or one node twice, is refused before anything
/// connects; a lease longer than `max_ttl` is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_with_clear_errors() {
    let two = ["redis://127.0.0.1:1/", "redis://127.0.0.1:2/"];
    let error = match Redlock::from_urls(two, "redis://127.0.0.1:3/").await {
        Ok(_) => panic!("accepted two nodes"),
        Err(error) => error,
    };
    assert!(
        error.to_string().contains("at least 3"),
        "unclear message: {error}"
    );
    assert_eq!(MIN_REDLOCK_NODES, 3);
    let twice = [
        "redis://127.0.0.1:1/",
        "redis://127.0.0.1:2/",
        "redis://127.0.0.1:1",
    ];
    let error = match Redlock::from_urls(twice, "redis://127.0.0.1:3/").await {
        Ok(_) => panic!("accepted a node twice"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("twice"), "{error}");

    let fixture = RedlockFixture::start(3);
    let lock = fixture.lock().await;
    let too_long = options().with_ttl(fixture.config.max_ttl + Duration::from_millis(1));
    let error = lock.acquire(&key("long"), &too_long).await.unwrap_err();
    assert!(error.to_string().contains("max_ttl"), "{error}");
}

/// Five nodes, two killed: one before the lock is built, one while it is
/// held. Acquire, guarded write, extension, release and the next acquisition
/// all still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_five_nodes_killed_before_and_during_a_hold() {
    let mut fixture = RedlockFixture::start(5);
    fixture.nodes[0].kill();
    let lock = fixture.lock().await;
    let status = lock.status().await;
    assert_eq!(status.nodes.iter().filter(|n| n.reachable).count(), 4);
    assert!(!status.nodes[0].reachable && status.nodes[0].error.is_some());
    assert!(status.is_ready(), "{status:?}");

    let guard = lock.acquire(&key("minority"), &options()).await.unwrap();
    fixture.nodes[1].kill();
    fixture.guarded_set(&guard, 1).await.unwrap();
    guard.extend(Duration::from_secs(10)).await.unwrap();
    let fence = guard.fencing_token();
    guard.release().await.unwrap();

    let again = lock.acquire(&key("minority"), &options()).await.unwrap();
    assert!(again.fencing_token() > fence);
    fixture.guarded_set(&again, 2).await.unwrap();
    again.release().await.unwrap();
    assert_eq!(fixture.register().await, 2);
    assert!(lock.status().await.has_quorum());
}

/// A waiter is woken by a release announced on any node: two nodes are dead
/// while it waits, and its fallback backoff is longer than its whole wait, so
/// only a wake-up from the other three can get it the lock in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_come_from_any_node() {
    let mut fixture = RedlockFixture::start(5);
    let holder_process = fixture.lock().await;
    let waiter_process = fixture.lock().await;
    let holder = holder_process
        .acquire(&key("any"), &options())
        .await
        .unwrap();
    fixture.nodes[0].kill();
    fixture.nodes[1].kill();
    let patient = options()
        .with_wait_timeout(Duration::from_secs(3))
        .with_backoff(Duration::from_secs(4), Duration::from_secs(5));
    let waiter = {
        let waiter_process = waiter_process.clone();
        tokio::spawn(async move { waiter_process.acquire(&key("any"), &patient).await })
    };
    // The waiter listens on the three live nodes.
    for index in 2..5 {
        let mut node = connect(&fixture.nodes[index].url()).await;
        suite::until_async("the waiter to subscribe", async || {
            let (_, subscribers): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(key("any").release_channel())
                .query_async(&mut node)
                .await
                .unwrap();
            subscribers == 1
        })
        .await;
    }
    holder.release().await.unwrap();
    let granted = waiter.await.unwrap().expect("woken by the release");
    granted.release().await.unwrap();
}

/// Three of five nodes killed: acquisition gives up at its wait timeout with
/// `NoQuorum` (a timeout-like error: retry later), leaves nothing held on the
/// two survivors and mints no fencing token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_of_five_nodes_killed_fails_within_the_wait_and_leaves_nothing() {
    let mut fixture = RedlockFixture::start(5);
    let lock = fixture.lock().await;
    for index in 0..3 {
        fixture.nodes[index].kill();
    }
    let wait = Duration::from_millis(400);
    let started = Instant::now();
    let error = lock
        .acquire(&key("majority"), &options().with_wait_timeout(wait))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(error.is_no_quorum() && error.is_timeout(), "{error}");
    assert!(
        took >= wait && took < wait + Duration::from_secs(2),
        "gave up after {took:?}"
    );
    match error {
        LockError::NoQuorum {
            answered,
            nodes,
            quorum,
            attempts,
            ..
        } => {
            assert_eq!((answered, nodes, quorum), (2, 5, 3));
            assert!(attempts > 1, "retried until the deadline");
        }
        other => panic!("{other}"),
    }

    fixture.until_free(&key("majority"), 3..5).await;
    let minted: Option<u64> = fixture
        .data()
        .await
        .get(key("majority").fence_key())
        .await
        .unwrap();
    assert_eq!(minted, None, "a fencing token was minted without a quorum");
    let status = lock.status().await;
    assert_eq!(status.counting, 2);
    assert!(!status.has_quorum() && !status.is_ready());
    assert!(
        lock.try_acquire(&key("majority"), &options())
            .await
            .unwrap_err()
            .is_no_quorum()
    );
}

/// Stopped nodes (SIGSTOP) cost a round at most the per-node timeout, and
/// only when the round needs their answer. The requests they missed run when
/// they resume, in order, so nothing stays held there either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_nodes_delay_a_round_by_at_most_the_node_timeout() {
    let mut fixture = RedlockFixture::start(5);
    let node_timeout = Duration::from_millis(150);
    fixture.config.node_timeout = Some(node_timeout);
    let lock = fixture.lock().await;
    fixture.nodes[3].pause();
    fixture.nodes[4].pause();

    // The three running nodes make a quorum on their own: no waiting at all.
    let guard = lock.acquire(&key("paused"), &options()).await.unwrap();
    assert_eq!(guard.attempts(), 1);
    fixture.guarded_set(&guard, 5).await.unwrap();
    guard.release().await.unwrap();

    // Someone else holds node 0: two yes, one no, two silent. The round is
    // undecided until the stopped nodes' timeouts, and over right after.
    let mut node0 = connect(&fixture.nodes[0].url()).await;
    let _: () = redis::cmd("SET")
        .arg(key("undecided").as_str())
        .arg("someone-else")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut node0)
        .await
        .unwrap();
    let started = Instant::now();
    let refused = lock
        .try_acquire(&key("undecided"), &options())
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(refused.is_none());
    assert!(
        took >= node_timeout && took < node_timeout + Duration::from_secs(1),
        "round took {took:?}"
    );

    fixture.nodes[3].resume();
    fixture.nodes[4].resume();
    fixture.until_free(&key("paused"), 0..5).await;
    fixture.until_free(&key("undecided"), 1..5).await;
    let next = lock.acquire(&key("paused"), &options()).await.unwrap();
    next.release().await.unwrap();
}

/// A node that restarts without fsync-always persistence has forgotten the
/// locks it held; it takes no part in quorums until `max_ttl` has passed since
/// its restart. Without that, two restarted nodes of three would hand a second
/// process the lock the first one still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_empty_does_not_count_until_max_ttl_has_passed() {
    let mut nodes = RedisNodes::start(3);
    let data = RedisServer::start();
    let config = RedlockConfig {
        max_ttl: Duration::from_secs(1),
        node_timeout: Some(Duration::from_millis(250)),
        ..RedlockConfig::default()
    };
    let process = async |nodes: &RedisNodes| {
        let urls = nodes.urls();
        let nodes = urls.iter().map(|url| RedlockNode::from_url(url).unwrap());
        let fence_store = redis::Client::open(data.url()).unwrap();
        Redlock::connect(nodes, fence_store, config.clone())
            .await
            .unwrap()
    };
    let ttl = options().with_ttl(config.max_ttl);

    // Freshly started nodes may just have restarted: they sit out max_ttl too.
    let first = process(&nodes).await;
    let status = first.status().await;
    assert!(!status.has_quorum(), "{status:?}");
    assert!(status.nodes.iter().all(|n| n.quarantine_left.is_some()));
    let early = first
        .acquire(
            &key("restart"),
            &ttl.clone().with_wait_timeout(Duration::ZERO),
        )
        .await
        .unwrap_err();
    assert!(early.is_no_quorum(), "{early}");
    until_ready(&first).await;

    let holder = first.acquire(&key("restart"), &ttl).await.unwrap();
    let before_restart = Instant::now();
    nodes[1].restart();
    nodes[2].restart();

    // Nodes 1 and 2 would grant it (they forgot the lock); node 0 refuses.
    // Neither the holder's own process (which notices the restarts when its
    // connections break) nor a new one may count the restarted nodes.
    let refused = first
        .acquire(
            &key("restart"),
            &ttl.clone().with_wait_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(refused.is_no_quorum(), "{refused}");
    let status = first.status().await;
    assert_eq!(status.counting, 1, "only node 0 counts: {status:?}");
    assert!(status.nodes[1].quarantine_left.is_some());
    assert!(status.nodes[2].quarantine_left.is_some());
    let second = process(&nodes).await;
    let refused = second
        .acquire(
            &key("restart"),
            &ttl.clone().with_wait_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(refused.is_no_quorum(), "{refused}");

    // Once max_ttl has passed since the restart they count again.
    let next = second
        .acquire(
            &key("restart"),
            &ttl.clone().with_wait_timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(
        before_restart.elapsed() >= config.max_ttl,
        "a restarted node counted {:?} after its restart",
        before_restart.elapsed()
    );
    assert!(next.fencing_token() > holder.fencing_token());
    next.release().await.unwrap();
}

/// A node declared fsync-always remembers its locks across a restart, so it
/// counts again as soon as it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_node_counts_again_at_once_and_remembers_its_locks() {
    let mut fixture = RedlockFixture::start(3);
    let first = fixture.lock().await;
    let holder = first.acquire(&key("durable"), &options()).await.unwrap();
    fixture.nodes[1].restart();
    fixture.nodes[2].restart();

    let second = fixture.lock().await;
    let status = second.status().await;
    assert!(status.has_quorum(), "{status:?}");
    assert!(status.nodes.iter().all(|n| n.quarantine_left.is_none()));
    assert!(
        second
            .try_acquire(&key("durable"), &options())
            .await
            .unwrap()
            .is_none(),
        "the restarted nodes forgot the lock"
    );
    drop(holder);
    let next = second.acquire(&key("durable"), &options()).await.unwrap();
    next.release().await.unwrap();
}

async fn until_ready(lock: &Redlock) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lock.status().await.is_ready() {
        assert!(Instant::now() < deadline, "no quorum within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A holder whose write was sent while its lease was valid, but reached the
/// data node only after the lease expired and the next holder had acquired,
/// is refused by the fence check — even though the next holder has not
/// written anything yet. The next holder's write succeeds.
///
/// The delay in transit is real: the write is queued behind a blocking
/// `BLPOP` on the same connection, so the data node receives it first and
/// executes it only once the test unblocks the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_delayed_past_the_lease_is_refused_once_the_next_holder_acquires() {
    const STALL: &str = "{test:stall}:gate";
    let fixture = RedlockFixture::start(5);
    let first = fixture.lock().await;
    let second = fixture.lock().await;
    let ttl = options().with_ttl(Duration::from_secs(1));
    let stale = Arc::new(first.acquire(&key("stalled"), &ttl).await.unwrap());
    fixture.guarded_set(&stale, 1).await.unwrap();

    // The stale holder's connection to the data node stalls server-side
    // (no client-side response timeout: the stall is the point).
    let delayed = redis::Client::open(fixture.data.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(None),
        )
        .await
        .unwrap();
    let blocker = {
        let mut connection = delayed.clone();
        tokio::spawn(async move {
            let _: Option<(String, String)> = connection.blpop(STALL, 0.0).await.unwrap();
        })
    };
    let mut observer = fixture.data().await;
    suite::until_async("the connection to block", async || {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut observer)
            .await
            .unwrap();
        info.contains("blocked_clients:1")
    })
    .await;
    assert!(
        stale.is_held(),
        "the write is sent while the lease is valid"
    );
    let write = {
        let (stale, mut connection) = (Arc::clone(&stale), delayed.clone());
        tokio::spawn(async move {
            SET_REGISTER
                .prepare(&stale)
                .key(REGISTER)
                .arg(2)
                .invoke::<i64>(&mut connection)
                .await
        })
    };

    // Its lease runs out (Redis expires the keys on every node) and the next
    // holder acquires, minting a newer fence. It writes nothing yet.
    for url in fixture.nodes.urls() {
        let mut node = connect(&url).await;
        suite::until_async("the stale lease to expire", async || {
            let pttl: i64 = node.pttl(key("stalled").as_str()).await.unwrap();
            pttl == -2
        })
        .await;
    }
    let next = second.acquire(&key("stalled"), &options()).await.unwrap();
    assert!(next.fencing_token() > stale.fencing_token());
    assert!(!write.is_finished(), "the write was still in transit");

    let _: i64 = observer.lpush(STALL, "go").await.unwrap();
    blocker.await.unwrap();
    let refused = write.await.unwrap().unwrap_err();
    assert!(refused.is_lease_lost(), "{refused}");
    assert_eq!(fixture.register().await, 1, "the late write was applied");

    fixture.guarded_set(&next, 3).await.unwrap();
    assert_eq!(fixture.register().await, 3);
    next.release().await.unwrap();
}

/// The fence alone decides: a holder whose keys vanished without its knowledge
/// (what a forward clock jump on the lock nodes does) can still write while
/// nobody else has acquired — no other guarded write can have come between —
/// and is refused from the moment somebody has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_refuses_an_unseen_lost_holder_from_the_next_acquisition_on() {
    let fixture = RedlockFixture::start(5);
    let first = fixture.lock().await;
    let second = fixture.lock().await;
    let stale = first.acquire(&key("jump"), &options()).await.unwrap();
    for url in fixture.nodes.urls() {
        let _: i64 = connect(&url).await.del(key("jump").as_str()).await.unwrap();
    }
    assert!(stale.is_held(), "locally the lease still looks valid");
    fixture.guarded_set(&stale, 1).await.unwrap();

    let next = second.acquire(&key("jump"), &options()).await.unwrap();
    let refused = fixture.guarded_set(&stale, 2).await.unwrap_err();
    assert!(refused.is_lease_lost(), "{refused}");
    assert!(!stale.is_held(), "a refused write marks the lease lost");
    fixture.guarded_set(&next, 3).await.unwrap();
    assert_eq!(fixture.register().await, 3);
    next.release().await.unwrap();
}

/// `SET counter ARGV[1]`, returning the writer's fence.
static WRITE_COUNTER: LazyLock<GuardedScript> =
    LazyLock::new(|| GuardedScript::new("redis.call('SET', KEYS[1], ARGV[1]) return FENCE"));

/// Three independent Redlock "processes" increment a counter on the data node
/// with a read outside the script and a guarded write: any overlap of two
/// holders would lose an increment (or have a write refused). The count stays
/// exact, and the fences seen inside the critical sections strictly increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_counter_stays_exact_across_processes() {
    const TASKS: u64 = 60;
    const COUNTER: &str = "{test:counter}:value";
    let fixture = Arc::new(RedlockFixture::start(5));
    let processes = [
        fixture.lock().await,
        fixture.lock().await,
        fixture.lock().await,
    ];
    let fences = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let lock = processes[usize::try_from(i % 3).unwrap()].clone();
        let fences = Arc::clone(&fences);
        let mut data = lock.fence_store();
        tasks.push(tokio::spawn(async move {
            let guard = lock.acquire(&key("counter"), &options()).await.unwrap();
            let seen: Option<u64> = data.get(COUNTER).await.unwrap();
            tokio::task::yield_now().await;
            let fence: u64 = WRITE_COUNTER
                .prepare(&guard)
                .key(COUNTER)
                .arg(seen.unwrap_or(0) + 1)
                .invoke(&mut data)
                .await
                .unwrap();
            assert_eq!(fence, guard.fencing_token().get());
            fences.lock().unwrap().push(fence);
            guard.release().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counter: u64 = fixture.data().await.get(COUNTER).await.unwrap();
    assert_eq!(counter, TASKS);
    let fences = fences.lock().unwrap();
    assert!(
        fences.windows(2).all(|pair| pair[0] < pair[1]),
        "fences out of order: {fences:?}"
    );
}

/// If the fence store fails after a quorum was won, the acquisition fails
/// (never an unfenced guard) and the quorum is released on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fence_mint_fails_the_acquisition_and_releases_the_quorum() {
    let mut fixture = RedlockFixture::start(3);
    let lock = fixture.lock().await;
    fixture.data.kill();
    let error = lock
        .acquire(&key("unfenced"), &options())
        .await
        .unwrap_err();
    assert!(error.is_backend(), "{error}");
    assert!(error.to_string().contains("fencing token"), "{error}");
    fixture.until_free(&key("unfenced"), 0..3).await;
    assert!(!lock.status().await.is_ready());
}

/// Acquire futures dropped at arbitrary points of a round — before the
/// requests leave, while votes are in flight, during the fence mint — never
/// leave the key held on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_futures_dropped_mid_flight_leave_nothing_held() {
    let fixture = RedlockFixture::start(5);
    let lock = fixture.lock().await;
    let mut cancelled = 0;
    for round in 0..120u64 {
        let budget = Duration::from_micros(round * 25);
        match tokio::time::timeout(budget, lock.acquire(&key("midflight"), &options())).await {
            Ok(guard) => guard.unwrap().release().await.unwrap(),
            Err(_) => cancelled += 1,
        }
        fixture.until_free(&key("midflight"), 0..5).await;
    }
    assert!(
        cancelled > 0,
        "no acquire was cancelled; the test exercised nothing"
    );
}
