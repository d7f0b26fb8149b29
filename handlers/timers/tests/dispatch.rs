//! The dispatcher over the PSTN simulator, the SMA handler and DynamoDB Local: every call
//! ends, none is dialed twice, whatever the Voice API answers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outdial_adapters::clock::SystemClock;
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_core::ids::{CallId, CampaignId, E164};
use outdial_core::lifecycle::CallStatus;
use outdial_core::ports::CallStore;
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::{RetryPolicy, RetrySpec};
use outdial_core::time::Clock;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::sim::{Callee, Callees, Faults, Report, SimConfig, Simulator, voice_client};
use outdial_local::tables::{client, fresh_table};
use outdial_sma::{Settings as SmaSettings, SmaHandler};
use outdial_tests::InProcess;
use outdial_timers::{Dispatcher, Settings, Tick};

const SCRIPT: &str = r#"{"start": "menu", "steps": {
    "menu": {"gather": {"say": "Press 1 to confirm."}, "branches": {"1": "ok"}, "no_input": "bye"},
    "ok": {"say": "Thank you.", "outcome": "confirmed"},
    "bye": {"say": "Goodbye.", "outcome": "no_input"}}}"#;

fn callee(i: usize) -> (Callee, CallStatus) {
    match i % 5 {
        0 | 1 => (
            Callee::Answer {
                after_ms: 1_000,
                digits: Some("1".into()),
            },
            CallStatus::Completed,
        ),
        2 => (Callee::Busy, CallStatus::Busy),
        3 => (Callee::NoAnswer { ring_ms: 10_000 }, CallStatus::NoAnswer),
        _ => (Callee::Fail { code: 404 }, CallStatus::InvalidNumber),
    }
}

/// Dials `n` calls through the dispatcher until every one is terminal; returns the statuses
/// by number, the simulator's report and the dispatcher's summed ticks.
async fn campaign(
    n: usize,
    faults: Faults,
    first_event_within: Duration,
) -> (BTreeMap<String, (CallStatus, CallStatus)>, Report, Tick) {
    let endpoint = shared_endpoint().unwrap();
    let ddb = client(&endpoint);
    let store = DynamoStore::new(ddb.clone(), fresh_table(&ddb, "dispatch").await.unwrap(), 1);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let campaign = Campaign {
        id: CampaignId::random(),
        name: "dispatch".into(),
        from: E164::parse("+15555550199").unwrap(),
        status: CampaignStatus::Active,
        retry: RetryPolicy::new(RetrySpec {
            max_attempts: 1,
            busy_after_s: 60,
            no_answer_after_s: 60,
            failed_after_s: 60,
            declined_after_s: None,
        })
        .unwrap(),
        pacing: Pacing {
            calls_per_second: 100.0,
            max_concurrent: 100,
        },
        script: serde_json::from_str(SCRIPT).unwrap(),
        limits: Limits::default(),
        window: None,
        created_at: clock.now(),
        contacts: 0,
    };
    let mut expected = BTreeMap::new();
    let mut by_number = BTreeMap::new();
    let calls: Vec<NewCall> = (0..n)
        .map(|i| {
            let to = format!("+1555556{i:04}");
            let (c, status) = callee(i);
            by_number.insert(to.clone(), c);
            expected.insert(to.clone(), status);
            NewCall {
                tz: None,
                id: CallId::random(),
                to: E164::parse(&to).unwrap(),
                vars: BTreeMap::new(),
                due_at: clock.now(),
            }
        })
        .collect();
    store.create_campaign(&campaign, &calls).await.unwrap();

    let handler = Arc::new(SmaHandler::new(
        store.clone(),
        clock.clone(),
        SmaSettings::default(),
    ));
    let config = SimConfig {
        speed: 0.002,
        faults,
        callees: Callees {
            by_number,
            mix: Vec::new(),
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "sma-local", Arc::new(InProcess(handler)))
        .await
        .unwrap();
    let settings = Settings {
        account_cps: 200.0,
        first_event_within,
        recheck_after: Duration::from_millis(200),
        batch: 100,
    };
    let dispatcher = Dispatcher::new(
        store.clone(),
        ChimeDialer::new(voice_client(&sim.endpoint()), "sma-local"),
        clock,
        settings,
    );

    let mut total = Tick::default();
    let started = Instant::now();
    let mut finals = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(60) {
        let tick = dispatcher.tick(0).await.unwrap();
        total.dialed += tick.dialed;
        total.throttled += tick.throttled;
        total.unknown += tick.unknown;
        total.requeued += tick.requeued;
        total.refused += tick.refused;
        finals.clear();
        for call in &calls {
            let r = store.call(&call.id).await.unwrap();
            finals.insert(call.to.to_string(), (r.status, expected[call.to.as_str()]));
        }
        if finals.values().all(|(s, _)| s.is_terminal()) && sim.live_calls() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (finals, sim.report(), total)
}

fn assert_all_right(finals: &BTreeMap<String, (CallStatus, CallStatus)>, report: &Report) {
    for (to, (got, want)) in finals {
        assert_eq!(got, want, "{to}");
    }
    assert_eq!(report.double_dials, 0, "{:?}", report.placed_per_number);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_campaign_ends_every_call_with_its_status() {
    let (finals, report, tick) = campaign(20, Faults::default(), Duration::from_secs(30)).await;
    assert_all_right(&finals, &report);
    assert_eq!(tick.dialed, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_slows_dialing_and_loses_no_call() {
    let (finals, report, tick) = campaign(
        20,
        Faults {
            throttle: 0.5,
            ..Faults::default()
        },
        Duration::from_secs(30),
    )
    .await;
    assert_all_right(&finals, &report);
    assert!(tick.throttled > 0);
    assert_eq!(tick.dialed, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_answers_from_the_api_never_dial_an_attempt_twice() {
    // Half the dials fail with a 500 before the call is placed, a fifth after it was placed:
    // the watchdog queues the first kind again and lets the second kind run.
    let faults = Faults {
        create_error: 0.3,
        create_error_after_placed: 0.2,
        ..Faults::default()
    };
    let (finals, report, tick) = campaign(20, faults, Duration::from_millis(400)).await;
    assert_all_right(&finals, &report);
    assert!(tick.unknown > 0 && tick.requeued > 0, "{tick:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_shard_never_both_dispatch() {
    let endpoint = shared_endpoint().unwrap();
    let ddb = client(&endpoint);
    let store = DynamoStore::new(ddb.clone(), fresh_table(&ddb, "lease").await.unwrap(), 1);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sim = Simulator::start(
        SimConfig::default(),
        "sma-local",
        Arc::new(InProcess(Arc::new(SmaHandler::new(
            store.clone(),
            clock.clone(),
            SmaSettings::default(),
        )))),
    )
    .await
    .unwrap();
    let make = || {
        Dispatcher::new(
            store.clone(),
            ChimeDialer::new(voice_client(&sim.endpoint()), "sma-local"),
            Arc::clone(&clock),
            Settings::default(),
        )
    };
    let (first, second) = (make(), make());
    let until = clock.now().plus(Duration::from_millis(600));
    let (a, b) = tokio::join!(first.run(0, "first", until), second.run(0, "second", until));
    let held = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|r| r.is_some())
        .count();
    assert_eq!(held, 1, "exactly one dispatcher held the shard");
    // Given back at the end: the next run takes it at once.
    assert!(
        first
            .run(0, "third", clock.now().plus(Duration::from_millis(50)))
            .await
            .unwrap()
            .is_some()
    );
}
