//! Phone numbers as people write them, turned into E.164 with the `phonenumber` crate (Google
//! libphonenumber's metadata) and a default region for national formats.
//!
//! Two rules keep a number from ever changing into someone else's:
//!
//! - A number written internationally (`+44 20 7183 8750`) is split into country code and
//!   national number here, digit for digit: `phonenumber` 0.3 strips what it takes for a
//!   trunk prefix from some international numbers when the default region is another
//!   country's (`+49 151 ...` read with region US became `+49 51 ...`).
//! - A number written nationally is parsed by the library, and its answer is accepted only
//!   when the input's digits are the answer's (country code and national number) behind at
//!   most an international dialing prefix, or its national number behind nothing or the
//!   region's trunk prefix (`0`, `1`, `8`, ...).
//!
//! Then the national number must match the country's general number pattern and lengths
//! (libphonenumber's metadata): that refuses numbers that are too short, too long, local-only
//! (a US number without its area code) or impossible, and accepts numbers in ranges that are
//! not assigned yet (such as the fictional `555` numbers), which the network then reports
//! as invalid: metadata lags behind numbering plans, and a refused valid number is worse than
//! a failed call.
//!
//! [`dialable`] then says where a parsed number rings: its country (among the regions sharing
//! its country code, by the metadata's leading digits and number patterns), or why it is
//! never called whatever the account allows: premium-rate and shared-cost numbers, whose
//! calls cost the caller more than a call should, and numbers of the country codes that name
//! no country (international networks such as +882 and +883, satellite services such as +870
//! and +881, global services such as +800, +808 and +979), which an allow-list of countries
//! cannot name.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use outdial_core::ids::E164;
use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use regex::{Regex, RegexBuilder};

/// The longest input looked at; anything longer is not a phone number.
const MAX_INPUT: usize = 64;

/// A region (ISO 3166 country) for numbers written without their country code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Region {
    id: Id,
    code: u16,
}

impl Region {
    pub const US: Self = Self {
        id: Id::US,
        code: 1,
    };

    /// Parses an ISO 3166-1 alpha-2 code (`US`, `gb`).
    ///
    /// # Errors
    /// A reason when the code names no region the phone metadata knows.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let upper = raw.trim().to_ascii_uppercase();
        let bad = || format!("{raw:?} is not an ISO 3166 country code with a numbering plan");
        let id = Id::from_str(&upper).map_err(|_| bad())?;
        let code = DATABASE
            .by_id(upper.as_str())
            .map(phonenumber::Metadata::country_code)
            .ok_or_else(bad)?;
        Ok(Self { id, code })
    }

    /// The ISO 3166-1 alpha-2 code, upper case.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.id.as_ref()
    }

    fn trunk_prefix(self) -> Option<&'static str> {
        DATABASE
            .by_id(self.id.as_ref())
            .and_then(phonenumber::Metadata::national_prefix)
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.id.as_ref())
    }
}

/// Why a string is not a number we can dial. The messages never repeat the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("is empty")]
    Empty,
    #[error("is not a phone number")]
    NotANumber,
    #[error("has an extension, which cannot be dialed")]
    Extension,
    #[error("has no country code that exists")]
    UnknownCountryCode,
    #[error("is too short for its country")]
    TooShort,
    #[error("is too long for its country")]
    TooLong,
    #[error("does not match its country's numbering plan")]
    NotInPlan,
    #[error(
        "could not be read unambiguously; write it in international form (+ and the country code)"
    )]
    Ambiguous,
    #[error("is a premium-rate number, which is never called")]
    PremiumRate,
    #[error("is a shared-cost number, which is never called")]
    SharedCost,
    #[error(
        "is a number of +{0}, an international network, satellite or global service rather than a country, which is never called"
    )]
    NonGeographic(u16),
    #[error("is in {country}, a country this account does not call (it calls {allowed})")]
    NotAllowed { country: String, allowed: String },
}

/// Parses a number as a contact list or a request writes it.
///
/// # Errors
/// A [`NumberError`] saying what is wrong, without the number.
pub fn parse(raw: &str, region: Region) -> Result<E164, NumberError> {
    let input = raw.trim();
    if input.is_empty() {
        return Err(NumberError::Empty);
    }
    if input.len() > MAX_INPUT {
        return Err(NumberError::NotANumber);
    }
    let lower = input.to_ascii_lowercase();
    if lower.contains("ext") || lower.contains('x') || lower.contains(';') || lower.contains('#') {
        return Err(NumberError::Extension);
    }
    let (code, national) = if let Some(rest) = input.strip_prefix('+') {
        international(rest)?
    } else {
        national(input, region)?
    };
    check_plan(code, &national)?;
    E164::parse(&format!("+{code}{national}")).map_err(|_| NumberError::NotANumber)
}

