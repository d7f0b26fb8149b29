//! A campaign's spec as a request writes it, checked field by field.
//!
//! The wire form is `{name, from, script, retry?, pacing?, limits?, window?,
//! default_region?, purpose?, on_cap?}`, where `from` is a number or a caller-ID pool
//! (`{"pool": "NAME", "local_presence": true}`). Every field is checked and every fault reported at
//! once, each with its path (`spec.pacing.calls_per_second`), so one round trip fixes a spec.

use std::time::Duration;

use outdial_core::ids::E164;
use outdial_core::numbers::valid_pool;
use outdial_core::pacing::MIN_RATE;
use outdial_core::policy::{OnCap, Purpose};
use outdial_core::record::{Limits, Pacing, PoolRef};
use outdial_core::retry::RetryPolicy;
use outdial_core::script::Script;
use outdial_core::time::Timestamp;
use outdial_core::window::CallingWindow;
use serde::Deserialize;
use serde_json::Value;

use crate::errors::FieldError;
use crate::phone::{self, Region};

/// The fastest a campaign may ask to dial; the account's own cap applies on top.
pub const MAX_CALLS_PER_SECOND: f64 = 100.0;
/// The slowest a campaign may ask to dial (one call every 100 s): the slowest rate the
/// dispatcher's pacer keeps, so a campaign never asks for a pace it would not get.
pub const MIN_CALLS_PER_SECOND: f64 = MIN_RATE;
/// How far apart one request's calls that may first go at the same moment are due at most
/// (see `endpoints::new_calls`): core's bound on every due offset.
pub use outdial_core::pacing::MAX_DUE_SPREAD;
/// How soon a campaign's calling window must next open for calls to be added to it: a first
/// attempt is due at that opening, and one skipped dates push months away would sit in the
/// table unseen, or outlive its item.
pub const OPENING_HORIZON: Duration = Duration::from_secs(30 * 86_400);
/// The most live calls a campaign may ask for.
pub const MAX_CONCURRENT: u32 = 10_000;
/// The longest campaign name.
pub const MAX_NAME: usize = 200;

const FIELDS: [&str; 10] = [
    "name",
    "from",
    "script",
    "retry",
    "pacing",
    "limits",
    "window",
    "default_region",
    "purpose",
    "on_cap",
];

/// Where a campaign's calls come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// One number, for every call.
    Number(E164),
    /// A pool of caller IDs, one chosen for each dial.
    Pool(PoolRef),
}

/// The members a pool reference (`from` as an object) has.
const POOL_FIELDS: [&str; 2] = ["pool", "local_presence"];

/// A checked spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub from: Caller,
    pub script: Script,
    pub retry: RetryPolicy,
    pub pacing: Pacing,
    pub limits: Limits,
    pub window: Option<CallingWindow>,
    pub default_region: Region,
    pub purpose: Purpose,
    pub on_cap: OnCap,
}

/// `pacing` on the wire: either field may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PacingWire {
    calls_per_second: Option<f64>,
    max_concurrent: Option<u32>,
}

/// Splits a core error message of the form `section.field...: reason` (or
/// `section.field must ...`) into the field, under `prefix`, and the reason.
fn core_error(prefix: &str, section: &str, message: &str) -> FieldError {
    let message = message.trim();
    if message.starts_with(&format!("{section}.")) {
        let end = message.find([':', ' ']).unwrap_or(message.len());
        let (field, rest) = message.split_at(end);
        let reason = rest.trim_start_matches(':').trim();
        if !reason.is_empty() {
            return FieldError::new(format!("{prefix}.{field}"), reason);
        }
    }
    FieldError::new(format!("{prefix}.{section}"), message)
}

