//! Checking payloads that came from outside against the contract, with errors that name what
//! is wrong: the mistakes people make with real SMA handlers (an API-Gateway-shaped answer,
//! eleven actions, a wrong `SchemaVersion`, an unknown action, a missing parameter).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::{
    Action, ContractError, Event, MAX_ACTIONS, MAX_ATTRIBUTES, MAX_SCHEMA_VERSION, MAX_SEQUENCE,
    MAX_SPEAK_TEXT, Response, SCHEMA_VERSION,
};

/// What a payload is, judged by its shape alone (see [`classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Event,
    Response,
    Action,
    /// An API Gateway proxy request or response: a handler answering the SMA as if it sat
    /// behind API Gateway.
    ApiGatewayShaped,
    Unrecognized,
}

/// A payload that passed validation, as the type its shape says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Valid {
    Event(Box<Event>),
    Response(Response),
    Action(Box<Action>),
}

/// Reads an event from the bytes the SMA sent, straight into the types (no intermediate
/// [`Value`]), so that an error carries the line and column of the value at fault.
///
/// # Errors
/// [`ContractError::NotJson`] or [`ContractError::NotAnEvent`] with the line and column, or
/// [`ContractError::MissingTransactionId`].
pub fn parse_event(bytes: &[u8]) -> Result<Event, ContractError> {
    let event: Event = serde_json::from_slice(bytes).map_err(|e| {
        // The reader stops at the first value that does not fit, which can come before the
        // text stops being JSON (`"ActionData": {...}` is a string, then extra data): say
        // "not JSON" whenever it is not.
        match serde_json::from_slice::<IgnoredAny>(bytes) {
            Err(syntax) => ContractError::NotJson(syntax),
            Ok(_) => ContractError::NotAnEvent(e),
        }
    })?;
    checked_event(event)
}

/// Reads an event already parsed as JSON.
///
/// # Errors
/// [`ContractError::NotAnEvent`] (naming a missing field, but not the place of a value of the
/// wrong type: [`parse_event`] gives its line and column), or
/// [`ContractError::MissingTransactionId`].
pub fn validate_event(value: &Value) -> Result<Event, ContractError> {
    checked_event(Event::deserialize(value).map_err(ContractError::NotAnEvent)?)
}

/// The rules serde cannot express: `CallDetails.TransactionId` must not be empty, the
/// `Sequence` must be one a real call can reach, and the `SchemaVersion` must be short enough
/// to echo.
fn checked_event(event: Event) -> Result<Event, ContractError> {
    if event.call_details.transaction_id.trim().is_empty() {
        return Err(ContractError::MissingTransactionId);
    }
    if event.sequence > MAX_SEQUENCE {
        return Err(ContractError::SequenceOutOfRange(event.sequence));
    }
    let version = event.schema_version.chars().count();
    if version > MAX_SCHEMA_VERSION {
        return Err(ContractError::SchemaVersionTooLong(version));
    }
    Ok(event)
}

/// Decides what a payload is by its shape, without checking it: `InvocationEventType` makes
/// an event, `Actions` or `SchemaVersion` a response, `Type` a single action.
#[must_use]
pub fn classify(value: &Value) -> Payload {
    let Some(obj) = value.as_object() else {
        return Payload::Unrecognized;
    };
    if api_gateway_shaped(obj) {
        Payload::ApiGatewayShaped
    } else if obj.contains_key("InvocationEventType") {
        Payload::Event
    } else if obj.contains_key("Actions") || obj.contains_key("SchemaVersion") {
        Payload::Response
    } else if obj.contains_key("Type") || statement_action(value).is_some() {
        Payload::Action
    } else {
        Payload::Unrecognized
    }
}

/// Classifies a payload and validates it as what it is.
///
/// # Errors
/// [`ContractError::ApiGatewayShaped`], [`ContractError::Unrecognized`], or what the
/// validator of its kind finds.
pub fn validate(value: &Value) -> Result<Valid, ContractError> {
    match classify(value) {
        Payload::Event => validate_event(value).map(|e| Valid::Event(Box::new(e))),
        Payload::Response => validate_response(value).map(Valid::Response),
        Payload::Action => validate_action(value).map(|a| Valid::Action(Box::new(a))),
        Payload::ApiGatewayShaped => Err(ContractError::ApiGatewayShaped),
        Payload::Unrecognized => Err(ContractError::Unrecognized),
    }
}

