//! A campaign's counters, and how one change of a call item moves them.
//!
//! The stream handler sees every write to a call item as a pair of images (before and after)
//! and turns the pair into a [`CampaignCounters`] delta with [`delta`]. A delta depends on
//! nothing but the pair, so deltas add up: a batch of a hundred changes becomes one sum per
//! campaign, written in one `UpdateItem`. What keeps the sum exact when the stream delivers a
//! change twice is the handler's watermark per stream shard ([`CounterStore::apply`]); the
//! rules of each counter are here, pure, and the analytics contract (`docs/analytics.md`)
//! states them for consumers who compute their own.
//!
//! The rules, for a change from `old` to `new` (`None` before an insert or after a removal):
//! - `by_status`: calls in each status now: +1 for the new status, -1 for the old one. A
//!   removal (the item's TTL, 90 days on) changes nothing: counters describe the campaign's
//!   history, not what the table still holds.
//! - `live`: concurrency slots held. The dispatcher's claim adds one in the same transaction
//!   that sets `slot` on the call; the change that removes `slot` gives it back here.
//! - `placed`: attempts that reached the SMA: the change that applied the first SMA event of
//!   an attempt (`seq_attempt` appears or grows).
//! - `answered`: attempts answered (`answered` becomes true within an attempt); with it,
//!   `answer_wait_ms` adds `answered_at - dialed_at` when both are known.
//! - `outcomes`: attempts ended, by how. An attempt ends when a live call (`DIALING`,
//!   `RINGING`, `ANSWERED`) stops being live, except when a dial certainly never placed (a
//!   throttled one) is given back: the call goes back to waiting (`QUEUED`, or `RETRY_WAIT`
//!   for a later attempt) as the same attempt. The key is the terminal status, or for a
//!   retried attempt (`RETRY_WAIT` with the next attempt number) the `outcome` it ended
//!   with, `LOST` when it has none (a watchdog gave the attempt up, its end unknown). With it,
//!   `talk_ms` adds `ended_at - answered_at` for an answered attempt.
//! - `script_outcomes`: calls by what their script concluded, the latest conclusion within an
//!   attempt counting (a change from `confirmed` to `transferred` moves one call from one to
//!   the other).
//! - `skipped`: calls ended without a dial, by their reason (`crate::policy::Reason`): the
//!   change that makes a call `CANCELLED` with a `reason`.
//! - `held`: calls now held, by their reason: a waiting call (`QUEUED`, `RETRY_WAIT`) with
//!   a `reason` counts under it; +1 for the new image's, -1 for the old image's.
//! - `verdicts`: calls by their answering-machine detection's verdict now
//!   ([`Verdict::as_str`]: `undecided`, `person`, `machine`): +1 for the new image's, -1 for
//!   the old image's when they differ, so a call judged while listening moves from
//!   `undecided` to its verdict, and one hung up while listening stays `undecided`. A removal
//!   changes nothing, as for `by_status`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

use crate::ids::{Attempt, CallId, CampaignId, Sequence};
use crate::lifecycle::{CallStatus, Outcome};
use crate::machine::Verdict;
use crate::ports::{HistoryEntry, StoreError};
use crate::time::Timestamp;

/// A campaign's counters, or a change to them: the fields are signed so that a delta (with its
/// -1s) is the same type as the totals it is added to. Maps never hold zero entries, so two
/// counters that count the same are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignCounters {
    /// Calls written for the campaign (the API adds them; the stream handler never does).
    pub contacts: i64,
    /// Concurrency slots held: calls claimed for dialing that have not ended yet.
    pub live: i64,
    /// Calls currently in each status.
    pub by_status: BTreeMap<CallStatus, i64>,
    /// Attempts that reached the SMA.
    pub placed: i64,
    /// Attempts answered.
    pub answered: i64,
    /// Attempts ended, by the status they ended in (or, for a retried attempt, the status its
    /// outcome stands for).
    pub outcomes: BTreeMap<CallStatus, i64>,
    /// Calls by their script's outcome, keyed by [`script_key`].
    pub script_outcomes: BTreeMap<String, i64>,
    /// Calls ended without a dial, by their reason's code.
    #[serde(default)]
    pub skipped: BTreeMap<String, i64>,
    /// Calls now held (waiting with a reason), by their reason's code.
    #[serde(default)]
    pub held: BTreeMap<String, i64>,
    /// Calls by their answering-machine detection's verdict now, keyed by
    /// [`Verdict::as_str`]; calls never listened to are not counted.
    #[serde(default)]
    pub verdicts: BTreeMap<String, i64>,
    /// Talk time of answered attempts that ended, in milliseconds.
    pub talk_ms: i64,
    /// Time from dial to answer of answered attempts, in milliseconds.
    pub answer_wait_ms: i64,
}

