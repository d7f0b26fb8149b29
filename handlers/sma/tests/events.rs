//! The SMA handler over real event sequences, against DynamoDB Local, counting the DynamoDB
//! requests every event costs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod support;

use outdial_core::contract::validate_response;
use outdial_core::lifecycle::CallStatus;
use serde_json::{Value, json};
use support::{Call, Harness, REMINDER, types};

/// Sends `event`, checks the answer is a valid response and cost exactly `requests` DynamoDB
/// requests, keeps the attributes as the SMA does, and returns the answer.
async fn step(h: &Harness, call: &mut Call, event: Value, requests: usize) -> Value {
    let (answer, sent) = h.send(&event).await;
    validate_response(&answer)
        .unwrap_or_else(|e| panic!("{}: {e}\n{answer}", event["InvocationEventType"]));
    assert_eq!(
        sent, requests,
        "{} cost {sent} requests",
        event["InvocationEventType"]
    );
    // The SMA ignores RINGING's answer entirely; every other answer's attributes are kept.
    if event["InvocationEventType"] != "RINGING" {
        call.keep(&answer);
    }
    answer
}

async fn status(h: &Harness, call: &Call) -> outdial_core::record::CallRecord {
    h.store.call(&call.id).await.unwrap()
}

/// The campaign is read once per process: the first event that needs it costs one more
/// request. Warming it here keeps the per-event counts below exact.
async fn warm(h: &Harness) {
    let mut call = h.dialing_call("+15555550111").await;
    let placed = call.new_outbound_call();
    step(h, &mut call, placed, 2).await;
    let answered = call.answered();
    step(h, &mut call, answered, 1).await;
    assert!(h.handler.campaigns().contains(&h.campaign.id));
}

#[tokio::test]
async fn an_answered_call_that_confirms_is_completed_in_one_request_per_event() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550100").await;

    let placed = call.new_outbound_call();
    let answer = step(&h, &mut call, placed, 1).await;
    assert!(types(&answer).is_empty());
    assert_eq!(answer["TransactionAttributes"]["call_id"], call.id.as_str());

    let ringing = call.event("RINGING", None);
    step(&h, &mut call, ringing, 1).await;
    assert_eq!(status(&h, &call).await.status, CallStatus::Ringing);

    let answered = call.answered();
    let answer = step(&h, &mut call, answered, 1).await;
    assert_eq!(types(&answer), ["Speak", "SpeakAndGetDigits"]);
    assert_eq!(
        answer["Actions"][0]["Parameters"]["Text"],
        "Hello Ada, your appointment is on Tuesday."
    );
    assert_eq!(
        answer["Actions"][0]["Parameters"]["CallId"],
        call.leg_a.as_str()
    );

    let pressed = call.action_result(&answer, true, json!({"ReceivedDigits": "1"}));
    let answer = step(&h, &mut call, pressed, 1).await;
    assert_eq!(types(&answer), ["Speak", "Hangup"]);

    let hangup = call.hangup("LEG-A", Some(json!(0)));
    let answer = step(&h, &mut call, hangup, 1).await;
    assert!(types(&answer).is_empty());

    let record = status(&h, &call).await;
    assert_eq!(record.status, CallStatus::Completed);
    assert_eq!(record.script_outcome.as_deref(), Some("confirmed"));
    assert!(record.answered_at.is_some() && record.ended_at.is_some());
    assert_eq!(record.due_at, None);
}

#[tokio::test]
async fn busy_no_answer_and_failed_calls_wait_for_their_retry() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    for (code, backoff_s) in [(json!(486), 300), (json!("480"), 1800), (json!(503), 600)] {
        let mut call = h.dialing_call("+15555550101").await;
        let placed = call.new_outbound_call();
        step(&h, &mut call, placed, 1).await;
        let ringing = call.event("RINGING", None);
        step(&h, &mut call, ringing, 1).await;
        let hangup = call.hangup("LEG-A", Some(code.clone()));
        step(&h, &mut call, hangup, 1).await;
        let record = status(&h, &call).await;
        assert_eq!(record.status, CallStatus::RetryWait, "{code}");
        assert_eq!(record.attempt.get(), 2);
        assert_eq!(
            record.sip_code.as_deref(),
            Some(code.to_string().trim_matches('"'))
        );
        assert_eq!(
            record.due_at,
            Some(support::T0.plus(std::time::Duration::from_secs(backoff_s)))
        );
    }
}

