//! The books of one product after a run: what the buyers were told, what left the stock,
//! and what the server recorded. Oversell and lost purchases must both be zero.
//!
//! - `oversell`: units promised (accepted answers or records, whichever is more) beyond the
//!   units that actually left the stock, capped by the stock there was. It catches a
//!   negative stock, a sale past zero and a sale whose decrement was lost.
//! - `lost`: units that were accepted or left the stock but have no purchase record,
//!   and units of accepted purchases whose id is missing from the records (the larger
//!   of the two, so that one missing purchase is not counted twice).
//!
//! A request that timed out may still have bought: its record then has no accepted answer
//! (`records_without_answer`), which is neither oversell nor loss.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::client::{Id, PurchaseRecord};

/// Inputs of the audit of one product.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Books<'a> {
    pub(crate) initial_stock: u64,
    pub(crate) final_stock: i64,
    /// Accepted purchases as `(id if the answer had one, quantity)`.
    pub(crate) accepted: &'a [(Option<Id>, u32)],
    /// Records of this product read back from the server.
    pub(crate) records: &'a [PurchaseRecord],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Audit {
    pub(crate) units_accepted: u64,
    pub(crate) units_removed_from_stock: i64,
    pub(crate) purchase_records: u64,
    pub(crate) units_recorded: u64,
    pub(crate) oversell: u64,
    pub(crate) lost: u64,
    pub(crate) records_without_answer: u64,
    pub(crate) duplicate_records: u64,
}

impl Audit {
    pub(crate) fn is_clean(&self) -> bool {
        self.oversell == 0 && self.lost == 0
    }

    /// Sum over products.
    pub(crate) fn plus(self, other: Self) -> Self {
        Self {
            units_accepted: self.units_accepted + other.units_accepted,
            units_removed_from_stock: self.units_removed_from_stock
                + other.units_removed_from_stock,
            purchase_records: self.purchase_records + other.purchase_records,
            units_recorded: self.units_recorded + other.units_recorded,
            oversell: self.oversell + other.oversell,
            lost: self.lost + other.lost,
            records_without_answer: self.records_without_answer + other.records_without_answer,
            duplicate_records: self.duplicate_records + other.duplicate_records,
        }
    }
}

pub(crate) fn audit(books: Books<'_>) -> Audit {
    let recorded = unique_records(books.records);
    let units_recorded: u64 = recorded.values().sum();
    let units_accepted: u64 = books
        .accepted
        .iter()
        .map(|(_, quantity)| u64::from(*quantity))
        .sum();
    let initial = i64::try_from(books.initial_stock).unwrap_or(i64::MAX);
    let removed = initial.saturating_sub(books.final_stock);
    let removed_units = u64::try_from(removed).unwrap_or(0);

    let promised = units_accepted.max(units_recorded);
    let oversell = promised.saturating_sub(removed_units.min(books.initial_stock));
    let unrecorded = units_accepted
        .max(removed_units)
        .saturating_sub(units_recorded);
    let missing_by_id: u64 = books
        .accepted
        .iter()
        .filter(|(id, _)| id.as_ref().is_some_and(|id| !recorded.contains_key(id)))
        .map(|(_, quantity)| u64::from(*quantity))
        .sum();
    let answered: BTreeSet<&Id> = books
        .accepted
        .iter()
        .filter_map(|(id, _)| id.as_ref())
        .collect();
    Audit {
        units_accepted,
        units_removed_from_stock: removed,
        purchase_records: recorded.len() as u64,
        units_recorded,
        oversell,
        lost: unrecorded.max(missing_by_id),
        records_without_answer: recorded
            .keys()
            .filter(|id| !answered.contains(**id))
            .count() as u64,
        duplicate_records: (books.records.len() - recorded.len()) as u64,
    }
}

