use super::*;
use crate::window::{ZoneSource, zone_for};

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

fn window(json: &str) -> CallingWindow {
    serde_json::from_str(json).unwrap()
}

fn hours(json: &str) -> BTreeMap<String, Vec<String>> {
    serde_json::from_str(json).unwrap()
}

const FLORIDA: &str = "+13055550100";
const NEW_YORK: &str = "+12125550100";
const TORONTO: &str = "+14165550100";
const JAMAICA: &str = "+18765550100";
const PARIS: &str = "+33123456789";

/// The next lawful instant with no campaign window.
fn next(n: &str, t: &str, z: &str) -> Option<Timestamp> {
    LegalHours::builtin().next_lawful(&number(n), None, at(t), &zone(z))
}

fn open(n: &str, t: &str, z: &str) -> bool {
    LegalHours::builtin().is_open(&number(n), at(t), &zone(z))
}

#[test]
fn every_row_of_the_data_file_reads() {
    let table = parse(DATA).unwrap();
    let codes: Vec<&str> = table.rules.iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        ["US", "US-FL", "US-MD", "US-OK", "US-WA", "CA", "FR"]
    );
    assert_eq!(table.default.code, "default");
    for rule in table.rules.iter().chain([&table.default]) {
        assert!(
            !rule.source.is_empty() && !rule.name.is_empty(),
            "{}",
            rule.code
        );
        assert!(
            rule.hours.iter().any(|day| !day.is_empty()),
            "{}",
            rule.code
        );
    }
    // Every rule but the default covers some numbers.
    for (i, rule) in table.rules.iter().enumerate() {
        assert!(table.prefixes.values().any(|&j| j == i), "{}", rule.code);
    }
    assert_eq!(table.longest, 4);
}

#[test]
fn a_malformed_data_file_is_refused_with_its_line() {
    let rule = "rule\tX\tX\tmon-fri 09:00-17:00\t-\tsomewhere\n";
    let default = "rule\tdefault\tD\tmon 09:00-17:00\t-\tus\n";
    for (data, expected) in [
        (rule.to_owned(), "no rule is coded `default`"),
        (
            format!("{rule}{default}{rule}"),
            "line 3: rule X is listed twice",
        ),
        (
            format!("{default}numbers\tY\t+1\t212\tNY\tNANPA\n"),
            "no rule is coded \"Y\"",
        ),
        (
            format!(
                "{rule}{default}numbers\tX\t+1\t212\tNY\tNANPA\nnumbers\tX\t+1\t212\tNY\tNANPA\n"
            ),
            "line 4: +1212 is already X's",
        ),
        (
            format!("{default}numbers\tdefault\t+44\t*\tUK\tITU\n"),
            "no rule is coded \"default\"",
        ),
        (
            "rule\tdefault\tD\tmon-fri 09:00-25:00\t-\tus\n".to_owned(),
            "line 1: window.hours.fri[0]",
        ),
        (
            "rule\tdefault\tD\tfri-mon 09:00-17:00\t-\tus\n".to_owned(),
            "runs backwards",
        ),
        (
            "rule\tdefault\tD\tmon 09:00-17:00; mon 18:00-19:00\t-\tus\n".to_owned(),
            "mon is given hours twice",
        ),
        (
            "rule\tdefault\tD\tmon 09:00-17:00\t02-30\tus\n".to_owned(),
            "\"02-30\"",
        ),
        (
            "rule\tdefault\tD\tmon 09:00-17:00\teaster\tus\n".to_owned(),
            "\"easter\"",
        ),
        (
            "rule\tdefault\tD\tmon 09:00-17:00\teaster+90\tus\n".to_owned(),
            "\"easter+90\"",
        ),
        (
            format!("{default}numbers\tdefault\t33\t*\tFR\tITU\n"),
            "not a country code",
        ),
        (
            format!("{default}numbers\tdefault\t+1\t2x2\tNY\tNANPA\n"),
            "not an area code",
        ),
        (
            "rule\tdefault\tD\tmon 09:00-17:00\n".to_owned(),
            "line 1: a row is",
        ),
    ] {
        let data: &'static str = Box::leak(data.into_boxed_str());
        let err = parse(data).unwrap_err();
        assert!(err.contains(expected), "{data:?}: {err}");
    }
}

