//! `POST /campaigns`, `GET /campaigns/{id}`, pause, resume, cancel, appends and listings.

use outdial_adapters::counters::read_counters;
use outdial_core::admin::ApiStore;
use outdial_core::ids::{CampaignId, E164};
use outdial_core::lifecycle::CallStatus;
use outdial_core::record::CampaignStatus;
use serde_json::{Value, json};

use crate::support::{FROM, Harness, T0, spec};

fn contacts(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"to": format!("+1202555{i:04}"), "vars": {"name": format!("c{i}")}}))
            .collect(),
    )
}

#[tokio::test]
async fn a_json_campaign_is_accepted_with_its_calls_queued_and_a_dispatcher_started() {
    let h = Harness::new().await;
    let resp = h
        .req("POST", "/campaigns")
        .json(&json!({"spec": spec(), "contacts": [
            {"to": "+12025550100", "vars": {"name": "Ada"}, "tz": "America/Chicago"},
            {"to": "(202) 555-0101", "vars": {"name": "Bob", "date": "Friday"}}
        ]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected_count"], 0);
    assert_eq!(body["rejected"], json!([]));
    let id = CampaignId::parse(body["campaign_id"].as_str().unwrap()).unwrap();

    let campaign = h.store.campaign(&id).await.unwrap();
    assert_eq!(campaign.status, CampaignStatus::Active);
    assert_eq!(campaign.from.as_str(), FROM);
    assert_eq!(campaign.contacts, 2);
    let calls = h.calls(&id).await;
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.status == CallStatus::Queued));
    // Due at the campaign's pace (5 calls a second, made due a quarter faster), in the
    // order of the list.
    let due_of = |to: &str| calls.iter().find(|c| c.to.as_str() == to).unwrap().due_at;
    assert_eq!(due_of("+12025550100"), Some(T0));
    assert_eq!(
        due_of("+12025550101"),
        Some(T0.plus(std::time::Duration::from_millis(160)))
    );
    let ada = calls
        .iter()
        .find(|c| c.to.as_str() == "+12025550100")
        .unwrap();
    assert_eq!(ada.vars["name"], "Ada");
    assert_eq!(ada.tz.as_deref(), Some("America/Chicago"));
    assert!(calls.iter().any(|c| c.to.as_str() == "+12025550101"));
    let counters = read_counters(h.store.client(), h.store.table(), &id)
        .await
        .unwrap();
    assert_eq!(counters.contacts, 2);
    assert_eq!(h.dispatches(), 1);
}

#[tokio::test]
async fn a_csv_upload_reports_every_bad_row_with_its_line_and_reason() {
    let h = Harness::new().await;
    h.store
        .add_do_not_call(&E164::parse("+12025550104").unwrap(), T0)
        .await
        .unwrap();
    let csv = "phone,name,tz\n\
               +12025550100,Ada,America/New_York\n\
               12345,Bob,\n\
               (202) 555-0100,Cy,\n\
               +12025550104,Di,\n\
               +12025550105,Ed,Mars/Olympus\n\
               +12025550106,,\n\
               +12025550107,Flo,Europe/Paris\n";
    let resp = h
        .req("POST", "/campaigns")
        .csv(csv)
        .header("X-Outdial-Spec", &spec().to_string())
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected_count"], 5);
    assert_eq!(
        body["rejected"],
        json!([
            {"line": 3, "field": "to", "reason": "is too short for its country"},
            {"line": 4, "field": "to", "reason": "duplicate of line 2"},
            {"line": 5, "field": "to", "reason": "is on the do-not-call list"},
            {"line": 6, "field": "tz", "reason": "is not an IANA time zone name"},
            {"line": 7, "field": "vars.name", "reason": "is missing; the script uses {{name}}"}
        ])
    );
    let id = CampaignId::parse(body["campaign_id"].as_str().unwrap()).unwrap();
    let mut numbers: Vec<String> = h
        .calls(&id)
        .await
        .iter()
        .map(|c| c.to.to_string())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["+12025550100", "+12025550107"]);
}

#[tokio::test]
async fn the_spec_can_travel_in_the_query_string_with_a_csv_body() {
    let h = Harness::new().await;
    let spec = spec().to_string();
    let query: String = spec
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let resp = h
        .req("POST", &format!("/campaigns?spec={query}"))
        .csv("to,name\n+12025550100,Ada\n")
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.json()["accepted"], 1);
}