impl CampaignCounters {
    /// Calls in `status`.
    #[must_use]
    pub fn status(&self, status: CallStatus) -> i64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Attempts that ended as `status`.
    #[must_use]
    pub fn outcome(&self, status: CallStatus) -> i64 {
        self.outcomes.get(&status).copied().unwrap_or(0)
    }

    /// Calls in a terminal status.
    #[must_use]
    pub fn terminal(&self) -> i64 {
        self.by_status
            .iter()
            .filter(|(status, _)| status.is_terminal())
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls holding a concurrency slot, as the dispatcher's cap counts them (never below 0).
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        u64::try_from(self.live).unwrap_or(0)
    }

    /// Every contact of the campaign has reached a terminal status.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.contacts > 0 && self.terminal() == self.contacts
    }

    /// Nothing counted (for a delta: the change moves no counter).
    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    fn bump<K: Ord>(map: &mut BTreeMap<K, i64>, key: K, by: i64) {
        let entry = map.entry(key).or_insert(0);
        *entry += by;
        if *entry == 0 {
            map.retain(|_, v| *v != 0);
        }
    }
}

impl AddAssign<&CampaignCounters> for CampaignCounters {
    fn add_assign(&mut self, other: &CampaignCounters) {
        self.contacts += other.contacts;
        self.live += other.live;
        self.placed += other.placed;
        self.answered += other.answered;
        self.talk_ms += other.talk_ms;
        self.answer_wait_ms += other.answer_wait_ms;
        for (status, n) in &other.by_status {
            Self::bump(&mut self.by_status, *status, *n);
        }
        for (status, n) in &other.outcomes {
            Self::bump(&mut self.outcomes, *status, *n);
        }
        for (name, n) in &other.script_outcomes {
            Self::bump(&mut self.script_outcomes, name.clone(), *n);
        }
        for (name, n) in &other.skipped {
            Self::bump(&mut self.skipped, name.clone(), *n);
        }
        for (name, n) in &other.held {
            Self::bump(&mut self.held, name.clone(), *n);
        }
        for (name, n) in &other.verdicts {
            Self::bump(&mut self.verdicts, name.clone(), *n);
        }
    }
}

/// The SMA event last applied to a call, as its item records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEvent {
    /// `seq_attempt`.
    pub attempt: Attempt,
    /// `last_seq`.
    pub seq: Sequence,
    /// `last_type`.
    pub event_type: String,
    /// `last_response`: the action-list response sent for it, as sent (JSON text).
    pub response: Option<String>,
}

/// What the stream handler reads from one image of a call item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub id: CallId,
    pub campaign_id: CampaignId,
    pub status: CallStatus,
    pub attempt: Attempt,
    pub answered: bool,
    /// Whether the call holds one of its campaign's concurrency slots (`slot`).
    pub slot: bool,
    pub last_event: Option<LastEvent>,
    pub outcome: Option<Outcome>,
    pub script_outcome: Option<String>,
    /// `verdict`: who answered, by answering-machine detection, when it ran.
    pub verdict: Option<Verdict>,
    /// `reason`: why the call is held or was skipped, as stored.
    pub reason: Option<String>,
    pub dialed_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// The item's TTL (epoch seconds), which its event history shares.
    pub expires_at: Option<i64>,
    /// The caller ID the attempt was dialed from (`from`).
    pub from: Option<crate::ids::E164>,
    /// The SIP code of the attempt's end (`sip_code`), as received.
    pub sip_code: Option<String>,
    /// `to`: the number called, as stored.
    pub to: Option<String>,
    /// `ref`: the contact's own reference.
    pub reference: Option<String>,
    /// `from`: the caller ID of the attempt, from a pool or not.
    pub caller_id: Option<String>,
    /// `digits`: the keys the callee entered at the script's questions, in order.
    pub digits: Vec<String>,
    /// `last_error`: the last error an SMA event (or a watchdog) reported.
    pub last_error: Option<String>,
}

