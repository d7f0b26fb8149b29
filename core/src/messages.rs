//! The messages outdial's functions pass each other through AWS, one type each, encoded and
//! decoded here and nowhere else:
//!
//! - [`DialArguments`]: what the dispatcher passes to `CreateSipMediaApplicationCall`, and
//!   the SMA handler reads back from `NEW_OUTBOUND_CALL`'s `ArgumentsMap`;
//! - [`CallAttributes`]: the `TransactionAttributes` the SMA handler sends with every answer
//!   and reads back from the next event: the dial's arguments and the call's state after the
//!   handler's last answer;
//! - [`EndRequest`] as an `UpdateSipMediaApplicationCall` command ([`encode_end`],
//!   [`decode_end`]): the watchdogs', the cancel sweep's and the API's way of ending a call;
//! - [`RunSource`]: what starts a timers invocation, the schedule or the API;
//! - [`Function`]: the four functions, by the names the stack gives them.
//!
//! A key or a literal that crosses a function boundary is written once, in this module.

use std::collections::BTreeMap;

use crate::contract::{Event, EventType, ParticipantTag};
use crate::ids::{Attempt, CallId, CampaignId, TransactionId};
use crate::lifecycle::{CallEvent, CallState, CallStatus, EndRequest, Leg};
use crate::machine::Phase;
use crate::record::CallRecord;

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A key the message needs is not there.
    #[error("no {0}")]
    Missing(&'static str),
    /// A key's value does not parse.
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The keys of [`DialArguments`] in an `ArgumentsMap` (and in `TransactionAttributes`).
pub mod keys {
    pub const CALL_ID: &str = "call_id";
    pub const CAMPAIGN_ID: &str = "campaign_id";
    pub const ATTEMPT: &str = "attempt";
    pub const VARS: &str = "vars";
    /// The campaign's purpose, in an `ArgumentsMap` only (the SMA handler ignores it; the
    /// simulator counts placements by it).
    pub const PURPOSE: &str = "purpose";
    /// The keys [`super::CallAttributes`] adds in `TransactionAttributes`.
    pub const STATUS: &str = "status";
    pub const ANSWERED: &str = "answered";
    pub const END: &str = "end";
    pub const STEP: &str = "step";
    pub const OUTCOME: &str = "outcome";
    /// Where answering-machine detection stands ([`crate::machine::Phase`]).
    pub const MACHINE: &str = "machine";
}

/// The arguments of one dial: which call and attempt it is, and the contact's template
/// variables (a JSON object of texts in one value, since the map holds only texts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialArguments {
    pub call_id: CallId,
    pub campaign_id: CampaignId,
    pub attempt: Attempt,
    pub vars: BTreeMap<String, String>,
}

impl DialArguments {
    /// The map as `CreateSipMediaApplicationCall` takes it: `vars` is left out when empty.
    #[must_use]
    pub fn encode(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::from([
            (keys::CALL_ID.to_owned(), self.call_id.to_string()),
            (keys::CAMPAIGN_ID.to_owned(), self.campaign_id.to_string()),
            (keys::ATTEMPT.to_owned(), self.attempt.to_string()),
        ]);
        if !self.vars.is_empty() {
            // A map of strings always serializes.
            if let Ok(vars) = serde_json::to_string(&self.vars) {
                map.insert(keys::VARS.to_owned(), vars);
            }
        }
        map
    }

    /// Reads the arguments back from an `ArgumentsMap` or the `TransactionAttributes` that
    /// carry them on; other keys are ignored.
    ///
    /// # Errors
    /// [`MessageError`] naming the first key that is missing or does not parse.
    pub fn decode(map: &BTreeMap<String, String>) -> Result<Self, MessageError> {
        fn required<'a>(
            map: &'a BTreeMap<String, String>,
            key: &'static str,
        ) -> Result<&'a str, MessageError> {
            map.get(key)
                .map(String::as_str)
                .ok_or(MessageError::Missing(key))
        }
        let invalid = |key: &'static str| {
            move |e: &dyn std::fmt::Display| MessageError::Invalid {
                key,
                reason: e.to_string(),
            }
        };
        let call_id =
            CallId::parse(required(map, keys::CALL_ID)?).map_err(|e| invalid(keys::CALL_ID)(&e))?;
        let campaign_id = CampaignId::parse(required(map, keys::CAMPAIGN_ID)?)
            .map_err(|e| invalid(keys::CAMPAIGN_ID)(&e))?;
        let attempt = Attempt::parse(required(map, keys::ATTEMPT)?)
            .map_err(|e| invalid(keys::ATTEMPT)(&e))?;
        let vars = match map.get(keys::VARS) {
            None => BTreeMap::new(),
            Some(raw) => serde_json::from_str(raw).map_err(|e| invalid(keys::VARS)(&e))?,
        };
        Ok(Self {
            call_id,
            campaign_id,
            attempt,
            vars,
        })
    }
}

