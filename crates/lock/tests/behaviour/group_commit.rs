//! `GroupCommit` over every lock implementation: arrival order, batches under
//! one lock hold, lock failures answered per caller, a panicking committer
//! that strands nobody.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use inventory_lock::{Abandoned, Committer, DistributedLock, GroupCommit, LockError, LockGuard};

use crate::suite::{Fixture, key, options, until};

/// Records each batch it commits (item ids, in the order given) and proves it
/// held the lock by a guarded write of the batch's last id.
struct Recorder {
    fixture: Arc<dyn Fixture>,
    batches: Mutex<Vec<Vec<u64>>>,
    /// An item with this id makes `commit` panic.
    poison: Option<u64>,
}

#[async_trait]
impl Committer for Recorder {
    type Item = u64;
    type Output = Result<u64, String>;

    async fn commit(&self, guard: &LockGuard, items: &[u64]) -> Vec<Self::Output> {
        assert!(
            self.poison.is_none_or(|poison| !items.contains(&poison)),
            "poisoned batch"
        );
        self.batches.lock().unwrap().push(items.to_vec());
        let last = *items.last().unwrap();
        match self.fixture.guarded_set(guard, last).await {
            Ok(()) => items.iter().map(|id| Ok(id * 10)).collect(),
            Err(error) => items.iter().map(|_| Err(error.to_string())).collect(),
        }
    }

    async fn lock_failed(&self, error: &LockError, items: &[u64]) -> Vec<Self::Output> {
        items.iter().map(|_| Err(error.to_string())).collect()
    }
}

fn group(
    lock: Arc<dyn DistributedLock>,
    fixture: Arc<dyn Fixture>,
    max_batch: usize,
    poison: Option<u64>,
    wait: Duration,
) -> GroupCommit<Recorder> {
    GroupCommit::new(
        lock,
        options().with_wait_timeout(wait),
        NonZeroUsize::new(max_batch).unwrap(),
        Recorder {
            fixture,
            batches: Mutex::default(),
            poison,
        },
    )
}

