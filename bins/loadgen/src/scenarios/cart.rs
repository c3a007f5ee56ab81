//! `cart`: every buyer places one order of a random basket of 2–5 of the run's
//! products (in random order, quantities from `--quantity`), all fired within the
//! window like `black-friday` (whose burst engine it uses). Each order is all or
//! nothing, so its audit is per product: an accepted order counts each of its lines
//! against that line's product.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::black_friday::{self, BurstOptions};
use super::{Planned, Quantities, Sample, idempotency_key};
use crate::client::{Api, Id};
use crate::setup::Buyer;

/// Fewest and most products in a basket (fewer when the run has fewer products).
const BASKET: (usize, usize) = (2, 5);

/// The orders of a run, and the same requests as one sample per line (by product).
#[derive(Debug, Default)]
pub(crate) struct CartRun {
    pub(crate) orders: Vec<Sample>,
    pub(crate) lines: Vec<Sample>,
}

/// One basket: `(product index, quantity)`, in the order the request names them.
pub(crate) type Basket = Vec<(usize, u32)>;

/// Draws a basket per buyer, reproducibly from `seed`.
pub(crate) fn baskets(
    buyers: usize,
    products: usize,
    quantities: &mut Quantities,
    seed: u64,
) -> Vec<Basket> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xca27);
    let most = BASKET.1.min(products);
    let fewest = BASKET.0.min(most);
    (0..buyers)
        .map(|_| {
            let size = rng.random_range(fewest..=most);
            let mut chosen: Vec<usize> = (0..products).collect();
            for i in 0..size {
                let j = rng.random_range(i..products);
                chosen.swap(i, j);
            }
            chosen
                .into_iter()
                .take(size)
                .map(|product| (product, quantities.next()))
                .collect()
        })
        .collect()
}

/// One order per buyer.
pub(crate) async fn run(
    api: &Api,
    buyers: &[Buyer],
    products: &[Id],
    quantities: &mut Quantities,
    seed: u64,
    options: BurstOptions,
) -> anyhow::Result<CartRun> {
    anyhow::ensure!(!products.is_empty(), "cart needs at least one product");
    let baskets = baskets(buyers.len(), products.len(), quantities, seed);
    let planned = buyers
        .iter()
        .zip(&baskets)
        .enumerate()
        .map(|(index, (buyer, basket))| {
            let items: Vec<(&Id, u32)> = basket
                .iter()
                .map(|(product, quantity)| (&products[*product], *quantity))
                .collect();
            let request = api.order_request(&buyer.token, &items, &idempotency_key())?;
            Ok(Planned {
                // The engine carries the basket's index through to its sample.
                product: index,
                quantity: basket.iter().map(|(_, q)| q).sum(),
                request,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let orders = black_friday::fire(api, planned, options).await?;
    let lines = orders
        .iter()
        .flat_map(|order| {
            baskets[order.product]
                .iter()
                .map(|(product, quantity)| Sample {
                    product: *product,
                    quantity: *quantity,
                    ..order.clone()
                })
        })
        .collect();
    Ok(CartRun { orders, lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::QuantityRange;

    #[test]
    fn baskets_hold_two_to_five_distinct_products_reproducibly() {
        let draw = || {
            let mut quantities = Quantities::new(QuantityRange::new(1, 3).unwrap(), 7);
            baskets(500, 10, &mut quantities, 7)
        };
        let first = draw();
        assert_eq!(first, draw());
        for basket in &first {
            assert!((2..=5).contains(&basket.len()), "{basket:?}");
            let mut products: Vec<usize> = basket.iter().map(|(p, _)| *p).collect();
            products.sort_unstable();
            products.dedup();
            assert_eq!(products.len(), basket.len(), "a product twice: {basket:?}");
            assert!(basket.iter().all(|(p, q)| *p < 10 && (1..=3).contains(q)));
        }
        assert!(first.iter().any(|b| b.len() == 5) && first.iter().any(|b| b.len() == 2));
        let mut quantities = Quantities::new(QuantityRange::new(1, 1).unwrap(), 1);
        assert!(
            baskets(20, 1, &mut quantities, 1)
                .iter()
                .all(|b| b.len() == 1)
        );
    }
}