#[tokio::test]
async fn an_invalid_number_is_final_at_once() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550102").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let hangup = call.hangup("LEG-A", Some(json!(404)));
    step(&h, &mut call, hangup, 1).await;
    assert_eq!(status(&h, &call).await.status, CallStatus::InvalidNumber);
}

#[tokio::test]
async fn a_callee_who_hangs_up_mid_speech_completes_the_call() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550103").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let answered = call.answered();
    step(&h, &mut call, answered, 1).await;
    let hangup = call.hangup("LEG-A", None);
    step(&h, &mut call, hangup, 1).await;
    let record = status(&h, &call).await;
    assert_eq!(record.status, CallStatus::Completed);
    assert_eq!(record.script_outcome, None);
}

#[tokio::test]
async fn a_digits_timeout_takes_the_no_input_branch() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550104").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let answered = call.answered();
    let answer = step(&h, &mut call, answered, 1).await;
    let failed = call.action_result(
        &answer,
        false,
        json!({"ErrorType": "InvalidActionParameter", "ErrorMessage": "no input"}),
    );
    let answer = step(&h, &mut call, failed, 1).await;
    assert_eq!(types(&answer), ["Speak", "Hangup"]);
    let hangup = call.hangup("LEG-A", Some(json!(0)));
    step(&h, &mut call, hangup, 1).await;
    let record = status(&h, &call).await;
    assert_eq!(record.script_outcome.as_deref(), Some("no_input"));
    assert_eq!(
        record.last_error.as_deref(),
        Some("InvalidActionParameter: no input")
    );
}

#[tokio::test]
async fn a_transfer_bridges_the_agent_and_hangs_up_the_callee_when_the_agent_leaves() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550105").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let answered = call.answered();
    let answer = step(&h, &mut call, answered, 1).await;
    let pressed = call.action_result(&answer, true, json!({"ReceivedDigits": "0"}));
    let answer = step(&h, &mut call, pressed, 1).await;
    assert_eq!(types(&answer), ["CallAndBridge"]);
    assert_eq!(
        answer["Actions"][0]["Parameters"]["Endpoints"][0]["Uri"],
        "+15555550142"
    );

    call.leg_b = Some("leg-b-id".into());
    call.leg_b_connected = true;
    let bridged = call.action_result(&answer, true, json!({}));
    let answer = step(&h, &mut call, bridged, 1).await;
    assert!(types(&answer).is_empty());

    let agent_left = call.hangup("LEG-B", Some(json!(0)));
    let answer = step(&h, &mut call, agent_left, 1).await;
    assert_eq!(types(&answer), ["Hangup"]);
    assert_eq!(
        answer["Actions"][0]["Parameters"]["CallId"],
        call.leg_a.as_str()
    );
    assert_eq!(status(&h, &call).await.status, CallStatus::Answered);

    let callee = call.hangup("LEG-A", Some(json!(0)));
    step(&h, &mut call, callee, 1).await;
    let record = status(&h, &call).await;
    assert_eq!(record.status, CallStatus::Completed);
    assert_eq!(record.script_outcome.as_deref(), Some("transferred"));
}

#[tokio::test]
async fn a_hangup_requested_through_the_api_ends_the_call_as_cancelled() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550106").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let answered = call.answered();
    step(&h, &mut call, answered, 1).await;
    let update = call.event(
        "CALL_UPDATE_REQUESTED",
        Some(json!({"Type": "CallUpdateRequest", "Parameters": {"Arguments": {"op": "hangup", "reason": "hangup"}}})),
    );
    let answer = step(&h, &mut call, update, 1).await;
    assert_eq!(types(&answer), ["Hangup"]);
    assert_eq!(answer["TransactionAttributes"]["end"], "hangup");
    let hangup = call.hangup("LEG-A", Some(json!(0)));
    step(&h, &mut call, hangup, 1).await;
    assert_eq!(status(&h, &call).await.status, CallStatus::Cancelled);
}

