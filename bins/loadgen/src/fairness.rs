//! Fairness of a sale: were the buyers served in the order their requests were sent?
//!
//! - `first_k`: how many of the first requests, in send order, the stock could have served
//!   together (the longest prefix whose quantities add up to at most the stock; with
//!   quantity 1 that is K = stock);
//! - `first_k_accepted`: how many of those were accepted (ideally all);
//! - `inversions`: requests refused as sold out although a later-sent request for at least
//!   as many units was accepted (in arrival order that later one could not have fitted).

use serde::Serialize;

/// How a purchase ended, as far as fairness cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    SoldOut,
    Other,
}

/// One purchase in send order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub(crate) quantity: u32,
    pub(crate) verdict: Verdict,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Fairness {
    pub(crate) first_k: u64,
    pub(crate) first_k_accepted: u64,
    pub(crate) inversions: u64,
}

impl Fairness {
    /// Sum of two products' figures (each product is a sale of its own).
    pub(crate) fn plus(self, other: Self) -> Self {
        Self {
            first_k: self.first_k + other.first_k,
            first_k_accepted: self.first_k_accepted + other.first_k_accepted,
            inversions: self.inversions + other.inversions,
        }
    }
}

/// Fairness of one product's purchases, given in send order, against its stock.
pub(crate) fn fairness(in_send_order: &[Attempt], stock: u64) -> Fairness {
    let first_k = servable_prefix(in_send_order, stock);
    let first_k_accepted = in_send_order[..first_k]
        .iter()
        .filter(|attempt| attempt.verdict == Verdict::Accepted)
        .count();
    Fairness {
        first_k: first_k as u64,
        first_k_accepted: first_k_accepted as u64,
        inversions: inversions(in_send_order),
    }
}

/// Length of the longest prefix whose quantities fit in `stock`.
fn servable_prefix(attempts: &[Attempt], stock: u64) -> usize {
    let mut left = stock;
    attempts
        .iter()
        .take_while(
            |attempt| match left.checked_sub(u64::from(attempt.quantity)) {
                Some(rest) => {
                    left = rest;
                    true
                }
                None => false,
            },
        )
        .count()
}

/// Refusals overtaken by a later-sent acceptance of at least the same quantity.
fn inversions(in_send_order: &[Attempt]) -> u64 {
    let mut largest_later_accepted = 0;
    let mut count = 0;
    for attempt in in_send_order.iter().rev() {
        match attempt.verdict {
            Verdict::Accepted => {
                largest_later_accepted = largest_later_accepted.max(attempt.quantity)
            }
            Verdict::SoldOut if attempt.quantity <= largest_later_accepted => count += 1,
            Verdict::SoldOut | Verdict::Other => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pattern: &str) -> Vec<Attempt> {
        pattern
            .chars()
            .map(|c| Attempt {
                quantity: 1,
                verdict: match c {
                    'A' => Verdict::Accepted,
                    'R' => Verdict::SoldOut,
                    _ => Verdict::Other,
                },
            })
            .collect()
    }

    #[test]
    fn a_perfect_sale_serves_the_first_k() {
        let fairness = fairness(&run("AAARRRR"), 3);
        assert_eq!(
            fairness,
            Fairness {
                first_k: 3,
                first_k_accepted: 3,
                inversions: 0
            }
        );
    }

    #[test]
    fn each_refusal_before_a_later_acceptance_is_one_inversion() {
        // The second request lost to the fourth, the third to the fourth as well.
        let fairness = fairness(&run("ARRAR"), 2);
        assert_eq!(
            fairness,
            Fairness {
                first_k: 2,
                first_k_accepted: 1,
                inversions: 2
            }
        );
    }

    #[test]
    fn failures_that_are_not_sold_out_are_no_inversion_but_miss_the_first_k() {
        let fairness = fairness(&run("AXAR"), 3);
        assert_eq!(
            fairness,
            Fairness {
                first_k: 3,
                first_k_accepted: 2,
                inversions: 0
            }
        );
    }

    #[test]
    fn k_follows_the_quantities() {
        let attempts = [2, 2, 1, 3]
            .map(|quantity| Attempt {
                quantity,
                verdict: Verdict::Accepted,
            })
            .to_vec();
        assert_eq!(fairness(&attempts, 5).first_k, 3);
        assert_eq!(fairness(&attempts, 3).first_k, 1);
        assert_eq!(fairness(&attempts, 100).first_k, 4);
        assert_eq!(fairness(&[], 100), Fairness::default());
    }

    #[test]
    fn a_refused_large_order_overtaken_by_a_small_one_is_fair() {
        let attempts = [
            Attempt {
                quantity: 3,
                verdict: Verdict::SoldOut,
            },
            Attempt {
                quantity: 1,
                verdict: Verdict::Accepted,
            },
            Attempt {
                quantity: 1,
                verdict: Verdict::SoldOut,
            },
            Attempt {
                quantity: 2,
                verdict: Verdict::Accepted,
            },
        ];
        assert_eq!(fairness(&attempts, 2).inversions, 1);
    }

    #[test]
    fn products_add_up() {
        let a = Fairness {
            first_k: 2,
            first_k_accepted: 1,
            inversions: 3,
        };
        let b = Fairness {
            first_k: 5,
            first_k_accepted: 5,
            inversions: 0,
        };
        assert_eq!(
            a.plus(b),
            Fairness {
                first_k: 7,
                first_k_accepted: 6,
                inversions: 3
            }
        );
    }
}
