//! The facts an event carries about its call: the dialer's `ArgumentsMap` on
//! `NEW_OUTBOUND_CALL`, our own `TransactionAttributes` on every later event.
//!
//! The map stays within the SMA's limit of 10 keys, and every response sends it whole: the
//! SMA's rules for merging a changed key set are ambiguous (`docs/pstn-audio.md` 5.3), and a
//! full map is always right.

use std::collections::BTreeMap;

use outdial_core::contract::{Event, EventType};
use outdial_core::ids::{Attempt, CallId, CampaignId, TransactionId};
use outdial_core::lifecycle::{CallState, CallStatus, EndRequest};
use outdial_core::messages::DialArguments;
use outdial_core::record::CallRecord;

const STATUS: &str = "status";
const ANSWERED: &str = "answered";
const END: &str = "end";
const STEP: &str = "step";
const OUTCOME: &str = "outcome";

/// What the handler knows about a call from the event alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub call_id: CallId,
    pub campaign_id: CampaignId,
    pub attempt: Attempt,
    pub transaction_id: TransactionId,
    /// The status after our last answer (a hint: an ignored answer may not have updated it).
    pub status: CallStatus,
    pub answered: bool,
    pub end_request: Option<EndRequest>,
    /// The script step whose result the call is waiting for.
    pub step: Option<String>,
    /// The script's outcome so far.
    pub outcome: Option<String>,
    /// The contact's template variables.
    pub vars: BTreeMap<String, String>,
}

impl Facts {
    /// Reads the facts from `NEW_OUTBOUND_CALL`'s arguments or a later event's attributes.
    ///
    /// # Errors
    /// A reason, when the event names no call (no arguments or attributes, or ids that do
    /// not parse): such an event is an orphan.
    pub fn from_event(event: &Event) -> Result<Self, String> {
        let map = if event.event_type == EventType::NewOutboundCall {
            event
                .arguments()
                .ok_or("NEW_OUTBOUND_CALL without ArgumentsMap")?
        } else {
            event
                .call_details
                .transaction_attributes
                .clone()
                .ok_or("no TransactionAttributes")?
        };
        let get = |k: &str| map.get(k).map(String::as_str);
        let DialArguments {
            call_id,
            campaign_id,
            attempt,
            vars,
        } = DialArguments::decode(&map).map_err(|e| e.to_string())?;
        let transaction_id =
            TransactionId::parse(&event.call_details.transaction_id).map_err(|e| e.to_string())?;
        Ok(Self {
            call_id,
            campaign_id,
            attempt,
            transaction_id,
            status: get(STATUS)
                .and_then(|s| s.parse().ok())
                .unwrap_or(CallStatus::Dialing),
            answered: get(ANSWERED) == Some("1"),
            end_request: get(END).and_then(EndRequest::parse),
            step: get(STEP).map(str::to_owned),
            outcome: get(OUTCOME).map(str::to_owned),
            vars,
        })
    }

    /// The facts from the call's record, for an event that arrived without its attributes
    /// (found through its `TransactionId`): the script starts from its first step.
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
            vars: record.vars.clone(),
        }
    }

    /// The call's state as the transition sees it; the `Sequence` guard is the store's.
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

    /// The full attribute map to send back.
    #[must_use]
    pub fn attributes(&self) -> BTreeMap<String, String> {
        // The dial's own arguments, carried on as they came, and the handler's facts.
        let mut m = DialArguments {
            call_id: self.call_id.clone(),
            campaign_id: self.campaign_id.clone(),
            attempt: self.attempt,
            vars: self.vars.clone(),
        }
        .encode();
        m.insert(STATUS.to_owned(), self.status.as_str().to_owned());
        m.insert(
            ANSWERED.to_owned(),
            if self.answered { "1" } else { "0" }.to_owned(),
        );
        if let Some(end) = self.end_request {
            m.insert(END.to_owned(), end.as_str().to_owned());
        }
        if let Some(step) = &self.step {
            m.insert(STEP.to_owned(), step.clone());
        }
        if let Some(outcome) = &self.outcome {
            m.insert(OUTCOME.to_owned(), outcome.clone());
        }
        m
    }
}
