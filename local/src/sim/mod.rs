//! The PSTN simulator: the Amazon Chime SDK PSTN audio service, played on one machine.
//!
//! It serves the part of the Chime SDK Voice API outdial calls
//! (`POST /sip-media-applications/{id}/calls` and `.../calls/{transactionId}`), so the real
//! `aws-sdk-chimesdkvoice` client reaches it through `endpoint_url`. Each placed call gets a
//! callee ([`Callee`]) and a driver ([`call`]) that invokes the SMA handler with events shaped
//! and numbered as `docs/pstn-audio.md` says, runs the returned actions with their durations
//! scaled by `speed`, keeps a transcript, and enforces the contract: an answer the service
//! would refuse is counted as a violation and followed by `INVALID_LAMBDA_RESPONSE`.
//!
//! Faults are drawn from a seeded source, so a run repeats exactly: duplicated and delayed
//! events, failed invocations, 429 and 5xx answers from the Create API, and 5xx answers for
//! calls that were in fact placed (which makes a double dial observable).

pub mod audio;
pub mod call;
pub mod callee;
pub mod carrier;
pub mod clock;
pub mod knowable;
pub mod rng;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::future::BoxFuture;
use outdial_core::time::Clock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use audio::{SoundKind, StopBy, Timeline, Truth};
pub use callee::{Callee, Callees, CalleesFileError, Persona, UnknownPersona, parse_callees_file};
pub use carrier::Carrier;

/// The `ArgumentsMap` key that says why a call is made (`informational`, `healthcare`,
/// `telemarketing`, `emergency`), as the dispatcher sends it; a dial without it counts as
/// [`UNSPECIFIED`].
pub use outdial_core::messages::keys::PURPOSE as PURPOSE_KEY;
/// The purpose of a dial whose `ArgumentsMap` names none.
pub const UNSPECIFIED: &str = "unspecified";

/// Invokes the SMA handler, as the service invokes the Lambda function.
pub trait Invoke: Send + Sync + 'static {
    /// Sends one event; the handler's answer, or why the invocation failed.
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>>;
}

/// Rates of faults, each a probability per opportunity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// An event is delivered a second time, later.
    pub duplicate: f64,
    /// An event is held back before delivery (up to `delay_ms`).
    pub delay: f64,
    pub delay_ms: u64,
    /// An invocation fails (the service retries it once).
    pub invoke_error: f64,
    /// `CreateSipMediaApplicationCall` answers 429.
    pub throttle: f64,
    /// `CreateSipMediaApplicationCall` answers 500 without placing the call.
    pub create_error: f64,
    /// `CreateSipMediaApplicationCall` places the call, then answers 500.
    pub create_error_after_placed: f64,
}

/// How the simulator's time passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimTime {
    /// Each simulated wait of a call is slept in real time, scaled by `speed`; the clock reads
    /// the start plus the real time elapsed divided by `speed`.
    #[default]
    Scaled,
    /// Each simulated wait of a call waits on a virtual clock, which moves (to the earliest
    /// wait) only when every live call is waiting on it: the handler's latency takes no
    /// simulated time, and a run's timings do not depend on the machine. `speed` is unused.
    Virtual,
}

/// How the simulator runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Real seconds per simulated second (0.01 runs a minute-long call in 0.6 s).
    pub speed: f64,
    pub seed: u64,
    pub faults: Faults,
    pub callees: Callees,
    /// How long a simulated agent reached by a transfer talks before hanging up.
    pub agent_talk_ms: u64,
    /// Real seconds per second of the SMA's own deadlines on the handler (the 5 s re-send and
    /// the 20 s hang-up). They bound the handler's real latency, so they run in real time
    /// (1.0) unless a test shortens them to see them fire.
    pub deadline_speed: f64,
    /// Where the time of each placement comes from, for the report's `placed_per_from` and
    /// the carrier model: `clock.now()` when set (a test's virtual clock), else the wall time
    /// elapsed since the simulator started (not scaled by `speed`). Not serialized.
    #[serde(skip)]
    pub clock: Option<Arc<dyn Clock>>,
    /// The carrier's judgement of caller IDs ([`Carrier`]); off when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<Carrier>,
    /// Scaled (by `speed`) or virtual time ([`SimTime`]); [`Simulator::clock`] reads it.
    pub time: SimTime,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            speed: 0.01,
            seed: 1,
            faults: Faults::default(),
            callees: Callees::default(),
            agent_talk_ms: 20_000,
            deadline_speed: 1.0,
            clock: None,
            carrier: None,
            time: SimTime::Scaled,
        }
    }
}

