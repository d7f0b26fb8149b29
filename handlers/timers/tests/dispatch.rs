//! The dispatcher over the PSTN simulator, the SMA handler and DynamoDB Local: every call
//! ends, none is dialed twice, whatever the Voice API answers; retries wait their time,
//! calling windows hold calls across daylight-saving changes, a paused campaign stops
//! dialing and a cancelled one ends its calls.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use outdial_adapters::clock::SystemClock;
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::item::{key, shard_of_key, sweep_due_key};
use outdial_adapters::store::DynamoStore;
use outdial_core::ids::{CallId, CampaignId, E164};
use outdial_core::lifecycle::CallStatus;
use outdial_core::messages::Function;
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::{RetryPolicy, RetrySpec};
use outdial_core::time::{Clock, ManualClock, Timestamp};
use outdial_core::window::CallingWindow;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::record::{Record, Recorder};
use outdial_local::sim::{Callee, Callees, Faults, Report, SimConfig, Simulator, voice_client};
use outdial_local::tables::{client, fresh_table};
use outdial_sma::{Settings as SmaSettings, SmaHandler};
use outdial_stack::InProcess;
use outdial_timers::{Dispatcher, Settings, Stats};

#[path = "dispatch/compliance.rs"]
mod compliance;
#[path = "dispatch/pools.rs"]
mod pools;

const SCRIPT: &str = r#"{"start": "menu", "steps": {
    "menu": {"gather": {"say": "Press 1 to confirm."}, "branches": {"1": "ok"}, "no_input": "bye"},
    "ok": {"say": "Thank you.", "outcome": "confirmed"},
    "bye": {"say": "Goodbye.", "outcome": "no_input"}}}"#;

/// A script that keeps an answered callee on the line for a long (simulated) while.
const LONG_SCRIPT: &str = r#"{"start": "hold", "steps": {
    "hold": {"pause_ms": 60000, "next": "bye"},
    "bye": {"say": "Goodbye.", "outcome": "held"}}}"#;

/// `function`'s recorder of AWS operations, for the permission test.
fn recorder(function: Function) -> Option<Recorder> {
    outdial_local::record::shared().map(|log| log.recorder(function))
}

/// The timers function's Voice API client on the simulator.
fn timers_dialer(sim: &Simulator) -> ChimeDialer {
    ChimeDialer::new(
        voice_client(&sim.endpoint()).recorded(recorder(Function::Timers).as_ref()),
        "sma-local",
    )
}

fn answers() -> Callee {
    Callee::Answer {
        after_ms: 1_000,
        digits: Some("1".into()),
    }
}

/// One campaign over the simulator, a store on a fresh table, and a dispatcher.
struct Harness {
    store: DynamoStore,
    sim: Simulator,
    clock: Arc<dyn Clock>,
    /// The clock, when it is virtual: settling moves it on to each dial's slot.
    manual: Option<Arc<ManualClock>>,
    dispatcher: Dispatcher<DynamoStore, ChimeDialer>,
    campaign: Campaign,
    calls: Vec<NewCall>,
}

struct Setup {
    callees: Vec<(String, Callee, Option<String>)>,
    faults: Faults,
    retry: RetrySpec,
    pacing: Pacing,
    window: Option<CallingWindow>,
    limits: Limits,
    script: &'static str,
    /// The simulator's real seconds per simulated second.
    speed: f64,
    clock: Arc<dyn Clock>,
    /// Set with `clock` when the test runs on virtual time.
    manual: Option<Arc<ManualClock>>,
    settings: Settings,
    /// Caller IDs registered before the campaign starts, and the campaign's pool.
    numbers: Vec<outdial_core::numbers::CallerNumber>,
    caller_pool: Option<outdial_core::record::PoolRef>,
    /// The simulator's carrier model.
    carrier: Option<outdial_local::sim::Carrier>,
    /// What the campaign does with a call a cap stops.
    on_cap: outdial_core::policy::OnCap,
    /// The dispatch shards due work is spread over.
    shards: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            callees: Vec::new(),
            faults: Faults::default(),
            retry: RetrySpec {
                max_attempts: 1,
                busy_after_s: 60,
                no_answer_after_s: 60,
                failed_after_s: 60,
                declined_after_s: None,
            },
            pacing: Pacing {
                calls_per_second: 100.0,
                max_concurrent: 1000,
            },
            window: None,
            limits: Limits::default(),
            script: SCRIPT,
            speed: 0.002,
            clock: Arc::new(SystemClock),
            manual: None,
            settings: Settings {
                account_cps: 200.0,
                first_event_within: Duration::from_secs(30),
                recheck_after: Duration::from_millis(200),
                // The fictional 555 numbers have no zone for the law's hours to be read in;
                // the tests of hours turn them on.
                legal_hours: false,
                ..Settings::default()
            },
            numbers: Vec::new(),
            caller_pool: None,
            carrier: None,
            on_cap: outdial_core::policy::OnCap::default(),
            shards: 1,
        }
    }
}