/// What an SMA event tells the handler about its call: the dial's [`DialArguments`], and in
/// every event after `NEW_OUTBOUND_CALL` the state the handler's last answer left the call in,
/// carried in the `TransactionAttributes` the handler sends back whole with every answer (the
/// SMA's rules for merging a changed key set are ambiguous, `docs/pstn-audio.md` 5.3, and a
/// full map is always right). The map stays within the SMA's limit of 10 keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAttributes {
    pub call_id: CallId,
    pub campaign_id: CampaignId,
    pub attempt: Attempt,
    pub transaction_id: TransactionId,
    /// The status after the handler's last answer (a hint: an ignored answer may not have
    /// updated it).
    pub status: CallStatus,
    pub answered: bool,
    pub end_request: Option<EndRequest>,
    /// The script step whose result the call is waiting for.
    pub step: Option<String>,
    /// The script's outcome so far.
    pub outcome: Option<String>,
    /// Where answering-machine detection stands, while it runs.
    pub machine: Option<Phase>,
    /// The contact's template variables.
    pub vars: BTreeMap<String, String>,
}

impl CallAttributes {
    /// Reads the attributes from `NEW_OUTBOUND_CALL`'s arguments or a later event's
    /// `TransactionAttributes`.
    ///
    /// # Errors
    /// [`MessageError`] when the event names no call (no arguments or attributes, or ids that
    /// do not parse): such an event is an orphan.
    pub fn from_event(event: &Event) -> Result<Self, MessageError> {
        let map = if event.event_type == EventType::NewOutboundCall {
            event
                .arguments()
                .ok_or(MessageError::Missing("ArgumentsMap on NEW_OUTBOUND_CALL"))?
        } else {
            event
                .call_details
                .transaction_attributes
                .clone()
                .ok_or(MessageError::Missing("TransactionAttributes"))?
        };
        let transaction_id =
            TransactionId::parse(&event.call_details.transaction_id).map_err(|e| {
                MessageError::Invalid {
                    key: "TransactionId",
                    reason: e.to_string(),
                }
            })?;
        Self::decode(&map, transaction_id)
    }

    /// Reads the attributes from a map, for the call of `transaction_id`. Only the dial's
    /// arguments are required; the state keys fall back to a call just dialed.
    ///
    /// # Errors
    /// [`MessageError`] naming the first dial argument that is missing or does not parse.
    pub fn decode(
        map: &BTreeMap<String, String>,
        transaction_id: TransactionId,
    ) -> Result<Self, MessageError> {
        let get = |k: &str| map.get(k).map(String::as_str);
        let DialArguments {
            call_id,
            campaign_id,
            attempt,
            vars,
        } = DialArguments::decode(map)?;
        Ok(Self {
            call_id,
            campaign_id,
            attempt,
            transaction_id,
            status: get(keys::STATUS)
                .and_then(|s| s.parse().ok())
                .unwrap_or(CallStatus::Dialing),
            answered: get(keys::ANSWERED) == Some("1"),
            end_request: get(keys::END).and_then(EndRequest::parse),
            step: get(keys::STEP).map(str::to_owned),
            outcome: get(keys::OUTCOME).map(str::to_owned),
            machine: get(keys::MACHINE).and_then(Phase::decode),
            vars,
        })
    }

