//! One simulated call: its legs, its `Sequence`, its `TransactionAttributes`, and the loop
//! that invokes the SMA handler and runs what it answers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use outdial_core::contract::{MAX_ATTRIBUTES, validate_response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::audio::{self, RecordRules, SoundKind, StopBy, Timeline, Truth, Voice};
use super::clock::{Participant, Raced};
use super::rng::Rng;
use super::{
    AudioReport, CallReport, Callee, HandlerRan, Inner, Invocation, PromptReport, RecordingReport,
    carrier,
};

/// The service re-sends an event when the handler has not answered within 5 s, and hangs up
/// after 20 s; at 1,000 invocations it stops.
const RETRY_MS: u64 = 5_000;
const GIVE_UP_MS: u64 = 20_000;
const MAX_INVOCATIONS: u64 = 1_000;
/// How long a callee waits in silence before hanging up.
const IDLE_MS: u64 = 10_000;
/// Speaking rate for `Speak` durations.
const MS_PER_CHAR: u64 = 60;
/// How far into an action an opting-out callee presses its key.
const PRESS_MS: u64 = 1_000;
/// The keys of a phone, in the order an opting-out callee tries them against a regex.
const KEYS: [&str; 12] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"];

/// A call the Create API placed.
pub(crate) struct Placed<'a> {
    pub transaction: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    /// Whether the Create API answers the dialer `201` (false: it answers `500`).
    pub answered: bool,
    /// When it was placed, on the placement clock (`Inner::clock_ms`).
    pub clock_ms: i64,
}

/// Registers a call the Create API placed and starts its driver.
pub(crate) fn place(
    inner: &Arc<Inner>,
    placed: &Placed<'_>,
    arguments: BTreeMap<String, String>,
    draws: Rng,
) {
    let Placed {
        transaction,
        from,
        to,
        answered,
        clock_ms,
    } = *placed;
    let mut callee = inner.config.callees.for_number(to, inner.config.seed);
    let (tx, rx) = mpsc::unbounded_channel();
    // Joined before the driver is spawned, so that virtual time cannot move in between.
    let participant = inner
        .virtual_clock
        .as_ref()
        .map(super::clock::VirtualClock::join);
    let attempt_key = format!(
        "{}#{}",
        arguments.get("call_id").map_or("?", String::as_str),
        arguments.get("attempt").map_or("?", String::as_str)
    );
    let carrier_rejected = {
        let mut shared = inner.lock();
        let rejected = inner
            .config
            .carrier
            .as_ref()
            .is_some_and(|rules| shared.caller_ids.rejects(rules, from, clock_ms));
        if rejected {
            *shared.carrier_rejected.entry(from.to_owned()).or_insert(0) += 1;
            callee = Callee::Fail {
                code: carrier::REJECTED,
            };
        }
        shared.updates.insert(
            transaction.to_owned(),
            (tx, participant.as_ref().map(Participant::id)),
        );
        shared
            .placed
            .push((Instant::now(), to.to_owned(), attempt_key));
        shared.calls.insert(
            transaction.to_owned(),
            CallReport {
                transaction_id: transaction.to_owned(),
                to: to.to_owned(),
                callee: callee.clone(),
                arguments: arguments.clone(),
                invocations: 0,
                ended: false,
                transcript: Vec::new(),
                placed_ms: inner.now_ms(),
                create_answered: answered,
                invocation_log: Vec::new(),
                audio: None,
            },
        );
        rejected
    };
    let voice = callee.voice(inner.config.seed, to);
    let call = Call {
        pace: participant.map_or(Pace::Scaled, Pace::Virtual),
        voice,
        heard: None,
        recordings: 0,
        inner: Arc::clone(inner),
        transaction: transaction.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        leg_a: uuid::Uuid::new_v4().to_string(),
        leg_b: None,
        a_connected: false,
        b_connected: false,
        seq: 0,
        attributes: None,
        arguments,
        updates: rx,
        ended: false,
        draws,
        listener: None,
        key: None,
        pressed_in_list: false,
        placed_clock_ms: clock_ms,
        carrier_rejected,
        simulated_ms: 0,
        answered_at_ms: None,
    };
    tokio::spawn(call.run(callee));
}

/// How a call's simulated waits pass.
enum Pace {
    /// In real time, times `speed`.
    Scaled,
    /// On the virtual clock, as one of its participants.
    Virtual(Participant),
}

/// When a wait that races the call's updates ends.
#[derive(Clone, Copy)]
enum Until {
    Real(tokio::time::Instant),
    /// Milliseconds since the virtual clock's origin.
    Virtual(u64),
}

/// What an answered callee sounds like and what it heard so far.
struct Heard {
    voice: Voice,
    persona: String,
    first_prompt_ms: Option<u64>,
    prompts: Vec<PromptReport>,
    recordings: Vec<RecordingReport>,
    /// A mailbox heard something played during its recording: it records to its limit.
    recording_heard: bool,
    hung_up_ms: Option<u64>,
}

