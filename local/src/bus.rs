//! The EventBridge bus, locally: the `PutEvents` subset the stream function uses, served to
//! the real SDK client (`AWS_ENDPOINT_URL_EVENTBRIDGE`), and the bus's side of delivery.
//!
//! Each accepted entry becomes the event EventBridge would deliver (`version`, `id`,
//! `detail-type`, `source`, `account`, `time`, `region`, `resources`, `detail`) and goes, in
//! the order accepted, to every subscriber: a [`Webhook`] (as an API destination posts it),
//! `outdial dev --events`, or a test. The bus also counts what it accepted, and a call event
//! accepted twice (the same `detail-type`, `call_id` and `sequence`), which the stream
//! handler's watermark must prevent.
//!
//! Faults can be injected: requests answered with an error as a whole, or entries refused
//! one by one, as the service does under load.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The account every local event claims.
pub const LOCAL_ACCOUNT: &str = "000000000000";
/// `PutEvents` takes at most this many entries.
const MAX_ENTRIES: usize = 10;

/// What the bus has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// `PutEvents` requests received.
    pub requests: u64,
    /// Entries accepted.
    pub accepted: u64,
    /// Entries refused (injected), and requests failed whole (injected).
    pub refused_entries: u64,
    pub failed_requests: u64,
    /// Call events accepted when one with the same `detail-type`, `call_id` and `sequence`
    /// had been accepted before.
    pub duplicates: u64,
}

#[derive(Debug, Default)]
struct Shared {
    stats: BusStats,
    seen: HashSet<(String, String, u64)>,
    subscribers: Vec<mpsc::UnboundedSender<Value>>,
    /// Requests still to fail whole, and entries still to refuse.
    fail_requests: u64,
    refuse_entries: u64,
}

#[derive(Debug)]
struct Inner {
    name: String,
    shared: Mutex<Shared>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The local bus: a server answering `PutEvents` for the bus named `name`.
#[derive(Debug)]
pub struct LocalBus {
    inner: Arc<Inner>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for LocalBus {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalBus {
    /// Starts the bus named `name` on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            name: name.to_owned(),
            shared: Mutex::new(Shared::default()),
        });
        let app = Router::new()
            .route("/", post(serve))
            .with_state(Arc::clone(&inner));
        let (addr, server) = crate::serve(app, "local EventBridge bus").await?;
        Ok(Self {
            inner,
            addr,
            server,
        })
    }

    /// The EventBridge endpoint (`AWS_ENDPOINT_URL_EVENTBRIDGE`).
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bus's name, which `PutEvents` entries must give.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Every event accepted from now on, in the order accepted.
    #[must_use]
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().subscribers.push(tx);
        rx
    }

    #[must_use]
    pub fn stats(&self) -> BusStats {
        self.inner.lock().stats
    }

    /// Answers the next `n` requests with an error as a whole (`InternalException`, HTTP
    /// 500, which the SDK retries on its own).
    pub fn fail_requests(&self, n: u64) {
        self.inner.lock().fail_requests = n;
    }

    /// Refuses the next `n` entries one by one (`ThrottlingException` in the entry's
    /// result), accepting the others of their request.
    pub fn refuse_entries(&self, n: u64) {
        self.inner.lock().refuse_entries = n;
    }
}

/// The EventBridge client's credentials and region are the local ones; this is the JSON 1.1
/// protocol's error shape.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        json!({"__type": code, "message": message}).to_string(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEvents {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    source: Option<String>,
    detail_type: Option<String>,
    detail: Option<String>,
    event_bus_name: Option<String>,
    /// Epoch seconds, as the SDK sends a timestamp.
    time: Option<f64>,
    #[serde(default)]
    resources: Vec<String>,
}

async fn serve(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != "AWSEvents.PutEvents" {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the local bus serves PutEvents only, not {target:?}"),
        );
    }
    {
        let mut shared = inner.lock();
        shared.stats.requests += 1;
        if shared.fail_requests > 0 {
            shared.fail_requests -= 1;
            shared.stats.failed_requests += 1;
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalException",
                "injected failure",
            );
        }
    }
    let request: PutEvents = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("the request body is not a PutEvents request: {e}"),
            );
        }
    };
    if request.entries.is_empty() || request.entries.len() > MAX_ENTRIES {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            &format!(
                "Entries must hold 1 to {MAX_ENTRIES} entries, not {}",
                request.entries.len()
            ),
        );
    }
    let mut results = Vec::with_capacity(request.entries.len());
    let mut failed = 0;
    let mut shared = inner.lock();
    for entry in request.entries {
        let result = match accept(&inner.name, entry, &mut shared) {
            Ok(event) => {
                let id = event["id"].clone();
                shared
                    .subscribers
                    .retain(|tx| tx.send(event.clone()).is_ok());
                json!({"EventId": id})
            }
            Err((code, message)) => {
                failed += 1;
                json!({"ErrorCode": code, "ErrorMessage": message})
            }
        };
        results.push(result);
    }
    drop(shared);
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        json!({"FailedEntryCount": failed, "Entries": results}).to_string(),
    )
        .into_response()
}

