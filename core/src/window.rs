//! Calling windows: when a contact may be called, in their time zone.
//!
//! A campaign may say on which days and at which hours its contacts may be called, in each
//! contact's own time zone, and which dates to skip. A call due outside its window waits for
//! the next opening.
//!
//! The spec's wire form:
//!
//! ```json
//! {"timezone": "America/New_York",
//!  "hours": {"mon": ["09:00-20:00"], "sat": ["10:00-12:00", "14:00-16:00"]},
//!  "skip_dates": ["2026-12-25"]}
//! ```
//!
//! `timezone` is the zone of contacts whose own zone is neither given nor derivable from
//! their number; a day missing from `hours` has no calling at all.
//!
//! A contact's [`Zone`] comes from [`zone_for`]: the zone given with the contact, else the
//! one its number settles (`window/zones.rs` says which numbers do, and why the others do
//! not), else the campaign's `timezone`.
//!
//! Ranges and skip dates are read in the contact's local civil time, so "09:00" stays 09:00
//! on the wall across daylight-saving changes. Each range of each date stands for the span of
//! instants from the first instant the local clock reads its start (or later) to the first
//! instant it reads its end (or later). That one rule settles the odd cases:
//!
//! - a boundary inside a spring-forward gap is the end of the gap, the first valid instant
//!   after it (a 02:30 start on a night that skips from 02:00 to 03:00 opens at 03:00);
//! - a boundary inside a fall-back overlap is its first pass, the earlier instant (a range
//!   starting at 01:30 on a night that repeats 01:00-02:00 opens at the first 01:30 and stays
//!   open through the repeated hour; one ending at 01:30 closes at the first 01:30);
//! - an end of `24:00` is local midnight starting the next day.
//!
//! Away from overlaps this is exactly "the wall clock reads a time inside a range on a date
//! that is not skipped".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde::{Deserialize, Serialize};

use crate::ids::E164;
use crate::time::Timestamp;

mod zones;

/// The days of the week, as the spec names them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The most ranges one day may have, and the most dates a campaign may skip.
pub const MAX_RANGES_PER_DAY: usize = 8;
pub const MAX_SKIP_DATES: usize = 366;

/// A validated calling window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowSpec", into = "WindowSpec")]
pub struct CallingWindow {
    timezone: String,
    /// `timezone`, looked up once.
    zone: Zone,
    /// Per weekday (Monday first), the allowed ranges as minutes of the local day,
    /// `[start, end)`, sorted and not overlapping.
    hours: [Vec<(u16, u16)>; 7],
    /// Local dates with no calling at all, as `(year, month, day)`.
    skip_dates: BTreeSet<(i16, i8, i8)>,
}

/// The wire form of a [`CallingWindow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub timezone: String,
    pub hours: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_dates: Vec<String>,
}

