//! Orders against a real redis-server, including orders interrupted between
//! their lines: the interrupted attempt is driven step by step through the
//! adapter's own functions (journal, then only some lines), then its process
//! "dies" (its locks are abandoned, to expire on their own), and recovery — a
//! retry with the same key, or reconcile — must make the books whole.

use std::time::Duration;

use inventory_domain::{
    Actor, AuditKind, AuditQuery, Check, IdempotencyKey, NewOrder, NewProduct, NewUser, OrderError,
    OrderId, OrderItem, OrderLines, OrderService, Price, ProductId, ProductName, ProductRepository,
    Quantity, Reconciler, RequestId, Role, Stock, UserId, UserRepository, Username,
};
use inventory_lock::MultiGuard;
use lockstock_test_support::RedisServer;
use redis::AsyncCommands;

use super::super::{RedisSettings, RedisStore, keys};
use super::{Applied, Attempt, Begun, StoredOrder};

/// A store whose leases are short, so that abandoned locks expire quickly.
async fn store(server: &RedisServer) -> RedisStore {
    let mut settings = RedisSettings::new(server.url());
    settings.lock_ttl = Duration::from_millis(400);
    settings.lock_wait_timeout = Duration::from_secs(5);
    settings.response_timeout = Duration::from_millis(150);
    RedisStore::connect(&settings).await.unwrap()
}

fn request(id: &str) -> RequestId {
    RequestId::parse(id).unwrap()
}

/// Registers users 1..=7 (reconcile looks for pending orders of every user).
async fn users(store: &RedisStore) {
    for n in 1..=7 {
        let user = UserRepository::create(
            store,
            NewUser {
                username: Username::parse(format!("user{n}")).unwrap(),
                email: None,
                role: Role::User,
                password_hash: "$2b$04$not-a-real-hash".to_owned(),
            },
        )
        .await
        .unwrap();
        assert_eq!(user.id, UserId(n));
    }
}

async fn products(store: &RedisStore, stocks: &[i64]) -> Vec<ProductId> {
    users(store).await;
    let mut ids = Vec::new();
    for (index, stock) in stocks.iter().enumerate() {
        let product = ProductRepository::create(
            store,
            NewProduct {
                name: ProductName::parse(format!("p{index}")).unwrap(),
                description: None,
                price: Price::parse(100 * (index as i64 + 1)).unwrap(),
                stock: Stock::parse(*stock).unwrap(),
            },
            &Actor::new(UserId(1), request("setup")),
        )
        .await
        .unwrap();
        ids.push(product.id);
    }
    ids
}

fn order(user: u64, items: &[(ProductId, i64)], key: Option<&str>) -> NewOrder {
    let items: Vec<OrderItem> = items
        .iter()
        .map(|(product, quantity)| OrderItem {
            product_id: *product,
            quantity: Quantity::parse(*quantity, 100).unwrap(),
        })
        .collect();
    NewOrder {
        user_id: UserId(user),
        lines: OrderLines::merge(&items).unwrap(),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        request_id: request("req-order"),
    }
}

async fn stock(store: &RedisStore, product: ProductId) -> (u64, u64) {
    let level = store.stock(product).await.unwrap().unwrap();
    assert!(level.is_consistent(), "{level:?}");
    (level.stock, level.sold)
}

async fn trail(store: &RedisStore, product: ProductId) -> Vec<(AuditKind, i64, u64)> {
    store
        .audit(product, AuditQuery::first(1000))
        .await
        .unwrap()
        .unwrap()
        .entries
        .iter()
        .map(|e| (e.kind, e.quantity, e.stock_after))
        .collect()
}

async fn assert_reconciled(store: &RedisStore) {
    let report = store.reconcile(&request("reconcile")).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.differences);
}

/// An attempt that opened its journal and applied only `applied` of its lines,
/// then stopped: its locks are left to expire. Returns its order id.
async fn interrupted(store: &RedisStore, order: NewOrder, applied: usize) -> (OrderId, MultiGuard) {
    let attempt = Attempt::new(order).unwrap();
    let lock_keys: Vec<_> = attempt
        .order
        .lines
        .products()
        .map(keys::product_lock)
        .collect();
    let guards = store
        .lock
        .acquire_many(&lock_keys, &store.lock_options)
        .await
        .unwrap();
    let Begun::New(number) = store.begin(&attempt).await.unwrap() else {
        panic!("the journal was not opened")
    };
    let id = OrderId::compose(attempt.user(), number).unwrap();
    let journal = attempt.journal();
    let partial = StoredOrder {
        lines: journal.lines[..applied].to_vec(),
        ..journal
    };
    let outcome = store
        .apply_lines(id, &partial, &guards, &attempt.order.request_id)
        .await
        .unwrap();
    assert!(matches!(outcome, Applied::All(_)));
    (id, guards)
}

