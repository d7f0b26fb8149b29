//! The API as Lambda runs it, on DynamoDB Local (one instance per test binary, a fresh table
//! per test), with a fake Voice API and a counting dispatcher trigger. Requests are built as
//! API Gateway (HTTP API, payload 2.0) events and read by `lambda_http`, as in Lambda and the
//! local HTTP API; every answer's status is checked against the statuses its route declares.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use outdial_adapters::store::DynamoStore;
use outdial_api::routes::{self, ROUTES};
use outdial_api::{Api, Auth, Settings};
use outdial_core::admin::DispatchTrigger;
use outdial_core::ids::{CallId, CampaignId, E164, TransactionId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::ports::{BoxError, DialError, Dialer};
use outdial_core::record::CallRecord;
use outdial_core::time::{ManualClock, Timestamp};
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{client, fresh_table};
use serde_json::{Value, json};

/// An instant in 2030 (a Sunday, 17:46:40 UTC): items expire 90 days after creation and
/// DynamoDB Local deletes expired items, so tests write in the future.
pub const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);
pub const TOKEN: &str = "local-test-token-0123456789";
pub const FROM: &str = "+15555550199";

/// A spec whose script uses `{{name}}`.
pub fn spec() -> Value {
    json!({
        "name": "reminders",
        "from": FROM,
        "script": {"caller_name": "Riverside Clinic", "start": "hi", "steps": {
            "hi": {"say": "Hello {{name}}, this is Riverside Clinic: see you soon."}}},
        "pacing": {"calls_per_second": 5, "max_concurrent": 20}
    })
}

/// How the fake Voice API answers `UpdateSipMediaApplicationCall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    NotFound,
    Throttled,
    /// A bug in the port: it panics.
    Panic,
}

/// An `UpdateSipMediaApplicationCall` as sent: the transaction and the arguments.
pub type Update = (String, BTreeMap<String, String>);

/// A Voice API that records updates and never places a call (the API never dials).
#[derive(Debug, Clone)]
pub struct FakeDialer {
    pub updates: Arc<Mutex<Vec<Update>>>,
    pub answer: Arc<Mutex<Answer>>,
}

impl Dialer for FakeDialer {
    async fn place(
        &self,
        _from: &E164,
        _to: &E164,
        _arguments: BTreeMap<String, String>,
    ) -> Result<TransactionId, DialError> {
        Err(DialError::Rejected {
            code: "Test".into(),
            message: "the API never places calls".into(),
        })
    }

    async fn update(
        &self,
        transaction: &TransactionId,
        arguments: BTreeMap<String, String>,
    ) -> Result<(), DialError> {
        self.updates
            .lock()
            .unwrap()
            .push((transaction.as_str().to_owned(), arguments));
        let answer = *self.answer.lock().unwrap();
        match answer {
            Answer::Ok => Ok(()),
            Answer::NotFound => Err(DialError::NotFound),
            Answer::Throttled => Err(DialError::Throttled),
            Answer::Panic => panic!("the fake Voice API was told to panic"),
        }
    }
}

/// Counts dispatcher starts; can be made to fail.
#[derive(Debug, Clone, Default)]
pub struct CountingTrigger {
    pub count: Arc<AtomicUsize>,
    pub fail: Arc<AtomicBool>,
}

impl DispatchTrigger for CountingTrigger {
    async fn dispatch_now(&self) -> Result<(), BoxError> {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            Err("the timers function is unreachable".into())
        } else {
            Ok(())
        }
    }
}

pub type TestApi = Api<DynamoStore, FakeDialer, CountingTrigger>;

pub struct Harness {
    pub api: Arc<TestApi>,
    pub store: DynamoStore,
    pub clock: Arc<ManualClock>,
    pub dialer: FakeDialer,
    pub trigger: CountingTrigger,
}

impl Harness {
    /// The API with bearer authentication (as locally).
    pub async fn new() -> Self {
        Self::with(|s| s).await
    }

    pub async fn with(adjust: impl FnOnce(Settings) -> Settings) -> Self {
        let endpoint = shared_endpoint().expect("DynamoDB Local");
        let ddb = client(&endpoint);
        let table = fresh_table(&ddb, "api").await.expect("table");
        // The API function's client, recorded for the permission test.
        let recorder = outdial_local::record::shared()
            .map(|log| log.recorder(outdial_core::messages::Function::Api));
        let store = DynamoStore::new(
            outdial_local::record::Record::recorded(ddb, recorder.as_ref()),
            table,
            4,
        );
        let clock = Arc::new(ManualClock::at(T0));
        let dialer = FakeDialer {
            updates: Arc::default(),
            answer: Arc::new(Mutex::new(Answer::Ok)),
        };
        let trigger = CountingTrigger::default();
        let settings = adjust(Settings {
            auth: Auth::bearer(TOKEN),
            max_body_bytes: outdial_api::DEFAULT_MAX_BODY_BYTES,
            lease: outdial_api::DEFAULT_LEASE,
        });
        let api = Arc::new(Api::new(
            store.clone(),
            dialer.clone(),
            trigger.clone(),
            clock.clone(),
            settings,
        ));
        Self {
            api,
            store,
            clock,
            dialer,
            trigger,
        }
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        Req {
            api: Arc::clone(&self.api),
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![("authorization".into(), format!("Bearer {TOKEN}"))],
            body: None,
            iam: false,
        }
    }