/// Why a window spec was refused; the message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("window.{field}: {reason}")]
pub struct WindowError {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> WindowError {
    WindowError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// `HH:MM` as minutes of the day; `24:00` is the end of the day.
fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn civil_date(s: &str) -> Option<(i16, i8, i8)> {
    let date: jiff::civil::Date = s.parse().ok()?;
    Some((date.year(), date.month(), date.day()))
}

/// Hours per weekday (Monday first) as minutes of the local day, `[start, end)`, sorted and
/// not overlapping.
pub(crate) type WeekHours = [Vec<(u16, u16)>; 7];

/// Reads `hours` in a window's wire form (`{"mon": ["09:00-20:00"]}`); errors name their field
/// under `field`, as in `hours.mon[0]`. Hours that never open are refused.
pub(crate) fn parse_hours(
    hours: &BTreeMap<String, Vec<String>>,
    field: &str,
) -> Result<WeekHours, WindowError> {
    let mut week: WeekHours = Default::default();
    for (day, ranges) in hours {
        let Some(i) = DAYS.iter().position(|d| d == day) else {
            return Err(invalid(
                format!("{field}.{day}"),
                "days are mon, tue, wed, thu, fri, sat, sun",
            ));
        };
        if ranges.len() > MAX_RANGES_PER_DAY {
            return Err(invalid(
                format!("{field}.{day}"),
                format!("at most {MAX_RANGES_PER_DAY} ranges a day"),
            ));
        }
        let mut parsed = Vec::with_capacity(ranges.len());
        for (j, range) in ranges.iter().enumerate() {
            let range_field = format!("{field}.{day}[{j}]");
            let (start, end) = range
                .split_once('-')
                .and_then(|(a, b)| Some((minutes(a.trim())?, minutes(b.trim())?)))
                .ok_or_else(|| invalid(&range_field, "a range is \"HH:MM-HH:MM\""))?;
            if end <= start {
                return Err(invalid(&range_field, "the end must be after the start"));
            }
            parsed.push((start, end));
        }
        parsed.sort_unstable();
        if parsed.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(invalid(format!("{field}.{day}"), "ranges overlap"));
        }
        week[i] = parsed;
    }
    if week.iter().all(Vec::is_empty) {
        return Err(invalid(field, "the window never opens"));
    }
    Ok(week)
}

impl TryFrom<WindowSpec> for CallingWindow {
    type Error = WindowError;

    fn try_from(spec: WindowSpec) -> Result<Self, Self::Error> {
        let zone = Zone::get(&spec.timezone).map_err(|e| invalid("timezone", e.to_string()))?;
        let hours = parse_hours(&spec.hours, "hours")?;
        if spec.skip_dates.len() > MAX_SKIP_DATES {
            return Err(invalid(
                "skip_dates",
                format!("at most {MAX_SKIP_DATES} dates"),
            ));
        }
        let mut skip_dates = BTreeSet::new();
        for (j, d) in spec.skip_dates.iter().enumerate() {
            let date = civil_date(d)
                .ok_or_else(|| invalid(format!("skip_dates[{j}]"), "a date is YYYY-MM-DD"))?;
            skip_dates.insert(date);
        }
        Ok(Self {
            timezone: spec.timezone,
            zone,
            hours,
            skip_dates,
        })
    }
}

fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

impl From<CallingWindow> for WindowSpec {
    fn from(w: CallingWindow) -> Self {
        let hours = DAYS
            .iter()
            .zip(&w.hours)
            .filter(|(_, r)| !r.is_empty())
            .map(|(day, ranges)| {
                let ranges = ranges
                    .iter()
                    .map(|(a, b)| format!("{}-{}", hhmm(*a), hhmm(*b)))
                    .collect();
                ((*day).to_owned(), ranges)
            })
            .collect();
        let skip_dates = w
            .skip_dates
            .iter()
            .map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
            .collect();
        Self {
            timezone: w.timezone,
            hours,
            skip_dates,
        }
    }
}

impl CallingWindow {
    /// The zone of contacts whose own zone is unknown, as the spec names it.
    #[must_use]
    pub fn timezone(&self) -> &str {
        &self.timezone
    }

    /// [`Self::timezone`] as a zone: the default for [`zone_for`].
    #[must_use]
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Whether a call may be placed at `at` to a contact in `zone`.
    ///
    /// Always false for an instant outside Jiff's range (the years -9999 to 9999).
    #[must_use]
    pub fn is_open(&self, at: Timestamp, zone: &Zone) -> bool {
        let Some((at, today)) = local(at, zone) else {
            return false;
        };
        // A range belongs to one local date, but where the clocks go back across midnight,
        // the repeated minutes before midnight come after the next date has begun, and lie
        // inside its ranges' spans. No span holds instants of a later local date.
        self.spans(zone, today, 2)
            .take_while(|(start, _)| *start <= at)
            .any(|(_, end)| at < end)
    }

