//! Caller IDs as a resource: the numbers an account dials from, grouped in pools, each with
//! caps on how many calls it places a minute, an hour and a day, and the choice of one for
//! each dial.
//!
//! A number's usage is a short log of its placements in the last hour and a count for the
//! current UTC day ([`Usage`]). The dispatcher reads the pool, [`choose`]s a number with room
//! under its caps (by local presence, then the least used), and writes the new usage in the
//! claim's own transaction, only over the version it read: no interleaving of dispatchers
//! places more calls from a number than its caps allow. The minute and the hour are sliding
//! windows (any 60 s, any 3600 s, each counted [`SEND_GRACE`] longer for the send to lag
//! the slot); the day is the UTC calendar day.
//!
//! Local presence ranks the numbers of a pool for a callee: first those presenting the
//! callee's own area code (North American numbers) or, elsewhere, its country code; then
//! those of the callee's state or province; then those of the callee's country; then the
//! rest. A number presents its own area code or
//! country unless it names a `display_region`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::E164;
use crate::time::Timestamp;

/// The most numbers one pool may hold (a dial reads the whole pool).
pub const MAX_POOL_NUMBERS: usize = 100;
/// The highest cap a number may have per minute, per hour and per day.
pub const MAX_PER_MINUTE: u32 = 600;
pub const MAX_PER_HOUR: u32 = 3_600;
pub const MAX_PER_DAY: u32 = 50_000;
/// The most placements the usage log keeps: the hourly cap's ceiling.
const MAX_RECENT: usize = MAX_PER_HOUR as usize;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// How much longer than its window a placement holds room under a cap: a dial is recorded at
/// the instant its pacing slot sends it, and the send may come a little later, so a cap
/// counted over exactly 60 s could see its number place one call too many in a minute of
/// sends.
pub const SEND_GRACE: Duration = Duration::from_secs(2);
const DAY_MS: i64 = 86_400_000;

/// How many calls a number may place; `None`: no cap on that window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberCaps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
}

/// Whether a number may be chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Chosen like any other.
    Healthy,
    /// Taken out of rotation, for this reason, until restored.
    Quarantined { reason: String, at: Timestamp },
}

impl Health {
    #[must_use]
    pub const fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }
}

/// A caller ID the account owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerNumber {
    pub e164: E164,
    pub pool: String,
    pub caps: NumberCaps,
    /// The area code (three digits, North American numbers) or country calling code (`+33`)
    /// the number presents for local presence, when not its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_region: Option<String>,
    pub health: Health,
}

/// Why a number's registration was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct NumberError {
    pub field: String,
    pub reason: String,
}

/// The wire form of `PUT /numbers/{e164}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberSpec {
    pub pool: String,
    #[serde(default)]
    pub caps: NumberCaps,
    #[serde(default)]
    pub display_region: Option<String>,
}

impl NumberSpec {
    /// The registration of `e164` this spec describes, healthy.
    ///
    /// # Errors
    /// [`NumberError`] naming the field: a pool name that is not 1 to 64 letters, digits,
    /// `-` or `_`; a cap of 0 or above its ceiling, or caps that contradict each other (a
    /// minute's above the hour's); a display region that is neither three digits nor `+` and
    /// a country code.
    pub fn registration(self, e164: E164) -> Result<CallerNumber, NumberError> {
        let fault = |field: &str, reason: String| NumberError {
            field: field.to_owned(),
            reason,
        };
        if !valid_pool(&self.pool) {
            return Err(fault(
                "pool",
                "must be 1 to 64 letters, digits, '-' or '_'".into(),
            ));
        }
        for (field, cap, ceiling) in [
            ("caps.per_minute", self.caps.per_minute, MAX_PER_MINUTE),
            ("caps.per_hour", self.caps.per_hour, MAX_PER_HOUR),
            ("caps.per_day", self.caps.per_day, MAX_PER_DAY),
        ] {
            if cap.is_some_and(|c| c == 0 || c > ceiling) {
                return Err(fault(field, format!("must be 1 to {ceiling}")));
            }
        }
        let NumberCaps {
            per_minute,
            per_hour,
            per_day,
        } = self.caps;
        if matches!((per_minute, per_hour), (Some(m), Some(h)) if m > h) {
            return Err(fault("caps.per_minute", "is above caps.per_hour".into()));
        }
        if matches!((per_hour, per_day), (Some(h), Some(d)) if h > d) {
            return Err(fault("caps.per_hour", "is above caps.per_day".into()));
        }
        if let Some(region) = &self.display_region {
            if region_of_display(region).is_none() {
                return Err(fault(
                    "display_region",
                    "must be a North American area code (\"305\") or a country calling code (\"+33\")"
                        .into(),
                ));
            }
        }
        Ok(CallerNumber {
            e164,
            pool: self.pool,
            caps: self.caps,
            display_region: self.display_region,
            health: Health::Healthy,
        })
    }
}