/// Only these may separate the digits of an international number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}')
}

/// `+` and digits: the country code is the one prefix of 1 to 3 digits that names a country
/// (country codes are a prefix code).
fn international(rest: &str) -> Result<(u16, String), NumberError> {
    if !rest.chars().all(|c| c.is_ascii_digit() || is_separator(c)) {
        return Err(NumberError::NotANumber);
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 2 {
        return Err(NumberError::TooShort);
    }
    if digits.starts_with('0') {
        return Err(NumberError::UnknownCountryCode);
    }
    for len in 1..=3.min(digits.len() - 1) {
        let Ok(code) = digits[..len].parse::<u16>() else {
            continue;
        };
        if DATABASE.region(&code).is_some() {
            return Ok((code, digits[len..].to_owned()));
        }
    }
    Err(NumberError::UnknownCountryCode)
}

/// A national (or IDD-prefixed) number, parsed by the library and checked against the input.
fn national(input: &str, region: Region) -> Result<(u16, String), NumberError> {
    if !input.chars().all(|c| c.is_ascii_digit() || is_separator(c)) {
        return Err(NumberError::NotANumber);
    }
    let number = phonenumber::parse(Some(region.id), input).map_err(|e| match e {
        phonenumber::ParseError::InvalidCountryCode => NumberError::UnknownCountryCode,
        phonenumber::ParseError::TooShortNsn | phonenumber::ParseError::TooShortAfterIdd => {
            NumberError::TooShort
        }
        phonenumber::ParseError::TooLong => NumberError::TooLong,
        _ => NumberError::NotANumber,
    })?;
    if number.extension().is_some() {
        return Err(NumberError::Extension);
    }
    let code = number.code().value();
    let national = number.national().to_string();
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    let full = format!("{code}{national}");
    let plain = digits
        .strip_suffix(national.as_str())
        .is_some_and(|before| {
            code == region.code && (before.is_empty() || Some(before) == region.trunk_prefix())
        });
    if digits.ends_with(&full) || plain {
        Ok((code, national))
    } else {
        Err(NumberError::Ambiguous)
    }
}

/// Where a number rings and what it costs, as far as the allow-list is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PremiumRate,
    SharedCost,
    /// Any other kind the metadata describes: fixed line, mobile, toll-free, personal,
    /// VoIP, pager, UAN, voicemail.
    Other,
}

/// One kind of number of a region: its full pattern and its lengths (none: any length the
/// region's numbers have).
#[derive(Debug)]
struct KindPattern {
    kind: Kind,
    lengths: Vec<u16>,
    pattern: Regex,
}

impl KindPattern {
    fn matches(&self, national: &str, len: u16) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&len)) && self.pattern.is_match(national)
    }
}

/// What a region's numbers look like: the lengths its kinds of numbers have (its general
/// description leaves them out), its general pattern, anchored at both ends (the crate's
/// own matching anchors only the start), and what tells its numbers from those of the other
/// regions sharing its country code: its leading digits, when the metadata gives them, and
/// the pattern of each kind of number.
#[derive(Debug)]
struct Plan {
    /// The ISO 3166 code, or `001` for a country code that names no country.
    id: String,
    lengths: Vec<u16>,
    pattern: Regex,
    /// Anchored at the start only: a prefix.
    leading: Option<Regex>,
    kinds: Vec<KindPattern>,
}

/// The national number must have a length some kind of number of the country has, and
/// match the country's general number pattern in full, for one of the regions that share the
/// country code.
fn check_plan(code: u16, national: &str) -> Result<(), NumberError> {
    let plans = plans(code).ok_or(NumberError::UnknownCountryCode)?;
    let len = u16::try_from(national.len()).unwrap_or(u16::MAX);
    if plans
        .iter()
        .any(|p| p.lengths.contains(&len) && p.pattern.is_match(national))
    {
        return Ok(());
    }
    // Too short or too long by the lengths of the code's main country (the US for +1).
    let lengths = plans
        .first()
        .map(|p| p.lengths.as_slice())
        .unwrap_or_default();
    let min = lengths.iter().copied().min().unwrap_or(0);
    let max = lengths.iter().copied().max().unwrap_or(u16::MAX);
    if len < min {
        Err(NumberError::TooShort)
    } else if len > max {
        Err(NumberError::TooLong)
    } else {
        Err(NumberError::NotInPlan)
    }
}