    /// The attributes from the call's record, for an event that arrived without them (found
    /// through its `TransactionId`): the script starts from its first step.
    #[must_use]
    pub fn from_record(record: &CallRecord, transaction_id: TransactionId) -> Self {
        Self {
            call_id: record.id.clone(),
            campaign_id: record.campaign_id.clone(),
            attempt: record.attempt,
            transaction_id,
            status: record.status,
            answered: record.answered,
            end_request: record.end_request,
            step: None,
            outcome: record.script_outcome.clone(),
            machine: None,
            vars: record.vars.clone(),
        }
    }

    /// The call's state as the lifecycle's transition sees it; the `Sequence` guard is the
    /// store's, applied in the event's conditional write.
    #[must_use]
    pub fn state(&self) -> CallState {
        CallState {
            status: self.status,
            attempt: self.attempt,
            last_seq: None,
            answered: self.answered,
            end_request: self.end_request,
        }
    }

    /// The full `TransactionAttributes` map to send back.
    #[must_use]
    pub fn encode(&self) -> BTreeMap<String, String> {
        let mut m = DialArguments {
            call_id: self.call_id.clone(),
            campaign_id: self.campaign_id.clone(),
            attempt: self.attempt,
            vars: self.vars.clone(),
        }
        .encode();
        m.insert(keys::STATUS.to_owned(), self.status.as_str().to_owned());
        m.insert(
            keys::ANSWERED.to_owned(),
            if self.answered { "1" } else { "0" }.to_owned(),
        );
        if let Some(end) = self.end_request {
            m.insert(keys::END.to_owned(), end.as_str().to_owned());
        }
        if let Some(step) = &self.step {
            m.insert(keys::STEP.to_owned(), step.clone());
        }
        if let Some(outcome) = &self.outcome {
            m.insert(keys::OUTCOME.to_owned(), outcome.clone());
        }
        if let Some(phase) = self.machine {
            m.insert(keys::MACHINE.to_owned(), phase.encode());
        }
        m
    }
}

const OP: &str = "op";
const REASON: &str = "reason";
const OP_CANCEL: &str = "cancel";
const OP_HANGUP: &str = "hangup";

/// An [`EndRequest`] as `UpdateSipMediaApplicationCall` arguments: `{"op": "cancel"}` for a
/// cancelled campaign, `{"op": "hangup", "reason": "<reason>"}` for the others.
#[must_use]
pub fn encode_end(request: EndRequest) -> BTreeMap<String, String> {
    match request {
        EndRequest::Cancel => BTreeMap::from([(OP.to_owned(), OP_CANCEL.to_owned())]),
        other => BTreeMap::from([
            (OP.to_owned(), OP_HANGUP.to_owned()),
            (REASON.to_owned(), other.as_str().to_owned()),
        ]),
    }
}

/// Reads an [`EndRequest`] from `CALL_UPDATE_REQUESTED` arguments; `None` when they hold no
/// command of ours. A hang-up with a reason this version does not know is a plain hang-up.
#[must_use]
pub fn decode_end(arguments: &BTreeMap<String, String>) -> Option<EndRequest> {
    match arguments.get(OP).map(String::as_str) {
        Some(OP_CANCEL) => Some(EndRequest::Cancel),
        Some(OP_HANGUP) => Some(
            arguments
                .get(REASON)
                .and_then(|r| EndRequest::parse(r))
                .filter(|r| *r != EndRequest::Cancel)
                .unwrap_or(EndRequest::Hangup),
        ),
        _ => None,
    }
}

/// What started a timers invocation. A scheduled run waits for the previous run's leases; a
/// run the API asks for takes only the shards nobody holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSource {
    /// EventBridge Scheduler, every minute (`{"source": "outdial.schedule"}`).
    Schedule,
    /// The API, when a campaign starts, resumes or is cancelled (`{"source": "outdial.api"}`).
    Api,
}

impl RunSource {
    const SCHEDULE: &'static str = "outdial.schedule";
    const API: &'static str = "outdial.api";

    /// The invocation payload.
    #[must_use]
    pub fn payload(self) -> serde_json::Value {
        serde_json::json!({ "source": self.source() })
    }

