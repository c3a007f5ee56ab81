//! `multi-product`: P products, buyers spread across them round-robin, all fired within
//! the window like `black-friday` (which provides the burst engine).

use super::black_friday::{self, BurstOptions};
use super::{Quantities, Sample};
use crate::client::{Api, Id};
use crate::setup::Buyer;

/// One purchase per buyer; buyer `i` buys product `i mod P`.
pub(crate) async fn run(
    api: &Api,
    buyers: &[Buyer],
    products: &[Id],
    quantities: &mut Quantities,
    options: BurstOptions,
) -> anyhow::Result<Vec<Sample>> {
    let count = products.len().max(1);
    let planned = black_friday::plan(api, buyers, products, quantities, |index| index % count)?;
    black_friday::fire(api, planned, options).await
}
