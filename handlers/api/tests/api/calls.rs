//! `POST /calls`, `GET /calls/{id}` and `POST /calls/{id}/hangup`.

use outdial_adapters::counters::read_counters;
use outdial_core::admin::ApiStore;
use outdial_core::ids::{CallId, E164};
use outdial_core::lifecycle::CallStatus;
use serde_json::json;

use crate::support::{Answer, Harness, T0};

async fn one_call_campaign(h: &Harness) -> (outdial_core::ids::CampaignId, CallId) {
    let id = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    let call = h.calls(&id).await[0].id.clone();
    (id, call)
}

#[tokio::test]
async fn posting_a_call_queues_it_counts_it_and_starts_a_dispatcher() {
    let h = Harness::new().await;
    let (campaign, _) = one_call_campaign(&h).await;
    let before = h.dispatches();
    let resp = h
        .req("POST", "/calls")
        .json(
            &json!({"campaign_id": campaign.as_str(), "to": "(202) 555-0111",
                      "vars": {"name": "Bob"}, "tz": "America/Denver"}),
        )
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["campaign_id"], campaign.as_str());
    assert_eq!(body["status"], "QUEUED");
    assert_eq!(body["due_at"], "2030-03-17T17:46:40Z");
    let call = CallId::parse(body["call_id"].as_str().unwrap()).unwrap();
    let record = h.store.call(&call).await.unwrap();
    assert_eq!(record.to.as_str(), "+12025550111");
    assert_eq!(record.vars["name"], "Bob");
    assert_eq!(record.tz.as_deref(), Some("America/Denver"));
    assert_eq!(record.campaign_id, campaign);
    let counters = read_counters(h.store.client(), h.store.table(), &campaign)
        .await
        .unwrap();
    assert_eq!(counters.contacts, 2);
    assert_eq!(h.dispatches(), before + 1);
}

#[tokio::test]
async fn a_call_is_accepted_even_when_the_dispatcher_cannot_be_started() {
    let h = Harness::new().await;
    let (campaign, _) = one_call_campaign(&h).await;
    h.trigger
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": campaign.as_str(), "to": "+12025550111", "vars": {"name": "Bob"}}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
}

