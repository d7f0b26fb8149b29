//! Calls placed through the real Chime SDK Voice client against the PSTN simulator, answered
//! by the real SMA handler, recorded in DynamoDB Local.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod support;

use std::sync::Arc;
use std::time::Duration;

use outdial_adapters::clock::SystemClock;
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_core::messages::Function;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::record::Record;
use outdial_local::sim::{Callee, Callees, Faults, SimConfig, Simulator, voice_client};
use outdial_local::tables::{client, fresh_table};
use outdial_sma::{Settings, SmaHandler};
use outdial_stack::InProcess;

const SCRIPT: &str = r#"{
    "start": "greet",
    "steps": {
        "greet": { "say": "Hello {{name}}, this is a reminder of your appointment.", "next": "menu" },
        "menu": { "gather": { "say": "Press 1 to confirm, 2 to cancel, 0 for an agent.", "timeout_ms": 3000 },
                  "branches": { "1": "confirm", "2": "decline", "0": "agent" }, "no_input": "goodbye" },
        "confirm": { "say": "Thank you.", "outcome": "confirmed" },
        "decline": { "say": "We have cancelled it.", "outcome": "declined" },
        "agent": { "transfer": { "to": "+15555550142" }, "outcome": "transferred", "on_fail": "goodbye" },
        "goodbye": { "say": "We will call again.", "outcome": "no_input" }
    }
}"#;

/// Each behaviour of the simulator, the number that plays it, and where the call must end.
fn scenarios() -> Vec<(&'static str, Callee, &'static str, Option<&'static str>)> {
    let answer = |digits: Option<&str>| Callee::Answer {
        after_ms: 2_000,
        digits: digits.map(str::to_owned),
    };
    vec![
        (
            "+15555550101",
            answer(Some("1")),
            "COMPLETED",
            Some("confirmed"),
        ),
        (
            "+15555550102",
            answer(Some("2")),
            "COMPLETED",
            Some("declined"),
        ),
        ("+15555550103", answer(None), "COMPLETED", Some("no_input")),
        (
            "+15555550104",
            answer(Some("0")),
            "COMPLETED",
            Some("transferred"),
        ),
        ("+15555550105", Callee::Busy, "BUSY", None),
        (
            "+15555550106",
            Callee::NoAnswer { ring_ms: 20_000 },
            "NO_ANSWER",
            None,
        ),
        (
            "+15555550107",
            Callee::Fail { code: 404 },
            "INVALID_NUMBER",
            None,
        ),
        ("+15555550108", Callee::Fail { code: 503 }, "FAILED", None),
        (
            "+15555550109",
            Callee::HangUpMidPrompt { after_ms: 1_000 },
            "COMPLETED",
            None,
        ),
        (
            "+15555550110",
            Callee::Voicemail {
                after_ms: 4_000,
                record_ms: 8_000,
                greeting_ms: None,
                beep: true,
            },
            "COMPLETED",
            Some("no_input"),
        ),
    ]
}

/// Places one call per scenario and returns `(number, status, script outcome)` per call once
/// the simulator is idle, with the simulator's report.
async fn run(
    faults: Faults,
    seed: u64,
) -> (
    Vec<(String, String, Option<String>)>,
    outdial_local::sim::Report,
) {
    let endpoint = shared_endpoint().unwrap();
    let ddb = client(&endpoint);
    let table = fresh_table(&ddb, "pstn").await.unwrap();
    let store = DynamoStore::new(ddb.clone(), &table, 2);
    // The SMA handler's own client, recorded for the permission test.
    let sma_store = DynamoStore::new(
        ddb.clone().recorded(
            outdial_local::record::shared()
                .map(|l| l.recorder(Function::Sma))
                .as_ref(),
        ),
        &table,
        2,
    );
    let clock = Arc::new(SystemClock);
    let campaign = support::campaign("pstn", SCRIPT, clock.as_ref());
    let calls = support::calls(scenarios().iter().map(|(to, ..)| *to), clock.as_ref());
    store.create_campaign(&campaign, &calls).await.unwrap();

    let handler = Arc::new(SmaHandler::new(
        sma_store,
        clock.clone(),
        Settings::default(),
    ));
    let config = SimConfig {
        speed: 0.005,
        seed,
        faults,
        callees: Callees {
            by_number: scenarios()
                .into_iter()
                .map(|(to, c, ..)| (to.to_owned(), c))
                .collect(),
            mix: Vec::new(),
        },
        agent_talk_ms: 5_000,
        deadline_speed: 1.0,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "sma-local", Arc::new(InProcess(handler)))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-local");

    support::place(&store, &dialer, &campaign, &calls, clock.as_ref()).await;
    assert!(
        sim.wait_idle(Duration::from_secs(60)).await,
        "calls still live: {:#?}",
        sim.report()
    );
    // Late copies of events may still be in flight: let them land.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut outcomes = Vec::new();
    for call in &calls {
        let record = store.call(&call.id).await.unwrap();
        outcomes.push((
            call.to.to_string(),
            record.status.to_string(),
            record.script_outcome,
        ));
    }
    (outcomes, sim.report())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_callee_behaviour_ends_in_its_status_with_no_violation() {
    let (outcomes, report) = run(Faults::default(), 7).await;
    for ((to, status, outcome), (_, _, want_status, want_outcome)) in
        outcomes.iter().zip(scenarios())
    {
        assert_eq!(status, want_status, "{to}: {report:#?}");
        assert_eq!(outcome.as_deref(), want_outcome, "{to}");
    }
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.double_dials, 0);
    assert_eq!(report.calls.len(), scenarios().len());
    assert!(report.calls.iter().all(|c| c.ended));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_delayed_events_reach_the_same_final_records() {
    let faults = Faults {
        duplicate: 0.2,
        delay: 0.2,
        delay_ms: 300,
        ..Faults::default()
    };
    let (clean, _) = run(Faults::default(), 11).await;
    let (noisy, report) = run(faults, 11).await;
    assert_eq!(noisy, clean);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}