#[tokio::test]
async fn national_numbers_take_the_spec_default_region_in_appends_and_single_calls_too() {
    let h = Harness::new().await;
    let mut spec = spec();
    spec["default_region"] = json!("GB");
    let resp = h
        .req("POST", "/campaigns")
        .json(
            &json!({"spec": spec, "contacts": [{"to": "020 7183 8750", "vars": {"name": "Ada"}}]}),
        )
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let id = CampaignId::parse(resp.json()["campaign_id"].as_str().unwrap()).unwrap();
    assert_eq!(h.calls(&id).await[0].to.as_str(), "+442071838750");

    let resp = h
        .req("POST", &format!("/campaigns/{id}/contacts"))
        .csv("to,name\n020 7183 8751,Bob\n")
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": id.as_str(), "to": "020 7183 8752", "vars": {"name": "Cy"}}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let mut numbers: Vec<String> = h
        .calls(&id)
        .await
        .iter()
        .map(|c| c.to.as_str().to_owned())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["+442071838750", "+442071838751", "+442071838752"]);
}

#[tokio::test]
async fn a_bad_spec_is_400_with_every_field_at_fault_and_creates_nothing() {
    let h = Harness::new().await;
    let resp = h
        .req("POST", "/campaigns")
        .json(&json!({"spec": {
            "name": "x", "from": "not a number",
            "script": {"start": "nowhere", "steps": {"a": {"say": "hi"}}},
            "pacing": {"calls_per_second": -1}
        }, "contacts": contacts(1)}))
        .send()
        .await;
    assert_eq!(resp.status, 400);
    let fields = resp.fields();
    for field in [
        "spec.from",
        "spec.script.start",
        "spec.pacing.calls_per_second",
    ] {
        assert!(fields.contains(&field.to_owned()), "{field}: {fields:?}");
    }
    assert_eq!(h.dispatches(), 0);
}

#[tokio::test]
async fn a_csv_body_without_a_spec_or_a_usable_header_is_400() {
    let h = Harness::new().await;
    let resp = h
        .req("POST", "/campaigns")
        .csv("to,name\n+12025550100,Ada\n")
        .send()
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["X-Outdial-Spec"]);

    let resp = h
        .req("POST", "/campaigns")
        .csv("name\nAda\n")
        .header("X-Outdial-Spec", &spec().to_string())
        .send()
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["header"]);

    let resp = h
        .req("POST", "/campaigns")
        .csv("to\n+12025550100\n")
        .header("X-Outdial-Spec", "{not json")
        .send()
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["X-Outdial-Spec"]);
}

#[tokio::test]
async fn a_list_of_which_no_row_survives_is_422_with_the_rejected_rows() {
    let h = Harness::new().await;
    let resp = h
        .req("POST", "/campaigns")
        .json(&json!({"spec": spec(), "contacts": [{"to": "nope", "vars": {"name": "A"}}, {"to": "+1"}]}))
        .send()
        .await;
    assert_eq!(resp.status, 422);
    let body = resp.json();
    assert_eq!(body["rejected_count"], 2);
    assert_eq!(body["rejected"][0]["index"], 0);
    assert_eq!(body["rejected"][1]["index"], 1);
    assert_eq!(h.dispatches(), 0);
}

