//! `GET /campaigns`: the account's campaigns, newest first, with their counters, filtered by
//! status and paged by cursor, on DynamoDB Local.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use outdial_adapters::counters::{DynamoCounters, status_attr};
use outdial_core::counters::CounterStore;
use outdial_core::ids::CampaignId;
use outdial_core::lifecycle::CallStatus;
use serde_json::{Value, json};

use crate::support::{FROM, Harness, T0};

fn contacts(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"to": format!("+1202555{i:04}"), "vars": {"name": format!("c{i}")}}))
            .collect(),
    )
}

/// `n` campaigns, one a second from T0 + 1 s, the k-th (from 0) with k + 1 contacts; oldest
/// first.
async fn campaigns(h: &Harness, n: usize) -> Vec<CampaignId> {
    let mut ids = Vec::new();
    for k in 0..n {
        h.clock.advance(Duration::from_secs(1));
        ids.push(h.campaign(contacts(k + 1)).await);
    }
    ids
}

/// One page of `GET /campaigns` with `query`, answered 200.
async fn page(h: &Harness, query: &str) -> Value {
    let resp = h.req("GET", &format!("/campaigns{query}")).send().await;
    assert_eq!(resp.status, 200, "{query}: {}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{query}"
    );
    resp.json()
}

/// The ids of a page's campaigns, in order.
fn listed_ids(page: &Value) -> Vec<String> {
    page["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `GET /campaigns` with `query` (which sets `limit` and maybe `status`),
/// following `next_cursor` to the end.
async fn every_page(h: &Harness, query: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            None => format!("?{query}"),
            Some(c) => format!("?{query}&cursor={c}"),
        };
        let p = page(h, &q).await;
        pages.push(listed_ids(&p));
        match p["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert_eq!(p["next_cursor"], Value::Null, "{p}");
                return pages;
            }
        }
        assert!(pages.len() < 50, "the pages never end");
    }
}

fn newest_first(ids: &[CampaignId]) -> Vec<String> {
    ids.iter().rev().map(|id| id.as_str().to_owned()).collect()
}

