//! What the API answers, as JSON. These shapes are the public contract `docs/openapi.json`
//! describes; records are turned into them here rather than serialized as stored, so the
//! table can change without the API changing.

use std::collections::BTreeMap;
use std::time::Duration;

use outdial_core::admin::CampaignOverview;
use outdial_core::lifecycle::CallStatus;
use outdial_core::machine::Verdict;
use outdial_core::numbers::{Health, Member, NumberCaps};
use outdial_core::policy::{Cap, DncEntry, DncSource, OnCap, Policy, Purpose};
use outdial_core::ports::HistoryEntry;
use outdial_core::record::{CallRecord, Consent, Limits, Pacing, PoolRef};
use outdial_core::retry::RetryPolicy;
use outdial_core::script::Script;
use outdial_core::time::Timestamp;
use outdial_core::window::CallingWindow;
use serde::Serialize;

use crate::contacts::Checked;
use crate::errors::Rejected;

/// An instant as RFC 3339 (`2026-11-25T06:08:52.123Z`).
pub fn time(t: Timestamp) -> String {
    t.rfc3339()
}

/// `202` to `POST /campaigns` and `POST /campaigns/{id}/contacts`.
#[derive(Debug, Serialize)]
pub struct Accepted<'a> {
    pub campaign_id: &'a str,
    pub accepted: usize,
    pub rejected_count: usize,
    pub rejected: &'a [Rejected],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rejected_truncated: bool,
}

impl<'a> Accepted<'a> {
    /// The answer for `accepted` contacts and the rejected rows of `checked`.
    pub fn new(campaign_id: &'a str, accepted: usize, checked: &'a Checked) -> Self {
        let (rejected, truncated) = checked.listed();
        Self {
            campaign_id,
            accepted,
            rejected_count: checked.rejected.len(),
            rejected,
            rejected_truncated: truncated,
        }
    }
}

/// `202` to a status change.
#[derive(Debug, Serialize)]
pub struct StatusChanged<'a> {
    pub campaign_id: &'a str,
    pub status: &'static str,
}

/// `202` to `POST /calls`.
#[derive(Debug, Serialize)]
pub struct CallAccepted<'a> {
    pub call_id: &'a str,
    pub campaign_id: &'a str,
    pub status: &'static str,
    pub due_at: String,
}

/// `202` to `POST /calls/{id}/hangup`.
#[derive(Debug, Serialize)]
pub struct HangupAccepted<'a> {
    pub call_id: &'a str,
    /// `CANCELLED` for a call that had not been dialed; the live status for one the SMA is
    /// now asked to end (it becomes `CANCELLED` when its `HANGUP` arrives).
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Spec<'a> {
    pub retry: &'a RetryPolicy,
    pub pacing: &'a Pacing,
    pub limits: &'a Limits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<&'a CallingWindow>,
    pub default_region: &'a str,
    pub purpose: Purpose,
    pub on_cap: OnCap,
    pub script: &'a Script,
}

/// A campaign's counters, every status and outcome present (zero when none).
#[derive(Debug, Serialize)]
pub struct Counts<'a> {
    pub live: i64,
    pub by_status: BTreeMap<&'static str, i64>,
    pub placed: i64,
    pub answered: i64,
    pub outcomes: BTreeMap<&'static str, i64>,
    pub script_outcomes: &'a BTreeMap<String, i64>,
    /// Calls ended without a dial, by reason code (`cap`, `do-not-call`, ...).
    pub skipped: BTreeMap<String, i64>,
    /// Calls waiting now with a reason (`legal-hours`, `window`, ...), by reason code.
    pub held: BTreeMap<String, i64>,
    /// Calls by their answering-machine detection's verdict now (`person`, `machine`,
    /// `undecided`); calls never listened to are in none.
    pub verdicts: BTreeMap<String, i64>,
    pub talk_ms: i64,
    pub answer_wait_ms: i64,
}

/// Counters by key (a reason code, a verdict), zeros (a held call since released, a call
/// no longer undecided) left out.
fn non_zero(counters: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    counters
        .iter()
        .filter(|(_, n)| **n != 0)
        .map(|(code, n)| (code.clone(), *n))
        .collect()
}

/// `GET /campaigns/{id}`.
#[derive(Debug, Serialize)]
pub struct Campaign<'a> {
    pub campaign_id: &'a str,
    pub name: &'a str,
    /// The number shown for the campaign: its one number, or for a pool campaign the pool's
    /// lowest healthy number when it was created (each call records the number it was
    /// dialed from).
    pub from: &'a str,
    /// The caller-ID pool the campaign dials from, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_pool: Option<&'a PoolRef>,
    pub status: &'static str,
    pub created_at: String,
    pub contacts: i64,
    /// Calls that reached a terminal status, as a share of contacts (0 to 1).
    pub progress: f64,
    pub counts: Counts<'a>,
    pub spec: Spec<'a>,
}

