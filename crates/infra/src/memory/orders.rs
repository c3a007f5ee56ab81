//! [`OrderService`] in memory: every product's lock taken through the same
//! multi-key lock as in Redis mode (sorted, all or nothing), then every line
//! checked and applied in one critical section under every lease
//! ([`inventory_lock::LocalLock::guarded_many`]). In one process nothing can stop
//! between two lines, so no journal is needed; the answers are those of the Redis
//! store (same idempotency rules, same refusals, same audit entries).

use async_trait::async_trait;
use inventory_domain::{
    AuditKind, Money, NewOrder, Order, OrderError, OrderId, OrderLine, OrderReceipt, OrderService,
    Page, ShortLine, StoreError, UserId,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{
    MemoryStore,
    idempotency::{IdempotencyRecord, Made},
    state::{Change, State},
};

#[async_trait]
impl OrderService for MemoryStore {
    #[tracing::instrument(skip_all, fields(user.id = %order.user_id, order.lines = order.lines.lines().len()))]
    async fn place(&self, order: NewOrder) -> Result<OrderReceipt, OrderError> {
        // Outside the locks, as in Redis mode: replays, reuse, 404, lines short already.
        if let Some(answer) = check(&mut self.state(), &order) {
            return answer;
        }
        let guards = self
            .inner
            .locks
            .acquire_many(order.lines.products())
            .await
            .map_err(OrderError::from)?;
        let fence = |product| {
            guards
                .get(&super::locks::key(product))
                .map(|guard| guard.fencing_token().get())
        };
        let result = self.inner.locks.guarded_many(&guards, || {
            let mut state = self.state();
            match check(&mut state, &order) {
                Some(answer) => answer,
                None => Ok(apply(&mut state, &order, fence)),
            }
        });
        self.inner.locks.release_many(guards).await;
        result.map_err(OrderError::from)?
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.state().orders.get(&id).cloned())
    }

    async fn list_for_user(&self, user: UserId, page: Page) -> Result<Vec<Order>, StoreError> {
        let (offset, limit) = page.bounds();
        let state = self.state();
        let Some(ids) = state.orders_by_user.get(&user) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .filter_map(|id| state.orders.get(id).cloned())
            .collect())
    }
}

/// What the order gets without changing anything, if that is its answer: the
/// order its key already made (replayed), a reuse error, an unknown product, or
/// the short lines. `None`: it can be made now.
fn check(state: &mut State, order: &NewOrder) -> Option<Result<OrderReceipt, OrderError>> {
    if let Some(key) = &order.idempotency_key
        && let Some(record) = state.idempotency.get(&(order.user_id, key.clone()))
        && record.is_live(Instant::now())
    {
        return Some(match record.made {
            Made::Order(id) if record.fingerprint == order.fingerprint() => {
                match state.orders.get(&id) {
                    Some(made) => Ok(OrderReceipt {
                        order: made.clone(),
                        replayed: true,
                    }),
                    None => Err(StoreError::corrupt(format!(
                        "idempotency record points at missing order {id}"
                    ))
                    .into()),
                }
            }
            _ => Err(OrderError::IdempotencyKeyReused),
        });
    }
    let mut short = Vec::new();
    for (product, requested) in order.lines.lines() {
        let Some(record) = state.products.get(product) else {
            return Some(Err(OrderError::ProductNotFound(*product)));
        };
        if record.level.stock < u64::from(*requested) {
            short.push(ShortLine {
                product_id: *product,
                requested: *requested,
                available: record.level.stock,
            });
        }
    }
    (!short.is_empty()).then_some(Err(OrderError::InsufficientStock { lines: short }))
}

/// Buys every line (all checked by [`check`] in the same critical section).
fn apply(
    state: &mut State,
    order: &NewOrder,
    fence: impl Fn(inventory_domain::ProductId) -> Option<u64>,
) -> OrderReceipt {
    let ids = state.orders_by_user.entry(order.user_id).or_default();
    let id = OrderId::compose(order.user_id, ids.len() as u64 + 1).unwrap_or(OrderId(0));
    ids.push(id);
    let now = OffsetDateTime::now_utc();
    let mut lines = Vec::with_capacity(order.lines.lines().len());
    let mut total = Money::default();
    for (product, quantity) in order.lines.lines() {
        let Some(record) = state.products.get_mut(product) else {
            continue;
        };
        record.level.stock -= u64::from(*quantity);
        record.level.sold += u64::from(*quantity);
        record.product.stock = record.level.stock;
        record.product.updated_at = now;
        record.audit(
            Change {
                kind: AuditKind::Order,
                actor: order.user_id,
                quantity: -i64::from(*quantity),
                fence: fence(*product),
                request_id: order.request_id.as_str(),
                reference: Some(id.get()),
                reason: None,
            },
            now,
        );
        crate::metrics::stock(*product, record.level.stock);
        let unit_price = record.product.price;
        // Prices (≤ 10^11) times lines of at most 50 × 10^6 units fit a u64.
        let total_price = unit_price.times(*quantity).unwrap_or(Money(u64::MAX));
        total = Money(total.0.saturating_add(total_price.0));
        lines.push(OrderLine {
            product_id: *product,
            quantity: *quantity,
            unit_price,
            total_price,
        });
    }
    let made = Order {
        id,
        user_id: order.user_id,
        lines,
        total_price: total,
        created_at: now,
    };
    state.orders.insert(id, made.clone());
    if let Some(key) = &order.idempotency_key {
        state.idempotency.insert(
            (order.user_id, key.clone()),
            IdempotencyRecord::new(order.fingerprint(), Made::Order(id)),
        );
    }
    OrderReceipt {
        order: made,
        replayed: false,
    }
}

