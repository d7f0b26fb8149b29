//! What the end-to-end tests that place calls by hand share: a one-attempt campaign of a
//! script, its calls (each with `{{name}}` Ada), and placing each one as the dispatcher would
//! (claimed, then `CreateSipMediaApplicationCall` with the SMA's arguments).

use std::collections::BTreeMap;

use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_core::ids::{Attempt, CallId, CampaignId, E164};
use outdial_core::ports::{ClaimWrites, Dialer, DispatchStore};
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::{RetryPolicy, RetrySpec};
use outdial_core::time::Clock;

/// An active campaign named `name` that runs `script` and gives each call one attempt.
pub fn campaign(name: &str, script: &str, clock: &dyn Clock) -> Campaign {
    Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        name: name.into(),
        from: E164::parse("+15555550199").unwrap(),
        status: CampaignStatus::Active,
        retry: RetryPolicy::new(RetrySpec {
            max_attempts: 1,
            busy_after_s: 60,
            no_answer_after_s: 60,
            failed_after_s: 60,
            declined_after_s: None,
        })
        .unwrap(),
        pacing: Pacing::default(),
        script: serde_json::from_str(script).unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: clock.now(),
        contacts: 0,
    }
}

/// One call due now to each number, for Ada.
pub fn calls<'a>(numbers: impl IntoIterator<Item = &'a str>, clock: &dyn Clock) -> Vec<NewCall> {
    numbers
        .into_iter()
        .map(|to| NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: CallId::random(),
            to: E164::parse(to).unwrap(),
            vars: BTreeMap::from([("name".to_owned(), "Ada".to_owned())]),
            due_at: clock.now(),
        })
        .collect()
}

/// Claims each call's first attempt and places it through `dialer`, as the dispatcher does.
pub async fn place(
    store: &DynamoStore,
    dialer: &ChimeDialer,
    campaign: &Campaign,
    calls: &[NewCall],
    clock: &dyn Clock,
) {
    for call in calls {
        let waiting = store.call(&call.id).await.unwrap();
        assert_eq!(waiting.attempt, Attempt::FIRST);
        let claimed = store
            .claim(
                &waiting,
                clock.now(),
                clock.now(),
                u32::MAX,
                &ClaimWrites::default(),
            )
            .await
            .unwrap();
        let arguments = BTreeMap::from([
            ("call_id".to_owned(), claimed.id.to_string()),
            ("campaign_id".to_owned(), claimed.campaign_id.to_string()),
            ("attempt".to_owned(), claimed.attempt.to_string()),
            (
                "vars".to_owned(),
                serde_json::to_string(&claimed.vars).unwrap(),
            ),
        ]);
        dialer
            .place(&campaign.from, &call.to, arguments)
            .await
            .unwrap();
    }
}
