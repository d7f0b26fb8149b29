//! Caller IDs: `GET /numbers`, `PUT` and `DELETE /numbers/{e164}`,
//! `POST /numbers/{e164}/restore`, and campaigns whose `from` names a pool.

use aws_sdk_dynamodb::types::AttributeValue;
use outdial_adapters::item;
use outdial_core::admin::ApiStore;
use outdial_core::ids::{CampaignId, E164};
use outdial_core::numbers::{CallerNumber, Health, MAX_POOL_NUMBERS, NumberCaps, Usage};
use outdial_core::record::PoolRef;
use outdial_core::time::Timestamp;
use serde_json::{Value, json};

use crate::memory::{self, Memory};
use crate::support::{Harness, T0, spec};

/// 2030-03-17 as days since the epoch: T0's UTC day.
const T0_DAY: i64 = 21_990;

fn e164(raw: &str) -> E164 {
    E164::parse(raw).unwrap()
}

/// A registration as the dispatcher might have left it, written through the store.
fn registered(number: &str, pool: &str, health: Health) -> CallerNumber {
    CallerNumber {
        e164: e164(number),
        pool: pool.into(),
        caps: NumberCaps::default(),
        display_region: None,
        health,
    }
}

/// Registers `number` in `pool` and quarantines it as the stream function does.
async fn put_quarantined(h: &Harness, number: &str, pool: &str, reason: &str) {
    use outdial_core::counters::CounterStore;
    h.store
        .put_number(&registered(number, pool, Health::Healthy))
        .await
        .unwrap();
    let counters =
        outdial_adapters::counters::DynamoCounters::new(h.store.client().clone(), h.store.table());
    let Health::Quarantined { reason, at } = quarantined(reason) else {
        unreachable!("quarantined() is a quarantine")
    };
    assert!(
        counters
            .quarantine(&e164(number), &reason, at)
            .await
            .unwrap()
    );
}

fn quarantined(reason: &str) -> Health {
    Health::Quarantined {
        reason: reason.into(),
        at: Timestamp::from_millis(T0.as_millis() - 600_000),
    }
}

impl Harness {
    /// `PUT /numbers/{number}` with `body`: the status and the answer.
    async fn put_number(&self, number: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .req("PUT", &format!("/numbers/{}", number.replace('+', "%2B")))
            .json(body)
            .send()
            .await;
        let value = if resp.body.is_empty() {
            Value::Null
        } else {
            resp.json()
        };
        (resp.status, value)
    }

    async fn list_numbers(&self, query: &str) -> Value {
        let resp = self.req("GET", &format!("/numbers{query}")).send().await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.json()
    }

    /// Writes a number's usage as a claim would.
    async fn set_usage(&self, number: &str, usage: &Usage) {
        let mut update = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .key("PK", AttributeValue::S(item::NUMBERS_PK.into()))
            .key("SK", AttributeValue::S(item::number_sk(&e164(number))));
        let mut sets = Vec::new();
        for (name, value) in item::number_usage(usage) {
            sets.push(format!("#{name} = :{name}"));
            update = update
                .expression_attribute_names(format!("#{name}"), name)
                .expression_attribute_values(format!(":{name}"), value);
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .unwrap();
    }

    async fn stored_health(&self, number: &str) -> Health {
        self.store
            .numbers()
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.number.e164.as_str() == number)
            .unwrap()
            .number
            .health
    }

    /// `POST /campaigns` with `spec` and one contact.
    async fn create_with(&self, spec: &Value) -> (u16, Value) {
        let resp = self
            .req("POST", "/campaigns")
            .json(&json!({"spec": spec,
                          "contacts": [{"to": "+12025550100", "vars": {"name": "Ada"}}]}))
            .send()
            .await;
        (resp.status, resp.json())
    }
}

fn problem_type(problem: &Value) -> &str {
    problem["type"]
        .as_str()
        .unwrap()
        .rsplit_once('#')
        .unwrap()
        .1
}