/// Equal fields; two clocks are equal when they are the same clock.
impl PartialEq for SimConfig {
    fn eq(&self, other: &Self) -> bool {
        let Self {
            speed,
            seed,
            faults,
            callees,
            agent_talk_ms,
            deadline_speed,
            clock,
            carrier,
            time,
        } = self;
        let same_clock = match (clock, &other.clock) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        *speed == other.speed
            && *seed == other.seed
            && *faults == other.faults
            && *callees == other.callees
            && *agent_talk_ms == other.agent_talk_ms
            && *deadline_speed == other.deadline_speed
            && same_clock
            && *carrier == other.carrier
            && *time == other.time
    }
}

impl SimConfig {
    /// A simulated duration of the call (ringing, prompts, pauses) in real time.
    #[must_use]
    pub fn real(&self, simulated_ms: u64) -> Duration {
        scaled(simulated_ms, self.speed)
    }

    /// One of the SMA's deadlines on the handler, in real time.
    #[must_use]
    pub fn deadline(&self, ms: u64) -> Duration {
        scaled(ms, self.deadline_speed)
    }
}

fn scaled(ms: u64, speed: f64) -> Duration {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let real = (ms as f64 * speed).max(0.0) as u64;
    Duration::from_millis(real)
}

/// A rule of the contract the handler broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub transaction_id: String,
    pub sequence: u64,
    pub rule: String,
}

/// One call as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    pub transaction_id: String,
    pub to: String,
    pub callee: Callee,
    /// The dial's `ArgumentsMap` (`call_id`, `attempt`, ...): which attempt this call is.
    pub arguments: BTreeMap<String, String>,
    pub invocations: u64,
    pub ended: bool,
    pub transcript: Vec<String>,
    /// Milliseconds from the simulator's start to the Create request that placed it.
    #[serde(default)]
    pub placed_ms: u64,
    /// Whether the Create API answered the dialer `201` with the transaction (false when it
    /// placed the call and answered `500`: the dialer could not know the call exists).
    #[serde(default)]
    pub create_answered: bool,
    /// Every invocation of the SMA function for this call, re-sends and late copies included:
    /// what the handler could have known.
    #[serde(default)]
    pub invocation_log: Vec<Invocation>,
    /// What the callee sounded like and what it heard, once it answered ([`AudioReport`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioReport>,
}

/// An answered call's audio, in milliseconds from the answer on the call's simulated time
/// line: who answered, what they sounded like, and what they heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioReport {
    /// `person` or `machine`: what a detector should have judged.
    pub truth: Truth,
    /// The persona word the callee plays (`confirms`, `voicemail`, ...), or the `kind` of a
    /// callee no word names (`answer`, `person`).
    pub persona: String,
    /// A person's first words; 0 for one who says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_ms: Option<u64>,
    /// A mailbox's greeting (its phrases and pauses, not the beep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting_ms: Option<u64>,
    /// When a mailbox's beep starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beep_at_ms: Option<u64>,
    /// When the callee's own sound ends for good: the end of the beep, or of the last words
    /// (0 for one who says nothing). A mailbox records from here.
    pub greeting_end_ms: u64,
    /// A mailbox's longest pause inside its greeting (before the beep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_pause_ms: Option<u64>,
    /// When the first prompt (`Speak`, `PlayAudio`, `...AndGetDigits`) started: the dead air
    /// a person hears. `None` when no prompt played.
    #[serde(default)]
    pub first_prompt_ms: Option<u64>,
    /// Every `RecordAudio` that ran to its end, and what stopped it.
    #[serde(default)]
    pub recordings: Vec<RecordingReport>,
    /// For a machine: every prompt played on the call, in order (empty for a person).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message: Vec<PromptReport>,
    /// For a machine: at least one prompt played, every one started at or after
    /// `greeting_end_ms`, and none was cut by the mailbox hanging up: the mailbox holds the
    /// whole message (the handler's own `Hangup` after it is fine). Always false for a person.
    #[serde(default)]
    pub whole_after_greeting: bool,
    /// When the callee hung up on its own, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hung_up_ms: Option<u64>,
}