impl Heard {
    /// When a mailbox hangs up, as far as is known: `record_ms` after its recording starts
    /// once something was played into it, else once it has heard nothing for
    /// `MAILBOX_SILENCE_MS` (or `record_ms`, if shorter). `None` for a person.
    fn mailbox_hangs_up_at(&self) -> Option<u64> {
        let record_ms = self.voice.record_ms?;
        let start = self.voice.greeting_end_ms;
        Some(if self.recording_heard {
            start.saturating_add(record_ms)
        } else {
            start.saturating_add(record_ms.min(audio::MAILBOX_SILENCE_MS))
        })
    }

    fn report(&self) -> AudioReport {
        let v = &self.voice;
        let machine = v.truth == Truth::Machine;
        let longest_pause_ms = machine.then(|| {
            let spoken = v
                .timeline
                .sounds()
                .iter()
                .filter(|s| s.kind == SoundKind::Speech)
                .copied()
                .collect();
            Timeline::new(spoken).longest_gap_ms()
        });
        AudioReport {
            truth: v.truth,
            persona: self.persona.clone(),
            hello_ms: v.hello_ms,
            greeting_ms: v.greeting_ms,
            beep_at_ms: v.beep_at_ms,
            greeting_end_ms: v.greeting_end_ms,
            longest_pause_ms,
            first_prompt_ms: self.first_prompt_ms,
            recordings: self.recordings.clone(),
            message: if machine {
                self.prompts.clone()
            } else {
                Vec::new()
            },
            whole_after_greeting: machine && super::whole_after(&self.prompts, v.greeting_end_ms),
            hung_up_ms: self.hung_up_ms,
        }
    }
}

struct Call {
    pace: Pace,
    /// The callee's voice, drawn when it was placed (`None` for one that never answers).
    voice: Option<Voice>,
    /// Set when the callee answers.
    heard: Option<Heard>,
    /// `RecordAudio` actions run so far: each recording's key is unique.
    recordings: u32,
    inner: Arc<Inner>,
    transaction: String,
    from: String,
    to: String,
    leg_a: String,
    leg_b: Option<String>,
    a_connected: bool,
    b_connected: bool,
    seq: u64,
    attributes: Option<BTreeMap<String, String>>,
    arguments: BTreeMap<String, String>,
    updates: mpsc::UnboundedReceiver<BTreeMap<String, String>>,
    ended: bool,
    /// This call's own fault draws (see `Inner::draws`).
    draws: Rng,
    /// The armed `ReceiveDigits` action (`Type` and `Parameters`), from the one that armed
    /// it until its first match.
    listener: Option<Value>,
    /// The key an opting-out callee pressed last: it keeps pressing it once nothing listens.
    key: Option<String>,
    /// Whether the callee pressed during the action list now running.
    pressed_in_list: bool,
    /// When it was placed, on the placement clock (the carrier model's time line).
    placed_clock_ms: i64,
    /// Whether the carrier model rejected it (its callee is then a 608 failure).
    carrier_rejected: bool,
    /// Simulated time its timed steps took so far (prompts, pauses, waits; not the
    /// handler's own latency).
    simulated_ms: u64,
    /// `simulated_ms` when the callee answered.
    answered_at_ms: Option<u64>,
}

/// What the handler's answer came to.
enum Answered {
    Actions(VecDeque<Value>),
    /// The answer broke the contract: the next event is `INVALID_LAMBDA_RESPONSE`.
    Invalid {
        error_type: &'static str,
        message: String,
    },
    /// No usable answer in time, or the invocation cap: the service hangs up.
    Lost,
}

impl Call {
    fn note(&self, line: impl Into<String>) {
        if let Some(c) = self.inner.lock().calls.get_mut(&self.transaction) {
            c.transcript.push(line.into());
        }
    }

    /// Logs one invocation of the handler; returns its place in the call's log.
    fn log(&self, invocation: Invocation) -> usize {
        log_invocation(&self.inner, &self.transaction, invocation)
    }

    /// Marks a logged invocation's answer as refused by the contract.
    fn refuse(&self, at: usize) {
        if let Some(entry) = self
            .inner
            .lock()
            .calls
            .get_mut(&self.transaction)
            .and_then(|c| c.invocation_log.get_mut(at))
        {
            entry.accepted = false;
        }
    }

    async fn sleep(&mut self, simulated_ms: u64) {
        match &self.pace {
            Pace::Scaled => tokio::time::sleep(self.inner.config.real(simulated_ms)).await,
            Pace::Virtual(p) => p.sleep(simulated_ms).await,
        }
        self.simulated_ms = self.simulated_ms.saturating_add(simulated_ms);
    }

    /// The end of a wait of `simulated_ms` from now that may be cut short by an update.
    fn until(&self, simulated_ms: u64) -> Until {
        match &self.pace {
            Pace::Scaled => {
                Until::Real(tokio::time::Instant::now() + self.inner.config.real(simulated_ms))
            }
            Pace::Virtual(p) => Until::Virtual(p.clock().now_ms().saturating_add(simulated_ms)),
        }
    }