/// Checks a spec given as JSON; `prefix` names where it came from (`spec`, or the
/// `X-Outdial-Spec` header).
///
/// # Errors
/// Every field at fault.
pub fn parse(value: Value, prefix: &str) -> Result<Spec, Vec<FieldError>> {
    let Value::Object(mut fields) = value else {
        return Err(vec![FieldError::new(prefix, "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for unknown in fields.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(FieldError::new(
            format!("{prefix}.{unknown}"),
            format!("unknown field; a spec has {}", FIELDS.join(", ")),
        ));
    }
    let mut take = |name: &str| fields.remove(name).filter(|v| !v.is_null());

    let default_region = match take("default_region") {
        None => Some(Region::US),
        Some(Value::String(s)) => Region::parse(&s)
            .map_err(|reason| {
                errors.push(FieldError::new(format!("{prefix}.default_region"), reason))
            })
            .ok(),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{prefix}.default_region"),
                "must be an ISO 3166 country code such as \"US\"",
            ));
            None
        }
    };
    let name = match take("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME => {
            Some(s.trim().to_owned())
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("{prefix}.name"),
                format!("must be text of 1 to {MAX_NAME} characters"),
            ));
            None
        }
        None => {
            errors.push(FieldError::new(format!("{prefix}.name"), "is required"));
            None
        }
    };
    let from = match take("from") {
        Some(Value::String(s)) => match phone::parse(&s, default_region.unwrap_or(Region::US)) {
            Ok(n) => Some(Caller::Number(n)),
            Err(e) => {
                errors.push(FieldError::new(format!("{prefix}.from"), e.to_string()));
                None
            }
        },
        Some(Value::Object(pool)) => pool_ref(pool, prefix, &mut errors).map(Caller::Pool),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{prefix}.from"),
                "must be a phone number in E.164 (\"+15555550100\") or a caller-ID pool \
                 ({\"pool\": \"NAME\"})",
            ));
            None
        }
        None => {
            errors.push(FieldError::new(format!("{prefix}.from"), "is required"));
            None
        }
    };
    let script = match take("script") {
        Some(v) => serde_json::from_value::<Script>(v)
            .map_err(|e| errors.push(core_error(prefix, "script", &e.to_string())))
            .ok(),
        None => {
            errors.push(FieldError::new(format!("{prefix}.script"), "is required"));
            None
        }
    };
    let retry = match take("retry") {
        Some(v) => serde_json::from_value::<RetryPolicy>(v)
            .map_err(|e| errors.push(core_error(prefix, "retry", &e.to_string())))
            .ok(),
        None => Some(RetryPolicy::default()),
    };
    let pacing = match take("pacing") {
        Some(v) => match serde_json::from_value::<PacingWire>(v) {
            Ok(wire) => check_pacing(&wire, prefix, &mut errors),
            Err(e) => {
                errors.push(FieldError::new(format!("{prefix}.pacing"), e.to_string()));
                None
            }
        },
        None => Some(Pacing::default()),
    };
    let limits = match take("limits") {
        Some(v) => match serde_json::from_value::<Limits>(v) {
            Ok(limits) => check_limits(limits, prefix, &mut errors),
            Err(e) => {
                errors.push(FieldError::new(format!("{prefix}.limits"), e.to_string()));
                None
            }
        },
        None => Some(Limits::default()),
    };
    let purpose = match take("purpose") {
        None => Some(Purpose::default()),
        Some(v) => v.as_str().and_then(Purpose::parse).or_else(|| {
            let all = Purpose::ALL.map(Purpose::as_str).join(", ");
            errors.push(FieldError::new(
                format!("{prefix}.purpose"),
                format!("is one of {all}"),
            ));
            None
        }),
    };
    let on_cap = match take("on_cap") {
        None => Some(OnCap::default()),
        Some(v) => serde_json::from_value::<OnCap>(v)
            .map_err(|_| {
                errors.push(FieldError::new(
                    format!("{prefix}.on_cap"),
                    "is cancel or defer",
                ));
            })
            .ok(),
    };
    let window = match take("window") {
        Some(v) => serde_json::from_value::<CallingWindow>(v)
            .map(Some)
            .map_err(|e| errors.push(core_error(prefix, "window", &e.to_string())))
            .ok(),
        None => Some(None),
    };
    match (
        name,
        from,
        script,
        retry,
        pacing,
        limits,
        window,
        default_region,
        purpose,
        on_cap,
    ) {
        (
            Some(name),
            Some(from),
            Some(script),
            Some(retry),
            Some(pacing),
            Some(limits),
            Some(window),
            Some(default_region),
            Some(purpose),
            Some(on_cap),
        ) if errors.is_empty() => Ok(Spec {
            name,
            from,
            script,
            retry,
            pacing,
            limits,
            window,
            default_region,
            purpose,
            on_cap,
        }),
        _ => Err(errors),
    }
}