#[tokio::test]
async fn posting_a_call_names_the_field_at_fault() {
    let h = Harness::new().await;
    let (campaign, _) = one_call_campaign(&h).await;
    let c = campaign.as_str();
    for (body, field) in [
        (json!({"to": "+12025550111"}), "campaign_id"),
        (
            json!({"campaign_id": "a#b", "to": "+12025550111"}),
            "campaign_id",
        ),
        (json!({"campaign_id": c, "vars": {"name": "x"}}), "to"),
        (
            json!({"campaign_id": c, "to": "12", "vars": {"name": "x"}}),
            "to",
        ),
        (json!({"campaign_id": c, "to": "+12025550111"}), "vars.name"),
        (
            json!({"campaign_id": c, "to": "+12025550111", "vars": {"name": "x"}, "tz": "Nowhere"}),
            "tz",
        ),
        (
            json!({"campaign_id": c, "to": "+12025550111", "vars": {"name": "x"}, "colour": 1}),
            "colour",
        ),
        (
            json!({"campaign_id": c, "to": "+12025550111", "vars": {"name": "x"}, "default_region": "ZZ"}),
            "default_region",
        ),
        (
            json!({"campaign_id": c, "to": "+12025550111", "vars": {"name": "x"}, "ref": "r".repeat(129)}),
            "ref",
        ),
        (
            json!({"campaign_id": c, "to": "+12025550111", "vars": {"name": "x"}, "ref": ["r"]}),
            "ref",
        ),
    ] {
        let resp = h.req("POST", "/calls").json(&body).send().await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert_eq!(resp.fields(), [field], "{body}");
    }
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": "cmp_nope", "to": "+12025550111"}))
        .send()
        .await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn posting_a_call_to_a_number_on_the_do_not_call_list_is_422() {
    let h = Harness::new().await;
    let (campaign, _) = one_call_campaign(&h).await;
    h.store
        .add_do_not_call(&E164::parse("+12025550111").unwrap(), T0)
        .await
        .unwrap();
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": campaign.as_str(), "to": "202-555-0111", "vars": {"name": "Bob"}}))
        .send()
        .await;
    assert_eq!(resp.status, 422);
    assert!(
        resp.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("#do-not-call")
    );
    assert_eq!(h.calls(&campaign).await.len(), 1);
}

#[tokio::test]
async fn posting_a_call_to_a_cancelled_campaign_is_409() {
    let h = Harness::new().await;
    let (campaign, _) = one_call_campaign(&h).await;
    assert_eq!(
        h.req("POST", &format!("/campaigns/{campaign}/cancel"))
            .send()
            .await
            .status,
        202
    );
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": campaign.as_str(), "to": "+12025550111", "vars": {"name": "Bob"}}))
        .send()
        .await;
    assert_eq!(resp.status, 409);
}

#[tokio::test]
async fn get_call_shows_the_record_and_its_history_oldest_first() {
    let h = Harness::new().await;
    let (campaign, call) = one_call_campaign(&h).await;
    for (seq, event, status) in [
        (2, "RINGING", "RINGING"),
        (1, "NEW_OUTBOUND_CALL", "DIALING"),
    ] {
        let item = [
            (
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("CALL#{call}")),
            ),
            (
                "SK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("EVT#001#{seq:010}")),
            ),
            (
                "attempt",
                aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
            ),
            (
                "seq",
                aws_sdk_dynamodb::types::AttributeValue::N(seq.to_string()),
            ),
            (
                "event_type",
                aws_sdk_dynamodb::types::AttributeValue::S(event.into()),
            ),
            (
                "status",
                aws_sdk_dynamodb::types::AttributeValue::S(status.into()),
            ),
            (
                "at",
                aws_sdk_dynamodb::types::AttributeValue::N((T0.as_millis() + seq).to_string()),
            ),
        ];
        h.store
            .client()
            .put_item()
            .table_name(h.store.table())
            .set_item(Some(
                item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .send()
            .await
            .unwrap();
    }
    let resp = h.req("GET", &format!("/calls/{call}")).send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["call_id"], call.as_str());
    assert_eq!(body["campaign_id"], campaign.as_str());
    assert_eq!(body["to"], "+12025550100");
    assert_eq!(body["status"], "QUEUED");
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["vars"], json!({"name": "Ada"}));
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["event_type"], "NEW_OUTBOUND_CALL");
    assert_eq!(history[1]["status"], "RINGING");
    // Items written before events kept their actions show none.
    assert_eq!(history[1]["actions"], json!([]));
    assert!(history[1].get("detail").is_none(), "{}", history[1]);

    assert_eq!(h.req("GET", "/calls/call_nope").send().await.status, 404);
}

