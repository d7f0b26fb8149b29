//! The SMA Lambda: answers every PSTN audio event with an action list and keeps the call
//! record exact.
//!
//! One event, one DynamoDB request. The handler learns which call an event is about, and the
//! facts it needs about it, from the event itself: `NEW_OUTBOUND_CALL` carries the
//! `ArgumentsMap` the dialer sent (`call_id`, `campaign_id`, `attempt`, `vars`), and every
//! response sets them, with the call's state, as `TransactionAttributes`, which the SMA echoes
//! on every later event. From those it decides the transition and the response, then writes
//! both in one conditional `UpdateItem` ([`SmaStore::apply_event`]). When the record turns out
//! to be in another state (a `HANGUP` overtook another event, an operator changed it), the
//! handler decides again from the record the failed write returned and writes once more.
//!
//! Nothing from outside can make it fail: an unreadable event gets an empty answer and is
//! logged, an event for no known call is kept as an orphan and answered safely, and a store
//! failure still answers the callee (the record heals from the next event's attributes, and
//! the watchdog reconciles a call whose end was never written).

mod machine_run;
mod respond;
mod script_run;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outdial_core::contract::{
    ContractError, Event, EventType, MAX_SCHEMA_VERSION, ParticipantTag, Response, parse_event,
    validate_event,
};
use outdial_core::ids::{CampaignId, E164, Sequence, TransactionId};
use outdial_core::lifecycle::{Step, expected, transition};
use outdial_core::messages::{self, CallAttributes, MessageError};
use outdial_core::policy::{DncEntry, DncSource};
use outdial_core::ports::{Applied, EventWrite, SmaStore, StoreError};
use outdial_core::record::Campaign;
use outdial_core::time::{Clock, Timestamp};
use serde_json::Value;
use tracing::{Instrument, info, info_span, warn};

pub use machine_run::{GREETINGS_PREFIX, Hearing};
pub use respond::{INVOCATION_LIMIT, MAX_ERROR_TEXT};
pub use script_run::{NO_INPUT, TRANSFER_FAILED};

/// The most one event may spend waiting for the table, all its requests together. The SMA
/// waits 5 s for an answer before it sends the event again, and the function's Lambda timeout
/// (3 s, `infra/lib/outdial-stack.ts`) must cover the whole invocation: whatever path an event
/// takes (a lookup by transaction, the campaign's first read, a write and its rewrite), it
/// is answered within this budget, from what it knows, when the table is slow.
pub const EVENT_BUDGET: Duration = Duration::from_millis(2_500);

/// What the handler is told by its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Spoken to anyone who calls a campaign number back (`OUTDIAL_INBOUND_MESSAGE`).
    pub inbound_message: String,
    /// The bucket the PSTN audio service records greetings into while answering-machine
    /// detection listens (`OUTDIAL_GREETINGS_BUCKET`). Without one, no call is recorded and
    /// scripts that ask for detection start at the answer.
    pub greetings_bucket: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            inbound_message: "Thank you for calling back. This number only places automated \
                              calls and cannot take calls. Goodbye."
                .to_owned(),
            greetings_bucket: None,
        }
    }
}

impl Settings {
    /// # Errors
    /// When `OUTDIAL_INBOUND_MESSAGE` is set but empty or longer than Polly accepts, or
    /// `OUTDIAL_GREETINGS_BUCKET` is set but not a bucket name.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings from `var`, which reads one environment variable.
    ///
    /// # Errors
    /// As [`Settings::from_env`].
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut settings = Self::default();
        if let Some(m) = var("OUTDIAL_INBOUND_MESSAGE") {
            if m.trim().is_empty() || m.chars().count() > 1000 {
                anyhow::bail!("OUTDIAL_INBOUND_MESSAGE must be 1 to 1000 characters");
            }
            settings.inbound_message = m;
        }
        if let Some(bucket) = var("OUTDIAL_GREETINGS_BUCKET") {
            let named = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !named {
                anyhow::bail!(
                    "OUTDIAL_GREETINGS_BUCKET must be an S3 bucket name (3 to 63 lower-case letters, digits, '-' and '.')"
                );
            }
            settings.greetings_bucket = Some(bucket);
        }
        Ok(settings)
    }
}