/// Reads `from` given as a pool reference: `pool` a pool's name, `local_presence` a boolean
/// (false when absent).
fn pool_ref(
    mut fields: serde_json::Map<String, Value>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<PoolRef> {
    let before = errors.len();
    for unknown in fields.keys().filter(|k| !POOL_FIELDS.contains(&k.as_str())) {
        errors.push(FieldError::new(
            format!("{prefix}.from.{unknown}"),
            format!(
                "unknown field; a caller-ID pool has {}",
                POOL_FIELDS.join(", ")
            ),
        ));
    }
    let pool = match fields.remove("pool") {
        Some(Value::String(name)) if valid_pool(&name) => Some(name),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                format!("{prefix}.from.pool"),
                "is required",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("{prefix}.from.pool"),
                "must be a pool's name: 1 to 64 letters, digits, '-' or '_'",
            ));
            None
        }
    };
    let local_presence = match fields.remove("local_presence") {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(on)) => Some(on),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{prefix}.from.local_presence"),
                "must be true or false",
            ));
            None
        }
    };
    match (pool, local_presence) {
        (Some(pool), Some(local_presence)) if errors.len() == before => Some(PoolRef {
            pool,
            local_presence,
        }),
        _ => None,
    }
}

fn check_pacing(wire: &PacingWire, prefix: &str, errors: &mut Vec<FieldError>) -> Option<Pacing> {
    let default = Pacing::default();
    let calls_per_second = wire.calls_per_second.unwrap_or(default.calls_per_second);
    let max_concurrent = wire.max_concurrent.unwrap_or(default.max_concurrent);
    let mut ok = true;
    // `contains` is false for NaN, and the wire form never holds an infinity.
    if !(MIN_CALLS_PER_SECOND..=MAX_CALLS_PER_SECOND).contains(&calls_per_second) {
        errors.push(FieldError::new(
            format!("{prefix}.pacing.calls_per_second"),
            format!("must be {MIN_CALLS_PER_SECOND} to {MAX_CALLS_PER_SECOND}"),
        ));
        ok = false;
    }
    if !(1..=MAX_CONCURRENT).contains(&max_concurrent) {
        errors.push(FieldError::new(
            format!("{prefix}.pacing.max_concurrent"),
            format!("must be 1 to {MAX_CONCURRENT}"),
        ));
        ok = false;
    }
    ok.then_some(Pacing {
        calls_per_second,
        max_concurrent,
    })
}

fn check_limits(limits: Limits, prefix: &str, errors: &mut Vec<FieldError>) -> Option<Limits> {
    let mut ok = true;
    if !(5..=600).contains(&limits.ring_timeout_s) {
        errors.push(FieldError::new(
            format!("{prefix}.limits.ring_timeout_s"),
            "must be 5 to 600 seconds",
        ));
        ok = false;
    }
    if !(10..=4 * 3600).contains(&limits.max_call_s) {
        errors.push(FieldError::new(
            format!("{prefix}.limits.max_call_s"),
            "must be 10 to 14400 seconds",
        ));
        ok = false;
    }
    ok.then_some(limits)
}