#[tokio::test]
async fn get_call_shows_what_each_event_was_answered_with() {
    use outdial_core::counters::HistoryItem;
    use outdial_core::ids::{Attempt, Sequence};
    use outdial_core::ports::HistoryEntry;

    let h = Harness::new().await;
    let (campaign, call) = one_call_campaign(&h).await;
    let event = |seq: u64, event_type: &str, status: CallStatus| HistoryEntry {
        attempt: Attempt::FIRST,
        seq: Sequence::new(seq),
        event_type: event_type.to_owned(),
        status,
        at: T0.plus(std::time::Duration::from_secs(seq)),
        actions: Vec::new(),
        detail: None,
        digits: Vec::new(),
        sip_code: None,
        last_error: None,
    };
    let entries = [
        event(1, "NEW_OUTBOUND_CALL", CallStatus::Dialing),
        HistoryEntry {
            actions: vec!["Speak".into(), "SpeakAndGetDigits".into()],
            detail: Some(
                "Speak \"Hello Ada, this is Riverside Clinic.\"; \
                 SpeakAndGetDigits \"Press 1 to confirm, 2 to cancel.\""
                    .into(),
            ),
            ..event(3, "CALL_ANSWERED", CallStatus::Answered)
        },
        HistoryEntry {
            actions: vec!["Speak".into(), "Hangup".into()],
            detail: Some("Speak \"Thank you, we will see you then.\"; Hangup 0".into()),
            digits: vec!["1".into()],
            ..event(4, "ACTION_SUCCESSFUL", CallStatus::Answered)
        },
        HistoryEntry {
            sip_code: Some("0".into()),
            ..event(5, "HANGUP", CallStatus::Completed)
        },
    ];
    // Written as the stream handler writes them.
    for entry in entries {
        let item = outdial_adapters::counters::history_item(&HistoryItem {
            call_id: call.clone(),
            campaign_id: campaign.clone(),
            entry,
            expires_at: None,
        });
        h.store
            .client()
            .put_item()
            .table_name(h.store.table())
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    let resp = h.req("GET", &format!("/calls/{call}")).send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let history = resp.json()["history"].clone();
    assert_eq!(
        history[0],
        json!({"attempt": 1, "seq": 1, "event_type": "NEW_OUTBOUND_CALL", "status": "DIALING",
               "at": "2030-03-17T17:46:41Z", "actions": []})
    );
    assert_eq!(history[1]["actions"], json!(["Speak", "SpeakAndGetDigits"]));
    assert_eq!(
        history[1]["detail"],
        "Speak \"Hello Ada, this is Riverside Clinic.\"; \
         SpeakAndGetDigits \"Press 1 to confirm, 2 to cancel.\""
    );
    assert_eq!(
        history[2],
        json!({"attempt": 1, "seq": 4, "event_type": "ACTION_SUCCESSFUL", "status": "ANSWERED",
               "at": "2030-03-17T17:46:44Z", "actions": ["Speak", "Hangup"],
               "detail": "Speak \"Thank you, we will see you then.\"; Hangup 0",
               "digits": ["1"]})
    );
    assert_eq!(history[3]["actions"], json!([]));
    assert_eq!(history[3]["sip_code"], "0");
    assert!(history[3].get("last_error").is_none(), "{}", history[3]);
}

#[tokio::test]
async fn a_call_listened_to_shows_its_verdict_and_greeting_in_both_views() {
    let h = Harness::new().await;
    let (campaign, call) = one_call_campaign(&h).await;
    let views = || async {
        let one = h.req("GET", &format!("/calls/{call}")).send().await;
        assert_eq!(one.status, 200, "{}", one.body);
        let page = h
            .req("GET", &format!("/campaigns/{campaign}/calls"))
            .send()
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        [one.json(), page.json()["calls"][0].clone()]
    };
    for view in views().await {
        assert!(view.get("verdict").is_none(), "{view}");
        assert!(view.get("greeting_ms").is_none(), "{view}");
    }
    let set = |expr: &'static str, values: Vec<(&'static str, &'static str, bool)>| {
        let mut update = h
            .store
            .client()
            .update_item()
            .table_name(h.store.table())
            .key(
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("CALL#{call}")),
            )
            .key(
                "SK",
                aws_sdk_dynamodb::types::AttributeValue::S("CALL".into()),
            )
            .update_expression(expr);
        for (name, value, number) in values {
            let value = if number {
                aws_sdk_dynamodb::types::AttributeValue::N(value.into())
            } else {
                aws_sdk_dynamodb::types::AttributeValue::S(value.into())
            };
            update = update.expression_attribute_values(name, value);
        }
        update.send()
    };
    // Listening, as the SMA handler writes it at the answer: no greeting length yet.
    set("SET verdict = :v", vec![(":v", "undecided", false)])
        .await
        .unwrap();
    for view in views().await {
        assert_eq!(view["verdict"], "undecided", "{view}");
        assert!(view.get("greeting_ms").is_none(), "{view}");
    }
    // Judged.
    set(
        "SET verdict = :v, greeting_ms = :g",
        vec![(":v", "machine", false), (":g", "7400", true)],
    )
    .await
    .unwrap();
    for view in views().await {
        assert_eq!(view["verdict"], "machine", "{view}");
        assert_eq!(view["greeting_ms"], 7400, "{view}");
    }
}

