//! The account's compliance policy, and the decisions it makes about one dial.
//!
//! - A campaign calls for a [`Purpose`]; the law treats each differently (a reminder from a
//!   clinic is not a sales call).
//! - Contact caps ([`Cap`]): at most `max_calls` placed to one number in any `per_hours`,
//!   counted across every campaign whose purpose the cap names. The count lives in one
//!   ledger item per number ([`Ledger`]); the dispatcher reads it, [`Policy::admit`] decides,
//!   and the claim that precedes the dial writes the new ledger in the same transaction,
//!   guarded by the version it read. Two dispatchers that read the same ledger cannot both
//!   write it, so no interleaving places more calls than a cap allows.
//! - Destination caps ([`DestinationCap`]): at most `max_calls` placed to one number in any
//!   `per_minutes`, whatever the campaign, purpose or caller ID, counted in the same ledger.
//! - The default calling hours for numbers no built-in rule covers (`crate::legal`).
//! - [`Reason`]: why a waiting call was held or ended without a dial, kept on its record.
//!
//! ```json
//! {"caps": [{"max_calls": 3, "per_hours": 720, "purposes": ["informational"]},
//!           {"max_calls": 1, "per_hours": 24, "purposes": ["healthcare"]}],
//!  "destination_caps": [{"max_calls": 1, "per_minutes": 1}, {"max_calls": 3, "per_minutes": 15}],
//!  "default_hours": {"mon": ["09:00-20:00"], "tue": ["09:00-20:00"]}}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{Attempt, CallId, E164};
use crate::legal::LegalHours;
use crate::time::Timestamp;

/// What a campaign's calls are for. The set follows the distinctions US and EU rules draw:
/// informational calls (reminders, notices) and health-care messages have their own
/// federal caps, telemarketing needs each contact's prior consent, and emergency calls are
/// exempt from consent and quiet-hour rules.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Reminders and notices that sell nothing; the default.
    #[default]
    Informational,
    /// Messages from a health-care provider about the callee's care.
    Healthcare,
    /// Sales and marketing: each contact needs recorded consent.
    Telemarketing,
    /// Calls about a danger to health, safety or property: exempt from the legal calling
    /// hours (still capped by any cap that names it).
    Emergency,
}

impl Purpose {
    pub const ALL: [Self; 4] = [
        Self::Informational,
        Self::Healthcare,
        Self::Telemarketing,
        Self::Emergency,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "informational",
            Self::Healthcare => "healthcare",
            Self::Telemarketing => "telemarketing",
            Self::Emergency => "emergency",
        }
    }

    /// Reads a purpose as [`Self::as_str`] writes it.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether each contact must come with its consent.
    #[must_use]
    pub const fn needs_consent(self) -> bool {
        matches!(self, Self::Telemarketing)
    }

    /// Whether the legal calling hours apply.
    #[must_use]
    pub const fn keeps_legal_hours(self) -> bool {
        !matches!(self, Self::Emergency)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What becomes of a call that a cap stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCap {
    /// It ends `CANCELLED` with reason `cap`.
    #[default]
    Cancel,
    /// It waits until the cap allows it (the oldest counted call leaves the window).
    Defer,
}

/// Why a waiting call was held or ended without a dial: kept on its record (`reason`), in
/// the stream, and counted per campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A contact cap of the account policy is reached for the number.
    Cap,
    /// The number is on the do-not-call list.
    DoNotCall,
    /// The law does not allow a call now in the callee's zone (held).
    LegalHours,
    /// The campaign's calling window is closed (held).
    Window,
    /// Neither the contact, its number nor the campaign settles the callee's zone, and the
    /// law's hours depend on it (held until the campaign or contact names one).
    UnknownTimezone,
    /// The campaign's window and the law's hours never meet for this number.
    NoLawfulHours,
    /// The campaign was cancelled.
    CampaignCancelled,
    /// Hung up through the API before it was dialed.
    HungUp,
    /// Every healthy caller ID of the campaign's pool is at one of its caps.
    CallerIdsFull,
    /// The campaign's pool has no healthy caller ID.
    NoCallerId,
}