/// Refuses a script that does not say who is calling as its first spoken words
/// ([`Script::check_identification`]), as the field `<prefix>.script.caller_name`; `prefix`
/// names where the spec came from.
///
/// # Errors
/// The field and why.
pub fn check_identification(script: &Script, prefix: &str) -> Result<(), FieldError> {
    script.check_identification().map_err(|e| {
        let message = e.to_string();
        let reason = message
            .strip_prefix("script.caller_name:")
            .map_or(message.as_str(), str::trim);
        FieldError::new(format!("{prefix}.script.caller_name"), reason)
    })
}

/// Checks that `window` opens within [`OPENING_HORIZON`] of `now` in its own zone (in any
/// other zone it opens at most about a day apart: the same local hours).
///
/// # Errors
/// A reason, naming when it next opens.
pub fn check_opening(window: Option<&CallingWindow>, now: Timestamp) -> Result<(), String> {
    let Some(window) = window else {
        return Ok(());
    };
    let opening = window.next_opening(now, window.zone());
    if opening <= now.plus(OPENING_HORIZON) {
        return Ok(());
    }
    Err(format!(
        "does not open within {} days (next at {}): skip_dates leave it closed",
        OPENING_HORIZON.as_secs() / 86_400,
        crate::views::time(opening)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn script() -> Value {
        json!({"start": "hi", "steps": {"hi": {"say": "Hello {{name}}."}}})
    }

    #[test]
    fn a_minimal_spec_takes_the_defaults() {
        let spec = parse(
            json!({"name": " reminders ", "from": "+15555550199", "script": script()}),
            "spec",
        )
        .unwrap();
        assert_eq!(spec.name, "reminders");
        assert_eq!(
            spec.from,
            Caller::Number(E164::parse("+15555550199").unwrap())
        );
        assert_eq!(spec.pacing, Pacing::default());
        assert_eq!(spec.limits, Limits::default());
        assert_eq!(spec.retry, RetryPolicy::default());
        assert_eq!(spec.default_region, Region::US);
        assert!(spec.window.is_none());
        assert_eq!(spec.purpose, Purpose::Informational);
        assert_eq!(spec.on_cap, OnCap::Cancel);
    }

    #[test]
    fn purpose_and_on_cap_are_read_and_checked() {
        let with = |purpose: Value, on_cap: Value| {
            parse(
                json!({"name": "n", "from": "+15555550199", "script": script(),
                       "purpose": purpose, "on_cap": on_cap}),
                "spec",
            )
        };
        let spec = with(json!("telemarketing"), json!("defer")).unwrap();
        assert_eq!(spec.purpose, Purpose::Telemarketing);
        assert_eq!(spec.on_cap, OnCap::Defer);
        let errors = with(json!("sales"), json!("drop")).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.purpose", "spec.on_cap"]);
    }

    #[test]
    fn every_fault_is_reported_with_its_field() {
        let errors = parse(
            json!({
                "name": "",
                "from": "nope",
                "script": {"start": "missing", "steps": {"hi": {"say": "Hello"}}},
                "retry": {"max_attempts": 0},
                "pacing": {"calls_per_second": 0, "max_concurrent": 0},
                "limits": {"ring_timeout_s": 1},
                "window": {"timezone": "Mars/Olympus", "hours": {"mon": ["09:00-10:00"]}},
                "default_region": "XX",
                "colour": "blue"
            }),
            "spec",
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for field in [
            "spec.colour",
            "spec.default_region",
            "spec.name",
            "spec.from",
            "spec.script.start",
            "spec.retry.max_attempts",
            "spec.pacing.calls_per_second",
            "spec.pacing.max_concurrent",
            "spec.limits.ring_timeout_s",
            "spec.window.timezone",
        ] {
            assert!(fields.contains(&field), "{field} missing from {fields:?}");
        }
    }

    #[test]
    fn from_may_name_a_pool_checked_field_by_field() {
        let with = |from: Value| {
            parse(
                json!({"name": "n", "from": from, "script": script()}),
                "spec",
            )
        };
        let spec = with(json!({"pool": "east-1", "local_presence": true})).unwrap();
        assert_eq!(
            spec.from,
            Caller::Pool(PoolRef {
                pool: "east-1".into(),
                local_presence: true
            })
        );
        let spec = with(json!({"pool": "east_1"})).unwrap();
        assert_eq!(
            spec.from,
            Caller::Pool(PoolRef {
                pool: "east_1".into(),
                local_presence: false
            })
        );
        for (from, field) in [
            (json!({"pool": "east 1"}), "spec.from.pool"),
            (json!({"pool": ""}), "spec.from.pool"),
            (json!({"pool": "x".repeat(65)}), "spec.from.pool"),
            (json!({"pool": 7}), "spec.from.pool"),
            (json!({}), "spec.from.pool"),
            (
                json!({"pool": "east", "local_presence": "yes"}),
                "spec.from.local_presence",
            ),
            (
                json!({"pool": "east", "colour": "blue"}),
                "spec.from.colour",
            ),
            (json!(["east"]), "spec.from"),
        ] {
            let errors = with(from.clone()).unwrap_err();
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, [field], "{from}");
        }
    }

    #[test]
    fn a_spec_that_is_not_an_object_is_refused() {
        let errors = parse(json!([1]), "X-Outdial-Spec").unwrap_err();
        assert_eq!(errors[0].field, "X-Outdial-Spec");
    }

    #[test]
    fn rates_are_bounded_to_what_the_pacer_keeps() {
        let with_rate = |rate: Value| {
            parse(
                json!({"name": "n", "from": "+15555550199", "script": script(),
                       "pacing": {"calls_per_second": rate}}),
                "spec",
            )
        };
        for bad in [
            json!(1e-300),
            json!(0.009),
            json!(0),
            json!(-1),
            json!(100.5),
        ] {
            let errors = with_rate(bad.clone()).unwrap_err();
            assert_eq!(errors[0].field, "spec.pacing.calls_per_second", "{bad}");
        }
        for good in [json!(0.01), json!(1), json!(100)] {
            assert!(with_rate(good.clone()).is_ok(), "{good}");
        }
    }

    fn window(skip: &[String]) -> CallingWindow {
        serde_json::from_value(json!({"timezone": "UTC", "hours": {"mon": ["09:00-10:00"]},
                                      "skip_dates": skip}))
        .unwrap()
    }

    #[test]
    fn a_window_must_open_within_the_horizon() {
        // 2030-03-17 is a Sunday; the next Mondays are the 18th, the 25th, ...
        let now = Timestamp::from_millis(1_900_000_000_000);
        assert!(check_opening(None, now).is_ok());
        assert!(check_opening(Some(&window(&[])), now).is_ok());
        let mondays = |n: usize| -> Vec<String> {
            let first = jiff::civil::date(2030, 3, 18);
            (0..n)
                .map(|i| {
                    let weeks = i32::try_from(i).unwrap() * 7;
                    first
                        .checked_add(jiff::Span::new().days(weeks))
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        // Four skipped Mondays: the fifth, 29 days on, is inside 30 days.
        assert!(check_opening(Some(&window(&mondays(4))), now).is_ok());
        let reason = check_opening(Some(&window(&mondays(366))), now).unwrap_err();
        assert!(reason.contains("does not open within 30 days"), "{reason}");
        assert!(reason.contains("2037-"), "{reason}");
    }

    #[test]
    fn partial_pacing_fills_in_the_rest() {
        let spec = parse(
            json!({"name": "n", "from": "+15555550199", "script": script(),
                   "pacing": {"calls_per_second": 5}}),
            "spec",
        )
        .unwrap();
        assert!((spec.pacing.calls_per_second - 5.0).abs() < f64::EPSILON);
        assert_eq!(spec.pacing.max_concurrent, Pacing::default().max_concurrent);
    }
}