/// Records by id (a record listed twice counts once).
fn unique_records(records: &[PurchaseRecord]) -> BTreeMap<&Id, u64> {
    records
        .iter()
        .map(|record| (&record.id, record.quantity))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u64) -> Id {
        Id::from_json(&json!(n)).unwrap()
    }

    fn record(n: u64) -> PurchaseRecord {
        PurchaseRecord {
            id: id(n),
            product_id: id(1),
            quantity: 1,
        }
    }

    fn accepted(ids: impl IntoIterator<Item = u64>) -> Vec<(Option<Id>, u32)> {
        ids.into_iter().map(|n| (Some(id(n)), 1)).collect()
    }

    #[test]
    fn a_clean_sale_balances() {
        let accepted = accepted(1..=100);
        let records: Vec<_> = (1..=100).map(record).collect();
        let audit = audit(Books {
            initial_stock: 100,
            final_stock: 0,
            accepted: &accepted,
            records: &records,
        });
        assert!(audit.is_clean(), "{audit:?}");
        assert_eq!(
            (
                audit.units_accepted,
                audit.units_removed_from_stock,
                audit.purchase_records
            ),
            (100, 100, 100)
        );
    }

    #[test]
    fn a_negative_stock_is_oversell() {
        let accepted = accepted(1..=101);
        let records: Vec<_> = (1..=101).map(record).collect();
        let audit = audit(Books {
            initial_stock: 100,
            final_stock: -1,
            accepted: &accepted,
            records: &records,
        });
        assert_eq!((audit.oversell, audit.lost), (1, 0));
    }

    #[test]
    fn a_lost_decrement_is_oversell() {
        let accepted = accepted(1..=11);
        let records: Vec<_> = (1..=11).map(record).collect();
        let audit = audit(Books {
            initial_stock: 1000,
            final_stock: 990,
            accepted: &accepted,
            records: &records,
        });
        assert_eq!((audit.oversell, audit.lost), (1, 0));
    }

    #[test]
    fn an_accepted_purchase_without_record_is_lost() {
        let accepted = accepted(1..=10);
        let records: Vec<_> = (1..=9).map(record).collect();
        let audit = audit(Books {
            initial_stock: 10,
            final_stock: 0,
            accepted: &accepted,
            records: &records,
        });
        assert_eq!((audit.oversell, audit.lost), (0, 1));
    }

    #[test]
    fn a_swapped_record_is_lost_by_id() {
        let accepted = accepted(1..=10);
        let records: Vec<_> = (2..=11).map(record).collect();
        let audit = audit(Books {
            initial_stock: 10,
            final_stock: 0,
            accepted: &accepted,
            records: &records,
        });
        assert_eq!((audit.lost, audit.records_without_answer), (1, 1));
    }

    #[test]
    fn stock_gone_without_any_record_is_lost() {
        let audit = audit(Books {
            initial_stock: 10,
            final_stock: 7,
            accepted: &[],
            records: &[],
        });
        assert_eq!(
            (audit.oversell, audit.lost, audit.units_removed_from_stock),
            (0, 3, 3)
        );
    }

    #[test]
    fn a_timed_out_purchase_that_went_through_is_neither() {
        let accepted = accepted(1..=9);
        let records: Vec<_> = (1..=10).map(record).collect();
        let audit = audit(Books {
            initial_stock: 10,
            final_stock: 0,
            accepted: &accepted,
            records: &records,
        });
        assert!(audit.is_clean(), "{audit:?}");
        assert_eq!(audit.records_without_answer, 1);
    }

    #[test]
    fn duplicates_in_listing_count_once() {
        let accepted = accepted([1]);
        let records = [record(1), record(1)];
        let audit = audit(Books {
            initial_stock: 5,
            final_stock: 4,
            accepted: &accepted,
            records: &records,
        });
        assert!(audit.is_clean(), "{audit:?}");
        assert_eq!((audit.purchase_records, audit.duplicate_records), (1, 1));
    }

    #[test]
    fn answers_without_ids_are_checked_by_units() {
        let accepted = vec![(None, 2), (None, 1)];
        let records = [PurchaseRecord {
            id: id(9),
            product_id: id(1),
            quantity: 3,
        }];
        let audit = audit(Books {
            initial_stock: 3,
            final_stock: 0,
            accepted: &accepted,
            records: &records,
        });
        assert!(audit.is_clean(), "{audit:?}");
    }
}
