//! Legal calling hours: the hours at which the law lets a number be called, whatever the
//! campaign asks for.
//!
//! Each number is governed by one [`Jurisdiction`], found from its digits alone: a country
//! code, or a North American area code (a US state with a stricter law than the federal one,
//! the rest of the United States and its territories, Canada). The rules and the numbers
//! they cover are data, in `core/data/calling-hours.tsv`, each rule with its legal source.
//! A number no rule covers gets the default: outdial's conservative Monday-to-Saturday
//! 09:00-20:00 (no law says so), which an account's policy may replace
//! ([`LegalHours::with_default`]).
//!
//! The law is a floor: a campaign's window can only narrow it. [`LegalHours::next_lawful`]
//! finds the first instant both allow.
//!
//! Hours are read in the callee's local civil time, in the zone the caller passes (the
//! callee's, as [`crate::window::zone_for`] finds it), with exactly the daylight-saving
//! semantics of a [`CallingWindow`]: a boundary inside a spring-forward gap is the end of the
//! gap, one inside a fall-back overlap its first pass. Holidays (France's) are local dates,
//! Easter's among them computed, so the rules never run out.
//!
//! `docs/calling-hours.md` says where each rule comes from and what outdial cannot know (a
//! mobile's owner may live elsewhere; a ported number keeps its area code).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use jiff::civil::Date;

use crate::ids::E164;
use crate::time::Timestamp;
use crate::window::{self, CallingWindow, MAX_SKIP_DATES, WeekHours, Zone};

/// The most holidays one rule may list: it bounds [`LegalHours::next_lawful`]'s search.
pub const MAX_HOLIDAYS: usize = 16;

/// Which body of rules governs a number's calling hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jurisdiction {
    /// `US` (federal), `US-FL` (a state), `CA`, `FR`, or `default`.
    pub code: &'static str,
    /// For people: `Florida`, `Canada`.
    pub name: &'static str,
    /// The law the hours come from, cited (or, for the default, what it is instead).
    pub source: &'static str,
    /// Weekly hours in local civil time.
    hours: WeekHours,
    /// Local dates with no calling at all.
    holidays: Vec<Holiday>,
}

/// A date a rule closes every year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holiday {
    /// Month and day.
    Fixed(i8, i8),
    /// Days from (Gregorian) Easter Sunday; within 60 days either way, so always the same year.
    Easter(i16),
}

impl Jurisdiction {
    fn is_holiday(&self, date: Date) -> bool {
        if self.holidays.is_empty() {
            return false;
        }
        let from_easter =
            easter(date.year()).map(|e| i32::from(date.day_of_year()) - i32::from(e.day_of_year()));
        self.holidays.iter().any(|h| match *h {
            Holiday::Fixed(month, day) => date.month() == month && date.day() == day,
            Holiday::Easter(days) => from_easter == Some(i32::from(days)),
        })
    }
}

/// The legal hours outdial knows, and the default for numbers no rule covers.
#[derive(Debug, Clone)]
pub struct LegalHours {
    table: &'static Table,
    default: Jurisdiction,
}

/// Why an account policy's default hours were refused; the message names the field at
/// fault, as in `default_hours.sat[0]`.
///
/// Its own type, not the window's `WindowError`, only so that the message does not begin
/// with `window.`: the hours are the policy's, read by the window's parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DefaultHoursError {
    pub field: String,
    pub reason: String,
}

/// The policy field [`LegalHours::with_default`]'s errors are named under.
pub const DEFAULT_HOURS_FIELD: &str = "default_hours";

static BUILTIN: LazyLock<LegalHours> = LazyLock::new(|| LegalHours {
    table: &TABLE,
    default: TABLE.default.clone(),
});

