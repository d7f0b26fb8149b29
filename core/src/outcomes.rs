//! Outcome events: what the stream handler publishes to the customer's EventBridge bus as
//! calls move, read from the same before-and-after images of a call as the counters.
//! `docs/events.md` is the contract this implements.
//!
//! A call's events are `Call Placed` and `Call Answered` for each attempt, then one
//! `Call Ended` when it reaches a terminal status; a campaign's last is `Campaign Completed`.
//! Each call event carries a `sequence` computed from the attempt and the kind of event, so
//! the same change always yields the same number: a receiver de-duplicates on
//! (`call_id`, `sequence`) and orders a call's events by `sequence`. Attempt `a` is placed as
//! `3a - 1` and answered as `3a`; the call ends as `3a + 1` with `a` its last attempt. The
//! numbers grow with every event of a call but skip (an unanswered attempt leaves one out).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::counters::{CallFacts, CampaignCounters};
use crate::ids::CampaignId;
use crate::ports::StoreError;
use crate::time::Timestamp;

/// The `source` of every event outdial publishes.
pub const SOURCE: &str = "outdial";

/// The script outcome of a callee who pressed the opt-out key.
pub const OPTED_OUT: &str = "opted_out";

/// An event's `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    CallPlaced,
    CallAnswered,
    CallEnded,
    CampaignCompleted,
}

impl Kind {
    pub const ALL: [Self; 4] = [
        Self::CallPlaced,
        Self::CallAnswered,
        Self::CallEnded,
        Self::CampaignCompleted,
    ];

    /// The `detail-type` as published.
    #[must_use]
    pub const fn detail_type(self) -> &'static str {
        match self {
            Self::CallPlaced => "Call Placed",
            Self::CallAnswered => "Call Answered",
            Self::CallEnded => "Call Ended",
            Self::CampaignCompleted => "Campaign Completed",
        }
    }

    /// The kind of a `detail-type`.
    #[must_use]
    pub fn parse(detail_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.detail_type() == detail_type)
    }
}

/// One event to publish: its `detail-type`, its `detail` as JSON text, and when it happened
/// (the event's `time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub kind: Kind,
    pub detail: String,
    pub time: Timestamp,
}

/// `PutEvents` takes at most this many entries per request.
pub const MAX_ENTRIES: usize = 10;

/// How [`Publisher::publish`] went for each event, in the order given: `None` when the bus
/// accepted it, the bus's error code and message when it did not.
pub type Accepted = Vec<Option<String>>;

/// Where outcome events go: an EventBridge bus, through `PutEvents`.
pub trait Publisher: Send + Sync + std::fmt::Debug {
    /// Puts `events` (at most [`MAX_ENTRIES`]) on the bus in one request.
    ///
    /// # Errors
    /// When the request as a whole failed (none of them may have been accepted); a refused
    /// entry is not an error but its entry in [`Accepted`].
    fn publish<'a>(
        &'a self,
        events: &'a [Outbound],
    ) -> Pin<Box<dyn Future<Output = Result<Accepted, StoreError>> + Send + 'a>>;
}

/// The `detail` of a call event. Fields that do not apply yet are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallDetail {
    pub call_id: String,
    pub campaign_id: String,
    /// The contact's own reference, when the contact list gave one.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Grows with each event of the call: see the module's documentation.
    pub sequence: u64,
    /// The number called (E.164).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The caller ID the attempt was dialed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The attempt this event is of (for `Call Ended`, the last one).
    pub attempt: u32,
    /// The call's status after the change.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// `Call Ended` only: what the call came to.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

/// What a `Call Ended` event adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ended {
    /// Attempts dialed (0 for a call that ended without a dial).
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Why the call ended without a dial (`do-not-call`, `cap`, ...), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_outcome: Option<String>,
    /// Keys the callee entered at the script's questions, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digits: Vec<String>,
    /// Answering-machine detection's verdict, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    /// The callee pressed the opt-out key (and is now on the do-not-call list).
    pub opted_out: bool,
    /// The SIP response code of the last attempt's end, as the service reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<String>,
    /// From dial to answer of the last attempt, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_ms: Option<u64>,
    /// From answer to end of the last attempt, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talk_ms: Option<u64>,
}

/// The `detail` of `Campaign Completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignDetail {
    pub campaign_id: String,
    pub completed_at: String,
    pub contacts: i64,
    /// Calls by final status.
    pub statuses: BTreeMap<&'static str, i64>,
    /// Calls by script outcome.
    pub script_outcomes: BTreeMap<String, i64>,
    /// Calls by answering-machine verdict, for campaigns that listened.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<String, i64>,
    /// Attempts placed and answered.
    pub placed: i64,
    pub answered: i64,
}