/// Submits ids `0..n` one after another, each queued before the next is
/// submitted, while another process holds the key; returns their answers once
/// the holder lets go.
async fn submit_while_held(
    fixture: Arc<dyn Fixture>,
    group: &GroupCommit<Recorder>,
    lock: &Arc<dyn DistributedLock>,
    name: &str,
    n: u64,
) -> Vec<Result<Result<u64, String>, Abandoned>> {
    let holder_process = fixture.process().await;
    let holder = holder_process
        .acquire(&key(name), &options())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for id in 0..n {
        let (line, lock_key) = (group.clone(), key(name));
        tasks.push(tokio::spawn(
            async move { line.submit(&lock_key, id).await },
        ));
        if id == 0 {
            // The worker took item 0 and is now waiting for the lock.
            until("the worker to wait for the lock", || {
                lock.local_waiters(&key(name)) == 1
            })
            .await;
        } else {
            let queued = usize::try_from(id).unwrap();
            until("the item to queue", || group.waiting(&key(name)) == queued).await;
        }
    }
    holder.release().await.unwrap();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Ten callers queued behind a held lock are committed in the order they
/// arrived, in batches of at most `max_batch` (the first batch takes along
/// everyone who queued while it waited), and each gets its own answer.
pub(crate) async fn batches_keep_arrival_order(fixture: Arc<dyn Fixture>) {
    let lock = fixture.process().await;
    let group = group(
        lock.clone(),
        fixture.clone(),
        4,
        None,
        Duration::from_secs(30),
    );
    let answers = submit_while_held(fixture.clone(), &group, &lock, "gc-order", 10).await;
    let expected: Vec<_> = (0..10).map(|id| Ok(Ok(id * 10))).collect();
    assert_eq!(answers, expected);
    assert_eq!(
        *group.committer().batches.lock().unwrap(),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
    assert_eq!(fixture.register().await, 9, "the last batch wrote last");
    assert_eq!(group.waiting(&key("gc-order")), 0);
}

/// `max_batch = 1` is one lock hold per caller, as without group commit.
pub(crate) async fn batch_of_one_is_one_hold_per_caller(fixture: Arc<dyn Fixture>) {
    let lock = fixture.process().await;
    let group = group(
        lock.clone(),
        fixture.clone(),
        1,
        None,
        Duration::from_secs(30),
    );
    let answers = submit_while_held(fixture.clone(), &group, &lock, "gc-one", 3).await;
    assert!(answers.iter().all(|answer| matches!(answer, Ok(Ok(_)))));
    assert_eq!(
        *group.committer().batches.lock().unwrap(),
        vec![vec![0], vec![1], vec![2]]
    );
}

/// A batch that cannot get the lock in time answers every member with the
/// lock error, commits nothing, and the line keeps working afterwards.
pub(crate) async fn lock_timeout_answers_every_member(fixture: Arc<dyn Fixture>) {
    let lock = fixture.process().await;
    let group = group(
        lock.clone(),
        fixture.clone(),
        8,
        None,
        Duration::from_millis(100),
    );
    let holder_process = fixture.process().await;
    let holder = holder_process
        .acquire(&key("gc-timeout"), &options())
        .await
        .unwrap();
    let lock_key = key("gc-timeout");
    let answers = futures::future::join_all((0..3).map(|id| group.submit(&lock_key, id))).await;
    for answer in answers {
        let error = answer.unwrap().unwrap_err();
        assert!(error.contains("timed out"), "{error}");
    }
    assert!(group.committer().batches.lock().unwrap().is_empty());
    holder.release().await.unwrap();
    assert_eq!(group.submit(&key("gc-timeout"), 7).await, Ok(Ok(70)));
}

/// A caller that queued behind a batch waiting for the lock is answered by its
/// own wait timeout, counted from its arrival — not after the batch in front has
/// timed out *and* a whole timeout of its own.
pub(crate) async fn a_caller_behind_a_timed_out_batch_waits_only_its_own_timeout(
    fixture: Arc<dyn Fixture>,
) {
    const WAIT: Duration = Duration::from_millis(1000);
    let lock = fixture.process().await;
    let group = Arc::new(group(lock.clone(), fixture.clone(), 8, None, WAIT));
    let holder_process = fixture.process().await;
    let holder = holder_process
        .acquire(&key("gc-deadline"), &options())
        .await
        .unwrap();
    let first = tokio::spawn({
        let group = group.clone();
        async move { group.submit(&key("gc-deadline"), 1).await }
    });
    until("the first batch to wait for the lock", || {
        lock.local_waiters(&key("gc-deadline")) == 1
    })
    .await;
    let arrived = tokio::time::Instant::now();
    let second = group.submit(&key("gc-deadline"), 2).await;
    let waited = arrived.elapsed();
    assert!(second.unwrap().unwrap_err().contains("timed out"));
    assert!(first.await.unwrap().unwrap().is_err());
    assert!(waited >= WAIT - Duration::from_millis(20), "{waited:?}");
    // Two timeouts (the batch in front, then its own) would be ~2 s.
    assert!(waited < WAIT + WAIT / 2, "waited {waited:?}");
    holder.release().await.unwrap();
}

/// A committer that panics answers its batch `Abandoned` and does not strand
/// the line: the next caller gets a new worker.
pub(crate) async fn a_panicking_committer_strands_nobody(fixture: Arc<dyn Fixture>) {
    let lock = fixture.process().await;
    let group = group(lock, fixture, 8, Some(13), Duration::from_secs(30));
    assert_eq!(group.submit(&key("gc-panic"), 13).await, Err(Abandoned));
    assert_eq!(group.submit(&key("gc-panic"), 1).await, Ok(Ok(10)));
}

/// A caller that gives up while still in the line is never committed.
pub(crate) async fn a_caller_gone_from_the_line_is_skipped(fixture: Arc<dyn Fixture>) {
    let lock = fixture.process().await;
    let group = group(
        lock.clone(),
        fixture.clone(),
        8,
        None,
        Duration::from_secs(30),
    );
    let holder_process = fixture.process().await;
    let holder = holder_process
        .acquire(&key("gc-gone"), &options())
        .await
        .unwrap();
    let first = tokio::spawn({
        let group = group.clone();
        async move { group.submit(&key("gc-gone"), 1).await }
    });
    until("the worker to wait for the lock", || {
        lock.local_waiters(&key("gc-gone")) == 1
    })
    .await;
    let gone = tokio::spawn({
        let group = group.clone();
        async move { group.submit(&key("gc-gone"), 2).await }
    });
    until("the second caller to queue", || {
        group.waiting(&key("gc-gone")) == 1
    })
    .await;
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    holder.release().await.unwrap();
    assert_eq!(first.await.unwrap(), Ok(Ok(10)));
    assert_eq!(*group.committer().batches.lock().unwrap(), vec![vec![1]]);
}
