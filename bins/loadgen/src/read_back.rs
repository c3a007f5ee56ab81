//! After a run: the final stock of each product and every buyer's purchase records (or,
//! after `cart`, order lines) of those products, read back from the server.

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};

use crate::client::{Api, Id, PurchaseRecord};
use crate::setup::{Buyer, progress_bar, with_retries};

/// What the server says happened, per product (same order as the run's products).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadBack {
    pub(crate) final_stock: Vec<i64>,
    pub(crate) records: Vec<Vec<PurchaseRecord>>,
}

/// Which records a run left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Records {
    /// Single-product purchases (GET /api/purchases/me).
    Purchases,
    /// Order lines (GET /api/orders/me), each keyed by its order's id.
    OrderLines,
}

/// Reads stock (as the admin) and the buyers' records (`concurrency` buyers at a time).
pub(crate) async fn read_back(
    api: &Api,
    admin_token: &str,
    products: &[Id],
    buyers: &[Buyer],
    records: Records,
    concurrency: usize,
    progress: bool,
) -> anyhow::Result<ReadBack> {
    let mut final_stock = Vec::with_capacity(products.len());
    for product in products {
        let view = with_retries(|| api.stock(admin_token, product))
            .await
            .with_context(|| format!("reading the stock of product {product}"))?;
        final_stock.push(view.stock);
    }
    let bar = progress_bar(progress, buyers.len(), "reading purchases back");
    let per_buyer: Vec<Vec<PurchaseRecord>> = stream::iter(buyers)
        .map(|buyer| {
            let bar = &bar;
            async move {
                let records = match records {
                    Records::Purchases => with_retries(|| api.my_purchases(&buyer.token)).await,
                    Records::OrderLines => with_retries(|| api.my_order_lines(&buyer.token)).await,
                }
                .with_context(|| format!("listing the records of `{}`", buyer.username))?;
                bar.inc(1);
                anyhow::Ok(records)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();
    Ok(ReadBack {
        final_stock,
        records: by_product(products, per_buyer.into_iter().flatten()),
    })
}

/// The records of each product, dropping those of other products.
fn by_product(
    products: &[Id],
    records: impl Iterator<Item = PurchaseRecord>,
) -> Vec<Vec<PurchaseRecord>> {
    let mut grouped = vec![Vec::new(); products.len()];
    for record in records {
        if let Some(index) = products
            .iter()
            .position(|product| *product == record.product_id)
        {
            grouped[index].push(record);
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_grouped_by_product_and_strangers_dropped() {
        let id = |n: u64| Id::from_json(&json!(n)).unwrap();
        let record = |n, product| PurchaseRecord {
            id: id(n),
            product_id: id(product),
            quantity: 1,
        };
        let grouped = by_product(
            &[id(7), id(8)],
            [record(1, 7), record(2, 9), record(3, 8), record(4, 7)].into_iter(),
        );
        assert_eq!(
            grouped[0]
                .iter()
                .map(|r| r.id.to_string())
                .collect::<Vec<_>>(),
            ["1", "4"]
        );
        assert_eq!(grouped[1].len(), 1);
    }
}
