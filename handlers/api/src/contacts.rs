//! Contact lists, row by row: CSV or JSON in, accepted contacts and rejected rows out.
//!
//! A bad row never fails the request: it is reported with where it is (its CSV row number,
//! the header being row 1, or its index in the JSON `contacts` array), the field at fault and
//! why, and the rest go ahead. Only what makes every row unreadable (a CSV header without a
//! number column, a script variable no column provides) or a CSV without a single contact
//! fails the request as a whole.
//!
//! A CSV row is a record, whatever ends it (`\n`, `\r\n` or a lone `\r`, mixed as they
//! come) and however many lines its quoted values span: rows are numbered by counting
//! records, never lines, so the numbers are the ones a spreadsheet shows, and no two rows of
//! a request share one (call ids derive from them). Empty lines are not records; a row whose
//! every field is empty is blank, skipped and still counted.
//!
//! Checks per row, first fault wins: the number (parsed to E.164 with the request's default
//! region, then a destination the account calls: `crate::destinations`), a duplicate of an
//! earlier row, the time zone (IANA), the template variables
//! (at most [`MAX_VARS`] of at most [`MAX_VARS_BYTES`] in all, and every variable the script
//! uses present), the consent (`consent_at` and `consent_source`, both or neither). Then,
//! for the rows that passed: consent given in the future is refused, and a campaign whose
//! purpose needs consent refuses rows without it ([`Checked::check_consent`]); the
//! do-not-call list is checked last, in one batched lookup.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use outdial_core::ids::E164;
use outdial_core::record::{Consent, MAX_CONSENT_SOURCE, MAX_REF, MAX_VARS, MAX_VARS_BYTES};
use outdial_core::time::Timestamp;
use outdial_core::window::Zone;
use serde_json::Value;

use crate::destinations::{AllowedCountries, Destinations};
use crate::errors::FieldError;
pub use crate::errors::{ListError, Rejected};
use crate::phone::{self, Region};

/// The most contacts one request may carry; larger lists are appended in several requests.
pub const MAX_CONTACTS: usize = 200_000;
/// The most bytes of rejected rows one answer lists; past that only their count is given
/// (an answer must stay under Lambda's 6 MB).
pub const MAX_LISTED_BYTES: usize = 4_000_000;
/// The longest variable name, in characters.
const MAX_VAR_NAME: usize = 64;

/// Header names the number column may have, and the time-zone column.
const TO_COLUMNS: [&str; 3] = ["to", "phone", "number"];
const TZ_COLUMNS: [&str; 3] = ["tz", "timezone", "time_zone"];
/// The consent columns (and JSON fields).
const CONSENT_AT: &str = "consent_at";
const CONSENT_SOURCE: &str = "consent_source";
/// The contact's own reference column (and JSON field): kept on the call. As a column it is
/// also a template variable, as every other column is.
const REF: &str = "ref";
/// What a rejected row's reason begins with when its consent is missing or incomplete.
pub const NO_CONSENT: &str = "no-consent";

/// Where a row is in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A CSV record's number, counting records (never lines) from the header's 1: the row
    /// number a spreadsheet shows. Answers call it the row's `line`.
    Record(u64),
    /// An index in the JSON `contacts` array, from 0.
    Index(u64),
}

impl Position {
    /// A number that tells rows of one request apart (call ids derive from it): every row
    /// of a request has its own, as a request is either CSV or JSON and both count rows.
    #[must_use]
    pub fn ordinal(self) -> u64 {
        match self {
            Self::Record(n) | Self::Index(n) => n,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Record(n) => format!("line {n}"),
            Self::Index(n) => format!("contacts[{n}]"),
        }
    }
}

/// A row as read, before its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub at: Position,
    pub to: String,
    pub vars: BTreeMap<String, String>,
    pub tz: Option<String>,
    pub consent_at: Option<String>,
    pub consent_source: Option<String>,
    pub reference: Option<String>,
    /// A fault found while reading the row (a wrong number of fields, a value of the wrong
    /// type): the row is rejected with it.
    pub fault: Option<FieldError>,
}

/// A row that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub at: Position,
    pub to: E164,
    pub vars: BTreeMap<String, String>,
    pub tz: Option<String>,
    pub consent: Option<Consent>,
    /// The contact's own reference (a patient or account number), at most [`MAX_REF`]
    /// characters.
    pub reference: Option<String>,
}