/// One `RecordAudio` that completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingReport {
    pub started_ms: u64,
    pub ended_ms: u64,
    pub stopped_by: StopBy,
}

/// One prompt played to a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptReport {
    pub started_ms: u64,
    pub ended_ms: u64,
    /// The mailbox hung up while it played.
    pub cut: bool,
}

impl AudioReport {
    /// Whether a machine holds the whole message, derived from `message` and
    /// `greeting_end_ms` (so it reads right from a report written without the field): see
    /// the field `whole_after_greeting`.
    #[must_use]
    pub fn whole_after_greeting(&self) -> bool {
        self.truth == Truth::Machine && whole_after(&self.message, self.greeting_end_ms)
    }
}

/// At least one prompt, every one started at or after `greeting_end_ms`, none cut.
pub(crate) fn whole_after(prompts: &[PromptReport], greeting_end_ms: u64) -> bool {
    !prompts.is_empty()
        && prompts
            .iter()
            .all(|p| p.started_ms >= greeting_end_ms && !p.cut)
}

/// One invocation of the SMA function for a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// The `InvocationEventType`.
    pub event_type: String,
    pub sequence: u64,
    /// Milliseconds from the simulator's start to the invocation, and to its answer or
    /// failure.
    pub sent_ms: u64,
    pub answered_ms: u64,
    /// Whether the handler ran.
    pub handler: HandlerRan,
    /// Whether the service took the handler's answer (in time, not lost, within the
    /// contract). A late copy's answer is never taken.
    pub accepted: bool,
    /// Whether the event named its call: the dial's arguments (`NEW_OUTBOUND_CALL`) or
    /// `TransactionAttributes` holding its `call_id` (set by an earlier answer the service
    /// took). An event that names nothing can only be matched by its transaction.
    #[serde(default)]
    pub named: bool,
    /// A duplicate the network delivered again later.
    #[serde(default)]
    pub copy: bool,
}

/// Whether an invocation reached the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerRan {
    /// It ran (its answer may still have been lost on the way back).
    Ran,
    /// It failed before the handler ran (a throttled function).
    NotRun,
    /// It timed out or the Invoke API failed: the handler may or may not have run.
    Unknown,
}

/// One `CreateSipMediaApplicationCall` request and what it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// Milliseconds from the simulator's start.
    pub at_ms: u64,
    pub to: String,
    pub call_id: Option<String>,
    pub attempt: Option<u32>,
    /// The HTTP status answered.
    pub status: u16,
    /// The call it placed, if it placed one (also when it answered `500`).
    pub transaction_id: Option<String>,
}

/// The calls placed from one caller ID (the Create request's `FromPhoneNumber`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromUsage {
    /// Create requests from it answered `201`.
    pub total: u32,
    /// The most of them within any 60 s window (sliding, not calendar minutes).
    pub max_per_minute: u32,
    /// The most of them within any 3,600 s window (sliding).
    pub max_per_hour: u32,
}

