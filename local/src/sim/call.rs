//! One simulated call: its legs, its `Sequence`, its `TransactionAttributes`, and the loop
//! that invokes the SMA handler and runs what it answers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use outdial_core::contract::{MAX_ATTRIBUTES, validate_response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::rng::Rng;
use super::{CallReport, Callee, HandlerRan, Inner, Invocation, carrier};

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
        shared.updates.insert(transaction.to_owned(), tx);
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
            },
        );
        rejected
    };
    let call = Call {
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

struct Call {
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
        tokio::time::sleep(self.inner.config.real(simulated_ms)).await;
        self.simulated_ms = self.simulated_ms.saturating_add(simulated_ms);
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
            tokio::spawn(async move {
                tokio::time::sleep(late).await;
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
            Callee::Answer { after_ms, .. }
            | Callee::HangUpMidPrompt { after_ms }
            | Callee::OptsOut { after_ms }
            | Callee::Voicemail { after_ms, .. } => {
                self.invoke("RINGING", None, None).await;
                if self.ring(after_ms).await {
                    self.a_connected = true;
                    self.answered_at_ms = Some(self.simulated_ms);
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
        let until = tokio::time::Instant::now() + self.inner.config.real(ms);
        loop {
            let update = tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                update = self.updates.recv() => update,
            };
            let Some(arguments) = update else { return true };
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
            if let Some(answered) = self.hear(callee, PRESS_MS).await {
                return answered;
            }
        }
        let wait_ms = if matches!(callee, Callee::Voicemail { .. }) {
            2_000
        } else {
            IDLE_MS
        };
        let wait = self.inner.config.real(wait_ms);
        let waiting = tokio::time::Instant::now();
        let update = tokio::select! {
            () = tokio::time::sleep(wait) => None,
            update = self.updates.recv() => update,
        };
        self.simulated_ms = self.simulated_ms.saturating_add(match update {
            None => wait_ms,
            Some(_) => self.simulated(waiting.elapsed(), wait_ms),
        });
        match update {
            Some(arguments) => {
                self.invoke(
                    "CALL_UPDATE_REQUESTED",
                    Some(json!({"Type": "CallUpdateRequest", "Parameters": {"Arguments": arguments}})),
                    None,
                )
                .await
            }
            None => {
                self.note("   the callee hangs up");
                self.hangup("LEG-A", Some(0)).await
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
                if matches!(callee, Callee::HangUpMidPrompt { .. }) && *prompts_heard == 1 {
                    self.sleep(prompt / 2).await;
                    self.note(format!("   the callee hangs up during {kind}"));
                    return Step::Event(self.hangup("LEG-A", Some(0)).await);
                }
                if let Some(answered) = self.hear(callee, prompt).await {
                    return Step::Event(answered);
                }
                if !kind.ends_with("GetDigits") {
                    self.note(format!("   {kind} played"));
                    return Step::Done(echo(json!({})));
                }
                let digits = match callee {
                    Callee::Answer {
                        digits: Some(d), ..
                    } => Some(d.clone()),
                    _ => None,
                };
                match digits {
                    Some(d) => {
                        if let Some(answered) = self.hear(callee, 1_000).await {
                            return Step::Event(answered);
                        }
                        self.note(format!("   the callee presses {d}"));
                        Step::Done(echo(json!({"ReceivedDigits": d})))
                    }
                    None => {
                        let tries = ms("Repeat", 1).max(1);
                        let wait = tries * ms("RepeatDurationInMilliseconds", 5_000);
                        if let Some(answered) = self.hear(callee, wait).await {
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
                if let Some(answered) = self.hear(callee, ms("DurationInMilliseconds", 1_000)).await
                {
                    return Step::Event(answered);
                }
                Step::Done(echo(json!({})))
            }
            "RecordAudio" => {
                let record_ms = match callee {
                    Callee::Voicemail { record_ms, .. } => *record_ms,
                    _ => ms("DurationInSeconds", 10) * 1_000,
                };
                if let Some(answered) = self.hear(callee, record_ms).await {
                    return Step::Event(answered);
                }
                let bucket = params["RecordingDestination"]["BucketName"].clone();
                Step::Done(echo(
                    json!({"RecordingDestination": {"Type": "S3", "BucketName": bucket,
                    "Key": format!("{}.wav", self.transaction)}}),
                ))
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
                if let Some(answered) = self.hear(callee, 3_000).await {
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
                if let Some(answered) = self.hear(callee, 200).await {
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

    /// The callee listens for `simulated_ms` while an action runs. An opting-out callee who
    /// has not yet pressed during this action list presses its key `PRESS_MS` in (or at the
    /// end of a shorter action); when that produces a `DIGITS_RECEIVED` whose answer has
    /// actions (or breaks the contract, or is lost), that answer takes over the call and is
    /// returned. Otherwise the action runs its course.
    async fn hear(&mut self, callee: &Callee, simulated_ms: u64) -> Option<Answered> {
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
