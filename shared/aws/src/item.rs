//! Small helpers for building and reading DynamoDB items, so each adapter's codec reads as a list
//! of attributes. Decoding failures become [`StoreError::Corrupt`] naming the table and
//! attribute, never the value (values may be a customer's data).

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use meter_core::StoreError;

use crate::error::rejected;

/// One DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The largest millisecond timestamp a 15-digit sort key holds (the year 33658).
pub(crate) const MAX_KEY_MS: i64 = 999_999_999_999_999;

/// A millisecond timestamp as a 15-digit, zero-padded key part, clamped into `0..=MAX_KEY_MS`
/// so query bounds such as `Timestamp::from_millis(i64::MIN)` still sort correctly.
pub(crate) fn ms_key(ms: i64) -> String {
    format!("{:015}", ms.clamp(0, MAX_KEY_MS))
}

/// Refuses a timestamp a 15-digit key cannot hold exactly (before 1970 or after year 33658).
pub(crate) fn check_key_ms(what: &str, ms: i64) -> Result<(), StoreError> {
    if (0..=MAX_KEY_MS).contains(&ms) {
        Ok(())
    } else {
        Err(rejected(format!(
            "{what} timestamp {ms} ms is outside the storable range 0..={MAX_KEY_MS}"
        )))
    }
}

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute from an integer.
pub(crate) fn n(v: impl Into<i128>) -> AttributeValue {
    AttributeValue::N(v.into().to_string())
}

/// A number attribute from a float; NaN and infinities cannot be stored.
pub(crate) fn f(name: &str, v: f64) -> Result<AttributeValue, StoreError> {
    if v.is_finite() {
        // `{:?}` is the shortest text that parses back to the same f64, in exponent form for
        // very large or small values, which DynamoDB accepts.
        Ok(AttributeValue::N(format!("{v:?}")))
    } else {
        Err(rejected(format!(
            "attribute `{name}` is not a finite number"
        )))
    }
}

/// Reads attributes of one item, naming the table in errors.
pub(crate) struct Fields<'a> {
    item: &'a Item,
    table: &'a str,
}

impl<'a> Fields<'a> {
    /// Wraps an item read from `table`.
    pub(crate) fn new(item: &'a Item, table: &'a str) -> Self {
        Self { item, table }
    }

    fn corrupt(&self, name: &str, expected: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "table {}: attribute `{name}` is missing or not {expected}",
            self.table
        ))
    }

    /// A required string attribute.
    pub(crate) fn s(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name)?
            .ok_or_else(|| self.corrupt(name, "a string"))
    }

    /// An optional string attribute (absent or NULL is `None`).
    pub(crate) fn opt_s(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(self.corrupt(name, "a string")),
        }
    }

    /// A required number attribute.
    pub(crate) fn n<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_n(name)?
            .ok_or_else(|| self.corrupt(name, "a number"))
    }

    /// An optional number attribute (absent or NULL is `None`).
    pub(crate) fn opt_n<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(name, "a number of the expected type")),
            Some(_) => Err(self.corrupt(name, "a number")),
        }
    }

    /// A required attribute parsed by `parse`, for ids and enums.
    pub(crate) fn parsed<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        parse(self.s(name)?).ok_or_else(|| self.corrupt(name, expected))
    }

    /// An optional attribute parsed by `parse`.
    pub(crate) fn opt_parsed<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_s(name)? {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .ok_or_else(|| self.corrupt(name, expected)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_and_clamped() {
        assert_eq!(ms_key(1_700_000_000_000), "001700000000000");
        assert_eq!(ms_key(-5), "000000000000000");
        assert_eq!(ms_key(i64::MAX), "999999999999999");
        assert!(check_key_ms("reading", -1).is_err());
        assert!(check_key_ms("reading", MAX_KEY_MS).is_ok());
    }

    #[test]
    fn floats_round_trip_through_their_text() {
        for v in [230.1, 0.1 + 0.2, 1e-7, 1e300, -0.95, 0.0] {
            let AttributeValue::N(text) = f("x", v).unwrap() else {
                panic!("not a number")
            };
            assert_eq!(text.parse::<f64>().unwrap(), v);
        }
        assert!(f("x", f64::NAN).is_err());
        assert!(f("x", f64::INFINITY).is_err());
    }

    #[test]
    fn fields_report_missing_and_mistyped_attributes_by_name() {
        let item: Item = [("a".to_owned(), s("x")), ("b".to_owned(), n(7))].into();
        let f = Fields::new(&item, "t");
        assert_eq!(f.s("a").unwrap(), "x");
        assert_eq!(f.n::<u32>("b").unwrap(), 7);
        assert_eq!(f.opt_n::<u32>("c").unwrap(), None);
        let err = f.n::<u32>("a").unwrap_err().to_string();
        assert!(err.contains("`a`") && err.contains("table t"), "{err}");
        assert!(f.s("missing").is_err());
    }
}
