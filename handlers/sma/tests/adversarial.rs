//! Events no honest SIP media application sends: forged ids, another campaign's ids, a call
//! that was never dialed, `Sequence` values no call reaches, values of the wrong type and
//! fields far over any real size. Each must leave every record as it was (or, for the one
//! real call involved, change only what its own event may), and each answer must be one the
//! service accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use outdial_core::contract::validate_response;
use outdial_core::ids::{CallId, CampaignId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::record::{CallRecord, Campaign};
use serde_json::{Value, json};
use support::{Call, Harness, REMINDER, add_calls, types};

/// Sends an event that must change nothing, and checks the answer is valid.
async fn send_forged(h: &Harness, event: &Value) -> Value {
    let (answer, _) = h.send(event).await;
    validate_response(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    answer
}

async fn record(h: &Harness, id: &CallId) -> CallRecord {
    h.store.call(id).await.unwrap()
}

/// A live call, placed and answered, with its attributes kept as the service keeps them.
async fn answered_call(h: &Harness, to: &str) -> Call {
    let mut call = h.dialing_call(to).await;
    let placed = call.new_outbound_call();
    let (answer, _) = h.send(&placed).await;
    call.keep(&answer);
    let answered = call.answered();
    let (answer, _) = h.send(&answered).await;
    call.keep(&answer);
    assert_eq!(record(h, &call.id).await.status, CallStatus::Answered);
    call
}

/// A second campaign in the same table, with a script of its own.
async fn other_campaign(h: &Harness) -> Campaign {
    let other = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        script: serde_json::from_str(
            r#"{"start": "s", "steps": {"s": {"say": "A message from another campaign."}}}"#,
        )
        .unwrap(),
        ..h.campaign.clone()
    };
    h.store.create_campaign(&other, &[]).await.unwrap();
    other
}

#[tokio::test]
async fn an_event_for_a_call_id_that_does_not_exist_creates_nothing() {
    let h = Harness::new(REMINDER).await;
    let mut forged = Call::new(
        CallId::random(),
        h.campaign.id.clone(),
        1,
        "+15555550120",
        Default::default(),
    );
    let placed = forged.new_outbound_call();
    let answer = send_forged(&h, &placed).await;
    assert!(
        types(&answer).is_empty() || types(&answer) == ["Hangup"],
        "{answer}"
    );
    assert!(
        h.store.call(&forged.id).await.is_err(),
        "no record for a forged call"
    );
}

#[tokio::test]
async fn another_campaigns_ids_neither_change_the_call_nor_run_that_campaigns_script() {
    let h = Harness::new(REMINDER).await;
    let other = other_campaign(&h).await;
    let call = answered_call(&h, "+15555550121").await;
    let before = record(&h, &call.id).await;

    // The call's own attributes, with the other campaign's id: its script, its hang-up.
    let mut forged = Call::new(
        call.id.clone(),
        other.id.clone(),
        call.attempt,
        &call.to,
        call.vars.clone(),
    );
    forged.transaction.clone_from(&call.transaction);
    forged.seq = call.seq;
    let mut attributes = call.attributes.clone().unwrap();
    attributes["campaign_id"] = json!(other.id.as_str());
    forged.attributes = Some(attributes);
    forged.leg_a_connected = true;
    let answered = forged.event("CALL_ANSWERED", None);
    let answer = send_forged(&h, &answered).await;
    assert!(
        !answer.to_string().contains("another campaign"),
        "the other campaign's script ran: {answer}"
    );
    let hangup = forged.hangup("LEG-A", Some(json!("486")));
    send_forged(&h, &hangup).await;
    assert_eq!(record(&h, &call.id).await, before);
}

#[tokio::test]
async fn an_event_of_another_transaction_does_not_change_a_placed_call() {
    let h = Harness::new(REMINDER).await;
    let call = answered_call(&h, "+15555550122").await;
    let before = record(&h, &call.id).await;
    let mut forged = Call::new(
        call.id.clone(),
        call.campaign.clone(),
        call.attempt,
        &call.to,
        call.vars.clone(),
    );
    // A transaction of its own, and the real call's attributes.
    forged.attributes.clone_from(&call.attributes);
    forged.seq = call.seq;
    let hangup = forged.hangup("LEG-A", Some(json!("486")));
    send_forged(&h, &hangup).await;
    assert_eq!(record(&h, &call.id).await, before);
}

#[tokio::test]
async fn a_call_that_was_never_dialed_takes_no_event() {
    let h = Harness::new(REMINDER).await;
    let id = CallId::random();
    add_calls(
        &h.store,
        &h.campaign,
        &[outdial_core::record::NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: id.clone(),
            to: outdial_core::ids::E164::parse("+15555550123").unwrap(),
            vars: Default::default(),
            due_at: support::T0,
        }],
    )
    .await;
    let before = record(&h, &id).await;
    assert_eq!(before.status, CallStatus::Queued);
    let mut forged = Call::new(
        id.clone(),
        h.campaign.id.clone(),
        1,
        "+15555550123",
        Default::default(),
    );
    for event in [
        forged.new_outbound_call(),
        forged.hangup("LEG-A", Some(json!("480"))),
    ] {
        send_forged(&h, &event).await;
    }
    assert_eq!(record(&h, &id).await, before);
}