/// Counts of what the handler saw, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub unreadable: AtomicU64,
    pub orphans: AtomicU64,
    /// Events without attributes matched to their call through their `TransactionId`.
    pub recovered: AtomicU64,
    pub duplicates: AtomicU64,
    pub stale: AtomicU64,
    pub rewrites: AtomicU64,
    /// Events naming a call of another campaign, or another transaction than the one the
    /// call's attempt is known by: forged or misrouted, recorded nowhere.
    pub foreign: AtomicU64,
    pub store_failures: AtomicU64,
}

/// The handler, generic over the store so that tests and the local stack can use any.
#[derive(Debug)]
pub struct SmaHandler<S> {
    store: S,
    clock: Arc<dyn Clock>,
    /// The clock answering-machine detection times what the callee plays with: the same as
    /// `clock` in AWS; the simulator's time in the local stack.
    audio_clock: Arc<dyn Clock>,
    settings: Settings,
    campaigns: Campaigns,
    counters: Counters,
}

impl<S: SmaStore> SmaHandler<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            store,
            audio_clock: Arc::clone(&clock),
            clock,
            settings,
            campaigns: Campaigns::default(),
            counters: Counters::default(),
        }
    }

    /// Times answering-machine detection with `clock` (the simulator's, locally) instead of
    /// the handler's own.
    #[must_use]
    pub fn with_audio_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.audio_clock = clock;
        self
    }

    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    #[must_use]
    pub fn campaigns(&self) -> &Campaigns {
        &self.campaigns
    }

    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Answers one SMA invocation. Never fails: whatever arrives gets a well-formed answer.
    pub async fn handle(&self, payload: Value) -> Value {
        let event = validate_event(&payload);
        match self.respond_to(event, Payload::Value(&payload)).await {
            Answer::Fresh(response) => to_json(&response),
            Answer::Written(text) | Answer::Stored(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| {
                    warn!(error = %e, "stored response unreadable; answering with an empty list");
                    to_json(&Response::empty(&schema_version(Some(&payload))))
                }),
        }
    }

    /// [`Self::handle`] of an invocation as the Runtime API hands it over, answered as the
    /// JSON text it posts back: the event is read straight from the bytes, and an answer
    /// just written (or stored by the event's first delivery) goes back as that very text,
    /// never built twice.
    ///
    /// # Errors
    /// Only when `payload` is not JSON at all (which Lambda reports as the invocation's
    /// error); JSON that is not an event is answered, as by [`Self::handle`].
    pub async fn handle_json(&self, payload: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
        let event = match parse_event(payload) {
            Err(ContractError::NotJson(e)) => return Err(e),
            event => event,
        };
        Ok(
            match self.respond_to(event, Payload::Bytes(payload)).await {
                Answer::Fresh(response) => json_text(&response).into_bytes(),
                // Serialized from its type just now: sent as it is.
                Answer::Written(text) => text.into_bytes(),
                Answer::Stored(text) => {
                    // Stored by an earlier delivery, so read before it is trusted.
                    if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
                        text.into_bytes()
                    } else {
                        warn!("stored response unreadable; answering with an empty list");
                        let version = serde_json::from_slice(payload).ok();
                        json_text(&Response::empty(&schema_version(version.as_ref()))).into_bytes()
                    }
                }
            },
        )
    }

    /// The answer to one invocation, whose event was read (or not) from `payload`.
    async fn respond_to(
        &self,
        event: Result<Event, ContractError>,
        payload: Payload<'_>,
    ) -> Answer {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        let event = match event {
            Ok(event) => event,
            Err(reason) => {
                self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                warn!(%reason, "unreadable SMA event answered with an empty action list");
                let version = match payload {
                    Payload::Value(v) => schema_version(Some(v)),
                    Payload::Bytes(b) => schema_version(serde_json::from_slice(b).ok().as_ref()),
                };
                return Answer::Fresh(Response::empty(&version));
            }
        };
        // The call's id goes into the span as it is made when the event names it (recording
        // it later costs the JSON log format a second formatting of the span's fields).
        let facts = CallAttributes::from_event(&event);
        let span = info_span!(
            "sma_event",
            event_type = event.event_type.as_str(),
            seq = event.sequence,
            transaction = %event.call_details.transaction_id,
            call_id = facts.as_ref().ok().map(|f| f.call_id.as_str()),
        );
        self.decide(&event, payload, facts).instrument(span).await
    }

    /// Decides the answer to `event` and records it: a fresh answer, or the stored answer of
    /// the event's first delivery.
    async fn decide(
        &self,
        event: &Event,
        payload: Payload<'_>,
        facts: Result<CallAttributes, MessageError>,
    ) -> Answer {
        let budget = Budget::new();
        if event.event_type == EventType::NewInboundCall {
            info!("call-back to a campaign number answered with the inbound message");
            return Answer::Fresh(respond::inbound(event, &self.settings.inbound_message));
        }
        let facts = match facts {
            Ok(facts) => facts,
            Err(reason) => match self.found_by_transaction(event, &budget).await {
                Some(facts) => {
                    tracing::Span::current().record("call_id", facts.call_id.as_str());
                    facts
                }
                None => {
                    let reason = reason.to_string();
                    return Answer::Fresh(self.orphan(event, payload, &reason, &budget).await);
                }
            },
        };
        let seq = Sequence::new(event.sequence);
        let call_event = messages::call_event(event);
        let now = self.clock.now();

        let campaign = if respond::needs_campaign(event) {
            let read = self.campaigns.get(&self.store, &facts.campaign_id);
            match budget.within(read).await {
                Ok(c) => Some(c),
                Err(StoreError::NotFound) => {
                    let reason = "the call's campaign does not exist";
                    return Answer::Fresh(self.orphan(event, payload, reason, &budget).await);
                }
                Err(e) => {
                    self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "campaign unreadable; hanging up");
                    return Answer::Fresh(respond::hang_up(event, &facts));
                }
            }
        } else {
            None
        };
        let policy = respond::policy(campaign.as_deref());

        // First from the facts the event carries; once more from the record if it disagrees.
        let mut pre = facts.state();
        for round in 0..2 {
            let Step::Apply(change) = transition(&pre, facts.attempt, seq, &call_event, policy)
            else {
                // Terminal, or an attempt that is over: nothing to record.
                return Answer::Fresh(respond::hang_up(event, &facts));
            };
            let hearing = Hearing {
                bucket: self.settings.greetings_bucket.as_deref(),
                now_ms: self.audio_clock.now().as_millis(),
            };
            let turn = respond::decide(event, &facts, &change, campaign.as_deref(), now, hearing);
            let write = EventWrite {
                call_id: facts.call_id.clone(),
                campaign_id: facts.campaign_id.clone(),
                attempt: facts.attempt,
                seq,
                event_type: event.event_type.as_str().to_owned(),
                expected: expected(&pre, facts.attempt, seq, &call_event, policy, &change),
                next: change.next.clone(),
                transaction_id: facts.transaction_id.clone(),
                outcome: change.outcome,
                sip_code: turn.sip_code.clone(),
                script_outcome: turn.script_outcome.clone(),
                digits: turn.digits.clone(),
                error: turn.error.clone(),
                due: turn.due,
                response: json_text(&turn.response),
                at: now,
                opt_out: turn
                    .opted_out
                    .then(|| opt_out_entry(event, &facts, now))
                    .flatten(),
                detection: turn.detection,
            };
            match budget.within(self.store.apply_event(&write)).await {
                Ok(Applied::Written(())) => {
                    info!(
                        status = write.next.status.as_str(),
                        attempt = write.next.attempt.get(),
                        "event applied"
                    );
                    // The answer as it was stored: a repeat of this event gets these bytes.
                    return Answer::Written(write.response);
                }
                Ok(Applied::Duplicate { response }) => {
                    self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    info!("duplicate event answered with the stored response");
                    return Answer::Stored(response);
                }
                Ok(Applied::Stale(_)) => {
                    self.counters.stale.fetch_add(1, Ordering::Relaxed);
                    info!("stale event changes nothing");
                    return Answer::Fresh(respond::hang_up(event, &facts));
                }
                Ok(Applied::Mismatch(record)) if !write.belongs_to(&record) => {
                    // Another campaign's call, or another transaction than the one the
                    // attempt was placed as: the event is forged or misrouted.
                    self.counters.foreign.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        status = record.status.as_str(),
                        "event names a call it does not belong to; nothing recorded"
                    );
                    return Answer::Fresh(respond::safe(event));
                }
                Ok(Applied::Mismatch(record)) if round == 0 => {
                    self.counters.rewrites.fetch_add(1, Ordering::Relaxed);
                    info!(
                        status = record.status.as_str(),
                        "record moved on; deciding again from it"
                    );
                    pre = record.state();
                }
                Ok(Applied::Mismatch(record)) => {
                    warn!(
                        status = record.status.as_str(),
                        "record changed twice under the event; answering without a write"
                    );
                    return Answer::Fresh(respond::hang_up(event, &facts));
                }
                Err(StoreError::NotFound) => {
                    let reason = "no call record for the event's call id";
                    return Answer::Fresh(self.orphan(event, payload, reason, &budget).await);
                }
                Err(e) => {
                    self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, retryable = e.is_retryable(), "event not recorded; answering anyway");
                    return Answer::Fresh(turn.response);
                }
            }
        }
        Answer::Fresh(respond::hang_up(event, &facts))
    }

    /// The facts of an event that carries none, from the call that has its `TransactionId`.
    /// This happens when the service never accepted an answer to the call's first event
    /// (both invocations failed): the dispatcher recorded the transaction when the Voice API
    /// placed the call, so the call goes on instead of being hung up as an orphan and
    /// dialed again. Costs two reads, only on this path.
    async fn found_by_transaction(&self, event: &Event, budget: &Budget) -> Option<CallAttributes> {
        let transaction = TransactionId::parse(&event.call_details.transaction_id).ok()?;
        let found = self.store.call_by_transaction(&transaction);
        match budget.within(found).await {
            Ok(Some(record)) => {
                self.counters.recovered.fetch_add(1, Ordering::Relaxed);
                info!(call_id = %record.id, "event without attributes matched to its call by its transaction");
                Some(CallAttributes::from_record(&record, transaction))
            }
            Ok(None) => None,
            Err(e) => {
                self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "call not looked up by its transaction");
                None
            }
        }
    }

    async fn orphan(
        &self,
        event: &Event,
        payload: Payload<'_>,
        reason: &str,
        budget: &Budget,
    ) -> Response {
        self.counters.orphans.fetch_add(1, Ordering::Relaxed);
        warn!(%reason, "orphan SMA event kept and answered safely");
        let raw = match payload {
            Payload::Value(v) => v.to_string(),
            Payload::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        };
        let kept = self.store.record_orphan(
            &event.call_details.transaction_id,
            Sequence::new(event.sequence),
            event.event_type.as_str(),
            &raw,
            self.clock.now(),
        );
        let recorded = budget.within(kept).await;
        if let Err(e) = recorded {
            warn!(error = %e, "orphan event could not be kept");
        }
        respond::safe(event)
    }
}

