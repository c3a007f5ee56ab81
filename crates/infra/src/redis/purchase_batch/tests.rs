//! The purchase batches against a real redis-server: orders answered exactly
//! as if alone at their place, a batch whose lease was lost, lost replies.

use std::time::Duration;

use inventory_domain::{
    IdempotencyKey, NewProduct, Price, ProductId, ProductName, ProductRepository, PurchaseError,
    PurchaseOrder, PurchaseReceipt, PurchaseService, Quantity, Stock, UserId,
};
use inventory_lock::{AcquireOptions, Committer, DistributedLock, RedisLock};
use lockstock_test_support::RedisServer;
use redis::AsyncCommands;

use super::super::{RedisSettings, RedisStore, keys};
use super::PurchaseItem;

async fn store(server: &RedisServer, response_timeout: Duration) -> RedisStore {
    let mut settings = RedisSettings::new(server.url());
    settings.response_timeout = response_timeout;
    RedisStore::connect(&settings).await.unwrap()
}

async fn product(store: &RedisStore, stock: i64) -> ProductId {
    ProductRepository::create(
        store,
        NewProduct {
            name: ProductName::parse("Widget").unwrap(),
            description: None,
            price: Price::parse(250).unwrap(),
            stock: Stock::parse(stock).unwrap(),
        },
    )
    .await
    .unwrap()
    .id
}

fn order(user: u64, product: ProductId, quantity: i64, key: Option<&str>) -> PurchaseOrder {
    PurchaseOrder {
        user_id: UserId(user),
        product_id: product,
        quantity: Quantity::parse(quantity, 100).unwrap(),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
    }
}

/// Yields until `condition` holds; panics after 10 s.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn receipt(answer: &Result<PurchaseReceipt, PurchaseError>) -> &PurchaseReceipt {
    answer.as_ref().unwrap()
}

/// Six orders queue, in a known order, behind a lock another process holds,
/// and are committed as one batch when it lets go: the ones that do not fit
/// are refused with the units left at their turn, later ones that fit are
/// served, a twin replays, a reused key is refused — as if each were alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_order_as_if_alone_at_its_place() {
    let server = RedisServer::start();
    let store = store(&server, Duration::from_secs(2)).await;
    let product = product(&store, 5).await;
    let lock_key = keys::product_lock(product);
    let other_process = RedisLock::from_url(&server.url()).await.unwrap();
    let holder = other_process
        .acquire(&lock_key, &AcquireOptions::default())
        .await
        .unwrap();
    let orders = [
        order(1, product, 2, Some("a")), // 5 → 3
        order(2, product, 4, None),      // refused: 3 left
        order(3, product, 2, None),      // 3 → 1
        order(1, product, 2, Some("a")), // twin: replays the first
        order(4, product, 2, None),      // refused: 1 left
        order(1, product, 1, Some("a")), // same key, other body: reused
        order(5, product, 1, None),      // 1 → 0
    ];
    let store = std::sync::Arc::new(store);
    let mut answers = Vec::new();
    for (index, order) in orders.into_iter().enumerate() {
        let store_for_task = std::sync::Arc::clone(&store);
        answers.push(tokio::spawn(
            async move { store_for_task.purchase(order).await },
        ));
        if index == 0 {
            until("the batch to wait for the lock", || {
                store.lock.local_waiters(&lock_key) == 1
            })
            .await;
        } else {
            until("the order to queue", || {
                store.purchases.waiting(&lock_key) == index
            })
            .await;
        }
    }
    let fence = holder.fencing_token().get();
    holder.release().await.unwrap();
    let mut results = Vec::new();
    for answer in answers {
        results.push(answer.await.unwrap());
    }

    let first = receipt(&results[0]);
    assert_eq!((first.remaining_stock, first.replayed), (3, false));
    assert!(matches!(
        results[1],
        Err(PurchaseError::InsufficientStock {
            requested: 4,
            available: 3
        })
    ));
    assert_eq!(receipt(&results[2]).remaining_stock, 1);
    let twin = receipt(&results[3]);
    assert!(twin.replayed);
    assert_eq!(
        (twin.purchase.clone(), twin.remaining_stock),
        (first.purchase.clone(), 3)
    );
    assert!(matches!(
        results[4],
        Err(PurchaseError::InsufficientStock {
            requested: 2,
            available: 1
        })
    ));
    assert!(matches!(
        results[5],
        Err(PurchaseError::IdempotencyKeyReused)
    ));
    assert_eq!(receipt(&results[6]).remaining_stock, 0);

    let mut raw = store.data();
    let minted: u64 = raw.get(lock_key.fence_key()).await.unwrap();
    assert_eq!(
        minted,
        fence + 1,
        "all seven were committed under one lock hold"
    );
    let level = store.stock(product).await.unwrap().unwrap();
    assert_eq!((level.stock, level.sold), (0, 5));
    let logged: Vec<u64> = raw
        .lrange(keys::product_purchases(product), 0, -1)
        .await
        .unwrap();
    let made: Vec<u64> = [0, 2, 6]
        .iter()
        .map(|index| receipt(&results[*index]).purchase.id.get())
        .collect();
    assert_eq!(logged, made, "the purchase log is in commit order");
    let listed = store
        .list_for_user(UserId(1), inventory_domain::Page::default())
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![first.purchase.clone()],
        "buyer 1 made one purchase"
    );
    let refused: u64 = raw.zcard(keys::user_purchases(UserId(2))).await.unwrap();
    assert_eq!(refused, 0, "a refused order's index entry was given back");
}

