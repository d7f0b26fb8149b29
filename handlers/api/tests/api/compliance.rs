//! The compliance side of the API: the account's policy, do-not-call entries read one by
//! one, campaign purposes, caller identification and contacts' consent.

use outdial_core::admin::ApiStore;
use outdial_core::ids::{CampaignId, E164};
use outdial_core::policy::{OnCap, Purpose};
use outdial_core::record::Consent;
use outdial_core::time::Timestamp;
use serde_json::{Value, json};

use crate::support::{Harness, spec};

fn telemarketing() -> Value {
    let mut spec = spec();
    spec["purpose"] = json!("telemarketing");
    spec["on_cap"] = json!("defer");
    spec
}

#[tokio::test]
async fn a_policy_put_is_answered_and_read_back_as_stored() {
    let h = Harness::new().await;
    let resp = h.req("GET", "/policy").send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json(),
        json!({"caps": [], "destination_caps": []}),
        "the empty policy until one is set"
    );

    let policy = json!({
        "caps": [{"max_calls": 3, "per_hours": 720, "purposes": ["informational"]},
                 {"max_calls": 1, "per_hours": 24, "purposes": ["healthcare"]}],
        "destination_caps": [{"max_calls": 1, "per_minutes": 1},
                             {"max_calls": 3, "per_minutes": 15}],
        "default_hours": {"mon": ["09:00-20:00"]}
    });
    let resp = h.req("PUT", "/policy").json(&policy).send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let mut stored = policy.clone();
    stored["updated_at"] = json!("2030-03-17T17:46:40Z");
    assert_eq!(resp.json(), stored);

    let resp = h.req("GET", "/policy").send().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), stored);
    let (kept, at) = h.store.policy().await.unwrap();
    assert_eq!(kept.caps().len(), 2);
    assert_eq!(kept.destination_caps().len(), 2);
    assert!(at.is_some());
}

#[tokio::test]
async fn a_bad_policy_is_400_naming_its_field_and_changes_nothing() {
    let h = Harness::new().await;
    for (body, field) in [
        (
            json!({"caps": [{"max_calls": 0, "per_hours": 24, "purposes": ["healthcare"]}]}),
            "caps[0].max_calls",
        ),
        (
            json!({"caps": [{"max_calls": 1, "per_hours": 24, "purposes": []}]}),
            "caps[0].purposes",
        ),
        (
            json!({"caps": [{"max_calls": 1, "per_hours": 24, "purposes": ["healthcare"]},
                            {"max_calls": 1, "per_hours": 9999, "purposes": ["healthcare"]}]}),
            "caps[1].per_hours",
        ),
        (
            json!({"caps": [{"max_calls": 1, "per_hours": 24, "purposes": ["sales"]}]}),
            "caps[0]",
        ),
        (json!({"caps": {}}), "caps"),
        (
            json!({"destination_caps": [{"max_calls": 1, "per_minutes": 0}]}),
            "destination_caps[0].per_minutes",
        ),
        (
            json!({"destination_caps": [{"max_calls": 1}]}),
            "destination_caps[0]",
        ),
        (json!({"caps": [], "colour": "blue"}), "colour"),
        (
            json!({"default_hours": {"mon": ["20:00-09:00"]}}),
            "default_hours.mon[0]",
        ),
        (json!([]), "body"),
    ] {
        let resp = h.req("PUT", "/policy").json(&body).send().await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert!(
            resp.json()["type"]
                .as_str()
                .unwrap()
                .ends_with("#invalid-request")
        );
        assert_eq!(resp.fields(), [field], "{body}");
    }
    let resp = h.req("PUT", "/policy").raw("text/csv", "caps").send().await;
    assert_eq!(resp.status, 415);
    assert_eq!(
        h.req("GET", "/policy").send().await.json(),
        json!({"caps": [], "destination_caps": []})
    );
}

#[tokio::test]
async fn a_do_not_call_entry_is_read_with_its_source_and_an_absent_one_is_404() {
    let h = Harness::new().await;
    assert_eq!(h.req("PUT", "/dnc/%2B12025550100").send().await.status, 204);
    let resp = h.req("GET", "/dnc/%2B12025550100").send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json(),
        json!({"e164": "+12025550100", "added_at": "2030-03-17T17:46:40Z", "source": "api"})
    );

    let resp = h.req("GET", "/dnc/+12025550101").send().await;
    assert_eq!(resp.status, 404);
    assert!(
        resp.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("#not-found")
    );
    let resp = h.req("GET", "/dnc/2025550100").send().await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["e164"]);
}

