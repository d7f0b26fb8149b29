use super::*;
use jiff::ToSpan;
use proptest::prelude::*;

fn parse(json: &str) -> Result<CallingWindow, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

fn window(json: &str) -> CallingWindow {
    parse(json).unwrap()
}

fn zone(name: &str) -> Zone {
    Zone::get(name).unwrap()
}

/// An instant written as RFC 3339, with the local offset, so tests read as wall clocks.
fn at(rfc3339: &str) -> Timestamp {
    let t: jiff::Timestamp = rfc3339.parse().unwrap();
    Timestamp::from_millis(t.as_millisecond())
}

fn number(s: &str) -> E164 {
    E164::parse(s).unwrap()
}

const WEEKDAYS_9_TO_8: &str = r#"{"timezone":"America/New_York","hours":{"mon":["09:00-20:00"],"tue":["09:00-20:00"],"wed":["09:00-20:00"],"thu":["09:00-20:00"],"fri":["09:00-20:00"]}}"#;

fn sundays(range: &str) -> CallingWindow {
    window(&format!(
        r#"{{"timezone":"UTC","hours":{{"sun":["{range}"]}}}}"#
    ))
}

#[test]
fn a_window_round_trips_through_its_spec() {
    let json = r#"{"timezone":"America/New_York","hours":{"mon":["09:00-12:00","13:00-20:00"],"sat":["10:00-24:00"]},"skip_dates":["2026-12-25"]}"#;
    let w = parse(json).unwrap();
    assert_eq!(serde_json::to_string(&w).unwrap(), json);
}

