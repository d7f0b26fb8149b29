//! Answering-machine detection in the SMA handler, event by event against DynamoDB Local, on
//! the test's clock: a person goes on to the script, a machine gets its message after the
//! beep exactly once, and every event still costs one DynamoDB request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod support;

use std::time::Duration;

use outdial_core::contract::validate_response;
use outdial_core::lifecycle::CallStatus;
use outdial_core::machine::Verdict;
use outdial_core::record::CallRecord;
use outdial_sma::Settings;
use serde_json::{Value, json};
use support::{Call, Harness, types};

const BUCKET: &str = "outdial-greetings-test";

/// The reminder script, listening for machines, with an opt-out key.
const DETECTING: &str = r#"{
    "caller_name": "Riverside Clinic",
    "opt_out": { "digit": "9", "say": "You will not be called again." },
    "machine": { "message": "Hello {{name}}, this is Riverside Clinic about Tuesday. Goodbye." },
    "start": "greet",
    "steps": {
        "greet": { "say": "Hello {{name}}, Riverside Clinic here, about {{date}}.", "next": "menu" },
        "menu": { "gather": { "say": "Press 1 to confirm, 2 to cancel.", "max_digits": 1 },
                  "branches": { "1": "confirm", "2": "decline" }, "no_input": "goodbye" },
        "confirm": { "say": "Thank you.", "outcome": "confirmed" },
        "decline": { "say": "We have cancelled it.", "outcome": "declined" },
        "goodbye": { "say": "We will call again.", "outcome": "no_input" }
    }
}"#;

async fn harness() -> Harness {
    let settings = Settings {
        greetings_bucket: Some(BUCKET.to_owned()),
        ..Settings::default()
    };
    Harness::with_settings(DETECTING, settings).await
}

/// Sends `event`, checks the answer is valid, within the SMA's limits, and cost one request;
/// keeps its attributes as the SMA does.
async fn step(h: &Harness, call: &mut Call, event: Value) -> Value {
    let (answer, sent) = h.send(&event).await;
    validate_response(&answer)
        .unwrap_or_else(|e| panic!("{}: {e}\n{answer}", event["InvocationEventType"]));
    let attributes = answer["TransactionAttributes"]
        .as_object()
        .map_or(0, |m| m.len());
    assert!(attributes <= 10, "{attributes} attributes: {answer}");
    assert_eq!(
        sent, 1,
        "{} cost {sent} requests",
        event["InvocationEventType"]
    );
    call.keep(&answer);
    answer
}

async fn record(h: &Harness, call: &Call) -> CallRecord {
    h.store.call(&call.id).await.unwrap()
}

/// A call placed, rung and answered; returns the answer to `CALL_ANSWERED`. The campaign is
/// read first, so every event after costs exactly one request.
async fn answered(h: &Harness, to: &str) -> (Call, Value) {
    h.handler
        .campaigns()
        .get(&h.store, &h.campaign.id)
        .await
        .unwrap();
    let mut call = h.dialing_call(to).await;
    let placed = call.new_outbound_call();
    step(h, &mut call, placed).await;
    let ringing = call.event("RINGING", None);
    h.send(&ringing).await;
    let answered = call.answered();
    let answer = step(h, &mut call, answered).await;
    (call, answer)
}

fn record_audio(answer: &Value) -> &Value {
    let actions = answer["Actions"].as_array().unwrap();
    let last = actions.last().unwrap();
    assert_eq!(last["Type"], "RecordAudio", "{answer}");
    &last["Parameters"]
}

#[tokio::test]
async fn the_answer_listens_and_a_short_hello_goes_on_to_the_script() {
    let h = harness().await;
    let (mut call, answer) = answered(&h, "+15555550300").await;
    assert_eq!(types(&answer), ["ReceiveDigits", "RecordAudio"]);
    let listen = record_audio(&answer);
    assert_eq!(listen["DurationInSeconds"], 4);
    assert_eq!(listen["SilenceDurationInSeconds"], 1);
    assert_eq!(listen["RecordingDestination"]["BucketName"], BUCKET);
    assert_eq!(
        listen["RecordingDestination"]["Prefix"],
        format!("greetings/{}/", h.campaign.id.as_str())
    );
    assert_eq!(record(&h, &call).await.verdict, Some(Verdict::Undecided));

    // "Hello?" for 0.7 s, then a second of silence.
    h.clock.advance(Duration::from_millis(1_700));
    let heard = call.action_result(&answer, true, json!({}));
    let answer = step(&h, &mut call, heard).await;
    assert_eq!(
        types(&answer),
        ["ReceiveDigits", "Speak", "SpeakAndGetDigits"]
    );
    assert!(answer["TransactionAttributes"].get("machine").is_none());
    let r = record(&h, &call).await;
    assert_eq!(
        (r.verdict, r.greeting_ms),
        (Some(Verdict::Person), Some(700))
    );

    let pressed = call.action_result(&answer, true, json!({"ReceivedDigits": "1"}));
    let answer = step(&h, &mut call, pressed).await;
    assert_eq!(types(&answer), ["Speak", "Hangup"]);
    let hangup = call.hangup("LEG-A", Some(json!(0)));
    step(&h, &mut call, hangup).await;
    let r = record(&h, &call).await;
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.script_outcome.as_deref(), Some("confirmed"));
    assert_eq!(r.verdict, Some(Verdict::Person));
}