#[tokio::test]
async fn a_script_that_does_not_identify_the_caller_is_refused_with_the_rule_named() {
    let h = Harness::new().await;
    let without_name = json!({"start": "hi", "steps": {"hi": {"say": "Hello {{name}}."}}});
    let unnamed = json!({"caller_name": "Riverside Clinic", "start": "hi",
                         "steps": {"hi": {"say": "Hello {{name}}, see you soon."}}});
    for script in [without_name, unnamed] {
        let mut spec = spec();
        spec["script"] = script;
        let resp = h
            .req("POST", "/campaigns")
            .json(&json!({"spec": spec, "contacts": [
                {"to": "+12025550100", "vars": {"name": "Ada"}}]}))
            .send()
            .await;
        assert_eq!(resp.status, 422, "{}", resp.body);
        let problem = resp.json();
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("#caller-identification"),
            "{problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("47 CFR 64.1200(b)(1)"),
            "{problem}"
        );
        assert_eq!(resp.fields(), ["spec.script.caller_name"]);
    }
    // The CSV form names the header its spec came in.
    let mut spec = spec();
    spec["script"] = json!({"start": "hi", "steps": {"hi": {"say": "Hello {{name}}."}}});
    let resp = h
        .req("POST", "/campaigns")
        .csv("to,name\n+12025550100,Ada\n")
        .header("X-Outdial-Spec", &spec.to_string())
        .send()
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(resp.fields(), ["X-Outdial-Spec.script.caller_name"]);
    assert_eq!(h.dispatches(), 0);
}

#[tokio::test]
async fn telemarketing_rows_without_consent_are_rejected_and_the_rest_keep_theirs() {
    let h = Harness::new().await;
    let csv = "to,name,consent_at,consent_source\n\
               +12025550100,Ada,2026-03-01,web form 7\n\
               +12025550101,Bob,,\n\
               +12025550102,Cy,2026-03-01T14:30:00Z,\n\
               +12025550103,Di,2026-03-02T09:00:00-05:00,call recording\n";
    let resp = h
        .req("POST", "/campaigns")
        .csv(csv)
        .header("X-Outdial-Spec", &telemarketing().to_string())
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["accepted"], 2);
    let rejected = body["rejected"].as_array().unwrap();
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4]);
    for row in rejected {
        assert!(
            row["reason"].as_str().unwrap().contains("no-consent"),
            "{row}"
        );
    }
    let id = CampaignId::parse(body["campaign_id"].as_str().unwrap()).unwrap();
    let calls = h.calls(&id).await;
    let ada = calls
        .iter()
        .find(|c| c.to.as_str() == "+12025550100")
        .unwrap();
    assert_eq!(
        ada.consent,
        Some(Consent {
            at: Timestamp::from_millis(1_772_323_200_000),
            source: "web form 7".into()
        })
    );

    // The call view shows the consent.
    let resp = h.req("GET", &format!("/calls/{}", ada.id)).send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["consent"],
        json!({"at": "2026-03-01T00:00:00Z", "source": "web form 7"})
    );

    // Appends and single calls keep the same rule.
    let resp = h
        .req("POST", &format!("/campaigns/{id}/contacts"))
        .json(&json!({"contacts": [
            {"to": "+12025550104", "vars": {"name": "Ed"}},
            {"to": "+12025550105", "vars": {"name": "Flo"},
             "consent_at": "2026-01-05", "consent_source": "signed paper"}
        ]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.json()["accepted"], 1);
    assert_eq!(resp.json()["rejected"][0]["index"], 0);
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": id.as_str(), "to": "+12025550106",
                      "vars": {"name": "Gus"}}))
        .send()
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert!(
        resp.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("#no-consent")
    );
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("no-consent")
    );
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": id.as_str(), "to": "+12025550106",
                      "vars": {"name": "Gus"}, "consent_at": "2026-01-05",
                      "consent_source": "web form 9"}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
}

