//! Values parsed once, at the edge. Past the edge a value of one of these types is valid, so
//! the rest of the code never re-checks a phone number or an id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A phone number in E.164 form: `+`, a country code that does not start with 0, and at most
/// 15 digits in all. This is the form the Chime SDK Voice API accepts (`^\+?[1-9]\d{1,14}$`,
/// with the `+` required here so a number is never ambiguous in storage).
///
/// National formats ("(555) 010-0100") are turned into E.164 by the API layer, which knows the
/// campaign's default region; this type only accepts the canonical form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Why a string is not an E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum E164Error {
    #[error("a phone number must start with '+' and the country code (E.164), got {0:?}")]
    MissingPlus(String),
    #[error("a phone number may contain only digits after '+'")]
    NotDigits,
    #[error("a phone number has 2 to 15 digits after '+', got {0}")]
    Length(usize),
    #[error("a country code never starts with 0")]
    LeadingZero,
}

impl E164 {
    /// Parses the canonical E.164 form.
    ///
    /// # Errors
    /// Returns an [`E164Error`] naming what is wrong with the input.
    pub fn parse(input: &str) -> Result<Self, E164Error> {
        let digits = input
            .strip_prefix('+')
            .ok_or_else(|| E164Error::MissingPlus(mask_raw(input)))?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E164Error::NotDigits);
        }
        if !(2..=15).contains(&digits.len()) {
            return Err(E164Error::Length(digits.len()));
        }
        if digits.starts_with('0') {
            return Err(E164Error::LeadingZero);
        }
        Ok(Self(input.to_owned()))
    }

    /// The number as the API and the SMA want it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as logs may show it: the first four digits and the last four, the rest
    /// starred (`+1555***0100`). Short numbers keep less.
    #[must_use]
    pub fn masked(&self) -> String {
        mask_raw(&self.0)
    }
}

/// Masks anything that may be a phone number, valid or not, for logs and error messages.
#[must_use]
pub fn mask_raw(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() <= 6 {
        return "***".to_owned();
    }
    let head = if chars.len() >= 12 { 5 } else { 3 };
    let tail = if chars.len() >= 10 { 4 } else { 2 };
    let mut out: String = chars[..head].iter().collect();
    out.push_str("***");
    out.extend(&chars[chars.len() - tail..]);
    out
}

impl fmt::Debug for E164 {
    // Debug output ends up in logs; a phone number is personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.masked())
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = E164Error;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be 1 to {max} characters of A-Z, a-z, 0-9, '-' and '_', got {len} characters")]
pub struct IdError {
    kind: &'static str,
    max: usize,
    len: usize,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            const MAX: usize = 64;

            /// Parses an id that came from outside (a path, an SMA argument, a stored item).
            ///
            /// # Errors
            /// Returns an [`IdError`] when the id is empty, too long or has other characters
            /// than letters, digits, `-` and `_` (ids end up inside DynamoDB keys like
            /// `CALL#<id>`, so `#` is never allowed).
            pub fn parse(input: &str) -> Result<Self, IdError> {
                let ok = !input.is_empty()
                    && input.len() <= Self::MAX
                    && input
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok(Self(input.to_owned()))
                } else {
                    Err(IdError { kind: $kind, max: Self::MAX, len: input.len() })
                }
            }

            /// A fresh random id, `<prefix>_<32 hex digits>`.
            #[must_use]
            pub fn random() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::new_v4().simple()))
            }

            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

id_type!(
    /// One contact of one campaign: the unit outdial dials, retries and reports on.
    CallId, "a call id", "call"
);
id_type!(
    /// A campaign: a spec (script, pacing, retries) and its calls.
    CampaignId, "a campaign id", "cmp"
);

/// The SMA's id for one call attempt (all legs), returned by `CreateSipMediaApplicationCall`
/// and carried in every event's `CallDetails.TransactionId`.
///
/// AWS documents a GUID, but documentation examples use placeholders such as
/// `"transaction-id"`; any non-empty string without control characters is accepted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransactionId(String);

/// Why a string is not a transaction id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a TransactionId must be 1 to 256 printable characters")]
pub struct TransactionIdError;