#[test]
fn easter_is_computed_for_any_year() {
    for (year, month, day) in [
        (2024, 3, 31),
        (2025, 4, 20),
        (2026, 4, 5),
        (2027, 3, 28),
        (2030, 4, 21),
        (2000, 4, 23),
        // The latest and earliest dates Easter can fall on.
        (2038, 4, 25),
        (2285, 3, 22),
    ] {
        assert_eq!(
            easter(year),
            Some(Date::new(year, month, day).unwrap()),
            "{year}"
        );
    }
}

#[test]
fn a_number_finds_its_jurisdiction_by_its_digits() {
    let legal = LegalHours::builtin();
    for (n, code) in [
        (FLORIDA, "US-FL"),
        // Pensacola, in Central time, is Florida all the same.
        ("+18505550100", "US-FL"),
        ("+14105550100", "US-MD"),
        ("+14055550100", "US-OK"),
        ("+12065550100", "US-WA"),
        (NEW_YORK, "US"),
        ("+19075550100", "US"),
        ("+17875550100", "US"),
        ("+16715550100", "US"),
        (TORONTO, "CA"),
        ("+18675550100", "CA"),
        (PARIS, "FR"),
        ("+33612345678", "FR"),
        (JAMAICA, "default"),
        ("+12425550100", "default"),
        ("+18005550100", "default"),
        ("+442079460000", "default"),
        ("+3225550100", "default"),
    ] {
        assert_eq!(legal.jurisdiction(&number(n)).code, code, "{n}");
    }
    let fr = legal.jurisdiction(&number(PARIS));
    assert_eq!(fr.name, "France");
    assert!(fr.source.contains("D.223-9") && fr.source.contains("2022-1313"));
}

/// The zones the time-zone table gives to the plan's area codes, by the country they belong
/// to: every code that table places in the United States or Canada must have that country's
/// rules here, and every other member of the plan the default.
#[test]
fn the_area_codes_agree_with_the_zone_table() {
    const US: &[&str] = &[
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Phoenix",
        "America/Los_Angeles",
        "America/Detroit",
        "America/Indiana/Indianapolis",
        "America/Kentucky/Louisville",
        "Pacific/Honolulu",
        "America/Puerto_Rico",
        "America/St_Thomas",
        "Pacific/Guam",
        "Pacific/Saipan",
        "Pacific/Pago_Pago",
    ];
    const CANADA: &[&str] = &[
        "America/Edmonton",
        "America/Vancouver",
        "America/Winnipeg",
        "America/Moncton",
        "America/Halifax",
        "America/Toronto",
    ];
    let (legal, utc) = (LegalHours::builtin(), zone("UTC"));
    let mut settled = 0;
    for area in 200..1000 {
        let n = number(&format!("+1{area}5550100"));
        let (z, source) = zone_for(None, &n, &utc).unwrap();
        if source != ZoneSource::Number {
            continue;
        }
        settled += 1;
        let code = legal.jurisdiction(&n).code;
        let expected = if US.contains(&z.name()) {
            code == "US" || code.starts_with("US-")
        } else if CANADA.contains(&z.name()) {
            code == "CA"
        } else {
            code == "default"
        };
        assert!(expected, "{area} ({z}) is {code}");
        let state_zones: &[&str] = match code {
            "US-FL" => &["America/New_York", "America/Chicago"],
            "US-MD" => &["America/New_York"],
            "US-OK" => &["America/Chicago"],
            "US-WA" => &["America/Los_Angeles"],
            _ => continue,
        };
        assert!(state_zones.contains(&z.name()), "{area} ({z}) is {code}");
    }
    assert!(settled > 300, "{settled}");
}

