//! An event is answered within its budget whatever the table does: with tokio's time paused
//! and a store whose requests never finish, every path (a write, a campaign's first read, a lookup
//! by transaction, an orphan kept) answers once `EVENT_BUDGET` has passed, and not before.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod support;

use std::sync::Arc;
use std::time::Duration;

use outdial_core::contract::validate_response;
use outdial_core::ids::{CallId, CampaignId, E164, Sequence, TransactionId};
use outdial_core::ports::{Applied, EventWrite, SmaStore, StoreError};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, Limits, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::time::{ManualClock, Timestamp};
use outdial_sma::{EVENT_BUDGET, Settings, SmaHandler};
use serde_json::Value;
use support::Call;

/// A table that takes every request and never answers, but for the campaign it knows, if
/// any, which it reads at once.
#[derive(Debug, Clone, Default)]
struct Stalled {
    campaign: Option<Campaign>,
}

impl SmaStore for Stalled {
    async fn campaign(&self, _: &CampaignId) -> Result<Campaign, StoreError> {
        match &self.campaign {
            Some(c) => Ok(c.clone()),
            None => std::future::pending().await,
        }
    }
    async fn apply_event(&self, _: &EventWrite) -> Result<Applied<()>, StoreError> {
        std::future::pending().await
    }
    async fn call_by_transaction(
        &self,
        _: &TransactionId,
    ) -> Result<Option<CallRecord>, StoreError> {
        std::future::pending().await
    }
    async fn record_orphan(
        &self,
        _: &str,
        _: Sequence,
        _: &str,
        _: &str,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        std::future::pending().await
    }
}

/// Sends `event` to a handler on a stalled table, with tokio's time paused: no answer a
/// moment before the budget is spent, a valid one once it is.
async fn answered_at_the_budget(store: Stalled, event: Value) -> Value {
    let clock = Arc::new(ManualClock::at(support::T0));
    let handler = Arc::new(SmaHandler::new(store, clock, Settings::default()));
    let running = tokio::spawn({
        let handler = Arc::clone(&handler);
        async move { handler.handle(event).await }
    });
    tokio::time::sleep(EVENT_BUDGET - Duration::from_millis(1)).await;
    assert!(
        !running.is_finished(),
        "answered before the budget was spent"
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(running.is_finished(), "answered once the budget is spent");
    let answer = running.await.unwrap();
    validate_response(&answer).unwrap();
    answer
}

fn call() -> Call {
    Call::new(
        CallId::random(),
        CampaignId::random(),
        1,
        "+15555550130",
        Default::default(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_first_event_whose_campaign_read_stalls_is_answered_at_the_budget() {
    // NEW_OUTBOUND_CALL reads the campaign (its ring watchdog) before its write.
    let mut call = call();
    answered_at_the_budget(Stalled::default(), call.new_outbound_call()).await;
}

#[tokio::test(start_paused = true)]
async fn an_event_without_attributes_is_answered_at_the_budget_whatever_it_waits_for() {
    // A lookup by transaction, then (with nothing found in time) an orphan kept: both wait
    // on the same budget.
    let mut call = call();
    let hangup = call.hangup("LEG-A", Some(serde_json::json!("480")));
    answered_at_the_budget(Stalled::default(), hangup).await;
}

#[tokio::test(start_paused = true)]
async fn a_write_that_stalls_is_answered_at_the_budget() {
    // The campaign is read at once; the event's one write never answers.
    let mut call = call();
    let campaign = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: call.campaign.clone(),
        name: "budget".into(),
        from: E164::parse(support::FROM).unwrap(),
        status: CampaignStatus::Active,
        retry: RetryPolicy::default(),
        pacing: Pacing::default(),
        script: serde_json::from_str(support::REMINDER).unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: support::T0,
        contacts: 1,
    };
    let store = Stalled {
        campaign: Some(campaign),
    };
    let answer = answered_at_the_budget(store, call.new_outbound_call()).await;
    // Answered from what the event said, without the write: the attributes go back.
    assert!(
        answer["TransactionAttributes"]["call_id"].is_string(),
        "{answer}"
    );
}