/// One entry, accepted as the event the bus delivers, or refused with an error code and
/// message.
fn accept(bus: &str, entry: Entry, shared: &mut Shared) -> Result<Value, (String, String)> {
    let refuse = |code: &str, message: &str| (code.to_owned(), message.to_owned());
    let named = entry.event_bus_name.as_deref().unwrap_or("default");
    // A bus is named by its name or its ARN.
    if named != bus && !named.ends_with(&format!(":event-bus/{bus}")) {
        return Err(refuse(
            "NotAuthorizedForSourceException",
            &format!("no event bus {named:?} here (the local bus is {bus:?})"),
        ));
    }
    let (Some(source), Some(detail_type), Some(detail)) =
        (entry.source, entry.detail_type, entry.detail)
    else {
        return Err(refuse(
            "InvalidArgument",
            "Source, DetailType and Detail are required",
        ));
    };
    let Ok(detail @ Value::Object(_)) = serde_json::from_str::<Value>(&detail) else {
        return Err(refuse("MalformedDetail", "Detail must be a JSON object"));
    };
    if shared.refuse_entries > 0 {
        shared.refuse_entries -= 1;
        shared.stats.refused_entries += 1;
        return Err(refuse("ThrottlingException", "injected refusal"));
    }
    shared.stats.accepted += 1;
    if let (Some(call), Some(sequence)) = (detail["call_id"].as_str(), detail["sequence"].as_u64())
    {
        if !shared
            .seen
            .insert((detail_type.clone(), call.to_owned(), sequence))
        {
            shared.stats.duplicates += 1;
        }
    }
    let time = entry
        .time
        .filter(|t| t.is_finite())
        .and_then(|t| jiff::Timestamp::from_second(t as i64).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    Ok(json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": detail_type,
        "source": source,
        "account": LOCAL_ACCOUNT,
        "time": time.to_string(),
        "region": crate::LOCAL_REGION,
        "resources": entry.resources,
        "detail": detail,
    }))
}

/// How a [`Webhook`] retries, as an API destination's rule target does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// The wait before the first retry of an event; it doubles with each retry after.
    pub first_retry: Duration,
    /// The longest wait between two tries.
    pub max_retry: Duration,
    /// How long an event is tried before it is given up (to the dead letters).
    pub max_age: Duration,
    /// How long one POST may take.
    pub timeout: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(60),
            // The deployed rule's MaximumEventAgeInSeconds.
            max_age: Duration::from_secs(24 * 3600),
            // An API destination's request timeout.
            timeout: Duration::from_secs(5),
        }
    }
}

/// What a webhook has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events the receiver took (a 2xx answer).
    pub delivered: u64,
    /// POSTs made, retries included.
    pub attempts: u64,
    /// Events given up: a refusal that is not retried, or too old.
    pub dead: u64,
}

/// Posts each event a [`LocalBus`] accepts to a URL, in order, each until the receiver takes
/// it: the body is the whole event (as an API destination sends it without an input
/// transformer), with `x-outdial-key` when a key is set. Connection failures and the statuses
/// EventBridge retries (401, 407, 409, 429, 5xx) are retried with backoff; other answers, and
/// an event older than `max_age`, are given up and logged, as the deployed rule sends them to
/// its dead-letter queue.
#[derive(Debug)]
pub struct Webhook {
    stats: Arc<Mutex<WebhookStats>>,
    task: JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    /// Starts delivering what `events` yields to `url`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn start(
        url: &str,
        key: Option<&str>,
        settings: RetrySettings,
        mut events: mpsc::UnboundedReceiver<Value>,
    ) -> anyhow::Result<Self> {
        // A connection per event, as a receiver that restarts drops its connections.
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .pool_max_idle_per_host(0)
            .build()
            .context("building the webhook's HTTP client")?;
        let stats = Arc::new(Mutex::new(WebhookStats::default()));
        let (url, key, counted) = (url.to_owned(), key.map(str::to_owned), Arc::clone(&stats));
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let outcome =
                    deliver(&client, &url, key.as_deref(), &event, settings, &counted).await;
                let mut stats = counted.lock().unwrap_or_else(PoisonError::into_inner);
                match outcome {
                    Ok(()) => stats.delivered += 1,
                    Err(why) => {
                        stats.dead += 1;
                        tracing::error!(
                            url = %url,
                            id = event["id"].as_str().unwrap_or_default(),
                            detail_type = event["detail-type"].as_str().unwrap_or_default(),
                            why = %why,
                            "webhook event given up"
                        );
                    }
                }
            }
        });
        Ok(Self { stats, task })
    }

    #[must_use]
    pub fn stats(&self) -> WebhookStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether EventBridge retries an API destination's answer with this status.