#[test]
fn florida_closes_at_eight_in_the_evening_and_opens_at_eight() {
    let ny = "America/New_York";
    assert_eq!(
        next(FLORIDA, "2026-06-10T20:30-04:00", ny),
        Some(at("2026-06-11T08:00-04:00"))
    );
    assert_eq!(
        next(FLORIDA, "2026-06-10T07:59-04:00", ny),
        Some(at("2026-06-10T08:00-04:00"))
    );
    assert!(open(FLORIDA, "2026-06-10T19:59-04:00", ny));
    assert_eq!(
        next(FLORIDA, "2026-06-10T19:59-04:00", ny),
        Some(at("2026-06-10T19:59-04:00"))
    );
    assert!(!open(FLORIDA, "2026-06-10T20:00-04:00", ny));
}

#[test]
fn the_federal_rule_runs_from_eight_to_nine() {
    let ny = "America/New_York";
    assert!(open(NEW_YORK, "2026-06-10T20:30-04:00", ny));
    assert!(open(NEW_YORK, "2026-06-14T08:00-04:00", ny), "a Sunday");
    assert!(!open(NEW_YORK, "2026-06-10T21:00-04:00", ny));
    assert_eq!(
        next(NEW_YORK, "2026-06-10T21:00-04:00", ny),
        Some(at("2026-06-11T08:00-04:00"))
    );
}

#[test]
fn us_hours_stay_on_the_wall_clock_across_daylight_saving_changes() {
    let ny = "America/New_York";
    // 8 March 2026: New York skips from 02:00 to 03:00.
    assert_eq!(
        next(NEW_YORK, "2026-03-07T21:00-05:00", ny),
        Some(at("2026-03-08T08:00-04:00"))
    );
    assert!(!open(NEW_YORK, "2026-03-08T07:59-04:00", ny));
    assert!(open(NEW_YORK, "2026-03-08T20:59-04:00", ny));
    assert!(!open(NEW_YORK, "2026-03-08T21:00-04:00", ny));
    assert_eq!(
        next(FLORIDA, "2026-03-08T20:00-04:00", ny),
        Some(at("2026-03-09T08:00-04:00"))
    );
    // 1 November 2026: New York repeats 01:00-02:00.
    assert_eq!(
        next(NEW_YORK, "2026-10-31T21:30-04:00", ny),
        Some(at("2026-11-01T08:00-05:00"))
    );
    assert!(!open(NEW_YORK, "2026-11-01T01:30-04:00", ny));
    assert!(!open(NEW_YORK, "2026-11-01T01:30-05:00", ny));
    assert!(!open(NEW_YORK, "2026-11-01T07:59-05:00", ny));
    assert!(open(NEW_YORK, "2026-11-01T20:59-05:00", ny));
    assert_eq!(
        next(NEW_YORK, "2026-11-01T21:00-05:00", ny),
        Some(at("2026-11-02T08:00-05:00"))
    );
}

#[test]
fn french_hours_stay_on_the_wall_clock_across_daylight_saving_changes() {
    let paris = "Europe/Paris";
    // Clocks go forward on Sunday 29 March 2026 and back on Sunday 25 October 2026.
    assert_eq!(
        next(PARIS, "2026-03-27T20:30+01:00", paris),
        Some(at("2026-03-30T10:00+02:00"))
    );
    assert_eq!(
        next(PARIS, "2026-10-23T20:30+02:00", paris),
        Some(at("2026-10-26T10:00+01:00"))
    );
}