    pub fn dispatches(&self) -> usize {
        self.trigger.count.load(Ordering::SeqCst)
    }

    /// Creates a campaign from JSON contacts and returns its id.
    pub async fn campaign(&self, contacts: Value) -> CampaignId {
        let resp = self
            .req("POST", "/campaigns")
            .json(&json!({"spec": spec(), "contacts": contacts}))
            .send()
            .await;
        assert_eq!(resp.status, 202, "{}", resp.body);
        CampaignId::parse(resp.json()["campaign_id"].as_str().unwrap()).unwrap()
    }

    /// Every call of a campaign, by status and id.
    pub async fn calls(&self, campaign: &CampaignId) -> Vec<CallRecord> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list_calls(campaign, None, 1000, cursor.as_deref())
                .await
                .unwrap();
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
    }

    /// Sets a call's status (and transaction) as the dispatcher and the SMA handler would.
    pub async fn set_call(&self, id: &CallId, status: CallStatus, transaction: Option<&str>) {
        let mut update = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .key(
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("CALL#{id}")),
            )
            .key(
                "SK",
                aws_sdk_dynamodb::types::AttributeValue::S("CALL".into()),
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":status",
                aws_sdk_dynamodb::types::AttributeValue::S(status.as_str().into()),
            )
            .expression_attribute_values(
                ":sc",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("{}#{id}", status.as_str())),
            );
        let mut expr = "SET #status = :status, status_call = :sc".to_owned();
        if let Some(t) = transaction {
            // Placed as the current attempt, as the dispatcher records it.
            expr.push_str(", transaction_id = :t, placed_attempt = attempt");
            update = update.expression_attribute_values(
                ":t",
                aws_sdk_dynamodb::types::AttributeValue::S(t.into()),
            );
        }
        update.update_expression(expr).send().await.unwrap();
    }
}

/// One request, built as API Gateway's payload-2.0 event.
pub struct Req {
    api: Arc<TestApi>,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    iam: bool,
}

impl Req {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .retain(|(n, _)| n != &name.to_ascii_lowercase());
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn key(self, key: &str) -> Self {
        self.header("Idempotency-Key", key)
    }

    pub fn json(self, body: &Value) -> Self {
        self.raw("application/json", &body.to_string())
    }

    pub fn csv(self, body: &str) -> Self {
        self.raw("text/csv", body)
    }

    pub fn raw(mut self, content_type: &str, body: &str) -> Self {
        self = self.header("content-type", content_type);
        self.body = Some(body.to_owned());
        self
    }

    pub fn no_auth(mut self) -> Self {
        self.headers.retain(|(n, _)| n != "authorization");
        self
    }

    /// As API Gateway hands over a request its IAM authorizer accepted.
    pub fn iam(mut self) -> Self {
        self.iam = true;
        self.no_auth()
    }

    /// The event API Gateway would send.
    pub fn event(&self) -> Value {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut context = json!({
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": self.method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "test",
            "routeKey": "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": 0
        });
        if self.iam {
            context["authorizer"] = json!({"iam": {
                "accessKey": "AKIA", "accountId": "000000000000", "callerId": "AIDA",
                "principalOrgId": null, "userArn": "arn:aws:iam::000000000000:user/ops",
                "userId": "AIDA"}});
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": false
        });
        if let Some(body) = &self.body {
            event["body"] = Value::String(body.clone());
        }
        event
    }

    pub async fn send(self) -> Resp {
        let event = self.event().to_string();
        let request = lambda_http::request::from_str(&event).expect("a payload-2.0 event");
        let response = self.api.handle(request).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = String::from_utf8(response.body().to_vec()).unwrap();
        let path = self
            .path
            .split_once('?')
            .map_or(self.path.as_str(), |(p, _)| p);
        let method: http::Method = self.method.parse().unwrap();
        match routes::route(&method, path) {
            Ok(matched) => {
                let route = ROUTES
                    .iter()
                    .find(|r| r.template == matched.template && r.method == method)
                    .unwrap();
                assert!(
                    route.statuses.contains(&status),
                    "{} {} answered {status}, which its route does not declare: {body}",
                    self.method,
                    route.template
                );
            }
            Err(_) => assert!(
                status == 404 || status == 405 || status == 401,
                "{status} for a path without a route"
            ),
        }
        if status >= 400 {
            assert_eq!(
                headers.get("content-type").unwrap(),
                "application/problem+json",
                "{body}"
            );
            let problem: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(problem["status"], status);
            for member in ["type", "title", "detail"] {
                assert!(problem[member].is_string(), "{member} missing: {body}");
            }
        }
        Resp {
            status,
            headers,
            body,
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The fields a problem's `errors` names.
    pub fn fields(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}