/// The counter name of a script outcome. Scripts allow 1 to 40 letters, digits, `_` and `-`
/// (`crate::script`), which this keeps as they are; anything else (an item written by hand)
/// has other characters replaced by `_` and is cut to 40, so every name stays a short,
/// plain attribute name.
#[must_use]
pub fn script_key(outcome: &str) -> String {
    let key: String = outcome
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() { "_".to_owned() } else { key }
}

/// How one change of a call item moves its campaign's counters (`None` before an insert and
/// after a removal). The rules are in the module documentation.
#[must_use]
pub fn delta(old: Option<&CallFacts>, new: Option<&CallFacts>) -> CampaignCounters {
    let mut d = CampaignCounters::default();
    let Some(new) = new else {
        // A removal is the TTL expiring the item: the history it counted stands. Only a slot
        // still held (a call that expired while live) is given back.
        if old.is_some_and(|o| o.slot) {
            d.live = -1;
        }
        return d;
    };
    match old {
        None => CampaignCounters::bump(&mut d.by_status, new.status, 1),
        Some(o) if o.status != new.status => {
            CampaignCounters::bump(&mut d.by_status, o.status, -1);
            CampaignCounters::bump(&mut d.by_status, new.status, 1);
        }
        Some(_) => {}
    }
    if old.is_some_and(|o| o.slot) && !new.slot {
        d.live = -1;
    }
    let event_attempt = |f: &CallFacts| f.last_event.as_ref().map(|e| e.attempt);
    if let Some(placed) = event_attempt(new) {
        if old
            .and_then(event_attempt)
            .is_none_or(|before| before < placed)
        {
            d.placed = 1;
        }
    }
    let same_attempt = old.is_some_and(|o| o.attempt == new.attempt);
    if new.answered && !(same_attempt && old.is_some_and(|o| o.answered)) {
        d.answered = 1;
        if let (Some(answered), Some(dialed)) = (new.answered_at, new.dialed_at) {
            d.answer_wait_ms = (answered.as_millis() - dialed.as_millis()).max(0);
        }
    }
    if let Some(o) = old {
        if let Some(ended_as) = attempt_end(o, new) {
            CampaignCounters::bump(&mut d.outcomes, ended_as, 1);
            if new.answered {
                if let (Some(answered), Some(ended)) = (new.answered_at, new.ended_at) {
                    d.talk_ms = (ended.as_millis() - answered.as_millis()).max(0);
                }
            }
        }
    }
    let old_script = old.and_then(|o| o.script_outcome.as_deref());
    if new.script_outcome.as_deref() != old_script {
        if let (Some(before), true) = (old_script, same_attempt) {
            CampaignCounters::bump(&mut d.script_outcomes, script_key(before), -1);
        }
        if let Some(now) = &new.script_outcome {
            CampaignCounters::bump(&mut d.script_outcomes, script_key(now), 1);
        }
    }
    if new.status == CallStatus::Cancelled && old.is_none_or(|o| o.status != CallStatus::Cancelled)
    {
        if let Some(reason) = &new.reason {
            CampaignCounters::bump(&mut d.skipped, script_key(reason), 1);
        }
    }
    let held = |f: &CallFacts| {
        matches!(f.status, CallStatus::Queued | CallStatus::RetryWait)
            .then(|| f.reason.as_deref())
            .flatten()
            .map(script_key)
    };
    let (before, after) = (old.and_then(held), held(new));
    if before != after {
        if let Some(before) = before {
            CampaignCounters::bump(&mut d.held, before, -1);
        }
        if let Some(after) = after {
            CampaignCounters::bump(&mut d.held, after, 1);
        }
    }
    let verdict_before = old.and_then(|o| o.verdict);
    if verdict_before != new.verdict {
        if let Some(before) = verdict_before {
            CampaignCounters::bump(&mut d.verdicts, before.as_str().to_owned(), -1);
        }
        if let Some(after) = new.verdict {
            CampaignCounters::bump(&mut d.verdicts, after.as_str().to_owned(), 1);
        }
    }
    d
}