#[tokio::test]
async fn duplicates_get_the_stored_answer_and_late_events_change_nothing() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550107").await;
    let mut sent: Vec<(Value, Value)> = Vec::new();

    let placed = call.new_outbound_call();
    sent.push((placed.clone(), step(&h, &mut call, placed, 1).await));
    let ringing = call.event("RINGING", None);
    sent.push((ringing.clone(), step(&h, &mut call, ringing, 1).await));
    let answered = call.answered();
    let answer = step(&h, &mut call, answered.clone(), 1).await;
    sent.push((answered, answer.clone()));
    let pressed = call.action_result(&answer, true, json!({"ReceivedDigits": "2"}));
    sent.push((pressed.clone(), step(&h, &mut call, pressed, 1).await));

    // Each event again, in order and out of it: the newest gets its stored answer byte for
    // byte, older ones change nothing; every one costs one request.
    let before = status(&h, &call).await;
    for (event, first) in sent.iter().rev() {
        let (again, requests) = h.send(event).await;
        assert_eq!(requests, 1);
        validate_response(&again).unwrap();
        if event["Sequence"] == sent.last().unwrap().0["Sequence"] {
            assert_eq!(&again, first, "a duplicate gets the stored answer");
        }
    }
    assert_eq!(status(&h, &call).await, before);
    // Byte for byte: as text, and through the hosted entry too.
    let (newest, first) = sent.last().unwrap();
    let text = serde_json::to_vec(newest).unwrap();
    let (once, _) = h.send_text(&text).await;
    let (twice, _) = h.send_text(&text).await;
    assert_eq!(once.unwrap(), twice.unwrap());
    assert_eq!(&h.send_hosted(newest).await.0, first);

    let hangup = call.hangup("LEG-A", Some(json!(0)));
    step(&h, &mut call, hangup.clone(), 1).await;
    let done = status(&h, &call).await;
    assert_eq!(done.status, CallStatus::Completed);
    assert_eq!(done.script_outcome.as_deref(), Some("declined"));
    // After the end, every event of the call is absorbed.
    for event in [hangup, sent[2].0.clone()] {
        h.send(&event).await;
    }
    let ringing_late = call.event_at(99, "RINGING", None);
    h.send(&ringing_late).await;
    assert_eq!(status(&h, &call).await, done);
}

