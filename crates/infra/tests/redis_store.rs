//! The Redis adapters against a real redis-server started for each test.

#![expect(clippy::unwrap_used, reason = "tests panic on failure")]

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use inventory_domain::{
    Actor, IdempotencyKey, LockReadiness, NewProduct, NewUser, Page, Price, ProductError,
    ProductId, ProductName, PurchaseError, PurchaseOrder, Quantity, RequestId, RestockOrder,
    RestockQuantity, Role, Stock, UserError, UserId, Username,
};
use inventory_infra::Repositories;
use inventory_infra::redis::{RedisSettings, RedlockSettings, connect, connect_redlock};
use lockstock_test_support::{RedisNodes, RedisServer, Reply};

struct Fixture {
    _server: RedisServer,
    repositories: Repositories,
}

async fn fixture() -> Fixture {
    let server = RedisServer::start();
    let repositories = connect(&RedisSettings::new(server.url())).await.unwrap();
    Fixture {
        _server: server,
        repositories,
    }
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: Username::parse(name).unwrap(),
        email: None,
        role: Role::User,
        password_hash: "$2b$04$not-a-real-hash".to_owned(),
    }
}

async fn product(repositories: &Repositories, name: &str, stock: i64) -> ProductId {
    repositories
        .products
        .create(
            NewProduct {
                name: ProductName::parse(name).unwrap(),
                description: None,
                price: Price::parse(1_999).unwrap(),
                stock: Stock::parse(stock).unwrap(),
            },
            &admin(),
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
        request_id: RequestId::parse("test").unwrap(),
    }
}

fn admin() -> Actor {
    Actor::new(UserId(1), RequestId::parse("test").unwrap())
}