impl Reason {
    pub const ALL: [Self; 10] = [
        Self::Cap,
        Self::DoNotCall,
        Self::LegalHours,
        Self::Window,
        Self::UnknownTimezone,
        Self::NoLawfulHours,
        Self::CampaignCancelled,
        Self::HungUp,
        Self::CallerIdsFull,
        Self::NoCallerId,
    ];

    /// The code stored on the record and used in counter names.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Cap => "cap",
            Self::DoNotCall => "do-not-call",
            Self::LegalHours => "legal-hours",
            Self::Window => "window",
            Self::UnknownTimezone => "unknown-timezone",
            Self::NoLawfulHours => "no-lawful-hours",
            Self::CampaignCancelled => "campaign-cancelled",
            Self::HungUp => "hung-up",
            Self::CallerIdsFull => "caller-ids-full",
            Self::NoCallerId => "no-caller-id",
        }
    }

    /// Reads a code as [`Self::code`] writes it.
    #[must_use]
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The sentence kept in the record's `last_error` beside the code.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Cap => "a contact cap of the account policy is reached for the number",
            Self::DoNotCall => "the number is on the do-not-call list",
            Self::LegalHours => "the law does not allow calling the number at this hour",
            Self::Window => "the campaign's calling window is closed",
            Self::UnknownTimezone => {
                "the callee's time zone is unknown: give the contact a tz or the campaign a window timezone"
            }
            Self::NoLawfulHours => {
                "the campaign's calling window never meets the legal calling hours"
            }
            Self::CampaignCancelled => "the campaign was cancelled",
            Self::HungUp => "hung up through the API before it was dialed",
            Self::CallerIdsFull => "every caller ID of the campaign's pool is at one of its caps",
            Self::NoCallerId => "the campaign's pool has no healthy caller ID",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The most caps a policy may hold, the most calls one may allow, and its longest window
/// (a leap year): the ledger of a number stays small (a few kilobytes at most).
pub const MAX_CAPS: usize = 16;
pub const MAX_CALLS_PER_CAP: u32 = 100;
pub const MAX_CAP_HOURS: u32 = 8784;

/// At most `max_calls` placed calls to one number in any `per_hours`, counted over the
/// campaigns of these purposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    pub max_calls: u32,
    pub per_hours: u32,
    pub purposes: Vec<Purpose>,
}

impl Cap {
    #[must_use]
    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.per_hours) * 3600)
    }
}

/// At most `max_calls` placed calls to one number in any `per_minutes`, whatever the
/// campaign, its purpose or the caller ID: the spacing carriers and callees expect (one a
/// minute, three in fifteen minutes, five an hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationCap {
    pub max_calls: u32,
    pub per_minutes: u32,
}

/// The longest window of a destination cap, in minutes: a cap's longest.
pub const MAX_DESTINATION_MINUTES: u32 = MAX_CAP_HOURS * 60;

/// One limit the ledger is checked against: a cap (its purposes) or a destination cap
/// (every purpose).
struct Limit<'a> {
    max_calls: u32,
    window: Duration,
    purposes: Option<&'a [Purpose]>,
}

impl Limit<'_> {
    fn counts(&self, purpose: Purpose) -> bool {
        self.purposes.is_none_or(|p| p.contains(&purpose))
    }
}

/// The account's policy, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicySpec", into = "PolicySpec")]
pub struct Policy {
    caps: Vec<Cap>,
    destination_caps: Vec<DestinationCap>,
    default_hours: Option<BTreeMap<String, Vec<String>>>,
}

/// The wire form of a [`Policy`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub caps: Vec<Cap>,
    /// Caps on calls to one number whatever the purpose, in minutes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_caps: Vec<DestinationCap>,
    /// The calling hours for numbers no built-in rule covers, in a calling window's `hours`
    /// form; the built-in conservative default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_hours: Option<BTreeMap<String, Vec<String>>>,
}

/// Why a policy was refused; the message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    pub field: String,
    pub reason: String,
}

impl TryFrom<PolicySpec> for Policy {
    type Error = PolicyError;