/// Whether a JSON object has the marks of an API Gateway proxy request or response.
fn api_gateway_shaped(obj: &serde_json::Map<String, Value>) -> bool {
    (obj.contains_key("statusCode") && obj.contains_key("body"))
        || ["httpMethod", "requestContext", "routeKey", "rawPath"]
            .iter()
            .any(|k| obj.contains_key(*k))
}

/// The action inside `{"Version": ..., "Statement": [action]}`. The StartCallRecording page
/// wraps its example in this IAM-policy-like envelope, a documentation error (the real
/// envelope is `SchemaVersion`/`Actions`); the single action inside is what it means.
fn statement_action(value: &Value) -> Option<&Value> {
    match value.get("Statement")?.as_array()?.as_slice() {
        [single] if value.get("Type").is_none() => Some(single),
        _ => None,
    }
}

/// Checks a single action (bare, or inside the documentation's `Statement` envelope).
///
/// # Errors
/// [`ContractError::NoActionType`], [`ContractError::UnknownAction`],
/// [`ContractError::MissingParameter`] or [`ContractError::InvalidParameter`], naming it
/// action 1.
pub fn validate_action(value: &Value) -> Result<Action, ContractError> {
    action_at(statement_action(value).unwrap_or(value), 1)
}

/// Checks one action; `index` (from 1) names it in errors.
fn action_at(value: &Value, index: usize) -> Result<Action, ContractError> {
    let name = value
        .get("Type")
        .and_then(Value::as_str)
        .ok_or(ContractError::NoActionType { index })?
        .to_owned();
    if !Action::TYPES.contains(&name.as_str()) {
        return Err(ContractError::UnknownAction { index, name });
    }
    if value.get("Parameters").is_none_or(Value::is_null) {
        return Err(ContractError::MissingParameter {
            index,
            name,
            param: "Parameters".to_owned(),
        });
    }
    let action = Action::deserialize(value).map_err(|e| {
        let reason = e.to_string();
        match missing_field(&reason) {
            Some(param) => ContractError::MissingParameter {
                index,
                name: name.clone(),
                param,
            },
            None => ContractError::InvalidParameter {
                index,
                name: name.clone(),
                reason,
            },
        }
    })?;
    match limit_broken(&action) {
        Some(reason) => Err(ContractError::InvalidParameter {
            index,
            name,
            reason,
        }),
        None => Ok(action),
    }
}

/// The documented limits that the types alone do not hold.
fn limit_broken(action: &Action) -> Option<String> {
    let too_long = |text: &str| text.chars().count() > MAX_SPEAK_TEXT;
    match action {
        Action::Speak(s) if too_long(&s.text) => {
            Some(format!("Text is longer than {MAX_SPEAK_TEXT} characters"))
        }
        Action::SpeakAndGetDigits(s)
            if too_long(&s.speech_parameters.text)
                || s.failure_speech_parameters
                    .text
                    .as_deref()
                    .is_some_and(too_long) =>
        {
            Some(format!(
                "speech Text is longer than {MAX_SPEAK_TEXT} characters"
            ))
        }
        Action::CallAndBridge(b) if b.endpoints.len() != 1 => Some(format!(
            "Endpoints must hold exactly one endpoint, not {}",
            b.endpoints.len()
        )),
        Action::Hangup(h) => h
            .sip_response_code
            .as_deref()
            .filter(|code| !["0", "480", "486"].contains(code))
            .map(|code| format!("SipResponseCode {code} is not one of 0, 480, 486")),
        _ => None,
    }
}