#[must_use]
pub fn retried(status: u16) -> bool {
    matches!(status, 401 | 407 | 409 | 429) || (500..600).contains(&status)
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    event: &Value,
    settings: RetrySettings,
    stats: &Mutex<WebhookStats>,
) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    let mut wait = settings.first_retry;
    loop {
        stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .attempts += 1;
        let mut request = client.post(url).json(event);
        if let Some(key) = key {
            request = request.header("x-outdial-key", key);
        }
        let why = match request.send().await {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) if !retried(answer.status().as_u16()) => {
                return Err(format!("the receiver answered {}", answer.status()));
            }
            Ok(answer) => format!("the receiver answered {}", answer.status()),
            Err(e) => format!("the request failed: {e}"),
        };
        if started.elapsed() + wait > settings.max_age {
            return Err(format!("{why}; tried for longer than the event may age"));
        }
        tracing::debug!(url, why = %why, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "webhook delivery failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(settings.max_retry);
    }
}

/// The EventBridge client `function` has in production (its timeouts and retries), for the
/// local bus at `endpoint`.
#[must_use]
pub fn function_events_client(
    endpoint: &str,
    function: outdial_core::messages::Function,
) -> aws_sdk_eventbridge::Client {
    let deadline = outdial_adapters::config::Deadline::of(function);
    aws_sdk_eventbridge::Client::from_conf(
        crate::local_config!(aws_sdk_eventbridge, endpoint, deadline).build(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(bus: &str, detail: &str) -> Entry {
        Entry {
            source: Some("outdial".into()),
            detail_type: Some("Call Ended".into()),
            detail: Some(detail.into()),
            event_bus_name: Some(bus.into()),
            time: Some(1_780_000_000.5),
            resources: Vec::new(),
        }
    }

    #[test]
    fn an_entry_becomes_the_event_a_rule_delivers() {
        let mut shared = Shared::default();
        let event = accept(
            "outdial-local",
            entry("outdial-local", r#"{"call_id": "call_1", "sequence": 4}"#),
            &mut shared,
        )
        .unwrap();
        assert_eq!(event["detail-type"], "Call Ended");
        assert_eq!(event["source"], "outdial");
        assert_eq!(event["time"], "2026-05-28T20:26:40Z");
        assert_eq!(event["detail"]["sequence"], 4);
        assert_eq!(event["account"], LOCAL_ACCOUNT);
        // The same call event again is counted as a duplicate.
        accept(
            "outdial-local",
            entry(
                "arn:aws:events:us-east-1:000000000000:event-bus/outdial-local",
                r#"{"call_id": "call_1", "sequence": 4}"#,
            ),
            &mut shared,
        )
        .unwrap();
        assert_eq!((shared.stats.accepted, shared.stats.duplicates), (2, 1));
    }

    #[test]
    fn entries_for_another_bus_or_without_an_object_detail_are_refused() {
        let mut shared = Shared::default();
        let refused =
            |e: Entry, shared: &mut Shared| accept("outdial-local", e, shared).unwrap_err().0;
        assert_eq!(
            refused(entry("default", "{}"), &mut shared),
            "NotAuthorizedForSourceException"
        );
        assert_eq!(
            refused(entry("outdial-local", "[1]"), &mut shared),
            "MalformedDetail"
        );
        assert_eq!(
            refused(entry("outdial-local", "{"), &mut shared),
            "MalformedDetail"
        );
        let mut bare = entry("outdial-local", "{}");
        bare.source = None;
        assert_eq!(refused(bare, &mut shared), "InvalidArgument");
        shared.refuse_entries = 1;
        assert_eq!(
            refused(entry("outdial-local", "{}"), &mut shared),
            "ThrottlingException"
        );
        assert!(accept("outdial-local", entry("outdial-local", "{}"), &mut shared).is_ok());
        assert_eq!(shared.stats.accepted, 1);
    }

    #[test]
    fn the_webhook_retries_what_an_api_destination_retries() {
        for status in [401, 407, 409, 429, 500, 503] {
            assert!(retried(status), "{status}");
        }
        for status in [200, 400, 403, 404, 410, 413] {
            assert!(!retried(status), "{status}");
        }
    }
}
