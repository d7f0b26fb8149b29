//! A scripted SMA for handler tests: builds events shaped and numbered as the PSTN audio
//! service sends them (`docs/pstn-audio.md` sections 1-4), keeps the `TransactionAttributes`
//! the handler returns the way the service does, and runs everything against DynamoDB Local.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use outdial_adapters::store::DynamoStore;
use outdial_core::ids::{Attempt, CallId, CampaignId, E164};
use outdial_core::ports::DispatchStore;
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::time::{ManualClock, Timestamp};
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{RequestCounter, counting_client, fresh_table};
use outdial_sma::{Settings, SmaHandler};
use serde_json::{Value, json};

/// An instant in 2030: items expire 90 days after creation, and DynamoDB Local does delete
/// expired items, so tests write in the future.
pub const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);
pub const FROM: &str = "+15555550199";

/// The reminder script most tests run.
pub const REMINDER: &str = r#"{
    "voice": { "voice_id": "Joanna", "engine": "neural" },
    "start": "greet",
    "steps": {
        "greet": { "say": "Hello {{name}}, your appointment is on {{date}}.", "next": "menu" },
        "menu": { "gather": { "say": "Press 1 to confirm, 2 to cancel, 0 for an agent.", "max_digits": 1 },
                  "branches": { "1": "confirm", "2": "decline", "0": "agent" }, "no_input": "goodbye" },
        "confirm": { "say": "Thank you, see you then.", "outcome": "confirmed" },
        "decline": { "say": "We have cancelled it.", "outcome": "declined" },
        "agent": { "transfer": { "to": "+15555550142" }, "outcome": "transferred", "on_fail": "goodbye" },
        "goodbye": { "say": "We will call again later.", "outcome": "no_input" }
    }
}"#;

pub struct Harness {
    pub handler: SmaHandler<DynamoStore>,
    /// The test's own view of the table (what the handler does not do itself: the setup,
    /// and reading records back).
    pub store: DynamoStore,
    pub requests: RequestCounter,
    pub clock: Arc<ManualClock>,
    pub campaign: Campaign,
}

impl Harness {
    pub async fn new(script: &str) -> Self {
        Self::with_settings(script, Settings::default()).await
    }

    pub async fn with_settings(script: &str, settings: Settings) -> Self {
        let endpoint = shared_endpoint().expect("DynamoDB Local");
        let (client, requests) = counting_client(&endpoint);
        let table = fresh_table(&client, "sma").await.expect("table");
        let store = DynamoStore::new(client.clone(), &table, 4);
        let setup = store.clone();
        let campaign = Campaign {
            purpose: outdial_core::policy::Purpose::default(),
            on_cap: outdial_core::policy::OnCap::default(),
            caller_pool: None,
            id: CampaignId::random(),
            name: "reminders".into(),
            from: E164::parse(FROM).unwrap(),
            status: CampaignStatus::Active,
            retry: RetryPolicy::default(),
            pacing: Pacing::default(),
            script: serde_json::from_str(script).expect("script"),
            limits: Limits::default(),
            window: None,
            default_region: "US".into(),
            created_at: T0,
            contacts: 0,
        };
        store.create_campaign(&campaign, &[]).await.unwrap();
        let clock = Arc::new(ManualClock::at(T0));
        // The handler's client is recorded for the permission test; the setup's is not.
        let recorder = outdial_local::record::shared()
            .map(|log| log.recorder(outdial_core::messages::Function::Sma));
        let handler_store = DynamoStore::new(
            outdial_local::record::Record::recorded(client, recorder.as_ref()),
            &table,
            4,
        );
        let handler = SmaHandler::new(handler_store, clock.clone(), settings);
        requests.reset();
        Self {
            handler,
            store: setup,
            requests,
            clock,
            campaign,
        }
    }

    /// A queued call, claimed for dialing as the dispatcher would.
    pub async fn dialing_call(&self, to: &str) -> Call {
        let id = CallId::random();
        let vars = BTreeMap::from([
            ("name".to_owned(), "Ada".to_owned()),
            ("date".to_owned(), "Tuesday".to_owned()),
        ]);
        let store = &self.store;
        add_calls(
            store,
            &self.campaign,
            &[NewCall {
                consent: None,
                reference: None,
                tz: None,
                id: id.clone(),
                to: E164::parse(to).unwrap(),
                vars: vars.clone(),
                due_at: T0,
            }],
        )
        .await;
        let waiting = store.call(&id).await.unwrap();
        assert_eq!(waiting.attempt, Attempt::FIRST);
        store
            .claim(
                &waiting,
                T0,
                T0,
                u32::MAX,
                &outdial_core::ports::ClaimWrites::default(),
            )
            .await
            .unwrap();
        self.requests.reset();
        Call::new(id, self.campaign.id.clone(), 1, to, vars)
    }

    /// Sends one event as the Runtime API hands it to the function (its JSON text, to
    /// `handle_json`) and returns the answer and how many DynamoDB requests it cost.
    pub async fn send(&self, event: &Value) -> (Value, usize) {
        let (text, requests) = self.send_text(&serde_json::to_vec(event).unwrap()).await;
        let text = text.expect("a JSON event is answered");
        (
            serde_json::from_slice(&text).expect("the answer is JSON"),
            requests,
        )
    }

    /// [`Self::send`] of raw bytes, answered with the answer's text as posted back.
    pub async fn send_text(&self, payload: &[u8]) -> (Result<Vec<u8>, serde_json::Error>, usize) {
        self.requests.reset();
        let answer = self.handler.handle_json(payload).await;
        (answer, self.requests.take())
    }

    /// [`Self::send`] through the handler's entry for a parsed payload (`handle`), as the
    /// local stack's simulator invokes it.
    pub async fn send_hosted(&self, event: &Value) -> (Value, usize) {
        self.requests.reset();
        let answer = self.handler.handle(event.clone()).await;
        (answer, self.requests.take())
    }
}