#[test]
fn bad_windows_name_the_field_at_fault() {
    for (json, field) in [
        (
            r#"{"timezone":"Mars/Olympus","hours":{"mon":["09:00-10:00"]}}"#,
            "window.timezone",
        ),
        (
            r#"{"timezone":"UTC","hours":{"mon":["10:00-09:00"]}}"#,
            "window.hours.mon[0]",
        ),
        (
            r#"{"timezone":"UTC","hours":{"funday":["10:00-11:00"]}}"#,
            "window.hours.funday",
        ),
        (
            r#"{"timezone":"UTC","hours":{"mon":["09:00-11:00","10:00-12:00"]}}"#,
            "window.hours.mon",
        ),
        (r#"{"timezone":"UTC","hours":{}}"#, "window.hours"),
        (
            r#"{"timezone":"UTC","hours":{"mon":["09:00-10:00"]},"skip_dates":["12/25"]}"#,
            "window.skip_dates[0]",
        ),
    ] {
        let err = parse(json).unwrap_err();
        assert!(err.contains(field), "{json}: {err}");
    }
}

#[test]
fn a_window_knows_its_default_zone() {
    let w = window(WEEKDAYS_9_TO_8);
    assert_eq!(w.zone().name(), "America/New_York");
}

#[test]
fn a_call_due_inside_the_window_is_placed_at_once() {
    let (w, ny) = (window(WEEKDAYS_9_TO_8), zone("America/New_York"));
    let t = at("2026-06-03T10:15:00.123-04:00");
    assert!(w.is_open(t, &ny));
    assert_eq!(w.next_opening(t, &ny), t);
}

#[test]
fn friday_evening_moves_to_monday_morning() {
    let (w, ny) = (window(WEEKDAYS_9_TO_8), zone("America/New_York"));
    assert!(w.is_open(at("2026-06-05T19:59:59.999-04:00"), &ny));
    let friday_evening = at("2026-06-05T20:00:00-04:00");
    assert!(!w.is_open(friday_evening, &ny));
    assert_eq!(
        w.next_opening(friday_evening, &ny),
        at("2026-06-08T09:00:00-04:00")
    );
}

#[test]
fn a_weekend_across_new_yorks_spring_forward_still_opens_at_nine_local() {
    let (w, ny) = (window(WEEKDAYS_9_TO_8), zone("America/New_York"));
    // Friday in EST; the clocks go forward on Sunday 2026-03-08; Monday is in EDT.
    assert_eq!(
        w.next_opening(at("2026-03-06T21:00:00-05:00"), &ny),
        at("2026-03-09T09:00:00-04:00")
    );
}

#[test]
fn new_york_spring_forward_day_keeps_local_hours() {
    let (w, ny) = (sundays("09:00-17:00"), zone("America/New_York"));
    assert_eq!(
        w.next_opening(at("2026-03-07T12:00:00-05:00"), &ny),
        at("2026-03-08T13:00:00Z")
    );
    assert!(!w.is_open(at("2026-03-08T08:59:00-04:00"), &ny));
    assert!(w.is_open(at("2026-03-08T16:59:00-04:00"), &ny));
    assert!(!w.is_open(at("2026-03-08T17:00:00-04:00"), &ny));
}

#[test]
fn new_york_fall_back_day_keeps_local_hours() {
    let (w, ny) = (sundays("09:00-17:00"), zone("America/New_York"));
    assert_eq!(
        w.next_opening(at("2026-10-31T12:00:00-04:00"), &ny),
        at("2026-11-01T14:00:00Z")
    );
    assert!(!w.is_open(at("2026-11-01T08:59:00-05:00"), &ny));
    assert!(w.is_open(at("2026-11-01T16:59:00-05:00"), &ny));
    assert!(!w.is_open(at("2026-11-01T17:00:00-05:00"), &ny));
}

#[test]
fn london_spring_forward_day_keeps_local_hours() {
    let (w, london) = (sundays("09:00-18:00"), zone("Europe/London"));
    assert_eq!(
        w.next_opening(at("2026-03-28T20:00:00Z"), &london),
        at("2026-03-29T08:00:00Z")
    );
    assert!(w.is_open(at("2026-03-29T16:59:00Z"), &london));
    assert!(!w.is_open(at("2026-03-29T17:00:00Z"), &london));
}

#[test]
fn london_fall_back_day_keeps_local_hours() {
    let (w, london) = (sundays("09:00-18:00"), zone("Europe/London"));
    assert_eq!(
        w.next_opening(at("2026-10-24T20:00:00+01:00"), &london),
        at("2026-10-25T09:00:00Z")
    );
    assert!(w.is_open(at("2026-10-25T17:59:00Z"), &london));
    assert!(!w.is_open(at("2026-10-25T18:00:00Z"), &london));
}

#[test]
fn a_range_starting_inside_a_spring_forward_gap_opens_when_the_gap_ends() {
    let (w, ny) = (sundays("02:30-05:00"), zone("America/New_York"));
    // 02:00 EST jumps to 03:00 EDT: there is no 02:30 that night.
    assert_eq!(
        w.next_opening(at("2026-03-07T12:00:00-05:00"), &ny),
        at("2026-03-08T03:00:00-04:00")
    );
    assert!(!w.is_open(at("2026-03-08T01:59:59.999-05:00"), &ny));
    // A week later 02:30 exists again.
    assert_eq!(
        w.next_opening(at("2026-03-08T05:00:00-04:00"), &ny),
        at("2026-03-15T02:30:00-04:00")
    );

    let (w, london) = (sundays("01:30-03:00"), zone("Europe/London"));
    // 01:00 GMT jumps to 02:00 BST.
    assert_eq!(
        w.next_opening(at("2026-03-28T12:00:00Z"), &london),
        at("2026-03-29T02:00:00+01:00")
    );
}

#[test]
fn a_range_ending_inside_a_spring_forward_gap_closes_when_the_gap_begins() {
    let (w, ny) = (sundays("00:00-02:30"), zone("America/New_York"));
    assert!(w.is_open(at("2026-03-08T01:59:59.999-05:00"), &ny));
    let after_the_jump = at("2026-03-08T03:00:00-04:00");
    assert!(!w.is_open(after_the_jump, &ny));
    assert_eq!(
        w.next_opening(after_the_jump, &ny),
        at("2026-03-15T00:00:00-04:00")
    );
}

#[test]
fn a_range_starting_inside_a_fall_back_overlap_opens_at_its_first_pass() {
    let (w, ny) = (sundays("01:30-03:00"), zone("America/New_York"));
    // 02:00 EDT goes back to 01:00 EST: 01:00-02:00 happens twice.
    assert_eq!(
        w.next_opening(at("2026-10-31T12:00:00-04:00"), &ny),
        at("2026-11-01T01:30:00-04:00")
    );
    // Open without a break through the repeated hour, until 03:00 EST.
    assert!(w.is_open(at("2026-11-01T01:15:00-05:00"), &ny));
    assert!(w.is_open(at("2026-11-01T02:59:00-05:00"), &ny));
    assert!(!w.is_open(at("2026-11-01T03:00:00-05:00"), &ny));
}

#[test]
fn a_range_ending_inside_a_fall_back_overlap_closes_at_its_first_pass() {
    let (w, ny) = (sundays("00:00-01:30"), zone("America/New_York"));
    assert!(w.is_open(at("2026-11-01T01:29:00-04:00"), &ny));
    assert!(!w.is_open(at("2026-11-01T01:30:00-04:00"), &ny));
    assert!(!w.is_open(at("2026-11-01T01:15:00-05:00"), &ny));
}

#[test]
fn a_fall_back_across_midnight_keeps_the_next_days_range_open_through_the_repeat() {
    // No IANA zone does this today; a POSIX rule does: clocks at UTC+2 go back at
    // 00:30 on Sunday 2026-10-25 (22:30Z) to 23:30 on Saturday, at UTC+1.
    let z = Zone(TimeZone::posix("XST-1XDT,M3.5.0/0,M10.5.0/0:30").unwrap());
    let w = sundays("00:00-01:00");
    assert_eq!(
        w.next_opening(at("2026-10-24T12:00:00Z"), &z),
        at("2026-10-25T00:00:00+02:00")
    );
    // 22:45Z reads Saturday 23:45 for the second time: still inside Sunday's range.
    let repeat = at("2026-10-24T22:45:00Z");
    assert!(w.is_open(repeat, &z));
    assert_eq!(w.next_opening(repeat, &z), repeat);
    assert!(w.is_open(at("2026-10-25T00:59:00+01:00"), &z));
    assert!(!w.is_open(at("2026-10-25T01:00:00+01:00"), &z));
}

#[test]
fn an_end_of_24_00_runs_to_local_midnight() {
    let w = window(r#"{"timezone":"UTC","hours":{"fri":["20:00-24:00"]}}"#);
    let ny = zone("America/New_York");
    assert!(w.is_open(at("2026-06-05T23:59:59.999-04:00"), &ny));
    let midnight = at("2026-06-06T00:00:00-04:00");
    assert!(!w.is_open(midnight, &ny));
    assert_eq!(
        w.next_opening(midnight, &ny),
        at("2026-06-12T20:00:00-04:00")
    );
}

#[test]
fn an_end_of_24_00_on_a_night_that_skips_midnight_closes_when_the_clocks_jump() {
    // Chile moves its clocks from Saturday 24:00 to Sunday 01:00 (2026-09-06T04:00Z).
    let w = window(r#"{"timezone":"UTC","hours":{"sat":["20:00-24:00"]}}"#);
    let santiago = zone("America/Santiago");
    assert!(w.is_open(at("2026-09-05T23:59:59.999-04:00"), &santiago));
    assert!(!w.is_open(at("2026-09-06T01:00:00-03:00"), &santiago));
}

#[test]
fn a_skipped_monday_moves_the_call_to_tuesday() {
    let w =
        window(&WEEKDAYS_9_TO_8.replace(r#""hours""#, r#""skip_dates":["2026-05-25"],"hours""#));
    let ny = zone("America/New_York");
    assert!(!w.is_open(at("2026-05-25T10:00:00-04:00"), &ny));
    assert_eq!(
        w.next_opening(at("2026-05-22T20:30:00-04:00"), &ny),
        at("2026-05-26T09:00:00-04:00")
    );
}

#[test]
fn skip_dates_are_dates_in_the_contacts_zone() {
    let w =
        window(r#"{"timezone":"UTC","hours":{"mon":["08:00-12:00"]},"skip_dates":["2026-05-25"]}"#);
    let tokyo = zone("Asia/Tokyo");
    // Still Sunday in UTC, already the skipped Monday in Tokyo.
    let t = at("2026-05-25T00:00:00Z");
    assert!(!w.is_open(t, &tokyo));
    assert_eq!(w.next_opening(t, &tokyo), at("2026-06-01T08:00:00+09:00"));
}

#[test]
fn phoenix_keeps_the_same_utc_hours_all_year() {
    let every_day = r#"{"timezone":"UTC","hours":{"mon":["09:00-17:00"],"tue":["09:00-17:00"],"wed":["09:00-17:00"],"thu":["09:00-17:00"],"fri":["09:00-17:00"],"sat":["09:00-17:00"],"sun":["09:00-17:00"]}}"#;
    let w = window(every_day);
    let (phoenix, denver) = (zone("America/Phoenix"), zone("America/Denver"));
    for day in ["2026-01-15", "2026-07-15"] {
        assert_eq!(
            w.next_opening(at(&format!("{day}T00:00:00Z")), &phoenix),
            at(&format!("{day}T16:00:00Z"))
        );
    }
    assert_eq!(
        w.next_opening(at("2026-07-15T00:00:00Z"), &denver),
        at("2026-07-15T15:00:00Z")
    );
}

#[test]
fn years_of_skipped_mondays_still_end_in_an_opening() {
    let first = jiff::civil::date(2026, 6, 1);
    let skipped: Vec<String> = (0..MAX_SKIP_DATES)
        .map(|i| {
            first
                .checked_add(i64::try_from(i).unwrap().weeks())
                .unwrap()
                .to_string()
        })
        .collect();
    let w = window(
        &serde_json::json!({
            "timezone": "America/New_York",
            "hours": {"mon": ["09:00-10:00"]},
            "skip_dates": skipped,
        })
        .to_string(),
    );
    let ny = zone("America/New_York");
    let expected = first
        .checked_add(i64::try_from(MAX_SKIP_DATES).unwrap().weeks())
        .unwrap()
        .at(9, 0, 0, 0)
        .in_tz("America/New_York")
        .unwrap()
        .timestamp();
    let opening = w.next_opening(at("2026-06-01T00:00:00Z"), &ny);
    assert_eq!(opening.as_millis(), expected.as_millisecond());
    assert!(w.is_open(opening, &ny));
}

#[test]
fn at_the_end_of_time_the_search_gives_up_without_claiming_an_opening() {
    let w = sundays("09:00-10:00");
    let utc = zone("UTC");
    // 9999-12-30 is a Thursday, and Jiff knows no instant after that day.
    let t = at("9999-12-30T00:00:00Z");
    let later = w.next_opening(t, &utc);
    assert!(later > t);
    assert!(!w.is_open(later, &utc));
}

#[test]
fn without_a_window_a_call_is_placed_when_due() {
    let t = at("2026-06-06T03:00:00Z");
    assert_eq!(next_opening_for(None, t, &zone("UTC")), t);
    let w = window(WEEKDAYS_9_TO_8);
    assert_eq!(
        next_opening_for(Some(&w), t, w.zone()),
        at("2026-06-08T09:00:00-04:00")
    );
}

#[test]
fn an_explicit_zone_wins_over_the_number() {
    let default = zone("UTC");
    let (z, source) =
        zone_for(Some("America/Chicago"), &number("+442079460000"), &default).unwrap();
    assert_eq!(
        (z.name(), source),
        ("America/Chicago", ZoneSource::Explicit)
    );
    let (z, _) = zone_for(Some(" asia/TOKYO "), &number("+12125550100"), &default).unwrap();
    assert_eq!(z.name(), "Asia/Tokyo");
}

#[test]
fn an_unknown_explicit_zone_is_an_error_not_a_guess() {
    let err = zone_for(Some("Mars/Olympus"), &number("+12125550100"), &zone("UTC")).unwrap_err();
    assert!(err.to_string().contains("Mars/Olympus"), "{err}");
}

#[test]
fn a_blank_explicit_zone_counts_as_not_given() {
    let (z, source) = zone_for(Some("  "), &number("+12125550100"), &zone("UTC")).unwrap();
    assert_eq!((z.name(), source), ("America/New_York", ZoneSource::Number));
}

fn derived(n: &str) -> (String, ZoneSource) {
    let (z, source) = zone_for(None, &number(n), &zone("Etc/UTC")).unwrap();
    (z.name().to_owned(), source)
}

#[test]
fn single_zone_countries_are_derived_from_the_number() {
    for (n, expected) in [
        ("+442079460000", "Europe/London"),
        ("+447700900123", "Europe/London"),
        ("+33142685300", "Europe/Paris"),
        ("+4930901820", "Europe/Berlin"),
        ("+390669812345", "Europe/Rome"),
        ("+81312345678", "Asia/Tokyo"),
        ("+919876543210", "Asia/Kolkata"),
        ("+6561234567", "Asia/Singapore"),
        ("+35312345678", "Europe/Dublin"),
    ] {
        assert_eq!(derived(n), (expected.to_owned(), ZoneSource::Number), "{n}");
    }
}

#[test]
fn nanp_codes_wholly_in_one_zone_are_derived_from_the_area_code() {
    for (n, expected) in [
        ("+12125550100", "America/New_York"),
        ("+14155550100", "America/Los_Angeles"),
        ("+13125550100", "America/Chicago"),
        ("+13035550100", "America/Denver"),
        ("+16025550100", "America/Phoenix"),
        ("+18085550100", "Pacific/Honolulu"),
        ("+14165550100", "America/Toronto"),
        ("+17875550100", "America/Puerto_Rico"),
        ("+19155550100", "America/Denver"),
    ] {
        assert_eq!(derived(n), (expected.to_owned(), ZoneSource::Number), "{n}");
    }
}

#[test]
fn straddling_and_non_geographic_codes_get_the_default() {
    for n in [
        // Straddling a zone boundary.
        "+18505550100",
        "+12085550100",
        "+12705550100",
        "+16055550100",
        "+19285550100",
        "+13345550100",
        "+14325550100",
        "+15415550100",
        "+18125550100",
        "+19075550100",
        "+13065550100",
        "+12505550100",
        "+14185550100",
        "+17095550100",
        "+18075550100",
        "+18675550100",
        // Toll-free and other non-geographic codes.
        "+18005550100",
        "+18885550100",
        "+18775550100",
        "+18665550100",
        "+18555550100",
        "+18445550100",
        "+18335550100",
        "+15005550100",
        "+19005550100",
        // Too short to hold an area code.
        "+112",
        // Countries spanning several zones, and mobiles of countries with offshore zones.
        "+74951234567",
        "+5511912345678",
        "+61212345678",
        "+34612345678",
        "+351912345678",
        "+64211234567",
        "+6433051234",
        "+905321234567",
    ] {
        assert_eq!(
            derived(n),
            ("Etc/UTC".to_owned(), ZoneSource::Default),
            "{n}"
        );
    }
}

#[test]
fn fixed_lines_separate_offshore_zones_from_the_mainland() {
    for (n, expected) in [
        ("+34912345678", "Europe/Madrid"),
        ("+34928123456", "Atlantic/Canary"),
        ("+34822123456", "Atlantic/Canary"),
        ("+351213456789", "Europe/Lisbon"),
        ("+351296123456", "Atlantic/Azores"),
        ("+6493001234", "Pacific/Auckland"),
        ("+902121234567", "Europe/Istanbul"),
        ("+903922281234", "Asia/Famagusta"),
    ] {
        assert_eq!(derived(n), (expected.to_owned(), ZoneSource::Number), "{n}");
    }
}

#[test]
fn the_zone_tables_hold_only_zones_of_the_bundled_database_and_no_duplicates() {
    let mut seen = BTreeSet::new();
    for (region, name, codes) in zones::NANP {
        assert!(Zone::get(name).is_ok(), "{region}: {name}");
        for code in *codes {
            let b = code.as_bytes();
            assert!(
                b.len() == 3 && (b'2'..=b'9').contains(&b[0]) && b.iter().all(u8::is_ascii_digit),
                "{region}: {code}"
            );
            assert!(seen.insert(*code), "{code} is listed twice");
        }
    }
    let mut seen = BTreeSet::new();
    for (prefix, name) in zones::COUNTRIES {
        assert!(
            !prefix.starts_with('1') && !prefix.starts_with('0'),
            "{prefix}"
        );
        assert!(prefix.bytes().all(|b| b.is_ascii_digit()), "{prefix}");
        assert!(seen.insert(*prefix), "{prefix} is listed twice");
        if let Some(name) = name {
            assert!(Zone::get(name).is_ok(), "+{prefix}: {name}");
        }
    }
}

#[test]
fn a_zone_is_stored_as_its_name() {
    let z: Zone = serde_json::from_str(r#""europe/london""#).unwrap();
    assert_eq!(serde_json::to_string(&z).unwrap(), r#""Europe/London""#);
    assert!(serde_json::from_str::<Zone>(r#""Mars/Olympus""#).is_err());
}

#[test]
fn zone_sources_are_reported_as_words() {
    assert_eq!(
        serde_json::to_string(&[
            ZoneSource::Explicit,
            ZoneSource::Number,
            ZoneSource::Default
        ])
        .unwrap(),
        r#"["explicit","number","default"]"#
    );
}

// Property tests: windows of random ranges, biased to the small hours where clocks
// change, in zones with unusual changes, at instants mostly near those changes.

/// Zones with their clock changes: the four of the task, Chile's and Egypt's at
/// midnight, Lord Howe's half hour, Chatham's at quarter past, Newfoundland's half-hour
/// offset, and Samoa skipping 2011-12-30. Phoenix never changes (its instant is arbitrary).
const CHANGES: [(&str, &str); 16] = [
    ("America/New_York", "2026-03-08T07:00:00Z"),
    ("America/New_York", "2026-11-01T06:00:00Z"),
    ("Europe/London", "2026-03-29T01:00:00Z"),
    ("Europe/London", "2026-10-25T01:00:00Z"),
    ("America/Santiago", "2026-04-05T03:00:00Z"),
    ("America/Santiago", "2026-09-06T04:00:00Z"),
    ("Africa/Cairo", "2026-04-23T22:00:00Z"),
    ("Africa/Cairo", "2026-10-29T21:00:00Z"),
    ("Australia/Lord_Howe", "2026-04-04T15:00:00Z"),
    ("Australia/Lord_Howe", "2026-10-03T15:30:00Z"),
    ("Pacific/Chatham", "2026-04-04T14:00:00Z"),
    ("Pacific/Chatham", "2026-09-26T14:00:00Z"),
    ("America/St_Johns", "2026-03-08T05:30:00Z"),
    ("America/St_Johns", "2026-11-01T04:30:00Z"),
    ("Pacific/Apia", "2011-12-30T10:00:00Z"),
    ("America/Phoenix", "2026-03-08T09:00:00Z"),
];

#[test]
fn the_property_tests_sample_real_clock_changes() {
    for (name, instant) in &CHANGES[..CHANGES.len() - 1] {
        let t: jiff::Timestamp = instant.parse().unwrap();
        let z = zone(name);
        let change = z.0.following(t - 1.second()).next().unwrap();
        assert_eq!(change.timestamp(), t, "{name}");
    }
}

/// The local minute of the day the clocks read just before and at `change`.
fn clock_minutes(z: &Zone, change: jiff::Timestamp) -> (u16, u16) {
    let read = |t: jiff::Timestamp| {
        let dt = z.0.to_datetime(t);
        u16::try_from(dt.hour()).unwrap() * 60 + u16::try_from(dt.minute()).unwrap()
    };
    (read(change - 1.second()), read(change))
}

/// Range boundaries: anywhere, at midnight, or near the clock readings around a change.
fn minute(near: (u16, u16)) -> impl Strategy<Value = u16> {
    let lo = near.0.min(near.1).saturating_sub(90);
    let hi = (near.0.max(near.1) + 90).min(1440);
    prop_oneof![0u16..=1440, lo..=hi, Just(0), Just(1440)]
}

fn day(near: (u16, u16)) -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(minute(near), 0..=6).prop_map(|set| {
        let b: Vec<u16> = set.into_iter().collect();
        b.chunks_exact(2)
            .map(|p| format!("{}-{}", hhmm(p[0]), hhmm(p[1])))
            .collect()
    })
}

const HOUR: i64 = 3_600_000;

/// A window (skipping a few dates around the change), a zone and an instant, mostly
/// within hours of one of the zone's clock changes.
fn arb_case() -> impl Strategy<Value = (CallingWindow, Timestamp, Zone)> {
    (0..CHANGES.len()).prop_flat_map(|i| {
        let (name, instant) = CHANGES[i];
        let z = zone(name);
        let change: jiff::Timestamp = instant.parse().unwrap();
        let offset = prop_oneof![
            3 => -3 * HOUR..3 * HOUR,
            1 => -96 * HOUR..96 * HOUR,
            1 => -3 * 8_766 * HOUR..3 * 8_766 * HOUR,
        ];
        (
            Just(z.clone()),
            Just(change),
            offset,
            prop::collection::vec(day(clock_minutes(&z, change)), 7),
            prop::collection::vec(-3i64..14, 0..4),
        )
            .prop_filter_map("a window must open", |(z, change, offset, days, skips)| {
                let around = z.0.to_datetime(change).date();
                let hours = DAYS
                    .iter()
                    .zip(days)
                    .filter(|(_, r)| !r.is_empty())
                    .map(|(d, r)| ((*d).to_owned(), r))
                    .collect();
                let skip_dates = skips
                    .into_iter()
                    .map(|n| around.checked_add(n.days()).map(|d| d.to_string()))
                    .collect::<Result<_, _>>()
                    .ok()?;
                let w = CallingWindow::try_from(WindowSpec {
                    timezone: "UTC".to_owned(),
                    hours,
                    skip_dates,
                })
                .ok()?;
                let t = Timestamp::from_millis(change.as_millisecond() + offset);
                Some((w, t, z))
            })
    })
}

const MINUTE: i64 = 60_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_next_opening_is_open_and_never_before_the_due_time(
        (w, t, z) in arb_case(),
    ) {
        let next = w.next_opening(t, &z);
        prop_assert!(next >= t);
        prop_assert!(w.is_open(next, &z), "{next} not open");
        prop_assert_eq!(next == t, w.is_open(t, &z));
        prop_assert_eq!(w.next_opening(next, &z), next);
    }

    #[test]
    fn is_open_agrees_with_the_wall_clock_outside_repeated_hours(
        (w, t, z) in arb_case(),
    ) {
        let jt = jiff::Timestamp::from_millisecond(t.as_millis()).unwrap();
        let local = z.0.to_datetime(jt);
        // In a repeated hour the wall clock reads the same time twice, and the window
        // deliberately stays with the first pass (see the module documentation).
        prop_assume!(!z.0.to_ambiguous_timestamp(local).is_ambiguous());
        let date = local.date();
        let minute = u16::try_from(local.hour()).unwrap() * 60
            + u16::try_from(local.minute()).unwrap();
        let wall_clock = !w.skip_dates.contains(&(date.year(), date.month(), date.day()))
            && w.hours[day_index(date.weekday())]
                .iter()
                .any(|&(start, end)| start <= minute && minute < end);
        prop_assert_eq!(w.is_open(t, &z), wall_clock, "{}", local);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn nothing_between_the_due_time_and_the_next_opening_is_open(
        (w, t, z) in arb_case(),
    ) {
        let next = w.next_opening(t, &z);
        // Every boundary is a whole minute (or a transition, also whole minutes in these
        // zones), so checking each minute for two days covers every span that could
        // start inside it.
        let first_minute = t.as_millis().div_euclid(MINUTE) * MINUTE + MINUTE;
        let horizon = next.as_millis().min(t.as_millis() + 2 * 86_400_000);
        prop_assert!(next == t || !w.is_open(t, &z));
        let mut m = first_minute;
        while m < horizon {
            prop_assert!(!w.is_open(Timestamp::from_millis(m), &z), "open at {m} before {next}");
            m += MINUTE;
        }
    }
}
