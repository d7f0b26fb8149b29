#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn number(e164: &str, caps: NumberCaps) -> Member {
    Member {
        number: NumberSpec {
            pool: "main".into(),
            caps,
            display_region: None,
        }
        .registration(E164::parse(e164).unwrap())
        .unwrap(),
        usage: Usage::default(),
    }
}

fn per_minute(n: u32) -> NumberCaps {
    NumberCaps {
        per_minute: Some(n),
        ..NumberCaps::default()
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

const T0: i64 = 1_900_000_000_000;

/// Dials `n` calls to `callee` at the instants `times`, applying each choice.
fn dial(pool: &mut [Member], callee: &str, times: &[i64]) -> Vec<Choice> {
    let callee = E164::parse(callee).unwrap();
    times
        .iter()
        .map(|&t| {
            let choice = choose(pool, &callee, true, at(t));
            if let Choice::Number { index, usage } = &choice {
                pool[*index].usage = usage.clone();
            }
            choice
        })
        .collect()
}

#[test]
fn local_presence_picks_the_callees_area_code_then_its_country() {
    let mut pool = vec![
        number("+12125550100", NumberCaps::default()),
        number("+13055550100", NumberCaps::default()),
        number("+14165550100", NumberCaps::default()),
        number("+33142685300", NumberCaps::default()),
    ];
    let index = |choices: Vec<Choice>| match &choices[0] {
        Choice::Number { index, .. } => *index,
        other => panic!("{other:?}"),
    };
    // Miami: the 305 number.
    assert_eq!(index(dial(&mut pool, "+13055551234", &[T0])), 1);
    // Miami's other area code, 786: the Florida number, the same state.
    assert_eq!(index(dial(&mut pool, "+17865551234", &[T0])), 1);
    // Another state: a US number, the least used (New York, never used yet).
    assert_eq!(index(dial(&mut pool, "+15125551234", &[T0])), 0);
    // Toronto's 647: Toronto's 416 is the same province.
    assert_eq!(index(dial(&mut pool, "+16475551234", &[T0])), 2);
    // Paris.
    assert_eq!(index(dial(&mut pool, "+33612345678", &[T0])), 3);
    // A display region stands for the number's own.
    pool[0].number.display_region = Some("786".into());
    assert_eq!(index(dial(&mut pool, "+17865551234", &[T0 + 1])), 0);
}

#[test]
fn a_state_is_the_time_zone_tables_region_and_west_virginia_is_not_virginia() {
    assert_eq!(state_of("305"), Some("Florida"));
    assert_eq!(state_of("813"), Some("Florida"));
    assert_eq!(state_of("304"), Some("West Virginia"));
    assert_eq!(state_of("703"), Some("Virginia"));
    assert_eq!(state_of("915"), Some("Texas"));
    assert_eq!(state_of("416"), Some("Ontario"));
    // Left out of the table (it straddles a zone boundary): no state, the country tier.
    assert_eq!(state_of("850"), None);
    let mut pool = vec![
        number("+13045550100", NumberCaps::default()),
        number("+12125550100", NumberCaps::default()),
    ];
    // A Virginia callee: neither is of its state; the least used, then the lowest number.
    let choices = dial(&mut pool, "+17035551234", &[T0]);
    assert!(matches!(choices[0], Choice::Number { index: 1, .. }));
}

#[test]
fn a_full_pool_waits_for_the_first_number_to_have_room_and_quarantined_numbers_are_never_chosen() {
    let mut pool = vec![
        number("+12125550100", per_minute(2)),
        number("+12125550101", per_minute(2)),
    ];
    let choices = dial(
        &mut pool,
        "+12125551234",
        &[T0, T0 + 10, T0 + 20, T0 + 30, T0 + 40],
    );
    assert!(matches!(choices[3], Choice::Number { .. }));
    // Four placed in 40 ms; the fifth waits until the first leaves its minute, and the
    // grace for a late send.
    assert_eq!(
        choices[4],
        Choice::Full {
            until: at(T0 + 60_000 + 2_000)
        }
    );
    pool[0].number.health = Health::Quarantined {
        reason: "answer rate".into(),
        at: at(T0),
    };
    let later = dial(&mut pool, "+12125551234", &[T0 + 120_000]);
    assert!(matches!(later[0], Choice::Number { index: 1, .. }));
    pool[1].number.health = pool[0].number.health.clone();
    assert_eq!(
        dial(&mut pool, "+12125551234", &[T0 + 180_000])[0],
        Choice::Empty
    );
}

#[test]
fn the_day_is_the_utc_calendar_day() {
    let mut pool = vec![number(
        "+12125550100",
        NumberCaps {
            per_day: Some(1),
            ..NumberCaps::default()
        },
    )];
    let midnight = (T0 / DAY_MS + 1) * DAY_MS;
    let choices = dial(
        &mut pool,
        "+12125551234",
        &[midnight - 1000, midnight - 500, midnight],
    );
    assert!(matches!(choices[0], Choice::Number { .. }));
    assert_eq!(
        choices[1],
        Choice::Full {
            until: at(midnight)
        }
    );
    assert!(matches!(choices[2], Choice::Number { .. }));
}

#[test]
fn registrations_are_checked_field_by_field() {
    let e164 = E164::parse("+12125550100").unwrap();
    let spec = |json: &str| serde_json::from_str::<NumberSpec>(json).unwrap();
    let err = |json: &str| spec(json).registration(e164.clone()).unwrap_err().field;
    assert_eq!(err(r#"{"pool": ""}"#), "pool");
    assert_eq!(err(r#"{"pool": "a b"}"#), "pool");
    assert_eq!(
        err(r#"{"pool": "a", "caps": {"per_minute": 0}}"#),
        "caps.per_minute"
    );
    assert_eq!(
        err(r#"{"pool": "a", "caps": {"per_minute": 5, "per_hour": 4}}"#),
        "caps.per_minute"
    );
    assert_eq!(
        err(r#"{"pool": "a", "caps": {"per_hour": 50, "per_day": 40}}"#),
        "caps.per_hour"
    );
    assert_eq!(
        err(r#"{"pool": "a", "display_region": "30"}"#),
        "display_region"
    );
    assert_eq!(
        err(r#"{"pool": "a", "display_region": "+331"}"#),
        "display_region"
    );
    assert!(serde_json::from_str::<NumberSpec>(r#"{"pool": "a", "other": 1}"#).is_err());
    let ok = spec(r#"{"pool": "clinic-east", "caps": {"per_minute": 5, "per_hour": 60, "per_day": 300}, "display_region": "+33"}"#)
        .registration(e164)
        .unwrap();
    assert!(ok.health.is_healthy());
}

proptest! {
    /// However the dials come, no number ever has more placements in any 60 s or 3600 s
    /// window, or on any UTC day, than its caps allow; and a pool only waits when every
    /// number is full.
    #[test]
    fn no_number_ever_exceeds_its_caps(
        gaps in prop::collection::vec(0i64..20_000, 1..300),
        caps in prop::collection::vec((1u32..6, 6u32..40, 40u32..80), 1..4),
    ) {
        let mut pool: Vec<Member> = caps
            .iter()
            .enumerate()
            .map(|(i, &(m, h, d))| number(
                &format!("+1212555{i:04}"),
                NumberCaps { per_minute: Some(m), per_hour: Some(h), per_day: Some(d) },
            ))
            .collect();
        let mut placed: Vec<Vec<i64>> = vec![Vec::new(); pool.len()];
        let callee = E164::parse("+12125551234").unwrap();
        let mut t = T0;
        for gap in gaps {
            t += gap;
            match choose(&pool, &callee, true, at(t)) {
                Choice::Number { index, usage } => {
                    pool[index].usage = usage;
                    placed[index].push(t);
                }
                Choice::Full { until } => {
                    prop_assert!(until.as_millis() > t);
                    for m in &pool {
                        prop_assert!(m.usage.full_until(&m.number.caps, at(t)).is_some());
                    }
                }
                Choice::Empty => prop_assert!(false, "every number is healthy"),
            }
        }
        for (times, &(m, h, d)) in placed.iter().zip(&caps) {
            for &start in times {
                let count = |len: i64| times.iter().filter(|&&x| x >= start && x < start + len).count();
                prop_assert!(count(60_000) <= m as usize);
                prop_assert!(count(3_600_000) <= h as usize);
            }
            let mut days = std::collections::BTreeMap::new();
            for &x in times {
                *days.entry(x.div_euclid(DAY_MS)).or_insert(0u32) += 1;
            }
            prop_assert!(days.values().all(|&n| n <= d));
        }
    }
}

#[test]
fn a_number_is_quarantined_past_the_documented_thresholds_only() {
    let counts = |attempts, answered, short, declined, rejected| HealthCounts {
        attempts,
        answered,
        short,
        declined,
        rejected,
    };
    assert_eq!(counts(1, 0, 0, 0, 2).assess(), None);
    assert!(counts(3, 0, 0, 0, 3).assess().unwrap().contains("607/608"));
    // Low answer rate counts from 20 attempts.
    assert_eq!(counts(19, 0, 0, 0, 0).assess(), None);
    assert!(
        counts(20, 1, 0, 0, 0)
            .assess()
            .unwrap()
            .contains("answer rate 5%")
    );
    assert_eq!(counts(20, 2, 0, 0, 0).assess(), None);
    assert!(
        counts(20, 10, 0, 7, 0)
            .assess()
            .unwrap()
            .contains("declined")
    );
    // Short calls count from 20 answered.
    assert_eq!(counts(40, 19, 19, 0, 0).assess(), None);
    assert!(
        counts(40, 20, 13, 0, 0)
            .assess()
            .unwrap()
            .contains("under 10 s")
    );
    assert_eq!(counts(40, 20, 12, 0, 0).assess(), None);

    let one = HealthCounts::of_attempt(true, Some(9_999), Some(200));
    assert_eq!((one.attempts, one.answered, one.short), (1, 1, 1));
    assert_eq!(HealthCounts::of_attempt(true, Some(10_000), None).short, 0);
    assert_eq!(HealthCounts::of_attempt(false, None, Some(608)).rejected, 1);
    assert_eq!(HealthCounts::of_attempt(false, None, Some(603)).declined, 1);
    let mut sum = HealthCounts::default();
    sum += &one;
    sum += &one;
    assert_eq!(sum.short, 2);
}