impl LegalHours {
    /// The rules of `core/data/calling-hours.tsv`, with its conservative default.
    #[must_use]
    pub fn builtin() -> &'static Self {
        &BUILTIN
    }

    /// The built-in rules with the account policy's default in place of outdial's, for the
    /// numbers no rule covers. `hours` has the wire form of a calling window's `hours`
    /// (`{"mon": ["09:00-20:00"], ...}`; a day left out has no calling).
    ///
    /// # Errors
    /// [`DefaultHoursError`] naming the field at fault under [`DEFAULT_HOURS_FIELD`]: an
    /// unknown day, a malformed or empty range, overlapping ranges, or hours that never open.
    pub fn with_default(hours: &BTreeMap<String, Vec<String>>) -> Result<Self, DefaultHoursError> {
        let hours =
            window::parse_hours(hours, DEFAULT_HOURS_FIELD).map_err(|e| DefaultHoursError {
                field: e.field,
                reason: e.reason,
            })?;
        Ok(Self {
            table: &TABLE,
            default: Jurisdiction {
                code: "default",
                name: "Default (account policy)",
                source: "the account policy's default hours, in place of outdial's own",
                hours,
                holidays: Vec::new(),
            },
        })
    }

    /// The jurisdiction whose rules govern `number`: the rule covering the longest prefix of
    /// its digits, else the default.
    #[must_use]
    pub fn jurisdiction(&self, number: &E164) -> &Jurisdiction {
        let digits = number.as_str().trim_start_matches('+');
        (1..=self.table.longest.min(digits.len()))
            .rev()
            .filter_map(|len| digits.get(..len))
            .find_map(|prefix| self.table.prefixes.get(prefix))
            .and_then(|&i| self.table.rules.get(i))
            .unwrap_or(&self.default)
    }

    /// Whether the law allows calling `number` at `at` in `zone` (the callee's zone).
    ///
    /// Always false for an instant outside Jiff's range (the years -9999 to 9999).
    #[must_use]
    pub fn is_open(&self, number: &E164, at: Timestamp, zone: &Zone) -> bool {
        let Some((t, today)) = window::local(at, zone) else {
            return false;
        };
        // As for a window: no span of an earlier local date holds `at`, and today's or
        // tomorrow's may (where the clocks go back across midnight).
        spans(self.jurisdiction(number), None, zone, today, 2)
            .take_while(|(start, _)| *start <= t)
            .any(|(_, end)| t < end)
    }

    /// The first instant at or after `at` at which both the law and the campaign's window
    /// (when it has one) allow calling `number` in `zone`: `at` itself when both allow it
    /// then.
    ///
    /// `None` when they never meet: when the window's weekly hours share no minute with the
    /// law's (a window open only on Sundays, for a French number), found at once, or when no
    /// opening turns up within [`SEARCH_DAYS`] local dates (almost eleven years). The search
    /// always finds one when they share a weekly minute, since that weekday recurs more often
    /// in the span than the window's skip dates, the rule's holidays and the daylight-saving
    /// gaps can remove; only an instant near the end of Jiff's range (year 9999), or outside
    /// it, gives `None` there.
    ///
    /// The search walks local dates and, on each, the intersection of the law's ranges with
    /// the window's: a handful of steps per day and no allocation.
    #[must_use]
    pub fn next_lawful(
        &self,
        number: &E164,
        campaign: Option<&CallingWindow>,
        at: Timestamp,
        zone: &Zone,
    ) -> Option<Timestamp> {
        let law = self.jurisdiction(number);
        if campaign.is_some_and(|w| !meets(law, w)) {
            return None;
        }
        let (t, today) = window::local(at, zone)?;
        spans(law, campaign, zone, today, SEARCH_DAYS)
            .find(|(_, end)| *end > t)
            .map(|(start, _)| Timestamp::from_millis(start.max(t).as_millisecond()))
    }
}

/// How many local dates [`LegalHours::next_lawful`] searches. A weekday on which the law and
/// a window share hours recurs once a week; in this many days it recurs more often than it
/// can be lost: to the window's skip dates ([`MAX_SKIP_DATES`]), to holidays and to a
/// spring-forward gap swallowing the shared hours ([`MAX_HOLIDAYS`] and one gap for each of
/// the at most 12 calendar years the span touches), and to today being over. Almost eleven
/// years.
pub const SEARCH_DAYS: usize = (MAX_SKIP_DATES + 12 * (MAX_HOLIDAYS + 1) + 2) * 7;

/// A whole day, the window of a campaign without one.
const WHOLE_DAY: &[(u16, u16)] = &[(0, 24 * 60)];

/// Whether the law's weekly hours and the window's share a minute on some weekday. When they
/// do not, no instant is in both: boundaries never resolve a later local time to an earlier
/// instant, so spans of disjoint local ranges are disjoint.
fn meets(law: &Jurisdiction, campaign: &CallingWindow) -> bool {
    law.hours.iter().enumerate().any(|(day, ranges)| {
        ranges.iter().any(|&(a, b)| {
            campaign
                .ranges(day)
                .iter()
                .any(|&(c, d)| a.max(c) < b.min(d))
        })
    })
}