impl<'a> Campaign<'a> {
    pub fn new(o: &'a CampaignOverview) -> Self {
        let c = &o.campaign;
        let k = &o.counters;
        Self {
            campaign_id: c.id.as_str(),
            name: &c.name,
            from: c.from.as_str(),
            caller_pool: c.caller_pool.as_ref(),
            status: c.status.as_str(),
            created_at: time(c.created_at),
            contacts: k.contacts,
            progress: (o.progress() * 10_000.0).round() / 10_000.0,
            counts: Counts {
                live: k.live,
                by_status: CallStatus::ALL
                    .into_iter()
                    .map(|s| (s.as_str(), k.status(s)))
                    .collect(),
                placed: k.placed,
                answered: k.answered,
                outcomes: CallStatus::ALL
                    .into_iter()
                    .filter(|s| s.is_terminal())
                    .map(|s| (s.as_str(), k.outcome(s)))
                    .collect(),
                script_outcomes: &k.script_outcomes,
                skipped: non_zero(&k.skipped),
                held: non_zero(&k.held),
                verdicts: non_zero(&k.verdicts),
                talk_ms: k.talk_ms,
                answer_wait_ms: k.answer_wait_ms,
            },
            spec: Spec {
                retry: &c.retry,
                pacing: &c.pacing,
                limits: &c.limits,
                window: c.window.as_ref(),
                default_region: &c.default_region,
                purpose: c.purpose,
                on_cap: c.on_cap,
                script: &c.script,
            },
        }
    }
}

/// A call in a listing and in `GET /calls/{id}`. The number is shown in full: the caller
/// owns it (logs never show it).
#[derive(Debug, Serialize)]
pub struct Call<'a> {
    pub call_id: &'a str,
    pub campaign_id: &'a str,
    pub to: &'a str,
    pub from: &'a str,
    pub status: &'static str,
    pub attempt: u32,
    pub answered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<outdial_core::lifecycle::Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_outcome: Option<&'a str>,
    /// The keys entered at the script's questions, one string per answer in order; absent
    /// until the first answer.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub digits: &'a [String],
    /// Who answered, by answering-machine detection: `undecided` while it listens (and for
    /// a call that ended, or whose listening failed, before it judged), then `person` or `machine`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    /// The greeting length the verdict was judged from, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<&'a str>,
    /// The contact's own reference, as its contact list gave it.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<&'a str>,
    pub vars: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tz: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentView<'a>>,
    /// Why the call is held or ended without a dial (a `Reason` code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl<'a> Call<'a> {
    pub fn new(r: &'a CallRecord) -> Self {
        Self {
            call_id: r.id.as_str(),
            campaign_id: r.campaign_id.as_str(),
            to: r.to.as_str(),
            from: r.from.as_str(),
            status: r.status.as_str(),
            attempt: r.attempt.get(),
            answered: r.answered,
            outcome: r.outcome,
            sip_code: r.sip_code.as_deref(),
            script_outcome: r.script_outcome.as_deref(),
            digits: &r.digits,
            verdict: r.verdict.map(Verdict::as_str),
            greeting_ms: r.greeting_ms,
            last_error: r.last_error.as_deref(),
            transaction_id: r.transaction_id.as_ref().map(|t| t.as_str()),
            vars: &r.vars,
            reference: r.reference.as_deref(),
            tz: r.tz.as_deref(),
            consent: r.consent.as_ref().map(ConsentView::new),
            reason: r.reason.map(|reason| reason.code()),
            due_at: r.due_at.map(time),
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
            answered_at: r.answered_at.map(time),
            ended_at: r.ended_at.map(time),
        }
    }
}

/// A contact's consent, as its list gave it.
#[derive(Debug, Serialize)]
pub struct ConsentView<'a> {
    pub at: String,
    pub source: &'a str,
}

impl<'a> ConsentView<'a> {
    pub fn new(c: &'a Consent) -> Self {
        Self {
            at: time(c.at),
            source: &c.source,
        }
    }
}

