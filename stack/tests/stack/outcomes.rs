//! Outcomes end to end: the stream function publishes to the local bus, which posts each
//! event to a webhook that fails and restarts, while the bus itself fails for a while; then
//! the campaign's results export is read page by page and checked against the events and the
//! campaign's counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use outdial_local::bus::RetrySettings;
use outdial_local::sim::{Callees, SimConfig};
use outdial_stack::stack::{Stack, StackConfig, WebhookConfig};
use serde_json::{Value, json};

use super::{Http, contacts, spec};

/// Of the events the demo publishes (about three per contact), the first 30 % of
/// distinct events are refused on their first delivery.
const REFUSED_FIRST: usize = 180;

#[derive(Debug, Default)]
struct Received {
    /// Events taken (answered 200), in arrival order.
    taken: Mutex<Vec<Value>>,
    /// Event ids seen, to refuse the first delivery of the first ones.
    seen: Mutex<HashSet<String>>,
    posts: AtomicUsize,
    refused: AtomicUsize,
}

async fn receive(
    State(received): State<Arc<Received>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    received.posts.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        headers.get("x-outdial-key").and_then(|v| v.to_str().ok()),
        Some("test-key")
    );
    let event: Value = serde_json::from_slice(&body).unwrap();
    let id = event["id"].as_str().unwrap().to_owned();
    let first_time = {
        let mut seen = received.seen.lock().unwrap();
        seen.len() < REFUSED_FIRST && seen.insert(id)
    };
    if first_time {
        received.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    received.taken.lock().unwrap().push(event);
    StatusCode::OK
}

/// The receiver on `port` (0: any), until the returned task is aborted.
async fn serve(received: &Arc<Received>, port: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(received));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    (
        port,
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }),
    )
}

