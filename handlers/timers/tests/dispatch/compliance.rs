//! The account policy end to end: contact caps counted across campaigns started at once,
//! over the simulator and DynamoDB Local, on virtual time, with duplicated and delayed SMA
//! events.

use outdial_core::admin::ApiStore;
use outdial_core::policy::{Policy, Reason};

use super::*;

/// `policy` as the account's, written as `PUT /policy` writes it.
async fn set_policy(h: &Harness, json: &str) {
    let policy: Policy = serde_json::from_str(json).unwrap();
    ApiStore::put_policy(&h.store, &policy, h.clock.now())
        .await
        .unwrap();
}

/// `n` more campaigns like the harness's, over the same numbers, all due now.
async fn same_numbers(h: &Harness, n: usize) -> Vec<NewCall> {
    let mut all = Vec::new();
    for _ in 0..n {
        let campaign = Campaign {
            id: CampaignId::random(),
            ..h.campaign.clone()
        };
        let calls: Vec<NewCall> = h
            .calls
            .iter()
            .map(|c| NewCall {
                id: CallId::random(),
                ..c.clone()
            })
            .collect();
        h.store.create_campaign(&campaign, &calls).await.unwrap();
        all.extend(calls);
    }
    all
}

/// Ticks on virtual time, the clock moved `step` a round, until every one of `calls` is
/// terminal and the simulator idle. The records are read every fiftieth round only: two
/// thousand reads a round would be most of the test's time.
pub(super) async fn until_terminal(
    h: &Harness,
    clock: &ManualClock,
    calls: &[NewCall],
    step: Duration,
) -> Vec<CallRecord> {
    for round in 0..30_000 {
        h.dispatcher.tick(0).await.unwrap();
        if round % 50 == 49 && h.sim.live_calls() == 0 {
            let mut records = Vec::with_capacity(calls.len());
            for call in calls {
                records.push(h.store.call(&call.id).await.unwrap());
            }
            if records.iter().all(|r| r.status.is_terminal()) {
                h.settle().await;
                return records;
            }
        }
        assert!(
            round < 29_999,
            "calls still waiting after 30,000 steps of {step:?}"
        );
        clock.advance(step);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    unreachable!("the loop returns or fails")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_campaigns_over_the_same_numbers_place_one_call_per_number_under_a_daily_cap() {
    let mut setup = Setup::default().numbered(200, |_| answers());
    setup.faults = Faults {
        duplicate: 0.2,
        delay: 0.2,
        delay_ms: 400,
        ..Faults::default()
    };
    let clock = setup.on_virtual_time();
    let h = setup.start().await;
    set_policy(
        &h,
        r#"{"caps": [{"max_calls": 1, "per_hours": 24, "purposes": ["informational"]}]}"#,
    )
    .await;
    let mut calls = h.calls.clone();
    calls.extend(same_numbers(&h, 9).await);
    let records = until_terminal(&h, &clock, &calls, Duration::from_millis(20)).await;

    let report = h.sim.report();
    assert_clean(&report);
    assert_eq!(report.placed_per_number.len(), 200);
    assert!(
        report.placed_per_number.values().all(|n| *n == 1),
        "{:?}",
        report
            .placed_per_number
            .iter()
            .filter(|(_, n)| **n != 1)
            .collect::<Vec<_>>()
    );
    let completed = records
        .iter()
        .filter(|r| r.status == CallStatus::Completed)
        .count();
    let capped = records
        .iter()
        .filter(|r| r.status == CallStatus::Cancelled && r.reason == Some(Reason::Cap))
        .count();
    assert_eq!((completed, capped), (200, 1800));
    let stats = h.dispatcher.stats();
    assert_eq!((stats.dialed, stats.capped), (200, 1800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferring_campaign_waits_for_the_cap_to_reopen() {
    let mut setup = Setup::default().numbered(5, |_| answers());
    let clock = setup.on_virtual_time();
    let h = setup.start().await;
    set_policy(
        &h,
        r#"{"caps": [{"max_calls": 1, "per_hours": 1, "purposes": ["informational"]}]}"#,
    )
    .await;
    let first = until_terminal(&h, &clock, &h.calls, Duration::from_millis(20)).await;
    assert!(first.iter().all(|r| r.status == CallStatus::Completed));
    // A second campaign over the same numbers, deferring on the cap: held, not cancelled.
    let second = Campaign {
        id: CampaignId::random(),
        on_cap: outdial_core::policy::OnCap::Defer,
        caller_pool: None,
        ..h.campaign.clone()
    };
    let calls: Vec<NewCall> = h
        .calls
        .iter()
        .map(|c| NewCall {
            id: CallId::random(),
            due_at: h.clock.now(),
            ..c.clone()
        })
        .collect();
    h.store.create_campaign(&second, &calls).await.unwrap();
    h.tick_and_settle().await;
    for call in &calls {
        let r = h.store.call(&call.id).await.unwrap();
        assert_eq!(
            (r.status, r.reason),
            (CallStatus::Queued, Some(Reason::Cap))
        );
        let due = r.due_at.unwrap();
        assert!(
            due > h.clock.now().plus(Duration::from_secs(3000)),
            "{due:?}"
        );
    }
    // An hour on, the cap has room again: each is placed once more.
    clock.advance(Duration::from_secs(3600));
    let again = until_terminal(&h, &clock, &calls, Duration::from_millis(20)).await;
    assert!(
        again
            .iter()
            .all(|r| r.status == CallStatus::Completed && r.reason.is_none())
    );
    let report = h.sim.report();
    assert_clean(&report);
    assert!(report.placed_per_number.values().all(|n| *n == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_cap_spaces_two_campaigns_of_different_purposes_over_the_same_numbers() {
    // One call a number in any ten minutes, whatever the purpose: a reminder campaign and a
    // health-care campaign started together over the same 20 numbers, both deferring.
    let mut setup = Setup::default().numbered(20, |_| answers());
    setup.on_cap = outdial_core::policy::OnCap::Defer;
    let clock = setup.on_virtual_time();
    let h = setup.start().await;
    set_policy(
        &h,
        r#"{"destination_caps": [{"max_calls": 1, "per_minutes": 10}]}"#,
    )
    .await;
    let second = Campaign {
        id: CampaignId::random(),
        purpose: outdial_core::policy::Purpose::Healthcare,
        on_cap: outdial_core::policy::OnCap::Defer,
        ..h.campaign.clone()
    };
    let calls: Vec<NewCall> = h
        .calls
        .iter()
        .map(|c| NewCall {
            id: CallId::random(),
            ..c.clone()
        })
        .collect();
    h.store.create_campaign(&second, &calls).await.unwrap();
    let mut all = h.calls.clone();
    all.extend(calls.iter().cloned());
    // Both campaigns end: each number called twice, ten minutes or more apart.
    let start = clock.now();
    let records = until_terminal(&h, &clock, &all, Duration::from_millis(200)).await;
    assert!(
        records.iter().all(|r| r.status == CallStatus::Completed),
        "{:?}",
        records
            .iter()
            .map(|r| (r.status, r.reason))
            .collect::<Vec<_>>()
    );
    let report = h.sim.report();
    assert_clean(&report);
    assert!(report.placed_per_number.values().all(|n| *n == 2));
    assert!(clock.now().since(start) >= Duration::from_secs(600));
    // The claims' ledgers say when: two calls counted for every number, the second ten
    // minutes or more after the campaigns started (the first entry has left the window, so
    // the ledger no longer keeps it).
    for call in &h.calls {
        let ledger = outdial_core::ports::DispatchStore::ledger(&h.store, &call.to)
            .await
            .unwrap();
        assert_eq!(ledger.version, 2, "{ledger:?}");
        let last = ledger.entries.last().unwrap().at;
        assert!(last.since(start) >= Duration::from_secs(600), "{ledger:?}");
    }
}

/// The instant of local time `y-m-d h:mi` in `zone`.
fn local(zone: &str, (y, m, d): (i16, i8, i8), (h, mi): (i8, i8)) -> Timestamp {
    let t = jiff::civil::date(y, m, d)
        .at(h, mi, 0, 0)
        .in_tz(zone)
        .unwrap()
        .timestamp();
    Timestamp::from_millis(t.as_millisecond())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_outside_the_laws_hours_are_held_to_the_next_lawful_opening() {
    // A Miami number at 20:30 on a Tuesday (Florida's law closes at 20:00), then a Paris
    // number at 11:00 on Bastille Day, a Monday: each is held, with its reason, until the
    // law's next opening, and placed then and not a second earlier.
    let cases = [
        (
            "+13055550100",
            local("America/New_York", (2030, 7, 16), (20, 30)),
            local("America/New_York", (2030, 7, 17), (8, 0)),
        ),
        (
            "+33142685300",
            local("Europe/Paris", (2031, 7, 14), (11, 0)),
            local("Europe/Paris", (2031, 7, 15), (10, 0)),
        ),
    ];
    for (number, start, opening) in cases {
        let clock = Arc::new(ManualClock::at(start));
        let mut setup = Setup {
            callees: vec![(number.into(), answers(), None)],
            clock: clock.clone(),
            manual: Some(clock.clone()),
            ..Setup::default()
        };
        setup.settings.legal_hours = true;
        let h = setup.start().await;
        h.tick_and_settle().await;
        let held = h.store.call(&h.calls[0].id).await.unwrap();
        assert_eq!(
            (held.status, held.due_at, held.reason),
            (CallStatus::Queued, Some(opening), Some(Reason::LegalHours)),
            "{number}"
        );
        clock.set(Timestamp::from_millis(opening.as_millis() - 1_000));
        h.tick_and_settle().await;
        assert!(h.sim.report().placed_per_number.is_empty(), "{number}");
        clock.set(opening);
        h.tick_and_settle().await;
        assert_eq!(
            h.sim.report().placed_per_number.get(number),
            Some(&1),
            "{number}"
        );
        assert_clean(&h.sim.report());
    }
}
