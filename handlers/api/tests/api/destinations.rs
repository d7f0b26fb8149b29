//! Destinations: numbers are called only in the countries the account allows
//! (`OUTDIAL_ALLOWED_COUNTRIES`, by default each campaign's region), and premium-rate,
//! shared-cost and non-geographic numbers never. A refused contact is a rejected row with its
//! reason; a single call or a do-not-call entry is a `destination-refused` problem (422).

use outdial_api::destinations::AllowedCountries;
use serde_json::json;

use crate::memory::{Memory, fields, spec};

fn row(to: &str) -> serde_json::Value {
    json!({"to": to, "vars": {"name": "Ada"}})
}

#[tokio::test]
async fn premium_and_international_network_numbers_are_rejected_rows_and_the_rest_go_ahead() {
    let m = Memory::new();
    let (status, body) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": spec(), "contacts": [
                row("+12025550100"),
                row("+1 900 555 0100"),
                row("+979 123 456 789"),
                row("+882 345 678 901"),
                row("+881 612 345 678"),
                row("+870 773 111 632"),
                row("+800 1234 5678"),
                row("+808 1234 5678"),
                row("+883 123 456 78"),
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1);
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 8, "{body}");
    assert_eq!(rejected[0]["field"], "to");
    assert_eq!(
        rejected[0]["reason"],
        "is a premium-rate number, which is never called"
    );
    for r in &rejected[1..] {
        assert_eq!(r["field"], "to");
        assert!(
            r["reason"].as_str().unwrap().contains("never called"),
            "{r}"
        );
    }
    let campaign = body["campaign_id"].as_str().unwrap();
    assert_eq!(m.calls_written(campaign).await, 1);
}

#[tokio::test]
async fn by_default_a_campaign_calls_its_own_region_only() {
    let m = Memory::new();
    let (status, body) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": spec(), "contacts": [
                row("+12025550100"),
                row("+44 20 7183 8750"),
                row("+1 416 555 0100"),
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(
        body["rejected"],
        json!([
            {"index": 1, "field": "to", "reason": "is in GB, a country this account does not call (it calls US)"},
            {"index": 2, "field": "to", "reason": "is in CA, a country this account does not call (it calls US)"}
        ])
    );
    // An append that names GB as its numbers' region calls GB too.
    let campaign = body["campaign_id"].as_str().unwrap();
    let (status, body) = m
        .send(
            "POST",
            &format!("/campaigns/{campaign}/contacts?default_region=GB"),
            Some("text/csv"),
            Some("to,name\n020 7183 8750,Ada\n+1 416 555 0100,Bob\n"),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(m.calls_written(campaign).await, 2);
}

#[tokio::test]
async fn an_account_list_decides_alone() {
    let m = Memory::allowing("US,CA".parse::<AllowedCountries>().unwrap());
    let mut gb = spec();
    gb["default_region"] = json!("GB");
    let (status, body) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": gb, "contacts": [
                row("020 7183 8750"),
                row("+1 416 555 0100"),
                row("+12025550100"),
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 0);
    assert_eq!(
        body["rejected"][0]["reason"],
        "is in GB, a country this account does not call (it calls US, CA)"
    );
}

#[tokio::test]
async fn a_list_of_refused_numbers_only_is_refused_whole() {
    let m = Memory::new();
    let (status, problem) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": spec(), "contacts": [row("+19005550100"), row("+979123456789")]}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["rejected_count"], 2);
}

#[tokio::test]
async fn a_single_call_or_a_do_not_call_entry_to_a_refused_number_is_a_problem() {
    let m = Memory::new();
    let (_, body) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": spec(), "contacts": [row("+12025550100")]}),
        )
        .await;
    let campaign = body["campaign_id"].as_str().unwrap().to_owned();
    for to in ["+19005550100", "+882345678901", "+442071838750"] {
        let (status, problem) = m
            .json(
                "POST",
                "/calls",
                &json!({"campaign_id": campaign, "to": to, "vars": {"name": "x"}}),
            )
            .await;
        assert_eq!(status, 422, "{to}: {problem}");
        assert_eq!(
            problem["type"].as_str().unwrap().rsplit('#').next(),
            Some("destination-refused")
        );
        assert_eq!(fields(&problem), ["to"], "{to}");
    }
    for to in ["%2B19005550100", "%2B979123456789"] {
        let (status, problem) = m.send("PUT", &format!("/dnc/{to}"), None, None).await;
        assert_eq!(status, 422, "{to}: {problem}");
        assert_eq!(fields(&problem), ["e164"], "{to}");
    }
    // A number of another country may be listed: the allow-list may grow to it.
    let (status, _) = m.send("PUT", "/dnc/%2B442071838750", None, None).await;
    assert_eq!(status, 204);
    assert_eq!(m.calls_written(&campaign).await, 1);
}
