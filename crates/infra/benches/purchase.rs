//! The purchase path without HTTP: `PurchaseService::purchase` on the Redis
//! adapters (the product's line, a batch script — fused with the lock when it
//! is free — and the buyers' index) against a redis-server started by the
//! bench, once with group commit (`PURCHASE_BATCH_MAX` 64) and once without
//! (`1`), in the same run. This is the ceiling the HTTP figures of
//! `inventory-loadgen sustained` are compared with (docs/BENCHMARKS.md).
//!
//! Run: `cargo bench -p inventory-infra --bench purchase`

#![expect(
    clippy::unwrap_used,
    reason = "bench harness: a failure must abort the run"
)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use inventory_domain::ProductRepository;
use inventory_domain::{
    NewProduct, Price, ProductId, ProductName, PurchaseOrder, PurchaseService, Quantity, Stock,
    UserId,
};
use inventory_infra::redis::{RedisSettings, RedisStore};
use lockstock_test_support::RedisServer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn product(store: &RedisStore, name: &str) -> ProductId {
    store
        .create(NewProduct {
            name: ProductName::parse(name).unwrap(),
            description: None,
            price: Price::parse(100).unwrap(),
            stock: Stock::parse(i64::try_from(Stock::MAX).unwrap()).unwrap(),
        })
        .await
        .unwrap()
        .id
}

fn order(product: ProductId, user: u64) -> PurchaseOrder {
    PurchaseOrder {
        user_id: UserId(user),
        product_id: product,
        quantity: Quantity::parse(1, 100).unwrap(),
        idempotency_key: None,
    }
}

fn purchases(c: &mut Criterion) {
    let server = RedisServer::start();
    let runtime = runtime();
    for (label, batch_max) in [("batched", 64), ("batch1", 1)] {
        let mut settings = RedisSettings::new(server.url());
        settings.purchase_batch_max = NonZeroUsize::new(batch_max).unwrap();
        let store = Arc::new(runtime.block_on(RedisStore::connect(&settings)).unwrap());
        bench_store(c, &runtime, &store, label);
    }
}

fn bench_store(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    store: &Arc<RedisStore>,
    label: &str,
) {
    let hot = runtime.block_on(product(store, &format!("{label}-hot")));
    let users = Arc::new(AtomicU64::new(1));

    let mut group = c.benchmark_group(format!("purchase/{label}"));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(6));
    group.bench_function("sequential", |b| {
        b.to_async(runtime).iter(|| {
            let store = Arc::clone(store);
            let user = users.fetch_add(1, Ordering::Relaxed);
            async move { store.purchase(order(hot, user)).await.unwrap() }
        });
    });
    for tasks in [8u64, 64] {
        group.bench_function(format!("one_product/tasks/{tasks}"), |b| {
            b.to_async(runtime).iter_custom(|iters| {
                let store = Arc::clone(store);
                let users = Arc::clone(&users);
                async move { concurrent(store, vec![hot], tasks, iters, users).await }
            });
        });
    }
    // Eight products: purchases of different products do not share a lock.
    let spread: Vec<ProductId> = (0..8)
        .map(|i| runtime.block_on(product(store, &format!("{label}-spread-{i}"))))
        .collect();
    group.bench_function("eight_products/tasks/64", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let store = Arc::clone(store);
            let users = Arc::clone(&users);
            let spread = spread.clone();
            async move { concurrent(store, spread, 64, iters, users).await }
        });
    });
    group.finish();
}

/// `iters` purchases split among `tasks` tasks, spread over `products`; the
/// time until the last one is answered. Any failed purchase aborts the run.
async fn concurrent(
    store: Arc<RedisStore>,
    products: Vec<ProductId>,
    tasks: u64,
    iters: u64,
    users: Arc<AtomicU64>,
) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let store = Arc::clone(&store);
            let users = Arc::clone(&users);
            let product = products[usize::try_from(task).unwrap() % products.len()];
            let share = iters / tasks + u64::from(task < iters % tasks);
            tokio::spawn(async move {
                for _ in 0..share {
                    let user = users.fetch_add(1, Ordering::Relaxed);
                    store.purchase(order(product, user)).await.unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    started.elapsed()
}

criterion_group!(benches, purchases);
criterion_main!(benches);