    /// Waits until `until`, or until an update arrives; counts the simulated time that
    /// passed, at most `cap`, and returns it with how the wait ended.
    async fn wait_or_update(
        &mut self,
        until: Until,
        cap: u64,
    ) -> (Raced<BTreeMap<String, String>>, u64) {
        let (raced, spent) = match (&self.pace, until) {
            (Pace::Virtual(p), Until::Virtual(at)) => {
                let before = p.clock().now_ms();
                let raced = p.sleep_until_or_recv(at, &mut self.updates).await;
                (raced, p.clock().now_ms().saturating_sub(before))
            }
            (_, Until::Real(at)) => {
                let waiting = tokio::time::Instant::now();
                let raced = tokio::select! {
                    () = tokio::time::sleep_until(at) => Raced::Elapsed,
                    update = self.updates.recv() => update.map_or(Raced::Closed, Raced::Message),
                };
                let spent = match raced {
                    Raced::Elapsed => cap,
                    _ => self.simulated(waiting.elapsed(), cap),
                };
                (raced, spent)
            }
            (Pace::Scaled, Until::Virtual(_)) => (Raced::Elapsed, 0),
        };
        let spent = spent.min(cap);
        self.simulated_ms = self.simulated_ms.saturating_add(spent);
        (raced, spent)
    }

    /// Milliseconds since the callee answered, on the call's simulated time line.
    fn position(&self) -> u64 {
        self.simulated_ms
            .saturating_sub(self.answered_at_ms.unwrap_or(self.simulated_ms))
    }

    /// Writes what the callee heard so far to the call's report.
    fn sync_audio(&self) {
        let Some(heard) = &self.heard else { return };
        let report = heard.report();
        if let Some(c) = self.inner.lock().calls.get_mut(&self.transaction) {
            c.audio = Some(report);
        }
    }

    /// The callee hangs up on its own, now.
    async fn callee_hangs_up(&mut self, line: impl Into<String>) -> Answered {
        let at = self.position();
        if let Some(heard) = &mut self.heard {
            heard.hung_up_ms = Some(at);
        }
        self.sync_audio();
        self.note(line);
        self.hangup("LEG-A", Some(0)).await
    }