impl Contact {
    /// What is wrong with the contact's consent at `now`, when consent is `required` (a
    /// telemarketing campaign) or given: consent given in the future is a bad value; consent
    /// missing where it is required is reported with a reason that begins with
    /// [`NO_CONSENT`].
    ///
    /// # Errors
    /// The field at fault, and whether the consent is missing (rather than malformed).
    pub fn check_consent(&self, now: Timestamp, required: bool) -> Result<(), (FieldError, bool)> {
        match &self.consent {
            Some(consent) if consent.at > now => {
                Err((FieldError::new(CONSENT_AT, "is in the future"), false))
            }
            Some(_) => Ok(()),
            None if required => Err((
                FieldError::new(
                    CONSENT_AT,
                    format!(
                        "{NO_CONSENT}: a telemarketing campaign calls only contacts whose \
                         consent is recorded (consent_at and consent_source)"
                    ),
                ),
                true,
            )),
            None => Ok(()),
        }
    }
}

impl Rejected {
    fn new(at: Position, fault: FieldError) -> Self {
        let (line, index) = match at {
            Position::Record(n) => (Some(n), None),
            Position::Index(n) => (None, Some(n)),
        };
        Self {
            line,
            index,
            field: fault.field,
            reason: fault.reason,
        }
    }

    fn ordinal(&self) -> u64 {
        self.line.or(self.index).unwrap_or(0)
    }
}

/// The outcome of checking a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub accepted: Vec<Contact>,
    pub rejected: Vec<Rejected>,
}

impl Checked {
    /// Moves the contacts whose numbers are in `blocked` to the rejected rows.
    pub fn drop_do_not_call(&mut self, blocked: &HashSet<E164>) {
        if blocked.is_empty() {
            return;
        }
        let (keep, drop): (Vec<Contact>, Vec<Contact>) = std::mem::take(&mut self.accepted)
            .into_iter()
            .partition(|c| !blocked.contains(&c.to));
        self.accepted = keep;
        self.rejected.extend(
            drop.into_iter()
                .map(|c| Rejected::new(c.at, FieldError::new("to", "is on the do-not-call list"))),
        );
        self.rejected.sort_by_key(Rejected::ordinal);
    }

    /// Moves the contacts whose consent does not do (see [`Contact::check_consent`]) to the
    /// rejected rows.
    pub fn check_consent(&mut self, now: Timestamp, required: bool) {
        let mut keep = Vec::with_capacity(self.accepted.len());
        let mut moved = false;
        for contact in std::mem::take(&mut self.accepted) {
            match contact.check_consent(now, required) {
                Ok(()) => keep.push(contact),
                Err((fault, _)) => {
                    self.rejected.push(Rejected::new(contact.at, fault));
                    moved = true;
                }
            }
        }
        self.accepted = keep;
        if moved {
            self.rejected.sort_by_key(Rejected::ordinal);
        }
    }

    /// The rejected rows an answer lists (all of them unless they would pass
    /// [`MAX_LISTED_BYTES`]), and whether some were left out.
    #[must_use]
    pub fn listed(&self) -> (&[Rejected], bool) {
        let mut bytes = 0;
        for (i, r) in self.rejected.iter().enumerate() {
            bytes += r.field.len() + r.reason.len() + 48;
            if bytes > MAX_LISTED_BYTES {
                return (&self.rejected[..i], true);
            }
        }
        (&self.rejected, false)
    }
}

