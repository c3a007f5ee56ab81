//! Pagination of list endpoints.

use crate::{ValidationError, ValidationErrors};

/// A window of a list: `limit` items (1..=100, default 20) starting at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    limit: u32,
    offset: u64,
}

impl Page {
    /// Items per page when the client does not say.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Most items per page.
    pub const MAX_LIMIT: u32 = 100;
    /// Largest offset accepted (no list is anywhere near this long).
    pub const MAX_OFFSET: u64 = 1_000_000_000;

    /// Parses the optional `limit` and `offset` query parameters.
    pub fn parse(limit: Option<i64>, offset: Option<i64>) -> Result<Self, ValidationErrors> {
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
        let offset = errors.check(match offset {
            None => Ok(0),
            Some(v) => u64::try_from(v)
                .ok()
                .filter(|v| *v <= Self::MAX_OFFSET)
                .ok_or_else(|| {
                    ValidationError::new(
                        "offset",
                        format!("must be an integer between 0 and {}", Self::MAX_OFFSET),
                    )
                }),
        });
        match (limit, offset) {
            (Some(limit), Some(offset)) => Ok(Self { limit, offset }),
            _ => Err(errors),
        }
    }

    /// Items per page.
    pub fn limit(self) -> u32 {
        self.limit
    }

    /// Items skipped.
    pub fn offset(self) -> u64 {
        self.offset
    }

    /// `limit` and `offset` as `usize` for slicing in-memory collections.
    pub fn bounds(self) -> (usize, usize) {
        (
            usize::try_from(self.offset).unwrap_or(usize::MAX),
            self.limit as usize,
        )
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let page = Page::parse(None, None).unwrap();
        assert_eq!((page.limit(), page.offset()), (20, 0));
        assert_eq!(page, Page::default());
    }

    #[test]
    fn boundaries() {
        assert!(Page::parse(Some(0), None).is_err());
        assert_eq!(Page::parse(Some(1), None).unwrap().limit(), 1);
        assert_eq!(Page::parse(Some(100), None).unwrap().limit(), 100);
        assert!(Page::parse(Some(101), None).is_err());
        assert!(Page::parse(None, Some(-1)).is_err());
        assert_eq!(Page::parse(None, Some(5)).unwrap().offset(), 5);
        assert!(Page::parse(None, Some(i64::MAX)).is_err());
    }

    #[test]
    fn reports_both_fields() {
        let errors = Page::parse(Some(-1), Some(-1)).unwrap_err();
        let fields: Vec<_> = errors.errors().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["limit", "offset"]);
    }
}