impl Setup {
    /// Runs the dispatcher on a virtual clock, which the test moves: returned.
    fn on_virtual_time(&mut self) -> Arc<ManualClock> {
        let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_900_000_000_000)));
        self.clock = clock.clone();
        self.manual = Some(clock.clone());
        clock
    }

    /// `n` numbers, the callee of each from `callee(i)`.
    fn numbered(mut self, n: usize, callee: impl Fn(usize) -> Callee) -> Self {
        self.callees = (0..n)
            .map(|i| (format!("+1555556{i:04}"), callee(i), None))
            .collect();
        self
    }

    async fn start(self) -> Harness {
        let endpoint = shared_endpoint().unwrap();
        let ddb = client(&endpoint);
        let table = fresh_table(&ddb, "dispatch").await.unwrap();
        let shards = self.shards;
        let store = DynamoStore::new(ddb.clone(), &table, shards);
        // The functions' own clients, recorded for the permission test.
        let as_function = |f: Function| {
            DynamoStore::new(ddb.clone().recorded(recorder(f).as_ref()), &table, shards)
        };
        let campaign = Campaign {
            purpose: outdial_core::policy::Purpose::default(),
            on_cap: self.on_cap,
            caller_pool: self.caller_pool,
            id: CampaignId::random(),
            name: "dispatch".into(),
            from: E164::parse("+15555550199").unwrap(),
            status: CampaignStatus::Active,
            retry: RetryPolicy::new(self.retry).unwrap(),
            pacing: self.pacing,
            script: serde_json::from_str(self.script).unwrap(),
            limits: self.limits,
            window: self.window,
            default_region: "US".into(),
            created_at: self.clock.now(),
            contacts: self.callees.len() as u64,
        };
        let mut by_number = BTreeMap::new();
        let calls: Vec<NewCall> = self
            .callees
            .into_iter()
            .map(|(to, callee, tz)| {
                by_number.insert(to.clone(), callee);
                NewCall {
                    consent: None,
                    reference: None,
                    id: CallId::random(),
                    to: E164::parse(&to).unwrap(),
                    vars: BTreeMap::new(),
                    due_at: self.clock.now(),
                    tz,
                }
            })
            .collect();
        for number in &self.numbers {
            outdial_core::admin::ApiStore::put_number(&store, number)
                .await
                .unwrap();
        }
        store.create_campaign(&campaign, &calls).await.unwrap();
        let handler = Arc::new(SmaHandler::new(
            as_function(Function::Sma),
            Arc::clone(&self.clock),
            SmaSettings::default(),
        ));
        let config = SimConfig {
            speed: self.speed,
            faults: self.faults,
            callees: Callees {
                by_number,
                mix: Vec::new(),
            },
            // On virtual time the simulator stamps placements with it too.
            clock: self
                .manual
                .as_ref()
                .map(|m| Arc::clone(m) as Arc<dyn Clock>),
            carrier: self.carrier,
            ..SimConfig::default()
        };
        let sim = Simulator::start(config, "sma-local", Arc::new(InProcess(handler)))
            .await
            .unwrap();
        let dispatcher = Dispatcher::new(
            as_function(Function::Timers),
            timers_dialer(&sim),
            Arc::clone(&self.clock),
            self.settings,
        );
        Harness {
            store,
            sim,
            clock: self.clock,
            manual: self.manual,
            dispatcher,
            campaign,
            calls,
        }
    }
}

impl Harness {
    async fn statuses(&self) -> BTreeMap<String, CallStatus> {
        let mut out = BTreeMap::new();
        for call in &self.calls {
            let r = self.store.call(&call.id).await.unwrap();
            out.insert(call.to.to_string(), r.status);
        }
        out
    }

