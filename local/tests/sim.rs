//! The PSTN simulator's own rules, each made to fire by a scripted handler.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use outdial_adapters::dialer::ChimeDialer;
use outdial_core::ids::{E164, TransactionId};
use outdial_core::ports::{DialError, Dialer};
use outdial_local::sim::{
    Callee, Callees, Faults, Invoke, Report, SimConfig, Simulator, voice_client,
};
use serde_json::{Value, json};

/// A handler that answers `CALL_ANSWERED` with `answer` and everything else with nothing,
/// after `delay`; it keeps every event it was sent.
struct Scripted {
    answer: Value,
    delay: Duration,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Invoke for Scripted {
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
        self.seen.lock().unwrap().push(event.clone());
        let answer = if event["InvocationEventType"] == "CALL_ANSWERED" {
            self.answer.clone()
        } else {
            json!({"SchemaVersion": "1.0", "Actions": []})
        };
        let delay = self.delay;
        async move {
            tokio::time::sleep(delay).await;
            Ok(answer)
        }
        .boxed()
    }
}

fn speak(i: usize) -> Value {
    json!({"Type": "Speak", "Parameters": {"CallId": "leg-a", "Text": format!("line {i}")}})
}

/// Places one answered call against a handler that answers `CALL_ANSWERED` with `answer`.
async fn one_call(answer: Value, delay: Duration, deadline_speed: f64) -> (Report, Vec<Value>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = SimConfig {
        speed: 0.001,
        deadline_speed,
        callees: Callees {
            by_number: BTreeMap::from([(
                "+15555550100".to_owned(),
                Callee::Answer {
                    after_ms: 1_000,
                    digits: None,
                },
            )]),
            mix: Vec::new(),
        },
        ..SimConfig::default()
    };
    let handler = Scripted {
        answer,
        delay,
        seen: Arc::clone(&seen),
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    dialer
        .place(
            &E164::parse("+15555550199").unwrap(),
            &E164::parse("+15555550100").unwrap(),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert!(sim.wait_idle(Duration::from_secs(30)).await);
    let seen = seen.lock().unwrap().clone();
    (sim.report(), seen)
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["InvocationEventType"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_well_formed_call_numbers_its_events_and_has_no_violation() {
    let answer =
        json!({"SchemaVersion": "1.0", "Actions": [speak(1)], "TransactionAttributes": {"k": "v"}});
    let (report, seen) = one_call(answer, Duration::ZERO, 1.0).await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(
        kinds(&seen),
        [
            "NEW_OUTBOUND_CALL",
            "RINGING",
            "CALL_ANSWERED",
            "ACTION_SUCCESSFUL",
            "HANGUP"
        ]
    );
    let seqs: Vec<u64> = seen
        .iter()
        .map(|e| e["Sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(
        seen[0]["ActionData"]["Parameters"]["Arguments"].is_object(),
        "ArgumentsMap on the first event"
    );
    assert!(seen[1]["ActionData"].is_null(), "and only there");
    assert_eq!(
        seen[3]["CallDetails"]["TransactionAttributes"]["k"], "v",
        "attributes kept"
    );
    assert_eq!(
        seen[3]["ActionData"]["Type"], "Speak",
        "ActionData of the last action"
    );
    assert_eq!(seen[4]["ActionData"]["Parameters"]["SipResponseCode"], 0);
}

#[tokio::test]
async fn every_rule_of_the_contract_is_enforced() {
    let eleven: Vec<Value> = (0..11).map(speak).collect();
    let attrs: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (
            json!({"SchemaVersion": "1.0", "Actions": eleven}),
            "11 actions",
            "InvalidLambdaResponse",
        ),
        (
            json!({"SchemaVersion": "2.0", "Actions": []}),
            "SchemaVersion",
            "InvalidLambdaResponse",
        ),
        (
            json!({"SchemaVersion": "1.0", "Actions": [{"Type": "Dance", "Parameters": {}}]}),
            "unknown action type",
            "InvalidLambdaResponse",
        ),
        (
            json!({"SchemaVersion": "1.0", "Actions": [{"Type": "Pause", "Parameters": {}}]}),
            "missing required parameter",
            "InvalidLambdaResponse",
        ),
        (
            json!({"SchemaVersion": "1.0", "Actions": [], "TransactionAttributes": attrs}),
            "11 keys",
            "TransactionAttributesInvalidMapSize",
        ),
    ];
    for (answer, rule, error_type) in cases {
        let (report, seen) = one_call(answer, Duration::ZERO, 1.0).await;
        assert!(
            report.violations.iter().any(|v| v.rule.contains(rule)),
            "{rule}: {:#?}",
            report.violations
        );
        let invalid = seen
            .iter()
            .find(|e| e["InvocationEventType"] == "INVALID_LAMBDA_RESPONSE")
            .expect(rule);
        assert_eq!(invalid["ErrorType"], error_type, "{rule}");
    }
}

#[tokio::test]
async fn a_slow_handler_gets_the_event_again_and_a_silent_one_is_hung_up() {
    // Deadlines at 1/100: the 5 s re-send fires after 50 ms, the 20 s hang-up after 200 ms.
    let answer = json!({"SchemaVersion": "1.0", "Actions": []});
    let (report, seen) = one_call(answer.clone(), Duration::from_millis(80), 0.01).await;
    assert!(
        report.violations.iter().any(|v| v.rule.contains("5 s")),
        "{:#?}",
        report.violations
    );
    let first = &seen[0];
    assert!(
        seen.iter().filter(|e| *e == first).count() >= 2,
        "the same event, same Sequence, again"
    );
    assert!(report.violations.iter().any(|v| v.rule.contains("20 s")));
    assert!(report.calls[0].ended);
}

#[tokio::test]
async fn the_simulator_stops_a_call_at_one_thousand_invocations() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    struct Forever(Arc<Mutex<Vec<Value>>>);
    impl Invoke for Forever {
        fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
            self.0.lock().unwrap().push(json!(event["Sequence"]));
            async { Ok(json!({"SchemaVersion": "1.0", "Actions": [{"Type": "Pause", "Parameters": {"DurationInMilliseconds": 1}}]})) }.boxed()
        }
    }
    let config = SimConfig {
        speed: 0.0,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(Forever(Arc::clone(&seen))))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    dialer
        .place(
            &E164::parse("+15555550199").unwrap(),
            &E164::parse("+15555550100").unwrap(),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert!(sim.wait_idle(Duration::from_secs(60)).await);
    let report = sim.report();
    assert_eq!(report.calls[0].invocations, 1_000);
    assert!(report.violations.iter().any(|v| v.rule.contains("1,000")));
}

#[tokio::test]
async fn the_voice_api_answers_with_the_services_errors() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Scripted {
        answer: json!({"SchemaVersion": "1.0", "Actions": []}),
        delay: Duration::ZERO,
        seen,
    };
    let config = SimConfig {
        faults: Faults {
            throttle: 1.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    let from = E164::parse("+15555550199").unwrap();
    let to = E164::parse("+15555550100").unwrap();
    assert!(matches!(
        dialer.place(&from, &to, BTreeMap::new()).await,
        Err(DialError::Throttled)
    ));
    let missing = TransactionId::parse("0d9fa73d-cb84-4525-9637-b69092632bc1").unwrap();
    assert!(matches!(
        dialer.update(&missing, BTreeMap::new()).await,
        Err(DialError::NotFound)
    ));
    let other = ChimeDialer::new(voice_client(&sim.endpoint()), "no-such-sma");
    assert!(matches!(
        other.update(&missing, BTreeMap::new()).await,
        Err(DialError::NotFound)
    ));
    assert_eq!(sim.report().throttled, 1);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Scripted {
        answer: json!({"SchemaVersion": "1.0", "Actions": []}),
        delay: Duration::ZERO,
        seen,
    };
    let config = SimConfig {
        faults: Faults {
            create_error_after_placed: 1.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    let answer = dialer
        .place(
            &from,
            &to,
            BTreeMap::from([
                ("call_id".into(), "call_1".into()),
                ("attempt".into(), "1".into()),
            ]),
        )
        .await;
    assert!(matches!(answer, Err(DialError::Unknown(_))), "{answer:?}");
    assert_eq!(
        sim.report().placed_per_number["+15555550100"],
        1,
        "placed although the answer was a 5xx"
    );
}

/// What the Create API answered each of 30 numbers, all asked at once (last number first when
/// `reverse`).
async fn create_outcomes(seed: u64, reverse: bool) -> BTreeMap<String, &'static str> {
    let handler = Scripted {
        answer: json!({"SchemaVersion": "1.0", "Actions": []}),
        delay: Duration::ZERO,
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let config = SimConfig {
        seed,
        faults: Faults {
            throttle: 0.3,
            create_error: 0.2,
            create_error_after_placed: 0.2,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    let from = E164::parse("+15555550199").unwrap();
    let mut numbers: Vec<String> = (0..30).map(|i| format!("+1555555{i:04}")).collect();
    if reverse {
        numbers.reverse();
    }
    let answers = futures::future::join_all(numbers.iter().map(|to| {
        let (dialer, from) = (&dialer, &from);
        async move {
            let arguments = BTreeMap::from([
                ("call_id".to_owned(), format!("call_{}", &to[1..])),
                ("attempt".to_owned(), "1".to_owned()),
            ]);
            let answer = dialer
                .place(from, &E164::parse(to).unwrap(), arguments)
                .await;
            let outcome = match answer {
                Ok(_) => "placed",
                Err(DialError::Throttled) => "throttled",
                Err(DialError::Unknown(_)) => "unknown",
                Err(_) => "other",
            };
            (to.clone(), outcome)
        }
    }))
    .await;
    answers.into_iter().collect()
}

#[tokio::test]
async fn a_seed_repeats_the_same_faults_on_the_same_calls_however_the_requests_interleave() {
    let forward = create_outcomes(7, false).await;
    let backward = create_outcomes(7, true).await;
    assert_eq!(forward, backward);
    let kinds: std::collections::BTreeSet<_> = forward.values().collect();
    assert!(kinds.len() >= 3, "{forward:?}");
    assert_ne!(forward, create_outcomes(8, false).await, "another seed");
}