/// A batch whose lease was lost before its script ran (the key changed hands
/// in Redis while the holder still believed it held it) applies nothing,
/// answers every member "retry" and gives back the key claims it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_lease_was_lost_applies_nothing_and_answers_everyone() {
    let server = RedisServer::start();
    let store = store(&server, Duration::from_secs(2)).await;
    let product = product(&store, 10).await;
    let lock_key = keys::product_lock(product);
    let guard = store
        .lock
        .acquire(&lock_key, &AcquireOptions::default())
        .await
        .unwrap();
    let mut raw = store.data();
    let _: () = raw.set(lock_key.as_str(), "someone-else").await.unwrap();
    let items = [
        PurchaseItem::new(order(1, product, 1, Some("k"))).unwrap(),
        PurchaseItem::new(order(2, product, 2, None)).unwrap(),
        PurchaseItem::new(order(3, product, 3, None)).unwrap(),
    ];
    let answers = store.purchases.committer().commit(&guard, &items).await;
    assert_eq!(answers.len(), 3, "every member is answered");
    for answer in &answers {
        assert!(
            matches!(answer, Err(PurchaseError::LockTimeout { retry_after }) if retry_after > &Duration::ZERO),
            "{answer:?}"
        );
    }
    let level = store.stock(product).await.unwrap().unwrap();
    assert_eq!((level.stock, level.sold), (10, 0), "nothing was applied");
    let claim = keys::idempotency_claim(UserId(1), &IdempotencyKey::parse("k").unwrap());
    let claimed: bool = raw.exists(claim).await.unwrap();
    assert!(!claimed, "the key claim was not given back");
    for user in 1..=3 {
        let entries: u64 = raw.zcard(keys::user_purchases(UserId(user))).await.unwrap();
        assert_eq!(
            entries, 0,
            "buyer {user}'s index names a purchase that was not made"
        );
    }
    drop(guard);
}

/// A purchase whose reply is lost (Redis frozen past the response timeout)
/// answers "outcome unknown" with an operation id; once Redis runs again the
/// purchase it had queued is made, and retrying with the operation id as the
/// key replays it — bought exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_names_an_operation_id_that_replays_the_outcome() {
    let mut server = RedisServer::start();
    let store = store(&server, Duration::from_millis(300)).await;
    let product = product(&store, 10).await;
    // Loads the script: a fresh server would answer the frozen EVALSHA with
    // NOSCRIPT (and nothing would run) rather than run it.
    store.purchase(order(1, product, 1, None)).await.unwrap();
    server.pause();
    let error = store
        .purchase(order(1, product, 2, None))
        .await
        .unwrap_err();
    server.resume();
    let PurchaseError::OutcomeUnknown { operation_id } = error else {
        panic!("expected an unknown outcome, got {error:?}");
    };
    let retry = order(1, product, 2, Some(operation_id.as_str()));
    let replay = store.purchase(retry).await.unwrap();
    assert!(
        replay.replayed,
        "the frozen purchase ran once Redis woke up"
    );
    let level = store.stock(product).await.unwrap().unwrap();
    assert_eq!((level.stock, level.sold), (7, 3), "bought exactly once");
    let stored = PurchaseService::get(&store, replay.purchase.id)
        .await
        .unwrap();
    assert_eq!(
        stored,
        Some(replay.purchase),
        "the stored purchase is the answer"
    );
}

/// A buyer who arrives while the product is sold out, but whose turn comes
/// after a restock that was in line before it, is served: the answer is the
/// stock at the order's turn, not at its arrival. (Before group commit a read
/// before the line refused it at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_answered_with_the_stock_at_its_turn() {
    let server = RedisServer::start();
    let buyers_process = store(&server, Duration::from_secs(2)).await;
    let admins_process = std::sync::Arc::new(store(&server, Duration::from_secs(2)).await);
    let product = product(&buyers_process, 0).await;
    let lock_key = keys::product_lock(product);
    let mut raw = buyers_process.data();
    let holder = RedisLock::from_url(&server.url())
        .await
        .unwrap()
        .acquire(&lock_key, &AcquireOptions::default())
        .await
        .unwrap();
    let line_len = async |raw: &mut redis::aio::ConnectionManager| -> usize {
        raw.llen(lock_key.line_key()).await.unwrap()
    };
    let restock = tokio::spawn({
        let admins_process = std::sync::Arc::clone(&admins_process);
        async move {
            admins_process
                .restock(
                    product,
                    inventory_domain::RestockQuantity::parse(5).unwrap(),
                )
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while line_len(&mut raw).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restock never queued"
        );
        tokio::task::yield_now().await;
    }
    let buyers_process = std::sync::Arc::new(buyers_process);
    let purchase = tokio::spawn({
        let buyers_process = std::sync::Arc::clone(&buyers_process);
        async move {
            buyers_process
                .purchase(order(1, product, 1, Some("late")))
                .await
        }
    });
    while line_len(&mut raw).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the purchase never queued"
        );
        tokio::task::yield_now().await;
    }
    holder.release().await.unwrap();
    assert_eq!(restock.await.unwrap().unwrap().stock, 5);
    let bought = purchase.await.unwrap().unwrap();
    assert_eq!(bought.remaining_stock, 4);
}