/// What a run came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub calls: Vec<CallReport>,
    pub violations: Vec<Violation>,
    /// Calls placed per dialed number; more than one per `(call_id, attempt)` is a double dial.
    pub placed_per_number: BTreeMap<String, u32>,
    /// Calls placed per dialed number and per purpose: the `purpose` of the dial's
    /// `ArgumentsMap`, or `unspecified`.
    #[serde(default)]
    pub placed_per_number_purpose: BTreeMap<String, BTreeMap<String, u32>>,
    /// `DIGITS_RECEIVED` events sent (each counted once, whatever its re-sends and copies):
    /// keys that matched an armed `ReceiveDigits`.
    #[serde(default)]
    pub digits_received: u32,
    pub double_dials: u32,
    /// Calls the Create API accepted in each second of the run, from the first.
    pub placed_per_second: Vec<u32>,
    /// The most calls accepted within any one-second window (sliding, not calendar seconds).
    pub max_in_any_second: u32,
    /// Seconds from the first accepted call to the last.
    pub placing_span_s: f64,
    pub create_requests: u64,
    pub throttled: u64,
    /// Every Create request with a readable body, in the order they came.
    #[serde(default)]
    pub creates: Vec<CreateRequest>,
    /// Calls placed (Create requests answered `201`) per caller ID, timed by the placement
    /// clock (`SimConfig::clock`, else wall time since the start).
    #[serde(default)]
    pub placed_per_from: BTreeMap<String, FromUsage>,
    /// Calls the carrier model rejected with SIP 608, per caller ID.
    #[serde(default)]
    pub carrier_rejected: BTreeMap<String, u32>,
}

impl Report {
    /// The answered calls with their audio: who answered (`truth`), what they sounded like and
    /// heard, in the order of `calls`. A bench joins these with the handler's verdicts by
    /// `transaction_id` or `to`.
    pub fn audio(&self) -> impl Iterator<Item = (&CallReport, &AudioReport)> {
        self.calls
            .iter()
            .filter_map(|c| c.audio.as_ref().map(|a| (c, a)))
    }
}

/// Where a call's updates (`UpdateSipMediaApplicationCall` arguments) go.
pub(crate) type Updates = mpsc::UnboundedSender<BTreeMap<String, String>>;

#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub calls: BTreeMap<String, CallReport>,
    pub violations: Vec<Violation>,
    /// Each live call's updates: the channel to its driver and, in virtual time, the id of
    /// its participant on the clock.
    pub updates: BTreeMap<String, (Updates, Option<u64>)>,
    pub placed: Vec<(Instant, String, String)>,
    pub create_requests: u64,
    pub throttled: u64,
    /// Create requests seen per dialed number and attempt, so that each one draws its faults
    /// from a source of its own.
    pub tries: BTreeMap<String, u32>,
    pub creates: Vec<CreateRequest>,
    /// Each call placed with a `201`: its caller ID and the placement clock's milliseconds.
    pub placed_from: Vec<(String, i64)>,
    /// What the carrier model knows of each caller ID.
    pub caller_ids: carrier::CallerIds,
    pub carrier_rejected: BTreeMap<String, u32>,
}

pub(crate) struct Inner {
    pub config: SimConfig,
    pub invoker: Arc<dyn Invoke>,
    pub shared: Mutex<Shared>,
    pub started: Instant,
    pub sma_id: String,
    /// The simulator's time ([`Simulator::clock`]).
    pub clock: Arc<dyn Clock>,
    /// In [`SimTime::Virtual`], the clock every call waits on.
    pub virtual_clock: Option<clock::VirtualClock>,
}

impl Inner {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The draws of one thing the simulator does, named by `key`: the same seed and key give
    /// the same draws whatever else runs at the same time, so a run's faults repeat per call
    /// and per request however the calls interleave.
    pub fn draws(&self, key: &str) -> rng::Rng {
        rng::Rng::new(rng::mix(self.config.seed ^ rng::hash(key.as_bytes())))
    }

    /// Milliseconds since the simulator started: the time line of its report.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The placement clock, in milliseconds: `SimConfig::clock` when set, else the wall time
    /// since the simulator started.
    pub fn clock_ms(&self) -> i64 {
        match &self.config.clock {
            Some(clock) => clock.now().as_millis(),
            None => i64::try_from(self.now_ms()).unwrap_or(i64::MAX),
        }
    }

    pub fn violation(&self, transaction_id: &str, sequence: u64, rule: impl Into<String>) {
        let rule = rule.into();
        tracing::warn!(transaction_id, sequence, %rule, "contract violation");
        self.lock().violations.push(Violation {
            transaction_id: transaction_id.to_owned(),
            sequence,
            rule,
        });
    }
}