/// The `sequence` of a call event of `kind` in attempt `attempt` (for `Call Ended`, the
/// call's last attempt).
#[must_use]
pub fn sequence(kind: Kind, attempt: u32) -> u64 {
    let base = 3 * u64::from(attempt);
    match kind {
        Kind::CallPlaced => base.saturating_sub(1),
        Kind::CallAnswered => base,
        Kind::CallEnded | Kind::CampaignCompleted => base + 1,
    }
}

/// The events one change of a call implies, in the order they happened: a call inserted
/// already ended (skipped at intake) has only `Call Ended`; a change may place, answer and
/// end an attempt at once when the stream coalesced writes.
#[must_use]
pub fn call_events(old: Option<&CallFacts>, new: &CallFacts) -> Vec<Outbound> {
    let mut out = Vec::new();
    let attempt = new.attempt.get();
    let placed = new
        .dialed_at
        .filter(|at| old.is_none_or(|o| o.dialed_at != Some(*at)));
    let answered = new
        .answered_at
        .filter(|at| old.is_none_or(|o| o.answered_at != Some(*at)));
    let ended = new.status.is_terminal() && old.is_none_or(|o| !o.status.is_terminal());
    if let Some(at) = placed {
        out.push(call_event(Kind::CallPlaced, new, at, None));
    }
    if let Some(at) = answered {
        out.push(call_event(Kind::CallAnswered, new, at, None));
    }
    if ended {
        let verdict = new.verdict.map(crate::machine::Verdict::as_str);
        // An answer of the last attempt: one from before its dial belongs to an earlier one.
        let answered_at = new
            .answered_at
            .filter(|a| new.dialed_at.is_some_and(|d| *a >= d));
        let ring_ms = new.dialed_at.zip(answered_at).map(|(d, a)| millis(a, d));
        let talk_ms = answered_at.zip(new.ended_at).map(|(a, e)| millis(e, a));
        let ended = Ended {
            attempts: if new.dialed_at.is_some() { attempt } else { 0 },
            ended_at: new.ended_at.map(Timestamp::rfc3339),
            reason: new.reason.clone().filter(|_| new.dialed_at.is_none()),
            script_outcome: new.script_outcome.clone(),
            digits: new.digits.clone(),
            verdict,
            opted_out: new.script_outcome.as_deref() == Some(OPTED_OUT),
            sip_code: new.sip_code.clone(),
            ring_ms,
            talk_ms,
        };
        let at = new.ended_at.unwrap_or(new.updated_at);
        out.push(call_event(Kind::CallEnded, new, at, Some(ended)));
    }
    out
}

fn millis(later: Timestamp, earlier: Timestamp) -> u64 {
    u64::try_from(later.since(earlier).as_millis()).unwrap_or(u64::MAX)
}

fn call_event(kind: Kind, call: &CallFacts, at: Timestamp, ended: Option<Ended>) -> Outbound {
    let detail = CallDetail {
        call_id: call.id.as_str().to_owned(),
        campaign_id: call.campaign_id.as_str().to_owned(),
        reference: call.reference.clone(),
        sequence: sequence(kind, call.attempt.get()),
        to: call.to.clone(),
        from: call.caller_id.clone(),
        attempt: call.attempt.get(),
        status: call.status.as_str(),
        placed_at: call.dialed_at.map(Timestamp::rfc3339),
        answered_at: call.answered_at.map(Timestamp::rfc3339),
        ended,
    };
    Outbound {
        kind,
        detail: serde_json::to_string(&detail).unwrap_or_default(),
        time: at,
    }
}

/// `Campaign Completed` for `campaign`, completed at `at` with `counters`.
#[must_use]
pub fn campaign_completed(
    campaign: &CampaignId,
    at: Timestamp,
    counters: &CampaignCounters,
) -> Outbound {
    let detail = CampaignDetail {
        campaign_id: campaign.as_str().to_owned(),
        completed_at: at.rfc3339(),
        contacts: counters.contacts,
        statuses: counters
            .by_status
            .iter()
            .filter(|(s, n)| s.is_terminal() && **n != 0)
            .map(|(s, n)| (s.as_str(), *n))
            .collect(),
        script_outcomes: counters
            .script_outcomes
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
        verdicts: counters
            .verdicts
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
        placed: counters.placed,
        answered: counters.answered,
    };
    Outbound {
        kind: Kind::CampaignCompleted,
        detail: serde_json::to_string(&detail).unwrap_or_default(),
        time: at,
    }
}

#[cfg(test)]
mod tests;
