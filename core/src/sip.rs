//! `SipResponseCode` values and what they mean for a call.
//!
//! AWS documents three codes on `HANGUP` (0 normal clearing, 480 unavailable, 486 busy); a
//! carrier may pass any SIP final response through, and the code may be absent or sent as a
//! string. See `docs/pstn-audio.md` section 4. Classification follows the table of 4.2,
//! with one decision of ours: code 0 (normal clearing) only ends an established call, so a
//! `HANGUP` with 0 means the callee had answered even if our record never saw
//! `CALL_ANSWERED` (that event may still be in flight, or its invocation abandoned).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `SipResponseCode` as it arrived: a number, a numeric string, or absent.
///
/// A value that is neither a number nor a numeric string (a documentation placeholder, say)
/// is kept as [`SipCode::Unreadable`] so it can be recorded, and classifies as a failure. What
/// is kept is short text: at most [`MAX_UNREADABLE`] characters of a string or number, and
/// only the kind of any other JSON value (`<object>`), never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SipCode {
    Absent,
    Code(u16),
    Unreadable(String),
}

/// The most characters of an unreadable code that are kept.
pub const MAX_UNREADABLE: usize = 32;

fn unreadable(text: &str) -> SipCode {
    SipCode::Unreadable(text.chars().take(MAX_UNREADABLE).collect())
}

impl SipCode {
    /// Reads the code from any JSON value: `486`, `"486"`, `null` or a missing field.
    #[must_use]
    pub fn from_json(value: Option<&serde_json::Value>) -> Self {
        match value {
            None | Some(serde_json::Value::Null) => Self::Absent,
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .map_or_else(|| unreadable(&n.to_string()), Self::Code),
            Some(serde_json::Value::String(s)) => Self::parse(s),
            Some(serde_json::Value::Bool(_)) => unreadable("<boolean>"),
            Some(serde_json::Value::Array(_)) => unreadable("<array>"),
            Some(serde_json::Value::Object(_)) => unreadable("<object>"),
        }
    }

    /// Reads the code from its string form.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        let t = s.trim();
        if t.is_empty() {
            return Self::Absent;
        }
        t.parse::<u16>().map_or_else(|_| unreadable(s), Self::Code)
    }

    /// The code as a call record keeps it: the number, or the unreadable text as it came;
    /// nothing when it was absent.
    #[must_use]
    pub fn stored(&self) -> Option<String> {
        match self {
            Self::Absent => None,
            Self::Code(n) => Some(n.to_string()),
            Self::Unreadable(s) => Some(s.clone()),
        }
    }

    /// The numeric code, when there is one.
    #[must_use]
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Code(c) => Some(*c),
            Self::Absent | Self::Unreadable(_) => None,
        }
    }

    /// What this code means for a call that was never answered.
    #[must_use]
    pub fn unanswered_outcome(&self) -> Unanswered {
        match self.code() {
            Some(486 | 600) => Unanswered::Busy,
            Some(480 | 408 | 487) => Unanswered::NoAnswer,
            Some(603 | 607 | 608) => Unanswered::Declined,
            Some(404 | 484 | 410 | 604) => Unanswered::InvalidNumber,
            _ => Unanswered::Failed,
        }
    }

    /// Whether the code says the call had been established (normal clearing).
    #[must_use]
    pub fn is_normal_clearing(&self) -> bool {
        self.code() == Some(0)
    }
}

impl fmt::Display for SipCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("absent"),
            Self::Code(c) => write!(f, "{c}"),
            Self::Unreadable(s) => write!(f, "unreadable({s})"),
        }
    }
}

impl Serialize for SipCode {
    // Stored and emitted the way the AWS samples send it: a numeric string, or null.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Absent => serializer.serialize_none(),
            Self::Code(c) => serializer.serialize_str(&c.to_string()),
            Self::Unreadable(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for SipCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Option::<serde_json::Value>::deserialize(deserializer)?;
        Ok(Self::from_json(value.as_ref()))
    }
}

/// How an attempt that never reached `CALL_ANSWERED` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unanswered {
    Busy,
    NoAnswer,
    Declined,
    InvalidNumber,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_are_read_from_numbers_strings_and_absence() {
        assert_eq!(SipCode::from_json(Some(&json!(486))), SipCode::Code(486));
        assert_eq!(SipCode::from_json(Some(&json!("480"))), SipCode::Code(480));
        assert_eq!(SipCode::from_json(None), SipCode::Absent);
        assert_eq!(SipCode::from_json(Some(&json!(null))), SipCode::Absent);
        assert_eq!(SipCode::from_json(Some(&json!(""))), SipCode::Absent);
        assert_eq!(
            SipCode::from_json(Some(&json!("busy"))),
            SipCode::Unreadable("busy".into())
        );
        assert_eq!(
            SipCode::from_json(Some(&json!(70000))),
            SipCode::Unreadable("70000".into())
        );
    }

    #[test]
    fn an_unreadable_code_is_kept_short_and_never_as_a_json_value() {
        assert_eq!(
            SipCode::from_json(Some(&json!({"code": 486}))),
            SipCode::Unreadable("<object>".into())
        );
        assert_eq!(
            SipCode::from_json(Some(&json!([486]))),
            SipCode::Unreadable("<array>".into())
        );
        assert_eq!(
            SipCode::from_json(Some(&json!(true))),
            SipCode::Unreadable("<boolean>".into())
        );
        let long = "x".repeat(100_000);
        assert_eq!(
            SipCode::from_json(Some(&json!(long))),
            SipCode::Unreadable("x".repeat(MAX_UNREADABLE))
        );
    }

    #[test]
    fn unanswered_codes_follow_the_spec_table() {
        use Unanswered::*;
        for (code, want) in [
            (486, Busy),
            (600, Busy),
            (480, NoAnswer),
            (408, NoAnswer),
            (487, NoAnswer),
            (603, Declined),
            (607, Declined),
            (608, Declined),
            (404, InvalidNumber),
            (484, InvalidNumber),
            (410, InvalidNumber),
            (604, InvalidNumber),
            (500, Failed),
            (503, Failed),
            (403, Failed),
        ] {
            assert_eq!(SipCode::Code(code).unanswered_outcome(), want, "{code}");
        }
        assert_eq!(SipCode::Absent.unanswered_outcome(), Failed);
        assert_eq!(SipCode::Unreadable("x".into()).unanswered_outcome(), Failed);
    }

    #[test]
    fn codes_serialize_as_strings_and_absent_as_null() {
        assert_eq!(serde_json::to_value(SipCode::Code(0)).unwrap(), json!("0"));
        assert_eq!(serde_json::to_value(SipCode::Absent).unwrap(), json!(null));
        let back: SipCode = serde_json::from_value(json!(486)).unwrap();
        assert_eq!(back, SipCode::Code(486));
    }
}