/// A running simulator; dropping it stops the API server (calls in flight finish on their own).
pub struct Simulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Serves the Voice API for SIP media application `sma_id` on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(
        config: SimConfig,
        sma_id: &str,
        invoker: Arc<dyn Invoke>,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let origin = clock::wall_now();
        let (sim_clock, virtual_clock): (Arc<dyn Clock>, _) = match config.time {
            SimTime::Scaled => (
                Arc::new(clock::ScaledClock::new(origin, started, config.speed)),
                None,
            ),
            SimTime::Virtual => {
                let v = clock::VirtualClock::new(origin);
                (Arc::new(v.clone()), Some(v))
            }
        };
        let inner = Arc::new(Inner {
            config,
            invoker,
            shared: Mutex::new(Shared::default()),
            started,
            sma_id: sma_id.to_owned(),
            clock: sim_clock,
            virtual_clock,
        });
        let app = Router::new()
            .route("/sip-media-applications/{sma}/calls", post(create))
            .route(
                "/sip-media-applications/{sma}/calls/{transaction}",
                post(update),
            )
            .route("/_outdial/report", axum::routing::get(report))
            .with_state(Arc::clone(&inner));
        let (addr, server) = crate::serve(app, "PSTN simulator").await?;
        Ok(Self {
            inner,
            addr,
            server,
        })
    }

    /// The Voice API endpoint (`AWS_ENDPOINT_URL_CHIME_SDK_VOICE`).
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls placed and not yet ended.
    #[must_use]
    pub fn live_calls(&self) -> usize {
        self.inner
            .lock()
            .calls
            .values()
            .filter(|c| !c.ended)
            .count()
    }

    /// Waits until every placed call has ended, up to `timeout` of real time.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.live_calls() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// What happened so far.
    #[must_use]
    pub fn report(&self) -> Report {
        report_of(&self.inner)
    }

    /// Milliseconds since the simulator started: the time line of its report's `placed_ms`,
    /// `sent_ms` and `at_ms`, for placing other events (an outage) on it.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    /// The simulator's time, for a handler that times the calls (an answering-machine
    /// detector measuring a `RecordAudio`). In [`SimTime::Scaled`] it reads the wall time at
    /// the start plus the real time since divided by `speed` (real time at 1.0), and sleeps
    /// `speed` times as long in real time; in [`SimTime::Virtual`] it is the virtual clock the
    /// calls wait on, starting at the wall time of the start.
    #[must_use]
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }
}

