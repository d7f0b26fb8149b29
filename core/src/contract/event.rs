//! The invocation event the SMA sends for every step of a call, read leniently: AWS's own
//! examples disagree on spellings, number encodings and where errors live
//! (`docs/pstn-audio.md` sections 1, 2 and 12), and a new event type must never crash a
//! handler.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient;
use crate::sip::SipCode;

/// `InvocationEventType`: the 11 documented values, and anything else kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EventType {
    NewInboundCall,
    NewOutboundCall,
    Ringing,
    CallAnswered,
    ActionSuccessful,
    ActionFailed,
    ActionInterrupted,
    Hangup,
    CallUpdateRequested,
    DigitsReceived,
    InvalidLambdaResponse,
    /// A value not documented when this was written, kept verbatim.
    Unknown(String),
}

impl EventType {
    const KNOWN: [(Self, &'static str); 11] = [
        (Self::NewInboundCall, "NEW_INBOUND_CALL"),
        (Self::NewOutboundCall, "NEW_OUTBOUND_CALL"),
        (Self::Ringing, "RINGING"),
        (Self::CallAnswered, "CALL_ANSWERED"),
        (Self::ActionSuccessful, "ACTION_SUCCESSFUL"),
        (Self::ActionFailed, "ACTION_FAILED"),
        (Self::ActionInterrupted, "ACTION_INTERRUPTED"),
        (Self::Hangup, "HANGUP"),
        (Self::CallUpdateRequested, "CALL_UPDATE_REQUESTED"),
        (Self::DigitsReceived, "DIGITS_RECEIVED"),
        (Self::InvalidLambdaResponse, "INVALID_LAMBDA_RESPONSE"),
    ];

    /// The wire value.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(s) => s,
            known => Self::KNOWN
                .iter()
                .find(|(k, _)| k == known)
                .map_or("", |(_, s)| s),
        }
    }

    /// Whether the SMA runs the actions returned for this event. For `HANGUP` it depends on
    /// whether another leg is still up (see [`Event::other_leg_connected`]).
    #[must_use]
    pub fn runs_actions(&self) -> bool {
        matches!(
            self,
            Self::NewInboundCall
                | Self::CallAnswered
                | Self::ActionSuccessful
                | Self::ActionFailed
                | Self::CallUpdateRequested
                | Self::DigitsReceived
                | Self::InvalidLambdaResponse
        )
    }
}

impl From<String> for EventType {
    fn from(s: String) -> Self {
        Self::KNOWN
            .iter()
            .find(|(_, name)| *name == s)
            .map_or(Self::Unknown(s), |(k, _)| k.clone())
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> Self {
        t.as_str().to_owned()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `LEG-A` or `LEG-B`, compared case-insensitively (one AWS page writes `Leg-A`); any other
/// value (a documentation placeholder) is kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ParticipantTag {
    LegA,
    LegB,
    Other(String),
}

impl From<String> for ParticipantTag {
    fn from(s: String) -> Self {
        if s.eq_ignore_ascii_case("LEG-A") {
            Self::LegA
        } else if s.eq_ignore_ascii_case("LEG-B") {
            Self::LegB
        } else {
            Self::Other(s)
        }
    }
}

impl From<ParticipantTag> for String {
    fn from(t: ParticipantTag) -> Self {
        match t {
            ParticipantTag::LegA => "LEG-A".to_owned(),
            ParticipantTag::LegB => "LEG-B".to_owned(),
            ParticipantTag::Other(s) => s,
        }
    }
}

macro_rules! open_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            /// Any other value, kept as it came.
            Other(String),
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($wire => Self::$variant,)+
                    _ => Self::Other(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => $wire.to_owned(),)+
                    $name::Other(s) => s,
                }
            }
        }
    };
}

open_enum!(
    /// `Direction` of a leg.
    Direction { Inbound = "Inbound", Outbound = "Outbound" }
);
open_enum!(
    /// `Status` of a leg; absent on `NEW_OUTBOUND_CALL`, `RINGING` and `NEW_INBOUND_CALL`.
    ParticipantStatus { Connected = "Connected", Disconnected = "Disconnected" }
);

/// One leg of the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Participant {
    #[serde(default)]
    pub call_id: String,
    pub participant_tag: ParticipantTag,
    /// E.164, or a literal such as `"SMA"` on a bridged leg: parsed where it is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Epoch milliseconds, sent as a string; kept as sent (see [`Participant::start_time_ms`]).
    #[serde(
        default,
        rename = "StartTimeInMilliseconds",
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ParticipantStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_headers: Option<BTreeMap<String, String>>,
}

impl Participant {
    /// The leg's start, when it reads as epoch milliseconds.
    #[must_use]
    pub fn start_time_ms(&self) -> Option<u64> {
        self.start_time
            .as_deref()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Whether the leg's `Status` is `Connected`.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.status == Some(ParticipantStatus::Connected)
    }
}

/// `CallDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallDetails {
    /// Required; [`super::parse_event`] rejects an event without it.
    #[serde(default)]
    pub transaction_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_attributes: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// Some AWS examples spell it `SipApplicationId`.
    #[serde(
        default,
        alias = "SipApplicationId",
        skip_serializing_if = "Option::is_none"
    )]
    pub sip_media_application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_rule_id: Option<String>,
    #[serde(default)]
    pub participants: Vec<Participant>,
}

impl CallDetails {
    /// One of the call's `TransactionAttributes`.
    #[must_use]
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.transaction_attributes
            .as_ref()
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }
}