#[tokio::test]
async fn events_that_name_no_call_are_kept_as_orphans_and_answered_safely() {
    let h = Harness::new(REMINDER).await;
    let mut call = h.dialing_call("+15555550108").await;
    call.leg_a_connected = true;
    let answered = call.event("CALL_ANSWERED", None);
    let (answer, requests) = h.send(&answered).await;
    assert_eq!(types(&answer), ["Hangup"]);
    assert_eq!(
        requests, 2,
        "one Query of byTransaction, which finds no call, and one PutItem for the orphan"
    );
    let ringing = call.event("RINGING", None);
    let (answer, _) = h.send(&ringing).await;
    assert!(types(&answer).is_empty());
    assert_eq!(
        h.handler
            .counters()
            .orphans
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_call_whose_first_answer_was_lost_is_found_by_the_transaction_the_dispatcher_recorded() {
    use outdial_core::ids::{Attempt, TransactionId};
    use outdial_core::ports::DispatchStore;
    use outdial_core::time::Clock;
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550109").await;
    // Both invocations for NEW_OUTBOUND_CALL failed: later events carry no attributes.
    call.seq = 1;
    let transaction = TransactionId::parse(&call.transaction).unwrap();
    h.store
        .placed(&call.id, Attempt::FIRST, &transaction, h.clock.now())
        .await
        .unwrap();

    let ringing = call.event("RINGING", None);
    step(&h, &mut call, ringing, 3).await;
    assert_eq!(status(&h, &call).await.status, CallStatus::Ringing);
    let answered = call.answered();
    let answer = step(&h, &mut call, answered, 3).await;
    assert_eq!(types(&answer), ["Speak", "SpeakAndGetDigits"]);
    assert_eq!(answer["TransactionAttributes"]["call_id"], call.id.as_str());
    let record = status(&h, &call).await;
    assert_eq!(record.status, CallStatus::Answered);
    assert_eq!(record.current_transaction(), Some(&transaction));
    assert_eq!(
        h.handler
            .counters()
            .recovered
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        h.handler
            .counters()
            .orphans
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn call_backs_unreadable_payloads_and_unknown_events_never_fail() {
    let h = Harness::new(REMINDER).await;
    let inbound = json!({
        "SchemaVersion": "1.0", "Sequence": 1, "InvocationEventType": "NEW_INBOUND_CALL",
        "CallDetails": {"TransactionId": "t-in", "Participants": [{"CallId": "in-leg", "ParticipantTag": "LEG-A",
            "To": "+15555550199", "From": "+15555550123", "Direction": "Inbound"}]}
    });
    let (answer, requests) = h.send(&inbound).await;
    assert_eq!(types(&answer), ["Speak", "Hangup"]);
    assert_eq!(requests, 0);

    for junk in [
        json!(null),
        json!("text"),
        json!({"SchemaVersion": "1.0"}),
        json!({"statusCode": 200}),
    ] {
        for (answer, requests) in [h.send(&junk).await, h.send_hosted(&junk).await] {
            assert_eq!(answer, json!({"SchemaVersion": "1.0", "Actions": []}));
            assert_eq!(requests, 0);
        }
    }
    // A version longer than any real one is not echoed; one that is, is.
    let long = json!({"SchemaVersion": "9".repeat(40)});
    assert_eq!(h.send(&long).await.0["SchemaVersion"], "1.0");
    assert_eq!(
        h.send(&json!({"SchemaVersion": "2.0"})).await.0["SchemaVersion"],
        "2.0"
    );
    // Text that is not JSON at all is the invocation's error (Lambda reports it), not an
    // answer, and costs nothing.
    let (answer, requests) = h.send_text(b"{\"SchemaVersion\": ").await;
    assert!(answer.is_err());
    assert_eq!(requests, 0);

    warm(&h).await;
    let mut call = h.dialing_call("+15555550109").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let unknown = call.event("CALL_TELEPORTED", None);
    let answer = step(&h, &mut call, unknown, 1).await;
    assert!(types(&answer).is_empty());
    let record = status(&h, &call).await;
    assert_eq!(record.last_event.unwrap().event_type, "CALL_TELEPORTED");
    assert_eq!(record.status, CallStatus::Dialing);
}

#[tokio::test]
async fn an_invalid_lambda_response_is_recorded_and_answered_with_a_hangup() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550110").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let answered = call.answered();
    step(&h, &mut call, answered, 1).await;
    let mut invalid = call.event("INVALID_LAMBDA_RESPONSE", None);
    invalid["ErrorType"] = json!("TransactionAttributesInvalidMapSize");
    invalid["ErrorMessage"] =
        json!("Transaction Attributes has too many mappings. Maximum number of mappings is 10");
    let answer = step(&h, &mut call, invalid, 1).await;
    assert_eq!(types(&answer), ["Hangup"]);
    assert!(
        status(&h, &call)
            .await
            .last_error
            .unwrap()
            .starts_with("TransactionAttributesInvalidMapSize: ")
    );
}

#[tokio::test]
async fn the_handler_hangs_up_before_the_thousandth_invocation() {
    let h = Harness::new(
        r#"{"start": "m", "steps": {"m": {"gather": {"say": "Press 1."}, "branches": {"1": "m"}}}}"#,
    )
    .await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550112").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let answered = call.answered();
    let answer = step(&h, &mut call, answered, 1).await;
    call.seq = outdial_sma::INVOCATION_LIMIT - 1;
    let pressed = call.action_result(&answer, true, json!({"ReceivedDigits": "1"}));
    let answer = step(&h, &mut call, pressed, 1).await;
    assert_eq!(types(&answer), ["Hangup"]);
    assert_eq!(
        status(&h, &call).await.script_outcome.as_deref(),
        Some("invocation_limit")
    );
}

#[tokio::test]
async fn every_fixture_event_gets_a_valid_answer() {
    let h = Harness::new(REMINDER).await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sma");
    let mut answered = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(value) = serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap())
        else {
            continue;
        };
        if value.get("InvocationEventType").is_none() {
            continue;
        }
        let (answer, _) = h.send(&value).await;
        validate_response(&answer).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        answered += 1;
    }
    assert!(answered >= 9, "{answered} fixture events");
}

#[tokio::test]
async fn receive_digits_waits_for_digits_received_and_interruptions_change_nothing() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550113").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    let answered = call.answered();
    step(&h, &mut call, answered, 1).await;

    // ReceiveDigits reports success at once with no digits; the answer adds nothing.
    let listening = call.event(
        "ACTION_SUCCESSFUL",
        Some(json!({"Type": "ReceiveDigits", "ReceivedDigits": "", "Parameters": {
            "CallId": call.leg_a, "InputDigitsRegex": "^[12]$",
            "InBetweenDigitsDurationInMilliseconds": 1000, "FlushDigitsDurationInMilliseconds": 10000}})),
    );
    let answer = step(&h, &mut call, listening, 1).await;
    assert!(types(&answer).is_empty());

    let interrupted = call.event(
        "ACTION_INTERRUPTED",
        Some(
            json!({"Type": "PlayAudio", "Parameters": {"CallId": call.leg_a,
            "AudioSource": {"Type": "S3", "BucketName": "prompts", "Key": "hold.wav"}}}),
        ),
    );
    let answer = step(&h, &mut call, interrupted, 1).await;
    assert!(types(&answer).is_empty());

    let digits = call.event(
        "DIGITS_RECEIVED",
        Some(json!({"Type": "ReceiveDigits", "ReceivedDigits": "2", "Parameters": {"CallId": call.leg_a}})),
    );
    let answer = step(&h, &mut call, digits, 1).await;
    assert_eq!(types(&answer), ["Speak", "Hangup"]);
    assert_eq!(answer["TransactionAttributes"]["outcome"], "declined");
    assert_eq!(status(&h, &call).await.status, CallStatus::Answered);
}