/// Reads a CSV contact list: a header row with a number column (`to`, or `phone` or
/// `number`), an optional time-zone column (`tz`), optional `consent_at` and
/// `consent_source` columns, an optional `ref` column (the contact's own reference, kept
/// on its call), and every other column a template variable (`ref` too). A leading UTF-8
/// byte order mark is dropped; rows are numbered by record (module docs), and blank rows are
/// skipped.
///
/// # Errors
/// [`ListError::Invalid`] for a body that is not CSV or a header that cannot work (no number
/// column, two of them, too many variables, a script variable no column provides);
/// [`ListError::Empty`] for a header without a single row that is not blank;
/// [`ListError::TooLarge`] past [`MAX_CONTACTS`] rows.
pub fn from_csv(body: &str, script_vars: &BTreeSet<String>) -> Result<Vec<Row>, ListError> {
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| ListError::field("body", format!("is not CSV: {e}")))?
        .clone();
    let columns = Columns::from_header(&header, script_vars)?;
    let mut rows = Vec::new();
    // The header is record 1. Counting records, not the reader's lines: its `Position::line`
    // counts `\n` only, while a lone `\r` ends a record too, so lines repeat.
    for (record, number) in reader.records().zip(2_u64..) {
        let record = record.map_err(|e| ListError::field("body", format!("is not CSV: {e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_CONTACTS {
            return Err(too_many());
        }
        rows.push(columns.row(Position::Record(number), &record));
    }
    if rows.is_empty() {
        return Err(ListError::Empty);
    }
    Ok(rows)
}

fn too_many() -> ListError {
    ListError::TooLarge(format!(
        "at most {MAX_CONTACTS} contacts per request; append the rest with \
         POST /campaigns/{{id}}/contacts"
    ))
}

/// Which CSV column is what.
struct Columns {
    width: usize,
    to: usize,
    tz: Option<usize>,
    consent_at: Option<usize>,
    consent_source: Option<usize>,
    reference: Option<usize>,
    vars: Vec<(usize, String)>,
}

impl Columns {
    fn from_header(
        header: &csv::StringRecord,
        script_vars: &BTreeSet<String>,
    ) -> Result<Self, ListError> {
        let mut to = Vec::new();
        let mut tz = Vec::new();
        let mut consent_at = None;
        let mut consent_source = None;
        let mut reference = None;
        let mut vars = Vec::new();
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for (i, name) in header.iter().enumerate() {
            let lower = name.to_ascii_lowercase();
            if name.is_empty() {
                errors.push(FieldError::new(
                    "header",
                    format!("column {} has no name", i + 1),
                ));
            } else if !seen.insert(lower.clone()) {
                errors.push(FieldError::new(
                    "header",
                    format!("column {name:?} appears twice"),
                ));
            } else if TO_COLUMNS.contains(&lower.as_str()) {
                to.push(i);
            } else if TZ_COLUMNS.contains(&lower.as_str()) {
                tz.push(i);
            } else if lower == CONSENT_AT {
                consent_at = Some(i);
            } else if lower == CONSENT_SOURCE {
                consent_source = Some(i);
            } else if name.chars().count() > MAX_VAR_NAME {
                errors.push(FieldError::new(
                    "header",
                    format!("column names are at most {MAX_VAR_NAME} characters"),
                ));
            } else {
                if lower == REF {
                    reference = Some(i);
                }
                vars.push((i, name.to_owned()));
            }
        }
        if to.len() != 1 {
            errors.push(FieldError::new(
                "header",
                "needs exactly one number column: to (or phone, or number)",
            ));
        }
        if tz.len() > 1 {
            errors.push(FieldError::new(
                "header",
                "has more than one time-zone column",
            ));
        }
        if vars.len() > MAX_VARS {
            errors.push(FieldError::new(
                "header",
                format!(
                    "has {} variable columns; a contact has at most {MAX_VARS}",
                    vars.len()
                ),
            ));
        }
        for var in script_vars {
            if !vars.iter().any(|(_, name)| name == var) {
                errors.push(FieldError::new(
                    "header",
                    format!("no column for {{{{{var}}}}}, which the script uses"),
                ));
            }
        }
        match (to.as_slice(), errors.is_empty()) {
            ([to], true) => Ok(Self {
                width: header.len(),
                to: *to,
                tz: tz.first().copied(),
                consent_at,
                consent_source,
                reference,
                vars,
            }),
            _ => Err(ListError::Invalid(errors)),
        }
    }

    fn row(&self, at: Position, record: &csv::StringRecord) -> Row {
        let fault = (record.len() != self.width).then(|| {
            FieldError::new(
                "row",
                format!("has {} fields; the header has {}", record.len(), self.width),
            )
        });
        let cell = |i: usize| record.get(i).unwrap_or_default();
        let given = |column: Option<usize>| {
            column
                .map(cell)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Row {
            at,
            to: cell(self.to).to_owned(),
            vars: self
                .vars
                .iter()
                .filter(|(i, _)| !cell(*i).is_empty())
                .map(|(i, name)| (name.clone(), cell(*i).to_owned()))
                .collect(),
            tz: given(self.tz),
            consent_at: given(self.consent_at),
            consent_source: given(self.consent_source),
            reference: given(self.reference),
            fault,
        }
    }
}

/// Reads the JSON `contacts` array: `[{"to": "...", "vars": {...}, "tz": "...",
/// "consent_at": "...", "consent_source": "...", "ref": "..."}]`.
///
/// # Errors
/// [`ListError::Invalid`] when `contacts` is not an array, [`ListError::TooLarge`] past
/// [`MAX_CONTACTS`].
pub fn from_json(contacts: Value) -> Result<Vec<Row>, ListError> {
    let Value::Array(items) = contacts else {
        return Err(ListError::field("contacts", "must be an array of contacts"));
    };
    if items.len() > MAX_CONTACTS {
        return Err(too_many());
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| json_row(Position::Index(i as u64), item))
        .collect())
}

/// A JSON value as a variable's text: strings as they are, numbers and booleans written out.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_row(at: Position, item: Value) -> Row {
    let mut row = Row {
        at,
        to: String::new(),
        vars: BTreeMap::new(),
        tz: None,
        consent_at: None,
        consent_source: None,
        reference: None,
        fault: None,
    };
    let Value::Object(fields) = item else {
        row.fault = Some(FieldError::new("contact", "must be an object with \"to\""));
        return row;
    };
    for (name, value) in fields {
        let fault = match (name.as_str(), value) {
            (_, Value::Null) => None,
            ("to", v) => match scalar(&v) {
                Some(to) => {
                    row.to = to;
                    None
                }
                None => Some(FieldError::new("to", "must be a phone number as text")),
            },
            ("tz", Value::String(tz)) => {
                row.tz = Some(tz.trim().to_owned()).filter(|t| !t.is_empty());
                None
            }
            ("tz", _) => Some(FieldError::new("tz", "must be an IANA time zone name")),
            (CONSENT_AT, Value::String(at)) => {
                row.consent_at = Some(at.trim().to_owned()).filter(|t| !t.is_empty());
                None
            }
            (CONSENT_AT, _) => Some(FieldError::new(
                CONSENT_AT,
                "must be an RFC 3339 timestamp or a YYYY-MM-DD date, as text",
            )),
            (CONSENT_SOURCE, Value::String(source)) => {
                row.consent_source = Some(source.trim().to_owned()).filter(|t| !t.is_empty());
                None
            }
            (CONSENT_SOURCE, _) => Some(FieldError::new(CONSENT_SOURCE, "must be text")),
            (REF, v @ (Value::String(_) | Value::Number(_))) => {
                row.reference = scalar(&v).filter(|r| !r.is_empty());
                None
            }
            (REF, _) => Some(FieldError::new(REF, "must be text")),
            ("vars", Value::Object(vars)) => vars.into_iter().find_map(|(k, v)| {
                if v.is_null() {
                    return None;
                }
                match scalar(&v) {
                    Some(text) if text.is_empty() => None,
                    Some(text) => {
                        row.vars.insert(k.trim().to_owned(), text);
                        None
                    }
                    None => Some(FieldError::new(format!("vars.{k}"), "must be text")),
                }
            }),
            ("vars", _) => Some(FieldError::new("vars", "must be an object of texts")),
            (other, _) => Some(FieldError::new(
                other,
                "unknown field; a contact has to, vars, tz, consent_at, consent_source and ref",
            )),
        };
        if row.fault.is_none() {
            row.fault = fault;
        }
    }
    row
}