/// A mailbox: a greeting still going when the listening ends, a wait for the beep, the
/// message alone, then the hang-up. Returns the call and the answers in order.
async fn mailbox(h: &Harness, to: &str, wait_ms: u64) -> (Call, Vec<(Value, Value)>) {
    let (mut call, answer) = answered(h, to).await;
    let mut sent = Vec::new();
    h.clock.advance(Duration::from_millis(4_000));
    let heard = call.action_result(&answer, true, json!({}));
    let answer = step(h, &mut call, heard.clone()).await;
    sent.push((heard, answer.clone()));
    h.clock.advance(Duration::from_millis(wait_ms));
    let beeped = call.action_result(&answer, true, json!({}));
    let answer = step(h, &mut call, beeped.clone()).await;
    sent.push((beeped, answer));
    (call, sent)
}

#[tokio::test]
async fn a_machine_gets_the_message_after_its_beep_and_the_call_is_left_a_voicemail() {
    let h = harness().await;
    let (mut call, sent) = mailbox(&h, "+15555550301", 6_500).await;
    let (_, wait) = &sent[0];
    assert_eq!(types(wait), ["RecordAudio"]);
    let beep = record_audio(wait);
    assert_eq!(beep["SilenceDurationInSeconds"], 2);
    assert_eq!(beep["DurationInSeconds"], 30);
    let r = record(&h, &call).await;
    assert_eq!(
        (r.verdict, r.greeting_ms),
        (Some(Verdict::Machine), Some(4_000))
    );

    let (_, message) = &sent[1];
    assert_eq!(types(message), ["Speak"], "the message alone");
    assert_eq!(
        message["Actions"][0]["Parameters"]["Text"],
        "Hello Ada, this is Riverside Clinic about Tuesday. Goodbye."
    );
    assert_eq!(
        record(&h, &call).await.script_outcome.as_deref(),
        Some("voicemail_cut_off"),
        "until the message has played"
    );
    let played = call.action_result(message, true, json!({}));
    let answer = step(&h, &mut call, played).await;
    assert_eq!(types(&answer), ["Hangup"]);
    let hangup = call.hangup("LEG-A", Some(json!(0)));
    step(&h, &mut call, hangup).await;
    let r = record(&h, &call).await;
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.script_outcome.as_deref(), Some("voicemail_left"));
    assert_eq!(r.verdict, Some(Verdict::Machine));
}

#[tokio::test]
async fn a_greeting_that_never_pauses_is_not_talked_into() {
    let h = harness().await;
    let (mut call, sent) = mailbox(&h, "+15555550302", 30_000).await;
    let (_, answer) = &sent[1];
    assert_eq!(types(answer), ["Hangup"]);
    let hangup = call.hangup("LEG-A", Some(json!(0)));
    step(&h, &mut call, hangup).await;
    let r = record(&h, &call).await;
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.script_outcome.as_deref(), Some("voicemail_unheard"));
}

#[tokio::test]
async fn repeated_and_late_events_never_play_the_message_again() {
    let h = harness().await;
    let (mut call, sent) = mailbox(&h, "+15555550303", 5_000).await;
    let (beeped, message) = &sent[1];
    let played = call.action_result(message, true, json!({}));
    let hung_up = step(&h, &mut call, played.clone()).await;
    let before = record(&h, &call).await;

    // The message's own report again: the stored answer, byte for byte.
    h.clock.advance(Duration::from_secs(5));
    let (again, requests) = h.send(&played).await;
    assert_eq!((again, requests), (hung_up, 1));
    // The beep's report, late: older than the last event, it changes nothing and speaks
    // nothing.
    let (late, _) = h.send(beeped).await;
    assert!(!types(&late).contains(&"Speak".to_owned()), "{late}");
    let (late, _) = h.send(&sent[0].0).await;
    assert!(!types(&late).contains(&"Speak".to_owned()), "{late}");
    assert_eq!(record(&h, &call).await, before);
}