#[test]
fn france_allows_weekdays_from_ten_to_one_and_two_to_eight() {
    let paris = "Europe/Paris";
    assert!(open(PARIS, "2026-06-10T10:00+02:00", paris));
    assert!(open(PARIS, "2026-06-10T12:59+02:00", paris));
    assert!(!open(PARIS, "2026-06-10T09:59+02:00", paris));
    assert_eq!(
        next(PARIS, "2026-06-10T13:30+02:00", paris),
        Some(at("2026-06-10T14:00+02:00"))
    );
    // Friday evening waits for Monday morning.
    assert_eq!(
        next(PARIS, "2026-06-12T20:30+02:00", paris),
        Some(at("2026-06-15T10:00+02:00"))
    );
    assert!(!open(PARIS, "2026-06-13T11:00+02:00", paris), "a Saturday");
}

#[test]
fn france_never_calls_on_a_public_holiday() {
    let paris = "Europe/Paris";
    // Bastille Day 2026 is a Tuesday.
    assert!(!open(PARIS, "2026-07-14T11:00+02:00", paris));
    assert_eq!(
        next(PARIS, "2026-07-14T11:00+02:00", paris),
        Some(at("2026-07-15T10:00+02:00"))
    );
    // Easter 2026 is 5 April: Easter Monday, Ascension Day and Whit Monday follow from it.
    for (holiday, following) in [
        ("2026-04-06T11:00+02:00", "2026-04-07T10:00+02:00"),
        ("2026-05-14T11:00+02:00", "2026-05-15T10:00+02:00"),
        ("2026-05-25T11:00+02:00", "2026-05-26T10:00+02:00"),
        // 1 May 2026 is a Friday; so is 8 May.
        ("2026-05-01T11:00+02:00", "2026-05-04T10:00+02:00"),
        ("2026-05-08T11:00+02:00", "2026-05-11T10:00+02:00"),
    ] {
        assert!(!open(PARIS, holiday, paris), "{holiday}");
        assert_eq!(
            next(PARIS, holiday, paris),
            Some(at(following)),
            "{holiday}"
        );
    }
    // The day after a movable holiday is an ordinary day.
    assert!(open(PARIS, "2026-05-13T11:00+02:00", paris));
}

#[test]
fn canada_allows_weekday_evenings_and_shorter_weekends() {
    let toronto = "America/Toronto";
    assert!(open(TORONTO, "2026-06-10T21:29-04:00", toronto));
    assert_eq!(
        next(TORONTO, "2026-06-10T21:30-04:00", toronto),
        Some(at("2026-06-11T09:00-04:00"))
    );
    // Saturday 13 June 2026.
    assert_eq!(
        next(TORONTO, "2026-06-13T09:30-04:00", toronto),
        Some(at("2026-06-13T10:00-04:00"))
    );
    assert!(open(TORONTO, "2026-06-13T17:59-04:00", toronto));
    assert_eq!(
        next(TORONTO, "2026-06-13T18:00-04:00", toronto),
        Some(at("2026-06-14T10:00-04:00"))
    );
    assert!(open(TORONTO, "2026-06-14T12:00-04:00", toronto), "a Sunday");
}

#[test]
fn a_caribbean_number_gets_the_default() {
    let kingston = "America/Jamaica";
    assert_eq!(
        LegalHours::builtin().jurisdiction(&number(JAMAICA)).code,
        "default"
    );
    assert!(
        open(JAMAICA, "2026-06-13T09:00-05:00", kingston),
        "Saturday"
    );
    assert!(!open(JAMAICA, "2026-06-14T12:00-05:00", kingston), "Sunday");
    assert_eq!(
        next(JAMAICA, "2026-06-13T20:00-05:00", kingston),
        Some(at("2026-06-15T09:00-05:00"))
    );
}