/// Checks rows in order, reading national numbers in `region` and calling only that region
/// (the default allow-list for a campaign in `region`); the do-not-call list is applied
/// afterwards ([`Checked::drop_do_not_call`]).
#[must_use]
pub fn check(rows: Vec<Row>, region: Region, script_vars: &BTreeSet<String>) -> Checked {
    let destinations = AllowedCountries::CampaignRegion.for_request(region, region);
    check_for(rows, region, script_vars, Some(&destinations))
}

/// [`check`], calling the `destinations` a request may call; with `None`, a caller that
/// answers a refused destination its own way checks it afterwards.
#[must_use]
pub fn check_for(
    rows: Vec<Row>,
    region: Region,
    script_vars: &BTreeSet<String>,
    destinations: Option<&Destinations>,
) -> Checked {
    let mut checked = Checked::default();
    let mut first_seen: HashMap<E164, Position> = HashMap::with_capacity(rows.len());
    let mut zones: HashMap<String, bool> = HashMap::new();
    for row in rows {
        let at = row.at;
        match check_row(
            row,
            (region, destinations),
            script_vars,
            &mut first_seen,
            &mut zones,
        ) {
            Ok(contact) => checked.accepted.push(contact),
            Err(fault) => checked.rejected.push(Rejected::new(at, fault)),
        }
    }
    checked
}

