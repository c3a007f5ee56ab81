//! `sustained`: C concurrent clients, each buying (or, with `--read-ratio`, reading stock)
//! in a closed loop for T seconds, against a stock large enough not to run out. With
//! several products, client `i` buys product `i mod N` only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{Barrier, watch};
use tokio::task::JoinSet;

use super::{
    Quantities, Sample, Status, idempotency_key, micros, send_plain, send_purchase, warm_up,
};
use crate::cli::QuantityRange;
use crate::client::{Api, Id};
use crate::setup::Buyer;

/// How a sustained run goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SustainedOptions {
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    /// Share of requests that read stock instead of buying.
    pub(crate) read_ratio: f64,
    pub(crate) quantity: QuantityRange,
    pub(crate) seed: u64,
    pub(crate) retries_on_503: u32,
    pub(crate) warm_up: bool,
}

/// Purchases and stock reads of one run.
#[derive(Debug, Default)]
pub(crate) struct SustainedRun {
    pub(crate) purchases: Vec<Sample>,
    pub(crate) reads: Vec<Sample>,
}

/// Runs the closed loop of `options.concurrency` clients until the duration is over
/// (requests in flight then are waited for; each is bounded by the request timeout).
pub(crate) async fn run(
    api: &Api,
    buyers: &[Buyer],
    products: &[Id],
    options: SustainedOptions,
) -> anyhow::Result<SustainedRun> {
    anyhow::ensure!(!buyers.is_empty(), "sustained needs at least one buyer");
    anyhow::ensure!(!products.is_empty(), "sustained needs at least one product");
    let clients = options.concurrency.max(1);
    if options.warm_up {
        warm_up(api, clients).await?;
    }
    let ready = Arc::new(Barrier::new(clients + 1));
    let (start, gate) = watch::channel(None::<Instant>);
    let shared = Arc::new(Shared {
        api: api.clone(),
        purchases: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        options,
    });
    let mut tasks = JoinSet::new();
    for worker in 0..clients {
        let tokens = tokens_of(buyers, worker, clients);
        let product = worker % products.len();
        let client = Worker {
            shared: Arc::clone(&shared),
            product: (product, products[product].clone()),
            tokens,
            ready: Arc::clone(&ready),
            gate: gate.clone(),
        };
        tasks.spawn(client.run(options.seed.wrapping_add(worker as u64)));
    }
    ready.wait().await;
    start
        .send(Some(Instant::now()))
        .context("every client ended before the start")?;
    let mut run = SustainedRun::default();
    while let Some(joined) = tasks.join_next().await {
        let part = joined
            .context("a client task panicked")?
            .context("a client lost its start signal")?;
        run.purchases.extend(part.purchases);
        run.reads.extend(part.reads);
    }
    run.purchases.sort_by_key(|sample| sample.seq);
    run.reads.sort_by_key(|sample| sample.seq);
    Ok(run)
}

/// Tokens of the buyers client `worker` of `clients` cycles through: every buyer is used by
/// exactly one client when there are at least as many buyers as clients.
fn tokens_of(buyers: &[Buyer], worker: usize, clients: usize) -> Vec<String> {
    if buyers.len() < clients {
        return buyers
            .get(worker % buyers.len())
            .map(|buyer| buyer.token.clone())
            .into_iter()
            .collect();
    }
    buyers
        .iter()
        .skip(worker)
        .step_by(clients)
        .map(|buyer| buyer.token.clone())
        .collect()
}

struct Shared {
    api: Api,
    purchases: AtomicU64,
    reads: AtomicU64,
    options: SustainedOptions,
}

struct Worker {
    shared: Arc<Shared>,
    /// The product this client buys: its index in the run's products, and its id.
    product: (usize, Id),
    tokens: Vec<String>,
    ready: Arc<Barrier>,
    gate: watch::Receiver<Option<Instant>>,
}

impl Worker {
    async fn run(mut self, seed: u64) -> Option<SustainedRun> {
        self.ready.wait().await;
        let t0 = (*self.gate.wait_for(Option::is_some).await.ok()?)?;
        let deadline = t0 + self.shared.options.duration;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut quantities = Quantities::new(self.shared.options.quantity, seed);
        let mut run = SustainedRun::default();
        for token in self.tokens.iter().cycle() {
            if Instant::now() >= deadline {
                break;
            }
            if rng.random_bool(self.shared.options.read_ratio) {
                run.reads.push(self.read(token, t0).await?);
            } else {
                run.purchases
                    .push(self.buy(token, quantities.next(), t0).await?);
            }
        }
        Some(run)
    }

    async fn buy(&self, token: &str, quantity: u32, t0: Instant) -> Option<Sample> {
        let shared = &self.shared;
        let request = shared
            .api
            .purchase_request(token, &self.product.1, quantity, &idempotency_key())
            .ok()?;
        let retries = shared.options.retries_on_503;
        let sent = send_purchase(shared.api.http(), request, &shared.purchases, t0, retries).await;
        Some(sent.into_sample(self.product.0, quantity))
    }

    async fn read(&self, token: &str, t0: Instant) -> Option<Sample> {
        let shared = &self.shared;
        let request = shared.api.stock_request(token, &self.product.1).ok()?;
        let seq = shared.reads.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let status: Status = send_plain(shared.api.http(), request).await;
        let done = Instant::now();
        Some(Sample {
            seq,
            product: self.product.0,
            quantity: 0,
            sent_us: micros(sent, t0),
            done_us: micros(done, t0),
            status,
            purchase_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buyers(count: usize) -> Vec<Buyer> {
        (0..count)
            .map(|i| Buyer {
                username: format!("u{i}"),
                token: format!("t{i}"),
            })
            .collect()
    }

    #[test]
    fn buyers_are_dealt_out_to_clients() {
        let all = buyers(5);
        assert_eq!(tokens_of(&all, 0, 2), ["t0", "t2", "t4"]);
        assert_eq!(tokens_of(&all, 1, 2), ["t1", "t3"]);
        assert_eq!(tokens_of(&all, 6, 8), ["t1"]);
    }
}
