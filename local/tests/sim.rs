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
use outdial_core::time::{Clock, ManualClock, Timestamp};
use outdial_local::sim::{
    Callee, Callees, Carrier, Faults, FromUsage, Invoke, Report, SimConfig, Simulator, voice_client,
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

/// A handler that answers each event with what `answer` makes of it (and of the events sent
/// before it); it keeps every event it was sent.
struct Answers<F> {
    answer: F,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl<F> Invoke for Answers<F>
where
    F: Fn(&Value, &[Value]) -> Value + Send + Sync + 'static,
{
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
        let mut seen = self.seen.lock().unwrap();
        let answer = (self.answer)(&event, &seen);
        seen.push(event);
        async move { Ok(answer) }.boxed()
    }
}

fn actions(list: Vec<Value>) -> Value {
    json!({"SchemaVersion": "1.0", "Actions": list})
}

fn listen(regex: &str) -> Value {
    json!({"Type": "ReceiveDigits", "Parameters": {"InputDigitsRegex": regex,
        "InBetweenDigitsDurationInMilliseconds": 1000, "FlushDigitsDurationInMilliseconds": 10000}})
}

fn hangup() -> Value {
    json!({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
}

/// Places one call to `+15555550100`, answered by `callee`, with `arguments` and `faults`,
/// against a handler that answers as `answer` says; waits for it to end.
async fn call_with<F>(
    callee: Callee,
    faults: Faults,
    arguments: BTreeMap<String, String>,
    answer: F,
) -> (Report, Vec<Value>)
where
    F: Fn(&Value, &[Value]) -> Value + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = SimConfig {
        speed: 0.001,
        faults,
        callees: Callees {
            by_number: BTreeMap::from([("+15555550100".to_owned(), callee)]),
            mix: Vec::new(),
        },
        ..SimConfig::default()
    };
    let handler = Answers {
        answer,
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
            arguments,
        )
        .await
        .unwrap();
    assert!(sim.wait_idle(Duration::from_secs(30)).await);
    let seen = seen.lock().unwrap().clone();
    (sim.report(), seen)
}

fn opts_out() -> Callee {
    Callee::OptsOut {
        after_ms: 1_000,
        hello_ms: None,
    }
}

fn digits_received(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["InvocationEventType"] == "DIGITS_RECEIVED")
        .collect()
}

#[tokio::test]
async fn an_opting_out_callee_presses_the_armed_key_and_a_hangup_answer_ends_the_call() {
    let (report, seen) = call_with(
        opts_out(),
        Faults::default(),
        BTreeMap::new(),
        |event, _| match event["InvocationEventType"].as_str() {
            Some("CALL_ANSWERED") => actions(vec![listen("^9$"), speak(1), speak(2)]),
            Some("DIGITS_RECEIVED") => actions(vec![hangup()]),
            _ => actions(Vec::new()),
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(
        kinds(&seen),
        [
            "NEW_OUTBOUND_CALL",
            "RINGING",
            "CALL_ANSWERED",
            "DIGITS_RECEIVED",
            "HANGUP"
        ],
        "the press cut the prompts short, and the Hangup ended the call"
    );
    let pressed = &seen[3];
    assert_eq!(pressed["Sequence"], 4);
    assert_eq!(pressed["ActionData"]["Type"], "ReceiveDigits");
    assert_eq!(
        pressed["ActionData"]["Parameters"],
        listen("^9$")["Parameters"]
    );
    assert_eq!(pressed["ActionData"]["ReceivedDigits"], "9");
    assert!(report.calls[0].ended);
    assert_eq!(report.digits_received, 1);
    assert!(
        report.calls[0]
            .transcript
            .iter()
            .any(|l| l.contains("the callee presses 9")),
        "{:?}",
        report.calls[0].transcript
    );
}

#[tokio::test]
async fn a_listener_matches_once_until_another_receive_digits_arms_it_again() {
    // The first press is answered with nothing (the list goes on); later lists speak without
    // arming, then one arms again; the second match is answered with a Hangup.
    let (report, seen) = call_with(
        opts_out(),
        Faults::default(),
        BTreeMap::new(),
        |event, before| {
            let successes = before
                .iter()
                .filter(|e| e["InvocationEventType"] == "ACTION_SUCCESSFUL")
                .count();
            match event["InvocationEventType"].as_str() {
                Some("CALL_ANSWERED") => actions(vec![listen("^[9]$"), speak(1)]),
                Some("DIGITS_RECEIVED") if digits_received(before).is_empty() => {
                    actions(Vec::new())
                }
                Some("DIGITS_RECEIVED") => actions(vec![hangup()]),
                Some("ACTION_SUCCESSFUL") if successes < 2 => actions(vec![speak(2)]),
                Some("ACTION_SUCCESSFUL") => actions(vec![listen("^9$"), speak(3)]),
                _ => actions(Vec::new()),
            }
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(
        kinds(&seen),
        [
            "NEW_OUTBOUND_CALL",
            "RINGING",
            "CALL_ANSWERED",
            "DIGITS_RECEIVED",
            // The list went on after the empty answer.
            "ACTION_SUCCESSFUL",
            // The callee pressed 9 again during these two lists: nothing listened.
            "ACTION_SUCCESSFUL",
            "ACTION_SUCCESSFUL",
            // Armed again: the next press matches.
            "DIGITS_RECEIVED",
            "HANGUP"
        ]
    );
    assert_eq!(
        seen[4]["ActionData"]["Type"], "Speak",
        "the list's last action"
    );
    let pressed = digits_received(&seen);
    assert_eq!(
        pressed[0]["ActionData"]["Parameters"]["InputDigitsRegex"],
        "^[9]$"
    );
    assert_eq!(
        pressed[1]["ActionData"]["Parameters"]["InputDigitsRegex"],
        "^9$"
    );
    assert_eq!(pressed[1]["Sequence"], 8);
    assert_eq!(report.digits_received, 2);
    let ignored = report.calls[0]
        .transcript
        .iter()
        .filter(|l| l.contains("nothing listens"))
        .count();
    assert_eq!(ignored, 2, "{:?}", report.calls[0].transcript);
}

#[tokio::test]
async fn an_opting_out_callee_with_nothing_armed_presses_nothing() {
    let gather = json!({"Type": "SpeakAndGetDigits", "Parameters": {"CallId": "leg-a",
        "SpeechParameters": {"Text": "Press 1"}, "FailureSpeechParameters": {"Text": "Sorry"},
        "InputDigitsRegex": "^[12]$",
        "MinNumberOfDigits": 1, "MaxNumberOfDigits": 1, "Repeat": 1,
        "RepeatDurationInMilliseconds": 3000}});
    let (report, seen) = call_with(
        opts_out(),
        Faults::default(),
        BTreeMap::new(),
        move |event, _| match event["InvocationEventType"].as_str() {
            Some("CALL_ANSWERED") => actions(vec![speak(1), gather.clone()]),
            Some("ACTION_FAILED") => actions(vec![hangup()]),
            _ => actions(Vec::new()),
        },
    )
    .await;
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(
        kinds(&seen),
        [
            "NEW_OUTBOUND_CALL",
            "RINGING",
            "CALL_ANSWERED",
            "ACTION_FAILED",
            "HANGUP"
        ],
        "silent at the gather too"
    );
    assert_eq!(report.digits_received, 0);
    assert!(
        !report.calls[0]
            .transcript
            .iter()
            .any(|l| l.contains("presses")),
        "{:?}",
        report.calls[0].transcript
    );
}

#[tokio::test]
async fn a_digits_received_event_is_duplicated_like_any_other() {
    let faults = Faults {
        duplicate: 1.0,
        ..Faults::default()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = SimConfig {
        speed: 0.001,
        faults,
        callees: Callees {
            by_number: BTreeMap::from([("+15555550100".to_owned(), opts_out())]),
            mix: Vec::new(),
        },
        ..SimConfig::default()
    };
    let handler = Answers {
        answer: |event: &Value, _: &[Value]| match event["InvocationEventType"].as_str() {
            Some("CALL_ANSWERED") => actions(vec![listen("^#$"), speak(1)]),
            Some("DIGITS_RECEIVED") => actions(vec![hangup()]),
            _ => actions(Vec::new()),
        },
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
    // The copy is delivered on its own; wait for it to be logged, not for a time.
    let copied = |report: &Report| {
        report.calls[0]
            .invocation_log
            .iter()
            .any(|i| i.event_type == "DIGITS_RECEIVED" && i.copy)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !copied(&sim.report()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = sim.report();
    assert!(copied(&report), "{:#?}", report.calls[0].invocation_log);
    let seen = seen.lock().unwrap().clone();
    let pressed = digits_received(&seen);
    assert_eq!(pressed.len(), 2, "sent, then its copy");
    assert_eq!(pressed[0], pressed[1], "the same event, same Sequence");
    assert_eq!(pressed[0]["ActionData"]["ReceivedDigits"], "#");
    assert_eq!(report.digits_received, 1, "one event, whatever its copies");
}

#[tokio::test]
async fn the_report_counts_placements_per_number_and_purpose() {
    let handler = Scripted {
        answer: json!({"SchemaVersion": "1.0", "Actions": []}),
        delay: Duration::ZERO,
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let config = SimConfig {
        speed: 0.001,
        callees: Callees {
            by_number: BTreeMap::new(),
            mix: vec![(1, Callee::Busy)],
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    let from = E164::parse("+15555550199").unwrap();
    let dials = [
        ("+15555550100", Some("telemarketing")),
        ("+15555550100", Some("telemarketing")),
        ("+15555550100", None),
        ("+15555550101", Some("healthcare")),
    ];
    for (i, (to, purpose)) in dials.into_iter().enumerate() {
        let mut arguments = BTreeMap::from([
            ("call_id".to_owned(), format!("call_{i}")),
            ("attempt".to_owned(), "1".to_owned()),
        ]);
        if let Some(purpose) = purpose {
            arguments.insert("purpose".to_owned(), purpose.to_owned());
        }
        dialer
            .place(&from, &E164::parse(to).unwrap(), arguments)
            .await
            .unwrap();
    }
    assert!(sim.wait_idle(Duration::from_secs(30)).await);
    let report = sim.report();
    let count = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
        pairs.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect()
    };
    assert_eq!(
        report.placed_per_number_purpose,
        BTreeMap::from([
            (
                "+15555550100".to_owned(),
                count(&[("telemarketing", 2), ("unspecified", 1)])
            ),
            ("+15555550101".to_owned(), count(&[("healthcare", 1)])),
        ])
    );
    assert_eq!(
        report.placed_per_number["+15555550100"], 3,
        "kept as it was"
    );
    // A report written before the field existed still reads.
    let mut old = serde_json::to_value(&report).unwrap();
    old.as_object_mut()
        .unwrap()
        .remove("placed_per_number_purpose");
    let read: Report = serde_json::from_value(old).unwrap();
    assert!(read.placed_per_number_purpose.is_empty());
}

/// A simulator whose placements are timed by `clock`, run as `config` says (speed aside);
/// the events its handler was sent go to `seen`.
async fn on_virtual_time(
    config: SimConfig,
    clock: &Arc<ManualClock>,
    answer: Value,
    seen: &Arc<Mutex<Vec<Value>>>,
) -> (Simulator, ChimeDialer) {
    let clock: Arc<dyn Clock> = Arc::<ManualClock>::clone(clock);
    let config = SimConfig {
        speed: 0.001,
        clock: Some(clock),
        ..config
    };
    let handler = Scripted {
        answer,
        delay: Duration::ZERO,
        seen: Arc::clone(seen),
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    (sim, dialer)
}

/// Places a call from `from` to `to` once `clock` reads `at_ms`; its transaction.
async fn dial_at(
    dialer: &ChimeDialer,
    clock: &ManualClock,
    at_ms: i64,
    from: &str,
    to: &str,
) -> String {
    clock.set(Timestamp::from_millis(at_ms));
    dialer
        .place(
            &E164::parse(from).unwrap(),
            &E164::parse(to).unwrap(),
            BTreeMap::new(),
        )
        .await
        .unwrap()
        .as_str()
        .to_owned()
}

fn busy_lines() -> Callees {
    Callees {
        by_number: BTreeMap::new(),
        mix: vec![(1, Callee::Busy)],
    }
}

/// The events the handler was sent for `transaction`.
fn events_of<'a>(seen: &'a [Value], transaction: &str) -> Vec<&'a Value> {
    seen.iter()
        .filter(|e| e["CallDetails"]["TransactionId"] == transaction)
        .collect()
}

/// The SIP code of the `HANGUP` the handler was sent for `transaction`.
fn hangup_code(seen: &[Value], transaction: &str) -> u64 {
    let events = events_of(seen, transaction);
    let hangup = events
        .iter()
        .find(|e| e["InvocationEventType"] == "HANGUP")
        .unwrap_or_else(|| panic!("no HANGUP for {transaction}: {events:#?}"));
    hangup["ActionData"]["Parameters"]["SipResponseCode"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn the_report_counts_placements_per_caller_id_in_sliding_minutes_and_hours() {
    let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_700_000_000_000)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = SimConfig {
        callees: busy_lines(),
        ..SimConfig::default()
    };
    let (sim, dialer) = on_virtual_time(config, &clock, actions(vec![]), &seen).await;
    let t0 = 1_700_000_000_000;
    let (a, b) = ("+15555550199", "+15555550198");
    // From a: three within the first minute (0 s, 10 s, 50 s), and five within the first
    // hour; the last is 3,600 s after the third, so not in its hour.
    for at_s in [0, 10, 50, 70, 130, 3_650] {
        dial_at(&dialer, &clock, t0 + at_s * 1_000, a, "+15555550100").await;
    }
    // From b: two exactly a minute apart are never within one 60 s window.
    for at_s in [5_000, 5_060] {
        dial_at(&dialer, &clock, t0 + at_s * 1_000, b, "+15555550101").await;
    }
    assert!(sim.wait_idle(Duration::from_secs(30)).await);
    let report = sim.report();
    assert_eq!(
        report.placed_per_from,
        BTreeMap::from([
            (
                a.to_owned(),
                FromUsage {
                    total: 6,
                    max_per_minute: 3,
                    max_per_hour: 5
                }
            ),
            (
                b.to_owned(),
                FromUsage {
                    total: 2,
                    max_per_minute: 1,
                    max_per_hour: 2
                }
            ),
        ])
    );
    assert!(report.carrier_rejected.is_empty(), "no carrier model");
    assert_eq!(report.max_in_any_second, 8, "wall time, as ever");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["placed_per_from"][a],
        json!({"total": 6, "max_per_minute": 3, "max_per_hour": 5})
    );
    // A report written before the fields existed still reads.
    let mut old = json;
    let fields = old.as_object_mut().unwrap();
    fields.remove("placed_per_from");
    fields.remove("carrier_rejected");
    let read: Report = serde_json::from_value(old).unwrap();
    assert!(read.placed_per_from.is_empty() && read.carrier_rejected.is_empty());
}

#[tokio::test]
async fn a_caller_id_over_its_hourly_volume_is_rejected_with_608_until_its_block_ends() {
    let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_700_000_000_000)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    // As a configuration file writes it.
    let config: SimConfig = serde_json::from_value(json!({
        "carrier": {"max_per_hour": 3, "short_call_ms": 0, "block_for_ms": 600_000}
    }))
    .unwrap();
    let carrier = config.carrier.clone().unwrap();
    assert_eq!(carrier.block_for, Duration::from_secs(600));
    assert_eq!(carrier.max_per_hour, 3);
    let config = SimConfig {
        callees: Callees {
            by_number: BTreeMap::from([("+15555550177".to_owned(), Callee::Fail { code: 608 })]),
            mix: vec![(1, Callee::Busy)],
        },
        ..config
    };
    let (sim, dialer) = on_virtual_time(config, &clock, actions(vec![]), &seen).await;
    let t0 = 1_700_000_000_000;
    let (flagged, other) = ("+15555550199", "+15555550198");
    let mut calls = Vec::new();
    for (at_ms, from) in [
        (0, flagged),
        (0, other),
        (1_000, flagged),
        (1_000, other),
        (2_000, flagged),
        // The fourth within the hour trips the rule: rejected, and flagged until 602 s.
        (3_000, flagged),
        (3_000, other),
        (602_999, flagged),
        // Lifted: a clean slate.
        (603_000, flagged),
        (603_001, flagged),
    ] {
        let tx = dial_at(&dialer, &clock, t0 + at_ms, from, "+15555550100").await;
        calls.push((at_ms, from, tx));
    }
    // A callee who fails with 608 of its own, from the unaffected caller ID (its third call
    // within the hour).
    let own = dial_at(&dialer, &clock, t0 + 3_600_500, other, "+15555550177").await;
    assert!(sim.wait_idle(Duration::from_secs(30)).await);
    let seen = seen.lock().unwrap().clone();
    let codes: Vec<(i64, &str, u64)> = calls
        .iter()
        .map(|(at, from, tx)| (*at, *from, hangup_code(&seen, tx)))
        .collect();
    assert_eq!(
        codes,
        [
            (0, flagged, 486),
            (0, other, 486),
            (1_000, flagged, 486),
            (1_000, other, 486),
            (2_000, flagged, 486),
            (3_000, flagged, 608),
            (3_000, other, 486),
            (602_999, flagged, 608),
            (603_000, flagged, 486),
            (603_001, flagged, 486),
        ]
    );
    let report = sim.report();
    assert_eq!(
        report.carrier_rejected,
        BTreeMap::from([(flagged.to_owned(), 2)])
    );
    assert_eq!(report.placed_per_from[flagged].total, 7, "every one a 201");
    assert_eq!(report.placed_per_from[other].total, 4);
    // The handler sees a rejected call as it sees a callee's own 608 failure.
    let shape = |tx: &str| -> Vec<(String, Value)> {
        events_of(&seen, tx)
            .into_iter()
            .map(|e| {
                (
                    e["InvocationEventType"].as_str().unwrap().to_owned(),
                    json!({
                        "Sequence": e["Sequence"],
                        "ActionType": e["ActionData"]["Type"],
                        "Parameters": e["ActionData"]["Parameters"]
                            .as_object()
                            .map(|p| p.keys().cloned().collect::<Vec<_>>()),
                        "SipResponseCode": e["ActionData"]["Parameters"]["SipResponseCode"],
                        "Participants": e["CallDetails"]["Participants"].as_array().map(Vec::len),
                    }),
                )
            })
            .collect()
    };
    let (.., rejected) = calls
        .iter()
        .find(|(at, from, _)| *at == 3_000 && *from == flagged)
        .unwrap();
    assert_eq!(shape(rejected), shape(&own));
    assert_eq!(
        shape(rejected)
            .iter()
            .map(|(kind, _)| kind.as_str())
            .collect::<Vec<_>>(),
        ["NEW_OUTBOUND_CALL", "HANGUP"]
    );
    let call = report
        .calls
        .iter()
        .find(|c| &c.transaction_id == rejected)
        .unwrap();
    assert_eq!(call.callee, Callee::Fail { code: 608 });
    assert!(
        call.transcript
            .iter()
            .any(|l| l.contains("carrier rejects")),
        "{:#?}",
        call.transcript
    );
}

#[tokio::test]
async fn a_caller_id_whose_answered_calls_are_mostly_short_is_flagged() {
    let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_700_000_000_000)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer_after = |after_ms| Callee::Answer {
        after_ms,
        digits: None,
    };
    let config = SimConfig {
        callees: Callees {
            // Answered, then hung up by the handler at once: short calls.
            by_number: BTreeMap::from([
                ("+15555550100".to_owned(), answer_after(1_000)),
                ("+15555550101".to_owned(), answer_after(1_000)),
            ]),
            mix: vec![(1, Callee::Busy)],
        },
        carrier: Some(Carrier {
            max_per_hour: 1_000,
            short_call_ms: 5_000,
            max_short_share: 0.5,
            min_calls: 3,
            block_for: Duration::from_secs(3_600),
        }),
        ..SimConfig::default()
    };
    let (sim, dialer) = on_virtual_time(config, &clock, actions(vec![hangup()]), &seen).await;
    let t0 = 1_700_000_000_000;
    let (short, mixed) = ("+15555550199", "+15555550198");
    let mut calls = Vec::new();
    // Each call ends before the next is placed, so the carrier has seen how it went.
    for (at_ms, from, to) in [
        (0, short, "+15555550100"),
        (1_000, short, "+15555550100"),
        (2_000, short, "+15555550102"),
        // Two short of three ended: more than half.
        (3_000, short, "+15555550100"),
        (0, mixed, "+15555550101"),
        (1_000, mixed, "+15555550102"),
        (2_000, mixed, "+15555550102"),
        // One short of three: not flagged.
        (3_000, mixed, "+15555550101"),
    ] {
        let tx = dial_at(&dialer, &clock, t0 + at_ms, from, to).await;
        assert!(sim.wait_idle(Duration::from_secs(30)).await);
        calls.push((from, tx));
    }
    let seen = seen.lock().unwrap().clone();
    let codes: Vec<(&str, u64)> = calls
        .iter()
        .map(|(from, tx)| (*from, hangup_code(&seen, tx)))
        .collect();
    assert_eq!(
        codes,
        [
            (short, 0),
            (short, 0),
            (short, 486),
            (short, 608),
            (mixed, 0),
            (mixed, 486),
            (mixed, 486),
            (mixed, 0),
        ]
    );
    assert_eq!(
        sim.report().carrier_rejected,
        BTreeMap::from([(short.to_owned(), 1)])
    );
}