fn check_row(
    row: Row,
    (region, destinations): (Region, Option<&Destinations>),
    script_vars: &BTreeSet<String>,
    first_seen: &mut HashMap<E164, Position>,
    zones: &mut HashMap<String, bool>,
) -> Result<Contact, FieldError> {
    if let Some(fault) = row.fault {
        return Err(fault);
    }
    let to = phone::parse(&row.to, region).map_err(|e| FieldError::new("to", e.to_string()))?;
    if let Some(destinations) = destinations {
        destinations
            .admit(&to)
            .map_err(|e| FieldError::new("to", e.to_string()))?;
    }
    if let Some(first) = first_seen.get(&to) {
        return Err(FieldError::new(
            "to",
            format!("duplicate of {}", first.describe()),
        ));
    }
    first_seen.insert(to.clone(), row.at);
    if let Some(tz) = &row.tz {
        let known = *zones
            .entry(tz.clone())
            .or_insert_with(|| Zone::get(tz).is_ok());
        if !known {
            return Err(FieldError::new("tz", "is not an IANA time zone name"));
        }
    }
    check_vars(&row.vars, script_vars)?;
    let consent = consent(row.consent_at.as_deref(), row.consent_source.as_deref())?;
    if let Some(reference) = &row.reference {
        check_reference(reference)?;
    }
    Ok(Contact {
        at: row.at,
        to,
        vars: row.vars,
        tz: row.tz,
        consent,
        reference: row.reference,
    })
}

/// A contact's reference: at most [`MAX_REF`] characters, none of them a control character
/// (it goes into CSV exports and event payloads as it is).
///
/// # Errors
/// The `ref` field at fault.
pub fn check_reference(reference: &str) -> Result<(), FieldError> {
    if reference.chars().count() > MAX_REF {
        return Err(FieldError::new(
            REF,
            format!("is at most {MAX_REF} characters"),
        ));
    }
    if reference.chars().any(char::is_control) {
        return Err(FieldError::new(REF, "has a control character"));
    }
    Ok(())
}

/// A contact's consent from its two values: both or neither. The time is an RFC 3339
/// timestamp, or a date read as midnight UTC; whether it lies in the future is decided later,
/// against the request's clock ([`Contact::check_consent`]).
///
/// # Errors
/// The field at fault.
pub fn consent(at: Option<&str>, source: Option<&str>) -> Result<Option<Consent>, FieldError> {
    let (at, source) = match (at, source) {
        (None, None) => return Ok(None),
        (Some(at), Some(source)) => (at, source),
        (Some(_), None) => {
            return Err(FieldError::new(
                CONSENT_SOURCE,
                format!("{NO_CONSENT}: is required with consent_at (give both or neither)"),
            ));
        }
        (None, Some(_)) => {
            return Err(FieldError::new(
                CONSENT_AT,
                format!("{NO_CONSENT}: is required with consent_source (give both or neither)"),
            ));
        }
    };
    let when = consent_time(at).ok_or_else(|| {
        FieldError::new(
            CONSENT_AT,
            "is not an RFC 3339 timestamp (2026-03-01T14:30:00Z) or a date (2026-03-01)",
        )
    })?;
    let source = source.trim();
    if source.is_empty() || source.chars().count() > MAX_CONSENT_SOURCE {
        return Err(FieldError::new(
            CONSENT_SOURCE,
            format!("is 1 to {MAX_CONSENT_SOURCE} characters"),
        ));
    }
    Ok(Some(Consent {
        at: when,
        source: source.to_owned(),
    }))
}

/// `2026-03-01T14:30:00Z` (any offset) or `2026-03-01` (midnight UTC).
fn consent_time(raw: &str) -> Option<Timestamp> {
    let raw = raw.trim();
    let instant = if raw.len() == 10 {
        let date = raw.parse::<jiff::civil::Date>().ok()?;
        format!("{date}T00:00:00Z")
            .parse::<jiff::Timestamp>()
            .ok()?
    } else {
        raw.parse::<jiff::Timestamp>().ok()?
    };
    Some(Timestamp::from_millis(instant.as_millisecond()))
}

