//! A campaign's spec as a request writes it, checked field by field.
//!
//! The wire form is `{name, from, script, retry?, pacing?, limits?, window?,
//! default_region?}`. Every field is checked and every fault reported at once, each with its
//! path (`spec.pacing.calls_per_second`), so one round trip fixes a spec.

use outdial_core::ids::E164;
use outdial_core::record::{Limits, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::script::Script;
use outdial_core::window::CallingWindow;
use serde::Deserialize;
use serde_json::Value;

use crate::errors::FieldError;
use crate::phone::{self, Region};

/// The fastest a campaign may ask to dial; the account's own cap applies on top.
pub const MAX_CALLS_PER_SECOND: f64 = 100.0;
/// The most live calls a campaign may ask for.
pub const MAX_CONCURRENT: u32 = 10_000;
/// The longest campaign name.
pub const MAX_NAME: usize = 200;

const FIELDS: [&str; 8] = [
    "name",
    "from",
    "script",
    "retry",
    "pacing",
    "limits",
    "window",
    "default_region",
];

/// A checked spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub from: E164,
    pub script: Script,
    pub retry: RetryPolicy,
    pub pacing: Pacing,
    pub limits: Limits,
    pub window: Option<CallingWindow>,
    pub default_region: Region,
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
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(FieldError::new(format!("{prefix}.from"), e.to_string()));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                format!("{prefix}.from"),
                "must be a phone number in E.164 (\"+15555550100\")",
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
        ) if errors.is_empty() => Ok(Spec {
            name,
            from,
            script,
            retry,
            pacing,
            limits,
            window,
            default_region,
        }),
        _ => Err(errors),
    }
}

fn check_pacing(wire: &PacingWire, prefix: &str, errors: &mut Vec<FieldError>) -> Option<Pacing> {
    let default = Pacing::default();
    let calls_per_second = wire.calls_per_second.unwrap_or(default.calls_per_second);
    let max_concurrent = wire.max_concurrent.unwrap_or(default.max_concurrent);
    let mut ok = true;
    if !(calls_per_second.is_finite()
        && calls_per_second > 0.0
        && calls_per_second <= MAX_CALLS_PER_SECOND)
    {
        errors.push(FieldError::new(
            format!("{prefix}.pacing.calls_per_second"),
            format!("must be more than 0 and at most {MAX_CALLS_PER_SECOND}"),
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
        assert_eq!(spec.from.as_str(), "+15555550199");
        assert_eq!(spec.pacing, Pacing::default());
        assert_eq!(spec.limits, Limits::default());
        assert_eq!(spec.retry, RetryPolicy::default());
        assert_eq!(spec.default_region, Region::US);
        assert!(spec.window.is_none());
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
    fn a_spec_that_is_not_an_object_is_refused() {
        let errors = parse(json!([1]), "X-Outdial-Spec").unwrap_err();
        assert_eq!(errors[0].field, "X-Outdial-Spec");
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