#[tokio::test]
async fn sequences_no_call_reaches_and_values_of_the_wrong_type_change_nothing() {
    let h = Harness::new(REMINDER).await;
    let call = answered_call(&h, "+15555550124").await;
    let before = record(&h, &call.id).await;
    let mut probe = Call::new(
        call.id.clone(),
        call.campaign.clone(),
        call.attempt,
        &call.to,
        call.vars.clone(),
    );
    probe.transaction.clone_from(&call.transaction);
    probe.attributes.clone_from(&call.attributes);
    probe.leg_a_connected = true;
    let event = probe.event_at(call.seq + 1, "ACTION_SUCCESSFUL", None);
    let mut sent = Vec::new();
    for seq in [
        json!(u64::MAX),
        json!(outdial_core::contract::MAX_SEQUENCE + 1),
        json!(-1),
        json!(2.5),
        json!("many"),
        json!({"n": 4}),
        json!(null),
    ] {
        let mut e = event.clone();
        e["Sequence"] = seq;
        sent.push(e);
    }
    // 2^64, which a lenient reader would clamp to u64::MAX.
    let mut text = event.clone();
    text["Sequence"] = json!(77_777_777);
    let text = text.to_string().replace("77777777", "18446744073709551616");
    sent.push(serde_json::from_str(&text).unwrap());
    for (field, value) in [
        ("CallDetails", json!("not an object")),
        ("InvocationEventType", json!(7)),
        ("SchemaVersion", json!("9".repeat(100_000))),
    ] {
        let mut e = event.clone();
        e[field] = value;
        sent.push(e);
    }
    for e in &sent {
        let answer = send_forged(&h, e).await;
        assert!(
            answer.to_string().len() < 4_096,
            "a short answer, whatever came in"
        );
    }
    assert_eq!(record(&h, &call.id).await, before);
}

#[tokio::test]
async fn a_real_call_keeps_only_short_text_from_oversize_or_mistyped_fields() {
    let h = Harness::new(REMINDER).await;
    let mut call = answered_call(&h, "+15555550125").await;
    let mut failed = call.event(
        "ACTION_FAILED",
        Some(
            json!({"Type": "Speak", "Parameters": {"CallId": call.leg_a},
            "ErrorType": "InvalidActionParameter", "ErrorMessage": "m".repeat(1_000_000)}),
        ),
    );
    failed["CallDetails"]["Participants"][0]["Status"] = json!("Connected");
    let (answer, _) = h.send(&failed).await;
    validate_response(&answer).unwrap();
    call.keep(&answer);
    let after = record(&h, &call.id).await;
    assert_eq!(
        after.last_event.as_ref().unwrap().event_type,
        "ACTION_FAILED",
        "the event was recorded despite its size"
    );
    let error = after.last_error.unwrap();
    assert!(error.starts_with("InvalidActionParameter: m"), "{error}");
    assert!(error.chars().count() <= outdial_sma::MAX_ERROR_TEXT);

    let hangup = call.hangup(
        "LEG-A",
        Some(json!({"code": 486, "padding": "x".repeat(10_000)})),
    );
    let (answer, _) = h.send(&hangup).await;
    validate_response(&answer).unwrap();
    let ended = record(&h, &call.id).await;
    assert!(ended.status.is_terminal(), "{:?}", ended.status);
    assert_eq!(ended.sip_code.as_deref(), Some("<object>"));
}