    /// The payload's `source`.
    #[must_use]
    pub const fn source(self) -> &'static str {
        match self {
            Self::Schedule => Self::SCHEDULE,
            Self::Api => Self::API,
        }
    }

    /// Reads the source of an invocation payload. Anything that is not the API's is taken as
    /// the schedule's, the safe reading: a scheduled run never takes a lease from a live run.
    #[must_use]
    pub fn of(payload: &serde_json::Value) -> Self {
        match payload.get("source").and_then(serde_json::Value::as_str) {
            Some(Self::API) => Self::Api,
            _ => Self::Schedule,
        }
    }
}

/// What the wire event means for the call record. The SMA handler reads every event with it;
/// the dispatcher reads the `HANGUP` of a call the SMA handler could not match and kept as an
/// orphan.
#[must_use]
pub fn call_event(event: &Event) -> CallEvent {
    match &event.event_type {
        EventType::NewOutboundCall => CallEvent::Placed,
        EventType::Ringing => CallEvent::Ringing,
        EventType::CallAnswered => CallEvent::Answered,
        EventType::ActionSuccessful
        | EventType::ActionFailed
        | EventType::ActionInterrupted
        | EventType::DigitsReceived => CallEvent::ScriptProgress,
        EventType::Hangup => CallEvent::Hangup {
            leg: if event.action_leg() == Some(ParticipantTag::LegB) {
                Leg::Agent
            } else {
                Leg::Callee
            },
            code: event.sip_response_code(),
        },
        // Only our own command, carried in the update's arguments, means anything.
        EventType::CallUpdateRequested => event
            .arguments()
            .and_then(|arguments| decode_end(&arguments))
            .map_or(CallEvent::Other, CallEvent::EndRequested),
        EventType::InvalidLambdaResponse => CallEvent::InvalidResponse,
        EventType::NewInboundCall | EventType::Unknown(_) => CallEvent::Other,
    }
}

/// The four Lambda functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    Api,
    Sma,
    Timers,
    Stream,
}

impl Function {
    pub const ALL: [Self; 4] = [Self::Api, Self::Sma, Self::Timers, Self::Stream];