/// Whether `name` can name a pool.
#[must_use]
pub fn valid_pool(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A number's placements: the instants (milliseconds) of those within the last hour, and the
/// count of the current UTC day. `version` guards its replacement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub version: u64,
    /// Milliseconds since the epoch, oldest first.
    pub recent: Vec<i64>,
    /// The UTC day (days since the epoch) `day_count` counts.
    pub day: i64,
    pub day_count: u32,
}

impl Usage {
    /// Placements within `window` before `now` (a placement exactly `window` ago is out).
    #[must_use]
    pub fn within(&self, window: Duration, now: Timestamp) -> u32 {
        let from = now.as_millis() - millis(window);
        u32::try_from(self.recent.iter().filter(|&&t| t > from).count()).unwrap_or(u32::MAX)
    }

    /// Placements on `now`'s UTC day.
    #[must_use]
    pub fn today(&self, now: Timestamp) -> u32 {
        if self.day == day_of(now) {
            self.day_count
        } else {
            0
        }
    }

    /// When `caps` next allow a placement: `None` when they allow one now.
    #[must_use]
    pub fn full_until(&self, caps: &NumberCaps, now: Timestamp) -> Option<Timestamp> {
        let mut until: Option<i64> = None;
        let mut wait = |at: i64| until = Some(until.map_or(at, |u| u.max(at)));
        for (cap, window) in [
            (caps.per_minute, MINUTE + SEND_GRACE),
            (caps.per_hour, HOUR + SEND_GRACE),
        ] {
            let Some(cap) = cap else { continue };
            let n = self.within(window, now);
            if n >= cap {
                // Room opens when the placement that brings the count under the cap leaves
                // the window: the (n - cap + 1)-th oldest within it.
                let from = now.as_millis() - millis(window);
                let inside: Vec<i64> = self.recent.iter().copied().filter(|&t| t > from).collect();
                let k = usize::try_from(n - cap).unwrap_or(usize::MAX);
                if let Some(&t) = inside.get(k) {
                    wait(t + millis(window));
                }
            }
        }
        if caps.per_day.is_some_and(|cap| self.today(now) >= cap) {
            wait((day_of(now) + 1) * DAY_MS);
        }
        until.map(Timestamp::from_millis)
    }