#[tokio::test]
async fn a_hang_up_while_listening_ends_the_call_undecided() {
    let h = harness().await;
    let (mut call, _) = answered(&h, "+15555550304").await;
    h.clock.advance(Duration::from_millis(600));
    let hangup = call.hangup("LEG-A", Some(json!(0)));
    let answer = step(&h, &mut call, hangup).await;
    assert!(types(&answer).is_empty());
    let r = record(&h, &call).await;
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.verdict, Some(Verdict::Undecided));
    assert_eq!(r.script_outcome, None);
    assert_eq!(r.due_at, None, "nothing left to watch");
}

#[tokio::test]
async fn a_key_during_the_listening_is_a_person_and_the_opt_out_key_opts_out() {
    let h = harness().await;
    let (mut call, answer) = answered(&h, "+15555550305").await;
    h.clock.advance(Duration::from_millis(3_900));
    let pressed = call.action_result(&answer, true, json!({"RecordingTerminatorUsed": "#"}));
    let answer = step(&h, &mut call, pressed).await;
    assert_eq!(
        types(&answer),
        ["ReceiveDigits", "Speak", "SpeakAndGetDigits"]
    );
    assert_eq!(record(&h, &call).await.verdict, Some(Verdict::Person));

    let (mut other, answer) = answered(&h, "+15555550306").await;
    let listener = answer["Actions"][0].clone();
    let nine = other.event(
        "DIGITS_RECEIVED",
        Some(json!({"Type": "ReceiveDigits", "Parameters": listener["Parameters"], "ReceivedDigits": "9"})),
    );
    // The opt-out's write lists the number in the same transaction: one request, as
    // without detection.
    let (answer, requests) = h.send(&nine).await;
    validate_response(&answer).unwrap();
    assert_eq!(requests, 1);
    assert_eq!(types(&answer), ["Speak", "Hangup"]);
    assert!(answer["TransactionAttributes"].get("machine").is_none());
    assert_eq!(
        record(&h, &other).await.script_outcome.as_deref(),
        Some("opted_out")
    );
}

#[tokio::test]
async fn a_listening_that_fails_starts_the_script_and_records_why() {
    let h = harness().await;
    let (mut call, answer) = answered(&h, "+15555550307").await;
    let failed = call.action_result(
        &answer,
        false,
        json!({"ErrorType": "InvalidActionParameter", "ErrorMessage": "the bucket refused the recording"}),
    );
    let answer = step(&h, &mut call, failed).await;
    assert_eq!(
        types(&answer),
        ["ReceiveDigits", "Speak", "SpeakAndGetDigits"]
    );
    let r = record(&h, &call).await;
    assert_eq!(r.verdict, Some(Verdict::Undecided));
    assert!(
        r.last_error.as_deref().unwrap().contains("bucket refused"),
        "{r:?}"
    );
}

#[tokio::test]
async fn without_a_greetings_bucket_nothing_is_recorded_and_the_script_starts() {
    let h = Harness::with_settings(DETECTING, Settings::default()).await;
    let (call, answer) = answered(&h, "+15555550308").await;
    assert_eq!(
        types(&answer),
        ["ReceiveDigits", "Speak", "SpeakAndGetDigits"]
    );
    assert_eq!(record(&h, &call).await.verdict, None);
}

#[test]
fn the_greetings_bucket_comes_from_the_environment_and_must_be_a_bucket_name() {
    let read = |bucket: Option<&str>| {
        Settings::from_vars(|name| {
            (name == "OUTDIAL_GREETINGS_BUCKET")
                .then(|| bucket.map(str::to_owned))
                .flatten()
        })
    };
    assert_eq!(read(None).unwrap().greetings_bucket, None);
    assert_eq!(
        read(Some("outdial-greetings-123"))
            .unwrap()
            .greetings_bucket
            .as_deref(),
        Some("outdial-greetings-123")
    );
    for bad in ["", "ab", "Upper-Case", "has space", "a/b"] {
        let e = read(Some(bad)).unwrap_err().to_string();
        assert!(e.contains("OUTDIAL_GREETINGS_BUCKET"), "{bad:?}: {e}");
    }
}