/// The "process died" here: its leases run out without a release.
async fn die(guards: MultiGuard) {
    for guard in guards.guards() {
        guard.lost().await;
    }
    std::mem::forget(guards);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_buys_every_line_and_the_books_agree() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let p = products(&store, &[5, 5, 5]).await;
    let receipt = store
        .place(order(7, &[(p[2], 1), (p[0], 2), (p[2], 1)], Some("k")))
        .await
        .unwrap();
    assert!(!receipt.replayed);
    let made = &receipt.order;
    assert_eq!(made.id.user(), UserId(7));
    assert_eq!(
        made.lines
            .iter()
            .map(|l| (l.product_id, l.quantity, l.unit_price.minor_units()))
            .collect::<Vec<_>>(),
        [(p[0], 2, 100), (p[2], 2, 300)]
    );
    assert_eq!(made.total_price.minor_units(), 800);
    assert_eq!(stock(&store, p[0]).await, (3, 2));
    assert_eq!(stock(&store, p[1]).await, (5, 0));
    assert_eq!(stock(&store, p[2]).await, (3, 2));
    assert_eq!(
        trail(&store, p[2]).await,
        [(AuditKind::Create, 5, 5), (AuditKind::Order, -2, 3)]
    );
    let again = store
        .place(order(7, &[(p[0], 2), (p[2], 2)], Some("k")))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(&again.order, made);
    assert_eq!(
        OrderService::get(&store, made.id).await.unwrap().as_ref(),
        Some(made)
    );
    let mine = store
        .list_for_user(UserId(7), inventory_domain::Page::default())
        .await
        .unwrap();
    assert_eq!(mine, std::slice::from_ref(made));
    assert_reconciled(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_last_line_is_short_changes_nothing() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let p = products(&store, &[5, 5, 1]).await;
    let refused = store
        .place(order(7, &[(p[0], 1), (p[1], 1), (p[2], 2)], Some("k")))
        .await
        .unwrap_err();
    let OrderError::InsufficientStock { lines } = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.product_id, l.requested, l.available))
            .collect::<Vec<_>>(),
        [(p[2], 2, 1)]
    );
    for product in &p {
        assert_eq!(trail(&store, *product).await.len(), 1, "only the creation");
    }
    assert_eq!(stock(&store, p[0]).await, (5, 0));
    // The failed order did not consume its key.
    store
        .place(order(7, &[(p[0], 1)], Some("k")))
        .await
        .unwrap();
    assert_reconciled(&store).await;
}

/// Crash after the first of two lines; the client retries with its key: the
/// half-made order is rolled back (its first line given back) and the order
/// is made anew, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_rolls_back_an_order_interrupted_between_lines_and_makes_it_whole() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let p = products(&store, &[5, 5]).await;
    let items = [(p[0], 2), (p[1], 3)];
    let (first, guards) = interrupted(&store, order(7, &items, Some("k")), 1).await;
    die(guards).await;
    assert_eq!(stock(&store, p[0]).await, (3, 2), "half applied");
    assert_eq!(stock(&store, p[1]).await, (5, 0));

    let retried = store.place(order(7, &items, Some("k"))).await.unwrap();
    assert!(!retried.replayed);
    assert_ne!(
        retried.order.id, first,
        "the interrupted order was given up"
    );
    assert_eq!(stock(&store, p[0]).await, (3, 2), "bought once");
    assert_eq!(stock(&store, p[1]).await, (2, 3));
    assert_eq!(
        trail(&store, p[0]).await,
        [
            (AuditKind::Create, 5, 5),
            (AuditKind::Order, -2, 3),
            (AuditKind::OrderRollback, 2, 5),
            (AuditKind::Order, -2, 3),
        ]
    );
    assert_eq!(OrderService::get(&store, first).await.unwrap(), None);
    assert_reconciled(&store).await;
}

/// Crash after every line but before the commit: the order is whole, only its
/// record is missing, so the retry rolls it forward and replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_rolls_forward_an_order_whose_every_line_was_applied() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let p = products(&store, &[5, 5]).await;
    let items = [(p[0], 2), (p[1], 3)];
    let (first, guards) = interrupted(&store, order(7, &items, Some("k")), 2).await;
    die(guards).await;
    let retried = store.place(order(7, &items, Some("k"))).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.order.id, first);
    assert_eq!(stock(&store, p[0]).await, (3, 2));
    assert_eq!(stock(&store, p[1]).await, (2, 3));
    assert_eq!(trail(&store, p[1]).await.len(), 2, "no rollback");
    assert_reconciled(&store).await;
}