/// What is left of one event's [`EVENT_BUDGET`]. The budget bounds how long the SMA waits
/// for its answer, which is real time: it is kept on tokio's timer, not on the handler's
/// [`Clock`], which is the domain's time (the instants recorded and the due times decided)
/// and which tests move at will. Tests of the budget pause tokio's time instead.
struct Budget {
    until: tokio::time::Instant,
}

impl Budget {
    fn new() -> Self {
        Self {
            until: tokio::time::Instant::now() + EVENT_BUDGET,
        }
    }

    /// `work`, unless the budget runs out first: then [`StoreError::Timeout`], and the
    /// request is abandoned (a write may still land; the `Sequence` guard makes that safe).
    async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout_at(self.until, work)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Timeout(
                    format!("the event's {} ms budget ran out", EVENT_BUDGET.as_millis()).into(),
                ))
            })
    }
}

/// An answer decided now and not stored, or the JSON text of one stored: just now (written
/// from its type, so sent as it is), or by the event's first delivery (read back from the
/// table, so checked before it is sent).
enum Answer {
    Fresh(Response),
    Written(String),
    Stored(String),
}

/// An invocation's payload as it reached the handler: parsed by the host (the local stack,
/// tests), or as the Runtime API handed it over.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Value(&'a Value),
    Bytes(&'a [u8]),
}

