//! The acquire loop shared by every backend.
//!
//! 1. Line up behind same-process callers for the key (FIFO, [`crate::queue`]).
//! 2. At the head: attempt. On "held", subscribe to the key's release
//!    notifications and attempt once more (a release between the first attempt
//!    and the subscription would otherwise be missed), then sleep until a release
//!    is announced, or a jittered backoff of at most min(holder's PTTL, cap)
//!    passes (the fallback for a lost notification), or the wait deadline.
//! 3. No attempt starts after the deadline; an attempt in flight runs to its
//!    reply (bounded by the backend's response timeout).
//! 4. A grant counts only if it arrives while the lease is still valid:
//!    `TTL − elapsed − drift > 0`, with `elapsed` measured from before the
//!    request left (for Redlock: before the first node was asked, and
//!    including the fencing-token mint). A later grant is released and the
//!    attempt counts as refused.
//!
//! Every attempt uses a fresh token and is armed for cleanup
//! ([`crate::backend::PendingAttempt`]): if its reply is lost or the caller's
//! future is dropped mid-flight, an owner-checked release of that token follows.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{Attempt, Backend, PendingAttempt, ReleaseWatch};
use crate::backoff;
use crate::error::LockError;
use crate::guard::LockGuard;
use crate::key::LockKey;
use crate::metrics;
use crate::options::AcquireOptions;
use crate::queue::KeyedQueue;
use crate::quorum;
use crate::token::WaiterId;

/// Waits for `key` until `options.wait_timeout()` has passed.
pub(crate) async fn acquire(
    backend: Arc<dyn Backend>,
    queue: &Arc<KeyedQueue>,
    key: &LockKey,
    options: &AcquireOptions,
) -> Result<LockGuard, LockError> {
    options.validate()?;
    let span = tracing::debug_span!("lock.acquire", lock.key = %key, lock.backend = backend.name());
    let started = Instant::now();
    let result = wait_for_lock(backend.clone(), queue, key, options, started)
        .instrument(span)
        .await;
    let outcome = match &result {
        Ok(_) => "acquired",
        Err(error) if error.is_timeout() => "timeout",
        Err(_) => "error",
    };
    metrics::wait(backend.name(), outcome, started.elapsed());
    result
}

/// One attempt, without waiting: `Ok(None)` if the key is held (here or elsewhere).
pub(crate) async fn try_acquire(
    backend: Arc<dyn Backend>,
    queue: &Arc<KeyedQueue>,
    key: &LockKey,
    options: &AcquireOptions,
) -> Result<Option<LockGuard>, LockError> {
    options.validate()?;
    let Some(head) = queue.try_enter(key) else {
        metrics::contended(backend.name());
        return Ok(None);
    };
    let started = Instant::now();
    let result = attempt_once(&backend, key, options, 1, None).await;
    drop(head);
    match result? {
        Ok(guard) => Ok(Some(guard)),
        Err(refusal @ Attempt::NoQuorum { .. }) => {
            Err(gave_up(key, &refusal, started.elapsed(), 1))
        }
        Err(_) => Ok(None),
    }
}

async fn wait_for_lock(
    backend: Arc<dyn Backend>,
    queue: &Arc<KeyedQueue>,
    key: &LockKey,
    options: &AcquireOptions,
    started: Instant,
) -> Result<LockGuard, LockError> {
    let deadline = started + options.wait_timeout();
    // Leaving the line (dropping `_head`) as soon as this function returns lets
    // the next same-process caller become head: see `crate::queue`.
    let Some(_head) = queue.enter(key, deadline).await else {
        return Err(LockError::Timeout {
            key: key.clone(),
            waited: started.elapsed(),
            attempts: 0,
        });
    };
    let mut attempts = 0;
    let mut watch: Option<ReleaseWatch> = None;
    // This call's place in the key's cross-process line (for backends that
    // keep one): taken by the first refused attempt, given up if the call ends
    // without the lock.
    let place = LinePlace::new(backend.clone(), key);
    loop {
        if let Some(watch) = &mut watch {
            watch.mark_seen();
        }
        attempts += 1;
        let refusal =
            match attempt_once(&backend, key, options, attempts, Some(&place.waiter)).await? {
                Ok(guard) => {
                    // The grant took us out of the line, if we were in it.
                    place.disarm();
                    return Ok(guard);
                }
                Err(refusal) => refusal,
            };
        if let Attempt::Held { .. } = refusal {
            metrics::contended(backend.name());
        }
        if Instant::now() >= deadline {
            return Err(gave_up(key, &refusal, started.elapsed(), attempts));
        }
        let Some(watch) = &mut watch else {
            // First refusal: listen for releases, then look again at once.
            watch = Some(backend.watch_releases(key, &place.waiter).await);
            continue;
        };
        let nap = backoff::jittered(options.backoff_min(), options.backoff_cap(), refusal.pttl());
        tokio::select! {
            () = watch.released() => {}
            () = tokio::time::sleep(nap) => {}
            () = tokio::time::sleep_until(deadline) => {
                return Err(gave_up(key, &refusal, started.elapsed(), attempts));
            }
        }
    }
}