fn restock(units: i64) -> RestockOrder {
    RestockOrder {
        quantity: RestockQuantity::parse(units).unwrap(),
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_of_one_name_yield_one_user() {
    let fixture = fixture().await;
    let users = &fixture.repositories.users;
    let results = join_all((0..50).map(|_| users.create(new_user("alice")))).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(UserError::UsernameTaken)))
        .count();
    assert_eq!((created, taken), (1, 49));
    let stored = users
        .find_by_username(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(users.find_by_id(stored.id).await.unwrap().unwrap(), stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_round_trip_and_names_are_unique() {
    let fixture = fixture().await;
    let products = &fixture.repositories.products;
    let first = product(&fixture.repositories, "Widget", 5).await;
    let second = product(&fixture.repositories, "Gadget", 7).await;
    let duplicate = products
        .create(
            NewProduct {
                name: ProductName::parse("Widget").unwrap(),
                description: None,
                price: Price::parse(1).unwrap(),
                stock: Stock::parse(1).unwrap(),
            },
            &admin(),
        )
        .await;
    assert!(matches!(duplicate, Err(ProductError::NameTaken)));
    let listed = products
        .list(Page::parse(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|p| p.id).collect::<Vec<_>>(),
        [first, second]
    );
    let page2 = products
        .list(Page::parse(Some(1), Some(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(page2.iter().map(|p| p.id).collect::<Vec<_>>(), [second]);
    assert_eq!(products.get(first).await.unwrap().unwrap().stock, 5);
    assert!(products.get(ProductId(999)).await.unwrap().is_none());
}

/// 300 concurrent buyers of random quantities against 100 units: the stock
/// never goes negative and every unit that left it has exactly one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_purchases_never_oversell() {
    let fixture = fixture().await;
    let repositories = &fixture.repositories;
    let id = product(repositories, "Console", 100).await;
    let purchases = Arc::clone(&repositories.purchases);
    let results = join_all((1..=300u64).map(|user| {
        let purchases = Arc::clone(&purchases);
        async move {
            purchases
                .purchase(order(user, id, (user % 3 + 1) as i64, None))
                .await
        }
    }))
    .await;
    let mut sold = 0u64;
    for result in &results {
        match result {
            Ok(receipt) => sold += u64::from(receipt.purchase.quantity),
            Err(PurchaseError::InsufficientStock { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    let level = repositories.products.stock(id).await.unwrap().unwrap();
    assert_eq!(level.sold, sold);
    assert_eq!(level.stock, 100 - sold);
    assert!(level.is_consistent());
    assert!(
        level.stock < 3,
        "buyers were refused while stock remained: {level:?}"
    );
    let mut recorded = 0;
    for user in 1..=300 {
        let mine = purchases
            .list_for_user(UserId(user), Page::parse(None, None).unwrap())
            .await
            .unwrap();
        recorded += mine.iter().map(|p| u64::from(p.quantity)).sum::<u64>();
    }
    assert_eq!(recorded, sold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_replays_and_rejects_other_orders() {
    let fixture = fixture().await;
    let repositories = &fixture.repositories;
    let id = product(repositories, "Ticket", 10).await;
    let purchases = &repositories.purchases;

    // Simultaneous twins: one purchase, the other replays it.
    let twins = join_all((0..2).map(|_| purchases.purchase(order(1, id, 2, Some("k-1"))))).await;
    let receipts: Vec<_> = twins.into_iter().map(Result::unwrap).collect();
    assert_eq!(receipts[0].purchase.id, receipts[1].purchase.id);
    assert_eq!(receipts.iter().filter(|r| r.replayed).count(), 1);
    assert_eq!(
        repositories.products.stock(id).await.unwrap().unwrap().sold,
        2
    );

    let again = purchases
        .purchase(order(1, id, 2, Some("k-1")))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.purchase, receipts[0].purchase);
    assert_eq!(again.remaining_stock, 8);

    let other_body = purchases.purchase(order(1, id, 3, Some("k-1"))).await;
    assert!(matches!(
        other_body,
        Err(PurchaseError::IdempotencyKeyReused)
    ));
    // Keys are per user: another user's "k-1" is a new purchase.
    let other_user = purchases
        .purchase(order(2, id, 2, Some("k-1")))
        .await
        .unwrap();
    assert!(!other_user.replayed);
    assert_eq!(
        repositories.products.stock(id).await.unwrap().unwrap().sold,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_does_not_consume_the_key_and_restock_keeps_the_books() {
    let fixture = fixture().await;
    let repositories = &fixture.repositories;
    let id = product(repositories, "Limited", 1).await;
    let refused = repositories
        .purchases
        .purchase(order(1, id, 2, Some("k")))
        .await;
    assert!(matches!(
        refused,
        Err(PurchaseError::InsufficientStock {
            requested: 2,
            available: 1
        })
    ));
    let level = repositories
        .products
        .restock(id, restock(5), &admin())
        .await
        .unwrap()
        .level;
    assert_eq!(
        (level.stock, level.restocked, level.initial_stock),
        (6, 5, 1)
    );
    let bought = repositories
        .purchases
        .purchase(order(1, id, 2, Some("k")))
        .await
        .unwrap();
    assert!(!bought.replayed);
    assert_eq!(bought.remaining_stock, 4);
    let level = repositories.products.stock(id).await.unwrap().unwrap();
    assert_eq!((level.stock, level.sold), (4, 2));
    assert!(level.is_consistent());
    let missing = repositories
        .products
        .restock(ProductId(404), restock(1), &admin())
        .await;
    assert!(matches!(
        missing,
        Err(ProductError::NotFound(ProductId(404)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_are_listed_newest_first_and_fetched_by_id() {
    let fixture = fixture().await;
    let repositories = &fixture.repositories;
    let id = product(repositories, "Book", 10).await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(
            repositories
                .purchases
                .purchase(order(9, id, 1, None))
                .await
                .unwrap()
                .purchase,
        );
    }
    let listed = repositories
        .purchases
        .list_for_user(UserId(9), Page::parse(None, None).unwrap())
        .await
        .unwrap();
    made.reverse();
    assert_eq!(listed, made);
    let fetched = repositories
        .purchases
        .get(made[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched, made[0]);
    assert_eq!(fetched.total_price.minor_units(), 1_999);
    let unknown = repositories
        .purchases
        .purchase(order(9, ProductId(77), 1, None))
        .await;
    assert!(matches!(
        unknown,
        Err(PurchaseError::ProductNotFound(ProductId(77)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis() {
    let mut server = RedisServer::start();
    let mut settings = RedisSettings::new(server.url());
    settings.response_timeout = std::time::Duration::from_millis(300);
    let repositories = connect(&settings).await.unwrap();
    let ready = repositories.health.readiness().await;
    assert!(ready.is_ready(), "{ready:?}");
    assert_eq!(ready.locks, LockReadiness::DataStore);
    server.pause();
    let paused = repositories.health.readiness().await;
    assert!(
        !paused.is_ready() && !paused.data_store_reachable(),
        "{paused:?}"
    );
    server.resume();
    assert!(repositories.health.readiness().await.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_fast_without_redis() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    assert!(connect(&RedisSettings::new(url)).await.is_err());
}

/// Redlock mode: 5 lock nodes (AOF + fsync always, declared so) and a data node.
struct RedlockFixture {
    nodes: RedisNodes,
    data: RedisServer,
    repositories: Repositories,
}

fn redlock_settings(nodes: &RedisNodes) -> RedlockSettings {
    RedlockSettings {
        nodes: nodes.urls(),
        fsync_always: true,
        // The nodes fsync every write on a shared disk: be generous.
        node_timeout: Some(std::time::Duration::from_millis(500)),
    }
}

async fn redlock_fixture() -> RedlockFixture {
    let nodes = RedisNodes::start_with(5, &["--appendonly", "yes", "--appendfsync", "always"]);
    let data = RedisServer::start();
    let repositories = connect_redlock(&RedisSettings::new(data.url()), &redlock_settings(&nodes))
        .await
        .unwrap();
    RedlockFixture {
        nodes,
        data,
        repositories,
    }
}

fn quorum(readiness: &inventory_domain::Readiness) -> &inventory_domain::LockQuorum {
    match &readiness.locks {
        LockReadiness::Quorum(quorum) => quorum,
        other => panic!("not a quorum lock: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_mode_sells_under_the_quorum_and_fences_on_the_data_node() {
    let fixture = redlock_fixture().await;
    let repositories = &fixture.repositories;
    let id = product(repositories, "Redlock TV", 10).await;
    let outcomes = join_all((1..=30).map(|user| {
        let purchases = Arc::clone(&repositories.purchases);
        async move { purchases.purchase(order(user, id, 1, None)).await }
    }))
    .await;
    let bought = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(bought, 10, "{outcomes:?}");
    let level = repositories
        .products
        .restock(
            id,
            RestockOrder {
                quantity: RestockQuantity::parse(5).unwrap(),
                idempotency_key: None,
            },
            &admin(),
        )
        .await;
    assert_eq!(level.unwrap().level.stock, 5);

    // The data lives on the data node only, and every grant minted its fence there.
    let fence = fixture
        .data
        .command(
            &["GET", &format!("{{product:{}}}:lock:fence", id.0)],
            Duration::from_secs(1),
        )
        .unwrap();
    assert!(
        matches!(&fence, Reply::Bulk(Some(n)) if String::from_utf8_lossy(n).parse::<u64>().unwrap() >= 2),
        "{fence:?}"
    );
    for node in &fixture.nodes {
        let keys = node.command(&["DBSIZE"], Duration::from_secs(1)).unwrap();
        assert_eq!(keys, Reply::Integer(0), "a lock node keeps no data");
    }

    let ready = repositories.health.readiness().await;
    assert!(ready.is_ready(), "{ready:?}");
    let quorum = quorum(&ready);
    assert_eq!(
        (quorum.quorum, quorum.counting, quorum.nodes.len()),
        (3, 5, 5)
    );
    assert!(
        quorum
            .nodes
            .iter()
            .all(|n| n.fsync_always && n.counts_toward_quorum)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_readiness_follows_the_quorum_and_the_data_node() {
    let mut fixture = redlock_fixture().await;
    let health = Arc::clone(&fixture.repositories.health);
    fixture.nodes[0].kill();
    fixture.nodes[1].kill();
    let two_down = health.readiness().await;
    assert!(two_down.is_ready(), "{two_down:?}");
    assert_eq!(quorum(&two_down).counting, 3);
    assert!(!quorum(&two_down).nodes[0].reachable);

    fixture.nodes[2].kill();
    let three_down = health.readiness().await;
    assert!(!three_down.is_ready(), "{three_down:?}");
    assert!(three_down.data_store_reachable());
    assert_eq!(quorum(&three_down).counting, 2);

    // A durable node counts again as soon as it is reconnected (after the reconnect
    // backoff, at most a second): no quarantine.
    fixture.nodes[2].restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let back = loop {
        let readiness = health.readiness().await;
        if readiness.is_ready() || tokio::time::Instant::now() > deadline {
            break readiness;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(back.is_ready(), "{back:?}");
    assert!(quorum(&back).nodes[2].quarantine_left.is_none(), "{back:?}");

    fixture.data.kill();
    let no_data = health.readiness().await;
    assert!(
        !no_data.is_ready() && !no_data.data_store_reachable(),
        "{no_data:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_start_up_needs_the_data_node_but_not_every_lock_node() {
    let mut nodes = RedisNodes::start(5);
    let mut data = RedisServer::start();
    nodes[3].kill();
    nodes[4].kill();
    let settings = RedisSettings::new(data.url());
    let repositories = connect_redlock(&settings, &redlock_settings(&nodes))
        .await
        .unwrap();
    let ready = repositories.health.readiness().await;
    // These nodes run without AOF: the fsync-always declaration is not trusted, and
    // freshly started nodes sit out LOCK_TTL_MS (5 s here).
    let quorum = quorum(&ready);
    assert_eq!(quorum.counting, 0, "{ready:?}");
    assert!(
        quorum.nodes[..3]
            .iter()
            .all(|n| n.reachable && n.quarantine_left.is_some()),
        "{ready:?}"
    );
    assert!(!ready.is_ready());

    data.kill();
    let error = connect_redlock(&settings, &redlock_settings(&nodes))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            inventory_infra::redis::ConnectError::Unreachable { .. }
        ),
        "{error:?}"
    );
}