/// Adds `by` to counter `name` of campaign `id`, as the stream handler and the dispatcher do.
async fn add_counter(h: &Harness, id: &CampaignId, name: &str, by: i64) {
    h.store
        .client()
        .update_item()
        .table_name(h.store.table())
        .key("PK", AttributeValue::S(format!("CAMPAIGN#{id}")))
        .key("SK", AttributeValue::S("COUNTERS".into()))
        .update_expression("ADD #c :by")
        .expression_attribute_names("#c", name)
        .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_account_without_campaigns_lists_none() {
    let h = Harness::new().await;
    assert_eq!(
        page(&h, "").await,
        json!({"campaigns": [], "next_cursor": null})
    );
}

#[tokio::test]
async fn campaigns_are_listed_newest_first_with_their_counters_as_their_own_view_shows_them() {
    let h = Harness::new().await;
    let ids = campaigns(&h, 3).await;
    // No stream runs here: each campaign's counters hold its contacts and what is added.
    // The oldest has one contact, dialed, answered and completed.
    let done = &ids[0];
    for (name, by) in [
        (status_attr(CallStatus::Completed), 1),
        ("placed".to_owned(), 1),
        ("answered".to_owned(), 1),
    ] {
        add_counter(&h, done, &name, by).await;
    }
    // The middle one has a call ringing.
    add_counter(&h, &ids[1], &status_attr(CallStatus::Ringing), 1).await;
    add_counter(&h, &ids[1], "live", 1).await;

    let list = page(&h, "").await;
    assert_eq!(listed_ids(&list), newest_first(&ids));
    assert_eq!(list["next_cursor"], Value::Null);
    let listed = list["campaigns"].as_array().unwrap();
    let newest = &listed[0];
    assert_eq!(newest["name"], "reminders");
    assert_eq!(newest["from"], FROM);
    assert_eq!(newest["status"], "ACTIVE");
    assert_eq!(
        newest["created_at"],
        T0.plus(Duration::from_secs(3)).rfc3339()
    );
    assert_eq!(newest["contacts"], 3);
    assert_eq!(newest["progress"], 0.0);
    let by_status = newest["counts"]["by_status"].as_object().unwrap();
    assert_eq!(by_status.len(), 13, "every status");
    assert!(by_status.values().all(|n| n == 0), "{by_status:?}");
    assert!(newest.get("completed_at").is_none(), "{newest}");
    assert!(newest.get("spec").is_none(), "a list leaves the spec out");
    let live = &listed[1]["counts"];
    assert_eq!(
        (live["live"].clone(), live["by_status"]["RINGING"].clone()),
        (json!(1), json!(1))
    );
    let oldest = &listed[2];
    assert_eq!(
        oldest["counts"],
        json!({"live": 0, "placed": 1, "answered": 1, "terminal": 1,
               "by_status": oldest["counts"]["by_status"]})
    );
    assert_eq!(oldest["counts"]["by_status"]["COMPLETED"], 1);
    assert_eq!(oldest["progress"], 1.0);

    // Each campaign shows what GET /campaigns/{id} shows for it.
    for summary in listed {
        let id = summary["campaign_id"].as_str().unwrap();
        let full = h
            .req("GET", &format!("/campaigns/{id}"))
            .send()
            .await
            .json();
        for field in [
            "campaign_id",
            "name",
            "from",
            "status",
            "created_at",
            "contacts",
            "progress",
        ] {
            assert_eq!(summary[field], full[field], "{id} {field}");
        }
        for counter in ["live", "placed", "answered", "by_status"] {
            assert_eq!(
                summary["counts"][counter], full["counts"][counter],
                "{id} {counter}"
            );
        }
    }
}

#[tokio::test]
async fn a_status_filter_lists_only_campaigns_in_it_and_a_pause_shows_at_once() {
    let h = Harness::new().await;
    let ids = campaigns(&h, 4).await;
    let all = newest_first(&ids);
    assert_eq!(listed_ids(&page(&h, "?status=ACTIVE").await), all);
    assert_eq!(
        listed_ids(&page(&h, "?status=PAUSED").await),
        Vec::<String>::new()
    );

    let resp = h
        .req("POST", &format!("/campaigns/{}/pause", ids[1]))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let resp = h
        .req("POST", &format!("/campaigns/{}/cancel", ids[2]))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let completed_at = T0.plus(Duration::from_secs(60));
    let counters = DynamoCounters::new(h.store.client().clone(), h.store.table());
    assert!(
        counters
            .complete_campaign(&ids[0], completed_at)
            .await
            .unwrap()
    );

    let paused = page(&h, "?status=PAUSED").await;
    assert_eq!(listed_ids(&paused), vec![ids[1].to_string()]);
    assert_eq!(paused["campaigns"][0]["status"], "PAUSED");
    assert_eq!(paused["next_cursor"], Value::Null);
    assert_eq!(
        listed_ids(&page(&h, "?status=cancelled").await),
        vec![ids[2].to_string()]
    );
    assert_eq!(
        listed_ids(&page(&h, "?status=ACTIVE").await),
        vec![ids[3].to_string()]
    );
    let completed = page(&h, "?status=COMPLETED").await;
    assert_eq!(listed_ids(&completed), vec![ids[0].to_string()]);
    assert_eq!(
        completed["campaigns"][0]["completed_at"],
        completed_at.rfc3339()
    );

    // Unfiltered, each shows its status now, in the same order as before.
    let list = page(&h, "").await;
    assert_eq!(listed_ids(&list), all);
    let statuses: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ACTIVE", "CANCELLED", "PAUSED", "COMPLETED"]);

    // Resumed, it is active again.
    let resp = h
        .req("POST", &format!("/campaigns/{}/resume", ids[1]))
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(
        listed_ids(&page(&h, "?status=ACTIVE").await),
        vec![ids[3].to_string(), ids[1].to_string()]
    );
}

#[tokio::test]
async fn pages_follow_one_another_by_cursor_with_no_campaign_missed_or_repeated() {
    let h = Harness::new().await;
    let mut ids = campaigns(&h, 5).await;
    // Two more in one millisecond: ordered by id, the greater first.
    h.clock.advance(Duration::from_secs(1));
    let mut same = vec![h.campaign(contacts(1)).await, h.campaign(contacts(1)).await];
    same.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.extend(same);
    let all = newest_first(&ids);

    let pages = every_page(&h, "limit=3").await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "{pages:?}"
    );
    assert_eq!(pages.concat(), all);
    // A page exactly as long as what is left is the last: no empty page after it.
    let pages = every_page(&h, "limit=7").await;
    assert_eq!(pages, vec![all.clone()]);
    let pages = every_page(&h, "limit=1").await;
    assert_eq!(pages.len(), 7);
    assert_eq!(pages.concat(), all);

    // Filtered pages too, and a cursor is a place to continue from with another filter.
    for id in [&ids[0], &ids[2], &ids[3], &ids[6]] {
        let resp = h
            .req("POST", &format!("/campaigns/{id}/pause"))
            .send()
            .await;
        assert_eq!(resp.status, 202, "{}", resp.body);
    }
    let paused = every_page(&h, "status=PAUSED&limit=2").await;
    assert_eq!(
        paused,
        vec![
            vec![ids[6].to_string(), ids[3].to_string()],
            vec![ids[2].to_string(), ids[0].to_string()],
        ]
    );
    let first = page(&h, "?status=PAUSED&limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(
        listed_ids(&page(&h, &format!("?status=ACTIVE&cursor={cursor}")).await),
        vec![ids[5].to_string(), ids[4].to_string(), ids[1].to_string()]
    );
    // A cursor names a position, not a campaign that must exist: one made up between two
    // campaigns' times continues after it.
    let between = T0.plus(Duration::from_millis(2500)).sort_key();
    assert_eq!(
        listed_ids(&page(&h, &format!("?cursor={between}.cmp_x")).await),
        vec![ids[1].to_string(), ids[0].to_string()]
    );
}

