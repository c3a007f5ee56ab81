//! The audit trail: an append-only log of every change to a product's stock,
//! written atomically with the change itself.

use std::{fmt, str::FromStr};

use time::OffsetDateTime;

use crate::{UserId, ValidationError, ValidationErrors};

/// What changed the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// The product was created with its initial stock.
    Create,
    /// A single-product purchase.
    Purchase,
    /// One line of a multi-product order.
    Order,
    /// A line of an order that never completed, given back by recovery (the
    /// trail is append-only, so an undo is an entry of its own).
    OrderRollback,
    /// Units added by an admin.
    Restock,
    /// The stock set by a stock-take.
    Adjust,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 6] = [
        AuditKind::Create,
        AuditKind::Purchase,
        AuditKind::Order,
        AuditKind::OrderRollback,
        AuditKind::Restock,
        AuditKind::Adjust,
    ];

    /// Stable name, used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Create => "create",
            AuditKind::Purchase => "purchase",
            AuditKind::Order => "order",
            AuditKind::OrderRollback => "order-rollback",
            AuditKind::Restock => "restock",
            AuditKind::Adjust => "adjust",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown audit kind {s:?}"))
    }
}

/// The position of an entry in a product's trail: `<ms>-<n>` (a Redis stream id;
/// the in-memory store makes the same shape). Entries are ordered by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuditCursor {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence within the millisecond.
    pub seq: u64,
}

impl AuditCursor {
    /// Most digits of either part (19 nines still fit a `u64`).
    pub const MAX_DIGITS: usize = 19;

    /// Parses `<ms>-<n>`: two unsigned decimal integers of 1–19 digits.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("after", "must be an entry id, `<ms>-<n>`");
        let (ms, seq) = raw.split_once('-').ok_or_else(invalid)?;
        let number = |part: &str| {
            if part.is_empty()
                || part.len() > Self::MAX_DIGITS
                || !part.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid());
            }
            part.parse::<u64>().map_err(|_| invalid())
        };
        Ok(Self {
            ms: number(ms)?,
            seq: number(seq)?,
        })
    }

    /// The cursor just after `self`, for an inclusive range start.
    pub fn successor(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| Self { ms, seq: 0 }),
        }
    }
}

impl fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One change of a product's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its position in the trail.
    pub id: AuditCursor,
    /// What changed the stock.
    pub kind: AuditKind,
    /// The user on whose behalf (buyer, or admin).
    pub actor: UserId,
    /// The signed change of the stock: −3 for a purchase of 3, +50 for a restock,
    /// the initial stock for `create`. Replaying the trail sums these.
    pub quantity: i64,
    /// The stock right after the change.
    pub stock_after: u64,
    /// The fencing token of the lock hold the change was made under; `None` for
    /// `create` (no lock: the product did not exist).
    pub fence: Option<u64>,
    /// The request that made the change.
    pub request_id: String,
    /// When it was made.
    pub at: OffsetDateTime,
    /// The purchase or order the entry belongs to, if any.
    pub reference: Option<u64>,
    /// Why (adjustments).
    pub reason: Option<String>,
}

/// Which part of a trail to read: up to `limit` entries after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery {
    limit: u32,
    after: Option<AuditCursor>,
}

impl AuditQuery {
    /// Entries per page when the client does not say.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Most entries per page.
    pub const MAX_LIMIT: u32 = 1000;

    /// Parses the optional `limit` and `after` query parameters.
    pub fn parse(limit: Option<i64>, after: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let limit = errors.check(match limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(v) => u32::try_from(v)
                .ok()
                .filter(|v| (1..=Self::MAX_LIMIT).contains(v))
                .ok_or_else(|| {
                    ValidationError::new(
                        "limit",
                        format!("must be an integer between 1 and {}", Self::MAX_LIMIT),
                    )
                }),
        });
        let after = match after {
            None => Some(None),
            Some(raw) => errors.check(AuditCursor::parse(raw)).map(Some),
        };
        match (limit, after) {
            (Some(limit), Some(after)) => Ok(Self { limit, after }),
            _ => Err(errors),
        }
    }

    /// From the start of the trail.
    pub fn first(limit: u32) -> Self {
        Self {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            after: None,
        }
    }

    /// The page after `cursor`.
    pub fn after(self, cursor: AuditCursor) -> Self {
        Self {
            after: Some(cursor),
            ..self
        }
    }

    /// Entries per page.
    pub fn limit(self) -> u32 {
        self.limit
    }

    /// Entries strictly after this one (from the start when `None`).
    pub fn after_cursor(self) -> Option<AuditCursor> {
        self.after
    }
}