#[test]
fn the_account_policy_replaces_the_default_and_nothing_else() {
    let legal = LegalHours::with_default(&hours(
        r#"{"sun": ["12:00-17:00"], "mon": ["10:00-11:00"]}"#,
    ))
    .unwrap();
    let (jm, ny) = (zone("America/Jamaica"), zone("America/New_York"));
    let jamaica = number(JAMAICA);
    assert_eq!(legal.jurisdiction(&jamaica).code, "default");
    assert!(legal.jurisdiction(&jamaica).source.contains("policy"));
    assert!(legal.is_open(&jamaica, at("2026-06-14T12:00-05:00"), &jm));
    assert!(!legal.is_open(&jamaica, at("2026-06-13T12:00-05:00"), &jm));
    assert_eq!(
        legal.next_lawful(&jamaica, None, at("2026-06-14T17:00-05:00"), &jm),
        Some(at("2026-06-15T10:00-05:00"))
    );
    // Florida's law is untouched.
    let florida = number(FLORIDA);
    assert_eq!(legal.jurisdiction(&florida).code, "US-FL");
    assert!(legal.is_open(&florida, at("2026-06-13T19:00-04:00"), &ny));
    // The built-in default is untouched too.
    assert!(open(JAMAICA, "2026-06-13T12:00-05:00", "America/Jamaica"));
}

