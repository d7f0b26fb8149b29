//! Lenient readers for the contract's numbers. AWS's examples send counts and durations as
//! JSON numbers and as numeric strings (`"Repeat": "5"`), and `SipResponseCode` as either;
//! outdial reads both and writes numbers (and `SipResponseCode` as a string, as the samples do).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

struct NumVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T> Visitor<'de> for NumVisitor<T>
where
    T: FromStr + TryFrom<u64>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer, as a number or a numeric string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("{v} is negative")))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // `u64::MAX as f64` rounds up to 2^64, which is out of range: the bound is exclusive.
        if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            self.visit_u64(v as u64)
        } else {
            Err(E::custom(format!(
                "{v} is not a whole number from 0 to 18446744073709551615"
            )))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("{v:?} is not a whole number")))
    }
}

/// A number or a numeric string.
///
/// # Errors
/// Anything else, with a message naming the value.
pub fn num<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + TryFrom<u64>,
{
    d.deserialize_any(NumVisitor(std::marker::PhantomData))
}

/// An optional number or numeric string (`null` is absent).
///
/// # Errors
/// As [`num`].
pub fn opt_num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + TryFrom<u64>,
{
    struct Opt<T>(std::marker::PhantomData<T>);
    impl<'de, T: FromStr + TryFrom<u64>> Visitor<'de> for Opt<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer, a numeric string or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            num(d).map(Some)
        }
    }
    d.deserialize_option(Opt(std::marker::PhantomData))
}

/// An optional string that may arrive as a number (`SipResponseCode`), kept as a string.
///
/// # Errors
/// For values other than strings, numbers and null.
pub fn opt_string<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<serde_json::Value>::deserialize(d)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}