    /// This usage with a placement at `now`, the log pruned to the last hour.
    #[must_use]
    pub fn with_placement(&self, now: Timestamp) -> Self {
        let from = now.as_millis() - millis(HOUR + SEND_GRACE);
        let mut recent: Vec<i64> = self.recent.iter().copied().filter(|&t| t > from).collect();
        recent.push(now.as_millis());
        if recent.len() > MAX_RECENT {
            recent.drain(..recent.len() - MAX_RECENT);
        }
        Self {
            version: self.version + 1,
            recent,
            day: day_of(now),
            day_count: self.today(now).saturating_add(1),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn day_of(t: Timestamp) -> i64 {
    t.as_millis().div_euclid(DAY_MS)
}

/// What a caller ID's calls came to since it was registered or restored: the stream function
/// counts each attempt when it ends ([`crate::counters::number_delta`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    pub attempts: i64,
    pub answered: i64,
    /// Answered and ended within [`SHORT_CALL`].
    pub short: i64,
    /// Ended with SIP 603 (declined).
    pub declined: i64,
    /// Ended with SIP 607 or 608: a carrier or the callee's service rejected the call as
    /// unwanted.
    pub rejected: i64,
}

/// An answered call shorter than this counts as short.
pub const SHORT_CALL: Duration = Duration::from_secs(10);

/// The thresholds of [`HealthCounts::assess`].
pub const REJECTED_AT_MOST: i64 = 2;
pub const MIN_ATTEMPTS: i64 = 20;
pub const MIN_ANSWER_RATE: f64 = 0.10;
pub const MAX_DECLINED_SHARE: f64 = 0.30;
pub const MIN_ANSWERED: i64 = 20;
pub const MAX_SHORT_SHARE: f64 = 0.60;

impl HealthCounts {
    /// One attempt's counts: answered or not, its talk time when answered, its SIP code.
    #[must_use]
    pub fn of_attempt(answered: bool, talk_ms: Option<i64>, sip_code: Option<u16>) -> Self {
        let short = answered && talk_ms.is_some_and(|t| t < millis(SHORT_CALL));
        Self {
            attempts: 1,
            answered: i64::from(answered),
            short: i64::from(short),
            declined: i64::from(sip_code == Some(603)),
            rejected: i64::from(matches!(sip_code, Some(607 | 608))),
        }
    }

    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Why a number with these counts is to be quarantined, if it is: more than
    /// [`REJECTED_AT_MOST`] calls rejected as unwanted; or, from [`MIN_ATTEMPTS`] attempts,
    /// an answer rate under [`MIN_ANSWER_RATE`] or a declined share over
    /// [`MAX_DECLINED_SHARE`]; or, from [`MIN_ANSWERED`] answered calls, more than
    /// [`MAX_SHORT_SHARE`] of them short.
    #[must_use]
    pub fn assess(&self) -> Option<String> {
        #[allow(clippy::cast_precision_loss)]
        let share = |part: i64, whole: i64| part as f64 / whole as f64;
        if self.rejected > REJECTED_AT_MOST {
            return Some(format!(
                "{} calls rejected as unwanted (SIP 607/608)",
                self.rejected
            ));
        }
        if self.attempts >= MIN_ATTEMPTS {
            let rate = share(self.answered, self.attempts);
            if rate < MIN_ANSWER_RATE {
                return Some(format!(
                    "answer rate {:.0}% over {} calls",
                    rate * 100.0,
                    self.attempts
                ));
            }
            let declined = share(self.declined, self.attempts);
            if declined > MAX_DECLINED_SHARE {
                return Some(format!(
                    "{:.0}% of {} calls declined (SIP 603)",
                    declined * 100.0,
                    self.attempts
                ));
            }
        }
        if self.answered >= MIN_ANSWERED {
            let short = share(self.short, self.answered);
            if short > MAX_SHORT_SHARE {
                return Some(format!(
                    "{:.0}% of {} answered calls under {} s",
                    short * 100.0,
                    self.answered,
                    SHORT_CALL.as_secs()
                ));
            }
        }
        None
    }
}

impl std::ops::AddAssign<&HealthCounts> for HealthCounts {
    fn add_assign(&mut self, other: &HealthCounts) {
        self.attempts += other.attempts;
        self.answered += other.answered;
        self.short += other.short;
        self.declined += other.declined;
        self.rejected += other.rejected;
    }
}

/// A pool member as the dispatcher reads it: its registration and usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub number: CallerNumber,
    pub usage: Usage,
}

/// What [`choose`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Dial from this member (its index); the claim writes `usage`, guarded by the version
    /// read.
    Number { index: usize, usage: Usage },
    /// Every healthy number is at a cap; the first has room again at this instant.
    Full { until: Timestamp },
    /// The pool has no healthy number.
    Empty,
}

/// Chooses the number of `pool` to dial `callee` from at `now`: with room under its caps and
/// healthy; with `local_presence`, the closest to the callee first (same area code or
/// country code, then same state or province, then same country, then any); then the least used today, then this hour;
/// then the lowest number, so that the choice is the same for the same state.
#[must_use]
pub fn choose(pool: &[Member], callee: &E164, local_presence: bool, now: Timestamp) -> Choice {
    let healthy = || {
        pool.iter()
            .enumerate()
            .filter(|(_, m)| m.number.health.is_healthy())
    };
    let best = healthy()
        .filter(|(_, m)| m.usage.full_until(&m.number.caps, now).is_none())
        .min_by_key(|(_, m)| {
            (
                if local_presence {
                    closeness(&m.number, callee)
                } else {
                    0
                },
                m.usage.today(now),
                m.usage.within(HOUR, now),
                m.number.e164.as_str().to_owned(),
            )
        });
    if let Some((index, m)) = best {
        return Choice::Number {
            index,
            usage: m.usage.with_placement(now),
        };
    }
    healthy()
        .filter_map(|(_, m)| m.usage.full_until(&m.number.caps, now))
        .min()
        .map_or(Choice::Empty, |until| Choice::Full { until })
}

/// Where a number is, for local presence.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Region {
    /// The North American area code, or the country calling code elsewhere.
    local: String,
    /// The US state or Canadian province of a North American area code, when the time-zone
    /// table names it.
    state: Option<&'static str>,
    /// The country: `US`, `CA`, a Caribbean area code's own `NANP-809`, or the country
    /// calling code.
    country: String,
}