/// The report of a simulator, as [`Simulator::report`] and `GET /_outdial/report` give it.
fn report_of(inner: &Inner) -> Report {
    {
        let shared = inner.lock();
        let mut placed_per_number = BTreeMap::new();
        let mut per_attempt: BTreeMap<&str, u32> = BTreeMap::new();
        let mut placed_per_second = Vec::new();
        for (at, to, key) in &shared.placed {
            *placed_per_number.entry(to.clone()).or_insert(0) += 1;
            *per_attempt.entry(key.as_str()).or_insert(0) += 1;
            let second =
                usize::try_from(at.duration_since(inner.started).as_secs()).unwrap_or(usize::MAX);
            if placed_per_second.len() <= second {
                placed_per_second.resize(second + 1, 0);
            }
            placed_per_second[second] += 1;
        }
        let mut times: Vec<Instant> = shared.placed.iter().map(|(at, ..)| *at).collect();
        times.sort();
        let mut max_in_any_second = 0;
        let mut start = 0;
        for (end, at) in times.iter().enumerate() {
            while at.duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            max_in_any_second =
                max_in_any_second.max(u32::try_from(end - start + 1).unwrap_or(u32::MAX));
        }
        let mut placed_per_number_purpose: BTreeMap<String, BTreeMap<String, u32>> =
            BTreeMap::new();
        let mut digits_received = 0;
        for call in shared.calls.values() {
            let purpose = call
                .arguments
                .get(PURPOSE_KEY)
                .map_or(UNSPECIFIED, String::as_str);
            *placed_per_number_purpose
                .entry(call.to.clone())
                .or_default()
                .entry(purpose.to_owned())
                .or_insert(0) += 1;
            let sent: std::collections::BTreeSet<u64> = call
                .invocation_log
                .iter()
                .filter(|i| i.event_type == "DIGITS_RECEIVED" && !i.copy)
                .map(|i| i.sequence)
                .collect();
            digits_received += u32::try_from(sent.len()).unwrap_or(u32::MAX);
        }
        let mut per_from: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (from, at) in &shared.placed_from {
            per_from.entry(from.as_str()).or_default().push(*at);
        }
        let placed_per_from = per_from
            .into_iter()
            .map(|(from, mut times)| {
                times.sort_unstable();
                let usage = FromUsage {
                    total: u32::try_from(times.len()).unwrap_or(u32::MAX),
                    max_per_minute: most_within(&times, 60_000),
                    max_per_hour: most_within(&times, 3_600_000),
                };
                (from.to_owned(), usage)
            })
            .collect();
        let placing_span_s = match (times.first(), times.last()) {
            (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
            _ => 0.0,
        };
        Report {
            max_in_any_second,
            placing_span_s,
            calls: shared.calls.values().cloned().collect(),
            violations: shared.violations.clone(),
            placed_per_number,
            placed_per_number_purpose,
            digits_received,
            double_dials: per_attempt.values().map(|n| n.saturating_sub(1)).sum(),
            placed_per_second,
            create_requests: shared.create_requests,
            throttled: shared.throttled,
            creates: shared.creates.clone(),
            placed_per_from,
            carrier_rejected: shared.carrier_rejected.clone(),
        }
    }
}

/// The most of `times` (sorted milliseconds) within any window of `window_ms` (sliding: a
/// time and every one less than `window_ms` after it).
fn most_within(times: &[i64], window_ms: i64) -> u32 {
    let mut most = 0;
    let mut start = 0;
    for (end, at) in times.iter().enumerate() {
        while at.saturating_sub(times[start]) >= window_ms {
            start += 1;
        }
        most = most.max(u32::try_from(end - start + 1).unwrap_or(u32::MAX));
    }
    most
}

/// `GET /_outdial/report`: the report of a running simulator (not part of the Voice API; the
/// path cannot collide with one of its).
async fn report(State(inner): State<Arc<Inner>>) -> Response {
    Json(report_of(&inner)).into_response()
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A Chime SDK Voice client for the simulator at `endpoint` (any credentials will do).
#[must_use]
pub fn voice_client(endpoint: &str) -> aws_sdk_chimesdkvoice::Client {
    aws_sdk_chimesdkvoice::Client::from_conf(
        crate::local_config!(aws_sdk_chimesdkvoice, endpoint).build(),
    )
}

/// The Voice API client `function` has in production (its timeouts and retries), for the
/// simulator at `endpoint`.
#[must_use]
pub fn function_voice_client(
    endpoint: &str,
    function: outdial_core::messages::Function,
) -> aws_sdk_chimesdkvoice::Client {
    let deadline = outdial_adapters::config::Deadline::of(function);
    aws_sdk_chimesdkvoice::Client::from_conf(
        crate::local_config!(aws_sdk_chimesdkvoice, endpoint, deadline).build(),
    )
}

/// A Voice API error, shaped as the service sends it (rest-json: the code in
/// `x-amzn-ErrorType`, the message in the body).
fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-ErrorType", v);
    }
    (
        status,
        headers,
        Json(json!({"Code": code, "Message": message})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    from_phone_number: Option<String>,
    to_phone_number: Option<String>,
    #[serde(default)]
    arguments_map: BTreeMap<String, String>,
    #[serde(default)]
    sip_headers: BTreeMap<String, String>,
}

fn e164ish(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

async fn create(
    State(inner): State<Arc<Inner>>,
    Path(sma): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    inner.lock().create_requests += 1;
    if sma != inner.sma_id {
        return api_error(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            "no such SIP media application",
        );
    }
    let Ok(body) = serde_json::from_slice::<CreateBody>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "the request body is not valid",
        );
    };
    let (Some(from), Some(to)) = (body.from_phone_number, body.to_phone_number) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "FromPhoneNumber and ToPhoneNumber are required",
        );
    };
    if !e164ish(&from) || !e164ish(&to) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "phone numbers must match ^\\+?[1-9]\\d{1,14}$",
        );
    }
    if body.arguments_map.len() > 20 || body.sip_headers.len() > 20 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "ArgumentsMap and SipHeaders take at most 20 entries",
        );
    }
    // This request's draws: the number, the attempt it dials, and how many requests for that
    // attempt came before it.
    let attempt_key = format!(
        "{to}#{}#{}",
        body.arguments_map.get("call_id").map_or("", String::as_str),
        body.arguments_map.get("attempt").map_or("", String::as_str)
    );
    let try_number = {
        let mut shared = inner.lock();
        let n = shared.tries.entry(attempt_key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let mut draws = inner.draws(&format!("create#{attempt_key}#{try_number}"));
    let faults = inner.config.faults;
    let request = CreateRequest {
        at_ms: inner.now_ms(),
        to: to.clone(),
        call_id: body.arguments_map.get("call_id").cloned(),
        attempt: body
            .arguments_map
            .get("attempt")
            .and_then(|a| a.parse().ok()),
        status: 0,
        transaction_id: None,
    };
    let answered = |status: StatusCode, transaction_id: Option<&str>| {
        inner.lock().creates.push(CreateRequest {
            status: status.as_u16(),
            transaction_id: transaction_id.map(str::to_owned),
            ..request.clone()
        });
    };
    if draws.chance(faults.throttle) {
        inner.lock().throttled += 1;
        answered(StatusCode::TOO_MANY_REQUESTS, None);
        return api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottledClientException",
            "Rate exceeded",
        );
    }
    if draws.chance(faults.create_error) {
        answered(StatusCode::INTERNAL_SERVER_ERROR, None);
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceFailureException",
            "simulated failure",
        );
    }
    let transaction = uuid::Uuid::new_v4().to_string();
    let call_draws = inner.draws(&format!("call#{attempt_key}#{try_number}"));
    let clock_ms = inner.clock_ms();
    // Drawn now (from the request's own source, so in the same order as ever) so that the
    // call's report says from the start whether the dialer hears of it.
    let fail_after_placing = draws.chance(faults.create_error_after_placed);
    call::place(
        &inner,
        &call::Placed {
            transaction: &transaction,
            from: &from,
            to: &to,
            answered: !fail_after_placing,
            clock_ms,
        },
        body.arguments_map,
        call_draws,
    );
    if fail_after_placing {
        answered(StatusCode::INTERNAL_SERVER_ERROR, Some(&transaction));
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceFailureException",
            "simulated failure after placing the call",
        );
    }
    answered(StatusCode::CREATED, Some(&transaction));
    inner.lock().placed_from.push((from, clock_ms));
    (
        StatusCode::CREATED,
        Json(json!({"SipMediaApplicationCall": {"TransactionId": transaction}})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateBody {
    arguments: Option<BTreeMap<String, String>>,
}

async fn update(
    State(inner): State<Arc<Inner>>,
    Path((sma, transaction)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if sma != inner.sma_id {
        return api_error(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            "no such SIP media application",
        );
    }
    let Ok(UpdateBody {
        arguments: Some(arguments),
    }) = serde_json::from_slice::<UpdateBody>(&body)
    else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "Arguments is required",
        );
    };
    if arguments.len() > 20 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "Arguments takes at most 20 entries",
        );
    }
    let sender = inner.lock().updates.get(&transaction).cloned();
    let delivered =
        sender.is_some_and(
            |(tx, participant)| match (&inner.virtual_clock, participant) {
                (Some(clock), Some(id)) => clock.deliver(id, || tx.send(arguments).is_ok()),
                _ => tx.send(arguments).is_ok(),
            },
        );
    if delivered {
        (
            StatusCode::ACCEPTED,
            Json(json!({"SipMediaApplicationCall": {"TransactionId": transaction}})),
        )
            .into_response()
    } else {
        api_error(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            "the call is not in progress",
        )
    }
}