impl TransactionId {
    /// # Errors
    /// [`TransactionIdError`] when the input is empty, longer than 256 bytes or holds control
    /// characters.
    pub fn parse(input: &str) -> Result<Self, TransactionIdError> {
        if input.is_empty() || input.len() > 256 || input.chars().any(char::is_control) {
            return Err(TransactionIdError);
        }
        Ok(Self(input.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({})", self.0)
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TransactionId {
    type Error = TransactionIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TransactionId> for String {
    fn from(value: TransactionId) -> Self {
        value.0
    }
}

/// The SMA's invocation counter within one transaction: starts at 1, grows by one per
/// invocation. A retried invocation may repeat a value; a value never goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sequence(u64);

impl Sequence {
    #[must_use]
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which attempt at reaching a contact this is; the first is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Attempt(u32);

/// Why a number is not an attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an attempt number starts at 1, got {0}")]
pub struct AttemptError(u32);

impl Attempt {
    pub const FIRST: Self = Self(1);

    /// # Errors
    /// [`AttemptError`] for 0.
    pub fn new(value: u32) -> Result<Self, AttemptError> {
        if value == 0 {
            Err(AttemptError(value))
        } else {
            Ok(Self(value))
        }
    }

    /// Parses the decimal form used in `ArgumentsMap` and `TransactionAttributes`.
    ///
    /// # Errors
    /// [`AttemptError`] for 0 or anything that is not a number.
    pub fn parse(input: &str) -> Result<Self, AttemptError> {
        input
            .parse::<u32>()
            .map_err(|_| AttemptError(0))
            .and_then(Self::new)
    }

    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u32> for Attempt {
    type Error = AttemptError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Attempt> for u32 {
    fn from(value: Attempt) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn e164_accepts_the_canonical_form() {
        let n = E164::parse("+15555550100").unwrap();
        assert_eq!(n.as_str(), "+15555550100");
        assert_eq!(n.masked(), "+1555***0100");
        assert_eq!(format!("{n:?}"), "E164(+1555***0100)");
    }

    #[test]
    fn e164_rejects_what_the_voice_api_would_reject() {
        assert!(matches!(
            E164::parse("15555550100"),
            Err(E164Error::MissingPlus(_))
        ));
        assert_eq!(E164::parse("+1555 555 0100"), Err(E164Error::NotDigits));
        assert_eq!(E164::parse("+1"), Err(E164Error::Length(1)));
        assert_eq!(E164::parse("+1234567890123456"), Err(E164Error::Length(16)));
        assert_eq!(E164::parse("+0155555501"), Err(E164Error::LeadingZero));
        assert!(matches!(E164::parse(""), Err(E164Error::MissingPlus(_))));
    }

    #[test]
    fn e164_errors_never_echo_a_full_number() {
        let err = E164::parse("15555550100").unwrap_err().to_string();
        assert!(!err.contains("15555550100"), "{err}");
    }

    #[test]
    fn ids_reject_key_separators_and_empty_strings() {
        assert!(CallId::parse("call_1").is_ok());
        assert!(CallId::parse("").is_err());
        assert!(CallId::parse("a#b").is_err());
        assert!(CampaignId::parse(&"x".repeat(65)).is_err());
        assert!(CallId::parse(CallId::random().as_str()).is_ok());
    }

    #[test]
    fn attempts_start_at_one() {
        assert!(Attempt::new(0).is_err());
        assert_eq!(Attempt::parse("2").unwrap().get(), 2);
        assert!(Attempt::parse("two").is_err());
        assert_eq!(Attempt::FIRST.next().get(), 2);
    }

    proptest! {
        #[test]
        fn e164_parse_never_panics_and_round_trips(s in "\\PC{0,20}") {
            if let Ok(n) = E164::parse(&s) {
                prop_assert_eq!(E164::parse(n.as_str()).unwrap(), n);
            }
        }

        #[test]
        fn every_valid_e164_is_accepted(cc in 1u8..=9, rest in "[0-9]{1,14}") {
            let s = format!("+{cc}{rest}");
            prop_assert!(E164::parse(&s).is_ok());
        }

        #[test]
        fn masked_numbers_never_show_the_middle(rest in "[0-9]{9,14}") {
            let n = E164::parse(&format!("+1{rest}")).unwrap();
            let masked = n.masked();
            prop_assert!(masked.contains("***"));
            prop_assert!(masked.len() < n.as_str().len() + 3);
        }
    }
}
