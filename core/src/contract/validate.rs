//! Checking payloads that came from outside against the contract, with errors that name what
//! is wrong: the mistakes people make with real SMA handlers (an API-Gateway-shaped answer,
//! eleven actions, a wrong `SchemaVersion`, an unknown action, a missing parameter).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Action, ContractError, Event, MAX_ACTIONS, MAX_ATTRIBUTES, MAX_SPEAK_TEXT, Response,
    SCHEMA_VERSION,
};

/// A payload that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Event(Box<Event>),
    Response(Response),
    Action(Box<Action>),
}

/// Reads an event from the bytes the SMA sent.
///
/// # Errors
/// [`ContractError::NotJson`] with the line and column, or what [`validate_event`] finds.
pub fn parse_event(bytes: &[u8]) -> Result<Event, ContractError> {
    let value: Value = serde_json::from_slice(bytes).map_err(ContractError::NotJson)?;
    validate_event(&value)
}

/// Reads an event.
///
/// # Errors
/// [`ContractError::Shape`] naming the field at fault, or
/// [`ContractError::MissingTransactionId`].
pub fn validate_event(value: &Value) -> Result<Event, ContractError> {
    let event: Event = serde_json::from_value(value.clone())
        .map_err(|e| ContractError::Shape(format!("not an SMA event: {e}")))?;
    if event.call_details.transaction_id.trim().is_empty() {
        return Err(ContractError::MissingTransactionId);
    }
    Ok(event)
}

/// Whether a JSON object has the marks of an API Gateway proxy request or response.
fn api_gateway_shaped(obj: &serde_json::Map<String, Value>) -> bool {
    (obj.contains_key("statusCode") && obj.contains_key("body"))
        || ["httpMethod", "requestContext", "routeKey", "rawPath"]
            .iter()
            .any(|k| obj.contains_key(*k))
}

/// Checks one action; `index` (from 1) names it in errors.
///
/// # Errors
/// [`ContractError::UnknownAction`], [`ContractError::MissingParameter`] or
/// [`ContractError::InvalidParameter`].
pub fn validate_action(value: &Value, index: usize) -> Result<Action, ContractError> {
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
    let action: Action = serde_json::from_value(value.clone()).map_err(|e| {
        let message = e.to_string();
        match missing_field(&message) {
            Some(param) => ContractError::MissingParameter {
                index,
                name: name.clone(),
                param,
            },
            None => ContractError::InvalidParameter {
                index,
                name: name.clone(),
                reason: message,
            },
        }
    })?;
    let invalid = |reason: String| ContractError::InvalidParameter {
        index,
        name: name.clone(),
        reason,
    };
    match &action {
        Action::Speak(s) if s.text.chars().count() > MAX_SPEAK_TEXT => {
            return Err(invalid(format!(
                "Text is longer than {MAX_SPEAK_TEXT} characters"
            )));
        }
        Action::CallAndBridge(b) if b.endpoints.len() != 1 => {
            return Err(invalid(format!(
                "Endpoints must hold exactly one endpoint, not {}",
                b.endpoints.len()
            )));
        }
        Action::Hangup(h) => {
            if let Some(code) = &h.sip_response_code {
                if !["0", "480", "486"].contains(&code.as_str()) {
                    return Err(invalid(format!(
                        "SipResponseCode {code} is not one of 0, 480, 486"
                    )));
                }
            }
        }
        _ => {}
    }
    Ok(action)
}

/// The field name in serde's "missing field `X`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.split("missing field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// Checks an action-list response.
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
        Some(Value::String(v)) => return Err(ContractError::SchemaVersion(v.clone())),
        Some(other) => return Err(ContractError::SchemaVersion(other.to_string())),
    };
    // `"Actions": null` is allowed: it tells the SMA to keep the actions it is running.
    let raw_actions: &[Value] = match obj.get("Actions") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ContractError::ActionsNotArray),
    };
    if raw_actions.len() > MAX_ACTIONS {
        return Err(ContractError::TooManyActions(raw_actions.len()));
    }
    let actions = raw_actions
        .iter()
        .enumerate()
        .map(|(i, a)| validate_action(a, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let attributes = match obj.get("TransactionAttributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            if m.len() > MAX_ATTRIBUTES {
                return Err(ContractError::TooManyAttributes(m.len()));
            }
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let Value::String(v) = v else {
                    return Err(ContractError::Attributes(format!("{k} is not a string")));
                };
                out.insert(k.clone(), v.clone());
            }
            Some(out)
        }
        Some(_) => return Err(ContractError::Attributes("not an object".to_owned())),
    };
    Ok(Response::from_parts(version, actions, attributes))
}

/// Decides what a payload is by its shape and validates it as that.
///
/// # Errors
/// [`ContractError::ApiGatewayShaped`], [`ContractError::Unrecognized`], or what the
/// validator of its kind finds.
pub fn classify(value: &Value) -> Result<Payload, ContractError> {
    let obj = value.as_object().ok_or(ContractError::Unrecognized)?;
    if api_gateway_shaped(obj) {
        return Err(ContractError::ApiGatewayShaped);
    }
    if obj.contains_key("InvocationEventType") {
        return validate_event(value).map(|e| Payload::Event(Box::new(e)));
    }
    if obj.contains_key("Actions") || obj.contains_key("SchemaVersion") {
        return validate_response(value).map(Payload::Response);
    }
    if obj.contains_key("Type") {
        return validate_action(value, 1).map(|a| Payload::Action(Box::new(a)));
    }
    // The StartCallRecording page wraps its example in an IAM-policy-like
    // `{"Version", "Statement": [action]}` envelope, a documentation error: the real envelope
    // is SchemaVersion/Actions. The single action inside is what the example means.
    if let Some(Value::Array(statement)) = obj.get("Statement") {
        if let [single] = statement.as_slice() {
            return validate_action(single, 1).map(|a| Payload::Action(Box::new(a)));
        }
    }
    Err(ContractError::Unrecognized)
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
        ];
        for (value, want) in cases {
            let err = classify(&value).unwrap_err().to_string();
            assert!(err.contains(want), "{value}: {err}");
        }
    }

    #[test]
    fn numbers_as_strings_are_read_and_written_as_numbers() {
        let a = validate_action(
            &json!({"Type": "Pause", "Parameters": {"DurationInMilliseconds": "1500"}}),
            1,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"Type": "Pause", "Parameters": {"DurationInMilliseconds": 1500}})
        );
        let h = validate_action(
            &json!({"Type": "Hangup", "Parameters": {"SipResponseCode": 0}}),
            1,
        )
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_event(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics(s in "[\\[\\]{}\":,0-9a-zA-Z_ ]{0,120}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = classify(&v);
                let _ = validate_response(&v);
            }
        }
    }
}