    /// The earliest instant at or after `at` at which the window is open for a contact in
    /// `zone`: `at` itself when the window is open then, so `next_opening(t) == t` exactly
    /// when `is_open(t)`.
    ///
    /// The search covers about seven years of local dates from `at`'s, which always finds the
    /// opening: the window opens on at least one weekday and at most [`MAX_SKIP_DATES`]
    /// dates are skipped, so that weekday recurs unskipped within the span. Only when it does
    /// not (an instant near the end of Jiff's range, year 9999) is the result `at` moved
    /// forward by the span: a later instant at which the caller asks again, which need not
    /// be open.
    #[must_use]
    pub fn next_opening(&self, at: Timestamp, zone: &Zone) -> Timestamp {
        local(at, zone)
            .and_then(|(t, today)| {
                self.spans(zone, today, SEARCH_DAYS)
                    .find(|(_, end)| *end > t)
                    .map(|(start, _)| start.max(t))
            })
            .map_or_else(
                || at.plus(SEARCH_SPAN),
                |t| Timestamp::from_millis(t.as_millisecond()),
            )
    }

    /// The ranges of a weekday ([`day_index`]), for the legal hours to intersect with.
    pub(crate) fn ranges(&self, day: usize) -> &[(u16, u16)] {
        self.hours.get(day).map_or(&[], Vec::as_slice)
    }

    /// Whether `date` is one of the skipped dates.
    pub(crate) fn skips(&self, date: Date) -> bool {
        self.skip_dates
            .contains(&(date.year(), date.month(), date.day()))
    }

    /// The spans of instants during which the window is open, in order, for `days` local
    /// dates from `from`. Spans never overlap: a later boundary never resolves to an earlier
    /// instant. A range that resolves to nothing (wholly inside a gap) yields no span.
    fn spans<'a>(
        &'a self,
        zone: &'a Zone,
        from: Date,
        days: usize,
    ) -> impl Iterator<Item = (jiff::Timestamp, jiff::Timestamp)> + 'a {
        std::iter::successors(Some(from), |d| d.tomorrow().ok())
            .take(days)
            .filter(|d| !self.skip_dates.contains(&(d.year(), d.month(), d.day())))
            .flat_map(move |date| {
                self.hours[day_index(date.weekday())]
                    .iter()
                    .filter_map(move |&(start, end)| {
                        Some((
                            boundary(&zone.0, date, start)?,
                            boundary(&zone.0, date, end)?,
                        ))
                    })
            })
            .filter(|(start, end)| start < end)
    }
}

/// How many local dates [`CallingWindow::next_opening`] searches: with at most
/// [`MAX_SKIP_DATES`] dates skipped, each weekday recurs unskipped at least three times in
/// this many days (one may be today and already over, one may fall wholly inside a DST gap).
/// About seven years.
const SEARCH_DAYS: usize = (MAX_SKIP_DATES + 3) * 7;

const SEARCH_SPAN: Duration = Duration::from_secs(SEARCH_DAYS as u64 * 86_400);

/// When a call due at `at` may be placed to a contact in `zone`: `at` itself when the
/// campaign has no window, else [`CallingWindow::next_opening`].
#[must_use]
pub fn next_opening_for(window: Option<&CallingWindow>, at: Timestamp, zone: &Zone) -> Timestamp {
    window.map_or(at, |w| w.next_opening(at, zone))
}

/// `at` in Jiff's terms, with its local date in `zone`.
pub(crate) fn local(at: Timestamp, zone: &Zone) -> Option<(jiff::Timestamp, Date)> {
    let t = jiff::Timestamp::from_millisecond(at.as_millis()).ok()?;
    Some((t, zone.0.to_datetime(t).date()))
}