#[tokio::test]
async fn bad_queries_are_refused_naming_each_bad_parameter() {
    let h = Harness::new().await;
    campaigns(&h, 1).await;
    for (query, fields) in [
        ("status=", vec!["status"]),
        ("status=QUEUED", vec!["status"]),
        ("status=ACTIVE,PAUSED", vec!["status"]),
        ("limit=0", vec!["limit"]),
        ("limit=101", vec!["limit"]),
        ("limit=ten", vec!["limit"]),
        ("limit=", vec!["limit"]),
        ("cursor=", vec!["cursor"]),
        ("cursor=junk", vec!["cursor"]),
        ("cursor=QUEUED.call_1", vec!["cursor"]),
        ("cursor=01900000000000%23cmp_1", vec!["cursor"]),
        (
            "status=LIVE&limit=1000&cursor=x",
            vec!["status", "limit", "cursor"],
        ),
    ] {
        let resp = h.req("GET", &format!("/campaigns?{query}")).send().await;
        assert_eq!(resp.status, 400, "{query}: {}", resp.body);
        assert_eq!(resp.fields(), fields, "{query}: {}", resp.body);
    }
    let problem = h.req("GET", "/campaigns?limit=0").send().await.json();
    assert_eq!(problem["errors"][0]["reason"], "is 1 to 100");
    // The largest page, and an unknown parameter, are fine.
    assert_eq!(listed_ids(&page(&h, "?limit=100&sort=name").await).len(), 1);
}

#[tokio::test]
async fn a_campaign_item_without_the_list_attributes_is_not_listed_but_still_found() {
    let h = Harness::new().await;
    let ids = campaigns(&h, 2).await;
    // As a campaign written before the list existed.
    h.store
        .client()
        .update_item()
        .table_name(h.store.table())
        .key("PK", AttributeValue::S(format!("CAMPAIGN#{}", ids[0])))
        .key("SK", AttributeValue::S("META".into()))
        .update_expression("REMOVE listed, listed_key")
        .send()
        .await
        .unwrap();
    assert_eq!(listed_ids(&page(&h, "").await), vec![ids[1].to_string()]);
    let resp = h.req("GET", &format!("/campaigns/{}", ids[0])).send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
}
