#![allow(clippy::unwrap_used)]

use super::*;
use crate::counters::LastEvent;
use crate::ids::{Attempt, CallId, Sequence};
use crate::lifecycle::CallStatus;
use crate::machine::Verdict;
use serde_json::Value;

const T0: i64 = 1_780_000_000_000;

fn queued() -> CallFacts {
    CallFacts {
        id: CallId::parse("call_1").unwrap(),
        campaign_id: CampaignId::parse("cmp_1").unwrap(),
        status: CallStatus::Queued,
        attempt: Attempt::FIRST,
        answered: false,
        slot: false,
        last_event: None,
        outcome: None,
        script_outcome: None,
        verdict: None,
        reason: None,
        dialed_at: None,
        answered_at: None,
        ended_at: None,
        updated_at: Timestamp::from_millis(T0),
        expires_at: None,
        from: None,
        sip_code: None,
        to: Some("+15555550100".into()),
        reference: Some("patient-42".into()),
        caller_id: Some("+15555550199".into()),
        digits: Vec::new(),
        last_error: None,
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

fn moved(from: &CallFacts, status: CallStatus, when: i64, seq: u64) -> CallFacts {
    CallFacts {
        status,
        updated_at: at(when),
        last_event: Some(LastEvent {
            attempt: from.attempt,
            seq: Sequence::new(seq),
            event_type: "EVENT".into(),
            response: None,
        }),
        ..from.clone()
    }
}

fn dialed(from: &CallFacts, attempt: Attempt, when: i64) -> CallFacts {
    CallFacts {
        status: CallStatus::Dialing,
        attempt,
        dialed_at: Some(at(when)),
        updated_at: at(when),
        ..from.clone()
    }
}

fn answered(from: &CallFacts, when: i64) -> CallFacts {
    CallFacts {
        answered: true,
        answered_at: Some(at(when)),
        ..moved(from, CallStatus::Answered, when, 3)
    }
}

fn ended(from: &CallFacts, status: CallStatus, when: i64) -> CallFacts {
    CallFacts {
        ended_at: Some(at(when)),
        ..moved(from, status, when, 4)
    }
}

/// The events of each change along `images`, with their `detail` parsed.
fn along(images: &[CallFacts]) -> Vec<(Kind, Value)> {
    let mut out = Vec::new();
    let mut old: Option<&CallFacts> = None;
    for image in images {
        for e in call_events(old, image) {
            out.push((e.kind, serde_json::from_str(&e.detail).unwrap()));
        }
        old = Some(image);
    }
    out
}

fn sequences(events: &[(Kind, Value)]) -> Vec<(Kind, u64)> {
    events
        .iter()
        .map(|(k, d)| (*k, d["sequence"].as_u64().unwrap()))
        .collect()
}

#[test]
fn an_answered_call_is_placed_answered_and_ended_in_increasing_sequence() {
    let q = queued();
    let d = dialed(&q, Attempt::FIRST, 100);
    let r = moved(&d, CallStatus::Ringing, 900, 2);
    let a = answered(&r, 2_400);
    let mut done = ended(&a, CallStatus::Completed, 32_400);
    done.script_outcome = Some("confirmed".into());
    done.digits = vec!["1".into()];
    done.verdict = Some(Verdict::Person);
    let events = along(&[q, d, r, a, done]);
    assert_eq!(
        sequences(&events),
        [
            (Kind::CallPlaced, 2),
            (Kind::CallAnswered, 3),
            (Kind::CallEnded, 4)
        ]
    );
    let end = &events[2].1;
    assert_eq!(end["ref"], "patient-42");
    assert_eq!(end["status"], "COMPLETED");
    assert_eq!(end["attempts"], 1);
    assert_eq!(end["script_outcome"], "confirmed");
    assert_eq!(end["digits"], serde_json::json!(["1"]));
    assert_eq!(end["verdict"], "person");
    assert_eq!(end["opted_out"], false);
    assert_eq!(end["ring_ms"], 2_300);
    assert_eq!(end["talk_ms"], 30_000);
    assert_eq!(end["placed_at"], at(100).rfc3339());
    // The placed event says nothing of an end.
    assert!(events[0].1.get("attempts").is_none());
    assert!(events[0].1.get("opted_out").is_none());
}

#[test]
fn the_same_change_always_gives_the_same_events() {
    let q = queued();
    let d = dialed(&q, Attempt::FIRST, 100);
    let first = call_events(Some(&q), &d);
    assert_eq!(first, call_events(Some(&q), &d));
    // A change that moves nothing an event reports (a watchdog re-armed, say) gives none.
    let touched = CallFacts {
        updated_at: at(5_000),
        ..d.clone()
    };
    assert!(call_events(Some(&d), &touched).is_empty());
}

#[test]
fn a_retried_call_numbers_each_attempt_after_the_last() {
    let q = queued();
    let d1 = dialed(&q, Attempt::FIRST, 100);
    let busy = CallFacts {
        status: CallStatus::RetryWait,
        ..moved(&d1, CallStatus::RetryWait, 3_000, 4)
    };
    let d2 = dialed(&busy, Attempt::FIRST.next(), 63_000);
    let a2 = answered(&d2, 65_000);
    let done = ended(&a2, CallStatus::Completed, 75_000);
    let events = along(&[q, d1, busy, d2, a2, done]);
    assert_eq!(
        sequences(&events),
        [
            (Kind::CallPlaced, 2),
            (Kind::CallPlaced, 5),
            (Kind::CallAnswered, 6),
            (Kind::CallEnded, 7)
        ]
    );
    let end = &events[3].1;
    assert_eq!(end["attempts"], 2);
    assert_eq!(end["attempt"], 2);
    assert_eq!(end["ring_ms"], 2_000);
}

#[test]
fn a_call_ended_without_a_dial_has_only_its_end_with_the_reason() {
    let skipped = CallFacts {
        status: CallStatus::Cancelled,
        reason: Some("do-not-call".into()),
        ..queued()
    };
    let events = along(&[skipped]);
    assert_eq!(sequences(&events), [(Kind::CallEnded, 4)]);
    let end = &events[0].1;
    assert_eq!(end["attempts"], 0);
    assert_eq!(end["reason"], "do-not-call");
    assert!(end.get("placed_at").is_none());
    assert!(end.get("ring_ms").is_none());
}

#[test]
fn an_unanswered_attempt_has_no_answer_and_no_durations_of_an_earlier_one() {
    let q = queued();
    let d1 = dialed(&q, Attempt::FIRST, 100);
    let a1 = answered(&d1, 1_000);
    let retry = moved(&a1, CallStatus::RetryWait, 2_000, 4);
    let d2 = dialed(&retry, Attempt::FIRST.next(), 60_000);
    let no_answer = ended(&d2, CallStatus::NoAnswer, 90_000);
    let events = along(&[q, d1, a1, retry, d2, no_answer]);
    let end = &events.last().unwrap().1;
    assert_eq!(end["status"], "NO_ANSWER");
    assert!(end.get("ring_ms").is_none(), "{end}");
    assert!(end.get("talk_ms").is_none(), "{end}");
}

#[test]
fn an_opt_out_is_reported_as_such() {
    let q = queued();
    let a = answered(&dialed(&q, Attempt::FIRST, 0), 1_000);
    let done = CallFacts {
        script_outcome: Some(OPTED_OUT.into()),
        ..ended(&a, CallStatus::Completed, 9_000)
    };
    let events = call_events(Some(&a), &done);
    assert_eq!(events.len(), 1);
    let end: Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(end["opted_out"], true);
    assert_eq!(end["script_outcome"], "opted_out");
}

#[test]
fn a_late_correction_between_final_statuses_is_not_a_second_end() {
    let lost = ended(
        &answered(&dialed(&queued(), Attempt::FIRST, 0), 10),
        CallStatus::Lost,
        900_000,
    );
    let completed = CallFacts {
        status: CallStatus::Completed,
        ..lost.clone()
    };
    assert!(call_events(Some(&lost), &completed).is_empty());
}

#[test]
fn every_detail_type_reads_back_as_its_kind() {
    for kind in Kind::ALL {
        assert_eq!(Kind::parse(kind.detail_type()), Some(kind));
    }
    assert_eq!(Kind::parse("Call Exploded"), None);
}

#[test]
fn campaign_completed_counts_final_statuses_only() {
    let counters = CampaignCounters {
        contacts: 3,
        by_status: [
            (CallStatus::Completed, 2),
            (CallStatus::Busy, 1),
            (CallStatus::Queued, 0),
        ]
        .into_iter()
        .collect(),
        script_outcomes: [("confirmed".to_owned(), 2)].into_iter().collect(),
        placed: 4,
        answered: 2,
        ..CampaignCounters::default()
    };
    let event = campaign_completed(&CampaignId::parse("cmp_1").unwrap(), at(0), &counters);
    let detail: Value = serde_json::from_str(&event.detail).unwrap();
    assert_eq!(event.kind, Kind::CampaignCompleted);
    assert_eq!(
        detail["statuses"],
        serde_json::json!({"COMPLETED": 2, "BUSY": 1})
    );
    assert_eq!(detail["contacts"], 3);
    assert!(detail.get("verdicts").is_none());
}

/// The `detail` examples of docs/events.md: each event's fields are exactly the ones
/// outdial writes for a call that has them all.
#[test]
fn docs_events_examples_match_what_is_published() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md")).unwrap();
    let examples: Vec<Value> = doc
        .split("```json")
        .skip(1)
        .map(|block| serde_json::from_str(block.split("```").next().unwrap()).unwrap())
        .collect();
    let example = |kind: Kind| -> &Value {
        examples
            .iter()
            .find(|e| e["detail-type"] == kind.detail_type())
            .unwrap_or_else(|| panic!("docs/events.md has no example of {kind:?}"))
    };
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    // A call with every field: answered on its second attempt, a verdict, digits.
    let q = queued();
    let d1 = dialed(&q, Attempt::FIRST, 100);
    let retry = moved(&d1, CallStatus::RetryWait, 3_000, 4);
    let d2 = dialed(&retry, Attempt::FIRST.next(), 63_000);
    let a2 = answered(&d2, 65_000);
    let done = CallFacts {
        script_outcome: Some("confirmed".into()),
        digits: vec!["1".into()],
        verdict: Some(Verdict::Person),
        sip_code: Some("0".into()),
        ..ended(&a2, CallStatus::Completed, 75_000)
    };
    let mut published = call_events(Some(&retry), &d2);
    published.extend(call_events(Some(&d2), &a2));
    published.extend(call_events(Some(&a2), &done));
    let counters = CampaignCounters {
        contacts: 1,
        by_status: [(CallStatus::Completed, 1)].into_iter().collect(),
        verdicts: [("person".to_owned(), 1)].into_iter().collect(),
        ..CampaignCounters::default()
    };
    published.push(campaign_completed(&q.campaign_id, at(80_000), &counters));
    for event in published {
        let doc = example(event.kind);
        assert_eq!(doc["source"], SOURCE);
        for field in ["version", "id", "account", "time", "region", "resources"] {
            assert!(
                doc.get(field).is_some(),
                "{:?} example lacks {field}",
                event.kind
            );
        }
        let detail: Value = serde_json::from_str(&event.detail).unwrap();
        assert_eq!(
            keys(&doc["detail"]),
            keys(&detail),
            "docs/events.md's {:?} detail",
            event.kind
        );
    }
}
