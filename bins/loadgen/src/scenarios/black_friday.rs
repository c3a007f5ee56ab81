//! `black-friday`: one product, many buyers, every purchase fired within a window
//! (SPEC §4). The burst engine here also drives `multi-product`.
//!
//! Every request is built before the start, each buyer's task is parked at a barrier, and
//! the start releases them together; each then waits for its own slot in the window
//! (evenly spread; window 0 = all at once), takes its send-order number and sends.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Client;
use tokio::sync::{Barrier, Semaphore, watch};
use tokio::task::JoinSet;

use super::{Planned, Quantities, Sample, idempotency_key, send_purchase, warm_up};
use crate::client::{Api, Id};
use crate::setup::Buyer;

/// Tokio's timers fire on millisecond ticks, rounded up, and the woken task then has to
/// be scheduled: the time a slot may run late.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// How a burst is fired.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BurstOptions {
    pub(crate) window: Duration,
    /// Cap on requests in flight; `None` = every buyer at once.
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) retries_on_503: u32,
    /// Open the connections before the start.
    pub(crate) warm_up: bool,
}

/// One purchase per buyer of the single product `product`.
pub(crate) async fn run(
    api: &Api,
    buyers: &[Buyer],
    product: &Id,
    quantities: &mut Quantities,
    options: BurstOptions,
) -> anyhow::Result<Vec<Sample>> {
    let planned = plan(
        api,
        buyers,
        std::slice::from_ref(product),
        quantities,
        |_| 0,
    )?;
    fire(api, planned, options).await
}

/// One purchase per buyer; buyer `i` buys product `product_of(i)`.
pub(crate) fn plan(
    api: &Api,
    buyers: &[Buyer],
    products: &[Id],
    quantities: &mut Quantities,
    product_of: impl Fn(usize) -> usize,
) -> anyhow::Result<Vec<Planned>> {
    buyers
        .iter()
        .enumerate()
        .map(|(index, buyer)| {
            let product = product_of(index);
            let id = products
                .get(product)
                .context("a buyer was planned for a missing product")?;
            let quantity = quantities.next();
            let request = api.purchase_request(&buyer.token, id, quantity, &idempotency_key())?;
            Ok(Planned {
                product,
                quantity,
                request,
            })
        })
        .collect()
}

/// Fires `planned` across the window and returns one sample per request.
pub(crate) async fn fire(
    api: &Api,
    planned: Vec<Planned>,
    options: BurstOptions,
) -> anyhow::Result<Vec<Sample>> {
    let count = planned.len();
    let in_flight = options
        .max_in_flight
        .unwrap_or(count)
        .clamp(1, count.max(1));
    if options.warm_up {
        warm_up(api, in_flight).await?;
    }
    let limiter = (in_flight < count).then(|| Arc::new(Semaphore::new(in_flight)));
    let ready = Arc::new(Barrier::new(count + 1));
    let (start, gate) = watch::channel(None::<Instant>);
    let sequence = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for (index, purchase) in planned.into_iter().enumerate() {
        let buyer = BuyerTask {
            http: api.http().clone(),
            slot: slot(options.window, index, count),
            ready: Arc::clone(&ready),
            gate: gate.clone(),
            limiter: limiter.clone(),
            sequence: Arc::clone(&sequence),
            retries: options.retries_on_503,
        };
        tasks.spawn(buyer.run(purchase));
    }
    ready.wait().await;
    start
        .send(Some(Instant::now()))
        .context("every buyer task ended before the start")?;
    collect(tasks, count).await
}

/// Offset of send `index` of `count` in the window: evenly spread from 0 over the window
/// less `TIMER_SLACK`, so that the last send, woken on a millisecond timer tick, still
/// leaves within the window.
pub(crate) fn slot(window: Duration, index: usize, count: usize) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    let usable = window.saturating_sub(TIMER_SLACK);
    let nanos = usable.as_nanos() * index as u128 / count as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// What one buyer's task holds.
struct BuyerTask {
    http: Client,
    slot: Duration,
    ready: Arc<Barrier>,
    gate: watch::Receiver<Option<Instant>>,
    limiter: Option<Arc<Semaphore>>,
    sequence: Arc<AtomicU64>,
    retries: u32,
}

impl BuyerTask {
    async fn run(mut self, purchase: Planned) -> Option<Sample> {
        self.ready.wait().await;
        let t0 = (*self.gate.wait_for(Option::is_some).await.ok()?)?;
        if !self.slot.is_zero() {
            tokio::time::sleep_until((t0 + self.slot).into()).await;
        }
        let _permit = match &self.limiter {
            Some(limiter) => Some(Arc::clone(limiter).acquire_owned().await.ok()?),
            None => None,
        };
        let sent = send_purchase(
            &self.http,
            purchase.request,
            &self.sequence,
            t0,
            self.retries,
        )
        .await;
        Some(sent.into_sample(purchase.product, purchase.quantity))
    }
}

async fn collect(mut tasks: JoinSet<Option<Sample>>, count: usize) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        samples.push(
            joined
                .context("a buyer task panicked")?
                .context("a buyer task lost its start signal")?,
        );
    }
    samples.sort_by_key(|sample| sample.seq);
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_spread_evenly_inside_the_window() {
        let window = Duration::from_millis(1000);
        assert_eq!(slot(window, 0, 1000), Duration::ZERO);
        assert_eq!(slot(window, 500, 1000), Duration::from_millis(499));
        assert_eq!(slot(window, 999, 1000), Duration::from_nanos(997_002_000));
        assert!(slot(window, 999, 1000) + TIMER_SLACK < window);
        assert!(slot(Duration::from_millis(1), 5, 10).is_zero());
    }

    #[test]
    fn window_zero_releases_everyone_at_once() {
        assert!((0..100).all(|index| slot(Duration::ZERO, index, 100).is_zero()));
        assert!(slot(Duration::from_secs(1), 0, 0).is_zero());
    }
}