    fn try_from(spec: PolicySpec) -> Result<Self, Self::Error> {
        let fault = |field: String, reason: &str| PolicyError {
            field,
            reason: reason.to_owned(),
        };
        if spec.caps.len() > MAX_CAPS {
            return Err(fault(
                "caps".into(),
                &format!("at most {MAX_CAPS} caps are allowed"),
            ));
        }
        for (i, cap) in spec.caps.iter().enumerate() {
            if !(1..=MAX_CALLS_PER_CAP).contains(&cap.max_calls) {
                return Err(fault(
                    format!("caps[{i}].max_calls"),
                    &format!("must be 1 to {MAX_CALLS_PER_CAP}"),
                ));
            }
            if !(1..=MAX_CAP_HOURS).contains(&cap.per_hours) {
                return Err(fault(
                    format!("caps[{i}].per_hours"),
                    &format!("must be 1 to {MAX_CAP_HOURS} (a year)"),
                ));
            }
            if cap.purposes.is_empty() {
                return Err(fault(
                    format!("caps[{i}].purposes"),
                    "names at least one of informational, healthcare, telemarketing, emergency",
                ));
            }
            let mut seen = cap.purposes.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != cap.purposes.len() {
                return Err(fault(
                    format!("caps[{i}].purposes"),
                    "names a purpose twice",
                ));
            }
        }
        if spec.caps.len() + spec.destination_caps.len() > MAX_CAPS {
            return Err(fault(
                "destination_caps".into(),
                &format!("at most {MAX_CAPS} caps and destination caps are allowed together"),
            ));
        }
        for (i, cap) in spec.destination_caps.iter().enumerate() {
            if !(1..=MAX_CALLS_PER_CAP).contains(&cap.max_calls) {
                return Err(fault(
                    format!("destination_caps[{i}].max_calls"),
                    &format!("must be 1 to {MAX_CALLS_PER_CAP}"),
                ));
            }
            if !(1..=MAX_DESTINATION_MINUTES).contains(&cap.per_minutes) {
                return Err(fault(
                    format!("destination_caps[{i}].per_minutes"),
                    &format!("must be 1 to {MAX_DESTINATION_MINUTES} (a year)"),
                ));
            }
        }
        if let Some(hours) = &spec.default_hours {
            LegalHours::with_default(hours).map_err(|e| PolicyError {
                field: e.field,
                reason: e.reason,
            })?;
        }
        Ok(Self {
            caps: spec.caps,
            destination_caps: spec.destination_caps,
            default_hours: spec.default_hours,
        })
    }
}

impl From<Policy> for PolicySpec {
    fn from(policy: Policy) -> Self {
        Self {
            caps: policy.caps,
            destination_caps: policy.destination_caps,
            default_hours: policy.default_hours,
        }
    }
}

/// What [`Policy::admit`] decided for one dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// No cap counts calls of this purpose: dial without touching the ledger.
    Uncapped,
    /// This very attempt was counted by an earlier claim (given back before its dial):
    /// dial without counting it again.
    AlreadyCounted,
    /// Room under every cap: the claim writes this ledger, guarded by the version read.
    Count(Ledger),
    /// A cap is reached; it allows another call at `until`.
    Capped { until: Timestamp },
}

impl Policy {
    #[must_use]
    pub fn caps(&self) -> &[Cap] {
        &self.caps
    }

    #[must_use]
    pub fn default_hours(&self) -> Option<&BTreeMap<String, Vec<String>>> {
        self.default_hours.as_ref()
    }

    /// The legal calling hours under this policy: the built-in rules, with the policy's
    /// `default_hours` (checked when the policy was) for numbers no rule covers.
    #[must_use]
    pub fn legal_hours(&self) -> LegalHours {
        self.default_hours
            .as_ref()
            .and_then(|hours| LegalHours::with_default(hours).ok())
            .unwrap_or_else(|| LegalHours::builtin().clone())
    }

    #[must_use]
    pub fn destination_caps(&self) -> &[DestinationCap] {
        &self.destination_caps
    }

