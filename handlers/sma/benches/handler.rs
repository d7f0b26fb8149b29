//! The SMA handler's own work per event: parse, decide, build the answer, serialize, with the
//! store faked so that only the handler is measured. One benchmark per event type.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence, TransactionId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::ports::{Applied, EventWrite, SmaStore, StoreError};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, Limits, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::time::{ManualClock, Timestamp};
use outdial_sma::{Settings, SmaHandler};
use serde_json::{Value, json};

const SCRIPT: &str = r#"{
    "voice": { "voice_id": "Joanna", "engine": "neural" },
    "start": "greet",
    "steps": {
        "greet": { "say": "Hello {{name}}, your appointment is on {{date}}.", "next": "menu" },
        "menu": { "gather": { "say": "Press 1 to confirm, 2 to cancel." },
                  "branches": { "1": "confirm", "2": "decline" }, "no_input": "goodbye" },
        "confirm": { "say": "Thank you, see you then.", "outcome": "confirmed" },
        "decline": { "say": "We have cancelled it.", "outcome": "declined" },
        "goodbye": { "say": "We will call again later.", "outcome": "no_input" }
    }
}"#;

/// A store that accepts every write at once: the benchmark measures the handler alone.
#[derive(Debug)]
struct Accepting {
    campaign: Campaign,
    record: CallRecord,
}