    /// The function's binary, and its name in the local stack's Lambda Invoke API.
    #[must_use]
    pub const fn binary(self) -> &'static str {
        match self {
            Self::Api => "outdial-api",
            Self::Sma => "outdial-sma",
            Self::Timers => "outdial-timers",
            Self::Stream => "outdial-stream",
        }
    }

    /// Its short name: `api`, `sma`, `timers`, `stream`.
    #[must_use]
    pub const fn key(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Sma => "sma",
            Self::Timers => "timers",
            Self::Stream => "stream",
        }
    }

    /// The function a binary name (or the last segment of a function ARN) names.
    #[must_use]
    pub fn from_binary(name: &str) -> Option<Self> {
        let name = name.rsplit(':').next().unwrap_or(name);
        Self::ALL.into_iter().find(|f| f.binary() == name)
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn args(vars: BTreeMap<String, String>, attempt: u32) -> DialArguments {
        DialArguments {
            call_id: CallId::random(),
            campaign_id: CampaignId::random(),
            attempt: Attempt::new(attempt).unwrap(),
            vars,
        }
    }

    proptest! {
        #[test]
        fn dial_arguments_survive_their_round_trip(
            vars in prop::collection::btree_map("[a-z_]{1,12}", "\\PC{0,20}", 0..5),
            attempt in 1u32..10,
        ) {
            let sent = args(vars, attempt);
            prop_assert_eq!(DialArguments::decode(&sent.encode()).unwrap(), sent);
        }
    }

    proptest! {
        #[test]
        fn call_attributes_survive_their_round_trip(
            vars in prop::collection::btree_map("[a-z_]{1,12}", "\\PC{0,20}", 0..3),
            attempt in 1u32..10,
            status in prop::sample::select(CallStatus::ALL.to_vec()),
            answered: bool,
            end in prop::option::of(prop::sample::select(vec![
                EndRequest::Cancel,
                EndRequest::Hangup,
                EndRequest::RingTimeout,
                EndRequest::MaxDuration,
            ])),
            step in prop::option::of("[a-z_]{1,12}"),
            outcome in prop::option::of("[a-z_]{1,12}"),
            machine in prop::option::of(prop_oneof![
                any::<i64>().prop_map(|since_ms| Phase::Listening { since_ms }),
                any::<i64>().prop_map(|since_ms| Phase::AwaitingBeep { since_ms }),
                Just(Phase::Message),
            ]),
        ) {
            let dial = args(vars, attempt);
            let sent = CallAttributes {
                call_id: dial.call_id,
                campaign_id: dial.campaign_id,
                attempt: dial.attempt,
                transaction_id: TransactionId::parse("3b3c0b1f-1d52-4f8e-9d29-2b0c8a1c9e11").unwrap(),
                status,
                answered,
                end_request: end,
                step,
                outcome,
                machine,
                vars: dial.vars,
            };
            let map = sent.encode();
            prop_assert!(map.len() <= 10, "the SMA keeps at most 10 attributes: {map:?}");
            prop_assert_eq!(
                CallAttributes::decode(&map, sent.transaction_id.clone()).unwrap(),
                sent
            );
        }
    }

    #[test]
    fn call_attributes_fall_back_to_a_call_just_dialed_and_need_the_dial_arguments() {
        let dial = args(BTreeMap::new(), 2);
        let transaction = TransactionId::parse("3b3c0b1f-1d52-4f8e-9d29-2b0c8a1c9e11").unwrap();
        let read = CallAttributes::decode(&dial.encode(), transaction.clone()).unwrap();
        assert_eq!(read.status, CallStatus::Dialing);
        assert!(!read.answered);
        assert_eq!(
            (read.end_request, read.step, read.outcome),
            (None, None, None)
        );
        assert_eq!(read.attempt, dial.attempt);
        let mut map = dial.encode();
        map.remove(keys::CALL_ID);
        assert_eq!(
            CallAttributes::decode(&map, transaction).unwrap_err(),
            MessageError::Missing(keys::CALL_ID)
        );
    }

    #[test]
    fn dial_arguments_name_the_key_that_is_missing_or_wrong() {
        let mut map = args(BTreeMap::new(), 1).encode();
        assert!(!map.contains_key(keys::VARS), "empty vars are left out");
        map.insert(keys::VARS.into(), "[1]".into());
        assert!(matches!(
            DialArguments::decode(&map),
            Err(MessageError::Invalid { key: "vars", .. })
        ));
        map.remove(keys::ATTEMPT);
        assert_eq!(
            DialArguments::decode(&map),
            Err(MessageError::Missing("attempt"))
        );
    }

    #[test]
    fn every_end_request_survives_its_round_trip() {
        for request in [
            EndRequest::Cancel,
            EndRequest::Hangup,
            EndRequest::RingTimeout,
            EndRequest::MaxDuration,
        ] {
            assert_eq!(decode_end(&encode_end(request)), Some(request));
        }
    }

    #[test]
    fn arguments_that_are_not_a_command_of_ours_are_none() {
        let foreign = BTreeMap::from([("op".to_owned(), "transfer".to_owned())]);
        assert_eq!(decode_end(&foreign), None);
        assert_eq!(decode_end(&BTreeMap::new()), None);
        let unknown = BTreeMap::from([
            ("op".to_owned(), "hangup".to_owned()),
            ("reason".to_owned(), "cancel".to_owned()),
        ]);
        assert_eq!(decode_end(&unknown), Some(EndRequest::Hangup));
    }

    #[test]
    fn run_sources_survive_their_round_trip_and_anything_else_is_the_schedule() {
        for source in [RunSource::Schedule, RunSource::Api] {
            assert_eq!(RunSource::of(&source.payload()), source);
        }
        assert_eq!(RunSource::of(&serde_json::json!({})), RunSource::Schedule);
        assert_eq!(
            RunSource::of(&serde_json::json!({"source": "aws.scheduler"})),
            RunSource::Schedule
        );
    }

    #[test]
    fn functions_are_found_by_binary_and_by_arn() {
        for f in Function::ALL {
            assert_eq!(Function::from_binary(f.binary()), Some(f));
            let arn = format!(
                "arn:aws:lambda:us-east-1:123456789012:function:{}",
                f.binary()
            );
            assert_eq!(Function::from_binary(&arn), Some(f));
        }
        assert_eq!(Function::from_binary("outdial"), None);
    }
}