    /// Simulated time in `real` time, at most `cap` (a wait cut short by an update).
    fn simulated(&self, real: std::time::Duration, cap: u64) -> u64 {
        let speed = self.inner.config.speed;
        if speed <= 0.0 || !speed.is_finite() {
            return cap;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (real.as_secs_f64() * 1_000.0 / speed) as u64;
        ms.min(cap)
    }

    fn participants(&self) -> Value {
        let status = |up: bool| if up { "Connected" } else { "Disconnected" };
        let mut a = json!({"CallId": self.leg_a, "ParticipantTag": "LEG-A", "To": self.to, "From": self.from,
            "Direction": "Outbound", "StartTimeInMilliseconds": "1700000000000"});
        if self.seq > 2 || self.a_connected {
            a["Status"] = json!(status(self.a_connected));
        }
        let mut legs = vec![a];
        if let Some(b) = &self.leg_b {
            legs.push(json!({"CallId": b, "ParticipantTag": "LEG-B", "To": "+15555550142", "From": self.from,
                "Direction": "Outbound", "StartTimeInMilliseconds": "1700000000000", "Status": status(self.b_connected)}));
        }
        Value::Array(legs)
    }

    fn event(&self, kind: &str, action_data: Option<Value>, error: Option<(&str, &str)>) -> Value {
        let mut details = json!({
            "TransactionId": self.transaction, "AwsAccountId": "000000000000", "AwsRegion": "us-east-1",
            "SipMediaApplicationId": self.inner.sma_id, "Participants": self.participants(),
        });
        if let Some(attrs) = &self.attributes {
            details["TransactionAttributes"] = json!(attrs);
        }
        let mut event = json!({"SchemaVersion": "1.0", "Sequence": self.seq, "InvocationEventType": kind, "CallDetails": details});
        if let Some(data) = action_data {
            event["ActionData"] = data;
        }
        if let Some((t, m)) = error {
            event["ErrorType"] = json!(t);
            event["ErrorMessage"] = json!(m);
        }
        event
    }

    /// Invokes the handler with the next event, as the service does: waits 5 s and re-sends,
    /// gives up after 20 s, retries a failed invocation once, and checks the answer.
    async fn invoke(
        &mut self,
        kind: &str,
        action_data: Option<Value>,
        error: Option<(&str, &str)>,
    ) -> Answered {
        if self.seq >= MAX_INVOCATIONS {
            self.inner.violation(
                &self.transaction,
                self.seq,
                "more than 1,000 invocations for one call",
            );
            return Answered::Lost;
        }
        self.seq += 1;
        let event = self.event(kind, action_data, error);
        self.note(format!("-> {kind} seq={}", self.seq));
        if let Some(c) = self.inner.lock().calls.get_mut(&self.transaction) {
            c.invocations = self.seq;
        }
        let faults = self.inner.config.faults;
        if self.draws.chance(faults.delay) {
            self.sleep(faults.delay_ms).await;
        }
        let started = Instant::now();
        let give_up = self.inner.config.deadline(GIVE_UP_MS);
        let retry = self.inner.config.deadline(RETRY_MS);
        let mut failures = 0;
        let named = names_its_call(&event);
        let logged = |handler: HandlerRan, accepted: bool, sent_ms: u64| Invocation {
            event_type: kind.to_owned(),
            sequence: self.seq,
            sent_ms,
            answered_ms: self.inner.now_ms(),
            handler,
            accepted,
            named,
            copy: false,
        };
        let (answer, entry) = loop {
            if started.elapsed() >= give_up {
                self.inner.violation(
                    &self.transaction,
                    self.seq,
                    "no answer within 20 s: the call is hung up",
                );
                return Answered::Lost;
            }
            let sent_ms = self.inner.now_ms();
            // An injected failure is, as often as not, one the handler never saw (the function
            // was throttled) or one it ran through and whose answer was lost (it crashed on
            // the way out, or the network dropped the answer).
            let failed_on_purpose = self.draws.chance(faults.invoke_error);
            if failed_on_purpose && self.draws.chance(0.5) {
                self.log(logged(HandlerRan::NotRun, false, sent_ms));
                self.note("   invocation throttled before the handler ran");
                failures += 1;
                if failures > 1 {
                    self.note("   invocation failed twice: the call is hung up (480)");
                    return Answered::Lost;
                }
                continue;
            }
            let attempt = self.inner.invoker.invoke(event.clone());
            match tokio::time::timeout(retry, attempt).await {
                Ok(Ok(answer)) if !failed_on_purpose => {
                    let entry = self.log(logged(HandlerRan::Ran, true, sent_ms));
                    break (answer, entry);
                }
                Ok(result) => {
                    // Failed on purpose after the handler ran (its answer lost), or the
                    // Invoke API failed (the handler may or may not have run).
                    let handler = if result.is_ok() {
                        HandlerRan::Ran
                    } else {
                        HandlerRan::Unknown
                    };
                    self.log(logged(handler, false, sent_ms));
                    failures += 1;
                    if failures > 1 {
                        self.note("   invocation failed twice: the call is hung up (480)");
                        return Answered::Lost;
                    }
                }
                Err(_) => {
                    self.log(logged(HandlerRan::Unknown, false, sent_ms));
                    self.inner.violation(
                        &self.transaction,
                        self.seq,
                        "no answer within 5 s: event re-sent",
                    );
                }
            }
        };
        if self.draws.chance(faults.duplicate) {
            let (inner, transaction, copy, late) = (
                Arc::clone(&self.inner),
                self.transaction.clone(),
                event.clone(),
                self.inner.config.real(faults.delay_ms),
            );
            let (kind, sequence) = (kind.to_owned(), self.seq);
            let (delay_ms, participant) = (
                faults.delay_ms,
                self.inner
                    .virtual_clock
                    .as_ref()
                    .map(super::clock::VirtualClock::join),
            );
            tokio::spawn(async move {
                match &participant {
                    Some(p) => p.sleep(delay_ms).await,
                    None => tokio::time::sleep(late).await,
                }
                let sent_ms = inner.now_ms();
                let result = inner.invoker.invoke(copy).await;
                let invocation = Invocation {
                    event_type: kind,
                    sequence,
                    sent_ms,
                    answered_ms: inner.now_ms(),
                    handler: if result.is_ok() {
                        HandlerRan::Ran
                    } else {
                        HandlerRan::Unknown
                    },
                    accepted: false,
                    named,
                    copy: true,
                };
                log_invocation(&inner, &transaction, invocation);
                drop(participant);
            });
        }
        if let Err(e) = validate_response(&answer) {
            self.refuse(entry);
            self.inner
                .violation(&self.transaction, self.seq, format!("{kind}: {e}"));
            let error_type = match e {
                outdial_core::contract::ContractError::TooManyAttributes(_) => {
                    "TransactionAttributesInvalidMapSize"
                }
                _ => "InvalidLambdaResponse",
            };
            return Answered::Invalid {
                error_type,
                message: e.to_string(),
            };
        }
        // The service keeps the attributes an answer sets, except on events whose answer it
        // ignores entirely.
        if kind != "RINGING" {
            if let Some(Value::Object(m)) = answer.get("TransactionAttributes") {
                let map: BTreeMap<String, String> = m
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect();
                debug_assert!(map.len() <= MAX_ATTRIBUTES);
                self.attributes = Some(map);
            }
        }
        let actions: VecDeque<Value> = answer
            .get("Actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default();
        let types: Vec<&str> = actions.iter().filter_map(|a| a["Type"].as_str()).collect();
        self.note(format!("<- [{}]", types.join(", ")));
        Answered::Actions(actions)
    }

    /// Ends the call: the leg hangs up and the service reports it.
    async fn hangup(&mut self, leg: &str, code: Option<u16>) -> Answered {
        let (call_id, tag) = if leg == "LEG-B" {
            self.b_connected = false;
            (self.leg_b.clone().unwrap_or_default(), "LEG-B")
        } else {
            self.a_connected = false;
            (self.leg_a.clone(), "LEG-A")
        };
        let mut params = json!({"CallId": call_id, "ParticipantTag": tag});
        if let Some(code) = code {
            params["SipResponseCode"] = json!(code);
        }
        let answer = self
            .invoke(
                "HANGUP",
                Some(json!({"Type": "Hangup", "Parameters": params})),
                None,
            )
            .await;
        if !self.a_connected && !self.b_connected {
            self.ended = true;
        }
        answer
    }

    async fn run(mut self, callee: Callee) {
        let arguments = self.arguments.clone();
        let first = self
            .invoke(
                "NEW_OUTBOUND_CALL",
                Some(json!({"Type": "CallCreateRequest", "Parameters": {"Arguments": arguments}})),
                None,
            )
            .await;
        if matches!(first, Answered::Lost) {
            // The service ends a call whose handler it could not invoke (SIP 480), and tells
            // the handler so if it can.
            self.hangup("LEG-A", Some(480)).await;
            self.end();
            return;
        }
        match callee.clone() {
            Callee::Busy => {
                self.sleep(500).await;
                self.hangup("LEG-A", Some(486)).await;
            }
            Callee::Fail { code } => {
                self.sleep(1_000).await;
                if self.carrier_rejected {
                    self.note(format!(
                        "   the carrier rejects the call from {} as unwanted ({code})",
                        self.from
                    ));
                }
                self.hangup("LEG-A", Some(code)).await;
            }
            Callee::NoAnswer { ring_ms } => {
                self.invoke("RINGING", None, None).await;
                if self.ring(ring_ms).await {
                    self.hangup("LEG-A", Some(480)).await;
                }
            }
            Callee::Answer { .. }
            | Callee::Person { .. }
            | Callee::Silent { .. }
            | Callee::LongHello { .. }
            | Callee::HangUpMidPrompt { .. }
            | Callee::OptsOut { .. }
            | Callee::Voicemail { .. }
            | Callee::CarrierVoicemail { .. } => {
                let after_ms = callee.answers_after().unwrap_or_default();
                self.invoke("RINGING", None, None).await;
                if self.ring(after_ms).await {
                    self.a_connected = true;
                    self.answered_at_ms = Some(self.simulated_ms);
                    self.heard = self.voice.take().map(|voice| Heard {
                        voice,
                        persona: callee
                            .persona()
                            .map_or(callee.kind(), super::Persona::word)
                            .to_owned(),
                        first_prompt_ms: None,
                        prompts: Vec::new(),
                        recordings: Vec::new(),
                        recording_heard: false,
                        hung_up_ms: None,
                    });
                    self.sync_audio();
                    let answered = self.invoke("CALL_ANSWERED", None, None).await;
                    self.converse(&callee, answered).await;
                }
            }
        }
        self.end();
    }

    /// Rings for `ms`; an update that asks to hang up ends the ringing. Returns whether the
    /// ringing ran its course.
    async fn ring(&mut self, ms: u64) -> bool {
        let until = self.until(ms);
        let mut left = ms;
        loop {
            let (Raced::Message(arguments), spent) = self.wait_or_update(until, left).await else {
                return true;
            };
            left = left.saturating_sub(spent);
            let answer = self
                .invoke(
                    "CALL_UPDATE_REQUESTED",
                    Some(json!({"Type": "CallUpdateRequest", "Parameters": {"Arguments": arguments}})),
                    None,
                )
                .await;
            if let Answered::Actions(actions) = answer {
                if actions.iter().any(|a| a["Type"] == "Hangup") {
                    self.note("   hung up while ringing");
                    self.hangup("LEG-A", None).await;
                    return false;
                }
            }
        }
    }

    fn end(&mut self) {
        let mut shared = self.inner.lock();
        shared.updates.remove(&self.transaction);
        if let Some(c) = shared.calls.get_mut(&self.transaction) {
            c.ended = true;
        }
        if let Some(rules) = &self.inner.config.carrier {
            if !self.carrier_rejected {
                let short = self
                    .answered_at_ms
                    .is_some_and(|at| self.simulated_ms.saturating_sub(at) < rules.short_call_ms);
                shared
                    .caller_ids
                    .ended(&self.from, self.placed_clock_ms, short);
            }
        }
    }

    /// Runs what the handler answers until the call ends.
    async fn converse(&mut self, callee: &Callee, first: Answered) {
        let mut answered = first;
        let mut prompts_heard = 0u32;
        while !self.ended {
            let mut actions = match answered {
                Answered::Lost => {
                    self.hangup("LEG-A", Some(480)).await;
                    return;
                }
                Answered::Invalid {
                    error_type,
                    message,
                } => {
                    answered = self
                        .invoke(
                            "INVALID_LAMBDA_RESPONSE",
                            None,
                            Some((error_type, &message)),
                        )
                        .await;
                    continue;
                }
                Answered::Actions(actions) => actions,
            };
            self.pressed_in_list = false;
            if actions.is_empty() {
                answered = self.idle(callee).await;
                continue;
            }
            let mut last = Value::Null;
            let mut outcome = None;
            while let Some(action) = actions.pop_front() {
                if let Ok(update) = self.updates.try_recv() {
                    outcome = Some(self.invoke("CALL_UPDATE_REQUESTED",
                        Some(json!({"Type": "CallUpdateRequest", "Parameters": {"Arguments": update}})), None).await);
                    break;
                }
                match self.perform(callee, &action, &mut prompts_heard).await {
                    Step::Done(result) => last = result,
                    Step::Failed(result) => {
                        outcome = Some(self.invoke("ACTION_FAILED", Some(result), None).await);
                        break;
                    }
                    Step::Event(next) => {
                        outcome = Some(next);
                        break;
                    }
                }
            }
            answered = match outcome {
                Some(next) => next,
                None if self.ended => return,
                None => self.invoke("ACTION_SUCCESSFUL", Some(last), None).await,
            };
        }
    }

    /// Nothing to do: a bridged agent talks and then leaves; a callee waits, then hangs up.
    async fn idle(&mut self, callee: &Callee) -> Answered {
        if self.b_connected {
            self.sleep(self.inner.config.agent_talk_ms).await;
            self.note("   the agent hangs up");
            return self.hangup("LEG-B", Some(0)).await;
        }
        if self.presses(callee) {
            if let Some(answered) = self.hear(callee, PRESS_MS, false).await {
                return answered;
            }
        }
        // A mailbox waits for its own end; a person waits a while in silence.
        let mailbox_at = self.heard.as_ref().and_then(Heard::mailbox_hangs_up_at);
        let wait_ms = mailbox_at.map_or(IDLE_MS, |at| at.saturating_sub(self.position()));
        let until = self.until(wait_ms);
        match self.wait_or_update(until, wait_ms).await.0 {
            Raced::Message(arguments) => {
                self.invoke(
                    "CALL_UPDATE_REQUESTED",
                    Some(json!({"Type": "CallUpdateRequest", "Parameters": {"Arguments": arguments}})),
                    None,
                )
                .await
            }
            Raced::Elapsed | Raced::Closed => {
                let line = if mailbox_at.is_some() {
                    "   the mailbox hangs up"
                } else {
                    "   the callee hangs up"
                };
                self.callee_hangs_up(line).await
            }
        }
    }

    /// Performs one action the handler asked for.
    async fn perform(&mut self, callee: &Callee, action: &Value, prompts_heard: &mut u32) -> Step {
        let kind = action["Type"].as_str().unwrap_or_default().to_owned();
        let params = &action["Parameters"];
        let echo = |extra: Value| {
            let mut data = json!({"Type": kind, "Parameters": params});
            if let Value::Object(m) = extra {
                for (k, v) in m {
                    data[k] = v;
                }
            }
            data
        };
        let ms = |key: &str, default: u64| {
            params[key]
                .as_u64()
                .or_else(|| params[key].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(default)
        };
        let speech_ms = |text: &Value| {
            text.as_str()
                .map_or(1_000, |t| t.chars().count() as u64 * MS_PER_CHAR)
        };
        match kind.as_str() {
            "Speak" | "PlayAudio" | "SpeakAndGetDigits" | "PlayAudioAndGetDigits" => {
                let prompt = if kind.starts_with("Speak") {
                    speech_ms(if kind == "Speak" {
                        &params["Text"]
                    } else {
                        &params["SpeechParameters"]["Text"]
                    })
                } else {
                    3_000
                };
                *prompts_heard += 1;
                let started = self.position();
                if let Some(heard) = &mut self.heard {
                    heard.first_prompt_ms.get_or_insert(started);
                }
                if matches!(callee, Callee::HangUpMidPrompt { .. }) && *prompts_heard == 1 {
                    self.sleep(prompt / 2).await;
                    self.prompt_played(started, false);
                    let line = format!("   the callee hangs up during {kind}");
                    return Step::Event(self.callee_hangs_up(line).await);
                }
                let interrupted = self.hear(callee, prompt, true).await;
                let cut = self.heard.as_ref().is_some_and(|h| h.hung_up_ms.is_some());
                self.prompt_played(started, cut);
                if let Some(answered) = interrupted {
                    return Step::Event(answered);
                }
                if !kind.ends_with("GetDigits") {
                    self.note(format!("   {kind} played"));
                    return Step::Done(echo(json!({})));
                }
                match callee.gather_digits().map(str::to_owned) {
                    Some(d) => {
                        if let Some(answered) = self.hear(callee, 1_000, false).await {
                            return Step::Event(answered);
                        }
                        self.note(format!("   the callee presses {d}"));
                        Step::Done(echo(json!({"ReceivedDigits": d})))
                    }
                    None => {
                        let tries = ms("Repeat", 1).max(1);
                        let wait = tries * ms("RepeatDurationInMilliseconds", 5_000);
                        if let Some(answered) = self.hear(callee, wait, false).await {
                            return Step::Event(answered);
                        }
                        self.note("   no digits");
                        Step::Failed(echo(
                            json!({"ErrorType": "InvalidActionParameter", "ErrorMessage": "no input received"}),
                        ))
                    }
                }
            }
            "Pause" => {
                if let Some(answered) = self
                    .hear(callee, ms("DurationInMilliseconds", 1_000), false)
                    .await
                {
                    return Step::Event(answered);
                }
                Step::Done(echo(json!({})))
            }
            "RecordAudio" => {
                let seconds = |key: &str| {
                    let v = &params[key];
                    let secs = v
                        .as_f64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let ms = (secs * 1_000.0).round().max(0.0) as u64;
                    Some(ms)
                };
                let terminators: Vec<&str> = params["RecordingTerminators"]
                    .as_array()
                    .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let start = self.position();
                // An opting-out callee's key stops the recording when it is a terminator.
                let key = if self.presses(callee) {
                    self.next_key()
                } else {
                    None
                };
                let key = key.filter(|k| terminators.contains(&k.as_str()));
                let silent = Timeline::silent();
                let timeline = self.heard.as_ref().map_or(&silent, |h| &h.voice.timeline);
                let stop = audio::record_stop(
                    timeline,
                    start,
                    RecordRules {
                        duration_ms: seconds("DurationInSeconds"),
                        silence_ms: seconds("SilenceDurationInSeconds"),
                        terminator_at_ms: key.as_ref().map(|_| start.saturating_add(PRESS_MS)),
                    },
                );
                // Someone who hangs up on the first thing they hear gives up halfway through
                // the silence of a recording that comes before any prompt.
                if matches!(callee, Callee::HangUpMidPrompt { .. }) && *prompts_heard == 0 {
                    *prompts_heard += 1;
                    self.sleep(stop.at_ms.saturating_sub(start) / 2).await;
                    let line = "   the callee hangs up while RecordAudio listens";
                    return Step::Event(self.callee_hangs_up(line).await);
                }
                if let Some(answered) = self
                    .hear(callee, stop.at_ms.saturating_sub(start), false)
                    .await
                {
                    return Step::Event(answered);
                }
                // Now, not `stop.at_ms`: a key's press also waited out the listener's gap.
                let ended = self.position();
                if let Some(heard) = &mut self.heard {
                    heard.recordings.push(RecordingReport {
                        started_ms: start,
                        ended_ms: ended,
                        stopped_by: stop.by,
                    });
                }
                self.sync_audio();
                self.recordings += 1;
                let destination = &params["RecordingDestination"];
                let prefix = destination["Prefix"].as_str().unwrap_or_default();
                let mut result = json!({"RecordingDestination": {"Type": "S3",
                    "BucketName": destination["BucketName"],
                    "Key": format!("{prefix}{}-{}.wav", self.transaction, self.recordings)}});
                let by = match stop.by {
                    StopBy::Duration => "its duration",
                    StopBy::Silence => "silence",
                    StopBy::Cap => "the simulator's cap",
                    StopBy::Terminator => {
                        result["RecordingTerminatorUsed"] = json!(key);
                        "a key"
                    }
                };
                self.note(format!(
                    "   recorded {} ms, stopped by {by}",
                    ended.saturating_sub(start)
                ));
                Step::Done(echo(result))
            }
            "ReceiveDigits" => {
                // Armed (again) until its first match; it reports success at once.
                self.listener = Some(echo(json!({})));
                self.note(format!(
                    "   listening for {}",
                    params["InputDigitsRegex"].as_str().unwrap_or_default()
                ));
                Step::Done(echo(json!({"ReceivedDigits": ""})))
            }
            "CallAndBridge" => {
                if let Some(answered) = self.hear(callee, 3_000, false).await {
                    return Step::Event(answered);
                }
                self.leg_b = Some(uuid::Uuid::new_v4().to_string());
                self.b_connected = true;
                self.note("   the agent answers");
                Step::Done(echo(json!({})))
            }
            "Hangup" => {
                // Without `CallId` or `ParticipantTag`, the leg that invoked: `LEG-A`.
                let names_b =
                    self.leg_b.is_some() && params["CallId"].as_str() == self.leg_b.as_deref();
                let tag = if names_b || params["ParticipantTag"] == "LEG-B" {
                    "LEG-B"
                } else {
                    "LEG-A"
                };
                let code = params["SipResponseCode"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                Step::Event(self.hangup(tag, Some(code)).await)
            }
            _ => {
                if let Some(answered) = self.hear(callee, 200, false).await {
                    return Step::Event(answered);
                }
                Step::Done(echo(json!({})))
            }
        }
    }

    /// Whether the callee will press a key during the action list now running: an opting-out
    /// callee, once a listener was ever armed, presses once per list.
    fn presses(&self, callee: &Callee) -> bool {
        matches!(callee, Callee::OptsOut { .. })
            && !self.pressed_in_list
            && (self.listener.is_some() || self.key.is_some())
    }

    /// Records a prompt that played from `started` to now.
    fn prompt_played(&mut self, started: u64, cut: bool) {
        let ended = self.position();
        if let Some(heard) = &mut self.heard {
            heard.prompts.push(PromptReport {
                started_ms: started,
                ended_ms: ended,
                cut,
            });
        }
        self.sync_audio();
    }

    /// The key an opting-out callee would press now (see [`Call::press`]).
    fn next_key(&self) -> Option<String> {
        match &self.listener {
            Some(listener) => single_key(
                listener["Parameters"]["InputDigitsRegex"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .map(str::to_owned),
            None => self.key.clone(),
        }
    }

    /// The callee listens for `simulated_ms` while an action runs (`playing`: one of our
    /// prompts). A mailbox hangs up when its time comes within it (a prompt played into its
    /// recording lets it record to its limit); its `HANGUP` answer is returned. An
    /// opting-out callee who has not yet pressed during this action list presses its key
    /// `PRESS_MS` in (or at the end of a shorter action); when that produces a
    /// `DIGITS_RECEIVED` whose answer has actions (or breaks the contract, or is lost), that
    /// answer takes over the call and is returned. Otherwise the action runs its course.
    async fn hear(
        &mut self,
        callee: &Callee,
        simulated_ms: u64,
        playing: bool,
    ) -> Option<Answered> {
        let at = self.position();
        if let Some(heard) = self.heard.as_mut().filter(|_| callee.is_mailbox()) {
            let recording_from = heard.voice.greeting_end_ms;
            let gives_up_at = heard.mailbox_hangs_up_at().unwrap_or(u64::MAX);
            if playing && at < gives_up_at && at.saturating_add(simulated_ms) > recording_from {
                heard.recording_heard = true;
            }
            let hangs_up_at = heard.mailbox_hangs_up_at().unwrap_or(u64::MAX);
            if at.saturating_add(simulated_ms) > hangs_up_at {
                self.sleep(hangs_up_at.saturating_sub(at)).await;
                return Some(self.callee_hangs_up("   the mailbox hangs up").await);
            }
            self.sleep(simulated_ms).await;
            return None;
        }
        if !self.presses(callee) {
            self.sleep(simulated_ms).await;
            return None;
        }
        let before = PRESS_MS.min(simulated_ms);
        self.sleep(before).await;
        match self.press().await {
            Some(Answered::Actions(actions)) if actions.is_empty() => {}
            Some(answered) => return Some(answered),
            None => {}
        }
        self.sleep(simulated_ms - before).await;
        None
    }

    /// An opting-out callee presses its key: the single key that fully matches the armed
    /// listener's regex, else the one it pressed before. A match disarms the listener and
    /// sends `DIGITS_RECEIVED` once the gap between digits has passed; with nothing armed the
    /// key is thrown away. Returns the handler's answer to `DIGITS_RECEIVED`, if one was sent.
    async fn press(&mut self) -> Option<Answered> {
        self.pressed_in_list = true;
        let Some(listener) = self.listener.clone() else {
            if let Some(key) = &self.key {
                self.note(format!("   the callee presses {key}: nothing listens"));
            }
            return None;
        };
        let regex = listener["Parameters"]["InputDigitsRegex"]
            .as_str()
            .unwrap_or_default();
        let Some(key) = single_key(regex) else {
            self.note(format!(
                "   no single key matches {regex}: the callee presses nothing"
            ));
            return None;
        };
        self.note(format!("   the callee presses {key}"));
        self.key = Some(key.to_owned());
        self.listener = None;
        let gap = &listener["Parameters"]["InBetweenDigitsDurationInMilliseconds"];
        let gap = gap
            .as_u64()
            .or_else(|| gap.as_str().and_then(|g| g.parse().ok()))
            .unwrap_or(0);
        self.sleep(gap).await;
        let mut data = listener;
        data["ReceivedDigits"] = json!(key);
        Some(self.invoke("DIGITS_RECEIVED", Some(data), None).await)
    }
}

/// The first key of a phone that `regex` matches in full, as the service matches the digits
/// it buffered; none when the regex cannot be read or wants more than one key.
fn single_key(regex: &str) -> Option<&'static str> {
    let whole = regex::Regex::new(&format!("^(?:{regex})$")).ok()?;
    KEYS.into_iter().find(|key| whole.is_match(key))
}

/// Whether an event names its call: the dial's arguments, or attributes holding its id.
fn names_its_call(event: &Value) -> bool {
    event
        .pointer("/ActionData/Parameters/Arguments/call_id")
        .or_else(|| event.pointer("/CallDetails/TransactionAttributes/call_id"))
        .is_some_and(|id| id.as_str().is_some_and(|id| !id.is_empty()))
}

/// Logs one invocation of the handler for `transaction`; returns its place in the log.
fn log_invocation(inner: &Inner, transaction: &str, invocation: Invocation) -> usize {
    let mut shared = inner.lock();
    match shared.calls.get_mut(transaction) {
        Some(call) => {
            call.invocation_log.push(invocation);
            call.invocation_log.len() - 1
        }
        None => 0,
    }
}

/// What one action came to.
enum Step {
    Done(Value),
    Failed(Value),
    /// The action produced an event of its own (a hang-up), already sent.
    Event(Answered),
}