/// The country code and national number of an E.164 number (country codes are a prefix
/// code, so at most one prefix of 1 to 3 digits names one).
fn split(number: &E164) -> Result<(u16, &str), NumberError> {
    let digits = number.as_str().trim_start_matches('+');
    for len in 1..=3.min(digits.len().saturating_sub(1)) {
        let (code, national) = digits.split_at(len);
        if let Ok(code) = code.parse::<u16>()
            && DATABASE.region(&code).is_some()
        {
            return Ok((code, national));
        }
    }
    Err(NumberError::UnknownCountryCode)
}

/// Where a number [`parse`] accepted rings: its country, or why it is never called
/// (premium-rate, shared-cost, or a country code that names no country). The country is
/// the region sharing the country code whose leading digits or kinds of number the national
/// number matches (libphonenumber's rule); a number that matches none of them (an
/// unassigned range such as the fictional `555` numbers) belongs to the code's main country.
///
/// # Errors
/// A [`NumberError`] saying why the number is never called.
pub fn dialable(number: &E164) -> Result<Region, NumberError> {
    let (code, national) = split(number)?;
    let plans = plans(code).ok_or(NumberError::UnknownCountryCode)?;
    let len = u16::try_from(national.len()).unwrap_or(u16::MAX);
    let plan = plans
        .iter()
        .find(|p| match &p.leading {
            Some(leading) => leading.is_match(national),
            None => p.kinds.iter().any(|k| k.matches(national, len)),
        })
        .or_else(|| plans.first())
        .ok_or(NumberError::UnknownCountryCode)?;
    let Ok(region) = Region::parse(&plan.id) else {
        return Err(NumberError::NonGeographic(code));
    };
    match plan.kinds.iter().find(|k| k.matches(national, len)) {
        Some(KindPattern {
            kind: Kind::PremiumRate,
            ..
        }) => Err(NumberError::PremiumRate),
        Some(KindPattern {
            kind: Kind::SharedCost,
            ..
        }) => Err(NumberError::SharedCost),
        _ => Ok(region),
    }
}

/// The plans of the regions sharing country code `code`, the main one first; built once per
/// code, as a contact list checks every number against them.
fn plans(code: u16) -> Option<Arc<[Plan]>> {
    type Plans = HashMap<u16, Option<Arc<[Plan]>>>;
    static PLANS: OnceLock<Mutex<Plans>> = OnceLock::new();
    let mut cache = PLANS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(code)
        .or_insert_with(|| {
            let mut regions = DATABASE.by_code(&code)?;
            regions.sort_by_key(|r| !r.is_main_country_for_code());
            let plans: Vec<Plan> = regions.iter().filter_map(|r| plan(r)).collect();
            (!plans.is_empty()).then(|| plans.into())
        })
        .clone()
}

