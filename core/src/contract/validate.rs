//! Checking payloads that came from outside against the contract, with errors that name what
//! is wrong: the mistakes people make with real SMA handlers (an API-Gateway-shaped answer,
//! eleven actions, a wrong `SchemaVersion`, an unknown action, a missing parameter).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::speech::{check_digits_regex, check_voice};

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
        Action::Speak(s) => check_voice(
            s.voice_id.as_deref(),
            s.engine.as_deref(),
            s.language_code.as_deref(),
        )
        .err(),
        Action::SpeakAndGetDigits(s) => {
            let (speech, failure) = (&s.speech_parameters, &s.failure_speech_parameters);
            check_voice(
                speech.voice_id.as_deref(),
                speech.engine.as_deref(),
                speech.language_code.as_deref(),
            )
            .map_err(|e| format!("SpeechParameters: {e}"))
            .and_then(|()| {
                // Missing failure fields are the speech's.
                check_voice(
                    failure.voice_id.as_deref().or(speech.voice_id.as_deref()),
                    failure.engine.as_deref().or(speech.engine.as_deref()),
                    failure
                        .language_code
                        .as_deref()
                        .or(speech.language_code.as_deref()),
                )
                .map_err(|e| format!("FailureSpeechParameters: {e}"))
            })
            .and_then(|()| digits_regex(s.digits.input_digits_regex.as_deref()))
            .err()
        }
        Action::PlayAudioAndGetDigits(p) => {
            digits_regex(p.digits.input_digits_regex.as_deref()).err()
        }
        Action::ReceiveDigits(r) => digits_regex(Some(&r.input_digits_regex)).err(),
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

/// An `InputDigitsRegex`, when there is one, read in the dialect of [`crate::speech`].
fn digits_regex(regex: Option<&str>) -> Result<(), String> {
    regex.map_or(Ok(()), |re| {
        check_digits_regex(re).map_err(|e| format!("InputDigitsRegex {re:?} {e}"))
    })
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
mod tests;