/// Nobody retries: reconcile finds the pending journal and rolls it back; the
/// old attempt, coming back to life afterwards, can write no line at all (its
/// fences are stale, and its lines are marked undone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_rolls_back_an_abandoned_order_and_its_attempt_can_never_write_again() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let p = products(&store, &[5, 5, 5]).await;
    let items = [(p[0], 1), (p[1], 1), (p[2], 1)];
    let attempt_order = order(7, &items, None);
    let (id, guards) = interrupted(&store, attempt_order.clone(), 2).await;
    for guard in guards.guards() {
        guard.lost().await;
    }

    let report = store.reconcile(&request("reconcile")).await.unwrap();
    assert_eq!(report.orders_recovered, 1);
    assert!(report.is_clean(), "{:?}", report.differences);
    for product in &p {
        assert_eq!(stock(&store, *product).await, (5, 0), "rolled back");
    }

    // The old attempt wakes up and carries on with its stale guards.
    let attempt = Attempt::new(attempt_order).unwrap();
    let late = store
        .apply_lines(id, &attempt.journal(), &guards, &request("late"))
        .await
        .unwrap();
    assert!(
        matches!(late, Applied::Unknown),
        "a stale holder wrote a line"
    );
    std::mem::forget(guards);
    // Even a holder of valid locks cannot apply a line recovery gave up.
    let lock_keys: Vec<_> = p.iter().copied().map(keys::product_lock).collect();
    let fresh = store
        .lock
        .acquire_many(&lock_keys, &store.lock_options)
        .await
        .unwrap();
    let refused = store
        .apply_lines(id, &attempt.journal(), &fresh, &request("late"))
        .await
        .unwrap();
    assert!(
        matches!(refused, Applied::Unknown),
        "an undone line was applied"
    );
    fresh.release().await.unwrap();
    for product in &p {
        assert_eq!(stock(&store, *product).await, (5, 0));
    }
    let again = store.reconcile(&request("reconcile")).await.unwrap();
    assert_eq!(again.orders_recovered, 0);
    assert!(again.is_clean(), "{:?}", again.differences);
}

/// A stock value changed behind the service's back is caught, by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_catches_a_stock_changed_behind_the_services_back() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let p = products(&store, &[5, 5]).await;
    store
        .place(order(7, &[(p[0], 1), (p[1], 1)], None))
        .await
        .unwrap();
    assert_reconciled(&store).await;
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = raw.hset(keys::product(p[1]), "stock", 9).await.unwrap();
    let report = store.reconcile(&request("reconcile")).await.unwrap();
    let found: Vec<_> = report
        .differences
        .iter()
        .map(|d| (d.product_id, d.what, d.expected, d.found))
        .collect();
    assert_eq!(
        found,
        [(p[1], Check::Stock, 4, 9), (p[1], Check::AuditReplay, 4, 9)]
    );
}

/// An order whose leases ran out between its journal and its lines cannot know
/// how it ended: it answers `OutcomeUnknown` naming its operation id (it was sent
/// without a key), and a retry with that id as the key finishes it — the lines
/// the attempt managed to apply are given back, and the order is made whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_order_names_an_operation_id_that_finishes_it() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let p = products(&store, &[5, 5]).await;
    let items = [(p[0], 1), (p[1], 2)];
    let attempt = Attempt::new(order(7, &items, None)).unwrap();
    let lock_keys: Vec<_> = p.iter().copied().map(keys::product_lock).collect();
    let guards = store
        .lock
        .acquire_many(&lock_keys, &store.lock_options)
        .await
        .unwrap();
    let Begun::New(number) = store.begin(&attempt).await.unwrap() else {
        panic!("the journal was not opened")
    };
    let journal = attempt.journal();
    let id = OrderId::compose(UserId(7), number).unwrap();
    let first_only = StoredOrder {
        lines: journal.lines[..1].to_vec(),
        ..journal
    };
    store
        .apply_lines(id, &first_only, &guards, &request("attempt"))
        .await
        .unwrap();
    // The attempt stalls past its leases before its second line.
    for guard in guards.guards() {
        guard.lost().await;
    }
    let answer = store.apply(&attempt, number, &guards).await;
    std::mem::forget(guards);
    let Err(OrderError::OutcomeUnknown { operation_id }) = answer else {
        panic!("the interrupted order did not answer outcome-unknown")
    };
    assert!(operation_id.as_str().starts_with("op-"));
    assert_eq!(stock(&store, p[0]).await, (4, 1), "half applied");

    let retried = store
        .place(order(7, &items, Some(operation_id.as_str())))
        .await
        .unwrap();
    assert_eq!(stock(&store, p[0]).await, (4, 1), "bought once");
    assert_eq!(stock(&store, p[1]).await, (3, 2));
    let again = store
        .place(order(7, &items, Some(operation_id.as_str())))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.order, retried.order);
    assert_reconciled(&store).await;
}