/// `GET /campaigns/{id}/results`, 64 rows a page, followed through `Outdial-Next-Cursor`:
/// each row by call id, as column name to value.
async fn export(stack: &Stack, id: &str) -> HashMap<String, HashMap<String, String>> {
    let client = reqwest::Client::new();
    let mut text = String::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/campaigns/{id}/results?limit=64", stack.endpoints().api);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let answer = client
            .get(url)
            .bearer_auth(stack.api_token())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let next = answer
            .headers()
            .get("outdial-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        text.push_str(&answer.text().await.unwrap());
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = HashMap::new();
    for record in reader.records() {
        let row: HashMap<String, String> = header
            .iter()
            .cloned()
            .zip(record.unwrap().iter().map(str::to_owned))
            .collect();
        assert!(
            rows.insert(row["call_id"].clone(), row).is_none(),
            "a contact twice"
        );
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_end_reaches_a_failing_restarting_webhook_once_in_order_nothing_is_published_twice_and_the_export_agrees()
 {
    let received = Arc::new(Received::default());
    let (port, mut server) = serve(&received, 0).await;
    let stack = Stack::start(StackConfig {
        sim: SimConfig {
            speed: 0.005,
            callees: Callees::demo_mix(),
            ..SimConfig::default()
        },
        schedule_every: Duration::from_secs(5),
        account_cps: 50.0,
        record: outdial_local::record::shared(),
        webhook: Some(WebhookConfig {
            url: format!("http://127.0.0.1:{port}/hook"),
            key: Some("test-key".into()),
            retry: RetrySettings {
                first_retry: Duration::from_millis(20),
                max_retry: Duration::from_millis(400),
                max_age: Duration::from_secs(600),
                timeout: Duration::from_secs(5),
            },
        }),
        ..StackConfig::default()
    })
    .await
    .unwrap();
    // The bus fails every request for a while: the stream function's retries (the SDK's
    // four tries in each of its four rounds) run out, and Lambda delivers the batch again.
    stack.bus().fail_requests(16);
    let http = Http::new(&stack);
    let accepted = http
        .post(
            "/campaigns",
            Some(json!({"spec": spec(20.0), "contacts": contacts(200)})),
        )
        .await;
    let id = accepted["campaign_id"].as_str().unwrap().to_owned();

    // The receiver goes away once, mid-campaign, and comes back on the same port.
    let started = Instant::now();
    while received.taken.lock().unwrap().len() < 150 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no events arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    (_, server) = serve(&received, port).await;

    let by_status = http
        .until_terminal(&id, 200, Duration::from_secs(180))
        .await;
    stack
        .stream_caught_up(Duration::from_secs(60))
        .await
        .unwrap();
    // Everything the bus took reaches the receiver.
    let started = Instant::now();
    loop {
        let stats = stack.webhook_stats().unwrap();
        if stats.delivered + stats.dead == stack.bus().stats().accepted {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "webhook behind: {stats:?} of {:?}",
            stack.bus().stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bus = stack.bus().stats();
    let webhook = stack.webhook_stats().unwrap();
    assert_eq!(webhook.dead, 0, "{webhook:?}");
    assert_eq!(
        bus.duplicates, 0,
        "a re-delivered batch published again: {bus:?}"
    );
    assert!(bus.failed_requests >= 16, "{bus:?}");
    let poller = stack.stream_stats().unwrap();
    assert!(
        poller.partial_failures + poller.invoke_errors >= 1,
        "the bus's failure made Lambda deliver a batch again: {poller:?}"
    );
    assert_eq!(poller.discarded, 0, "{poller:?}");
    assert!(received.refused.load(Ordering::SeqCst) >= REFUSED_FIRST);

    // De-duplicated by (call id, sequence), each call's events arrived in sequence order,
    // and each call ended once.
    let taken = received.taken.lock().unwrap().clone();
    let mut seen = HashSet::new();
    let mut by_call: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    let mut completed = 0;
    for event in &taken {
        let detail = &event["detail"];
        assert_eq!(event["source"], "outdial");
        assert_eq!(detail["campaign_id"], id.as_str());
        let kind = event["detail-type"].as_str().unwrap().to_owned();
        if kind == "Campaign Completed" {
            completed += 1;
            continue;
        }
        let call = detail["call_id"].as_str().unwrap().to_owned();
        let sequence = detail["sequence"].as_u64().unwrap();
        if seen.insert((call.clone(), sequence)) {
            by_call.entry(call).or_default().push((sequence, kind));
        }
    }
    assert_eq!(by_call.len(), 200);
    let mut ended_by_status: BTreeMap<String, i64> = BTreeMap::new();
    for (call, events) in &by_call {
        assert!(
            events.windows(2).all(|w| w[0].0 < w[1].0),
            "{call}: {events:?}"
        );
        let ends: Vec<_> = events.iter().filter(|(_, k)| k == "Call Ended").collect();
        assert_eq!(ends.len(), 1, "{call}: {events:?}");
        assert_eq!(events.last().unwrap().1, "Call Ended", "{call}: {events:?}");
    }
    for event in &taken {
        if event["detail-type"] == "Call Ended" {
            let detail = &event["detail"];
            if seen.remove(&(
                detail["call_id"].as_str().unwrap().to_owned(),
                detail["sequence"].as_u64().unwrap(),
            )) {
                *ended_by_status
                    .entry(detail["status"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    assert_eq!(ended_by_status, by_status, "the ends are the records");

    // The results export: one row per contact, the counts of GET /campaigns/{id}, and each
    // row as the call's `Call Ended` said.
    let rows = export(&stack, &id).await;
    assert_eq!(rows.len(), 200);
    let mut exported_by_status: BTreeMap<String, i64> = BTreeMap::new();
    for row in rows.values() {
        *exported_by_status.entry(row["status"].clone()).or_default() += 1;
    }
    assert_eq!(exported_by_status, http.counters(&id).await);
    for event in &taken {
        if event["detail-type"] != "Call Ended" {
            continue;
        }
        let detail = &event["detail"];
        let row = &rows[detail["call_id"].as_str().unwrap()];
        assert_eq!(
            row["status"],
            detail["status"].as_str().unwrap(),
            "{row:?} {detail}"
        );
        assert_eq!(
            row["attempts"],
            detail["attempts"].to_string(),
            "{row:?} {detail}"
        );
        assert_eq!(
            row["opted_out"],
            detail["opted_out"].to_string(),
            "{row:?} {detail}"
        );
        let digits = detail["digits"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|k| k.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        assert_eq!(row["digits"], digits, "{row:?} {detail}");
        assert_eq!(
            row["script_outcome"],
            detail["script_outcome"].as_str().unwrap_or_default(),
            "{row:?} {detail}"
        );
    }
    assert!(completed >= 1, "Campaign Completed arrived");
    eprintln!(
        "outcome events: bus {bus:?}; webhook {webhook:?}; receiver {} posts, {} refused, {} \
         taken, {} distinct call events for 200 calls; stream {poller:?}",
        received.posts.load(Ordering::SeqCst),
        received.refused.load(Ordering::SeqCst),
        taken.len(),
        by_call.values().map(Vec::len).sum::<usize>(),
    );
    server.abort();
    stack.stop().await.unwrap();
}