/// The status an attempt ended as, when the change from `old` to `new` ends one.
fn attempt_end(old: &CallFacts, new: &CallFacts) -> Option<CallStatus> {
    if !old.status.is_live() || new.status.is_live() {
        return None;
    }
    if new.status.is_terminal() {
        return Some(new.status);
    }
    // Waiting again as the same attempt: a dial given back, certainly never placed (throttled,
    // or held back by a pause or a cancel).
    if new.attempt == old.attempt {
        return None;
    }
    // Waiting as the next attempt: this one ended as its outcome says. Without one, the
    // watchdog gave the attempt up because its end could not be known: counted as `LOST`,
    // as the call's last attempt would have ended.
    Some(new.outcome.map_or(CallStatus::Lost, Outcome::status))
}

/// How one change of a call item moves the health counters of the caller ID its attempt was
/// dialed from: the change that ends an attempt (as it counts in `outcomes`) counts it
/// against the call's `from`. `None` when the change ends no attempt, or the call has no
/// `from`.
#[must_use]
pub fn number_delta(
    old: Option<&CallFacts>,
    new: Option<&CallFacts>,
) -> Option<(crate::ids::E164, crate::numbers::HealthCounts)> {
    let (old, new) = (old?, new?);
    attempt_end(old, new)?;
    let from = new.from.clone()?;
    let talk_ms = match (new.answered, new.answered_at, new.ended_at) {
        (true, Some(answered), Some(ended)) => Some(ended.as_millis() - answered.as_millis()),
        _ => None,
    };
    let code = new
        .sip_code
        .as_deref()
        .and_then(|c| c.trim().parse::<u16>().ok());
    Some((
        from,
        crate::numbers::HealthCounts::of_attempt(new.answered, talk_ms, code),
    ))
}

/// The event-history item a change implies: one per SMA event applied (the change's new
/// `seq_attempt`/`last_seq` differ from the old ones). Besides the event, it keeps what the
/// call heard and did with it, bounded (every item is billed by its size):
/// - `actions` and `detail`: the action types of the response sent for the event and what
///   mattered in them ([`action_summary`]); none when the response is not JSON;
/// - `digits`: the answers the event added to the call's `digits` (at most
///   [`HISTORY_MAX_DIGITS`], each cut to [`HISTORY_DIGITS_MAX_BYTES`]);
/// - `sip_code`: the call's `sip_code` on a `HANGUP`, or when the event changed it (cut to
///   [`HISTORY_SIP_CODE_MAX_BYTES`]);
/// - `last_error`: the call's `last_error` on an `ACTION_FAILED` or
///   `INVALID_LAMBDA_RESPONSE`, or when the event changed it (cut to
///   [`HISTORY_ERROR_MAX_BYTES`]).
#[must_use]
pub fn history(old: Option<&CallFacts>, new: &CallFacts) -> Option<HistoryItem> {
    let event = new.last_event.as_ref()?;
    let before = old
        .and_then(|o| o.last_event.as_ref())
        .map(|e| (e.attempt, e.seq));
    if before == Some((event.attempt, event.seq)) {
        return None;
    }
    let summary = event
        .response
        .as_deref()
        .map(action_summary)
        .unwrap_or_default();
    let had = old.map_or(0, |o| o.digits.len());
    let digits = new
        .digits
        .get(had..)
        .unwrap_or_default()
        .iter()
        .take(HISTORY_MAX_DIGITS)
        .map(|d| cut(d, HISTORY_DIGITS_MAX_BYTES))
        .collect();
    let set_by_event = |now: Option<&String>, then: Option<&String>, kinds: &[&str]| {
        now.filter(|v| kinds.contains(&event.event_type.as_str()) || then != Some(*v))
            .cloned()
    };
    let sip_code = set_by_event(
        new.sip_code.as_ref(),
        old.and_then(|o| o.sip_code.as_ref()),
        &["HANGUP"],
    )
    .map(|c| cut(&c, HISTORY_SIP_CODE_MAX_BYTES));
    let last_error = set_by_event(
        new.last_error.as_ref(),
        old.and_then(|o| o.last_error.as_ref()),
        &["ACTION_FAILED", "INVALID_LAMBDA_RESPONSE"],
    )
    .map(|e| cut(&e, HISTORY_ERROR_MAX_BYTES));
    Some(HistoryItem {
        call_id: new.id.clone(),
        campaign_id: new.campaign_id.clone(),
        entry: HistoryEntry {
            attempt: event.attempt,
            seq: event.seq,
            event_type: event.event_type.clone(),
            status: new.status,
            at: new.updated_at,
            actions: summary.actions,
            detail: summary.detail,
            digits,
            sip_code,
            last_error,
        },
        expires_at: new.expires_at,
    })
}