#[tokio::test]
async fn a_calling_window_makes_the_first_attempt_due_at_its_opening() {
    let h = Harness::new().await;
    let mut spec = spec();
    // T0 is a Sunday evening in New York; the window opens on Monday at 9:00 there (EDT).
    spec["window"] = json!({"timezone": "America/New_York", "hours": {"mon": ["09:00-17:00"]}});
    let resp = h
        .req("POST", "/campaigns")
        .json(&json!({"spec": spec, "contacts": [
            {"to": "+12025550100", "vars": {"name": "Ada"}},
            {"to": "+12025550101", "vars": {"name": "Bob"}, "tz": "Europe/London"}
        ]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let id = CampaignId::parse(resp.json()["campaign_id"].as_str().unwrap()).unwrap();
    let calls = h.calls(&id).await;
    let due = |to: &str| {
        let call = calls.iter().find(|c| c.to.as_str() == to).unwrap();
        outdial_api::views::time(call.due_at.unwrap())
    };
    assert_eq!(due("+12025550100"), "2030-03-18T13:00:00Z");
    assert_eq!(due("+12025550101"), "2030-03-18T09:00:00Z");
}

#[tokio::test]
async fn get_campaign_shows_status_counters_progress_and_spec() {
    let h = Harness::new().await;
    let id = h.campaign(contacts(4)).await;
    h.store
        .client()
        .update_item()
        .table_name(h.store.table())
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(format!("CAMPAIGN#{id}")))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("COUNTERS".into()))
        .update_expression("ADD st_COMPLETED :one, st_BUSY :one, st_QUEUED :two, placed :two, out_COMPLETED :one, out_BUSY :one, script_confirmed :one, talk_ms :talk, verdict_person :one, verdict_machine :one, verdict_undecided :zero")
        .expression_attribute_values(":zero", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
        .expression_attribute_values(":one", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .expression_attribute_values(":two", aws_sdk_dynamodb::types::AttributeValue::N("2".into()))
        .expression_attribute_values(":talk", aws_sdk_dynamodb::types::AttributeValue::N("4200".into()))
        .send()
        .await
        .unwrap();
    let resp = h.req("GET", &format!("/campaigns/{id}")).send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["campaign_id"], id.as_str());
    assert_eq!(body["name"], "reminders");
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["contacts"], 4);
    assert_eq!(body["progress"], 0.5);
    assert_eq!(body["created_at"], "2030-03-17T17:46:40Z");
    assert_eq!(body["counts"]["by_status"]["COMPLETED"], 1);
    assert_eq!(body["counts"]["by_status"]["DIALING"], 0);
    assert_eq!(body["counts"]["outcomes"]["BUSY"], 1);
    assert_eq!(body["counts"]["script_outcomes"]["confirmed"], 1);
    assert_eq!(body["counts"]["talk_ms"], 4200);
    // Only the verdicts some call has now: a count back at zero is left out.
    assert_eq!(
        body["counts"]["verdicts"],
        json!({"person": 1, "machine": 1})
    );
    assert_eq!(body["spec"]["pacing"]["calls_per_second"], 5.0);
    assert_eq!(body["spec"]["script"]["start"], "hi");
    assert_eq!(body["spec"]["default_region"], "US");

    let resp = h.req("GET", "/campaigns/cmp_unknown").send().await;
    assert_eq!(resp.status, 404);
    let resp = h.req("GET", "/campaigns/not%23an%23id").send().await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn pause_resume_and_cancel_move_the_campaign_and_ask_for_a_sweep() {
    let h = Harness::new().await;
    let id = h.campaign(contacts(1)).await;
    let before = h.dispatches();
    for (action, status) in [
        ("pause", "PAUSED"),
        ("resume", "ACTIVE"),
        ("pause", "PAUSED"),
        ("cancel", "CANCELLED"),
    ] {
        h.clock.advance(std::time::Duration::from_secs(1));
        let resp = h
            .req("POST", &format!("/campaigns/{id}/{action}"))
            .send()
            .await;
        assert_eq!(resp.status, 202, "{action}: {}", resp.body);
        assert_eq!(
            resp.json(),
            json!({"campaign_id": id.as_str(), "status": status})
        );
    }
    assert_eq!(h.dispatches(), before + 4);
    let meta = h
        .store
        .client()
        .get_item()
        .table_name(h.store.table())
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CAMPAIGN#{id}")),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("META".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let s = |name: &str| meta[name].as_s().unwrap().clone();
    // In the watch lane, sorted before every call, naming the request's time.
    assert!(s("due_shard").starts_with("WATCH#"));
    assert_eq!(
        s("due_key"),
        format!(
            "00000000000000#{id}#{}",
            T0.plus(std::time::Duration::from_secs(4)).sort_key()
        )
    );
    assert_eq!(s("status"), "CANCELLED");
}

#[tokio::test]
async fn transitions_that_are_not_allowed_are_409_and_unknown_campaigns_404() {
    let h = Harness::new().await;
    let id = h.campaign(contacts(1)).await;
    let resp = h
        .req("POST", &format!("/campaigns/{id}/resume"))
        .send()
        .await;
    assert_eq!(resp.status, 409);
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("is ACTIVE"),
        "{}",
        resp.body
    );
    assert_eq!(
        h.req("POST", &format!("/campaigns/{id}/cancel"))
            .send()
            .await
            .status,
        202
    );
    for action in ["pause", "resume", "cancel"] {
        let resp = h
            .req("POST", &format!("/campaigns/{id}/{action}"))
            .send()
            .await;
        assert_eq!(resp.status, 409, "{action}");
    }
    let resp = h.req("POST", "/campaigns/cmp_nope/pause").send().await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn appending_contacts_adds_calls_counts_them_and_keeps_a_paused_campaign_paused() {
    let h = Harness::new().await;
    let id = h.campaign(contacts(2)).await;
    assert_eq!(
        h.req("POST", &format!("/campaigns/{id}/pause"))
            .send()
            .await
            .status,
        202
    );
    let resp = h
        .req(
            "POST",
            &format!("/campaigns/{id}/contacts?default_region=GB"),
        )
        .csv("to,name\n020 7183 8750,Ada\n+12025550000,dup of the campaign is allowed\nbad,x\n")
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["accepted"], 2);
    assert_eq!(
        body["rejected"],
        json!([{"line": 4, "field": "to", "reason": "is not a phone number"}])
    );
    assert_eq!(h.calls(&id).await.len(), 4);
    let counters = read_counters(h.store.client(), h.store.table(), &id)
        .await
        .unwrap();
    assert_eq!(counters.contacts, 4);
    assert_eq!(
        h.store.campaign(&id).await.unwrap().status,
        CampaignStatus::Paused
    );

    let resp = h
        .req("POST", &format!("/campaigns/{id}/contacts"))
        .json(&json!({"contacts": [{"to": "+12025559999", "vars": {"name": "Zed"}}]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(h.calls(&id).await.len(), 5);
}

#[tokio::test]
async fn appending_to_a_completed_campaign_makes_it_active_again() {
    let h = Harness::new().await;
    let id = h.campaign(contacts(1)).await;
    h.store
        .set_status(
            &id,
            &[CampaignStatus::Active],
            CampaignStatus::Completed,
            T0,
        )
        .await
        .unwrap();
    let resp = h
        .req("POST", &format!("/campaigns/{id}/contacts"))
        .json(&json!({"contacts": [{"to": "+12025559999", "vars": {"name": "Zed"}}]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(
        h.store.campaign(&id).await.unwrap().status,
        CampaignStatus::Active
    );
}

#[tokio::test]
async fn appending_to_a_cancelled_or_unknown_campaign_is_refused() {
    let h = Harness::new().await;
    let id = h.campaign(contacts(1)).await;
    assert_eq!(
        h.req("POST", &format!("/campaigns/{id}/cancel"))
            .send()
            .await
            .status,
        202
    );
    let body = json!({"contacts": [{"to": "+12025559999", "vars": {"name": "Zed"}}]});
    let resp = h
        .req("POST", &format!("/campaigns/{id}/contacts"))
        .json(&body)
        .send()
        .await;
    assert_eq!(resp.status, 409);
    let resp = h
        .req("POST", "/campaigns/cmp_nope/contacts")
        .json(&body)
        .send()
        .await;
    assert_eq!(resp.status, 404);
    let open = h.campaign(contacts(1)).await;
    let resp = h
        .req("POST", &format!("/campaigns/{open}/contacts"))
        .json(&json!({"contacts": []}))
        .send()
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["contacts"]);
}

#[tokio::test]
async fn listing_calls_pages_with_an_opaque_cursor_and_filters_by_status() {
    let h = Harness::new().await;
    let id = h.campaign(contacts(5)).await;
    let first = h.calls(&id).await[0].id.clone();
    h.set_call(&first, CallStatus::Completed, None).await;

    let mut seen = Vec::new();
    let mut path = format!("/campaigns/{id}/calls?limit=2");
    loop {
        let resp = h.req("GET", &path).send().await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        let body = resp.json();
        let calls = body["calls"].as_array().unwrap();
        assert!(calls.len() <= 2);
        seen.extend(
            calls
                .iter()
                .map(|c| c["call_id"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(!cursor.contains('#'), "the cursor is opaque: {cursor}");
                path = format!("/campaigns/{id}/calls?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    let resp = h
        .req("GET", &format!("/campaigns/{id}/calls?status=completed"))
        .send()
        .await;
    let body = resp.json();
    assert_eq!(body["calls"].as_array().unwrap().len(), 1);
    assert_eq!(body["calls"][0]["call_id"], first.as_str());
    assert_eq!(body["calls"][0]["to"].as_str().unwrap().len(), 12);

    for bad in [
        "status=RINGINGISH",
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=zz",
        "cursor=00",
    ] {
        let resp = h
            .req("GET", &format!("/campaigns/{id}/calls?{bad}"))
            .send()
            .await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.body);
    }
    let resp = h.req("GET", "/campaigns/cmp_nope/calls").send().await;
    assert_eq!(resp.status, 404);
}
