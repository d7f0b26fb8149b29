//! Every rate and duration a campaign takes is bounded, and no request can make a call due
//! far in the future: the probe's `calls_per_second: 1e-300` made calls due at `i64::MAX`
//! milliseconds, which no date-time can show, and a campaign that never ends.

use serde_json::{Value, json};

use crate::memory::{Memory, T0, fields, spec};

fn contacts(n: usize) -> Value {
    (0..n)
        .map(|i| json!({"to": format!("+1202555{i:04}"), "vars": {"name": "Ada"}}))
        .collect()
}

#[tokio::test]
async fn a_rate_too_slow_to_pace_is_refused_and_writes_nothing() {
    let m = Memory::new();
    for rate in [json!(1e-300), json!(5e-324), json!(0.001), json!(0)] {
        let mut spec = spec();
        spec["pacing"]["calls_per_second"] = rate.clone();
        let (status, problem) = m
            .json(
                "POST",
                "/campaigns",
                &json!({"spec": spec, "contacts": contacts(2)}),
            )
            .await;
        assert_eq!(status, 400, "{rate}: {problem}");
        assert_eq!(fields(&problem), ["spec.pacing.calls_per_second"], "{rate}");
    }
    assert_eq!(m.store.requests(), 0, "nothing was read or written");
}

#[tokio::test]
async fn at_the_slowest_rate_every_call_is_due_at_a_date_within_a_week() {
    let m = Memory::new();
    let mut spec = spec();
    spec["pacing"]["calls_per_second"] = json!(0.01);
    let (status, body) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": spec, "contacts": contacts(9000)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let campaign = body["campaign_id"].as_str().unwrap().to_owned();
    let (status, page) = m
        .send(
            "GET",
            &format!("/campaigns/{campaign}/calls?limit=1000"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let week = T0.plus(std::time::Duration::from_secs(7 * 86_400));
    let latest = jiff::Timestamp::from_millisecond(week.as_millis()).unwrap();
    for call in page["calls"].as_array().unwrap() {
        let due: jiff::Timestamp = call["due_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {call}"));
        assert!(due <= latest, "{call}");
    }

    // A single call added to it is due now, as a date-time.
    let (status, call) = m
        .json(
            "POST",
            "/calls",
            &json!({"campaign_id": campaign, "to": "+12025559999", "vars": {"name": "Cy"}}),
        )
        .await;
    assert_eq!(status, 202, "{call}");
    assert_eq!(call["due_at"], "2030-03-17T17:46:40Z");
}

#[tokio::test]
async fn every_bound_the_document_states_is_the_one_the_api_keeps() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let m = Memory::new();
    for (schema, section, field) in [
        ("Pacing", "pacing", "calls_per_second"),
        ("Pacing", "pacing", "max_concurrent"),
        ("Limits", "limits", "ring_timeout_s"),
        ("Limits", "limits", "max_call_s"),
        ("Retry", "retry", "max_attempts"),
        ("Retry", "retry", "busy_after_s"),
        ("Retry", "retry", "no_answer_after_s"),
        ("Retry", "retry", "failed_after_s"),
        ("Retry", "retry", "declined_after_s"),
    ] {
        let property = &doc["components"]["schemas"][schema]["properties"][field];
        let min = property["minimum"]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: no minimum"));
        let max = property["maximum"]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: no maximum"));
        let integer = property["type"] == "integer";
        let step = if integer { 1.0 } else { min / 2.0 };
        for (value, accepted) in [
            (min, true),
            (max, true),
            (min - step, false),
            (max + step.max(1.0), false),
        ] {
            let mut spec = spec();
            spec[section] =
                json!({ field: if integer { json!(value as i64) } else { json!(value) } });
            let (status, body) = m
                .json(
                    "POST",
                    "/campaigns",
                    &json!({"spec": spec, "contacts": contacts(1)}),
                )
                .await;
            let expected = if accepted { 202 } else { 400 };
            assert_eq!(status, expected, "{section}.{field} = {value}: {body}");
        }
    }
}

#[tokio::test]
async fn a_window_that_skips_every_opening_for_a_month_is_refused() {
    let m = Memory::new();
    // T0 is a Sunday: skip the next five Mondays.
    let mut spec = spec();
    spec["window"] = json!({
        "timezone": "UTC",
        "hours": {"mon": ["09:00-17:00"]},
        "skip_dates": ["2030-03-18", "2030-03-25", "2030-04-01", "2030-04-08", "2030-04-15"]
    });
    let (status, problem) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": spec, "contacts": contacts(1)}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(fields(&problem), ["spec.window"]);
}

#[tokio::test]
async fn a_voice_language_or_regex_the_service_cannot_use_is_refused_naming_its_field() {
    let m = Memory::new();
    let cases = [
        (
            "/script/voice",
            json!({"voice_id": ""}),
            "spec.script.voice.voice_id",
        ),
        (
            "/script/voice",
            json!({"voice_id": "Nobody"}),
            "spec.script.voice.voice_id",
        ),
        (
            "/script/voice",
            json!({"voice_id": "Joanna", "language": "xx-INVALID"}),
            "spec.script.voice.language",
        ),
        (
            "/script/steps/hi",
            json!({"gather": {"say": "Press 1", "regex": "(((("}}),
            "spec.script.steps.hi.gather.regex",
        ),
    ];
    for (pointer, value, field) in cases {
        let mut spec = spec();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        spec.pointer_mut(parent).unwrap()[key] = value.clone();
        let (status, problem) = m
            .json(
                "POST",
                "/campaigns",
                &json!({"spec": spec, "contacts": contacts(1)}),
            )
            .await;
        assert_eq!(status, 400, "{value}: {problem}");
        assert_eq!(fields(&problem), [field], "{value}: {problem}");
    }
    assert_eq!(m.store.requests(), 0, "nothing was read or written");
}