/// A contact's variables: few and small enough to travel with the call, named sensibly, and
/// every one the script uses present.
///
/// # Errors
/// The variable at fault.
pub fn check_vars(
    vars: &BTreeMap<String, String>,
    script_vars: &BTreeSet<String>,
) -> Result<(), FieldError> {
    if vars.len() > MAX_VARS {
        return Err(FieldError::new(
            "vars",
            format!("has {} variables; at most {MAX_VARS}", vars.len()),
        ));
    }
    // Characters, as the OpenAPI document's `maxLength` counts them; the byte budget below
    // bounds the item.
    if let Some(bad) = vars
        .keys()
        .find(|k| k.is_empty() || k.chars().count() > MAX_VAR_NAME)
    {
        return Err(FieldError::new(
            format!("vars.{bad}"),
            format!("a variable name is 1 to {MAX_VAR_NAME} characters"),
        ));
    }
    let bytes: usize = vars.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_VARS_BYTES {
        return Err(FieldError::new(
            "vars",
            format!("take {bytes} bytes; at most {MAX_VARS_BYTES} (names and values)"),
        ));
    }
    if let Some(missing) = script_vars.iter().find(|v| !vars.contains_key(*v)) {
        return Err(FieldError::new(
            format!("vars.{missing}"),
            format!("is missing; the script uses {{{{{missing}}}}}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn csv_rows_are_checked_one_by_one_with_their_numbers() {
        let csv = "phone,name,tz\n\
                   +12025550100,Ada,America/New_York\n\
                   not a number,Bob,\n\
                   (202) 555-0100,Cy,\n\
                   +12025550101,,\n\
                   +12025550102,Di,Mars/Olympus\n\
                   +12025550103,Ed,UTC,extra\n\
                   +12025550104,Flo,\n";
        let rows = from_csv(csv, &vars(&["name"])).unwrap();
        let checked = check(rows, Region::US, &vars(&["name"]));
        let accepted: Vec<&str> = checked.accepted.iter().map(|c| c.to.as_str()).collect();
        assert_eq!(accepted, ["+12025550100", "+12025550104"]);
        assert_eq!(checked.accepted[0].tz.as_deref(), Some("America/New_York"));
        assert_eq!(checked.accepted[0].at, Position::Record(2));
        let rejected: Vec<(u64, &str, &str)> = checked
            .rejected
            .iter()
            .map(|r| (r.line.unwrap(), r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [
                (3, "to", "is not a phone number"),
                (4, "to", "duplicate of line 2"),
                (5, "vars.name", "is missing; the script uses {{name}}"),
                (6, "tz", "is not an IANA time zone name"),
                (7, "row", "has 4 fields; the header has 3"),
            ]
        );
    }

    /// The rows' numbers, and the rejected ones'.
    fn numbers(csv: &str) -> (Vec<u64>, Vec<u64>) {
        let rows = from_csv(csv, &vars(&[])).unwrap();
        let all = rows.iter().map(|r| r.at.ordinal()).collect();
        let checked = check(rows, Region::US, &vars(&[]));
        (
            all,
            checked.rejected.iter().map(|r| r.line.unwrap()).collect(),
        )
    }

    #[test]
    fn a_quoted_field_over_two_lines_is_one_row() {
        let csv = "to,note\n+12025550100,\"two\nlines\"\nbad,x\n";
        assert_eq!(numbers(csv), (vec![2, 3], vec![3]));
    }

    #[test]
    fn rows_are_numbered_by_record_whatever_ends_them() {
        for end in ["\n", "\r\n", "\r"] {
            let csv = format!("to{end}+12025550100{end}bad{end}+12025550101{end}");
            assert_eq!(numbers(&csv), (vec![2, 3, 4], vec![3]), "{end:?}");
        }
        // Classic Mac line ends, with no last one: two rows, two numbers.
        let csv = "to,name,date\r+12025553000,A,B\r+12025553001,C,D";
        assert_eq!(numbers(csv), (vec![2, 3], vec![]));
        let mixed = "to\r\n+12025550100\r+12025550101\nbad\r\n\"+1202555\r0102\"\rbad2";
        assert_eq!(numbers(mixed), (vec![2, 3, 4, 5, 6], vec![4, 5, 6]));
    }

    #[test]
    fn blank_rows_are_skipped_and_still_counted() {
        // Empty lines are no records; a row of empty fields is one, blank.
        let csv = "to,name\n\n\r\n+12025550100,A\n,\n  ,  \r\nbad,B\n\n";
        assert_eq!(numbers(csv), (vec![2, 5], vec![5]));
    }

    #[test]
    fn a_header_without_a_contact_is_an_empty_list() {
        for csv in [
            "to,name",
            "to,name\n",
            "\u{feff}to\r\r\n",
            "to,name\n,\n \n",
        ] {
            assert_eq!(from_csv(csv, &vars(&[])), Err(ListError::Empty), "{csv:?}");
        }
        assert_eq!(numbers("\u{feff}to\r+12025550100"), (vec![2], vec![]));
    }

    #[test]
    fn headers_that_cannot_work_fail_the_request() {
        for (csv, needle) in [
            ("name\nAda\n", "number column"),
            ("to,phone\n1,2\n", "number column"),
            ("to,name,name\n", "appears twice"),
            ("to,,x\n", "has no name"),
            ("to\n+12025550100\n", "{{name}}"),
        ] {
            match from_csv(csv, &vars(&["name"])) {
                Err(ListError::Invalid(errors)) => assert!(
                    errors.iter().any(|e| e.reason.contains(needle)),
                    "{csv}: {errors:?}"
                ),
                other => panic!("{csv}: {other:?}"),
            }
        }
        let wide = format!(
            "to,{}\n",
            (0..11)
                .map(|i| format!("v{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(matches!(
            from_csv(&wide, &vars(&[])),
            Err(ListError::Invalid(_))
        ));
    }

    #[test]
    fn json_contacts_report_their_index_and_field() {
        let rows = from_json(json!([
            {"to": "+12025550100", "vars": {"name": "Ada", "n": 3}},
            {"to": "+12025550101", "vars": {"name": ["x"]}},
            {"to": 12025550102_u64, "vars": {"name": "Cy"}},
            {"phone": "+12025550103"},
            "nope",
            {"to": "+12025550100", "vars": {"name": "Ada"}}
        ]))
        .unwrap();
        let checked = check(rows, Region::US, &vars(&["name"]));
        assert_eq!(checked.accepted.len(), 2);
        assert_eq!(checked.accepted[0].vars["n"], "3");
        assert_eq!(checked.accepted[1].to.as_str(), "+12025550102");
        let rejected: Vec<(u64, &str)> = checked
            .rejected
            .iter()
            .map(|r| (r.index.unwrap(), r.field.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [(1, "vars.name"), (3, "phone"), (4, "contact"), (5, "to")]
        );
        assert_eq!(checked.rejected[3].reason, "duplicate of contacts[0]");
        assert!(matches!(from_json(json!({})), Err(ListError::Invalid(_))));
    }

    #[test]
    fn a_contacts_own_reference_is_kept_and_checked() {
        // A column: kept as the reference and, as every column, a template variable.
        let long = "R".repeat(MAX_REF + 1);
        let csv = format!(
            "to,Ref,name\n+12025550100, P-0042 ,Ada\n+12025550101,,Bo\n+12025550102,{long},Cy\n"
        );
        let rows = from_csv(&csv, &vars(&["name"])).unwrap();
        let checked = check(rows, Region::US, &vars(&["name"]));
        let refs: Vec<Option<&str>> = checked
            .accepted
            .iter()
            .map(|c| c.reference.as_deref())
            .collect();
        assert_eq!(refs, [Some("P-0042"), None]);
        assert_eq!(checked.accepted[0].vars["Ref"], "P-0042");
        let rejected: Vec<(u64, &str, &str)> = checked
            .rejected
            .iter()
            .map(|r| (r.line.unwrap(), r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(rejected, [(4, "ref", "is at most 128 characters")]);

        // A field: text or a number, never in `vars`.
        let rows = from_json(json!([
            {"to": "+12025550100", "ref": "acct-7"},
            {"to": "+12025550101", "ref": 90210},
            {"to": "+12025550102", "ref": {"id": 1}},
            {"to": "+12025550103", "ref": "two\nlines"},
            {"to": "+12025550104", "ref": null}
        ]))
        .unwrap();
        let checked = check(rows, Region::US, &vars(&[]));
        let refs: Vec<Option<&str>> = checked
            .accepted
            .iter()
            .map(|c| c.reference.as_deref())
            .collect();
        assert_eq!(refs, [Some("acct-7"), Some("90210"), None]);
        assert!(checked.accepted.iter().all(|c| c.vars.is_empty()));
        let rejected: Vec<(u64, &str, &str)> = checked
            .rejected
            .iter()
            .map(|r| (r.index.unwrap(), r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [
                (2, "ref", "must be text"),
                (3, "ref", "has a control character")
            ]
        );
    }

    #[test]
    fn variables_are_bounded_in_number_and_size() {
        let many: BTreeMap<String, String> =
            (0..11).map(|i| (format!("v{i}"), "x".to_owned())).collect();
        assert_eq!(check_vars(&many, &vars(&[])).unwrap_err().field, "vars");
        let big = BTreeMap::from([("v".to_owned(), "x".repeat(1024))]);
        assert_eq!(check_vars(&big, &vars(&[])).unwrap_err().field, "vars");
    }

    #[test]
    fn do_not_call_numbers_move_to_the_rejected_rows_in_order() {
        let rows = from_csv("to\n+12025550100\nbad\n+12025550101\n", &vars(&[])).unwrap();
        let mut checked = check(rows, Region::US, &vars(&[]));
        let blocked = HashSet::from([E164::parse("+12025550100").unwrap()]);
        checked.drop_do_not_call(&blocked);
        assert_eq!(checked.accepted.len(), 1);
        let lines: Vec<u64> = checked.rejected.iter().map(|r| r.line.unwrap()).collect();
        assert_eq!(lines, [2, 3]);
        assert_eq!(checked.rejected[0].reason, "is on the do-not-call list");
    }

    #[test]
    fn consent_is_both_fields_or_neither_and_never_in_the_future() {
        let csv = "to,consent_at,consent_source\n\
                   +12025550100,2026-03-01,web form 7\n\
                   +12025550101,2026-03-01T14:30:00+01:00,call recording\n\
                   +12025550102,,\n\
                   +12025550103,2026-03-01,\n\
                   +12025550104,yesterday,paper\n\
                   +12025550105,2099-01-01,paper\n";
        let rows = from_csv(csv, &vars(&[])).unwrap();
        let mut checked = check(rows, Region::US, &vars(&[]));
        let now = Timestamp::from_millis(1_900_000_000_000);
        checked.check_consent(now, false);
        let consent = |i: usize| checked.accepted[i].consent.clone();
        assert_eq!(checked.accepted.len(), 3);
        assert_eq!(
            consent(0),
            Some(Consent {
                at: Timestamp::from_millis(1_772_323_200_000),
                source: "web form 7".into()
            })
        );
        assert_eq!(
            consent(1).unwrap().at,
            Timestamp::from_millis(1_772_371_800_000)
        );
        assert_eq!(consent(2), None);
        let rejected: Vec<(u64, &str)> = checked
            .rejected
            .iter()
            .map(|r| (r.line.unwrap(), r.field.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [(5, "consent_source"), (6, "consent_at"), (7, "consent_at")]
        );
        assert!(checked.rejected[0].reason.starts_with(NO_CONSENT));
        assert_eq!(checked.rejected[2].reason, "is in the future");
    }

    #[test]
    fn consent_is_required_only_where_the_purpose_needs_it() {
        let rows = from_json(json!([
            {"to": "+12025550100", "consent_at": "2026-03-01", "consent_source": "form"},
            {"to": "+12025550101"}
        ]))
        .unwrap();
        let mut checked = check(rows, Region::US, &vars(&[]));
        checked.check_consent(Timestamp::from_millis(1_900_000_000_000), true);
        assert_eq!(checked.accepted.len(), 1);
        assert_eq!(checked.rejected[0].index, Some(1));
        assert!(checked.rejected[0].reason.starts_with("no-consent: "));
    }

    #[test]
    fn a_long_list_of_rejections_is_cut_and_says_so() {
        let checked = Checked {
            accepted: Vec::new(),
            rejected: (0..200_000)
                .map(|i| Rejected::new(Position::Record(i), FieldError::new("to", "x".repeat(20))))
                .collect(),
        };
        let (listed, truncated) = checked.listed();
        assert!(truncated);
        assert!(listed.len() < 200_000);
        assert!(serde_json::to_string(listed).unwrap().len() <= MAX_LISTED_BYTES);
    }
}
