use proptest::prelude::*;

use super::*;

const HOUR_MS: i64 = 3_600_000;

fn policy(json: &str) -> Policy {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn fcc() -> Policy {
    policy(
        r#"{"caps": [{"max_calls": 3, "per_hours": 720, "purposes": ["informational"]},
                     {"max_calls": 1, "per_hours": 24, "purposes": ["healthcare"]},
                     {"max_calls": 3, "per_hours": 168, "purposes": ["healthcare"]}]}"#,
    )
}

fn at(hours: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + hours * HOUR_MS)
}

/// Admits and writes, as the claim would; `None` when capped.
fn place(p: &Policy, ledger: &mut Ledger, purpose: Purpose, t: Timestamp) -> Option<Timestamp> {
    match p.admit(ledger, purpose, &CallId::random(), Attempt::FIRST, t) {
        Admission::Count(next) => {
            *ledger = next;
            None
        }
        Admission::Capped { until } => Some(until),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_issue_s_policy_reads_and_round_trips() {
    let p = fcc();
    assert_eq!(p.caps().len(), 3);
    let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    assert!(p.caps_purpose(Purpose::Healthcare));
    assert!(!p.caps_purpose(Purpose::Emergency));
    assert_eq!(p.horizon(), Duration::from_secs(720 * 3600));
}

#[test]
fn bad_policies_name_the_field() {
    for (json, field) in [
        (
            r#"{"caps": [{"max_calls": 0, "per_hours": 1, "purposes": ["informational"]}]}"#,
            "caps[0].max_calls",
        ),
        (
            r#"{"caps": [{"max_calls": 1, "per_hours": 9000, "purposes": ["informational"]}]}"#,
            "caps[0].per_hours",
        ),
        (
            r#"{"caps": [{"max_calls": 1, "per_hours": 1, "purposes": []}]}"#,
            "caps[0].purposes",
        ),
        (
            r#"{"caps": [{"max_calls": 1, "per_hours": 1, "purposes": ["healthcare", "healthcare"]}]}"#,
            "caps[0].purposes",
        ),
        (
            r#"{"default_hours": {"mon": ["21:00-09:00"]}}"#,
            "default_hours.mon",
        ),
    ] {
        let spec: PolicySpec = serde_json::from_str(json).unwrap();
        let err = Policy::try_from(spec).unwrap_err();
        assert!(err.field.starts_with(field), "{json}: {err}");
    }
    assert!(
        serde_json::from_str::<Policy>(
            r#"{"caps": [{"max_calls": 1, "per_hours": 1, "purposes": ["sales"]}]}"#
        )
        .is_err()
    );
    assert!(serde_json::from_str::<Policy>(r#"{"limits": []}"#).is_err());
}

#[test]
fn a_cap_counts_across_the_window_and_reopens_when_the_oldest_leaves() {
    let p = fcc();
    let mut ledger = Ledger::default();
    assert_eq!(place(&p, &mut ledger, Purpose::Informational, at(0)), None);
    assert_eq!(place(&p, &mut ledger, Purpose::Informational, at(10)), None);
    assert_eq!(place(&p, &mut ledger, Purpose::Informational, at(20)), None);
    assert_eq!(ledger.version, 3);
    // The fourth within 30 days waits for the first to leave the window.
    assert_eq!(
        place(&p, &mut ledger, Purpose::Informational, at(30)),
        Some(at(720))
    );
    assert_eq!(
        place(&p, &mut ledger, Purpose::Informational, at(720)),
        None
    );
    // The entry that left every window is pruned as the ledger is written.
    assert_eq!(ledger.entries.len(), 3);
}

#[test]
fn every_cap_of_the_purpose_counts_and_the_latest_reopening_wins() {
    let p = fcc();
    let mut ledger = Ledger::default();
    assert_eq!(place(&p, &mut ledger, Purpose::Healthcare, at(0)), None);
    assert_eq!(
        place(&p, &mut ledger, Purpose::Healthcare, at(1)),
        Some(at(24))
    );
    assert_eq!(place(&p, &mut ledger, Purpose::Healthcare, at(24)), None);
    assert_eq!(place(&p, &mut ledger, Purpose::Healthcare, at(48)), None);
    // Three in a week: the daily cap would allow it, the weekly one reopens at hour 168.
    assert_eq!(
        place(&p, &mut ledger, Purpose::Healthcare, at(72)),
        Some(at(168))
    );
    // Other purposes' caps do not count health-care calls.
    assert_eq!(place(&p, &mut ledger, Purpose::Informational, at(72)), None);
}

#[test]
fn uncapped_purposes_and_repeated_attempts_touch_nothing() {
    let p = fcc();
    let call = CallId::random();
    let ledger = Ledger::default();
    assert_eq!(
        p.admit(&ledger, Purpose::Emergency, &call, Attempt::FIRST, at(0)),
        Admission::Uncapped
    );
    let Admission::Count(ledger) = p.admit(
        &ledger,
        Purpose::Informational,
        &call,
        Attempt::FIRST,
        at(0),
    ) else {
        panic!("first claim counts");
    };
    // The same attempt claimed again (its dial was given back) is not counted twice.
    assert_eq!(
        p.admit(
            &ledger,
            Purpose::Informational,
            &call,
            Attempt::FIRST,
            at(1)
        ),
        Admission::AlreadyCounted
    );
    let next = Attempt::new(2).unwrap();
    assert!(matches!(
        p.admit(&ledger, Purpose::Informational, &call, next, at(1)),
        Admission::Count(_)
    ));
    assert_eq!(
        Policy::default().admit(&ledger, Purpose::Informational, &call, next, at(1)),
        Admission::Uncapped
    );
}

#[test]
fn reasons_and_purposes_read_back_from_their_codes() {
    for r in Reason::ALL {
        assert_eq!(Reason::parse(r.code()), Some(r));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            format!("\"{}\"", r.code())
        );
    }
    for p in Purpose::ALL {
        assert_eq!(Purpose::parse(p.as_str()), Some(p));
    }
}

proptest! {
    /// However claims interleave in time, a ledger written only through `admit` never holds
    /// more calls in any cap's window than the cap allows.
    #[test]
    fn no_window_ever_holds_more_than_its_cap(
        steps in proptest::collection::vec((0i64..400, 0usize..3), 1..80),
    ) {
        let p = fcc();
        let mut ledger = Ledger::default();
        let mut placed: Vec<(Timestamp, Purpose)> = Vec::new();
        let mut t = 0;
        for (gap, which) in steps {
            t += gap;
            let purpose = [Purpose::Informational, Purpose::Healthcare, Purpose::Emergency][which];
            let now = at(t);
            match p.admit(&ledger, purpose, &CallId::random(), Attempt::FIRST, now) {
                Admission::Count(next) => {
                    prop_assert_eq!(next.version, ledger.version + 1);
                    ledger = next;
                    placed.push((now, purpose));
                }
                Admission::Uncapped => placed.push((now, purpose)),
                Admission::Capped { until } => prop_assert!(until > now),
                Admission::AlreadyCounted => prop_assert!(false, "fresh calls are never counted"),
            }
        }
        for cap in p.caps() {
            let window = cap.window();
            for (start, _) in &placed {
                let inside = placed
                    .iter()
                    .filter(|(at, purpose)| cap.purposes.contains(purpose) && *at >= *start && *at < start.plus(window))
                    .count();
                prop_assert!(inside <= cap.max_calls as usize);
            }
        }
    }
}

#[test]
fn destination_caps_count_every_purpose_in_minutes() {
    let p = policy(
        r#"{"destination_caps": [{"max_calls": 1, "per_minutes": 1},
                                 {"max_calls": 3, "per_minutes": 15}]}"#,
    );
    assert!(Purpose::ALL.iter().all(|&purpose| p.caps_purpose(purpose)));
    assert_eq!(p.horizon(), Duration::from_secs(15 * 60));
    let minute = |m: i64| Timestamp::from_millis(at(0).as_millis() + m * 60_000);
    let mut ledger = Ledger::default();
    assert_eq!(place(&p, &mut ledger, Purpose::Healthcare, minute(0)), None);
    // Another purpose, 30 s later: the one-a-minute cap holds it until the minute is over.
    assert_eq!(
        place(
            &p,
            &mut ledger,
            Purpose::Informational,
            Timestamp::from_millis(minute(0).as_millis() + 30_000)
        ),
        Some(minute(1))
    );
    assert_eq!(
        place(&p, &mut ledger, Purpose::Informational, minute(1)),
        None
    );
    assert_eq!(place(&p, &mut ledger, Purpose::Emergency, minute(2)), None);
    // Three in fifteen minutes: the fourth waits until the first leaves.
    assert_eq!(
        place(&p, &mut ledger, Purpose::Telemarketing, minute(3)),
        Some(minute(15))
    );
    assert_eq!(
        place(&p, &mut ledger, Purpose::Telemarketing, minute(15)),
        None
    );
    // Read and written back as given.
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["destination_caps"][1]["per_minutes"], 15);
    let bad = |json: &str| {
        serde_json::from_str::<Policy>(json)
            .unwrap_err()
            .to_string()
    };
    assert!(
        bad(r#"{"destination_caps": [{"max_calls": 0, "per_minutes": 1}]}"#)
            .contains("destination_caps[0].max_calls")
    );
    assert!(
        bad(r#"{"destination_caps": [{"max_calls": 1, "per_minutes": 0}]}"#)
            .contains("destination_caps[0].per_minutes")
    );
}