impl SmaStore for Accepting {
    async fn campaign(&self, _: &CampaignId) -> Result<Campaign, StoreError> {
        Ok(self.campaign.clone())
    }
    async fn apply_event(&self, w: &EventWrite) -> Result<Applied<()>, StoreError> {
        black_box(w);
        Ok(Applied::Written(()))
    }
    async fn call_by_transaction(
        &self,
        _: &TransactionId,
    ) -> Result<Option<CallRecord>, StoreError> {
        Ok(Some(self.record.clone()))
    }
    async fn record_orphan(
        &self,
        _: &str,
        _: Sequence,
        _: &str,
        _: &str,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

fn store() -> Accepting {
    let t0 = Timestamp::from_millis(1_900_000_000_000);
    let campaign = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::parse("cmp_bench").unwrap_or_else(|_| CampaignId::random()),
        name: "bench".into(),
        from: E164::parse("+15555550199").unwrap_or_else(|_| unreachable!()),
        status: CampaignStatus::Active,
        retry: RetryPolicy::default(),
        pacing: Pacing::default(),
        script: serde_json::from_str(SCRIPT).unwrap_or_else(|e| panic!("{e}")),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: t0,
        contacts: 1,
    };
    let record = CallRecord {
        consent: None,
        reference: None,
        reason: None,
        id: CallId::parse("call_bench").unwrap_or_else(|_| CallId::random()),
        campaign_id: campaign.id.clone(),
        to: E164::parse("+15555550100").unwrap_or_else(|_| unreachable!()),
        from: campaign.from.clone(),
        vars: BTreeMap::new(),
        tz: None,
        status: CallStatus::Answered,
        attempt: Attempt::FIRST,
        last_event: None,
        answered: true,
        end_request: None,
        transaction_id: None,
        placed_attempt: None,
        outcome: None,
        sip_code: None,
        script_outcome: None,
        last_error: None,
        verdict: None,
        greeting_ms: None,
        digits: Vec::new(),
        due_at: None,
        created_at: t0,
        updated_at: t0,
        answered_at: None,
        ended_at: None,
        dialed_at: None,
    };
    Accepting { campaign, record }
}

fn event(kind: &str, seq: u64, attrs: Option<Value>, data: Option<Value>) -> Value {
    let mut details = json!({
        "TransactionId": "5b1c2a0e-1111-2222-3333-444455556666",
        "AwsAccountId": "123456789012", "AwsRegion": "us-east-1", "SipMediaApplicationId": "sma-id",
        "Participants": [{ "CallId": "c0ffee00-aaaa-bbbb-cccc-ddddeeeeffff", "ParticipantTag": "LEG-A",
            "To": "+15555550100", "From": "+15555550199", "Direction": "Outbound",
            "StartTimeInMilliseconds": "1700000000123", "Status": "Connected" }]
    });
    if let Some(a) = attrs {
        details["TransactionAttributes"] = a;
    }
    let mut e = json!({"SchemaVersion": "1.0", "Sequence": seq, "InvocationEventType": kind, "CallDetails": details});
    if let Some(d) = data {
        e["ActionData"] = d;
    }
    e
}

fn events() -> Vec<(&'static str, Value)> {
    let vars = r#"{"date":"Tuesday","name":"Ada"}"#;
    let attrs = |status: &str, step: Option<&str>| {
        let mut a = json!({"call_id": "call_bench", "campaign_id": "cmp_bench", "attempt": "1",
            "status": status, "answered": if status == "ANSWERED" { "1" } else { "0" }, "vars": vars});
        if let Some(s) = step {
            a["step"] = json!(s);
        }
        a
    };
    let gather = json!({"Type": "SpeakAndGetDigits", "ReceivedDigits": "1", "Parameters": {
        "CallId": "c0ffee00-aaaa-bbbb-cccc-ddddeeeeffff", "InputDigitsRegex": "^(1|2)$",
        "SpeechParameters": {"Text": "Press 1 to confirm, 2 to cancel."}, "FailureSpeechParameters": {},
        "RepeatDurationInMilliseconds": 5000}});
    vec![
        (
            "NEW_OUTBOUND_CALL",
            event(
                "NEW_OUTBOUND_CALL",
                1,
                None,
                Some(json!({"Type": "CallCreateRequest",
            "Parameters": {"Arguments": {"call_id": "call_bench", "campaign_id": "cmp_bench", "attempt": "1", "vars": vars}}})),
            ),
        ),
        (
            "RINGING",
            event("RINGING", 2, Some(attrs("DIALING", None)), None),
        ),
        (
            "CALL_ANSWERED",
            event("CALL_ANSWERED", 3, Some(attrs("RINGING", None)), None),
        ),
        (
            "ACTION_SUCCESSFUL",
            event(
                "ACTION_SUCCESSFUL",
                4,
                Some(attrs("ANSWERED", Some("menu"))),
                Some(gather.clone()),
            ),
        ),
        (
            "ACTION_FAILED",
            event(
                "ACTION_FAILED",
                4,
                Some(attrs("ANSWERED", Some("menu"))),
                Some({
                    let mut g = gather.clone();
                    g["ErrorType"] = json!("InvalidActionParameter");
                    g
                }),
            ),
        ),
        (
            "DIGITS_RECEIVED",
            event(
                "DIGITS_RECEIVED",
                5,
                Some(attrs("ANSWERED", Some("menu"))),
                Some(json!({"Type": "ReceiveDigits",
            "ReceivedDigits": "2", "Parameters": {"CallId": "c0ffee00-aaaa-bbbb-cccc-ddddeeeeffff"}})),
            ),
        ),
        (
            "CALL_UPDATE_REQUESTED",
            event(
                "CALL_UPDATE_REQUESTED",
                6,
                Some(attrs("ANSWERED", Some("menu"))),
                Some(json!({
            "Type": "CallUpdateRequest", "Parameters": {"Arguments": {"op": "hangup", "reason": "hangup"}}})),
            ),
        ),
        (
            "HANGUP",
            event(
                "HANGUP",
                7,
                Some(attrs("ANSWERED", None)),
                Some(json!({"Type": "Hangup", "Parameters": {
            "SipResponseCode": 0, "CallId": "c0ffee00-aaaa-bbbb-cccc-ddddeeeeffff", "ParticipantTag": "LEG-A"}})),
            ),
        ),
        ("INVALID_LAMBDA_RESPONSE", {
            let mut e = event(
                "INVALID_LAMBDA_RESPONSE",
                8,
                Some(attrs("ANSWERED", None)),
                None,
            );
            e["ErrorType"] = json!("TransactionAttributesInvalidMapSize");
            e
        }),
        ("NEW_INBOUND_CALL", event("NEW_INBOUND_CALL", 1, None, None)),
    ]
}

fn per_event(c: &mut Criterion) {
    // With timers, as in Lambda: each event runs within its budget on tokio's timer.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let handler = SmaHandler::new(
        store(),
        Arc::new(ManualClock::at(Timestamp::from_millis(1_900_000_000_000))),
        Settings::default(),
    );
    let mut group = c.benchmark_group("sma_event");
    for (name, payload) in events() {
        group.bench_function(name, |b| {
            b.iter_batched(
                || payload.clone(),
                |p| runtime.block_on(handler.handle(p)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, per_event);
criterion_main!(benches);
