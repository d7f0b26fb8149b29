//! `Idempotency-Key` on POSTs: replays, concurrent duplicates, reused keys, and a retry that
//! completes the work of an attempt that died.

use std::time::Duration;

use outdial_adapters::counters::read_counters;
use outdial_adapters::item::new_call_item;
use outdial_api::idempotency::{Seed, fingerprint};
use outdial_core::admin::{ApiStore, Begun, IdempotencyKey};
use outdial_core::ids::{CampaignId, E164};
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::RetryPolicy;
use serde_json::{Value, json};

use crate::support::{FROM, Harness, T0, spec};

fn body(n: usize) -> Value {
    let contacts: Vec<Value> = (0..n)
        .map(|i| json!({"to": format!("+1202555{i:04}"), "vars": {"name": format!("c{i}")}}))
        .collect();
    json!({"spec": spec(), "contacts": contacts})
}

#[tokio::test]
async fn a_retried_create_returns_the_first_answer_byte_for_byte_and_creates_nothing_twice() {
    let h = Harness::new().await;
    let first = h
        .req("POST", "/campaigns")
        .key("key-1")
        .json(&body(3))
        .send()
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = h
        .req("POST", "/campaigns")
        .key("key-1")
        .json(&body(3))
        .send()
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("content-type"), Some("application/json"));
    let id = CampaignId::parse(first.json()["campaign_id"].as_str().unwrap()).unwrap();
    assert_eq!(h.calls(&id).await.len(), 3);
    assert_eq!(h.dispatches(), 1);
}

#[tokio::test]
async fn requests_without_a_key_get_new_ids_every_time() {
    let h = Harness::new().await;
    let a = h
        .req("POST", "/campaigns")
        .json(&body(1))
        .send()
        .await
        .json();
    let b = h
        .req("POST", "/campaigns")
        .json(&body(1))
        .send()
        .await
        .json();
    assert_ne!(a["campaign_id"], b["campaign_id"]);
}

#[tokio::test]
async fn two_concurrent_requests_with_one_key_create_one_campaign() {
    let h = Harness::new().await;
    let n = 300;
    let (a, b) = tokio::join!(
        h.req("POST", "/campaigns")
            .key("race")
            .json(&body(n))
            .send(),
        h.req("POST", "/campaigns")
            .key("race")
            .json(&body(n))
            .send(),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert!(
        statuses == [202, 202] || statuses == [202, 409],
        "{statuses:?}: {} / {}",
        a.body,
        b.body
    );
    let busy = [&a, &b].into_iter().find(|r| r.status == 409);
    if let Some(busy) = busy {
        assert!(
            busy.json()["type"]
                .as_str()
                .unwrap()
                .ends_with("#request-in-progress")
        );
        assert!(busy.header("retry-after").is_some());
    }
    let done = h
        .req("POST", "/campaigns")
        .key("race")
        .json(&body(n))
        .send()
        .await;
    assert_eq!(done.status, 202);
    let winner = [&a, &b].into_iter().find(|r| r.status == 202).unwrap();
    assert_eq!(done.body, winner.body);
    let id = CampaignId::parse(done.json()["campaign_id"].as_str().unwrap()).unwrap();
    assert_eq!(h.calls(&id).await.len(), n);
    let counters = read_counters(h.store.client(), h.store.table(), &id)
        .await
        .unwrap();
    assert_eq!(counters.contacts, i64::try_from(n).unwrap());
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_422() {
    let h = Harness::new().await;
    assert_eq!(
        h.req("POST", "/campaigns")
            .key("k")
            .json(&body(1))
            .send()
            .await
            .status,
        202
    );
    let resp = h
        .req("POST", "/campaigns")
        .key("k")
        .json(&body(2))
        .send()
        .await;
    assert_eq!(resp.status, 422);
    assert!(
        resp.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("#idempotency-key-reused")
    );
    let resp = h
        .req("POST", "/calls")
        .key("k")
        .json(&json!({"campaign_id": "cmp_x", "to": "+12025550100"}))
        .send()
        .await;
    assert_eq!(resp.status, 422, "the same key on another path");
}

#[tokio::test]
async fn a_malformed_key_is_400() {
    let h = Harness::new().await;
    let resp = h
        .req("POST", "/campaigns")
        .key(&"k".repeat(300))
        .json(&body(1))
        .send()
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["Idempotency-Key"]);
}

#[tokio::test]
async fn a_request_whose_first_attempt_died_is_completed_by_its_retry_after_the_lease() {
    let h = Harness::new().await;
    let n = 40;
    let request = h.req("POST", "/campaigns").key("crash").json(&body(n));
    let event = lambda_http::request::from_str(&request.event().to_string()).unwrap();
    let key = IdempotencyKey::parse("crash").unwrap();
    let print = fingerprint(&event);
    let seed = Seed::keyed(&key, &print);
    let campaign_id = seed.campaign_id().unwrap();

    // The first attempt took the key, wrote a few of its calls, and died.
    let begun = h
        .store
        .begin_request(&key, &print, "dead", T0, T0.plus(Duration::from_secs(120)))
        .await
        .unwrap();
    assert_eq!(begun, Begun::Started);
    let campaign = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: campaign_id.clone(),
        name: "reminders".into(),
        from: E164::parse(FROM).unwrap(),
        status: CampaignStatus::Active,
        retry: RetryPolicy::default(),
        pacing: Pacing::default(),
        script: serde_json::from_value(spec()["script"].clone()).unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: T0,
        contacts: 0,
    };
    for index in 0..5_u64 {
        let call = NewCall {
            consent: None,
            reference: None,
            id: seed.call_id(index).unwrap(),
            to: E164::parse(&format!("+1202555{index:04}")).unwrap(),
            vars: [("name".to_owned(), format!("c{index}"))].into(),
            due_at: T0,
            tz: None,
        };
        h.store
            .client()
            .put_item()
            .table_name(h.store.table())
            .set_item(Some(new_call_item(&campaign, &call, 4)))
            .send()
            .await
            .unwrap();
    }
    assert!(
        h.store.campaign(&campaign_id).await.is_err(),
        "no half campaign is visible"
    );

    let busy = h
        .req("POST", "/campaigns")
        .key("crash")
        .json(&body(n))
        .send()
        .await;
    assert_eq!(busy.status, 409, "{}", busy.body);

    h.clock.advance(Duration::from_secs(121));
    let resp = h
        .req("POST", "/campaigns")
        .key("crash")
        .json(&body(n))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.json()["campaign_id"], campaign_id.as_str());
    let calls = h.calls(&campaign_id).await;
    assert_eq!(calls.len(), n);
    let counters = read_counters(h.store.client(), h.store.table(), &campaign_id)
        .await
        .unwrap();
    assert_eq!(counters.contacts, i64::try_from(n).unwrap());
    let again = h
        .req("POST", "/campaigns")
        .key("crash")
        .json(&body(n))
        .send()
        .await;
    assert_eq!(again.body, resp.body);
}