/// The `SchemaVersion` an answer to `payload` echoes: the payload's own, unless it has none
/// or one longer than any real version (the SMA refuses an answer whose version differs from
/// the event's).
fn schema_version(payload: Option<&Value>) -> String {
    payload
        .and_then(|p| p.get("SchemaVersion"))
        .and_then(Value::as_str)
        .filter(|v| v.chars().count() <= MAX_SCHEMA_VERSION)
        .unwrap_or("1.0")
        .to_owned()
}

/// The do-not-call entry of a callee who pressed the opt-out key: the callee's number is the
/// `To` of the call's first leg. `None`, with an error logged, when the event does not carry
/// one that reads as E.164 (the outcome is still recorded on the call).
fn opt_out_entry(event: &Event, facts: &CallAttributes, now: Timestamp) -> Option<DncEntry> {
    let to = event
        .leg(&ParticipantTag::LegA)
        .and_then(|leg| leg.to.as_deref())
        .and_then(|to| E164::parse(to).ok());
    let Some(e164) = to else {
        tracing::error!("opt-out pressed but the event names no callee number; not listed");
        return None;
    };
    Some(DncEntry {
        e164,
        added_at: now,
        source: DncSource::OptOut {
            call_id: facts.call_id.clone(),
        },
    })
}

fn to_json(response: &Response) -> Value {
    serde_json::to_value(response)
        .unwrap_or_else(|_| serde_json::json!({"SchemaVersion": "1.0", "Actions": []}))
}