/// The states, territories and provinces the time-zone table's region names begin with.
const STATES: &[&str] = &[
    "Alabama",
    "Alaska",
    "Arizona",
    "Arkansas",
    "California",
    "Colorado",
    "Connecticut",
    "Delaware",
    "District of Columbia",
    "Florida",
    "Georgia",
    "Hawaii",
    "Idaho",
    "Illinois",
    "Indiana",
    "Iowa",
    "Kansas",
    "Kentucky",
    "Louisiana",
    "Maine",
    "Maryland",
    "Massachusetts",
    "Michigan",
    "Minnesota",
    "Mississippi",
    "Missouri",
    "Montana",
    "Nebraska",
    "Nevada",
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Ohio",
    "Oklahoma",
    "Oregon",
    "Pennsylvania",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "Tennessee",
    "Texas",
    "Utah",
    "Vermont",
    "Virginia",
    "Washington",
    "West Virginia",
    "Wisconsin",
    "Wyoming",
    "Alberta",
    "British Columbia",
    "Manitoba",
    "New Brunswick",
    "Newfoundland and Labrador",
    "Nova Scotia",
    "Ontario",
    "Prince Edward Island",
    "Quebec",
    "Saskatchewan",
];

/// The state or province a North American area code is in, from the time-zone table's
/// region name (the longest state name it begins with, so "West Virginia" is not
/// "Virginia"). Codes the table leaves out (those straddling a zone boundary) have none.
fn state_of(area: &str) -> Option<&'static str> {
    let probe = E164::parse(&format!("+1{area}5550100")).ok()?;
    let region = crate::window::nanp_region(&probe)?;
    STATES
        .iter()
        .filter(|state| {
            region.starts_with(**state)
                && region[state.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == ',')
        })
        .max_by_key(|state| state.len())
        .copied()
}

/// 0 for a number presenting the callee's area code (or country code, outside North
/// America), 1 for one of the callee's state or province, 2 for one of the callee's country,
/// 3 otherwise.
fn closeness(number: &CallerNumber, callee: &E164) -> u8 {
    let presented = number
        .display_region
        .as_deref()
        .and_then(region_of_display)
        .or_else(|| region_of(&number.e164));
    match (presented, region_of(callee)) {
        (Some(a), Some(b)) if a.local == b.local => 0,
        (Some(a), Some(b)) if a.state.is_some() && a.state == b.state => 1,
        (Some(a), Some(b)) if a.country == b.country => 2,
        _ => 3,
    }
}

fn region_of(number: &E164) -> Option<Region> {
    let digits = number.as_str().strip_prefix('+')?;
    if let Some(national) = digits.strip_prefix('1') {
        return region_of_area(national.get(..3)?);
    }
    let code = country_code(digits)?;
    Some(Region {
        local: code.to_owned(),
        state: None,
        country: code.to_owned(),
    })
}

fn region_of_display(display: &str) -> Option<Region> {
    match display.strip_prefix('+') {
        Some("1") => None,
        Some(code) => (country_code(code) == Some(code)).then(|| Region {
            local: code.to_owned(),
            state: None,
            country: code.to_owned(),
        }),
        None if display.len() == 3 && display.bytes().all(|b| b.is_ascii_digit()) => {
            region_of_area(display)
        }
        None => None,
    }
}

/// A North American area code's region: its country from the legal calling-hours table
/// (which lists the US and Canadian codes), else the code itself stands for its country.
fn region_of_area(area: &str) -> Option<Region> {
    if area.len() != 3 || !area.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let probe = E164::parse(&format!("+1{area}5550100")).ok()?;
    let code = crate::legal::LegalHours::builtin()
        .jurisdiction(&probe)
        .code;
    let country = match code.split('-').next() {
        Some(c @ ("US" | "CA")) => c.to_owned(),
        _ => format!("NANP-{area}"),
    };
    Some(Region {
        local: area.to_owned(),
        state: state_of(area),
        country,
    })
}

/// Two-digit country calling codes; `1` and `7` are the one-digit ones, every other code
/// has three digits (the codes are prefix-free).
const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// The country calling code that starts `digits` (without `+`).
fn country_code(digits: &str) -> Option<&str> {
    let first = digits.get(..1)?;
    if first == "1" || first == "7" {
        return Some(first);
    }
    let two = digits.get(..2)?;
    if TWO_DIGIT_CODES.contains(&two) {
        return Some(two);
    }
    digits.get(..3)
}

#[cfg(test)]
mod tests;