#[tokio::test]
async fn a_fresh_process_reads_each_campaign_once() {
    let h = Harness::new(REMINDER).await;
    let mut first = h.dialing_call("+15555550114").await;
    // The first event reads the campaign (its ring timeout), once for the process.
    let placed = first.new_outbound_call();
    step(&h, &mut first, placed, 2).await;
    let answered = first.answered();
    step(&h, &mut first, answered, 1).await;
    let mut second = h.dialing_call("+15555550115").await;
    let placed = second.new_outbound_call();
    step(&h, &mut second, placed, 1).await;
    let answered = second.answered();
    step(&h, &mut second, answered, 1).await;
}

#[tokio::test]
async fn a_hangup_that_overtook_the_answer_is_decided_again_from_the_record() {
    let h = Harness::new(REMINDER).await;
    warm(&h).await;
    let mut call = h.dialing_call("+15555550116").await;
    let placed = call.new_outbound_call();
    step(&h, &mut call, placed, 1).await;
    // CALL_ANSWERED is applied, but its answer never reaches the SMA (it was still being
    // processed when the callee hung up), so the HANGUP carries the older attributes.
    let stale_attributes = call.attributes.clone();
    let answered = call.answered();
    h.send(&answered).await;
    call.attributes = stale_attributes;
    let hangup = call.hangup("LEG-A", None);
    let (answer, requests) = h.send(&hangup).await;
    validate_response(&answer).unwrap();
    assert_eq!(requests, 2, "one write refused, one from the record");
    let record = status(&h, &call).await;
    assert_eq!(
        record.status,
        CallStatus::Completed,
        "answered, then hung up: not a failed attempt"
    );
    assert_eq!(
        h.handler
            .counters()
            .rewrites
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