/// `response` as JSON text, written straight from it (its keys in the order its types
/// declare them). What is stored is what is answered, so a repeat gets the same bytes.
fn json_text(response: &Response) -> String {
    serde_json::to_string(response)
        .unwrap_or_else(|_| r#"{"SchemaVersion":"1.0","Actions":[]}"#.to_owned())
}

// Campaigns, as the handler needs them: read once per process and kept.
//
// A campaign's script, retry policy and from-number never change after it is created (pause,
// resume and cancel change its status, which this handler does not read: a cancel reaches a
// live call as `CALL_UPDATE_REQUESTED`). So a warm function answers every event of every call
// of a campaign with exactly one DynamoDB request, the call's own write; only the first
// event of a campaign in a fresh process reads the campaign first.

/// Campaigns kept per process. Bounded: past `capacity` campaigns it starts over, which costs
/// one read per campaign in use.
#[derive(Debug)]
pub struct Campaigns {
    kept: Mutex<HashMap<CampaignId, Arc<Campaign>>>,
    capacity: usize,
}

impl Default for Campaigns {
    fn default() -> Self {
        Self::with_capacity(256)
    }
}

impl Campaigns {
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The campaign, from memory or from the store.
    ///
    /// # Errors
    /// What the store answers; [`StoreError::NotFound`] for an unknown campaign.
    pub async fn get(
        &self,
        store: &impl SmaStore,
        id: &CampaignId,
    ) -> Result<Arc<Campaign>, StoreError> {
        if let Some(c) = self.lock().get(id) {
            return Ok(Arc::clone(c));
        }
        let campaign = Arc::new(store.campaign(id).await?);
        let mut kept = self.lock();
        if kept.len() >= self.capacity {
            kept.clear();
        }
        kept.insert(id.clone(), Arc::clone(&campaign));
        Ok(campaign)
    }

    /// Whether the campaign is in memory (its next event costs no extra read).
    #[must_use]
    pub fn contains(&self, id: &CampaignId) -> bool {
        self.lock().contains_key(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CampaignId, Arc<Campaign>>> {
        // The map is only ever inserted into or cleared whole; a panic elsewhere cannot leave
        // it half-updated, so a poisoned lock is still usable.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
