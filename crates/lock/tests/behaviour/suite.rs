//! Behaviour shared by every `DistributedLock`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use inventory_lock::{AcquireOptions, DistributedLock, LockError, LockGuard, LockKey};
use tokio::sync::mpsc;

/// Builds lock instances for a test.
#[async_trait]
pub(crate) trait Fixture: Send + Sync {
    /// A lock handle that behaves like another process would: for Redis a new
    /// `RedisLock` with its own connections and queues, for `LocalLock` a clone.
    async fn process(&self) -> Arc<dyn DistributedLock>;

    /// Runs a guarded write of `value` to the fixture's own register under `guard`.
    async fn guarded_set(&self, guard: &LockGuard, value: u64) -> Result<(), LockError>;

    /// Reads that register.
    async fn register(&self) -> u64;
}

pub(crate) fn key(name: &str) -> LockKey {
    LockKey::new(format!("{{test:{name}}}:lock")).unwrap()
}

pub(crate) fn options() -> AcquireOptions {
    AcquireOptions::default()
        .with_ttl(Duration::from_secs(10))
        .with_wait_timeout(Duration::from_secs(30))
}

/// Yields until `condition` holds; panics after 10 s. Used to wait for a state
/// change in another task, never as a timer.
pub(crate) async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Like [`until`], for a condition that has to ask Redis.
pub(crate) async fn until_async(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// 200 tasks spread over two "processes" each do a deliberately non-atomic
/// read-yield-write of a shared counter under the lock. Any overlap of two
/// holders loses an increment or trips the in-section flag.
pub(crate) async fn mutual_exclusion(fixture: &dyn Fixture) {
    const TASKS: u64 = 200;
    let processes = [fixture.process().await, fixture.process().await];
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let lock = Arc::clone(&processes[(i % 2) as usize]);
        let (counter, inside) = (Arc::clone(&counter), Arc::clone(&inside));
        tasks.push(tokio::spawn(async move {
            let guard = lock.acquire(&key("mutex"), &options()).await.unwrap();
            assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
            let seen = counter.load(Ordering::SeqCst);
            tokio::task::yield_now().await;
            counter.store(seen + 1, Ordering::SeqCst);
            inside.store(false, Ordering::SeqCst);
            guard.release().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), TASKS);
}

/// Fencing tokens strictly increase across successive holders.
pub(crate) async fn fencing_tokens_increase(fixture: &dyn Fixture) {
    let lock = fixture.process().await;
    let mut last = 0;
    for _ in 0..5 {
        let guard = lock.acquire(&key("fence"), &options()).await.unwrap();
        assert!(guard.fencing_token().get() > last);
        last = guard.fencing_token().get();
        guard.release().await.unwrap();
    }
}

/// A holder past its TTL can neither release, extend nor write, and the next
/// holder gets a larger fencing token.
pub(crate) async fn expired_holder_is_powerless(fixture: &dyn Fixture) {
    let lock = fixture.process().await;
    let short = options().with_ttl(Duration::from_millis(100));
    let stale = lock.acquire(&key("expiry"), &short).await.unwrap();
    stale.lost().await;
    assert!(!stale.is_held());

    let next = lock.acquire(&key("expiry"), &options()).await.unwrap();
    assert!(next.fencing_token() > stale.fencing_token());
    assert!(
        fixture
            .guarded_set(&stale, 1)
            .await
            .unwrap_err()
            .is_lease_lost()
    );
    assert!(
        stale
            .extend(Duration::from_secs(10))
            .await
            .unwrap_err()
            .is_lease_lost()
    );
    fixture.guarded_set(&next, 2).await.unwrap();
    assert!(stale.release().await.unwrap_err().is_not_owner());
    // The stale release did not touch the new holder's lock.
    assert!(next.extend(Duration::from_secs(10)).await.is_ok());
    assert_eq!(fixture.register().await, 2);
    next.release().await.unwrap();
}

/// Same-process waiters get the lock in the order they asked for it.
pub(crate) async fn same_process_waiters_are_fifo(fixture: &dyn Fixture) {
    const WAITERS: usize = 8;
    let lock = fixture.process().await;
    let holder = lock.acquire(&key("fifo"), &options()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let (waiter, tx) = (Arc::clone(&lock), tx.clone());
        tasks.push(tokio::spawn(async move {
            let guard = waiter.acquire(&key("fifo"), &options()).await.unwrap();
            tx.send(i).unwrap();
            guard.release().await.unwrap();
        }));
        // Waiter i is in line before waiter i + 1 is started.
        until("waiter to queue", || {
            lock.local_waiters(&key("fifo")) == i + 1
        })
        .await;
    }
    holder.release().await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let order: Vec<usize> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(order, (0..WAITERS).collect::<Vec<_>>());
}

/// A waiter in another process is woken by the release itself: its fallback
/// backoff is longer than its whole wait, so only a wake-up can get it the lock,
/// and it needs at most three attempts (refused, refused after subscribing, granted).
pub(crate) async fn release_wakes_the_waiter(fixture: &dyn Fixture) {
    let holder_process = fixture.process().await;
    let waiter_process = fixture.process().await;
    let holder = holder_process
        .acquire(&key("wake"), &options())
        .await
        .unwrap();
    let patient = options()
        .with_wait_timeout(Duration::from_secs(3))
        .with_backoff(Duration::from_secs(4), Duration::from_secs(5));
    let waiter = {
        let waiter_process = Arc::clone(&waiter_process);
        tokio::spawn(async move { waiter_process.acquire(&key("wake"), &patient).await })
    };
    until("waiter to contend", || {
        waiter_process.local_waiters(&key("wake")) == 1
    })
    .await;
    let holder_fence = holder.fencing_token();
    holder.release().await.unwrap();
    let granted = waiter
        .await
        .unwrap()
        .expect("woken before the wait timeout");
    assert!(granted.attempts() <= 3, "attempts: {}", granted.attempts());
    assert_eq!(granted.fencing_token().get(), holder_fence.get() + 1);
    granted.release().await.unwrap();
}

/// Dropping a waiting acquire future and dropping a guard both leave the key free.
pub(crate) async fn cancellation_leaves_nothing_held(fixture: &dyn Fixture) {
    let lock = fixture.process().await;
    let other = fixture.process().await;
    let holder = lock.acquire(&key("cancel"), &options()).await.unwrap();
    let abandoned = {
        let other = Arc::clone(&other);
        tokio::spawn(async move { other.acquire(&key("cancel"), &options()).await })
    };
    until("waiter to contend", || {
        other.local_waiters(&key("cancel")) == 1
    })
    .await;
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    assert_eq!(other.local_waiters(&key("cancel")), 0);
    drop(holder);

    // The dropped guard's release runs in the background: the key frees without
    // anyone calling release, and the abandoned waiter took nothing.
    let quick = options().with_wait_timeout(Duration::from_secs(5));
    let next = other.acquire(&key("cancel"), &quick).await.unwrap();
    next.release().await.unwrap();
    assert!(
        other
            .try_acquire(&key("cancel"), &options())
            .await
            .unwrap()
            .is_some()
    );
}

/// A guard dropped after its lease expired must not release the next holder's lock.
pub(crate) async fn late_drop_does_not_release_the_next_holder(fixture: &dyn Fixture) {
    let lock = fixture.process().await;
    let stale = lock
        .acquire(&key("late"), &options().with_ttl(Duration::from_millis(50)))
        .await
        .unwrap();
    stale.lost().await;
    let next = lock.acquire(&key("late"), &options()).await.unwrap();
    drop(stale);
    // Once the background release of the stale token has run (it finds a
    // different token and deletes nothing), the new lease is still intact.
    let probe = fixture.process().await;
    for _ in 0..20 {
        assert!(
            probe
                .try_acquire(&key("late"), &options())
                .await
                .unwrap()
                .is_none()
        );
        tokio::task::yield_now().await;
    }
    next.extend(Duration::from_secs(10)).await.unwrap();
    next.release().await.unwrap();
}

/// try_acquire never waits.
pub(crate) async fn try_acquire_does_not_wait(fixture: &dyn Fixture) {
    let lock = fixture.process().await;
    let other = fixture.process().await;
    let held = lock
        .try_acquire(&key("try"), &options())
        .await
        .unwrap()
        .unwrap();
    assert!(
        other
            .try_acquire(&key("try"), &options())
            .await
            .unwrap()
            .is_none()
    );
    held.release().await.unwrap();
    assert!(
        other
            .try_acquire(&key("try"), &options())
            .await
            .unwrap()
            .is_some()
    );
}

/// Waiting gives up at the wait timeout with a typed error.
pub(crate) async fn wait_timeout_is_reported(fixture: &dyn Fixture) {
    let lock = fixture.process().await;
    let other = fixture.process().await;
    let held = lock.acquire(&key("timeout"), &options()).await.unwrap();
    let impatient = options().with_wait_timeout(Duration::from_millis(150));
    let error = other
        .acquire(&key("timeout"), &impatient)
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    held.release().await.unwrap();
}

/// Many tasks locking overlapping key sets named in opposite orders all finish
/// (no deadlock), each key's critical section stays exclusive, and a failed
/// multi-acquire rolls back what it took.
pub(crate) async fn multi_key_no_deadlock(fixture: &dyn Fixture) {
    const TASKS: u64 = 40;
    let processes = [fixture.process().await, fixture.process().await];
    let names = ["alpha", "beta", "gamma"];
    let counters: Arc<Vec<AtomicU64>> = Arc::new(names.iter().map(|_| AtomicU64::new(0)).collect());
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let lock = Arc::clone(&processes[(i % 2) as usize]);
        let counters = Arc::clone(&counters);
        let mut keys: Vec<LockKey> = names.iter().map(|name| key(name)).collect();
        if i % 2 == 1 {
            keys.reverse();
        }
        tasks.push(tokio::spawn(async move {
            let guards = lock.acquire_many(&keys, &options()).await.unwrap();
            assert_eq!(guards.guards().len(), 3);
            for counter in counters.iter() {
                let seen = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.store(seen + 1, Ordering::SeqCst);
            }
            guards.release().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for counter in counters.iter() {
        assert_eq!(counter.load(Ordering::SeqCst), TASKS);
    }

    // Rollback: beta is held elsewhere, so [alpha, beta] fails and frees alpha.
    let blocker = processes[0]
        .acquire(&key("beta"), &options())
        .await
        .unwrap();
    let impatient = options().with_wait_timeout(Duration::from_millis(100));
    let error = processes[1]
        .acquire_many(&[key("beta"), key("alpha")], &impatient)
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let alpha = processes[1]
        .acquire(
            &key("alpha"),
            &options().with_wait_timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    alpha.release().await.unwrap();
    blocker.release().await.unwrap();
}

/// `with_lock` renews the lease while the body runs longer than the TTL.
pub(crate) async fn watchdog_renews_long_bodies(fixture: &dyn Fixture) {
    let lock = fixture.process().await;
    let other = fixture.process().await;
    // Short enough that the body outlives it three times, long enough that a
    // loaded machine's scheduling hiccup (renewals come every TTL/3) is not
    // mistaken for a lost lease.
    let short = options().with_ttl(Duration::from_millis(600));
    let probe = Arc::clone(&other);
    let value = inventory_lock::with_lock(lock.as_ref(), &key("watchdog"), &short, async |guard| {
        let start = guard.fencing_token();
        // Outlive three TTLs; the key must stay ours throughout.
        let end = tokio::time::Instant::now() + Duration::from_millis(1_800);
        while tokio::time::Instant::now() < end {
            assert!(
                probe
                    .try_acquire(&key("watchdog"), &options())
                    .await
                    .unwrap()
                    .is_none()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(guard.is_held());
        start
    })
    .await
    .unwrap();
    assert!(value.get() > 0);
    assert!(
        other
            .try_acquire(&key("watchdog"), &options())
            .await
            .unwrap()
            .is_some()
    );
}

/// When the lease is lost under `with_lock`, the body is aborted and the caller
/// gets `LeaseLost`.
pub(crate) async fn watchdog_aborts_when_lease_is_lost(
    fixture: &dyn Fixture,
    steal: impl AsyncFnOnce(),
) {
    let lock = fixture.process().await;
    // Short enough that the body outlives it three times, long enough that a
    // loaded machine's scheduling hiccup (renewals come every TTL/3) is not
    // mistaken for a lost lease.
    let short = options().with_ttl(Duration::from_millis(600));
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let run = tokio::spawn(async move {
        inventory_lock::with_lock(lock.as_ref(), &key("stolen"), &short, async move |_guard| {
            entered_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
        .await
    });
    entered_rx.await.unwrap();
    steal().await;
    let error = run.await.unwrap().unwrap_err();
    assert!(error.is_lease_lost(), "{error}");
}