#[tokio::test]
async fn detection_stops_at_the_invocation_limit_like_any_turn() {
    let h = harness().await;
    let (mut call, answer) = answered(&h, "+15555550309").await;
    h.clock.advance(Duration::from_millis(4_000));
    // A call this deep in invocations is a loop: whatever detection would do next, the
    // handler hangs up before the SMA's limit of 1,000.
    let data = {
        let last = answer["Actions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        json!({"Type": last["Type"], "Parameters": last["Parameters"]})
    };
    call.seq = 994;
    let late = call.event("ACTION_SUCCESSFUL", Some(data));
    let answer = step(&h, &mut call, late).await;
    assert_eq!(types(&answer), ["Hangup"]);
    let r = record(&h, &call).await;
    assert_eq!(r.script_outcome.as_deref(), Some("invocation_limit"));
}

#[tokio::test]
async fn the_opt_out_listener_failing_before_the_listening_starts_the_script() {
    let h = harness().await;
    let (mut call, answer) = answered(&h, "+15555550310").await;
    // The first action of the list fails; the service drops the rest, so nothing listens.
    let listener = answer["Actions"][0].clone();
    let failed = call.event(
        "ACTION_FAILED",
        Some(
            json!({"Type": "ReceiveDigits", "Parameters": listener["Parameters"],
                    "ErrorType": "SystemException", "ErrorMessage": "the listener failed"}),
        ),
    );
    let answer = step(&h, &mut call, failed).await;
    assert_eq!(
        types(&answer),
        ["ReceiveDigits", "Speak", "SpeakAndGetDigits"]
    );
    assert!(answer["TransactionAttributes"].get("machine").is_none());
    assert_eq!(record(&h, &call).await.verdict, Some(Verdict::Undecided));
}

#[tokio::test]
async fn a_key_while_waiting_for_the_beep_is_a_person_after_all() {
    let h = harness().await;
    let (mut call, answer) = answered(&h, "+15555550311").await;
    // Four seconds of talk: judged a machine, and the wait for the beep begins.
    h.clock.advance(Duration::from_millis(4_000));
    let heard = call.action_result(&answer, true, json!({}));
    let wait = step(&h, &mut call, heard).await;
    assert_eq!(types(&wait), ["RecordAudio"]);
    assert_eq!(record(&h, &call).await.verdict, Some(Verdict::Machine));
    // A machine presses nothing: someone is there.
    h.clock.advance(Duration::from_millis(1_500));
    let pressed = call.action_result(&wait, true, json!({"RecordingTerminatorUsed": "#"}));
    let answer = step(&h, &mut call, pressed).await;
    assert_eq!(
        types(&answer),
        ["ReceiveDigits", "Speak", "SpeakAndGetDigits"]
    );
    let r = record(&h, &call).await;
    assert_eq!(
        (r.verdict, r.greeting_ms),
        (Some(Verdict::Person), Some(4_000)),
        "the greeting measured stays"
    );
}

#[tokio::test]
async fn an_empty_terminator_is_no_key() {
    let h = harness().await;
    for (to, none) in [("+15555550312", json!("")), ("+15555550316", Value::Null)] {
        let (mut call, answer) = answered(&h, to).await;
        h.clock.advance(Duration::from_millis(4_000));
        let mut heard = call.action_result(&answer, true, json!({}));
        heard["ActionData"]["RecordingTerminatorUsed"] = none;
        let answer = step(&h, &mut call, heard).await;
        assert_eq!(types(&answer), ["RecordAudio"], "{answer}");
        assert_eq!(record(&h, &call).await.verdict, Some(Verdict::Machine));
    }
}

#[tokio::test]
async fn a_listening_time_that_cannot_be_is_read_without_a_fault() {
    let h = harness().await;
    for (to, since, expected) in [
        // From the start of time: the longest greeting there is.
        ("+15555550313", i64::MIN, "RecordAudio"),
        // From the future (another clock, or a forged attribute): no time at all.
        ("+15555550314", i64::MAX, "ReceiveDigits"),
    ] {
        let (mut call, answer) = answered(&h, to).await;
        call.attributes.as_mut().unwrap()["machine"] = json!(format!("listen:{since}"));
        let heard = call.action_result(&answer, true, json!({}));
        let answer = step(&h, &mut call, heard).await;
        assert_eq!(types(&answer)[0], expected, "{since}: {answer}");
    }
}

#[tokio::test]
async fn a_machine_judged_after_recording_was_turned_off_is_hung_up_on() {
    let h = harness().await;
    let (mut call, answer) = answered(&h, "+15555550315").await;
    // A deployment without the greetings bucket takes over mid-call: it cannot wait for the
    // beep, and a mailbox must not hear the script.
    let redeployed =
        outdial_sma::SmaHandler::new(h.store.clone(), h.clock.clone(), Settings::default());
    h.clock.advance(Duration::from_millis(4_000));
    let heard = call.action_result(&answer, true, json!({}));
    let answer = redeployed.handle(heard).await;
    validate_response(&answer).unwrap();
    assert_eq!(types(&answer), ["Hangup"]);
    let r = record(&h, &call).await;
    assert_eq!(r.verdict, Some(Verdict::Machine));
    assert_eq!(r.script_outcome.as_deref(), Some("voicemail_unheard"));
}
