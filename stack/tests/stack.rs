//! The whole system on one machine, driven over HTTP as a user drives it: campaigns posted to
//! the local HTTP API run to completion through the dispatcher, the simulator and the SMA
//! handler; pause, resume and cancel reach a running campaign; a single call is dialed
//! without waiting for the schedule; and the counters the stream handler keeps equal a
//! recount of the call records.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outdial_local::sim::{Callee, Callees, Persona, SimConfig};
use outdial_stack::stack::{Stack, StackConfig};
use serde_json::{Value, json};

#[path = "stack/outcomes.rs"]
mod outcomes;

/// A stack on this test binary's DynamoDB Local, a fresh table, and a quick simulator.
async fn stack(callees: Callees, schedule_every: Duration) -> Stack {
    Stack::start(StackConfig {
        sim: SimConfig {
            speed: 0.005,
            callees,
            ..SimConfig::default()
        },
        schedule_every,
        account_cps: 50.0,
        record: outdial_local::record::shared(),
        ..StackConfig::default()
    })
    .await
    .unwrap()
}

struct Http<'a> {
    stack: &'a Stack,
    client: reqwest::Client,
}

impl<'a> Http<'a> {
    fn new(stack: &'a Stack) -> Self {
        Self {
            stack,
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.stack.endpoints().api))
            .bearer_auth(self.stack.api_token());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.send(reqwest::Method::POST, path, body).await;
        assert_eq!(status, 202, "POST {path}: {body}");
        body
    }

    /// Every call of a campaign, by status, from the records.
    async fn recount(&self, id: &str) -> BTreeMap<String, i64> {
        let mut by_status = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/campaigns/{id}/calls?limit=100");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path).await;
            for call in page["calls"].as_array().unwrap() {
                *by_status
                    .entry(call["status"].as_str().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return by_status,
            }
        }
    }

    /// The campaign's counters by status, zeros left out.
    async fn counters(&self, id: &str) -> BTreeMap<String, i64> {
        let campaign = self.get(&format!("/campaigns/{id}")).await;
        campaign["counts"]["by_status"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
            .filter(|(_, v)| *v != 0)
            .collect()
    }

    /// Waits until every call of the campaign is terminal in its records.
    async fn until_terminal(
        &self,
        id: &str,
        contacts: i64,
        within: Duration,
    ) -> BTreeMap<String, i64> {
        let started = Instant::now();
        loop {
            let by_status = self.recount(id).await;
            let terminal: i64 = by_status
                .iter()
                .filter(|(s, _)| {
                    s.parse::<outdial_core::lifecycle::CallStatus>()
                        .unwrap()
                        .is_terminal()
                })
                .map(|(_, n)| n)
                .sum();
            if terminal == contacts {
                return by_status;
            }
            assert!(
                started.elapsed() < within,
                "not every call ended within {within:?}: {by_status:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn spec(cps: f64) -> Value {
    json!({
        "name": "e2e",
        "from": "+15555550199",
        "pacing": {"calls_per_second": cps, "max_concurrent": 50},
        "retry": {"max_attempts": 2, "busy_after_s": 1, "no_answer_after_s": 1, "failed_after_s": 1},
        "script": {"caller_name": "Riverside Clinic", "start": "menu", "steps": {
            "menu": {"gather": {"say": "This is Riverside Clinic. Press 1 to confirm."},
                     "branches": {"1": "ok"}, "no_input": "bye"},
            "ok": {"say": "Thank you.", "outcome": "confirmed"},
            "bye": {"say": "Goodbye.", "outcome": "no_input"}}}
    })
}

fn contacts(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"to": format!("+1555557{i:04}"), "vars": {}}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_posted_over_http_ends_every_call_and_its_streamed_counters_equal_the_records() {
    let stack = stack(Callees::demo_mix(), Duration::from_secs(5)).await;
    let http = Http::new(&stack);
    let accepted = http
        .post(
            "/campaigns",
            Some(json!({"spec": spec(20.0), "contacts": contacts(40)})),
        )
        .await;
    let id = accepted["campaign_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["accepted"], 40);

    let by_status = http.until_terminal(&id, 40, Duration::from_secs(90)).await;
    stack
        .stream_caught_up(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        http.counters(&id).await,
        by_status,
        "counters are a recount"
    );
    let campaign = http.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["status"], "COMPLETED", "{campaign}");
    assert_eq!(campaign["progress"], 1.0);

    // One call's history, as the stream handler wrote it.
    let calls = http.get(&format!("/campaigns/{id}/calls?limit=1")).await;
    let call_id = calls["calls"][0]["call_id"].as_str().unwrap();
    let call = http.get(&format!("/calls/{call_id}")).await;
    let history = call["history"].as_array().unwrap();
    assert_eq!(history[0]["event_type"], "NEW_OUTBOUND_CALL", "{call}");

    let report = stack.stop().await.unwrap();
    assert_eq!(report.double_dials, 0, "{:?}", report.placed_per_number);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_reach_a_running_campaign() {
    let callees = Callees {
        by_number: BTreeMap::new(),
        mix: vec![(1, Callee::Busy)],
    };
    let stack = stack(callees, Duration::from_secs(5)).await;
    let http = Http::new(&stack);
    let accepted = http
        .post(
            "/campaigns",
            Some(json!({"spec": spec(5.0), "contacts": contacts(60)})),
        )
        .await;
    let id = accepted["campaign_id"].as_str().unwrap().to_owned();
    let placed = || stack.simulator().report().placed_per_number.len();
    let started = Instant::now();
    while placed() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing dialed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let paused = http.post(&format!("/campaigns/{id}/pause"), None).await;
    assert_eq!(paused["status"], "PAUSED");
    // Dials already booked go out or are given back within a second; then nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let while_paused = placed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(placed(), while_paused, "nothing is dialed while paused");

    http.post(&format!("/campaigns/{id}/resume"), None).await;
    let started = Instant::now();
    while placed() < while_paused + 5 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dialing resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let cancelled = http.post(&format!("/campaigns/{id}/cancel"), None).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    let by_status = http.until_terminal(&id, 60, Duration::from_secs(60)).await;
    let dialed = placed();
    assert!(
        dialed < 60,
        "the cancel stopped the campaign: {dialed} dialed"
    );
    assert!(
        by_status.get("CANCELLED").copied().unwrap_or(0) >= 60 - i64::try_from(dialed).unwrap(),
        "{by_status:?}"
    );
    let (status, problem) = stack_post_status(&http, &format!("/campaigns/{id}/resume")).await;
    assert_eq!(
        status, 409,
        "a cancelled campaign stays cancelled: {problem}"
    );
    let report = stack.stop().await.unwrap();
    assert_eq!(report.double_dials, 0);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

async fn stack_post_status(http: &Http<'_>, path: &str) -> (u16, Value) {
    http.send(reqwest::Method::POST, path, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_call_is_dialed_at_once_without_waiting_for_the_schedule() {
    // The schedule runs once at start and then not for ten minutes: only the API's own
    // start of the dispatcher can dial the call in time.
    let stack = stack(Callees::default(), Duration::from_secs(600)).await;
    let http = Http::new(&stack);
    let accepted = http
        .post(
            "/campaigns",
            Some(json!({"spec": spec(5.0), "contacts": []})),
        )
        .await;
    let id = accepted["campaign_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posted = Instant::now();
    let call = http
        .post(
            "/calls",
            Some(json!({"campaign_id": id, "to": "+15555550177", "vars": {}})),
        )
        .await;
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    loop {
        let record = http.get(&format!("/calls/{call_id}")).await;
        if record["status"] == "COMPLETED" {
            break;
        }
        assert!(
            posted.elapsed() < Duration::from_secs(20),
            "the call was not dialed at once: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.simulator().report().placed_per_number.len(), 1);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_hung_up_through_the_api_ends_long_before_its_script_would() {
    let stack = stack(Callees::default(), Duration::from_secs(600)).await;
    let http = Http::new(&stack);
    let mut spec = spec(5.0);
    // An hour on the line: only the hang-up can end the call within the test.
    let mut steps: serde_json::Map<String, Value> = (0..60)
        .map(|i| {
            let next = if i == 59 {
                "bye".to_owned()
            } else {
                format!("hold{}", i + 1)
            };
            (
                format!("hold{i}"),
                json!({"pause_ms": 60_000, "next": next}),
            )
        })
        .collect();
    steps.insert(
        "bye".into(),
        json!({"say": "This was Riverside Clinic. Goodbye.", "outcome": "held"}),
    );
    spec["script"] = json!({"caller_name": "Riverside Clinic", "start": "hold0", "steps": steps});
    spec["limits"] = json!({"max_call_s": 7200});
    let accepted = http
        .post("/campaigns", Some(json!({"spec": spec, "contacts": []})))
        .await;
    let id = accepted["campaign_id"].as_str().unwrap().to_owned();
    let call = http
        .post(
            "/calls",
            Some(json!({"campaign_id": id, "to": "+15555550178", "vars": {}})),
        )
        .await;
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    while http.get(&format!("/calls/{call_id}")).await["status"] != "ANSWERED" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the call was not answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    http.post(&format!("/calls/{call_id}/hangup"), None).await;
    let hung_up = Instant::now();
    let record = loop {
        let record = http.get(&format!("/calls/{call_id}")).await;
        let status: outdial_core::lifecycle::CallStatus =
            record["status"].as_str().unwrap().parse().unwrap();
        if status.is_terminal() {
            break record;
        }
        assert!(
            hung_up.elapsed() < Duration::from_secs(15),
            "the hang-up did not end the call: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // An operator's hang-up cancels the call, answered or not.
    assert_eq!(record["status"], "CANCELLED", "{record}");
    assert_eq!(record["answered"], true, "{record}");
    let report = stack.stop().await.unwrap();
    assert_eq!(report.double_dials, 0);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_who_opts_out_is_put_on_the_do_not_call_list_and_no_later_campaign_dials_them() {
    let (opts_out, confirms) = ("+15555580000", "+15555580001");
    let callees = Callees {
        by_number: [
            (opts_out.to_owned(), Persona::OptsOut.callee()),
            (confirms.to_owned(), Persona::Confirms.callee()),
        ]
        .into(),
        mix: Vec::new(),
    };
    let stack = stack(callees, Duration::from_secs(5)).await;
    let http = Http::new(&stack);
    let mut with_opt_out = spec(10.0);
    with_opt_out["script"]["opt_out"] =
        json!({"digit": "9", "say": "You will not be called again. Goodbye."});
    let contacts = json!([{"to": opts_out}, {"to": confirms}]);
    let first = http
        .post(
            "/campaigns",
            Some(json!({"spec": with_opt_out, "contacts": contacts})),
        )
        .await;
    let first = first["campaign_id"].as_str().unwrap().to_owned();
    http.until_terminal(&first, 2, Duration::from_secs(60))
        .await;

    // The entry names the call during which the callee pressed the key.
    let entry = http.get(&format!("/dnc/{opts_out}")).await;
    assert_eq!(entry["source"], "opt-out", "{entry}");
    let call = http
        .get(&format!("/calls/{}", entry["call_id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (&call["to"], &call["status"], &call["script_outcome"]),
        (&json!(opts_out), &json!("COMPLETED"), &json!("opted_out")),
        "{call}"
    );
    let (status, _) = http
        .send(reqwest::Method::GET, &format!("/dnc/{confirms}"), None)
        .await;
    assert_eq!(status, 404);

    // A second campaign over the same numbers: the opted-out one is refused at intake and
    // never dialed again; the other is called again.
    let second = http
        .post(
            "/campaigns",
            Some(json!({"spec": with_opt_out, "contacts": contacts})),
        )
        .await;
    assert_eq!(
        (&second["accepted"], &second["rejected"][0]["reason"]),
        (&json!(1), &json!("is on the do-not-call list")),
        "{second}"
    );
    let second = second["campaign_id"].as_str().unwrap().to_owned();
    http.until_terminal(&second, 1, Duration::from_secs(60))
        .await;
    let report = stack.stop().await.unwrap();
    assert_eq!(report.placed_per_number.get(opts_out), Some(&1));
    assert_eq!(report.placed_per_number.get(confirms), Some(&2));
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_id_the_carrier_rejects_is_quarantined_and_the_campaign_goes_on_from_the_others() {
    use outdial_core::admin::ApiStore;
    use outdial_core::ids::{CallId, CampaignId, E164};
    use outdial_core::numbers::{Health, NumberSpec};
    use outdial_core::ports::DispatchStore;
    use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing, PoolRef};
    use outdial_core::retry::{RetryPolicy, RetrySpec};
    use outdial_local::sim::Carrier;

    // The carrier rejects a caller ID's calls beyond 4 in an hour. Local presence prefers the
    // Miami number for Miami callees, so it is the one that crosses the line.
    let stack = Stack::start(StackConfig {
        sim: SimConfig {
            speed: 0.005,
            callees: Callees {
                by_number: BTreeMap::new(),
                mix: vec![(
                    1,
                    Callee::Answer {
                        after_ms: 1_000,
                        digits: Some("1".into()),
                    },
                )],
            },
            carrier: Some(Carrier {
                max_per_hour: 4,
                ..Carrier::default()
            }),
            ..SimConfig::default()
        },
        schedule_every: Duration::from_secs(5),
        account_cps: 50.0,
        record: outdial_local::record::shared(),
        ..StackConfig::default()
    })
    .await
    .unwrap();
    let store = stack.store();
    let (miami, others) = ("+13055550100", ["+12125550100", "+14155550100"]);
    for number in std::iter::once(miami).chain(others) {
        let registered = serde_json::from_str::<NumberSpec>(r#"{"pool": "main"}"#)
            .unwrap()
            .registration(E164::parse(number).unwrap())
            .unwrap();
        ApiStore::put_number(store, &registered).await.unwrap();
    }
    let now = outdial_core::time::Timestamp::from_millis(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    );
    let campaign = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: Some(PoolRef {
            pool: "main".into(),
            local_presence: true,
        }),
        id: CampaignId::random(),
        name: "pool".into(),
        from: E164::parse(miami).unwrap(),
        status: CampaignStatus::Active,
        // A rejected attempt (SIP 608 ends it DECLINED) is tried again 5 s later, by then
        // from another number.
        retry: RetryPolicy::new(RetrySpec {
            max_attempts: 3,
            busy_after_s: 5,
            no_answer_after_s: 5,
            failed_after_s: 5,
            declined_after_s: Some(5),
        })
        .unwrap(),
        pacing: Pacing {
            calls_per_second: 2.0,
            max_concurrent: 20,
        },
        script: serde_json::from_value(spec(1.0)["script"].clone()).unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: now,
        contacts: 12,
    };
    let calls: Vec<NewCall> = (0..12)
        .map(|i| NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: CallId::random(),
            to: E164::parse(&format!("+1305556{i:04}")).unwrap(),
            vars: BTreeMap::new(),
            due_at: now,
        })
        .collect();
    ApiStore::create_campaign(store, &campaign, &calls)
        .await
        .unwrap();

    let http = Http::new(&stack);
    let by_status = http
        .until_terminal(campaign.id.as_str(), 12, Duration::from_secs(120))
        .await;
    assert_eq!(by_status.get("COMPLETED"), Some(&12), "{by_status:?}");
    let pool = DispatchStore::pool(store, "main").await.unwrap();
    let health = |number: &str| {
        pool.iter()
            .find(|m| m.number.e164.as_str() == number)
            .map(|m| m.number.health.clone())
            .unwrap()
    };
    let Health::Quarantined { reason, .. } = health(miami) else {
        panic!("the Miami number is not quarantined: {:?}", health(miami));
    };
    assert!(reason.contains("rejected as unwanted"), "{reason}");
    assert!(others.iter().all(|n| health(n).is_healthy()));
    let report = stack.stop().await.unwrap();
    let rejected = report.carrier_rejected.get(miami).copied().unwrap_or(0);
    assert!(rejected >= 3, "{:?}", report.carrier_rejected);
    let from_others: u32 = others
        .iter()
        .filter_map(|n| report.placed_per_from.get(*n))
        .map(|u| u.total)
        .sum();
    assert!(from_others >= 12 - 4, "{:?}", report.placed_per_from);
    assert_eq!(report.double_dials, 0);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}
