//! Redis hashes ↔ domain entities. A missing or malformed field is corrupt data,
//! reported as such rather than papered over with a default.

use std::collections::HashMap;
use std::str::FromStr;

use inventory_domain::{
    AuditCursor, AuditEntry, AuditKind, Description, Email, Price, Product, ProductId, ProductName,
    Role, StockLevel, StoreError, User, UserId, Username,
};
use time::OffsetDateTime;

/// A hash as read with HGETALL.
pub(crate) type Fields = HashMap<String, String>;

/// Reads fields of one stored entity, naming it in errors.
pub(crate) struct Record<'a> {
    what: &'a str,
    fields: &'a Fields,
}

impl<'a> Record<'a> {
    pub(crate) fn new(what: &'a str, fields: &'a Fields) -> Self {
        Self { what, fields }
    }

    fn raw(&self, field: &str) -> Result<&'a str, StoreError> {
        self.fields
            .get(field)
            .map(String::as_str)
            .ok_or_else(|| StoreError::corrupt(format!("{} has no `{field}`", self.what)))
    }

    fn optional(&self, field: &str) -> Option<&'a str> {
        self.fields.get(field).map(String::as_str)
    }

    pub(crate) fn parse<T: FromStr>(&self, field: &str) -> Result<T, StoreError> {
        self.raw(field)?
            .parse()
            .map_err(|_| StoreError::corrupt(format!("{} has a malformed `{field}`", self.what)))
    }

    fn time(&self, field: &str) -> Result<OffsetDateTime, StoreError> {
        time_from_unix_ms(self.parse(field)?).ok_or_else(|| {
            StoreError::corrupt(format!("{} has an out-of-range `{field}`", self.what))
        })
    }

    fn valid<T, E>(
        &self,
        field: &str,
        parse: impl FnOnce(&'a str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        parse(self.raw(field)?)
            .map_err(|_| StoreError::corrupt(format!("{} has an invalid `{field}`", self.what)))
    }
}

pub(crate) fn user(fields: &Fields) -> Result<User, StoreError> {
    let record = Record::new("user", fields);
    Ok(User {
        id: UserId(record.parse("id")?),
        username: record.valid("username", Username::parse)?,
        email: record
            .optional("email")
            .map(Email::parse)
            .transpose()
            .map_err(|_| StoreError::corrupt("user has an invalid `email`"))?,
        role: record.parse::<Role>("role")?,
        password_hash: record.raw("password_hash")?.to_owned(),
        created_at: record.time("created_at")?,
    })
}

pub(crate) fn product(fields: &Fields) -> Result<Product, StoreError> {
    let record = Record::new("product", fields);
    Ok(Product {
        id: ProductId(record.parse("id")?),
        name: record.valid("name", ProductName::parse)?,
        description: record
            .optional("description")
            .map(Description::parse)
            .transpose()
            .map_err(|_| StoreError::corrupt("product has an invalid `description`"))?,
        price: record.valid("price", |raw| {
            raw.parse::<i64>()
                .map_err(|_| ())
                .and_then(|v| Price::parse(v).map_err(|_| ()))
        })?,
        stock: record.parse("stock")?,
        created_at: record.time("created_at")?,
        updated_at: record.time("updated_at")?,
    })
}

pub(crate) fn stock_level(fields: &Fields) -> Result<StockLevel, StoreError> {
    let record = Record::new("product", fields);
    let level = StockLevel {
        product_id: ProductId(record.parse("id")?),
        stock: record.parse("stock")?,
        sold: record.parse("sold")?,
        initial_stock: record.parse("initial_stock")?,
        restocked: record.parse("restocked")?,
        // Products created before adjustments existed have none.
        adjusted: record
            .optional("adjusted")
            .map_or(Ok(0), |_| record.parse("adjusted"))?,
    };
    if !level.is_consistent() {
        return Err(StoreError::corrupt(format!(
            "stock accounting of product {} does not add up",
            level.product_id
        )));
    }
    Ok(level)
}

/// One entry of a product's audit trail, as `XRANGE` returns it: the entry id
/// and its field/value list.
pub(crate) fn audit_entry(id: &str, pairs: &[String]) -> Result<AuditEntry, StoreError> {
    let fields: Fields = pairs
        .chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    let record = Record::new("audit entry", &fields);
    Ok(AuditEntry {
        id: AuditCursor::parse(id)
            .map_err(|_| StoreError::corrupt(format!("audit entry id {id:?} is malformed")))?,
        kind: record.valid("kind", |raw| raw.parse::<AuditKind>())?,
        actor: UserId(record.parse("actor")?),
        quantity: record.parse("quantity")?,
        stock_after: record.parse("stock_after")?,
        fence: record
            .optional("fence")
            .map(|_| record.parse("fence"))
            .transpose()?,
        request_id: record.raw("request_id")?.to_owned(),
        at: record.time("at")?,
        reference: record
            .optional("ref")
            .map(|_| record.parse("ref"))
            .transpose()?,
        reason: record.optional("reason").map(str::to_owned),
    })
}

/// Milliseconds since the Unix epoch, as stored.
pub(crate) fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn time_from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// The current time, truncated to what is stored (milliseconds), so that what
/// a write returns equals what a later read returns.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    time_from_unix_ms(unix_ms(now)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let now = now();
        assert_eq!(time_from_unix_ms(unix_ms(now)), Some(now));
    }

    #[test]
    fn audit_entries_decode_with_optional_fields() {
        let pairs: Vec<String> = [
            "kind",
            "adjust",
            "actor",
            "1",
            "quantity",
            "-4",
            "stock_after",
            "6",
            "fence",
            "9",
            "request_id",
            "r-1",
            "at",
            "1700000000000",
            "reason",
            "count",
        ]
        .map(String::from)
        .to_vec();
        let entry = audit_entry("1700000000000-3", &pairs).unwrap();
        assert_eq!(entry.kind, AuditKind::Adjust);
        assert_eq!(
            (entry.quantity, entry.stock_after, entry.fence),
            (-4, 6, Some(9))
        );
        assert_eq!(entry.reason.as_deref(), Some("count"));
        assert_eq!(entry.reference, None);
        assert!(audit_entry("x", &pairs).is_err());
    }

    #[test]
    fn a_missing_field_is_corruption() {
        let fields = Fields::from([("id".to_owned(), "1".to_owned())]);
        let error = product(&fields).unwrap_err();
        assert!(
            error.to_string().contains("product has no `name`"),
            "{error}"
        );
    }
}