#[tokio::test]
async fn hanging_up_a_waiting_call_cancels_it_without_the_voice_api() {
    let h = Harness::new().await;
    let (_, call) = one_call_campaign(&h).await;
    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(
        resp.json(),
        json!({"call_id": call.as_str(), "status": "CANCELLED"})
    );
    let record = h.store.call(&call).await.unwrap();
    assert_eq!(record.status, CallStatus::Cancelled);
    assert_eq!(
        record.last_error.as_deref(),
        Some("hung up through the API before it was dialed")
    );
    assert_eq!(record.reason, Some(outdial_core::policy::Reason::HungUp));
    assert_eq!(record.due_at, None);
    assert!(h.dialer.updates.lock().unwrap().is_empty());

    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 409, "an ended call cannot be hung up again");
}

#[tokio::test]
async fn hanging_up_a_live_call_asks_the_sma_to_end_it() {
    let h = Harness::new().await;
    let (_, call) = one_call_campaign(&h).await;
    h.set_call(&call, CallStatus::Answered, Some("txn-1")).await;
    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.json()["status"], "ANSWERED");
    let updates = h.dialer.updates.lock().unwrap().clone();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].0, "txn-1");
    assert_eq!(updates[0].1["op"], "hangup");
    assert_eq!(updates[0].1["reason"], "hangup");
}

#[tokio::test]
async fn hanging_up_a_call_the_voice_api_no_longer_knows_or_that_is_still_dialing_is_409() {
    let h = Harness::new().await;
    let (_, call) = one_call_campaign(&h).await;
    h.set_call(&call, CallStatus::Dialing, None).await;
    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 409);
    assert_eq!(resp.header("retry-after"), Some("1"));

    h.set_call(&call, CallStatus::Ringing, Some("txn-2")).await;
    *h.dialer.answer.lock().unwrap() = Answer::NotFound;
    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 409);
    assert!(
        resp.json()["detail"]
            .as_str()
            .unwrap()
            .contains("already ended")
    );

    *h.dialer.answer.lock().unwrap() = Answer::Throttled;
    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), Some("1"));

    assert_eq!(
        h.req("POST", "/calls/call_nope/hangup").send().await.status,
        404
    );
}

#[tokio::test]
async fn a_panic_below_the_handler_is_a_500_problem_not_a_crash() {
    let h = Harness::new().await;
    let (_, call) = one_call_campaign(&h).await;
    h.set_call(&call, CallStatus::Answered, Some("txn-3")).await;
    *h.dialer.answer.lock().unwrap() = Answer::Panic;
    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 500);
    assert!(
        !resp.body.contains("panic"),
        "the cause is logged, not shown: {}",
        resp.body
    );
    *h.dialer.answer.lock().unwrap() = Answer::Ok;
    let resp = h.req("POST", &format!("/calls/{call}/hangup")).send().await;
    assert_eq!(resp.status, 202, "the handler still answers after a panic");
}

#[tokio::test]
async fn a_contacts_own_reference_travels_with_its_call_into_every_view() {
    let h = Harness::new().await;
    let resp = h
        .req("POST", "/campaigns")
        .csv("to,name,ref\n+12025550100,Ada,PAT-0001\n+12025550101,Bob,\n")
        .header("X-Outdial-Spec", &crate::support::spec().to_string())
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let campaign = resp.json()["campaign_id"].as_str().unwrap().to_owned();
    let resp = h
        .req("POST", &format!("/campaigns/{campaign}/contacts"))
        .json(&json!({"contacts": [{"to": "+12025550102", "vars": {"name": "Cy"}, "ref": 3}]}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let resp = h
        .req("POST", "/calls")
        .json(&json!({"campaign_id": campaign, "to": "+12025550103",
                      "vars": {"name": "Di"}, "ref": "PAT-0004"}))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let single = resp.json()["call_id"].as_str().unwrap().to_owned();

    let resp = h
        .req("GET", &format!("/campaigns/{campaign}/calls"))
        .send()
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let mut refs: Vec<(String, serde_json::Value)> = resp.json()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["to"].as_str().unwrap().to_owned(), c["ref"].clone()))
        .collect();
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        refs,
        [
            ("+12025550100".to_owned(), json!("PAT-0001")),
            ("+12025550101".to_owned(), serde_json::Value::Null),
            ("+12025550102".to_owned(), json!("3")),
            ("+12025550103".to_owned(), json!("PAT-0004")),
        ]
    );
    let resp = h.req("GET", &format!("/calls/{single}")).send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["ref"], "PAT-0004");
}