    /// Ticks until every call is terminal and the simulator idle (or a minute passes);
    /// returns the final statuses.
    async fn until_all_terminal(&self) -> BTreeMap<String, CallStatus> {
        let started = Instant::now();
        loop {
            self.dispatcher.tick(0).await.unwrap();
            let statuses = self.statuses().await;
            let done = statuses.values().all(|s| s.is_terminal()) && self.sim.live_calls() == 0;
            if done || started.elapsed() > Duration::from_secs(60) {
                self.dispatcher.settle().await;
                return statuses;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One tick, its dials sent and their calls played out by the simulator.
    /// Waits for every dial task to finish. On virtual time the tasks wait for their pacing
    /// slots on the clock, so it moves the clock on to each slot as the tasks reach it.
    async fn settle(&self) {
        let settle = self.dispatcher.settle();
        tokio::pin!(settle);
        loop {
            tokio::select! {
                () = &mut settle => return,
                () = tokio::time::sleep(Duration::from_millis(2)) => {
                    if let Some(at) = self.manual.as_ref().and_then(|m| m.next_wake()) {
                        if let Some(m) = &self.manual {
                            m.set(at);
                        }
                    }
                }
            }
        }
    }

    /// As [`Self::until_all_terminal`], on the virtual `clock`: 20 virtual ms a round, with a
    /// few real ms for the dial tasks the clock woke and the simulator's calls, and
    /// `each_round` after every tick. The dispatcher's pacing, its rate's recovery, its
    /// watchdogs and the retries' delays see the same time line however loaded the machine.
    async fn until_all_terminal_on(
        &self,
        clock: &ManualClock,
        mut each_round: impl FnMut(&Self),
    ) -> BTreeMap<String, CallStatus> {
        for round in 0.. {
            self.dispatcher.tick(0).await.unwrap();
            each_round(self);
            let statuses = self.statuses().await;
            if statuses.values().all(|s| s.is_terminal()) && self.sim.live_calls() == 0 {
                self.settle().await;
                return statuses;
            }
            // Ten virtual minutes: far more than any of these campaigns needs.
            assert!(round < 30_000, "{statuses:?}");
            clock.advance(Duration::from_millis(20));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        unreachable!("the loop returns or fails")
    }

    async fn tick_and_settle(&self) {
        self.dispatcher.tick(0).await.unwrap();
        self.settle().await;
        assert!(self.sim.wait_idle(Duration::from_secs(30)).await);
    }

    /// Changes the campaign's status and asks for a sweep, as the API does.
    async fn set_status(&self, status: CampaignStatus) {
        let now = self.clock.now();
        let id = &self.campaign.id;
        self.store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(key(format!("CAMPAIGN#{id}"), "META")))
            .update_expression("SET #s = :s, due_shard = :shard, due_key = :k, due_at = :a")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", AttributeValue::S(status.as_str().into()))
            .expression_attribute_values(
                ":shard",
                AttributeValue::S(format!("WATCH#{}", shard_of_key(id.as_str(), 1))),
            )
            .expression_attribute_values(":k", AttributeValue::S(sweep_due_key(id, now)))
            .expression_attribute_values(":a", AttributeValue::N(now.as_millis().to_string()))
            .send()
            .await
            .unwrap();
    }
}

fn assert_clean(report: &Report) {
    assert_eq!(report.double_dials, 0, "{:?}", report.placed_per_number);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

fn mixed(i: usize) -> (Callee, CallStatus) {
    match i % 5 {
        0 | 1 => (answers(), CallStatus::Completed),
        2 => (Callee::Busy, CallStatus::Busy),
        3 => (Callee::NoAnswer { ring_ms: 10_000 }, CallStatus::NoAnswer),
        _ => (Callee::Fail { code: 404 }, CallStatus::InvalidNumber),
    }
}

async fn mixed_campaign(faults: Faults, first_event_within: Duration) -> (Harness, Stats) {
    let mut setup = Setup::default().numbered(20, |i| mixed(i).0);
    setup.faults = faults;
    setup.settings.first_event_within = first_event_within;
    let h = setup.start().await;
    let statuses = h.until_all_terminal().await;
    for (i, call) in h.calls.iter().enumerate() {
        assert_eq!(statuses[call.to.as_str()], mixed(i).1, "{}", call.to);
    }
    assert_clean(&h.sim.report());
    let stats = h.dispatcher.stats();
    (h, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_campaign_ends_every_call_with_its_status() {
    let (_, stats) = mixed_campaign(Faults::default(), Duration::from_secs(30)).await;
    assert_eq!(stats.dialed, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_slows_dialing_and_loses_no_call() {
    let faults = Faults {
        throttle: 0.5,
        ..Faults::default()
    };
    let mut setup = Setup::default().numbered(20, |i| mixed(i).0);
    setup.faults = faults;
    let clock = setup.on_virtual_time();
    let h = setup.start().await;
    // The account's rate, watched as the 429s come.
    let mut lowest = f64::INFINITY;
    let statuses = h
        .until_all_terminal_on(&clock, |h| lowest = lowest.min(h.dispatcher.account_rate()))
        .await;
    for (i, call) in h.calls.iter().enumerate() {
        assert_eq!(statuses[call.to.as_str()], mixed(i).1, "{}", call.to);
    }
    let report = h.sim.report();
    assert_clean(&report);
    let stats = h.dispatcher.stats();
    assert!(stats.throttled > 0);
    assert_eq!(stats.dialed, 20);
    assert!(lowest <= 100.0, "the rate halved at least once: {lowest}");
    assert!(report.max_in_any_second <= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_answers_from_the_api_never_dial_an_attempt_twice() {
    // A third of the dials fail with a 500 before the call is placed, a fifth after it was
    // placed. A placed call's events show it placed and it runs. Of one that was not,
    // nothing arrives: its watchdog cannot know whether it was placed, so it gives the
    // attempt up and the call is dialed again as its next attempt, never as the same one.
    let mut setup = Setup::default().numbered(20, |_| answers());
    setup.faults = Faults {
        create_error: 0.3,
        create_error_after_placed: 0.2,
        ..Faults::default()
    };
    setup.retry.max_attempts = 8;
    setup.retry.failed_after_s = 1;
    setup.settings.first_event_within = Duration::from_millis(400);
    let clock = setup.on_virtual_time();
    let h = setup.start().await;
    let statuses = h.until_all_terminal_on(&clock, |_| {}).await;
    assert!(
        statuses.values().all(|s| *s == CallStatus::Completed),
        "{statuses:?}"
    );
    let report = h.sim.report();
    assert_clean(&report);
    let stats = h.dispatcher.stats();
    assert!(stats.unknown > 0 && stats.retried > 0, "{stats:?}");
    assert_eq!(stats.lost, 0, "{stats:?}");
    // Every attempt given up on was dialed again as a later attempt, never as itself.
    let mut attempts = 0;
    for call in &h.calls {
        let record = h.store.call(&call.id).await.unwrap();
        attempts += record.attempt.get();
    }
    assert_eq!(attempts as usize, 20 + stats.retried as usize, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_whose_handler_invocations_all_fail_end_without_a_second_dial() {
    // Every invocation of the SMA handler fails, half of them before the handler runs: the
    // service hangs up each call after NEW_OUTBOUND_CALL's retry, and the handler hears of
    // it only sometimes, never through attributes (no answer of its was ever accepted).
    // The Voice API did place every call and the dispatcher recorded it, so no watchdog
    // takes the silence for a dial that never went out: a call whose HANGUP reached the
    // handler (matched by its transaction) ends NO_ANSWER (480), any other ends LOST when
    // its watchdog finds the call over.
    let mut setup = Setup::default().numbered(20, |_| answers());
    setup.faults = Faults {
        invoke_error: 1.0,
        ..Faults::default()
    };
    setup.settings.first_event_within = Duration::from_millis(400);
    // A call whose NEW_OUTBOUND_CALL was recorded waits for its ring watchdog.
    setup.limits.ring_timeout_s = 1;
    let h = setup.start().await;
    let statuses = h.until_all_terminal().await;
    assert!(
        statuses
            .values()
            .all(|s| matches!(s, CallStatus::Lost | CallStatus::NoAnswer)),
        "{statuses:?}"
    );
    let report = h.sim.report();
    assert_clean(&report);
    assert_eq!(report.placed_per_number.values().sum::<u32>(), 20);
    let stats = h.dispatcher.stats();
    let lost = statuses
        .values()
        .filter(|s| **s == CallStatus::Lost)
        .count();
    assert_eq!(
        (stats.dialed, stats.retried, stats.lost as usize),
        (20, 0, lost)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_started_behind_a_large_one_dials_at_its_own_rate_at_once() {
    // Campaign A: 200 calls all due now, dialed at 2 a second (100 s of work). Campaign B,
    // started just after, has 10 calls at 10 a second. With room on the account, B's calls
    // go within a second or two, not after A's backlog. (The bounds below leave a loaded
    // machine twenty times that.)
    let mut setup = Setup::default().numbered(200, |_| Callee::Busy);
    setup.pacing = Pacing {
        calls_per_second: 2.0,
        max_concurrent: 1000,
    };
    let h = setup.start().await;
    let b = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        pacing: Pacing {
            calls_per_second: 10.0,
            max_concurrent: 1000,
        },
        ..h.campaign.clone()
    };
    let b_calls: Vec<NewCall> = (0..10)
        .map(|i| NewCall {
            consent: None,
            reference: None,
            id: CallId::random(),
            to: E164::parse(&format!("+1555557{i:04}")).unwrap(),
            vars: BTreeMap::new(),
            due_at: h.clock.now().plus(Duration::from_millis(1)),
            tz: None,
        })
        .collect();
    h.store.create_campaign(&b, &b_calls).await.unwrap();

    let started = Instant::now();
    let waiting = |calls: &[CallRecord]| {
        calls
            .iter()
            .filter(|c| c.status == CallStatus::Queued)
            .count()
    };
    loop {
        h.dispatcher.tick(0).await.unwrap();
        let mut b_records = Vec::new();
        for call in &b_calls {
            b_records.push(h.store.call(&call.id).await.unwrap());
        }
        if waiting(&b_records) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "campaign B is still waiting behind campaign A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b_took = started.elapsed();
    let mut a_records = Vec::new();
    for call in &h.calls {
        a_records.push(h.store.call(&call.id).await.unwrap());
    }
    assert!(
        waiting(&a_records) > 100,
        "B finished after {b_took:?}, when A had {} calls left",
        waiting(&a_records)
    );
    assert!(h.dispatcher.stats().dialed >= 10);
    h.dispatcher.settle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_killed_mid_batch_loses_and_doubles_no_call() {
    let mut setup = Setup::default().numbered(60, |i| mixed(i).0);
    setup.pacing.calls_per_second = 40.0;
    // Long enough that a dial the killed dispatcher sent reports its first event before the
    // watchdog gives up on it, even on a loaded machine.
    setup.settings.first_event_within = Duration::from_secs(2);
    // A dial the killed dispatcher claimed may or may not have gone out: its watchdog gives
    // the attempt up, and the call is dialed again as its second attempt a second later.
    setup.retry = RetrySpec {
        max_attempts: 2,
        busy_after_s: 1,
        no_answer_after_s: 1,
        failed_after_s: 1,
        declined_after_s: None,
    };
    let h = setup.start().await;
    // The first dispatcher runs in a task that is killed part-way: dials claimed and not
    // sent, requests in flight and answers not recorded all die with it.
    let first = Arc::new(Dispatcher::new(
        h.store.clone(),
        timers_dialer(&h.sim),
        Arc::clone(&h.clock),
        Settings {
            account_cps: 200.0,
            first_event_within: Duration::from_secs(2),
            legal_hours: false,
            ..Settings::default()
        },
    ));
    let running = {
        let first = Arc::clone(&first);
        tokio::spawn(async move {
            loop {
                first.tick(0).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    running.abort();
    let _ = running.await;
    let sent_before = first.stats().dialed;
    drop(first);
    assert!(
        sent_before > 0 && sent_before < 60,
        "killed mid-batch: {sent_before} dialed"
    );
    // Another dispatcher takes over.
    let statuses = h.until_all_terminal().await;
    for (i, call) in h.calls.iter().enumerate() {
        let transcripts: Vec<_> = h
            .sim
            .report()
            .calls
            .into_iter()
            .filter(|c| c.to == call.to.as_str())
            .map(|c| c.transcript)
            .collect();
        let record = h.store.call(&call.id).await.unwrap();
        assert_eq!(
            statuses[call.to.as_str()],
            mixed(i).1,
            "{}: {transcripts:#?} {record:#?}",
            call.to
        );
    }
    let report = h.sim.report();
    assert_clean(&report);
    assert_eq!(
        report.placed_per_number.len(),
        60,
        "every number was dialed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_their_backoff_on_the_clock_and_then_dial_the_next_attempt() {
    let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_900_000_000_000)));
    let mut setup = Setup::default().numbered(2, |i| {
        if i == 0 {
            Callee::Busy
        } else {
            Callee::NoAnswer { ring_ms: 5_000 }
        }
    });
    setup.retry = RetrySpec {
        max_attempts: 3,
        busy_after_s: 300,
        no_answer_after_s: 1800,
        failed_after_s: 600,
        declined_after_s: None,
    };
    setup.clock = clock.clone();
    setup.manual = Some(clock.clone());
    let h = setup.start().await;
    let busy = &h.calls[0];
    let unanswered = &h.calls[1];

    h.tick_and_settle().await;
    let waiting = h.store.call(&busy.id).await.unwrap();
    assert_eq!(waiting.status, CallStatus::RetryWait);
    assert_eq!(waiting.attempt.get(), 2);
    let t0 = clock.now();
    assert_eq!(waiting.due_at, Some(t0.plus(Duration::from_secs(300))));
    assert_eq!(
        h.store.call(&unanswered.id).await.unwrap().due_at,
        Some(t0.plus(Duration::from_secs(1800)))
    );

    // One second early: nothing is dialed.
    clock.set(t0.plus(Duration::from_secs(299)));
    h.tick_and_settle().await;
    assert_eq!(h.sim.report().placed_per_number[busy.to.as_str()], 1);
    // On time: attempt 2, busy again, backs off twice as long.
    clock.set(t0.plus(Duration::from_secs(300)));
    h.tick_and_settle().await;
    assert_eq!(h.sim.report().placed_per_number[busy.to.as_str()], 2);
    let waiting = h.store.call(&busy.id).await.unwrap();
    assert_eq!(waiting.attempt.get(), 3);
    assert_eq!(
        waiting.due_at,
        Some(t0.plus(Duration::from_secs(300 + 600)))
    );
    // The last attempt is final.
    clock.set(t0.plus(Duration::from_secs(900)));
    h.tick_and_settle().await;
    let done = h.store.call(&busy.id).await.unwrap();
    assert_eq!(done.status, CallStatus::Busy);
    assert_eq!(done.attempt.get(), 3);
    assert_eq!(h.sim.report().placed_per_number[busy.to.as_str()], 3);
    assert_eq!(
        h.sim.report().placed_per_number[unanswered.to.as_str()],
        1,
        "the unanswered call waits its own, longer, backoff"
    );
    assert_clean(&h.sim.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_windows_hold_calls_until_their_local_opening_across_daylight_saving_changes() {
    // Saturday 2030-03-09 17:00 UTC; the US springs forward on Sunday 2030-03-10.
    let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_899_306_000_000)));
    let mut setup = Setup {
        callees: vec![
            // New York by its area code: Monday 09:00 EDT = 13:00 UTC.
            ("+12125550101".into(), answers(), None),
            // Given as London: Monday 09:00 GMT = 09:00 UTC (the UK changes on 2030-03-31).
            ("+12125550102".into(), answers(), Some("Europe/London".into())),
            // Toll-free, so the campaign's zone, Chicago: Monday 09:00 CDT = 14:00 UTC.
            ("+18005550103".into(), answers(), None),
        ],
        window: Some(
            serde_json::from_str(
                r#"{"timezone": "America/Chicago",
                    "hours": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
                              "thu": ["09:00-17:00"], "fri": ["09:00-17:00"]}}"#,
            )
            .unwrap(),
        ),
        clock: clock.clone(),
        manual: Some(clock.clone()),
        ..Setup::default()
    };
    // The law's hours (08:00-21:00 for these numbers) hold none of the window's.
    setup.settings.legal_hours = true;
    let h = setup.start().await;
    let placed = |number: &str| {
        h.sim
            .report()
            .placed_per_number
            .get(number)
            .copied()
            .unwrap_or(0)
    };

    h.tick_and_settle().await;
    assert_eq!(
        h.dispatcher.stats().deferred,
        3,
        "all three wait for Monday"
    );
    let due: Vec<_> = {
        let mut v = Vec::new();
        for c in &h.calls {
            v.push(
                h.store
                    .call(&c.id)
                    .await
                    .unwrap()
                    .due_at
                    .unwrap()
                    .as_millis(),
            );
        }
        v
    };
    assert_eq!(
        due,
        [1_899_464_400_000, 1_899_450_000_000, 1_899_468_000_000]
    );

    for (at, expected) in [
        (1_899_449_999_000, [0, 0, 0]),
        (1_899_450_000_000, [0, 1, 0]),
        (1_899_464_399_000, [0, 1, 0]),
        (1_899_464_400_000, [1, 1, 0]),
        (1_899_468_000_000, [1, 1, 1]),
    ] {
        clock.set(Timestamp::from_millis(at));
        h.tick_and_settle().await;
        let got: Vec<u32> = h.calls.iter().map(|c| placed(c.to.as_str())).collect();
        assert_eq!(got, expected, "at {at}");
    }
    assert_clean(&h.sim.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_opening_after_the_autumn_change_uses_standard_time() {
    // Saturday 2030-11-02 17:00 UTC; the US falls back on Sunday 2030-11-03.
    let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_919_869_200_000)));
    let mut setup = Setup {
        callees: vec![("+12125550101".into(), answers(), None)],
        window: Some(
            serde_json::from_str(
                r#"{"timezone": "America/New_York", "hours": {"mon": ["09:00-17:00"]}}"#,
            )
            .unwrap(),
        ),
        clock: clock.clone(),
        manual: Some(clock.clone()),
        ..Setup::default()
    };
    // The law's hours (08:00-21:00 for these numbers) hold none of the window's.
    setup.settings.legal_hours = true;
    let h = setup.start().await;
    h.tick_and_settle().await;
    // Monday 09:00 EST = 14:00 UTC, an hour later in UTC than before the change.
    assert_eq!(
        h.store.call(&h.calls[0].id).await.unwrap().due_at,
        Some(Timestamp::from_millis(1_920_031_200_000))
    );
    clock.set(Timestamp::from_millis(1_920_031_199_000));
    h.tick_and_settle().await;
    assert!(h.sim.report().placed_per_number.is_empty());
    clock.set(Timestamp::from_millis(1_920_031_200_000));
    h.tick_and_settle().await;
    assert_eq!(h.sim.report().placed_per_number.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_cap_holds_dials_until_slots_are_given_back() {
    let mut setup = Setup::default().numbered(5, |_| Callee::Busy);
    setup.pacing.max_concurrent = 2;
    let h = setup.start().await;
    for _ in 0..3 {
        h.tick_and_settle().await;
    }
    // Two calls took the two slots and ended; nobody gave the slots back (the stream
    // handler does that), so the other three wait.
    assert_eq!(h.sim.report().placed_per_number.len(), 2);
    let waiting = h
        .statuses()
        .await
        .values()
        .filter(|s| **s == CallStatus::Queued)
        .count();
    assert_eq!(waiting, 3);
    // The stream handler's decrement, for the two ended calls.
    h.store
        .client()
        .update_item()
        .table_name(h.store.table())
        .set_key(Some(key(format!("CAMPAIGN#{}", h.campaign.id), "COUNTERS")))
        .update_expression("ADD live :d")
        .expression_attribute_values(":d", AttributeValue::N("-2".into()))
        .send()
        .await
        .unwrap();
    h.tick_and_settle().await;
    assert_eq!(h.sim.report().placed_per_number.len(), 4);
    assert_clean(&h.sim.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_ticking_side_by_side_start_no_more_dials_than_the_cap_has_room_for() {
    // 40 calls over two shards (both hold far more than 4), room for 4. The two shards'
    // ticks run together in one process, as an invocation of the timers function runs
    // them: both read the same free slots, and without sharing what they took, each would
    // start 4 dials and 4 claims would be refused at the cap, their pacing slots wasted.
    let mut setup = Setup::default().numbered(40, |_| Callee::Busy);
    setup.pacing.max_concurrent = 4;
    setup.shards = 2;
    let h = setup.start().await;
    let (first, second) = tokio::join!(h.dispatcher.tick(0), h.dispatcher.tick(1));
    let started = first.unwrap().started + second.unwrap().started;
    h.settle().await;
    assert!(h.sim.wait_idle(Duration::from_secs(30)).await);
    assert_eq!(started, 4);
    assert_eq!(h.dispatcher.stats().at_capacity, 0);
    assert_eq!(h.sim.report().placed_per_number.len(), 4);
    assert_clean(&h.sim.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_campaign_parks_its_calls_and_dials_them_once_resumed() {
    let mut setup = Setup::default().numbered(6, |_| Callee::Busy);
    setup.pacing.calls_per_second = 100.0;
    let h = setup.start().await;
    h.set_status(CampaignStatus::Paused).await;
    h.tick_and_settle().await;
    h.tick_and_settle().await;
    assert!(h.sim.report().placed_per_number.is_empty());
    assert_eq!(h.dispatcher.stats().parked, 6);
    // Parked calls are out of the index: ticks read nothing.
    let tick = h.dispatcher.tick(0).await.unwrap();
    assert!(!tick.did_work(), "{tick:?}");

    h.set_status(CampaignStatus::Active).await;
    // The campaign's status is cached for two seconds; the sweep reads it afresh.
    let statuses = h.until_all_terminal().await;
    assert!(
        statuses.values().all(|s| *s == CallStatus::Busy),
        "{statuses:?}"
    );
    assert_eq!(h.dispatcher.stats().unparked, 6);
    assert_clean(&h.sim.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_campaign_hangs_up_its_live_calls_and_ends_the_waiting_ones() {
    let mut setup = Setup::default().numbered(10, |_| Callee::Answer {
        after_ms: 500,
        digits: None,
    });
    // Four calls a second: the first ones are on the line when the campaign is cancelled,
    // the rest still wait.
    setup.pacing.calls_per_second = 4.0;
    setup.script = LONG_SCRIPT;
    // The minute-long hold lasts three real seconds: calls are on the line at the cancel.
    setup.speed = 0.05;
    let h = setup.start().await;
    let started = Instant::now();
    while h.sim.report().placed_per_number.len() < 3 && started.elapsed() < Duration::from_secs(10)
    {
        h.dispatcher.tick(0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.dispatcher.settle().await;
    let dialed = h.sim.report().placed_per_number.len();
    assert!(
        (3..10).contains(&dialed),
        "{dialed} dialed before the cancel"
    );

    h.set_status(CampaignStatus::Cancelled).await;
    let statuses = h.until_all_terminal().await;
    assert!(
        statuses.values().all(|s| *s == CallStatus::Cancelled),
        "{statuses:?}"
    );
    assert_eq!(
        h.sim.report().placed_per_number.len(),
        dialed,
        "nothing was dialed after the cancel"
    );
    let stats = h.dispatcher.stats();
    // A call that moves from DIALING to RINGING while the sweep lists them may be told twice.
    assert!(stats.hung_up as usize >= dialed, "{stats:?}");
    assert_eq!(stats.cancelled as usize, 10 - dialed, "{stats:?}");
    let told_to_end = h
        .sim
        .report()
        .calls
        .iter()
        .filter(|c| {
            c.transcript
                .iter()
                .any(|l| l.contains("CALL_UPDATE_REQUESTED"))
        })
        .count();
    assert_eq!(told_to_end, dialed, "every live call heard the cancel");
    assert_clean(&h.sim.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_put_on_the_do_not_call_list_after_upload_are_not_dialed() {
    let h = Setup::default().numbered(3, |_| Callee::Busy).start().await;
    let listed = &h.calls[1];
    h.store
        .client()
        .put_item()
        .table_name(h.store.table())
        .set_item(Some(key(format!("DNC#{}", listed.to), "DNC")))
        .send()
        .await
        .unwrap();
    let statuses = h.until_all_terminal().await;
    assert_eq!(statuses[listed.to.as_str()], CallStatus::Cancelled);
    assert_eq!(h.dispatcher.stats().do_not_call, 1);
    assert!(
        !h.sim
            .report()
            .placed_per_number
            .contains_key(listed.to.as_str())
    );
    assert_eq!(h.sim.report().placed_per_number.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_shard_never_both_dispatch() {
    let h = Setup::default().start().await;
    let make = || {
        Dispatcher::new(
            h.store.clone(),
            timers_dialer(&h.sim),
            Arc::clone(&h.clock),
            Settings::default(),
        )
    };
    let (first, second) = (make(), make());
    let until = h.clock.now().plus(Duration::from_millis(1600));
    let (a, b) = tokio::join!(
        first.run(0, "first", until, Duration::ZERO),
        second.run(0, "second", until, Duration::ZERO)
    );
    let held = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|r| r.is_some())
        .count();
    assert_eq!(held, 1, "exactly one dispatcher held the shard");
    // Given back at the end: the next run takes it at once.
    let until = h.clock.now().plus(Duration::from_millis(1100));
    assert!(
        first
            .run(0, "third", until, Duration::ZERO)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_waits_for_the_previous_one_to_hand_its_shard_over() {
    let h = Setup::default().start().await;
    let make = || {
        Dispatcher::new(
            h.store.clone(),
            timers_dialer(&h.sim),
            Arc::clone(&h.clock),
            Settings::default(),
        )
    };
    let (first, second) = (make(), make());
    let now = h.clock.now();
    let (a, b) = tokio::join!(
        first.run(
            0,
            "previous",
            now.plus(Duration::from_millis(1500)),
            Duration::ZERO
        ),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            second
                .run(
                    0,
                    "next",
                    now.plus(Duration::from_millis(4000)),
                    Duration::from_secs(3),
                )
                .await
        }
    );
    assert!(a.unwrap().is_some());
    assert!(b.unwrap().is_some(), "the next run took the shard over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdogs_fire_on_time_behind_a_backlog_of_paced_dials() {
    // Thirty callees who would ring for a long time, dialed two a second: the first ones'
    // one-second ring timeout must fire while most of the list still waits for its dial.
    let mut setup = Setup::default().numbered(30, |_| Callee::NoAnswer {
        ring_ms: 10_000_000,
    });
    setup.pacing.calls_per_second = 2.0;
    setup.limits = Limits {
        ring_timeout_s: 1,
        max_call_s: 60,
    };
    let h = setup.start().await;
    let started = Instant::now();
    let mut ended = 0;
    while started.elapsed() < Duration::from_secs(6) {
        h.dispatcher.tick(0).await.unwrap();
        ended = h
            .statuses()
            .await
            .values()
            .filter(|s| **s == CallStatus::NoAnswer)
            .count();
        if ended >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waiting = h
        .statuses()
        .await
        .values()
        .filter(|s| **s == CallStatus::Queued)
        .count();
    assert!(ended >= 3, "{ended} calls ended by their ring timeout");
    assert!(
        waiting >= 15,
        "the backlog was still there: {waiting} waiting"
    );
    assert!(h.dispatcher.stats().hung_up >= 3);
}