    /// Every cap and destination cap, as the ledger is checked against them.
    fn limits(&self) -> impl Iterator<Item = Limit<'_>> {
        let caps = self.caps.iter().map(|c| Limit {
            max_calls: c.max_calls,
            window: c.window(),
            purposes: Some(c.purposes.as_slice()),
        });
        let destination = self.destination_caps.iter().map(|c| Limit {
            max_calls: c.max_calls,
            window: Duration::from_secs(u64::from(c.per_minutes) * 60),
            purposes: None,
        });
        caps.chain(destination)
    }

    /// Whether any cap counts calls of `purpose` (if none does, no ledger is read): a
    /// destination cap counts every purpose.
    #[must_use]
    pub fn caps_purpose(&self, purpose: Purpose) -> bool {
        self.limits().any(|l| l.counts(purpose))
    }

    /// The longest window of any cap: older ledger entries count for nothing.
    #[must_use]
    pub fn horizon(&self) -> Duration {
        self.limits()
            .map(|l| l.window)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Decides whether attempt `attempt` of `call`, for `purpose`, may be placed to the
    /// number whose ledger is `ledger`, at `now`.
    #[must_use]
    pub fn admit(
        &self,
        ledger: &Ledger,
        purpose: Purpose,
        call: &CallId,
        attempt: Attempt,
        now: Timestamp,
    ) -> Admission {
        if !self.caps_purpose(purpose) {
            return Admission::Uncapped;
        }
        if ledger
            .entries
            .iter()
            .any(|e| e.call == *call && e.attempt == attempt)
        {
            return Admission::AlreadyCounted;
        }
        let mut until: Option<Timestamp> = None;
        for cap in self.limits().filter(|l| l.counts(purpose)) {
            let window = cap.window;
            let mut counted: Vec<Timestamp> = ledger
                .entries
                .iter()
                .filter(|e| cap.counts(e.purpose) && e.at.plus(window) > now)
                .map(|e| e.at)
                .collect();
            let max = usize::try_from(cap.max_calls).unwrap_or(usize::MAX);
            if counted.len() >= max {
                // Room comes back when enough of the oldest leave the window.
                counted.sort_unstable();
                let leaving = counted[counted.len() - max];
                let at = leaving.plus(window);
                until = Some(until.map_or(at, |u| u.max(at)));
            }
        }
        if let Some(until) = until {
            return Admission::Capped { until };
        }
        let horizon = self.horizon();
        let mut entries: Vec<LedgerEntry> = ledger
            .entries
            .iter()
            .filter(|e| e.at.plus(horizon) > now)
            .cloned()
            .collect();
        entries.push(LedgerEntry {
            call: call.clone(),
            attempt,
            purpose,
            at: now,
        });
        Admission::Count(Ledger {
            version: ledger.version + 1,
            entries,
        })
    }
}

/// One call counted against a number's caps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub call: CallId,
    pub attempt: Attempt,
    pub purpose: Purpose,
    pub at: Timestamp,
}

/// The calls counted against one number's caps, as last written, with the version its
/// next write must find (0: never written).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u64,
    pub entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// When the ledger is of no more use: its last entry has left every window.
    #[must_use]
    pub fn expires_at(&self, horizon: Duration) -> Option<Timestamp> {
        self.entries.iter().map(|e| e.at.plus(horizon)).max()
    }
}

/// A claim's write to a number's ledger: `ledger` replaces the one read, only if the item
/// still has version `read` (0: it did not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWrite {
    pub number: E164,
    pub read: u64,
    pub ledger: Ledger,
    /// When the item may be deleted (TTL): its last entry has left every cap's window.
    pub expires_at: Timestamp,
}

/// One number on the do-not-call list, with where its entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DncEntry {
    pub e164: E164,
    pub added_at: Timestamp,
    #[serde(flatten)]
    pub source: DncSource,
}

/// Who put a number on the do-not-call list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum DncSource {
    /// `PUT /dnc/{e164}` or a contact list.
    Api,
    /// The callee pressed the opt-out key during this call.
    OptOut { call_id: CallId },
}

impl DncSource {
    /// The `source` attribute's value.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::OptOut { .. } => "opt-out",
        }
    }
}

#[cfg(test)]
mod tests;