/// A page of a trail, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts (`after=`), when this one was full.
    pub next: Option<AuditCursor>,
}

impl AuditPage {
    /// A page of `entries` read for `query`: `next` is set when the page is full.
    pub fn new(entries: Vec<AuditEntry>, query: AuditQuery) -> Self {
        let full = entries.len() >= query.limit() as usize;
        let next = full.then(|| entries.last().map(|e| e.id)).flatten();
        Self { entries, next }
    }
}

/// Replays a trail (oldest first): the stock it ends at, or the first entry whose
/// `stock_after` does not follow from the ones before it.
pub fn replay(entries: &[AuditEntry]) -> Result<i128, (AuditCursor, i128, u64)> {
    let mut stock: i128 = 0;
    for entry in entries {
        stock += i128::from(entry.quantity);
        if stock != i128::from(entry.stock_after) {
            return Err((entry.id, stock, entry.stock_after));
        }
    }
    Ok(stock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_and_order() {
        let a = AuditCursor::parse("1700000000000-0").unwrap();
        let b = AuditCursor::parse("1700000000000-12").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1700000000000-12");
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "a-1",
            "1-1-1",
            "+1-1",
            "1 -1",
            "99999999999999999999999-0",
        ] {
            assert!(AuditCursor::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AuditCursor {
                ms: 5,
                seq: u64::MAX
            }
            .successor(),
            Some(AuditCursor { ms: 6, seq: 0 })
        );
    }

    #[test]
    fn kinds_round_trip() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>().unwrap(), kind);
        }
        assert!("sale".parse::<AuditKind>().is_err());
    }

    #[test]
    fn query_bounds() {
        assert_eq!(AuditQuery::parse(None, None).unwrap().limit(), 100);
        assert!(AuditQuery::parse(Some(0), None).is_err());
        assert!(AuditQuery::parse(Some(1001), None).is_err());
        let errors = AuditQuery::parse(Some(0), Some("x")).unwrap_err();
        assert_eq!(errors.errors().len(), 2);
        let query = AuditQuery::parse(Some(5), Some("3-4")).unwrap();
        assert_eq!(query.after_cursor(), Some(AuditCursor { ms: 3, seq: 4 }));
    }

    fn entry(seq: u64, quantity: i64, stock_after: u64) -> AuditEntry {
        AuditEntry {
            id: AuditCursor { ms: 1, seq },
            kind: AuditKind::Purchase,
            actor: UserId(1),
            quantity,
            stock_after,
            fence: Some(1),
            request_id: "r".into(),
            at: OffsetDateTime::UNIX_EPOCH,
            reference: None,
            reason: None,
        }
    }

    #[test]
    fn replay_sums_and_finds_the_first_break() {
        let trail = [entry(0, 10, 10), entry(1, -3, 7), entry(2, 5, 12)];
        assert_eq!(replay(&trail), Ok(12));
        let broken = [entry(0, 10, 10), entry(1, -3, 8), entry(2, 5, 13)];
        assert_eq!(replay(&broken), Err((AuditCursor { ms: 1, seq: 1 }, 7, 8)));
    }

    #[test]
    fn pages_point_to_the_next_one_only_when_full() {
        let query = AuditQuery::first(2);
        let full = AuditPage::new(vec![entry(0, 1, 1), entry(1, 1, 2)], query);
        assert_eq!(full.next, Some(AuditCursor { ms: 1, seq: 1 }));
        assert_eq!(AuditPage::new(vec![entry(0, 1, 1)], query).next, None);
    }
}