/// The error for a caller who gave up with `last` as the last refusal.
fn gave_up(key: &LockKey, last: &Attempt, waited: std::time::Duration, attempts: u32) -> LockError {
    match *last {
        Attempt::NoQuorum {
            answered,
            nodes,
            quorum,
        } => LockError::NoQuorum {
            operation: "acquire",
            key: key.clone(),
            answered,
            nodes,
            quorum,
            waited,
            attempts,
        },
        Attempt::Acquired(_) | Attempt::Held { .. } => LockError::Timeout {
            key: key.clone(),
            waited,
            attempts,
        },
    }
}

/// `Ok(Ok(guard))` when taken, `Ok(Err(refusal))` when not (held elsewhere, or no quorum).
async fn attempt_once(
    backend: &Arc<dyn Backend>,
    key: &LockKey,
    options: &AcquireOptions,
    attempts: u32,
    waiter: Option<&WaiterId>,
) -> Result<Result<LockGuard, Attempt>, LockError> {
    let pending = PendingAttempt::new(backend.clone(), key, options.ttl());
    // The lease is measured from before the request leaves: whatever time the
    // request spends in flight is already counted against it.
    let sent_at = Instant::now();
    let attempt = backend
        .attempt(key, pending.token(), options.ttl(), waiter)
        .await?;
    match attempt {
        Attempt::Acquired(_)
            if quorum::validity_left(options.ttl(), options.drift(), sent_at.elapsed())
                .is_none() =>
        {
            // Granted too late to be of use: the lease may already be gone.
            // `pending` is still armed, so dropping it releases the key.
            tracing::debug!(
                lock.attempts = attempts,
                "lock granted after its validity had passed; released"
            );
            Ok(Err(Attempt::Held { pttl: None }))
        }
        Attempt::Acquired(fence) => {
            let token = pending.disarm();
            tracing::debug!(
                lock.fence = fence.get(),
                lock.attempts = attempts,
                "lock acquired"
            );
            Ok(Ok(LockGuard::new(
                key.clone(),
                token,
                fence,
                options.clone(),
                backend.clone(),
                sent_at,
                attempts,
            )))
        }
        refusal @ (Attempt::Held { .. } | Attempt::NoQuorum { .. }) => {
            pending.disarm();
            Ok(Err(refusal))
        }
    }
}

/// A waiting `acquire`'s place in the key's cross-process line. Dropping it
/// (the call gave up, failed, or its future was dropped) takes the waiter out
/// of the line in the background, so the next waiter does not wait for this
/// one's line lease to run out. Disarmed when the lock is granted: the grant
/// itself removed the waiter.
struct LinePlace {
    backend: Arc<dyn Backend>,
    key: LockKey,
    waiter: WaiterId,
    armed: bool,
}

impl LinePlace {
    fn new(backend: Arc<dyn Backend>, key: &LockKey) -> Self {
        Self {
            backend,
            key: key.clone(),
            waiter: WaiterId::random(),
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for LinePlace {
    fn drop(&mut self) {
        if self.armed {
            self.backend
                .leave_line_detached(self.key.clone(), self.waiter.clone());
        }
    }
}