fn fields(problem: &Value) -> Vec<String> {
    memory::fields(problem)
}

fn pool_spec(from: Value) -> Value {
    let mut spec = spec();
    spec["from"] = from;
    spec
}

#[tokio::test]
async fn a_number_is_registered_updated_listed_and_retired() {
    let h = Harness::new().await;
    assert_eq!(h.list_numbers("").await, json!({"numbers": []}));

    let (status, view) = h
        .put_number(
            "+13055550100",
            &json!({"pool": "east", "caps": {"per_minute": 2, "per_hour": 60, "per_day": 400},
                    "display_region": "+33"}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let first = json!({
        "e164": "+13055550100", "pool": "east",
        "caps": {"per_minute": 2, "per_hour": 60, "per_day": 400},
        "display_region": "+33",
        "health": {"state": "healthy"},
        "usage": {"minute": 0, "hour": 0, "day": 0}
    });
    assert_eq!(view, first);
    assert_eq!(h.list_numbers("").await, json!({"numbers": [first]}));
    let stored = h.store.numbers().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].number.caps.per_hour, Some(60));
    assert_eq!(stored[0].number.display_region.as_deref(), Some("+33"));

    // The same body again: the same answer. New caps, another pool, no display region.
    assert_eq!(
        h.put_number(
            "+13055550100",
            &json!({"pool": "east", "caps": {"per_minute": 2, "per_hour": 60, "per_day": 400},
                    "display_region": "+33"}),
        )
        .await,
        (200, first)
    );
    let (status, view) = h
        .put_number(
            "+13055550100",
            &json!({"pool": "west", "caps": {"per_day": 10}}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["pool"], "west");
    assert_eq!(view["caps"], json!({"per_day": 10}));
    assert!(view.get("display_region").is_none(), "{view}");
    let stored = h.store.numbers().await.unwrap();
    assert_eq!(stored.len(), 1, "updated, not added");
    assert_eq!(stored[0].number.pool, "west");
    assert_eq!(
        stored[0].number.caps,
        NumberCaps {
            per_minute: None,
            per_hour: None,
            per_day: Some(10)
        }
    );

    // The `+` may be written as is.
    let resp = h.req("DELETE", "/numbers/+13055550100").send().await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert!(resp.body.is_empty());
    assert!(h.store.numbers().await.unwrap().is_empty());
    assert_eq!(h.list_numbers("").await, json!({"numbers": []}));
    let resp = h.req("DELETE", "/numbers/%2B13055550100").send().await;
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_eq!(problem_type(&resp.json()), "not-found");
}

#[tokio::test]
async fn usage_is_counted_over_the_last_minute_hour_and_utc_day() {
    let h = Harness::new().await;
    for number in ["+13055550100", "+13055550101"] {
        let (status, view) = h
            .put_number(number, &json!({"pool": "east", "caps": {"per_minute": 5}}))
            .await;
        assert_eq!(status, 200, "{view}");
    }
    assert_eq!(T0.as_millis().div_euclid(86_400_000), T0_DAY);
    let ago = |s: i64| T0.as_millis() - s * 1000;
    h.set_usage(
        "+13055550100",
        &Usage {
            version: 7,
            // Two in the last minute (60 s ago is out of it), four in the last hour.
            recent: vec![ago(3600), ago(1800), ago(60), ago(59), ago(1)],
            day: T0_DAY,
            day_count: 9,
        },
    )
    .await;
    // Counted yesterday: none today, whatever the count.
    h.set_usage(
        "+13055550101",
        &Usage {
            version: 2,
            recent: Vec::new(),
            day: T0_DAY - 1,
            day_count: 30,
        },
    )
    .await;

    let list = h.list_numbers("").await;
    let usage: Vec<&Value> = list["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["usage"])
        .collect();
    assert_eq!(
        usage,
        [
            &json!({"minute": 2, "hour": 4, "day": 9}),
            &json!({"minute": 0, "hour": 0, "day": 0})
        ]
    );

    // Counted at the time of the request.
    h.clock.advance(std::time::Duration::from_secs(1800));
    let list = h.list_numbers("?pool=east").await;
    assert_eq!(
        list["numbers"][0]["usage"],
        json!({"minute": 0, "hour": 3, "day": 9})
    );

    // Registering the number again keeps its usage, and shows it.
    let (status, view) = h.put_number("+13055550100", &json!({"pool": "east"})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["usage"], json!({"minute": 0, "hour": 3, "day": 9}));
    let member = h
        .store
        .numbers()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.number.e164.as_str() == "+13055550100")
        .unwrap();
    assert_eq!(member.usage.version, 7);
    assert_eq!(member.usage.day_count, 9);
}

#[tokio::test]
async fn numbers_are_listed_by_number_and_filtered_by_pool() {
    let h = Harness::new().await;
    for (number, pool) in [
        ("+14155550100", "west"),
        ("+12025550100", "east"),
        ("+13055550100", "east"),
        ("+12125550100", "west"),
    ] {
        let (status, view) = h.put_number(number, &json!({"pool": pool})).await;
        assert_eq!(status, 200, "{view}");
    }
    let numbers = |list: &Value| -> Vec<String> {
        list["numbers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["e164"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        numbers(&h.list_numbers("").await),
        [
            "+12025550100",
            "+12125550100",
            "+13055550100",
            "+14155550100"
        ]
    );
    assert_eq!(
        numbers(&h.list_numbers("?pool=east").await),
        ["+12025550100", "+13055550100"]
    );
    assert_eq!(
        numbers(&h.list_numbers("?pool=west").await),
        ["+12125550100", "+14155550100"]
    );
    assert!(numbers(&h.list_numbers("?pool=north").await).is_empty());

    for query in ["?pool=", "?pool=east%201", "?pool=%C3%A9st"] {
        let resp = h.req("GET", &format!("/numbers{query}")).send().await;
        assert_eq!(resp.status, 400, "{query}: {}", resp.body);
        assert_eq!(resp.fields(), ["pool"], "{query}");
    }
    let resp = h
        .req("GET", &format!("/numbers?pool={}", "p".repeat(65)))
        .send()
        .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
}

#[tokio::test]
async fn a_quarantined_number_stays_quarantined_when_updated_until_restored() {
    let h = Harness::new().await;
    put_quarantined(&h, "+13055550100", "east", "carrier flagged it").await;
    let list = h.list_numbers("").await;
    assert_eq!(
        list["numbers"][0]["health"],
        json!({"state": "quarantined", "reason": "carrier flagged it",
               "at": "2030-03-17T17:36:40Z"})
    );

    // New caps: still quarantined.
    let (status, view) = h
        .put_number(
            "+13055550100",
            &json!({"pool": "east", "caps": {"per_hour": 30}}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["health"]["state"], "quarantined", "{view}");
    assert_eq!(view["caps"], json!({"per_hour": 30}));
    assert_eq!(
        h.stored_health("+13055550100").await,
        quarantined("carrier flagged it")
    );

    let resp = h
        .req("POST", "/numbers/%2B13055550100/restore")
        .send()
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let restored = resp.json();
    assert_eq!(restored["health"], json!({"state": "healthy"}));
    assert_eq!(
        restored["caps"],
        json!({"per_hour": 30}),
        "the rest is kept"
    );
    assert_eq!(h.stored_health("+13055550100").await, Health::Healthy);

    // Restoring a healthy number changes nothing and answers the same.
    let resp = h.req("POST", "/numbers/+13055550100/restore").send().await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json(), restored);

    // With an Idempotency-Key, as every POST: a retry gets the first answer.
    put_quarantined(&h, "+13055550100", "east", "again").await;
    let first = h
        .req("POST", "/numbers/%2B13055550100/restore")
        .key("restore-1")
        .send()
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = h
        .req("POST", "/numbers/%2B13055550100/restore")
        .key("restore-1")
        .send()
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    let resp = h
        .req("POST", "/numbers/%2B13055550199/restore")
        .send()
        .await;
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_eq!(problem_type(&resp.json()), "not-found");
}

#[tokio::test]
async fn a_bad_number_body_or_path_is_400_naming_its_field_and_changes_nothing() {
    let h = Harness::new().await;
    for (body, field) in [
        (json!({}), "pool"),
        (json!({"pool": null}), "pool"),
        (json!({"pool": 7}), "pool"),
        (json!({"pool": "east 1"}), "pool"),
        (json!({"pool": ""}), "pool"),
        (json!({"pool": "p".repeat(65)}), "pool"),
        (json!({"pool": "east", "colour": "blue"}), "colour"),
        (json!({"pool": "east", "caps": 5}), "caps"),
        (
            json!({"pool": "east", "caps": {"per_week": 5}}),
            "caps.per_week",
        ),
        (
            json!({"pool": "east", "caps": {"per_minute": 0}}),
            "caps.per_minute",
        ),
        (
            json!({"pool": "east", "caps": {"per_minute": 601}}),
            "caps.per_minute",
        ),
        (
            json!({"pool": "east", "caps": {"per_minute": 1.5}}),
            "caps.per_minute",
        ),
        (
            json!({"pool": "east", "caps": {"per_hour": -1}}),
            "caps.per_hour",
        ),
        (
            json!({"pool": "east", "caps": {"per_hour": 3601}}),
            "caps.per_hour",
        ),
        (
            json!({"pool": "east", "caps": {"per_day": 50_001}}),
            "caps.per_day",
        ),
        (
            json!({"pool": "east", "caps": {"per_day": "ten"}}),
            "caps.per_day",
        ),
        (
            json!({"pool": "east", "caps": {"per_minute": 10, "per_hour": 5}}),
            "caps.per_minute",
        ),
        (
            json!({"pool": "east", "caps": {"per_hour": 10, "per_day": 5}}),
            "caps.per_hour",
        ),
        (
            json!({"pool": "east", "display_region": "30"}),
            "display_region",
        ),
        (
            json!({"pool": "east", "display_region": "+1"}),
            "display_region",
        ),
        (
            json!({"pool": "east", "display_region": "+331"}),
            "display_region",
        ),
        (
            json!({"pool": "east", "display_region": 305}),
            "display_region",
        ),
        (json!(["east"]), "body"),
    ] {
        let (status, problem) = h.put_number("+13055550100", &body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem_type(&problem), "invalid-request", "{problem}");
        assert_eq!(fields(&problem), [field], "{body}");
    }
    // Every shape fault at once.
    let (status, problem) = h
        .put_number(
            "+13055550100",
            &json!({"caps": {"per_minute": "x"}, "display_region": false}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        fields(&problem),
        ["pool", "caps.per_minute", "display_region"]
    );

    let resp = h
        .req("PUT", "/numbers/%2B13055550100")
        .raw("text/csv", "pool\neast\n")
        .send()
        .await;
    assert_eq!(resp.status, 415, "{}", resp.body);
    let resp = h
        .req("PUT", "/numbers/%2B13055550100")
        .raw("application/json", "")
        .send()
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.fields(), ["body"]);

    for path in [
        "/numbers/3055550100",
        "/numbers/%2B1",
        "/numbers/%2Bphone",
        "/numbers/%2B1%20305%20555%200100%20x5",
    ] {
        let (status, problem) = {
            let resp = h
                .req("PUT", path)
                .json(&json!({"pool": "east"}))
                .send()
                .await;
            (resp.status, resp.json())
        };
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(fields(&problem), ["e164"], "{path}");
        for (method, path) in [
            ("DELETE", path.to_owned()),
            ("POST", format!("{path}/restore")),
        ] {
            let resp = h.req(method, &path).send().await;
            assert_eq!(resp.status, 400, "{method} {path}: {}", resp.body);
            assert_eq!(resp.fields(), ["e164"], "{method} {path}");
        }
    }
    assert!(h.store.numbers().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pool_holds_at_most_its_limit_of_numbers() {
    let m = Memory::new();
    let number = |i: usize| format!("%2B1202555{i:04}");
    for i in 0..MAX_POOL_NUMBERS {
        let (status, view) = m
            .json(
                "PUT",
                &format!("/numbers/{}", number(i)),
                &json!({"pool": "full"}),
            )
            .await;
        assert_eq!(status, 200, "{i}: {view}");
    }
    let (status, problem) = m
        .json(
            "PUT",
            &format!("/numbers/{}", number(MAX_POOL_NUMBERS)),
            &json!({"pool": "full"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem_type(&problem), "pool-full");
    assert!(
        problem["detail"].as_str().unwrap().contains("\"full\""),
        "{problem}"
    );

    // A member may still change, and a number may not move in from another pool.
    let (status, view) = m
        .json(
            "PUT",
            &format!("/numbers/{}", number(0)),
            &json!({"pool": "full", "caps": {"per_day": 100}}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let (status, view) = m
        .json("PUT", "/numbers/%2B13055550100", &json!({"pool": "other"}))
        .await;
    assert_eq!(status, 200, "{view}");
    let (status, problem) = m
        .json("PUT", "/numbers/%2B13055550100", &json!({"pool": "full"}))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem_type(&problem), "pool-full");

    let (_, list) = m.send("GET", "/numbers?pool=full", None, None).await;
    assert_eq!(list["numbers"].as_array().unwrap().len(), MAX_POOL_NUMBERS);
    let (_, list) = m.send("GET", "/numbers?pool=other", None, None).await;
    assert_eq!(list["numbers"][0]["e164"], "+13055550100", "not moved");

    // Once one is retired, there is room again.
    let (status, _) = m
        .send("DELETE", &format!("/numbers/{}", number(7)), None, None)
        .await;
    assert_eq!(status, 204);
    let (status, view) = m
        .json("PUT", "/numbers/%2B13055550100", &json!({"pool": "full"}))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["pool"], "full");
}

#[tokio::test]
async fn a_pool_campaign_shows_its_lowest_healthy_number_and_keeps_its_pool() {
    let h = Harness::new().await;
    put_quarantined(&h, "+12025550101", "east", "blocked").await;
    for number in ["+12025550109", "+12025550102"] {
        let (status, view) = h.put_number(number, &json!({"pool": "east"})).await;
        assert_eq!(status, 200, "{view}");
    }
    let (status, view) = h.put_number("+12025550100", &json!({"pool": "west"})).await;
    assert_eq!(status, 200, "{view}");

    let (status, body) = h
        .create_with(&pool_spec(json!({"pool": "east", "local_presence": true})))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1);
    let id = CampaignId::parse(body["campaign_id"].as_str().unwrap()).unwrap();
    let campaign = h.store.campaign(&id).await.unwrap();
    assert_eq!(campaign.from, e164("+12025550102"));
    assert_eq!(
        campaign.caller_pool,
        Some(PoolRef {
            pool: "east".into(),
            local_presence: true
        })
    );
    assert_eq!(h.calls(&id).await.len(), 1);
    let view = h
        .req("GET", &format!("/campaigns/{id}"))
        .send()
        .await
        .json();
    assert_eq!(view["from"], "+12025550102");
    assert_eq!(
        view["caller_pool"],
        json!({"pool": "east", "local_presence": true})
    );

    // In the CSV form, with local presence off by default.
    let resp = h
        .req("POST", "/campaigns")
        .csv("to,name\n+12025550100,Ada\n")
        .header(
            "X-Outdial-Spec",
            &pool_spec(json!({"pool": "west"})).to_string(),
        )
        .send()
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let id = CampaignId::parse(resp.json()["campaign_id"].as_str().unwrap()).unwrap();
    let campaign = h.store.campaign(&id).await.unwrap();
    assert_eq!(campaign.from, e164("+12025550100"));
    assert_eq!(
        campaign.caller_pool,
        Some(PoolRef {
            pool: "west".into(),
            local_presence: false
        })
    );

    // A campaign from one number is as before: no pool, none shown.
    let id = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    assert_eq!(h.store.campaign(&id).await.unwrap().caller_pool, None);
    let view = h
        .req("GET", &format!("/campaigns/{id}"))
        .send()
        .await
        .json();
    assert_eq!(view["from"], crate::support::FROM);
    assert!(view.get("caller_pool").is_none(), "{view}");
}

#[tokio::test]
async fn a_campaign_from_an_unknown_or_unhealthy_pool_is_refused_with_422() {
    let h = Harness::new().await;
    put_quarantined(&h, "+12025550101", "sick", "blocked").await;
    put_quarantined(&h, "+12025550102", "sick", "blocked").await;
    for (pool, says) in [("nowhere", "has no caller ID"), ("sick", "is quarantined")] {
        let (status, problem) = h.create_with(&pool_spec(json!({"pool": pool}))).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem_type(&problem), "empty-pool", "{problem}");
        assert_eq!(fields(&problem), ["spec.from.pool"]);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{detail}");
        assert!(detail.contains(&format!("\"{pool}\"")), "{detail}");
    }
    let resp = h
        .req("POST", "/campaigns")
        .csv("to,name\n+12025550100,Ada\n")
        .header(
            "X-Outdial-Spec",
            &pool_spec(json!({"pool": "nowhere"})).to_string(),
        )
        .send()
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(resp.fields(), ["X-Outdial-Spec.from.pool"]);
    assert_eq!(h.dispatches(), 0, "no campaign was created");

    // Restoring a number makes the pool usable.
    let resp = h
        .req("POST", "/numbers/%2B12025550102/restore")
        .send()
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let (status, body) = h.create_with(&pool_spec(json!({"pool": "sick"}))).await;
    assert_eq!(status, 202, "{body}");
    let id = CampaignId::parse(body["campaign_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        h.store.campaign(&id).await.unwrap().from,
        e164("+12025550102")
    );
}

#[tokio::test]
async fn a_bad_pool_reference_is_400_naming_its_field() {
    let h = Harness::new().await;
    for (from, field) in [
        (json!({"pool": "east 1"}), "spec.from.pool"),
        (json!({"pool": ""}), "spec.from.pool"),
        (json!({"pool": "p".repeat(65)}), "spec.from.pool"),
        (json!({"pool": ["east"]}), "spec.from.pool"),
        (json!({"local_presence": true}), "spec.from.pool"),
        (
            json!({"pool": "east", "local_presence": "yes"}),
            "spec.from.local_presence",
        ),
        (
            json!({"pool": "east", "strategy": "random"}),
            "spec.from.strategy",
        ),
        (json!(15_555_550_199_u64), "spec.from"),
    ] {
        let (status, problem) = h.create_with(&pool_spec(from.clone())).await;
        assert_eq!(status, 400, "{from}: {problem}");
        assert_eq!(problem_type(&problem), "invalid-request");
        assert_eq!(fields(&problem), [field], "{from}");
    }
    let resp = h
        .req("POST", "/campaigns")
        .csv("to,name\n+12025550100,Ada\n")
        .header(
            "X-Outdial-Spec",
            &pool_spec(json!({"pool": "east!"})).to_string(),
        )
        .send()
        .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.fields(), ["X-Outdial-Spec.from.pool"]);
    assert_eq!(h.dispatches(), 0);
}

#[tokio::test]
async fn caller_ids_need_credentials() {
    let h = Harness::new().await;
    for (method, path) in [
        ("GET", "/numbers"),
        ("PUT", "/numbers/%2B13055550100"),
        ("DELETE", "/numbers/%2B13055550100"),
        ("POST", "/numbers/%2B13055550100/restore"),
    ] {
        let resp = h.req(method, path).no_auth().send().await;
        assert_eq!(resp.status, 401, "{method} {path}");
    }
}