#[tokio::test]
async fn a_large_answer_is_stored_in_parts_and_replayed_whole() {
    let h = Harness::new().await;
    let mut csv = String::from("to,name\n+12025550100,Ada\n");
    for i in 0..9000 {
        csv.push_str(&format!("bad number {i},x\n"));
    }
    let send = || {
        h.req("POST", "/campaigns")
            .key("big")
            .csv(&csv)
            .header("X-Outdial-Spec", &spec().to_string())
            .send()
    };
    let first = send().await;
    assert_eq!(first.status, 202);
    assert!(first.body.len() > 400_000, "{} bytes", first.body.len());
    assert_eq!(first.json()["rejected"].as_array().unwrap().len(), 9000);
    let parts = h
        .store
        .client()
        .query()
        .table_name(h.store.table())
        .key_condition_expression("PK = :pk AND begins_with(SK, :part)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S("IDEM#big".into()),
        )
        .expression_attribute_values(
            ":part",
            aws_sdk_dynamodb::types::AttributeValue::S("PART#".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(parts.count() >= 2, "{} parts", parts.count());
    let again = send().await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
}

#[tokio::test]
async fn a_retried_append_counts_its_contacts_once_even_without_its_record() {
    let h = Harness::new().await;
    let id = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    let append = json!({"contacts": [
        {"to": "+12025550101", "vars": {"name": "Bob"}},
        {"to": "+12025550102", "vars": {"name": "Cy"}}
    ]});
    let path = format!("/campaigns/{id}/contacts");
    let first = h
        .req("POST", &path)
        .key("append-1")
        .json(&append)
        .send()
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    // The answer was lost (say the record expired); the retry finds the append done.
    h.store
        .client()
        .delete_item()
        .table_name(h.store.table())
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S("IDEM#append-1".into()),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("IDEM".into()),
        )
        .send()
        .await
        .unwrap();
    let retry = h
        .req("POST", &path)
        .key("append-1")
        .json(&append)
        .send()
        .await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.body, first.body);
    assert_eq!(h.calls(&id).await.len(), 3);
    let counters = read_counters(h.store.client(), h.store.table(), &id)
        .await
        .unwrap();
    assert_eq!(counters.contacts, 3);
}

#[tokio::test]
async fn a_retried_status_change_gets_its_first_answer_not_a_conflict() {
    let h = Harness::new().await;
    let id = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    let path = format!("/campaigns/{id}/pause");
    let first = h.req("POST", &path).key("pause-1").send().await;
    assert_eq!(first.status, 202);
    let retry = h.req("POST", &path).key("pause-1").send().await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.body, first.body);
    assert_eq!(h.req("POST", &path).send().await.status, 409);
}
