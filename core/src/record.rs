//! What the store keeps: campaigns and their calls.
//!
//! These are the domain's records; how they are laid out in DynamoDB is the store's business
//! (`docs/table.md`). A call record stays small (well under 2 KB) because every SMA event
//! rewrites it, and DynamoDB bills a write by the larger of the old and new item.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Attempt, CallId, CampaignId, E164, Sequence, TransactionId};
use crate::lifecycle::{CallState, CallStatus, EndRequest, Outcome};
use crate::machine::Verdict;
use crate::policy::{OnCap, Purpose, Reason};
use crate::retry::RetryPolicy;
use crate::script::Script;
use crate::time::Timestamp;
use crate::window::CallingWindow;

/// The most per-contact template variables a call may carry, and their total size: they
/// travel in the SMA's `ArgumentsMap` and `TransactionAttributes`, which are small.
pub const MAX_VARS: usize = 10;
pub const MAX_VARS_BYTES: usize = 1024;

/// A campaign's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignStatus {
    Active,
    Paused,
    Cancelled,
    Completed,
}

impl CampaignStatus {
    /// Every status, in the order of the campaign's lifecycle.
    pub const ALL: [Self; 4] = [Self::Active, Self::Paused, Self::Cancelled, Self::Completed];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Paused => "PAUSED",
            Self::Cancelled => "CANCELLED",
            Self::Completed => "COMPLETED",
        }
    }
}

/// How fast a campaign dials.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// New calls started per second.
    pub calls_per_second: f64,
    /// Live calls at most at any time.
    pub max_concurrent: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            calls_per_second: 1.0,
            max_concurrent: 10,
        }
    }
}

/// How long a call may stay in each live phase before the watchdog asks the SMA to end it.
/// The Voice API has no ring timeout of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// From the dial to an answer (no first event, or ringing too long).
    #[serde(default = "Limits::default_ring_timeout_s")]
    pub ring_timeout_s: u32,
    /// From the answer to the end of the call.
    #[serde(default = "Limits::default_max_call_s")]
    pub max_call_s: u32,
}

impl Limits {
    const fn default_ring_timeout_s() -> u32 {
        60
    }
    const fn default_max_call_s() -> u32 {
        1800
    }

    #[must_use]
    pub fn ring_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.ring_timeout_s))
    }

    #[must_use]
    pub fn max_call(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.max_call_s))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ring_timeout_s: Self::default_ring_timeout_s(),
            max_call_s: Self::default_max_call_s(),
        }
    }
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    /// The number calls come from; it must be in the account's Chime SDK inventory.
    pub from: E164,
    pub status: CampaignStatus,
    pub retry: RetryPolicy,
    pub pacing: Pacing,
    /// What the callee hears once they answer.
    pub script: Script,
    /// Watchdog deadlines.
    pub limits: Limits,
    /// When contacts may be called, in their time zone; `None` means at any time.
    pub window: Option<CallingWindow>,
    /// The ISO 3166 country in which numbers written without their country code are read:
    /// the campaign's contacts, and those appended or added to it later unless they name
    /// another.
    pub default_region: String,
    pub created_at: Timestamp,
    /// Contacts written with the campaign.
    pub contacts: u64,
    /// What the calls are for: which contact caps count them, whether contacts need
    /// consent, whether the legal calling hours apply.
    #[serde(default)]
    pub purpose: Purpose,
    /// What becomes of a call a contact cap stops.
    #[serde(default)]
    pub on_cap: OnCap,
    /// The pool of caller IDs each call is dialed from, chosen per dial; `None`: every call
    /// comes from `from`. With a pool, `from` is the number the campaign was started with
    /// (one of the pool's), and each call records the number its attempt was dialed from.
    #[serde(default)]
    pub caller_pool: Option<PoolRef>,
}

/// A campaign's pool of caller IDs (`"from": {"pool": "NAME", "local_presence": true}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolRef {
    pub pool: String,
    /// Prefer numbers presenting the callee's area code, then country.
    #[serde(default)]
    pub local_presence: bool,
}

/// One contact to call, as the API accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCall {
    pub id: CallId,
    pub to: E164,
    /// Template variables for the script (`{{name}}`), at most [`MAX_VARS`] of them.
    pub vars: BTreeMap<String, String>,
    /// When the first attempt is due.
    pub due_at: Timestamp,
    /// The contact's IANA time zone, when the contact list gave one; otherwise the calling
    /// window derives it from the number or uses the campaign's.
    pub tz: Option<String>,
    /// The contact's consent to be called, when the contact list gave it.
    #[serde(default)]
    pub consent: Option<Consent>,
    /// The contact's own reference in the caller's systems (a patient or account number),
    /// when the contact list gave one: it travels with the call into every view of it.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A contact's consent to be called, as the contact list recorded it: the evidence a
/// telemarketing call needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// When it was given.
    pub at: Timestamp,
    /// Where it was given (a form, a recording, a signed paper), as the list says; at most
    /// [`MAX_CONSENT_SOURCE`] characters.
    pub source: String,
}

/// The longest consent source kept.
pub const MAX_CONSENT_SOURCE: usize = 200;
/// The longest contact reference ([`NewCall::reference`]), in characters.
pub const MAX_REF: usize = 128;

