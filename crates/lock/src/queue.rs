//! The per-process FIFO queue in front of each key.
//!
//! Within one process, callers that want the same key line up here first; only
//! the head of the line talks to the backend. That gives same-process callers
//! arrival order (tokio's semaphore is FIFO-fair) and keeps a process with a
//! thousand waiters from sending a thousand `SET NX`es per release.
//!
//! The head leaves the line as soon as it holds the lock (not when it releases
//! it): the next caller then becomes head and waits on the backend, so a holder
//! that hangs past its TTL delays local waiters no longer than remote ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::key::LockKey;

/// One FIFO line per key, created on first use and removed when empty.
#[derive(Default)]
pub(crate) struct KeyedQueue {
    lines: Mutex<HashMap<LockKey, Line>>,
}

struct Line {
    /// One permit: being the head. tokio's semaphore queues waiters FIFO.
    head: Arc<Semaphore>,
    /// Callers in line, the head included. Only changed under the map mutex.
    callers: usize,
}

/// Being at the head of a key's line. Dropping it lets the next caller in.
pub(crate) struct Head {
    _permit: OwnedSemaphorePermit,
    _place: Place,
}

/// A place in a key's line, from arrival until the caller leaves (as head, or
/// by giving up). Dropping it updates the count and removes an empty line.
struct Place {
    key: LockKey,
    queue: Arc<KeyedQueue>,
}

impl KeyedQueue {
    /// Waits, in arrival order, to become the head of `key`'s line; `None` if
    /// `deadline` passes first (the caller is then removed from the line).
    pub(crate) async fn enter(self: &Arc<Self>, key: &LockKey, deadline: Instant) -> Option<Head> {
        let (place, head) = self.join(key);
        match tokio::time::timeout_at(deadline, head.acquire_owned()).await {
            Ok(Ok(permit)) => Some(Head {
                _permit: permit,
                _place: place,
            }),
            // Timed out (the semaphore is never closed): `place` leaves the line.
            _ => None,
        }
    }

    /// Becomes head only if nobody in this process is already waiting or contending.
    pub(crate) fn try_enter(self: &Arc<Self>, key: &LockKey) -> Option<Head> {
        let (place, head) = self.join(key);
        let permit = head.try_acquire_owned().ok()?;
        Some(Head {
            _permit: permit,
            _place: place,
        })
    }

    /// Callers in `key`'s line: the head (contending with the backend) and those behind it.
    pub(crate) fn waiting(&self, key: &LockKey) -> usize {
        self.lock().get(key).map_or(0, |line| line.callers)
    }

    /// Number of keys with a live line.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn join(self: &Arc<Self>, key: &LockKey) -> (Place, Arc<Semaphore>) {
        let mut lines = self.lock();
        let line = lines.entry(key.clone()).or_insert_with(|| Line {
            head: Arc::new(Semaphore::new(1)),
            callers: 0,
        });
        line.callers += 1;
        let place = Place {
            key: key.clone(),
            queue: Arc::clone(self),
        };
        (place, Arc::clone(&line.head))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LockKey, Line>> {
        // Counters only: a panic cannot leave them half-updated.
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut lines = self.queue.lock();
        if let Some(line) = lines.get_mut(&self.key) {
            line.callers -= 1;
            if line.callers == 0 {
                lines.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key() -> LockKey {
        LockKey::new("k").unwrap()
    }

    #[tokio::test]
    async fn heads_are_served_in_arrival_order_and_lines_are_removed() {
        let queue = Arc::new(KeyedQueue::default());
        let far = Instant::now() + Duration::from_secs(5);
        let first = queue.enter(&key(), far).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..5 {
            let line = Arc::clone(&queue);
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let head = line.enter(&key(), far).await.unwrap();
                tx.send(i).unwrap();
                drop(head);
            }));
            // Each task must be parked in the line before the next one arrives.
            // First head + waiters 0..=i.
            while queue.waiting(&key()) < i + 2 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        let order: Vec<usize> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        assert_eq!(queue.len(), 0);
    }

    #[tokio::test]
    async fn try_enter_fails_while_someone_is_head() {
        let queue = Arc::new(KeyedQueue::default());
        let head = queue.try_enter(&key()).unwrap();
        assert!(queue.try_enter(&key()).is_none());
        drop(head);
        assert!(queue.try_enter(&key()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_waiter_leaves_the_line() {
        let queue = Arc::new(KeyedQueue::default());
        let head = queue.try_enter(&key()).unwrap();
        let late = queue
            .enter(&key(), Instant::now() + Duration::from_millis(10))
            .await;
        assert!(late.is_none());
        drop(head);
        assert_eq!(queue.len(), 0);
    }
}