/// Action types an event-history item keeps, at most: as many as a response may hold.
pub const HISTORY_MAX_ACTIONS: usize = crate::contract::MAX_ACTIONS;
/// Bytes of one action type kept (the longest the SMA knows has 27).
pub const HISTORY_ACTION_MAX_BYTES: usize = 32;
/// Bytes of an event-history item's `detail`, at most.
pub const DETAIL_MAX_BYTES: usize = 512;
/// Characters of one action's spoken text kept in `detail`, before the whole is cut to
/// [`DETAIL_MAX_BYTES`].
pub const DETAIL_TEXT_CHARS: usize = 200;
/// Answers an event-history item keeps in `digits`, at most (an event adds one).
pub const HISTORY_MAX_DIGITS: usize = 4;
/// Bytes of one answer kept in an event-history item's `digits`.
pub const HISTORY_DIGITS_MAX_BYTES: usize = 64;
/// Bytes of the `sip_code` kept in an event-history item.
pub const HISTORY_SIP_CODE_MAX_BYTES: usize = 32;
/// Bytes of the `last_error` kept in an event-history item (the call keeps up to 1,000
/// characters).
pub const HISTORY_ERROR_MAX_BYTES: usize = 256;

/// What an action-list response told the call, as an event-history item keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionSummary {
    /// Each action's `Type`, in order (at most [`HISTORY_MAX_ACTIONS`]).
    pub actions: Vec<String>,
    /// What mattered in them ([`action_summary`]), when any did.
    pub detail: Option<String>,
}

/// Reads a response as the call item keeps it (`last_response`, JSON text) for the event
/// history: the `Type` of each action in `Actions`, and a `detail` of what mattered in them,
/// one `Type value` part per action that has one, joined by `"; "`:
/// `Speak` and `SpeakAndGetDigits` their text (quoted, white space folded, cut to
/// [`DETAIL_TEXT_CHARS`] characters), `PlayAudio` and `PlayAudioAndGetDigits` the audio's
/// key, `Hangup` its `SipResponseCode`, `Pause` its duration, `SendDigits` its digits,
/// `CallAndBridge` its first endpoint's `Uri`. The whole is cut to [`DETAIL_MAX_BYTES`].
///
/// Never fails: text that is not a JSON object with an `Actions` array gives no actions,
/// and an action without a string `Type` is left out.
#[must_use]
pub fn action_summary(response: &str) -> ActionSummary {
    use serde_json::Value;
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(response) else {
        return ActionSummary::default();
    };
    let Some(Value::Array(list)) = root.get("Actions") else {
        return ActionSummary::default();
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut actions = Vec::new();
    let mut parts = Vec::new();
    for action in list {
        if actions.len() == HISTORY_MAX_ACTIONS {
            break;
        }
        let Some(kind) = action.get("Type").and_then(Value::as_str) else {
            continue;
        };
        let param = |pointer: &str| {
            action
                .get("Parameters")
                .and_then(|p| p.pointer(pointer))
                .and_then(scalar)
        };
        let what = match kind {
            "Speak" => param("/Text").map(|t| spoken(&t)),
            "SpeakAndGetDigits" => param("/SpeechParameters/Text").map(|t| spoken(&t)),
            "PlayAudio" | "PlayAudioAndGetDigits" => param("/AudioSource/Key"),
            "Hangup" => param("/SipResponseCode"),
            "Pause" => param("/DurationInMilliseconds").map(|ms| format!("{ms} ms")),
            "SendDigits" => param("/Digits"),
            "CallAndBridge" => param("/Endpoints/0/Uri"),
            _ => None,
        };
        let kind = cut(kind, HISTORY_ACTION_MAX_BYTES);
        if let Some(what) = what {
            parts.push(format!("{kind} {what}"));
        }
        actions.push(kind);
    }
    ActionSummary {
        actions,
        detail: (!parts.is_empty()).then(|| cut(&parts.join("; "), DETAIL_MAX_BYTES)),
    }
}

/// Spoken text as `detail` shows it: quoted, its white space folded to single spaces, at
/// most [`DETAIL_TEXT_CHARS`] characters of it.
fn spoken(text: &str) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = folded.chars();
    let kept: String = chars.by_ref().take(DETAIL_TEXT_CHARS).collect();
    let more = if chars.next().is_some() { "…" } else { "" };
    format!("\"{kept}{more}\"")
}

