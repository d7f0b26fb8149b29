//! Valid campaign requests mutated field by field, sent through the handler over the
//! in-memory store: whatever a field holds (another type, empty, huge, negative, NaN-like,
//! unicode), the answer is a 2xx or a 4xx problem detail, never a 5xx or a panic; and an
//! accepted campaign holds exactly the calls it says it accepted.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::memory::{Memory, spec};

/// Where a mutation lands: a JSON pointer into the request.
const FIELDS: &[&str] = &[
    "/spec",
    "/spec/name",
    "/spec/from",
    "/spec/default_region",
    "/spec/script",
    "/spec/script/start",
    "/spec/script/steps",
    "/spec/script/steps/hi",
    "/spec/script/steps/hi/say",
    "/spec/script/voice",
    "/spec/pacing",
    "/spec/pacing/calls_per_second",
    "/spec/pacing/max_concurrent",
    "/spec/retry",
    "/spec/retry/max_attempts",
    "/spec/retry/busy_after_s",
    "/spec/limits",
    "/spec/limits/ring_timeout_s",
    "/spec/limits/max_call_s",
    "/spec/window",
    "/spec/window/timezone",
    "/spec/window/hours",
    "/spec/window/hours/mon",
    "/spec/window/hours/mon/0",
    "/spec/window/skip_dates",
    "/spec/window/skip_dates/0",
    "/contacts",
    "/contacts/0",
    "/contacts/0/to",
    "/contacts/0/vars",
    "/contacts/0/vars/name",
    "/contacts/0/tz",
    "/contacts/1/to",
    "/contacts/2",
];

/// A request every field of which is valid: three contacts, a window, every section.
fn valid() -> Value {
    let mut spec = spec();
    spec["default_region"] = json!("US");
    spec["retry"] = json!({"max_attempts": 3, "busy_after_s": 300});
    spec["limits"] = json!({"ring_timeout_s": 60, "max_call_s": 600});
    spec["window"] = json!({"timezone": "America/New_York",
                            "hours": {"mon": ["09:00-17:00"], "sat": ["10:00-12:00"]},
                            "skip_dates": ["2030-12-25"]});
    json!({"spec": spec, "contacts": [
        {"to": "+12025550100", "vars": {"name": "Ada"}, "tz": "America/Chicago"},
        {"to": "(202) 555-0101", "vars": {"name": "Bob"}},
        {"to": "+1 202 555 0102", "vars": {"name": "Cy", "n": 3}}
    ]})
}

/// What a field may be replaced by.
fn mutant() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1e-300)),
        Just(json!(5e-324)),
        Just(json!(1.7976931348623157e308)),
        Just(json!(-9_223_372_036_854_775_808_i64)),
        Just(json!(18_446_744_073_709_551_615_u64)),
        Just(json!(0.5)),
        Just(json!("")),
        Just(json!(" ")),
        Just(json!("NaN")),
        Just(json!("Infinity")),
        Just(json!("-0")),
        Just(json!("1e999")),
        Just(json!("+19005550100")),
        Just(json!("+979123456789")),
        Just(json!("Europe/London")),
        Just(json!("24:00-09:00")),
        Just(json!("9999-12-31")),
        Just(json!("\u{0}\u{202e}\u{fffd}𝄞é")),
        Just(json!([])),
        Just(json!({})),
        Just(json!([null])),
        Just(json!({"": ""})),
        Just(json!("x".repeat(70_000))),
        Just(Value::Array(vec![json!(1); 300])),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::String),
    ]
}

/// `value` with the field at `pointer` replaced by `with` (or added to its parent).
fn mutate(mut value: Value, pointer: &str, with: Value) -> Value {
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = with;
        return value;
    }
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last.to_owned(), with);
        }
        Some(Value::Array(items)) => items.push(with),
        _ => {}
    }
    value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_mutated_campaign_request_is_a_2xx_or_a_4xx_problem_and_accepted_equals_written(
        mutations in proptest::collection::vec((prop::sample::select(FIELDS), mutant()), 1..4),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut request = valid();
        for (pointer, with) in &mutations {
            request = mutate(request, pointer, with.clone());
        }
        runtime.block_on(async {
            let m = Memory::new();
            let (status, body) = m.json("POST", "/campaigns", &request).await;
            prop_assert!(
                (200..300).contains(&status) || (400..500).contains(&status),
                "{} for {:?}: {}", status, mutations, body
            );
            if status == 202 {
                let campaign = body["campaign_id"].as_str().unwrap();
                let accepted = usize::try_from(body["accepted"].as_u64().unwrap()).unwrap();
                prop_assert_eq!(accepted, m.calls_written(campaign).await, "{:?}", mutations);
                let rejected = body["rejected"].as_array().unwrap().len();
                prop_assert_eq!(
                    usize::try_from(body["rejected_count"].as_u64().unwrap()).unwrap(),
                    rejected
                );
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn the_unmutated_request_is_accepted_whole() {
    let m = Memory::new();
    let (status, body) = m.json("POST", "/campaigns", &valid()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3);
    let campaign = body["campaign_id"].as_str().unwrap();
    assert_eq!(m.calls_written(campaign).await, 3);
}