/// `pattern` compiled as the metadata writes it (free spacing), anchored at the start and,
/// when `whole`, at the end.
fn anchored(pattern: &str, whole: bool) -> Option<Regex> {
    let end = if whole { "$" } else { "" };
    RegexBuilder::new(&format!("^(?:{pattern}){end}"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

fn plan(region: &phonenumber::Metadata) -> Option<Plan> {
    let d = region.descriptors();
    // Premium rate first, as libphonenumber tells kinds apart: a range that is both premium
    // and something else is premium.
    let described = [
        (Kind::PremiumRate, d.premium_rate()),
        (Kind::SharedCost, d.shared_cost()),
        (Kind::Other, d.fixed_line()),
        (Kind::Other, d.mobile()),
        (Kind::Other, d.toll_free()),
        (Kind::Other, d.personal_number()),
        (Kind::Other, d.voip()),
        (Kind::Other, d.pager()),
        (Kind::Other, d.uan()),
        (Kind::Other, d.voicemail()),
    ];
    let lengths = described
        .iter()
        .filter_map(|(_, desc)| *desc)
        .flat_map(|desc| desc.possible_length().iter().copied())
        .collect();
    let kinds = described
        .iter()
        .filter_map(|(kind, desc)| {
            let desc = (*desc)?;
            Some(KindPattern {
                kind: *kind,
                lengths: desc.possible_length().to_vec(),
                pattern: anchored(desc.national_number().as_str(), true)?,
            })
        })
        .collect();
    Some(Plan {
        id: region.id().to_owned(),
        lengths,
        pattern: anchored(d.general().national_number().as_str(), true)?,
        leading: region
            .leading_digits()
            .and_then(|l| anchored(l.as_str(), false)),
        kinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us(raw: &str) -> Result<String, NumberError> {
        parse(raw, Region::US).map(|n| n.as_str().to_owned())
    }

    fn region(code: &str) -> Region {
        Region::parse(code).unwrap()
    }

    #[test]
    fn national_formats_use_the_default_region() {
        assert_eq!(us("(202) 555-0100").unwrap(), "+12025550100");
        assert_eq!(us("1 202 555 0100").unwrap(), "+12025550100");
        assert_eq!(us("202.555.0100").unwrap(), "+12025550100");
        assert_eq!(
            parse("020 7183 8750", region("gb")).unwrap().as_str(),
            "+442071838750"
        );
        assert_eq!(
            parse("015112345678", region("DE")).unwrap().as_str(),
            "+4915112345678"
        );
        assert_eq!(
            parse("06 1234 5678", region("IT")).unwrap().as_str(),
            "+390612345678"
        );
    }

    #[test]
    fn international_numbers_keep_every_digit_whatever_the_region() {
        for (raw, e164) in [
            ("+49 151 12345678", "+4915112345678"),
            ("+4915112345678", "+4915112345678"),
            ("+55 11 91234-5678", "+5511912345678"),
            ("+86 138 1234 5678", "+8613812345678"),
            ("+7 800 555-35-35", "+78005553535"),
            ("+1 (202) 555-0100", "+12025550100"),
            ("+15555550100", "+15555550100"),
        ] {
            assert_eq!(us(raw).unwrap(), e164, "{raw}");
        }
    }

    #[test]
    fn a_dialing_prefix_reaches_another_country() {
        assert_eq!(us("011 44 20 7183 8750").unwrap(), "+442071838750");
    }

    #[test]
    fn a_national_number_the_library_would_change_is_refused_not_guessed() {
        // phonenumber 0.3 reads these as +49 5112345678 and +7 005553535.
        assert_eq!(us("011 49 151 12345678"), Err(NumberError::Ambiguous));
        assert!(parse("8 800 555 35 35", region("RU")).is_err());
    }

    #[test]
    fn numbers_that_cannot_be_dialed_are_refused_with_a_reason() {
        assert_eq!(us(""), Err(NumberError::Empty));
        assert_eq!(us("   "), Err(NumberError::Empty));
        assert_eq!(us("call me"), Err(NumberError::NotANumber));
        assert_eq!(us("555-0100"), Err(NumberError::TooShort));
        assert_eq!(us("+1 202 555 0100 ext 5"), Err(NumberError::Extension));
        assert_eq!(us("+999 123 4567"), Err(NumberError::UnknownCountryCode));
        assert_eq!(us("+1 202 555 01000"), Err(NumberError::TooLong));
        assert_eq!(us("+1 055 555 0100"), Err(NumberError::NotInPlan));
        assert_eq!(us("+0 12"), Err(NumberError::UnknownCountryCode));
        assert_eq!(us(&"1".repeat(65)), Err(NumberError::NotANumber));
    }

    #[test]
    fn regions_are_iso_codes_with_a_numbering_plan() {
        assert_eq!(region("us"), Region::US);
        assert!(Region::parse("XX").is_err());
        assert!(Region::parse("").is_err());
    }

    #[test]
    fn errors_never_repeat_the_number() {
        for raw in ["+1 202 555 0100 ext 5", "011 49 151 12345678", "12"] {
            let err = us(raw).unwrap_err().to_string();
            assert!(!err.contains("555") && !err.contains("151"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_yields_e164(s in "\\PC{0,40}") {
            if let Ok(n) = parse(&s, Region::US) {
                prop_assert!(E164::parse(n.as_str()).is_ok());
            }
        }

        #[test]
        fn digit_strings_never_panic(s in "[+0-9 ()-]{0,24}") {
            let _ = parse(&s, Region::US);
            let _ = parse(&s, region("DE"));
        }

        #[test]
        fn an_accepted_international_number_keeps_its_digits(rest in "[1-9][0-9]{6,13}") {
            let raw = format!("+{rest}");
            if let Ok(n) = parse(&raw, Region::US) {
                prop_assert_eq!(n.as_str(), raw.as_str());
            }
        }
    }
}
