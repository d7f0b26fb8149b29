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

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

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

impl TryFrom<WindowSpec> for CallingWindow {
    type Error = WindowError;

    fn try_from(spec: WindowSpec) -> Result<Self, Self::Error> {
        if jiff::tz::TimeZone::get(&spec.timezone).is_err() {
            return Err(invalid(
                "timezone",
                format!("{:?} is not an IANA time zone", spec.timezone),
            ));
        }
        let mut hours: [Vec<(u16, u16)>; 7] = Default::default();
        for (day, ranges) in &spec.hours {
            let Some(i) = DAYS.iter().position(|d| d == day) else {
                return Err(invalid(
                    format!("hours.{day}"),
                    "days are mon, tue, wed, thu, fri, sat, sun",
                ));
            };
            if ranges.len() > MAX_RANGES_PER_DAY {
                return Err(invalid(
                    format!("hours.{day}"),
                    format!("at most {MAX_RANGES_PER_DAY} ranges a day"),
                ));
            }
            let mut parsed = Vec::with_capacity(ranges.len());
            for (j, range) in ranges.iter().enumerate() {
                let field = format!("hours.{day}[{j}]");
                let (start, end) = range
                    .split_once('-')
                    .and_then(|(a, b)| Some((minutes(a.trim())?, minutes(b.trim())?)))
                    .ok_or_else(|| invalid(&field, "a range is \"HH:MM-HH:MM\""))?;
                if end <= start {
                    return Err(invalid(&field, "the end must be after the start"));
                }
                parsed.push((start, end));
            }
            parsed.sort_unstable();
            if parsed.windows(2).any(|w| w[1].0 < w[0].1) {
                return Err(invalid(format!("hours.{day}"), "ranges overlap"));
            }
            hours[i] = parsed;
        }
        if hours.iter().all(Vec::is_empty) {
            return Err(invalid("hours", "the window never opens"));
        }
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
    /// The zone of contacts whose own zone is unknown.
    #[must_use]
    pub fn timezone(&self) -> &str {
        &self.timezone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<CallingWindow, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
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
}