/// The spans of instants at which both `law` and `campaign` allow calling, in order, for
/// `days` local dates from `from`.
///
/// Each is the span of a local range common to both on one date: by the boundary rule, the
/// span of an intersection of local ranges is the intersection of their spans, and ranges of
/// different dates never overlap, so this is the whole intersection. Ranges are sorted and
/// disjoint, so intersecting the law's in order with the window's keeps the spans in order.
fn spans<'a>(
    law: &'a Jurisdiction,
    campaign: Option<&'a CallingWindow>,
    zone: &'a Zone,
    from: Date,
    days: usize,
) -> impl Iterator<Item = (jiff::Timestamp, jiff::Timestamp)> + 'a {
    std::iter::successors(Some(from), |d| d.tomorrow().ok())
        .take(days)
        .filter(move |d| !law.is_holiday(*d) && !campaign.is_some_and(|w| w.skips(*d)))
        .flat_map(move |date| {
            let day = window::day_index(date.weekday());
            let allowed = campaign.map_or(WHOLE_DAY, |w| w.ranges(day));
            law.hours[day]
                .iter()
                .flat_map(move |&(a, b)| {
                    allowed.iter().filter_map(move |&(c, d)| {
                        let (start, end) = (a.max(c), b.min(d));
                        (start < end).then_some((start, end))
                    })
                })
                .filter_map(move |(start, end)| {
                    Some((
                        window::boundary(zone.tz(), date, start)?,
                        window::boundary(zone.tz(), date, end)?,
                    ))
                })
        })
        .filter(|(start, end)| start < end)
}

/// Easter Sunday of `year` in the Gregorian calendar, by the anonymous computus (the form
/// published by Meeus): the paschal full moon from the year's place in the 19-year lunar
/// cycle, corrected for the century's leap-day and lunar drift, then the Sunday after it.
fn easter(year: i16) -> Option<Date> {
    let y = i32::from(year);
    let golden = y.rem_euclid(19);
    let (century, in_century) = (y.div_euclid(100), y.rem_euclid(100));
    let skipped_leaps = century.div_euclid(4);
    let lunar_fix = (century - (century + 8).div_euclid(25) + 1).div_euclid(3);
    // Days from 21 March to the paschal full moon, roughly.
    let moon = (19 * golden + century - skipped_leaps - lunar_fix + 15).rem_euclid(30);
    // Days from that full moon to the following Sunday.
    let to_sunday = (32 + 2 * century.rem_euclid(4) + 2 * in_century.div_euclid(4)
        - moon
        - in_century.rem_euclid(4))
    .rem_euclid(7);
    let late = (golden + 11 * moon + 22 * to_sunday).div_euclid(451);
    let days = moon + to_sunday - 7 * late + 114;
    let month = i8::try_from(days.div_euclid(31)).ok()?;
    let day = i8::try_from(days.rem_euclid(31) + 1).ok()?;
    Date::new(year, month, day).ok()
}

/// The rules of the data file, read once.
#[derive(Debug)]
struct Table {
    rules: Vec<Jurisdiction>,
    default: Jurisdiction,
    /// The digits after `+` a rule covers, to its index in `rules`.
    prefixes: HashMap<String, usize>,
    /// The longest prefix's length.
    longest: usize,
}

const DATA: &str = include_str!("../data/calling-hours.tsv");

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    parse(DATA)
        .unwrap_or_else(|e| unreachable!("core/data/calling-hours.tsv is checked by a test: {e}"))
});

