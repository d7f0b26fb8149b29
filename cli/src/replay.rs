//! `outdial replay EVENTS.json`: runs a call's SMA events, in file order, through the SMA
//! handler and a real store (DynamoDB Local, or the endpoint in `AWS_ENDPOINT_URL_DYNAMODB`),
//! and prints each answer and then the final call record, one JSON line each. It is how a
//! production call is reproduced from its logged events.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use outdial_adapters::clock::SystemClock;
use outdial_adapters::item::{call_pk, new_call_item};
use outdial_adapters::store::DynamoStore;
use outdial_core::contract::{EventType, validate_event};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164};
use outdial_core::ports::DispatchStore;
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::time::Clock;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{client, fresh_table};
use outdial_sma::{Settings, SmaHandler};
use serde_json::Value;

/// The script a replayed call runs when its campaign is not in the store.
pub const DEFAULT_SCRIPT: &str = r#"{
    "caller_name": "outdial",
    "start": "greet",
    "steps": {
        "greet": { "say": "This is a call from outdial.", "next": "menu" },
        "menu": { "gather": { "say": "Press 1 to confirm or 2 to decline." },
                  "branches": { "1": "confirm", "2": "decline" }, "no_input": "goodbye" },
        "confirm": { "say": "Thank you.", "outcome": "confirmed" },
        "decline": { "say": "Understood.", "outcome": "declined" },
        "goodbye": { "say": "Goodbye.", "outcome": "no_input" }
    }
}"#;

/// Replays the events in `path`, writing one line per answer and the final record to `out`.
///
/// # Errors
/// When the file is not a JSON array, no event names a call, or DynamoDB is unreachable.
pub async fn replay(
    path: &Path,
    to: Option<&str>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let events: Vec<Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON array of SMA events", path.display()))?;
    let (call_id, campaign_id, attempt, vars) = first_call(&events)?;
    let to = E164::parse(to.unwrap_or("+15555550100")).context("--to")?;

    let endpoint = shared_endpoint()?;
    let client = client(&endpoint);
    let table = fresh_table(&client, "replay").await?;
    let store = DynamoStore::new(client, table, 1);
    let clock = Arc::new(SystemClock);
    let campaign = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: campaign_id,
        name: "replay".to_owned(),
        from: E164::parse("+15555550199")?,
        status: CampaignStatus::Active,
        retry: RetryPolicy::default(),
        pacing: Pacing::default(),
        script: serde_json::from_str(DEFAULT_SCRIPT)?,
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: clock.now(),
        contacts: 1,
    };
    store.create_campaign(&campaign, &[]).await?;
    // The call, waiting to be dialed as the attempt the events name, then claimed.
    let mut item = new_call_item(
        &campaign,
        &NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: call_id.clone(),
            to,
            vars,
            due_at: clock.now(),
        },
        1,
    );
    item.insert("attempt".to_owned(), AttributeValue::N(attempt.to_string()));
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(PK)")
        .send()
        .await
        .with_context(|| format!("writing {}", call_pk(&call_id)))?;
    let waiting = store.call(&call_id).await?;
    store
        .claim(
            &waiting,
            clock.now(),
            clock.now(),
            u32::MAX,
            &outdial_core::ports::ClaimWrites::default(),
        )
        .await?;

    let handler = SmaHandler::new(store, clock, Settings::default());
    for event in events {
        let answer = handler.handle(event).await;
        writeln!(out, "{answer}")?;
    }
    let record = handler.store().call(&call_id).await?;
    writeln!(out, "{}", serde_json::to_string(&record)?)?;
    Ok(())
}

type Named = (CallId, CampaignId, Attempt, BTreeMap<String, String>);

/// The call the first event that names one is about: `NEW_OUTBOUND_CALL`'s arguments, or a
/// later event's attributes.
fn first_call(events: &[Value]) -> anyhow::Result<Named> {
    for value in events {
        let Ok(event) = validate_event(value) else {
            continue;
        };
        let map = if event.event_type == EventType::NewOutboundCall {
            event.arguments()
        } else {
            event.call_details.transaction_attributes.clone()
        };
        let Some(map) = map else { continue };
        let (Some(call), Some(campaign), Some(attempt)) = (
            map.get("call_id"),
            map.get("campaign_id"),
            map.get("attempt"),
        ) else {
            continue;
        };
        let vars = map
            .get("vars")
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        return Ok((
            CallId::parse(call)?,
            CampaignId::parse(campaign)?,
            Attempt::parse(attempt).map_err(|e| anyhow::anyhow!("attempt: {e}"))?,
            vars,
        ));
    }
    bail!(
        "no event names a call: NEW_OUTBOUND_CALL carries call_id, campaign_id and attempt in its Arguments, later events in their TransactionAttributes"
    )
}