/// `ActionData`: the action an event is about, echoed, plus its result fields. Read by hand
/// (below) rather than by serde's `flatten`, which would buffer the whole object, parameters
/// and all, before reading a field of it: half of all events carry one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionData {
    #[serde(rename = "Type", default)]
    pub action_type: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_digits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The single-string form some pages show: `"Error": "Code: message"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Other result fields (`RecordingDestination`, `IntentResult`, `ErrorList`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A key of `ActionData`: one of its fields, or another result field, kept as named.
enum ActionKey {
    Type,
    Parameters,
    ReceivedDigits,
    ErrorType,
    ErrorMessage,
    Error,
    Other(String),
}

impl<'de> Deserialize<'de> for ActionKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = ActionKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ActionKey, E> {
                Ok(match name {
                    "Type" => ActionKey::Type,
                    "Parameters" => ActionKey::Parameters,
                    "ReceivedDigits" => ActionKey::ReceivedDigits,
                    "ErrorType" => ActionKey::ErrorType,
                    "ErrorMessage" => ActionKey::ErrorMessage,
                    "Error" => ActionKey::Error,
                    other => ActionKey::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_identifier(Name)
    }
}

impl<'de> Deserialize<'de> for ActionData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ActionData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ActionData object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ActionData, A::Error> {
                let mut data = ActionData {
                    action_type: String::new(),
                    parameters: Value::Null,
                    received_digits: None,
                    error_type: None,
                    error_message: None,
                    error: None,
                    extra: BTreeMap::new(),
                };
                while let Some(key) = map.next_key()? {
                    match key {
                        ActionKey::Type => data.action_type = map.next_value()?,
                        ActionKey::Parameters => data.parameters = map.next_value()?,
                        ActionKey::ReceivedDigits => data.received_digits = map.next_value()?,
                        ActionKey::ErrorType => data.error_type = map.next_value()?,
                        ActionKey::ErrorMessage => data.error_message = map.next_value()?,
                        ActionKey::Error => data.error = map.next_value()?,
                        ActionKey::Other(name) => {
                            data.extra.insert(name, map.next_value()?);
                        }
                    }
                }
                Ok(data)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// The invocation event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub schema_version: String,
    #[serde(deserialize_with = "lenient::num")]
    pub sequence: u64,
    #[serde(rename = "InvocationEventType")]
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_data: Option<ActionData>,
    /// On `INVALID_LAMBDA_RESPONSE` the documented example puts these at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub call_details: CallDetails,
}

fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
    let obj = v.as_object()?;
    Some(
        obj.iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                Value::Bool(b) => Some((k.clone(), b.to_string())),
                _ => None,
            })
            .collect(),
    )
}

impl Event {
    /// `ActionData.Parameters.Arguments`: the `ArgumentsMap` of `CreateSipMediaApplicationCall`
    /// on `NEW_OUTBOUND_CALL`, or of `UpdateSipMediaApplicationCall` on
    /// `CALL_UPDATE_REQUESTED`.
    #[must_use]
    pub fn arguments(&self) -> Option<BTreeMap<String, String>> {
        self.action_data
            .as_ref()
            .and_then(|d| d.parameters.get("Arguments"))
            .and_then(string_map)
    }

    /// The error the event reports, as `(ErrorType, ErrorMessage)`: the top level first (as
    /// `INVALID_LAMBDA_RESPONSE` sends it), then `ActionData`, then `ActionData.Error`
    /// (`"Code: message"`).
    #[must_use]
    pub fn error(&self) -> Option<(String, Option<String>)> {
        if let Some(t) = &self.error_type {
            return Some((t.clone(), self.error_message.clone()));
        }
        let data = self.action_data.as_ref()?;
        if let Some(t) = &data.error_type {
            return Some((t.clone(), data.error_message.clone()));
        }
        let single = data.error.as_ref()?;
        Some(match single.split_once(':') {
            Some((code, msg)) => (code.trim().to_owned(), Some(msg.trim().to_owned())),
            None => (single.clone(), None),
        })
    }

    /// `ActionData.Parameters.SipResponseCode` (on `HANGUP`).
    #[must_use]
    pub fn sip_response_code(&self) -> SipCode {
        SipCode::from_json(
            self.action_data
                .as_ref()
                .and_then(|d| d.parameters.get("SipResponseCode")),
        )
    }

    /// The leg an event (a `HANGUP`) is about: `ActionData.Parameters.ParticipantTag`, else
    /// the participant whose `CallId` the parameters name.
    #[must_use]
    pub fn action_leg(&self) -> Option<ParticipantTag> {
        let params = &self.action_data.as_ref()?.parameters;
        if let Some(tag) = params.get("ParticipantTag").and_then(Value::as_str) {
            return Some(ParticipantTag::from(tag.to_owned()));
        }
        let call_id = params.get("CallId").and_then(Value::as_str)?;
        self.call_details
            .participants
            .iter()
            .find(|p| p.call_id == call_id)
            .map(|p| p.participant_tag.clone())
    }

    /// The participant with `tag`.
    #[must_use]
    pub fn leg(&self, tag: &ParticipantTag) -> Option<&Participant> {
        self.call_details
            .participants
            .iter()
            .find(|p| &p.participant_tag == tag)
    }

    /// Whether a leg other than `tag` is still connected (a bridged call).
    #[must_use]
    pub fn other_leg_connected(&self, tag: &ParticipantTag) -> bool {
        self.call_details
            .participants
            .iter()
            .any(|p| &p.participant_tag != tag && p.is_connected())
    }

    /// `ActionData.ReceivedDigits`.
    #[must_use]
    pub fn received_digits(&self) -> Option<&str> {
        self.action_data.as_ref()?.received_digits.as_deref()
    }
}