/// A call as stored: the contact, where it stands, and what the SMA last told us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: CallId,
    pub campaign_id: CampaignId,
    pub to: E164,
    pub from: E164,
    pub vars: BTreeMap<String, String>,
    /// The contact's IANA time zone, when the contact list gave one.
    pub tz: Option<String>,
    /// The contact's consent, as the contact list gave it.
    #[serde(default)]
    pub consent: Option<Consent>,
    /// The contact's own reference, as the contact list gave it.
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    /// Why the call is held (while it waits) or why it ended without a dial (`CANCELLED`).
    #[serde(default)]
    pub reason: Option<Reason>,
    pub status: CallStatus,
    pub attempt: Attempt,
    /// The attempt and `Sequence` of the last SMA event applied: a repeat of exactly this
    /// event is a duplicate, answered with `last_response`.
    pub last_event: Option<AppliedEvent>,
    pub answered: bool,
    pub end_request: Option<EndRequest>,
    pub transaction_id: Option<TransactionId>,
    /// The last attempt the Voice API confirmed placing (`CreateSipMediaApplicationCall`
    /// answered with `transaction_id`), recorded by the dispatcher as soon as it has the
    /// answer, before or after the SMA's first event.
    pub placed_attempt: Option<Attempt>,
    pub outcome: Option<Outcome>,
    /// The raw `SipResponseCode` of the last `HANGUP`, as received.
    pub sip_code: Option<String>,
    /// What the call script concluded (`confirmed`, `declined`, `no_input`, ...).
    pub script_outcome: Option<String>,
    /// The last error an SMA event reported (`ErrorType: ErrorMessage`).
    pub last_error: Option<String>,
    /// Who answered, by answering-machine detection, when the script runs it.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// The greeting length the verdict was judged from, in milliseconds.
    #[serde(default)]
    pub greeting_ms: Option<u32>,
    /// The keys the callee entered at the script's questions, in order.
    #[serde(default)]
    pub digits: Vec<String>,
    /// When something is next due for this call (a dial, a retry, a watchdog).
    pub due_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// When the current attempt was claimed for its dial.
    #[serde(default)]
    pub dialed_at: Option<Timestamp>,
}

/// The last SMA event applied to a call, and what we answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedEvent {
    pub attempt: Attempt,
    pub seq: Sequence,
    /// The wire event type (`CALL_ANSWERED`, ...).
    pub event_type: String,
    /// The action-list response, serialized exactly as it was sent.
    pub response: String,
}

#[cfg(test)]
impl CallRecord {
    /// A call of nothing in particular in `status` and `attempt`, never placed: what the
    /// crate's tests start from.
    pub(crate) fn sample(status: CallStatus, attempt: Attempt) -> Self {
        Self {
            id: CallId::random(),
            campaign_id: CampaignId::random(),
            to: E164::parse("+15555550100").unwrap_or_else(|_| unreachable!()),
            from: E164::parse("+15555550199").unwrap_or_else(|_| unreachable!()),
            vars: BTreeMap::new(),
            tz: None,
            consent: None,
            reference: None,
            reason: None,
            status,
            attempt,
            last_event: None,
            answered: false,
            end_request: None,
            transaction_id: None,
            placed_attempt: None,
            outcome: None,
            sip_code: None,
            script_outcome: None,
            last_error: None,
            verdict: None,
            greeting_ms: None,
            digits: Vec::new(),
            due_at: None,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
            answered_at: None,
            ended_at: None,
            dialed_at: None,
        }
    }
}

impl CallRecord {
    /// The `TransactionId` of the current attempt, once it is known to have been placed (the
    /// Voice API's answer or an SMA event of this attempt); `None` while the attempt's dial
    /// is unresolved, when `transaction_id` can still be the previous attempt's.
    #[must_use]
    pub fn current_transaction(&self) -> Option<&TransactionId> {
        self.transaction_of(self.attempt)
    }

    /// The `TransactionId` of attempt `attempt`, once the record knows it: the Voice API's
    /// answer for that attempt was recorded, or an SMA event of it was applied.
    #[must_use]
    pub fn transaction_of(&self, attempt: Attempt) -> Option<&TransactionId> {
        let placed = self.placed_attempt == Some(attempt)
            || self
                .last_event
                .as_ref()
                .is_some_and(|e| e.attempt == attempt);
        self.transaction_id.as_ref().filter(|_| placed)
    }

    /// The facts the lifecycle transition needs.
    #[must_use]
    pub fn state(&self) -> CallState {
        CallState {
            status: self.status,
            attempt: self.attempt,
            last_seq: self
                .last_event
                .as_ref()
                .filter(|e| e.attempt == self.attempt)
                .map(|e| e.seq),
            answered: self.answered,
            end_request: self.end_request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attempt: u32) -> CallRecord {
        let mut r = CallRecord::sample(
            CallStatus::Dialing,
            Attempt::new(attempt).unwrap_or(Attempt::FIRST),
        );
        r.transaction_id = TransactionId::parse("txn-of-attempt-1").ok();
        r.placed_attempt = Some(Attempt::FIRST);
        r
    }

    #[test]
    fn the_current_transaction_is_only_one_placed_in_this_attempt() {
        let first = record(1);
        assert_eq!(
            first.current_transaction().map(TransactionId::as_str),
            Some("txn-of-attempt-1")
        );
        // The second attempt is being dialed: the first's transaction ended long ago.
        let mut second = record(2);
        assert_eq!(second.current_transaction(), None);
        // Placed, by the Voice API's answer or by the SMA's first event.
        second.placed_attempt = Some(second.attempt);
        assert!(second.current_transaction().is_some());
        second.placed_attempt = Some(Attempt::FIRST);
        second.last_event = Some(AppliedEvent {
            attempt: second.attempt,
            seq: Sequence::new(1),
            event_type: "NEW_OUTBOUND_CALL".into(),
            response: "{}".into(),
        });
        assert!(second.current_transaction().is_some());
    }
}
