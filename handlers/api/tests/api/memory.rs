//! The API over the in-memory store (`outdial_adapters::memory`), for tests that send many
//! requests: no DynamoDB Local, so a property test's hundreds of cases run in seconds.
//! Requests are API Gateway payload-2.0 events read by `lambda_http`, as in Lambda; every
//! answer is checked to be one its route declares, and every error a problem detail.

use std::sync::Arc;

use outdial_adapters::memory::{MemoryDialer, MemoryStore, MemoryTrigger};
use outdial_api::destinations::AllowedCountries;
use outdial_api::routes::{self, ROUTES};
use outdial_api::{Api, Auth, Settings};
use outdial_core::ids::CampaignId;
use outdial_core::time::{ManualClock, Timestamp};
use serde_json::{Value, json};

/// An instant in 2030 (a Sunday, 17:46:40 UTC).
pub const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);
pub const TOKEN: &str = "memory-test-token-0123456789";
pub const FROM: &str = "+15555550199";

pub type MemoryApi = Api<MemoryStore, MemoryDialer, MemoryTrigger>;

pub struct Memory {
    pub api: MemoryApi,
    pub store: MemoryStore,
}

impl Memory {
    /// The API with the default allow-list (each campaign's region).
    pub fn new() -> Self {
        Self::allowing(AllowedCountries::CampaignRegion)
    }

    pub fn allowing(allowed: AllowedCountries) -> Self {
        let store = MemoryStore::default();
        let settings = Settings {
            auth: Auth::bearer(TOKEN),
            ..Settings::from_lookup(|_| None).unwrap()
        };
        let api = Api::new(
            store.clone(),
            MemoryDialer::refusing(),
            MemoryTrigger::new(),
            Arc::new(ManualClock::at(T0)),
            settings,
        )
        .with_allowed_countries(allowed);
        Self { api, store }
    }

    /// Sends one request; `body` is sent as it is, with `content_type`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        self.send_with(method, path, content_type, body, &[]).await
    }

    /// As [`Self::send`], with more headers.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
        more: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut event = event(method, path, content_type, more);
        if let Some(body) = body {
            event["body"] = json!(body);
        }
        self.answer(&event).await
    }

    /// Sends `bytes` as they are (base64, as API Gateway passes a body that is not text), with
    /// `content_type` and more headers.
    pub async fn send_bytes(
        &self,
        path: &str,
        content_type: &str,
        bytes: &[u8],
        more: &[(&str, &str)],
    ) -> (u16, Value) {
        use base64::Engine as _;
        let mut event = event("POST", path, Some(content_type), more);
        event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        event["isBase64Encoded"] = json!(true);
        self.answer(&event).await
    }

    /// Reads `event` as Lambda does, sends it, and checks the answer against its route.
    async fn answer(&self, event: &Value) -> (u16, Value) {
        let method = event["requestContext"]["http"]["method"].as_str().unwrap();
        let raw_path = event["rawPath"].as_str().unwrap();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = self.api.handle(request).await;
        let status = response.status().as_u16();
        let text = String::from_utf8(response.body().to_vec()).unwrap();
        let method: http::Method = method.parse().unwrap();
        if let Ok(matched) = routes::route(&method, raw_path) {
            let route = ROUTES
                .iter()
                .find(|r| r.template == matched.template && r.method == method)
                .unwrap();
            assert!(
                route.statuses.contains(&status),
                "{method} {} answered {status}, which its route does not declare: {text}",
                route.template
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        if status >= 400 {
            assert_eq!(
                response.headers().get("content-type").unwrap(),
                "application/problem+json",
                "{text}"
            );
            assert_eq!(value["status"], status, "{text}");
        }
        (status, value)
    }

    pub async fn json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            method,
            path,
            Some("application/json"),
            Some(&body.to_string()),
        )
        .await
    }

    /// How many calls the store holds for `campaign`.
    pub async fn calls_written(&self, campaign: &str) -> usize {
        let id = CampaignId::parse(campaign).unwrap();
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list_calls(&id, None, 1000, cursor.as_deref())
                .await
                .unwrap();
            count += page.items.len();
            match page.next {
                Some(next) => cursor = Some(next),
                None => return count,
            }
        }
    }
}

/// A spec whose script uses `{{name}}`.
/// An API Gateway payload-2.0 event without a body, authorized with the test token.
fn event(method: &str, path: &str, content_type: Option<&str>, more: &[(&str, &str)]) -> Value {
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut headers = json!({"authorization": format!("Bearer {TOKEN}")});
    if let Some(ct) = content_type {
        headers["content-type"] = json!(ct);
    }
    for (name, value) in more {
        headers[*name] = json!(value);
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "test", "routeKey": "$default", "stage": "$default",
            "time": "", "timeEpoch": 0
        },
        "isBase64Encoded": false
    })
}

pub fn spec() -> Value {
    json!({
        "name": "reminders",
        "from": FROM,
        "script": {"caller_name": "Riverside Clinic", "start": "hi", "steps": {
            "hi": {"say": "Hello {{name}}, this is Riverside Clinic: see you soon."}}},
        "pacing": {"calls_per_second": 5, "max_concurrent": 20}
    })
}

/// The fields a problem's `errors` names.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