#[cfg(test)]
mod tests {
    use futures::future::join_all;
    use inventory_domain::{
        Actor, IdempotencyKey, NewProduct, OrderItem, OrderLines, Price, ProductId, ProductName,
        ProductRepository, Quantity, RequestId, Stock,
    };

    use super::*;
    use crate::memory::MemorySettings;

    async fn store_with(stocks: &[i64]) -> (MemoryStore, Vec<ProductId>) {
        let store = MemoryStore::new(MemorySettings::default());
        let mut ids = Vec::new();
        for (index, stock) in stocks.iter().enumerate() {
            let product = ProductRepository::create(
                &store,
                NewProduct {
                    name: ProductName::parse(format!("p{index}")).unwrap(),
                    description: None,
                    price: Price::parse(100 + index as i64).unwrap(),
                    stock: Stock::parse(*stock).unwrap(),
                },
                &Actor::new(UserId(1), RequestId::parse("test").unwrap()),
            )
            .await
            .unwrap();
            ids.push(product.id);
        }
        (store, ids)
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
            request_id: RequestId::parse("test").unwrap(),
        }
    }

    #[tokio::test]
    async fn an_order_buys_every_line() {
        let (store, p) = store_with(&[5, 5]).await;
        let receipt = store
            .place(order(7, &[(p[1], 2), (p[0], 1), (p[1], 1)], None))
            .await
            .unwrap();
        let made = &receipt.order;
        assert_eq!(made.id, OrderId::compose(UserId(7), 1).unwrap());
        assert_eq!(
            made.lines
                .iter()
                .map(|l| (l.product_id, l.quantity))
                .collect::<Vec<_>>(),
            [(p[0], 1), (p[1], 3)]
        );
        assert_eq!(made.total_price, Money(100 + 3 * 101));
        assert_eq!(store.stock(p[0]).await.unwrap().unwrap().stock, 4);
        assert_eq!(store.stock(p[1]).await.unwrap().unwrap().sold, 3);
        assert_eq!(
            OrderService::get(&store, made.id).await.unwrap().as_ref(),
            Some(made)
        );
    }

    #[tokio::test]
    async fn a_short_line_refuses_the_whole_order_and_names_every_short_line() {
        let (store, p) = store_with(&[5, 1, 0]).await;
        let err = store
            .place(order(7, &[(p[0], 2), (p[1], 2), (p[2], 1)], Some("k")))
            .await
            .unwrap_err();
        let OrderError::InsufficientStock { lines } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.product_id, l.requested, l.available))
                .collect::<Vec<_>>(),
            [(p[1], 2, 1), (p[2], 1, 0)]
        );
        assert_eq!(store.stock(p[0]).await.unwrap().unwrap().stock, 5);
        // The failed order did not consume its key.
        assert!(store.place(order(7, &[(p[0], 2)], Some("k"))).await.is_ok());
    }

    #[tokio::test]
    async fn keys_replay_and_refuse_like_purchases() {
        let (store, p) = store_with(&[5, 5]).await;
        let first = store
            .place(order(7, &[(p[0], 1)], Some("k")))
            .await
            .unwrap();
        let again = store
            .place(order(7, &[(p[0], 1)], Some("k")))
            .await
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.order, first.order);
        assert!(matches!(
            store.place(order(7, &[(p[1], 1)], Some("k"))).await,
            Err(OrderError::IdempotencyKeyReused)
        ));
        assert!(matches!(
            store.place(order(7, &[(ProductId(99), 1)], None)).await,
            Err(OrderError::ProductNotFound(ProductId(99)))
        ));
        assert_eq!(store.stock(p[0]).await.unwrap().unwrap().stock, 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_orders_in_any_order_never_oversell() {
        let (store, p) = store_with(&[30, 30, 30]).await;
        let orders = (0..60u64).map(|user| {
            let store = store.clone();
            let items = if user % 2 == 0 {
                vec![(p[0], 1), (p[1], 1), (p[2], 1)]
            } else {
                vec![(p[2], 1), (p[0], 1)]
            };
            tokio::spawn(async move { store.place(order(user, &items, None)).await })
        });
        let results: Vec<bool> = join_all(orders)
            .await
            .into_iter()
            .map(|r| r.unwrap().is_ok())
            .collect();
        let made = results.iter().filter(|ok| **ok).count() as u64;
        let made_even = results.iter().step_by(2).filter(|ok| **ok).count() as u64;
        let sold: Vec<u64> = join_all(p.iter().map(|id| store.stock(*id)))
            .await
            .into_iter()
            .map(|l| l.unwrap().unwrap().sold)
            .collect();
        // Every order names p0 and p2 (30 units each): 30 are made, each whole.
        assert_eq!(made, 30);
        assert_eq!(sold, [made, made_even, made]);
    }
}