/// The index into `hours` (Monday first, like [`DAYS`]).
pub(crate) fn day_index(day: Weekday) -> usize {
    match day {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

/// The first instant at which the clocks of `tz` read `minute` (of the local `date`, where
/// `24 * 60` is the next midnight) or later. See the module documentation for why.
pub(crate) fn boundary(tz: &TimeZone, date: Date, minute: u16) -> Option<jiff::Timestamp> {
    let (date, minute) = if minute >= 24 * 60 {
        (date.tomorrow().ok()?, 0)
    } else {
        (date, minute)
    };
    let hour = i8::try_from(minute / 60).ok()?;
    let minute = i8::try_from(minute % 60).ok()?;
    let dt = DateTime::from_parts(date, Time::new(hour, minute, 0, 0).ok()?);
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the gap, the time is an instant before the jump;
            // the next transition from there is the jump itself.
            let before_gap = after.to_timestamp(dt).ok()?;
            tz.following(before_gap).next().map(|t| t.timestamp())
        }
    }
}

/// A time zone from the IANA database compiled into the binary. Never the host's zoneinfo:
/// the domain does no I/O, and every handler must read the same rules.
///
/// Stored and sent as its IANA name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone(TimeZone);

/// Why a string is not a time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IANA time zone name such as \"America/New_York\"")]
pub struct UnknownZone(String);

impl Zone {
    /// Looks up an IANA name such as `Europe/London` (ASCII case is ignored; links such as
    /// `US/Eastern` are accepted).
    ///
    /// # Errors
    /// [`UnknownZone`] when the bundled database has no such name.
    pub fn get(name: &str) -> Result<Self, UnknownZone> {
        TimeZone::get(name)
            .map(Self)
            .map_err(|_| UnknownZone(name.chars().take(64).collect()))
    }

    /// The zone's rules, for boundaries computed outside this module.
    pub(crate) fn tz(&self) -> &TimeZone {
        &self.0
    }

    /// The zone's IANA name, as the database spells it.
    #[must_use]
    pub fn name(&self) -> &str {
        // Every `Zone` comes from a database lookup, which always has a name.
        self.0.iana_name().unwrap_or("Etc/Unknown")
    }
}

impl TryFrom<String> for Zone {
    type Error = UnknownZone;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::get(&name)
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> Self {
        zone.name().to_owned()
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a contact's zone was chosen, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// Given with the contact.
    Explicit,
    /// Settled by the contact's number.
    Number,
    /// The default given to [`zone_for`] (the campaign's window `timezone`): nothing else
    /// settled it.
    Default,
}

/// The zone in which to read a contact's calling window, and how it was chosen: `explicit`
/// (the zone given with the contact; blank counts as not given) wins, else the zone the
/// number settles, else `default` (normally [`CallingWindow::zone`]).
///
/// A number settles a zone only when all its possible subscribers keep that zone's time: a
/// single-zone country, a North American area code lying wholly in one zone, or a fixed-line
/// area code of a country whose other zones are offshore. Mobiles of Spain, Portugal, New
/// Zealand and Turkey, straddling and toll-free North American codes, and countries with
/// several zones get `default`. The table and its reasoning are in `window/zones.rs`.
///
/// # Errors
/// [`UnknownZone`] when `explicit` is given but is not a zone: the contact is refused rather
/// than called at a guessed hour.
pub fn zone_for(
    explicit: Option<&str>,
    number: &E164,
    default: &Zone,
) -> Result<(Zone, ZoneSource), UnknownZone> {
    if let Some(name) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
        return Zone::get(name).map(|zone| (zone, ZoneSource::Explicit));
    }
    if let Some(zone) = number_zone(number) {
        return Ok((zone, ZoneSource::Number));
    }
    Ok((default.clone(), ZoneSource::Default))
}

/// The name the time-zone table gives the region of a North American number's area code
/// (a state or province, often with a qualifier: "Texas, El Paso and Hudspeth counties"), when
/// the table lists the code.
#[must_use]
pub fn nanp_region(number: &E164) -> Option<&'static str> {
    zones::nanp_region(number)
}

/// The zone `number`'s area code or country settles, if it settles one (a toll-free or
/// multi-zone country's number does not).
#[must_use]
pub fn number_zone(number: &E164) -> Option<Zone> {
    // The table's names are all in the database (a test checks); a miss would give none.
    zones::for_number(number).and_then(|name| Zone::get(name).ok())
}

#[cfg(test)]
mod tests;