#[tokio::test]
async fn other_purposes_take_contacts_without_consent_and_keep_it_when_given() {
    let h = Harness::new().await;
    let id = h
        .campaign(json!([
            {"to": "+12025550100", "vars": {"name": "Ada"}},
            {"to": "+12025550101", "vars": {"name": "Bob"},
             "consent_at": "2026-03-01", "consent_source": "patient portal"}
        ]))
        .await;
    let calls = h.calls(&id).await;
    assert_eq!(calls.len(), 2);
    let consent = |to: &str| {
        calls
            .iter()
            .find(|c| c.to.as_str() == to)
            .unwrap()
            .consent
            .clone()
    };
    assert_eq!(consent("+12025550100"), None);
    assert_eq!(consent("+12025550101").unwrap().source, "patient portal");

    // Consent dated after now is a bad value whatever the purpose.
    let resp = h
        .req("POST", &format!("/campaigns/{id}/contacts"))
        .json(&json!({"contacts": [
            {"to": "+12025550102", "vars": {"name": "Cy"},
             "consent_at": "2031-01-01", "consent_source": "web"},
            {"to": "+12025550103", "vars": {"name": "Di"}}
        ]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let rejected = &resp.json()["rejected"][0];
    assert_eq!(rejected["field"], "consent_at");
    assert_eq!(rejected["reason"], "is in the future");
}

#[tokio::test]
async fn purpose_and_on_cap_are_stored_and_shown_in_the_campaign_view() {
    let h = Harness::new().await;
    let id = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    let body = h
        .req("GET", &format!("/campaigns/{id}"))
        .send()
        .await
        .json();
    assert_eq!(body["spec"]["purpose"], "informational");
    assert_eq!(body["spec"]["on_cap"], "cancel");

    let resp = h
        .req("POST", "/campaigns")
        .json(&json!({"spec": telemarketing(), "contacts": [
            {"to": "+12025550100", "vars": {"name": "Ada"},
             "consent_at": "2026-03-01", "consent_source": "web form"}]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let id = CampaignId::parse(resp.json()["campaign_id"].as_str().unwrap()).unwrap();
    let campaign = h.store.campaign(&id).await.unwrap();
    assert_eq!(campaign.purpose, Purpose::Telemarketing);
    assert_eq!(campaign.on_cap, OnCap::Defer);
    let body = h
        .req("GET", &format!("/campaigns/{id}"))
        .send()
        .await
        .json();
    assert_eq!(body["spec"]["purpose"], "telemarketing");
    assert_eq!(body["spec"]["on_cap"], "defer");

    let mut bad = spec();
    bad["purpose"] = json!("sales");
    let resp = h
        .req("POST", "/campaigns")
        .json(&json!({"spec": bad, "contacts": []}))
        .send()
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["spec.purpose"]);
}

#[tokio::test]
async fn a_call_view_shows_why_a_call_was_cancelled() {
    let h = Harness::new().await;
    let id = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    let call = h.calls(&id).await.remove(0);
    let resp = h
        .req("POST", &format!("/calls/{}/hangup", call.id))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body = h
        .req("GET", &format!("/calls/{}", call.id))
        .send()
        .await
        .json();
    assert_eq!(body["status"], "CANCELLED");
    assert_eq!(body["reason"], "hung-up");
    assert!(body.get("consent").is_none());
    let number = E164::parse("+12025550100").unwrap();
    assert!(h.store.do_not_call_entry(&number).await.unwrap().is_none());
}

#[tokio::test]
async fn a_script_listening_for_machines_is_checked_like_its_prompts() {
    let h = Harness::new().await;
    let post = |machine: Value| {
        let mut spec = spec();
        spec["script"]["machine"] = machine;
        h.req("POST", "/campaigns")
            .json(&json!({"spec": spec, "contacts": [{"to": "+12025550100", "vars": {"name": "Ada"}}]}))
            .send()
    };
    let resp = post(json!({"message": "Hello {{name}}, Riverside Clinic calling. Goodbye."})).await;
    assert_eq!(resp.status, 202, "{}", resp.body);

    // A voicemail message is a prerecorded call of its own: it must name the caller too.
    let resp = post(json!({"message": "Hello {{name}}, please call us back."})).await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    let problem = resp.json();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("#caller-identification"),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("machine.message"),
        "{problem}"
    );

    // Thresholds that cannot work together are refused, naming the field.
    let resp =
        post(json!({"message": "Riverside Clinic calling.", "person_max_ms": 3500, "listen_s": 4}))
            .await;
    assert!(resp.status == 400 || resp.status == 422, "{}", resp.body);
    assert!(
        resp.body.contains("script.machine.listen_s"),
        "{}",
        resp.body
    );
    let resp = post(json!({"message": "Riverside Clinic calling.", "beep": true})).await;
    assert!(resp.status == 400 || resp.status == 422, "{}", resp.body);
}