/// Writes calls of a campaign that already exists (the store writes nothing more for a
/// complete campaign).
pub async fn add_calls(store: &DynamoStore, campaign: &Campaign, calls: &[NewCall]) {
    {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let requests = calls
            .iter()
            .map(|c| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(outdial_adapters::item::new_call_item(
                                campaign,
                                c,
                                store.shards(),
                            )))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        store
            .client()
            .batch_write_item()
            .request_items(store.table(), requests)
            .send()
            .await
            .unwrap();
    }
}

/// One call as the SMA sees it: its transaction, its legs, its attributes and its counter.
pub struct Call {
    pub id: CallId,
    pub campaign: CampaignId,
    pub attempt: u32,
    pub transaction: String,
    pub leg_a: String,
    pub leg_b: Option<String>,
    pub to: String,
    pub seq: u64,
    pub attributes: Option<Value>,
    pub vars: BTreeMap<String, String>,
    pub leg_a_connected: bool,
    pub leg_b_connected: bool,
}

impl Call {
    pub fn new(
        id: CallId,
        campaign: CampaignId,
        attempt: u32,
        to: &str,
        vars: BTreeMap<String, String>,
    ) -> Self {
        Self {
            id,
            campaign,
            attempt,
            transaction: uuid::Uuid::new_v4().to_string(),
            leg_a: uuid::Uuid::new_v4().to_string(),
            leg_b: None,
            to: to.to_owned(),
            seq: 0,
            attributes: None,
            vars,
            leg_a_connected: false,
            leg_b_connected: false,
        }
    }

    fn participants(&self) -> Value {
        let mut legs = vec![json!({
            "CallId": self.leg_a, "ParticipantTag": "LEG-A", "To": self.to, "From": FROM,
            "Direction": "Outbound", "StartTimeInMilliseconds": "1700000000123",
        })];
        if self.seq > 2 || self.leg_a_connected {
            legs[0]["Status"] = json!(if self.leg_a_connected {
                "Connected"
            } else {
                "Disconnected"
            });
        }
        if let Some(b) = &self.leg_b {
            legs.push(json!({
                "CallId": b, "ParticipantTag": "LEG-B", "To": "+15555550142", "From": FROM,
                "Direction": "Outbound", "StartTimeInMilliseconds": "1700000001123",
                "Status": if self.leg_b_connected { "Connected" } else { "Disconnected" },
            }));
        }
        Value::Array(legs)
    }

    /// The next event of this call, numbered.
    pub fn event(&mut self, event_type: &str, action_data: Option<Value>) -> Value {
        self.seq += 1;
        self.event_at(self.seq, event_type, action_data)
    }

    /// An event with a given `Sequence` (for late and repeated deliveries).
    pub fn event_at(&self, seq: u64, event_type: &str, action_data: Option<Value>) -> Value {
        let mut details = json!({
            "TransactionId": self.transaction,
            "AwsAccountId": "123456789012",
            "AwsRegion": "us-east-1",
            "SipMediaApplicationId": "0f6e0000-sma",
            "Participants": self.participants(),
        });
        if let Some(attrs) = &self.attributes {
            details["TransactionAttributes"] = attrs.clone();
        }
        let mut event = json!({
            "SchemaVersion": "1.0",
            "Sequence": seq,
            "InvocationEventType": event_type,
            "CallDetails": details,
        });
        if let Some(data) = action_data {
            event["ActionData"] = data;
        }
        event
    }

    pub fn new_outbound_call(&mut self) -> Value {
        let vars = serde_json::to_string(&self.vars).unwrap();
        self.event(
            "NEW_OUTBOUND_CALL",
            Some(
                json!({"Type": "CallCreateRequest", "Parameters": {"Arguments": {
                    "call_id": self.id.as_str(), "campaign_id": self.campaign.as_str(),
                    "attempt": self.attempt.to_string(), "vars": vars,
                }}}),
            ),
        )
    }

    pub fn answered(&mut self) -> Value {
        self.leg_a_connected = true;
        self.event("CALL_ANSWERED", None)
    }

    pub fn hangup(&mut self, tag: &str, code: Option<Value>) -> Value {
        if tag == "LEG-A" {
            self.leg_a_connected = false;
        } else {
            self.leg_b_connected = false;
        }
        let call_id = if tag == "LEG-A" {
            self.leg_a.clone()
        } else {
            self.leg_b.clone().unwrap_or_default()
        };
        let mut params = json!({"CallId": call_id, "ParticipantTag": tag});
        if let Some(code) = code {
            params["SipResponseCode"] = code;
        }
        self.event(
            "HANGUP",
            Some(json!({"Type": "Hangup", "Parameters": params})),
        )
    }

    /// The result event of the last action of `response`, as the service reports it.
    pub fn action_result(&mut self, response: &Value, successful: bool, extra: Value) -> Value {
        let last = response["Actions"]
            .as_array()
            .and_then(|a| a.last())
            .cloned()
            .expect("an action ran");
        let mut data = json!({"Type": last["Type"], "Parameters": last["Parameters"]});
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                data[k] = v;
            }
        }
        self.event(
            if successful {
                "ACTION_SUCCESSFUL"
            } else {
                "ACTION_FAILED"
            },
            Some(data),
        )
    }

    /// Keeps the attributes of an answer, as the SMA does.
    pub fn keep(&mut self, answer: &Value) {
        if let Some(attrs) = answer.get("TransactionAttributes") {
            self.attributes = Some(attrs.clone());
        }
    }
}

/// The action types of an answer, in order.
pub fn types(answer: &Value) -> Vec<String> {
    answer["Actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["Type"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}