/// The field name in serde's "missing field `X`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.split("missing field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// Checks an action-list response.
///
/// `"Actions": null` is rejected although the service accepts it: it tells the SMA to keep
/// running its current actions, which outdial never means, and it is what a handler that
/// forgot to set the list sends.
///
/// # Errors
/// The first problem found, in the order: shape, `SchemaVersion`, `Actions`, each action,
/// `TransactionAttributes`.
pub fn validate_response(value: &Value) -> Result<Response, ContractError> {
    let obj = value.as_object().ok_or(ContractError::Unrecognized)?;
    if api_gateway_shaped(obj) {
        return Err(ContractError::ApiGatewayShaped);
    }
    let version = match obj.get("SchemaVersion") {
        None | Some(Value::Null) => return Err(ContractError::MissingSchemaVersion),
        Some(Value::String(v)) if v == SCHEMA_VERSION => v.clone(),
        Some(other) => return Err(ContractError::SchemaVersion(other.to_string())),
    };
    let raw_actions = match obj.get("Actions") {
        None | Some(Value::Null) => return Err(ContractError::NoActions),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ContractError::ActionsNotArray),
    };
    if raw_actions.len() > MAX_ACTIONS {
        return Err(ContractError::TooManyActions(raw_actions.len()));
    }
    let actions = raw_actions
        .iter()
        .enumerate()
        .map(|(i, a)| action_at(a, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let attributes = match obj.get("TransactionAttributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(string_map(m)?),
        Some(_) => return Err(ContractError::AttributesNotObject),
    };
    Ok(Response::from_parts(version, actions, attributes))
}

/// `TransactionAttributes`, at most [`MAX_ATTRIBUTES`] keys with string values.
fn string_map(
    map: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, String>, ContractError> {
    if map.len() > MAX_ATTRIBUTES {
        return Err(ContractError::TooManyAttributes(map.len()));
    }
    map.iter()
        .map(|(k, v)| match v {
            Value::String(v) => Ok((k.clone(), v.clone())),
            _ => Err(ContractError::AttributeNotString(k.clone())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{EventType, ParticipantTag};
    use proptest::prelude::*;
    use serde_json::json;

    fn answered() -> Value {
        json!({
            "SchemaVersion": "1.0", "Sequence": "3", "InvocationEventType": "CALL_ANSWERED",
            "CallDetails": {
                "TransactionId": "t-1", "SipApplicationId": "sma-1",
                "TransactionAttributes": {"call_id": "call_1"},
                "Participants": [{"CallId": "leg-a", "ParticipantTag": "Leg-A", "To": "+15555550100",
                    "From": "+15555550199", "Direction": "Outbound",
                    "StartTimeInMilliseconds": "1700000000123", "Status": "Connected"}]
            },
            "Unexpected": true
        })
    }

    #[test]
    fn an_event_is_read_leniently() {
        let e = validate_event(&answered()).unwrap();
        assert_eq!(e.sequence, 3);
        assert_eq!(e.event_type, EventType::CallAnswered);
        assert_eq!(
            e.call_details.sip_media_application_id.as_deref(),
            Some("sma-1")
        );
        assert_eq!(e.call_details.attribute("call_id"), Some("call_1"));
        let leg = e.leg(&ParticipantTag::LegA).unwrap();
        assert_eq!(leg.start_time_ms(), Some(1_700_000_000_123));
        assert!(leg.is_connected());
    }

    #[test]
    fn an_event_without_a_transaction_id_is_rejected() {
        let mut v = answered();
        v["CallDetails"]
            .as_object_mut()
            .unwrap()
            .remove("TransactionId");
        let err = validate_event(&v).unwrap_err().to_string();
        assert!(err.contains("CallDetails.TransactionId"), "{err}");
    }

    #[test]
    fn an_unknown_event_type_is_kept() {
        let mut v = answered();
        v["InvocationEventType"] = json!("CALL_TELEPORTED");
        let e = validate_event(&v).unwrap();
        assert_eq!(e.event_type, EventType::Unknown("CALL_TELEPORTED".into()));
        assert_eq!(
            serde_json::to_value(&e).unwrap()["InvocationEventType"],
            "CALL_TELEPORTED"
        );
    }

    #[test]
    fn errors_are_read_from_the_top_level_action_data_or_the_single_string() {
        let mut v = answered();
        v["InvocationEventType"] = json!("INVALID_LAMBDA_RESPONSE");
        v["ErrorType"] = json!("TransactionAttributesInvalidMapSize");
        assert_eq!(
            validate_event(&v).unwrap().error().unwrap().0,
            "TransactionAttributesInvalidMapSize"
        );
        let mut v = answered();
        v["ActionData"] =
            json!({"Type": "JoinChimeMeeting", "Error": "ErrorJoiningMeeting: no such meeting"});
        assert_eq!(
            validate_event(&v).unwrap().error().unwrap(),
            (
                "ErrorJoiningMeeting".to_owned(),
                Some("no such meeting".to_owned())
            )
        );
    }

    fn speak(i: usize) -> Value {
        json!({"Type": "Speak", "Parameters": {"CallId": "leg-a", "Text": format!("line {i}")}})
    }

    #[test]
    fn a_response_with_eleven_actions_is_rejected() {
        let actions: Vec<Value> = (0..11).map(speak).collect();
        let err =
            validate_response(&json!({"SchemaVersion": "1.0", "Actions": actions})).unwrap_err();
        assert_eq!(err.to_string(), "11 actions; the SMA accepts at most 10");
    }

    #[test]
    fn the_mistakes_people_make_are_named() {
        let cases = [
            (json!({"statusCode": 200, "body": "{}"}), "API Gateway"),
            (
                json!({"SchemaVersion": "2.0", "Actions": []}),
                "SchemaVersion \"2.0\"",
            ),
            (json!({"Actions": []}), "no SchemaVersion"),
            (
                json!({"SchemaVersion": 1.0, "Actions": []}),
                "SchemaVersion 1.0 does not match the event's \"1.0\"",
            ),
            (
                json!({"SchemaVersion": "1.0", "Actions": [{"Type": "Sing", "Parameters": {}}]}),
                "unknown action type \"Sing\"",
            ),
            (
                json!({"SchemaVersion": "1.0", "Actions": [speak(1), {"Type": "Speak", "Parameters": {"CallId": "x"}}]}),
                "action 2 (Speak): missing required parameter Text",
            ),
            (
                json!({"SchemaVersion": "1.0", "Actions": [{"Type": "Hangup", "Parameters": {"SipResponseCode": "603"}}]}),
                "603",
            ),
            (json!({"SchemaVersion": "1.0", "Actions": {}}), "array"),
            (
                json!({"SchemaVersion": "1.0", "Actions": null}),
                "keep running its current actions",
            ),
            (
                json!({"SchemaVersion": "1.0", "Actions": [], "TransactionAttributes": {"n": 1}}),
                "TransactionAttributes.n is not a string",
            ),
            (
                json!({"Type": "Speak", "Parameters": {"CallId": "a", "Text": "x".repeat(1001)}}),
                "action 1 (Speak): Text is longer than 1000 characters",
            ),
            (
                json!({"SchemaVersion": "1.0", "Sequence": 1, "InvocationEventType": "RINGING"}),
                "not an SMA event: missing field `CallDetails`",
            ),
            (json!([1, 2]), "neither an SMA event"),
        ];
        for (value, want) in cases {
            let err = validate(&value).unwrap_err().to_string();
            assert!(err.contains(want), "{value}: {err}");
        }
    }

    #[test]
    fn numbers_as_strings_are_read_and_written_as_numbers() {
        let a = validate_action(
            &json!({"Type": "Pause", "Parameters": {"DurationInMilliseconds": "1500"}}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"Type": "Pause", "Parameters": {"DurationInMilliseconds": 1500}})
        );
        let h = validate_action(&json!({"Type": "Hangup", "Parameters": {"SipResponseCode": 0}}))
            .unwrap();
        assert_eq!(
            serde_json::to_value(&h).unwrap()["Parameters"]["SipResponseCode"],
            "0"
        );
    }

    #[test]
    fn the_builder_stops_at_ten_actions_and_ten_attributes() {
        let event = validate_event(&answered()).unwrap();
        let mut b = Response::to(&event);
        for _ in 0..10 {
            b.push(Action::hangup("leg-a", 0)).unwrap();
        }
        assert_eq!(b.room(), 0);
        assert!(matches!(
            b.push(Action::hangup("leg-a", 0)),
            Err(ContractError::TooManyActions(11))
        ));
        let too_many: BTreeMap<String, String> =
            (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(b.attributes(too_many).is_err());
        let r = Response::empty("1.0");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"SchemaVersion": "1.0", "Actions": []})
        );
    }

    #[test]
    fn a_schema_version_too_long_to_echo_is_refused() {
        let mut v = answered();
        v["SchemaVersion"] = json!("9".repeat(MAX_SCHEMA_VERSION));
        assert!(validate_event(&v).is_ok());
        v["SchemaVersion"] = json!("9".repeat(MAX_SCHEMA_VERSION + 1));
        assert!(matches!(
            validate_event(&v),
            Err(ContractError::SchemaVersionTooLong(n)) if n == MAX_SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn a_sequence_no_real_call_reaches_is_refused() {
        let read = |seq: Value| {
            let mut v = answered();
            v["Sequence"] = seq;
            validate_event(&v)
        };
        assert_eq!(read(json!(MAX_SEQUENCE)).unwrap().sequence, MAX_SEQUENCE);
        assert!(matches!(
            read(json!(MAX_SEQUENCE + 1)),
            Err(ContractError::SequenceOutOfRange(s)) if s == MAX_SEQUENCE + 1
        ));
        assert!(matches!(
            read(json!(u64::MAX)),
            Err(ContractError::SequenceOutOfRange(u64::MAX))
        ));
        // 2^64 does not fit: it is not read as u64::MAX.
        let mut v = answered();
        v["Sequence"] = json!(7);
        let text = serde_json::to_string(&v)
            .unwrap()
            .replace("\"Sequence\":7", "\"Sequence\":18446744073709551616");
        assert!(text.contains("18446744073709551616"), "{text}");
        assert!(matches!(
            parse_event(text.as_bytes()),
            Err(ContractError::NotAnEvent(_))
        ));
        for bad in [json!(-1), json!(1.5), json!("many"), json!(1e300)] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_event_read_from_bytes_points_at_the_value_of_the_wrong_type() {
        let mut v = answered();
        v["Sequence"] = json!("three");
        let text = serde_json::to_string_pretty(&v).unwrap();
        let err = parse_event(text.as_bytes()).unwrap_err();
        assert!(matches!(err, ContractError::NotAnEvent(_)), "{err:?}");
        let line = text.lines().position(|l| l.contains("three")).unwrap() + 1;
        assert!(
            err.to_string().contains(&format!("at line {line} column")),
            "{err}"
        );
        assert!(matches!(
            parse_event(b"{\"Sequence\": "),
            Err(ContractError::NotJson(_))
        ));
    }

    #[test]
    fn the_statement_envelope_of_the_recording_page_is_read_as_its_action() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Type": "StopCallRecording", "Parameters": {"CallId": "leg-a"}}
        ]});
        assert_eq!(classify(&doc), Payload::Action);
        assert_eq!(
            validate_action(&doc).unwrap().type_name(),
            "StopCallRecording"
        );
    }

    #[test]
    fn shapes_are_classified_without_being_checked() {
        let cases = [
            (answered(), Payload::Event),
            (json!({"SchemaVersion": "9"}), Payload::Response),
            (json!({"Type": "Nope"}), Payload::Action),
            (json!({"httpMethod": "POST"}), Payload::ApiGatewayShaped),
            (
                json!({"statusCode": 200, "body": ""}),
                Payload::ApiGatewayShaped,
            ),
            (json!({"Hello": 1}), Payload::Unrecognized),
            (json!("text"), Payload::Unrecognized),
        ];
        for (value, want) in cases {
            assert_eq!(classify(&value), want, "{value}");
        }
    }

    /// JSON trees built from the contract's own keys and values, so that generated inputs
    /// reach the readers' inner branches rather than stopping at the first missing field.
    fn contract_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            prop::sample::select(vec![
                "SchemaVersion",
                "Sequence",
                "InvocationEventType",
                "ActionData",
                "CallDetails",
                "TransactionId",
                "Participants",
                "ParticipantTag",
                "CallId",
                "Type",
                "Parameters",
                "Actions",
                "TransactionAttributes",
                "ErrorType",
                "Error",
                "SipResponseCode",
                "Arguments",
                "StartTimeInMilliseconds",
                "Statement",
                "statusCode",
                "body",
                "Text",
                "DurationInMilliseconds",
                "Endpoints",
            ])
            .prop_map(str::to_owned),
            "[A-Za-z]{1,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(vec![
                "1.0",
                "3",
                "-1",
                "1e3",
                "LEG-A",
                "leg-b",
                "Speak",
                "Hangup",
                "HANGUP",
                "CALL_ANSWERED",
                "Code: message",
                ":",
                "",
            ])
            .prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_event(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics(value in contract_json()) {
            let _ = validate(&value);
            let _ = validate_response(&value);
            let _ = validate_action(&value);
            let _ = parse_event(value.to_string().as_bytes());
            if let Ok(event) = validate_event(&value) {
                let _ = (event.arguments(), event.error(), event.sip_response_code());
                let _ = (event.action_leg(), event.received_digits());
            }
        }

        #[test]
        fn an_event_with_any_part_replaced_never_panics(
            at in prop::sample::select(vec![
                "/Sequence", "/ActionData", "/ErrorType", "/CallDetails/TransactionAttributes",
                "/CallDetails/Participants", "/CallDetails/Participants/0",
                "/CallDetails/Participants/0/StartTimeInMilliseconds",
                "/CallDetails/Participants/0/ParticipantTag",
            ]),
            value in contract_json(),
        ) {
            let mut event = answered();
            event["ActionData"] = json!({"Type": "Hangup", "Parameters": {"CallId": "leg-a"}});
            if let Some(slot) = event.pointer_mut(at) {
                *slot = value;
            }
            if let Ok(event) = validate_event(&event) {
                let _ = (event.arguments(), event.error(), event.sip_response_code());
                let _ = (event.action_leg(), event.received_digits());
                let _ = serde_json::to_value(&event).unwrap();
            }
        }
    }
}