#[test]
fn bad_policy_hours_name_the_field_at_fault() {
    for (json, field) in [
        (r#"{"sat": ["9-17"]}"#, "default_hours.sat[0]"),
        (r#"{"sat": ["17:00-09:00"]}"#, "default_hours.sat[0]"),
        (r#"{"funday": ["09:00-17:00"]}"#, "default_hours.funday"),
        (
            r#"{"mon": ["09:00-12:00", "11:00-13:00"]}"#,
            "default_hours.mon",
        ),
        (r#"{}"#, "default_hours"),
    ] {
        let err = LegalHours::with_default(&hours(json)).unwrap_err();
        assert_eq!(err.field, field, "{json}");
        let message = err.to_string();
        assert!(message.starts_with(&format!("{field}: ")), "{message}");
    }
}

#[test]
fn a_campaign_window_narrows_the_law_and_never_widens_it() {
    let every_day_9_to_9 = window(
        r#"{"timezone":"America/New_York","hours":{"mon":["09:00-21:00"],"tue":["09:00-21:00"],"wed":["09:00-21:00"],"thu":["09:00-21:00"],"fri":["09:00-21:00"],"sat":["09:00-21:00"],"sun":["09:00-21:00"]}}"#,
    );
    let (legal, ny, florida) = (
        LegalHours::builtin(),
        zone("America/New_York"),
        number(FLORIDA),
    );
    let lawful = |t: &str| legal.next_lawful(&florida, Some(&every_day_9_to_9), at(t), &ny);
    // The law opens at 08:00, the campaign at 09:00.
    assert_eq!(
        lawful("2026-06-10T08:30-04:00"),
        Some(at("2026-06-10T09:00-04:00"))
    );
    assert_eq!(
        lawful("2026-06-10T19:00-04:00"),
        Some(at("2026-06-10T19:00-04:00"))
    );
    // The campaign runs to 21:00, the law closes at 20:00.
    assert_eq!(
        lawful("2026-06-10T20:00-04:00"),
        Some(at("2026-06-11T09:00-04:00"))
    );
    // A window with breaks: the law's 14:00 reopening in France meets the window's 15:00.
    let afternoons =
        window(r#"{"timezone":"Europe/Paris","hours":{"mon":["12:00-13:30","15:00-16:00"]}}"#);
    let paris = zone("Europe/Paris");
    assert_eq!(
        legal.next_lawful(
            &number(PARIS),
            Some(&afternoons),
            at("2026-06-15T12:59+02:00"),
            &paris
        ),
        Some(at("2026-06-15T12:59+02:00"))
    );
    assert_eq!(
        legal.next_lawful(
            &number(PARIS),
            Some(&afternoons),
            at("2026-06-15T13:00+02:00"),
            &paris
        ),
        Some(at("2026-06-15T15:00+02:00"))
    );
}

#[test]
fn a_window_that_never_meets_the_law_gives_none() {
    let legal = LegalHours::builtin();
    let weekends = window(
        r#"{"timezone":"Europe/Paris","hours":{"sat":["09:00-18:00"],"sun":["10:00-18:00"]}}"#,
    );
    assert_eq!(
        legal.next_lawful(
            &number(PARIS),
            Some(&weekends),
            at("2026-06-10T11:00+02:00"),
            &zone("Europe/Paris")
        ),
        None
    );
    // The French lunch break, and the small hours in Florida.
    let lunch = window(r#"{"timezone":"Europe/Paris","hours":{"tue":["13:00-14:00"]}}"#);
    assert_eq!(
        legal.next_lawful(
            &number(PARIS),
            Some(&lunch),
            at("2026-06-10T11:00+02:00"),
            &zone("Europe/Paris")
        ),
        None
    );
    let early = window(r#"{"timezone":"America/New_York","hours":{"mon":["06:00-08:00"]}}"#);
    assert_eq!(
        legal.next_lawful(
            &number(FLORIDA),
            Some(&early),
            at("2026-06-10T11:00-04:00"),
            &zone("America/New_York")
        ),
        None
    );
}

#[test]
fn years_of_skipped_tuesdays_and_holidays_still_end_in_an_opening() {
    // The window opens on Tuesdays only and skips the 366 Tuesdays from 27 October 2026, up
    // to 25 October 2033; the next, 1 November 2033, is All Saints' Day.
    let first = Date::new(2026, 10, 27).unwrap();
    let skipped: Vec<String> = (0..366)
        .map(|week| {
            format!(
                "\"{}\"",
                first.checked_add(jiff::Span::new().weeks(week)).unwrap()
            )
        })
        .collect();
    let w = window(&format!(
        r#"{{"timezone":"Europe/Paris","hours":{{"tue":["10:00-11:00"]}},"skip_dates":[{}]}}"#,
        skipped.join(",")
    ));
    assert_eq!(
        LegalHours::builtin().next_lawful(
            &number(PARIS),
            Some(&w),
            at("2026-10-27T09:00+01:00"),
            &zone("Europe/Paris")
        ),
        Some(at("2033-11-08T10:00+01:00"))
    );
}

#[test]
fn outside_jiffs_range_nothing_is_open() {
    let (legal, ny) = (LegalHours::builtin(), zone("America/New_York"));
    let end = Timestamp::from_millis(i64::MAX);
    assert!(!legal.is_open(&number(NEW_YORK), end, &ny));
    assert_eq!(legal.next_lawful(&number(NEW_YORK), None, end, &ny), None);
}

/// Every 7 minutes across two weeks holding a daylight-saving change, for each rule: the
/// next lawful instant is the instant itself exactly when the law allows it, is always
/// lawful, and nothing lawful lies before it.
#[test]
fn is_open_and_next_lawful_agree_minute_by_minute() {
    let legal = LegalHours::builtin();
    for (n, z, from) in [
        (NEW_YORK, "America/New_York", "2026-10-26T00:00-04:00"),
        (FLORIDA, "America/New_York", "2026-03-02T00:00-05:00"),
        (TORONTO, "America/Toronto", "2026-03-02T00:00-05:00"),
        (PARIS, "Europe/Paris", "2026-03-23T00:00+01:00"),
        (JAMAICA, "America/Jamaica", "2026-06-08T00:00-05:00"),
    ] {
        let (n, z, from) = (number(n), zone(z), at(from));
        let step = std::time::Duration::from_secs(7 * 60);
        let mut t = from;
        while t < from.plus(std::time::Duration::from_secs(14 * 86_400)) {
            let next = legal.next_lawful(&n, None, t, &z).unwrap();
            assert_eq!(legal.is_open(&n, t, &z), next == t, "{n:?} at {t}");
            assert!(legal.is_open(&n, next, &z), "{n:?} at {t}: {next}");
            let before = Timestamp::from_millis(next.as_millis() - 60_000);
            if before >= t {
                assert!(!legal.is_open(&n, before, &z), "{n:?} at {t}: {next}");
            }
            t = t.plus(step);
        }
    }
}
