//! The PSTN audio contract as types: what the SMA sends a handler ([`Event`]) and what a
//! handler answers ([`Response`] of [`Action`]s), following `docs/pstn-audio.md`.
//!
//! Lenient on the way in: numbers as strings, `SipApplicationId` for
//! `SipMediaApplicationId`, `ParticipantTag` in any case, `ErrorType` at the top level or in
//! `ActionData`, unknown event types and placeholder values kept rather than rejected,
//! unknown fields ignored. Strict on the way out: a response holds at most 10 actions and 10
//! attributes, echoes `SchemaVersion`, and never sends `null` actions.
//!
//! [`validate()`] checks payloads from outside (the `outdial check` command, the PSTN
//! simulator) and names what is wrong.

mod action;
mod event;
mod lenient;
mod response;
mod validate;

pub use action::*;
pub use event::{
    ActionData, CallDetails, Direction, Event, EventType, Participant, ParticipantStatus,
    ParticipantTag,
};
pub use response::{Response, ResponseBuilder};
pub use validate::{
    Payload, Valid, classify, parse_event, validate, validate_action, validate_event,
    validate_response,
};

/// The only `SchemaVersion` the service sends today.
pub const SCHEMA_VERSION: &str = "1.0";
/// The longest `SchemaVersion` an event may carry. The service sends `"1.0"`; a handler echoes
/// the event's version, so a longer one is refused rather than sent back.
pub const MAX_SCHEMA_VERSION: usize = 16;
/// Actions per response.
pub const MAX_ACTIONS: usize = 10;
/// `TransactionAttributes` keys per call (AWS documents 100 in one place and rejects 11 in
/// another; 10 is what works).
pub const MAX_ATTRIBUTES: usize = 10;
/// Characters in one `Speak` text.
pub const MAX_SPEAK_TEXT: usize = 1000;
/// The largest `Sequence` an event may carry. The service stops invoking a call's handler
/// after 1,000 invocations, so no real event comes near it; a larger one is forged or broken,
/// and recording it would make every later real event of the call look stale.
pub const MAX_SEQUENCE: u64 = 10_000;

/// What is wrong with a payload.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not an SMA event: {0}")]
    NotAnEvent(#[source] serde_json::Error),
    #[error("CallDetails.TransactionId is missing or empty")]
    MissingTransactionId,
    #[error("Sequence {0} is beyond any real call's (at most {max})", max = MAX_SEQUENCE)]
    SequenceOutOfRange(u64),
    #[error("SchemaVersion of {0} characters: no version is longer than {max}", max = MAX_SCHEMA_VERSION)]
    SchemaVersionTooLong(usize),
    /// The value as JSON text, so that `1.0` and `"1.0"` read differently.
    #[error("SchemaVersion {0} does not match the event's \"1.0\"")]
    SchemaVersion(String),
    #[error("no SchemaVersion: the SMA rejects a response without it")]
    MissingSchemaVersion,
    #[error("{0} actions; the SMA accepts at most 10")]
    TooManyActions(usize),
    #[error("TransactionAttributes has {0} keys; the SMA accepts at most 10")]
    TooManyAttributes(usize),
    #[error("TransactionAttributes must be an object mapping strings to strings")]
    AttributesNotObject,
    #[error("TransactionAttributes.{0} is not a string")]
    AttributeNotString(String),
    #[error("Actions must be an array of actions")]
    ActionsNotArray,
    #[error(
        "Actions is missing or null, which tells the SMA to keep running its current actions; send [] to run nothing"
    )]
    NoActions,
    #[error("action {index}: unknown action type {name:?}")]
    UnknownAction { index: usize, name: String },
    #[error("action {index}: no Type")]
    NoActionType { index: usize },
    #[error("action {index} ({name}): missing required parameter {param}")]
    MissingParameter {
        index: usize,
        name: String,
        param: String,
    },
    #[error("action {index} ({name}): {reason}")]
    InvalidParameter {
        index: usize,
        name: String,
        reason: String,
    },
    #[error(
        "looks like an API Gateway proxy response or request (statusCode/body): an SMA handler returns the action list itself, {{\"SchemaVersion\": \"1.0\", \"Actions\": [...]}}"
    )]
    ApiGatewayShaped,
    #[error(
        "neither an SMA event (InvocationEventType), a response (SchemaVersion, Actions) nor an action (Type, Parameters)"
    )]
    Unrecognized,
}
