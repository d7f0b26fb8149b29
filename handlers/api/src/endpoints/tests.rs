use std::collections::BTreeMap;

use outdial_core::record::Pacing;
use serde_json::json;

use super::*;
use crate::contacts::Position;

#[test]
fn a_cursor_is_the_position_a_listing_stopped_at() {
    let cursor = encode_cursor("QUEUED#call_1");
    assert_eq!(cursor, "QUEUED.call_1");
    for status in [None, Some(CallStatus::Queued)] {
        assert_eq!(
            decode_cursor(status, &cursor).unwrap(),
            Resume::After("QUEUED#call_1".into())
        );
    }
}

#[test]
fn a_cursor_in_another_status_starts_or_ends_a_filtered_listing() {
    // The index orders COMPLETED before QUEUED before RETRY_WAIT.
    assert_eq!(
        decode_cursor(Some(CallStatus::RetryWait), "QUEUED.call_1").unwrap(),
        Resume::Start
    );
    assert_eq!(
        decode_cursor(Some(CallStatus::Completed), "QUEUED.call_1").unwrap(),
        Resume::Done
    );
}

#[test]
fn a_cursor_that_names_no_position_is_refused() {
    for bad in [
        "",
        "zz",
        "00",
        "QUEUED",
        "QUEUED.",
        "queued.call_1",
        "QUEUED#call_1",
        "QUEUED.call#1",
        "QUEUED.call.1",
        "NOPE.call_1",
    ] {
        assert!(decode_cursor(None, bad).is_err(), "{bad:?}");
    }
    assert!(decode_cursor(None, &format!("QUEUED.{}", "a".repeat(65))).is_err());
}

#[test]
fn dnc_paths_take_e164_only() {
    assert_eq!(
        path_number("+12025550100").unwrap().as_str(),
        "+12025550100"
    );
    assert!(path_number("2025550100").is_err());
    assert!(path_number("+1").is_err());
}

fn campaign(calls_per_second: f64) -> Campaign {
    Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::parse("cmp_1").unwrap(),
        name: "n".into(),
        from: E164::parse("+15555550199").unwrap(),
        status: CampaignStatus::Active,
        retry: outdial_core::retry::RetryPolicy::default(),
        pacing: Pacing {
            calls_per_second,
            max_concurrent: 10,
        },
        script: serde_json::from_value(json!({"start": "hi", "steps": {"hi": {"say": "Hello."}}}))
            .unwrap(),
        limits: outdial_core::record::Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: Timestamp::from_millis(0),
        contacts: 0,
    }
}

fn contacts(n: u64) -> Vec<Contact> {
    (0..n)
        .map(|i| Contact {
            at: Position::Index(i),
            to: E164::parse(&format!("+1202555{:04}", i % 10_000)).unwrap(),
            vars: BTreeMap::new(),
            tz: None,
            consent: None,
            reference: None,
        })
        .collect()
}

#[test]
fn the_slowest_rate_over_the_largest_list_keeps_every_call_due_within_a_week() {
    let now = Timestamp::from_millis(1_900_000_000_000);
    let slowest = campaign(spec::MIN_CALLS_PER_SECOND);
    let mut accepted = contacts(contacts::MAX_CONTACTS as u64);
    let calls = new_calls(&slowest, &mut accepted, &Seed::random(), now).unwrap();
    assert_eq!(calls.len(), contacts::MAX_CONTACTS);
    let last = calls.iter().map(|c| c.due_at).max().unwrap();
    assert_eq!(last, now.plus(spec::MAX_DUE_SPREAD));
    // Early calls keep their spacing: 1 / (1.25 × 0.01) = 80 s apart.
    assert_eq!(
        calls[1].due_at,
        now.plus(std::time::Duration::from_secs(80))
    );
}

#[test]
fn no_rate_can_put_a_call_past_the_spread_whatever_reached_the_campaign() {
    // Rates the spec refuses, as a campaign stored before the bounds might hold them.
    let now = Timestamp::from_millis(1_900_000_000_000);
    for rate in [1e-300, 0.0, -1.0, f64::NAN, f64::MIN_POSITIVE] {
        let mut accepted = contacts(3);
        let calls = new_calls(&campaign(rate), &mut accepted, &Seed::random(), now).unwrap();
        for call in &calls {
            assert!(call.due_at <= now.plus(spec::MAX_DUE_SPREAD), "{rate}");
            assert!(views::time(call.due_at).ends_with('Z'), "{rate}");
        }
    }
}