/// One page of `GET /campaigns/{id}/calls`.
#[derive(Debug, Serialize)]
pub struct CallPage<'a> {
    pub calls: Vec<Call<'a>>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub attempt: u32,
    pub seq: u64,
    pub event_type: &'a str,
    pub status: &'static str,
    pub at: String,
    /// The `Type` of each action outdial answered the event with, in order; empty when it
    /// answered with none.
    pub actions: Vec<&'a str>,
    /// What mattered in those actions: spoken text, audio played, a hang-up's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// The answers the callee entered with this event.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub digits: &'a [String],
    /// The SIP code this event reported (a `HANGUP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<&'a str>,
    /// The error this event reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<&'a str>,
}

/// `GET /calls/{id}`: the call and its SMA events, oldest first.
#[derive(Debug, Serialize)]
pub struct CallWithHistory<'a> {
    #[serde(flatten)]
    pub call: Call<'a>,
    pub history: Vec<Event<'a>>,
}

impl<'a> CallWithHistory<'a> {
    pub fn new(r: &'a CallRecord, history: &'a [HistoryEntry]) -> Self {
        Self {
            call: Call::new(r),
            history: history
                .iter()
                .map(|h| Event {
                    attempt: h.attempt.get(),
                    seq: h.seq.get(),
                    event_type: &h.event_type,
                    status: h.status.as_str(),
                    at: time(h.at),
                    actions: h.actions.iter().map(String::as_str).collect(),
                    detail: h.detail.as_deref(),
                    digits: &h.digits,
                    sip_code: h.sip_code.as_deref(),
                    last_error: h.last_error.as_deref(),
                })
                .collect(),
        }
    }
}

/// `GET /dnc/{e164}`.
#[derive(Debug, Serialize)]
pub struct DoNotCall<'a> {
    pub e164: &'a str,
    pub added_at: String,
    /// `api` or `opt-out`.
    pub source: &'static str,
    /// The call during which the callee opted out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<&'a str>,
}

impl<'a> DoNotCall<'a> {
    pub fn new(entry: &'a DncEntry) -> Self {
        Self {
            e164: entry.e164.as_str(),
            added_at: time(entry.added_at),
            source: entry.source.code(),
            call_id: match &entry.source {
                DncSource::Api => None,
                DncSource::OptOut { call_id } => Some(call_id.as_str()),
            },
        }
    }
}

/// `GET /policy` and `PUT /policy`: the policy in its wire form, and when it was set.
#[derive(Debug, Serialize)]
pub struct PolicyView<'a> {
    pub caps: &'a [Cap],
    pub destination_caps: &'a [outdial_core::policy::DestinationCap],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_hours: Option<&'a BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl<'a> PolicyView<'a> {
    pub fn new(policy: &'a Policy, updated_at: Option<Timestamp>) -> Self {
        Self {
            caps: policy.caps(),
            destination_caps: policy.destination_caps(),
            default_hours: policy.default_hours(),
            updated_at: updated_at.map(time),
        }
    }
}

/// Whether a caller ID may be chosen, as `{"state": "healthy"}` or `{"state": "quarantined",
/// "reason": ..., "at": ...}`.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HealthView<'a> {
    Healthy,
    Quarantined { reason: &'a str, at: String },
}

impl<'a> HealthView<'a> {
    pub fn new(health: &'a Health) -> Self {
        match health {
            Health::Healthy => Self::Healthy,
            Health::Quarantined { reason, at } => Self::Quarantined {
                reason,
                at: time(*at),
            },
        }
    }
}

/// The calls a caller ID placed in the last minute, the last hour and this UTC day.
#[derive(Debug, Serialize)]
pub struct UsageView {
    pub minute: u32,
    pub hour: u32,
    pub day: u32,
}

/// A caller ID, in `GET /numbers` and the answers to `PUT /numbers/{e164}` and
/// `POST /numbers/{e164}/restore`; its usage as of `now`.
#[derive(Debug, Serialize)]
pub struct NumberView<'a> {
    pub e164: &'a str,
    pub pool: &'a str,
    pub caps: &'a NumberCaps,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_region: Option<&'a str>,
    pub health: HealthView<'a>,
    pub usage: UsageView,
}

impl<'a> NumberView<'a> {
    pub fn new(member: &'a Member, now: Timestamp) -> Self {
        let n = &member.number;
        Self {
            e164: n.e164.as_str(),
            pool: &n.pool,
            caps: &n.caps,
            display_region: n.display_region.as_deref(),
            health: HealthView::new(&n.health),
            usage: UsageView {
                minute: member.usage.within(Duration::from_secs(60), now),
                hour: member.usage.within(Duration::from_secs(3600), now),
                day: member.usage.today(now),
            },
        }
    }
}

/// `GET /numbers`: the caller IDs, by number.
#[derive(Debug, Serialize)]
pub struct NumberList<'a> {
    pub numbers: Vec<NumberView<'a>>,
}
