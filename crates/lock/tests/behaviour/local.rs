//! `LocalLock`: the same behaviour in-process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use inventory_lock::{DistributedLock, LocalLock, LockError, LockGuard};

use crate::suite::{self, Fixture, key, options};

#[derive(Default)]
struct LocalFixture {
    lock: LocalLock,
    register: AtomicU64,
}

#[async_trait]
impl Fixture for LocalFixture {
    async fn process(&self) -> Arc<dyn DistributedLock> {
        Arc::new(self.lock.clone())
    }

    async fn guarded_set(&self, guard: &LockGuard, value: u64) -> Result<(), LockError> {
        self.lock
            .guarded(guard, || self.register.store(value, Ordering::SeqCst))
    }

    async fn register(&self) -> u64 {
        self.register.load(Ordering::SeqCst)
    }
}

macro_rules! group_commit_behaviour {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            crate::group_commit::$name(Arc::new(LocalFixture::default())).await;
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
            suite::$name(&LocalFixture::default()).await;
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
    suite::same_process_waiters_are_fifo(&LocalFixture::default()).await;
}

/// Leases run on tokio's clock: with time paused, a lease expires exactly when
/// virtual time passes its TTL and not a moment before.
#[tokio::test(start_paused = true)]
async fn leases_follow_tokio_time() {
    let lock = LocalLock::new();
    let ttl = Duration::from_secs(10);
    let guard = lock
        .acquire(&key("virtual"), &options().with_ttl(ttl))
        .await
        .unwrap();
    tokio::time::advance(ttl - Duration::from_millis(1)).await;
    assert!(
        lock.try_acquire(&key("virtual"), &options())
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let next = lock
        .try_acquire(&key("virtual"), &options())
        .await
        .unwrap()
        .unwrap();
    assert!(next.fencing_token() > guard.fencing_token());
    assert!(lock.guarded(&guard, || ()).unwrap_err().is_lease_lost());
    assert!(lock.guarded(&next, || ()).is_ok());
}

/// `guarded_many` writes only while every lease of the set holds: one expired
/// key among three is enough to refuse the write, and nothing runs.
#[tokio::test(start_paused = true)]
async fn guarded_many_needs_every_lease() {
    let lock = LocalLock::new();
    let keys = [key("m-c"), key("m-a"), key("m-b")];
    let set = lock
        .acquire_many(&keys, &options().with_ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(lock.guarded_many(&set, || 7).unwrap(), 7);
    // Another holder takes one key once its lease ran out.
    tokio::time::advance(Duration::from_secs(10)).await;
    let thief = lock
        .try_acquire(&key("m-b"), &options())
        .await
        .unwrap()
        .unwrap();
    let mut ran = false;
    let refused = lock.guarded_many(&set, || ran = true).unwrap_err();
    assert!(refused.is_lease_lost());
    assert!(!ran, "a write ran without every lease");
    assert!(lock.guarded(&thief, || ()).is_ok());
}