/// `text` in at most `max` bytes: cut at a character boundary, with `…` (3 bytes) at the end
/// when anything was cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One SMA event of a call's history, as the stream handler stores it for `GET /calls/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    pub call_id: CallId,
    pub campaign_id: CampaignId,
    pub entry: HistoryEntry,
    /// The call's TTL: its history expires with it.
    pub expires_at: Option<i64>,
}

/// Where a record stands in its stream shard: DynamoDB Streams' `SequenceNumber`, decimal
/// digits (21 to 40 of them). Positions compare as numbers; the padded form (40 digits) is
/// what a watermark stores, so that string order, which DynamoDB conditions compare, is
/// numeric order, and the form the stream gave is what `batchItemFailures` must name.
#[derive(Clone)]
pub struct StreamPosition {
    padded: String,
    given: String,
}

/// Why a string is not a stream sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stream sequence number is 1 to 40 decimal digits, got {0:?}")]
pub struct StreamPositionError(String);

impl StreamPosition {
    /// The width positions are padded to.
    pub const WIDTH: usize = 40;

    /// Parses a `SequenceNumber`, padded or not.
    ///
    /// # Errors
    /// [`StreamPositionError`] when it is empty, longer than 40 digits or not all digits.
    pub fn parse(raw: &str) -> Result<Self, StreamPositionError> {
        if raw.is_empty() || raw.len() > Self::WIDTH || !raw.bytes().all(|b| b.is_ascii_digit()) {
            let shown: String = raw.chars().take(48).collect();
            return Err(StreamPositionError(shown));
        }
        Ok(Self {
            padded: format!("{raw:0>40}"),
            given: raw.to_owned(),
        })
    }

    /// The padded form, as stored in a watermark.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.padded
    }

    /// The `SequenceNumber` exactly as the stream gave it (what `batchItemFailures` names).
    #[must_use]
    pub fn sequence_number(&self) -> &str {
        &self.given
    }
}

impl PartialEq for StreamPosition {
    fn eq(&self, other: &Self) -> bool {
        self.padded == other.padded
    }
}

impl Eq for StreamPosition {}

impl std::hash::Hash for StreamPosition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.padded.hash(state);
    }
}

impl PartialOrd for StreamPosition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StreamPosition {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.padded.cmp(&other.padded)
    }
}

impl fmt::Debug for StreamPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamPosition({})", self.given)
    }
}

impl fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

/// What [`CounterStore::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterWrite {
    /// The delta was added and the watermark moved; the counters as they now are.
    Applied(CampaignCounters),
    /// Nothing was written: the shard's watermark is at or past the first record offered (a
    /// re-delivery). The watermark and the counters as they are, from the same round trip.
    Behind {
        watermark: StreamPosition,
        counters: CampaignCounters,
    },
}

/// The records of one campaign in one batch: which shard, the first and last of them, and
/// when the newest was written (its `ApproximateCreationDateTime`, when the stream gave one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub shard: String,
    pub first: StreamPosition,
    pub last: StreamPosition,
    pub written_at: Option<Timestamp>,
}

