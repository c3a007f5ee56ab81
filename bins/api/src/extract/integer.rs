//! Integers as JSON Schema defines them: any number without a fractional part.
//!
//! JSON (RFC 8259) has one number type, and JSON Schema's `integer` is "a number with a
//! zero fractional part", so `1096`, `1096.0` and `1.096e3` are the same valid integer.
//! serde would refuse the last two for an `i64`; these deserializers accept them, exactly:
//! a number written with a fraction or exponent is accepted only when it is integral and
//! within ±(2^53 − 1), where a double holds every integer exactly (I-JSON, RFC 7493).
//! Every bound the API declares lies inside that range.

use std::fmt;

use serde::{
    Deserializer,
    de::{self, Unexpected, Visitor},
};

/// The largest integer every JSON implementation represents exactly: 2^53 − 1.
pub const MAX_SAFE: i64 = (1 << 53) - 1;

/// An `i64` field of a JSON body.
pub fn json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(JsonInteger)
}

/// A `u64` field of a JSON body (ids).
pub fn json_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = deserializer.deserialize_any(JsonInteger)?;
    u64::try_from(value)
        .map_err(|_| de::Error::invalid_value(Unexpected::Signed(value), &"a non-negative integer"))
}

/// An optional integer query parameter (`?limit=20`, `?limit=20.0`).
pub fn query<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_str(QueryInteger).map(Some)
}

struct JsonInteger;

impl Visitor<'_> for JsonInteger {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v)
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an integer below 2^63"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        integral(v).ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
    }
}

struct QueryInteger;

impl Visitor<'_> for QueryInteger {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        if let Ok(n) = v.parse::<i64>() {
            return Ok(n);
        }
        v.parse::<f64>()
            .ok()
            .and_then(integral)
            .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// `v` as an integer, when it is one and is exact.
fn integral(v: f64) -> Option<i64> {
    // The bound check is on the double; within it the conversion is exact.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "checked integral and within ±2^53"
    )]
    let int = v as i64;
    (v.is_finite() && v.fract() == 0.0 && v.abs() <= MAX_SAFE as f64).then_some(int)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "json")]
        n: i64,
    }

    #[derive(Debug, Deserialize)]
    struct Id {
        #[serde(deserialize_with = "json_u64")]
        id: u64,
    }

    #[derive(Debug, Deserialize)]
    struct Query {
        #[serde(default, deserialize_with = "query")]
        limit: Option<i64>,
    }

    fn n(json: &str) -> Result<i64, serde_json::Error> {
        serde_json::from_str::<Body>(&format!(r#"{{"n": {json}}}"#)).map(|b| b.n)
    }

    #[test]
    fn integral_numbers_are_integers_however_written() {
        for (text, value) in [
            ("1096", 1096),
            ("1096.0", 1096),
            ("1.096e3", 1096),
            ("-7.0", -7),
            ("0.0", 0),
            ("-0.0", 0),
            ("9007199254740991.0", MAX_SAFE),
            ("-9007199254740991.0", -MAX_SAFE),
            ("90071992547409.91e2", MAX_SAFE),
            ("9223372036854775807", i64::MAX),
        ] {
            assert_eq!(n(text).unwrap(), value, "{text}");
        }
    }

    #[test]
    fn fractions_inexact_and_huge_numbers_are_data_errors() {
        for text in [
            "1.5",
            "1e30",
            "9007199254740992.0",
            "9223372036854775808",
            "\"5\"",
            "true",
            "null",
        ] {
            let err = n(text).unwrap_err();
            assert_eq!(
                err.classify(),
                serde_json::error::Category::Data,
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn ids_are_non_negative() {
        let id =
            |json: &str| serde_json::from_str::<Id>(&format!(r#"{{"id": {json}}}"#)).map(|b| b.id);
        assert_eq!(id("42").unwrap(), 42);
        assert_eq!(id("42.0").unwrap(), 42);
        assert!(id("-1").is_err());
        assert!(id("-1.0").is_err());
    }

    #[test]
    fn query_integers() {
        let limit = |q: &str| serde_urlencoded::from_str::<Query>(q).map(|q| q.limit);
        assert_eq!(limit("").unwrap(), None);
        assert_eq!(limit("limit=20").unwrap(), Some(20));
        assert_eq!(limit("limit=20.0").unwrap(), Some(20));
        assert_eq!(limit("limit=-3").unwrap(), Some(-3));
        for bad in [
            "limit=2.5",
            "limit=abc",
            "limit=",
            "limit=NaN",
            "limit=inf",
            "limit=1e300",
        ] {
            assert!(limit(bad).is_err(), "{bad}");
        }
    }
}