/// Reads the data file (its header says the format).
fn parse(data: &'static str) -> Result<Table, String> {
    let mut rules = Vec::new();
    let mut default = None;
    let mut numbers = Vec::new();
    for (n, line) in data.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        let fields: Vec<&'static str> = line.split('\t').collect();
        match fields[..] {
            ["rule", code, name, hours, holidays, source] => {
                if [code, name, source].iter().any(|f| f.trim().is_empty()) {
                    return Err(at("a rule has a code, a name and a source".into()));
                }
                let rule = Jurisdiction {
                    code,
                    name,
                    source,
                    hours: week(hours).map_err(at)?,
                    holidays: holiday_list(holidays).map_err(at)?,
                };
                if rules
                    .iter()
                    .chain(&default)
                    .any(|r: &Jurisdiction| r.code == code)
                {
                    return Err(at(format!("rule {code} is listed twice")));
                }
                if code == "default" {
                    default = Some(rule);
                } else {
                    rules.push(rule);
                }
            }
            ["numbers", code, country, codes, place, source] => {
                if place.trim().is_empty() || source.trim().is_empty() {
                    return Err(at("a numbers row names its place and its source".into()));
                }
                let country = country
                    .strip_prefix('+')
                    .filter(|c| is_digits(c) && !c.starts_with('0'))
                    .ok_or_else(|| at(format!("{country:?} is not a country code like +33")))?;
                let prefixes: Vec<String> = if codes == "*" {
                    vec![country.to_owned()]
                } else {
                    codes
                        .split(' ')
                        .map(|c| {
                            is_digits(c)
                                .then(|| format!("{country}{c}"))
                                .ok_or_else(|| at(format!("{c:?} is not an area code")))
                        })
                        .collect::<Result<_, _>>()?
                };
                numbers.push((n + 1, code, prefixes));
            }
            _ => {
                return Err(at(
                    "a row is `rule` or `numbers` and 5 more tab-separated fields".into(),
                ));
            }
        }
    }
    let default = default.ok_or("no rule is coded `default`")?;
    let mut prefixes = HashMap::new();
    for (line, code, list) in numbers {
        let i = rules
            .iter()
            .position(|r| r.code == code)
            .ok_or_else(|| format!("line {line}: no rule is coded {code:?}"))?;
        for prefix in list {
            if let Some(j) = prefixes.insert(prefix.clone(), i) {
                let other = rules.get(j).map_or("", |r| r.code);
                return Err(format!("line {line}: +{prefix} is already {other}'s"));
            }
        }
    }
    let longest = prefixes.keys().map(String::len).max().unwrap_or(0);
    Ok(Table {
        rules,
        default,
        prefixes,
        longest,
    })
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A rule's hours, `mon-fri 10:00-13:00,14:00-20:00; sat 10:00-12:00`, read by the window's
/// parser.
fn week(spec: &str) -> Result<WeekHours, String> {
    let mut hours: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for group in spec.split(';').map(str::trim) {
        let (days, ranges) = group
            .split_once(' ')
            .ok_or_else(|| format!("{group:?} is days, a space, then ranges"))?;
        for day in days_of(days)? {
            let ranges = ranges.split(',').map(|r| r.trim().to_owned()).collect();
            if hours.insert(day.to_owned(), ranges).is_some() {
                return Err(format!("{day} is given hours twice"));
            }
        }
    }
    window::parse_hours(&hours, "hours").map_err(|e| e.to_string())
}

/// `mon-fri`, `sat,sun` or `tue` as weekday names.
fn days_of(spec: &str) -> Result<Vec<&'static str>, String> {
    let index = |d: &str| {
        window::DAYS
            .iter()
            .position(|x| *x == d)
            .ok_or_else(|| format!("{d:?} is not a day (mon ... sun)"))
    };
    let mut days = Vec::new();
    for part in spec.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (index(a)?, index(b)?),
            None => (index(part)?, index(part)?),
        };
        if last < first {
            return Err(format!("{part:?} runs backwards"));
        }
        days.extend(
            window::DAYS
                .get(first..=last)
                .unwrap_or_default()
                .iter()
                .copied(),
        );
    }
    Ok(days)
}

/// A rule's holidays: `-`, or `MM-DD` and `easter+N` / `easter-N` separated by spaces.
fn holiday_list(spec: &str) -> Result<Vec<Holiday>, String> {
    if spec == "-" {
        return Ok(Vec::new());
    }
    let list = spec
        .split(' ')
        .map(|h| {
            let bad = || format!("{h:?} is not MM-DD, easter+N or easter-N");
            if let Some(offset) = h.strip_prefix("easter") {
                let days: i16 = offset.parse().map_err(|_| bad())?;
                let signed = offset.starts_with('+') || offset.starts_with('-');
                return (signed && days.abs() <= 60)
                    .then_some(Holiday::Easter(days))
                    .ok_or_else(bad);
            }
            let (month, day) = h.split_once('-').ok_or_else(bad)?;
            let (month, day): (i8, i8) = (
                month.parse().map_err(|_| bad())?,
                day.parse().map_err(|_| bad())?,
            );
            // A leap year, so that 02-29 is a date (closed only in leap years).
            Date::new(2024, month, day).map_err(|_| bad())?;
            Ok(Holiday::Fixed(month, day))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if list.len() > MAX_HOLIDAYS {
        return Err(format!("at most {MAX_HOLIDAYS} holidays a rule"));
    }
    Ok(list)
}

#[cfg(test)]
mod tests;