/// How long after its last record a shard's watermark is kept. DynamoDB Streams keeps a
/// record 24 hours, so twice that after the newest record a watermark covers, none of them can
/// be delivered again and the watermark only takes room (on an item every claim writes).
pub const WATERMARK_RETENTION: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// What [`CounterStore::apply_number`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthWrite {
    /// The counts were added: the totals since the number's registration or restore, and
    /// whether it is healthy now.
    Applied {
        counts: crate::numbers::HealthCounts,
        healthy: bool,
    },
    /// A re-delivery: the shard's watermark is at or past the first record offered.
    Behind { watermark: StreamPosition },
    /// The number is not registered (a campaign's single `from`, or a retired number).
    Unregistered,
}

/// Where the stream handler keeps counters and the event history.
pub trait CounterStore: Send + Sync {
    /// Adds `delta` to the campaign's counters and sets its watermark for `span.shard` to
    /// `span.last`, in one conditional write that applies only when that watermark is absent
    /// or below `span.first` (the records of the span are new). Creates the counters when the
    /// campaign has none yet. It MAY then drop the watermarks of other shards whose newest
    /// record is more than [`WATERMARK_RETENTION`] older than `span.written_at`.
    ///
    /// # Errors
    /// A failed condition is not an error: it MUST be [`CounterWrite::Behind`] with the stored
    /// watermark. Transport and throttling errors as [`StoreError`]; on any error nothing was
    /// applied, or the write landed in full (a timeout), which the watermark then reveals.
    fn apply(
        &self,
        campaign: &CampaignId,
        span: &Span,
        delta: &CampaignCounters,
    ) -> impl Future<Output = Result<CounterWrite, StoreError>> + Send;

    /// Adds `delta` to the health counters of caller ID `number` and sets its watermark for
    /// `span.shard`, in one conditional write like [`Self::apply`]'s, only while the number
    /// is registered.
    ///
    /// # Errors
    /// Transport and throttling errors; a failed condition is [`HealthWrite::Behind`] or
    /// [`HealthWrite::Unregistered`].
    fn apply_number(
        &self,
        number: &crate::ids::E164,
        span: &Span,
        delta: &crate::numbers::HealthCounts,
    ) -> impl Future<Output = Result<HealthWrite, StoreError>> + Send;

    /// Quarantines caller ID `number` for `reason` when it is healthy; `Ok(false)` when it
    /// is not (quarantined already, or retired).
    ///
    /// # Errors
    /// Transport and throttling errors only.
    fn quarantine(
        &self,
        number: &crate::ids::E164,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks an `ACTIVE` campaign `COMPLETED` (with `completed_at = now`); `Ok(false)` when it
    /// is not active (paused, cancelled, completed already, or unknown).
    ///
    /// # Errors
    /// Transport and throttling errors only; a campaign in another status is `Ok(false)`.
    fn complete_campaign(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes event-history items. Writing one again MUST leave it as it was (the stream
    /// delivers a change more than once), so these are plain puts keyed by call, attempt and
    /// `Sequence`.
    ///
    /// # Errors
    /// When any item could not be written (after retrying what DynamoDB left unprocessed).
    fn record_history(
        &self,
        items: &[HistoryItem],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The campaign's counters watermark for stream shard `shard` (a consistent read), which
    /// also marks how far outcome events were published: `None` when it has none.
    ///
    /// # Errors
    /// Transport and throttling errors; a stored watermark that does not read.
    fn watermark(
        &self,
        campaign: &CampaignId,
        shard: &str,
    ) -> impl Future<Output = Result<Option<StreamPosition>, StoreError>> + Send;

    /// How the campaign's completion stands (a consistent read): `None` unless it is
    /// `COMPLETED`.
    ///
    /// # Errors
    /// Transport and throttling errors only.
    fn completion(
        &self,
        campaign: &CampaignId,
    ) -> impl Future<Output = Result<Option<Completion>, StoreError>> + Send;

    /// Records that the campaign's `Campaign Completed` event was published
    /// (`announced_at = now`; a campaign announced already keeps its first time).
    ///
    /// # Errors
    /// Transport and throttling errors only.
    fn mark_announced(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A completed campaign, as [`CounterStore::completion`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub completed_at: Timestamp,
    /// Whether its `Campaign Completed` event was published.
    pub announced: bool,
}

#[cfg(test)]
mod tests;
