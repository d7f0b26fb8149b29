//! Watchdogs of calls whose end was never recorded, on the in-memory store and Voice API and a
//! virtual clock: a call the SMA no longer knows ends as the `HANGUP` the SMA handler kept
//! as an orphan says; without one, and for a dial whose placing is unknown, the attempt is
//! given up on, dialed again only as a later attempt, and `LOST` only when answered or out
//! of attempts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outdial_adapters::memory::{MemoryDialer, MemoryStore, VoiceAnswer};
use outdial_core::dispatch::{END_UNKNOWN, PLACING_UNKNOWN};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence, TransactionId};
use outdial_core::lifecycle::{CallStatus, Outcome};
use outdial_core::ports::{Lane, SmaStore};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, Limits, Pacing};
use outdial_core::retry::{RetryPolicy, RetrySpec};
use outdial_core::time::{Clock, ManualClock, Timestamp};
use outdial_timers::{Dispatcher, Settings};
use serde_json::json;

const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);
const TXN: &str = "5b1c2a0e-1111-2222-3333-444455556666";

struct World {
    store: MemoryStore,
    dialer: MemoryDialer,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher<MemoryStore, MemoryDialer>,
    campaign: Campaign,
}

/// A campaign retrying failed attempts `max_attempts` times, a minute apart, on one shard.
fn world(max_attempts: u32) -> World {
    let store = MemoryStore::new(1);
    let dialer = MemoryDialer::new();
    let clock = Arc::new(ManualClock::at(T0));
    let campaign = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        name: "watchdogs".into(),
        from: E164::parse("+15555550199").unwrap(),
        status: CampaignStatus::Active,
        retry: RetryPolicy::new(RetrySpec {
            max_attempts,
            busy_after_s: 60,
            no_answer_after_s: 60,
            failed_after_s: 60,
            declined_after_s: None,
        })
        .unwrap(),
        pacing: Pacing::default(),
        script: serde_json::from_str(r#"{"start": "a", "steps": {"a": {"say": "Hello."}}}"#)
            .unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: T0,
        contacts: 1,
    };
    store.insert_campaign(campaign.clone());
    let dispatcher = Dispatcher::new(
        store.clone(),
        dialer.clone(),
        clock.clone(),
        // The fictional 555 numbers have no zone for the law's hours to be read in.
        Settings {
            legal_hours: false,
            ..Settings::default()
        },
    );
    World {
        store,
        dialer,
        clock,
        dispatcher,
        campaign,
    }
}

impl World {
    /// A live call of the campaign in `status`, its watchdog due now; placed as [`TXN`]
    /// when `placed`.
    fn live_call(&self, status: CallStatus, placed: bool, answered: bool) -> CallId {
        let id = CallId::random();
        let record = CallRecord {
            consent: None,
            reference: None,
            reason: None,
            id: id.clone(),
            campaign_id: self.campaign.id.clone(),
            to: E164::parse("+15555550100").unwrap(),
            from: self.campaign.from.clone(),
            vars: BTreeMap::new(),
            tz: None,
            status,
            attempt: Attempt::FIRST,
            last_event: None,
            answered,
            end_request: None,
            transaction_id: placed.then(|| TransactionId::parse(TXN).unwrap()),
            placed_attempt: placed.then_some(Attempt::FIRST),
            outcome: None,
            sip_code: None,
            script_outcome: None,
            last_error: None,
            verdict: None,
            greeting_ms: None,
            digits: Vec::new(),
            due_at: Some(T0),
            created_at: T0,
            updated_at: T0,
            answered_at: None,
            ended_at: None,
            dialed_at: None,
        };
        self.store.insert_call(record, Some(Lane::Watch));
        id
    }

    /// One tick, its work done, with the clock a second on.
    async fn watchdogs_fire(&self) {
        self.clock.advance(Duration::from_secs(1));
        self.dispatcher.tick(0).await.unwrap();
        self.dispatcher.settle().await;
    }

    fn record(&self, id: &CallId) -> CallRecord {
        self.store.stored_call(id).unwrap()
    }

    fn clock_now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// The `HANGUP` of [`TXN`] with `code`, as the SMA handler kept it when it could not match it
/// to a call.
async fn keep_orphaned_hangup(store: &MemoryStore, seq: u64, code: &str) {
    let raw = json!({
        "SchemaVersion": "1.0",
        "Sequence": seq,
        "InvocationEventType": "HANGUP",
        "ActionData": {"Type": "Hangup", "Parameters": {
            "SipResponseCode": code, "CallId": "leg-a", "ParticipantTag": "LEG-A"}},
        "CallDetails": {
            "TransactionId": TXN,
            "AwsAccountId": "111122223333",
            "AwsRegion": "us-east-1",
            "SipMediaApplicationId": "sma-local",
            "Participants": [{"CallId": "leg-a", "ParticipantTag": "LEG-A",
                "To": "+15555550100", "From": "+15555550199", "Direction": "Outbound",
                "StartTimeInMilliseconds": "1900000000000", "Status": "Disconnected"}]
        }
    });
    store
        .record_orphan(TXN, Sequence::new(seq), "HANGUP", &raw.to_string(), T0)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_call_the_sma_no_longer_knows_ends_as_its_orphaned_hangup_says() {
    let w = world(1);
    w.dialer.answer_updates(VoiceAnswer::NotFound);
    let id = w.live_call(CallStatus::Dialing, true, false);
    keep_orphaned_hangup(&w.store, 2, "486").await;
    w.watchdogs_fire().await;
    let r = w.record(&id);
    assert_eq!(r.status, CallStatus::Busy, "{r:?}");
    assert_eq!(r.outcome, Some(Outcome::Busy));
    assert_eq!(r.sip_code.as_deref(), Some("486"));
    assert_eq!(r.due_at, None);
    let stats = w.dispatcher.stats();
    assert_eq!((stats.recovered, stats.lost, stats.retried), (1, 0, 0));
    assert_eq!(w.dialer.places().len(), 0, "nothing is dialed again");
}

#[tokio::test]
async fn an_orphaned_hangup_with_attempts_left_queues_the_next_attempt_after_its_delay() {
    let w = world(3);
    w.dialer.answer_updates(VoiceAnswer::NotFound);
    let id = w.live_call(CallStatus::Ringing, true, false);
    keep_orphaned_hangup(&w.store, 3, "480").await;
    w.watchdogs_fire().await;
    let r = w.record(&id);
    assert_eq!(r.status, CallStatus::RetryWait, "{r:?}");
    assert_eq!(r.attempt, Attempt::FIRST.next());
    assert_eq!(r.outcome, Some(Outcome::NoAnswer));
    assert_eq!(r.due_at, Some(w.clock_now().plus(Duration::from_secs(60))));
}

#[tokio::test]
async fn without_an_orphan_an_unanswered_call_is_retried_and_an_answered_one_lost() {
    let w = world(3);
    w.dialer.answer_updates(VoiceAnswer::NotFound);
    let ringing = w.live_call(CallStatus::Ringing, true, false);
    let answered = w.live_call(CallStatus::Answered, true, true);
    w.watchdogs_fire().await;

    let r = w.record(&ringing);
    assert_eq!(r.status, CallStatus::RetryWait, "{r:?}");
    assert_eq!(r.attempt, Attempt::FIRST.next());
    assert_eq!(r.last_error.as_deref(), Some(END_UNKNOWN));
    assert!(
        w.store.slot_of(&ringing).is_none(),
        "its slot is given back"
    );
    let listing = w.store.listing_of(&ringing).unwrap();
    assert_eq!(listing.lane, Lane::Dial);

    let r = w.record(&answered);
    assert_eq!(r.status, CallStatus::Lost, "the callee was reached: {r:?}");
    assert_eq!(r.last_error.as_deref(), Some(END_UNKNOWN));
    let stats = w.dispatcher.stats();
    assert_eq!((stats.retried, stats.lost), (1, 1));
}

#[tokio::test]
async fn a_dial_whose_placing_is_unknown_is_given_up_never_dialed_again_as_itself() {
    let w = world(2);
    let id = w.live_call(CallStatus::Dialing, false, false);
    w.watchdogs_fire().await;
    let r = w.record(&id);
    assert_eq!(r.status, CallStatus::RetryWait, "{r:?}");
    assert_eq!(r.attempt, Attempt::FIRST.next());
    assert_eq!(r.last_error.as_deref(), Some(PLACING_UNKNOWN));
    assert!(w.dialer.updates().is_empty(), "no transaction to ask about");
    assert!(
        w.dialer.places().is_empty(),
        "nothing dialed until the retry is due"
    );

    // The second attempt's dial meets the same silence: no attempt is left.
    w.clock.advance(Duration::from_secs(60));
    w.dialer.answer_places(VoiceAnswer::Unknown);
    w.dispatcher.tick(0).await.unwrap();
    w.dispatcher.settle().await;
    let places = w.dialer.places();
    assert_eq!(places.len(), 1);
    assert_eq!(
        places[0].arguments.get("attempt").map(String::as_str),
        Some("2")
    );
    w.clock.advance(Duration::from_secs(60));
    w.watchdogs_fire().await;
    let r = w.record(&id);
    assert_eq!(r.status, CallStatus::Lost, "{r:?}");
    assert_eq!(r.last_error.as_deref(), Some(PLACING_UNKNOWN));
    assert_eq!(w.dialer.places().len(), 1, "never dialed again");
}

/// A Voice API that takes every request and never answers.
#[derive(Debug, Clone, Default)]
struct Unanswering;

impl outdial_core::ports::Dialer for Unanswering {
    async fn place(
        &self,
        _: &E164,
        _: &E164,
        _: BTreeMap<String, String>,
    ) -> Result<TransactionId, outdial_core::ports::DialError> {
        std::future::pending().await
    }

    async fn update(
        &self,
        _: &TransactionId,
        _: BTreeMap<String, String>,
    ) -> Result<(), outdial_core::ports::DialError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_run_ends_within_its_tail_when_the_voice_api_never_answers() {
    let w = world(1);
    let dispatcher = Dispatcher::new(
        w.store.clone(),
        Unanswering,
        w.clock.clone(),
        // The fictional 555 number has no zone for the law's hours to be read in.
        Settings {
            legal_hours: false,
            ..Settings::default()
        },
    );
    let mut waiting = w.record(&w.live_call(CallStatus::Dialing, false, false));
    waiting.status = CallStatus::Queued;
    waiting.id = CallId::random();
    w.store.insert_call(waiting, Some(Lane::Dial));
    let until = T0.plus(Duration::from_secs(10));
    let dispatcher = Arc::new(dispatcher);
    let run = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        async move { dispatcher.run(0, "owner", until, Duration::ZERO).await }
    });
    // Virtual time, a few ms of real time a step, until the run ends.
    let mut ended_at = None;
    for _ in 0..2_000 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if run.is_finished() {
            ended_at = Some(w.clock_now());
            break;
        }
        w.clock.advance(Duration::from_millis(50));
    }
    let ended_at = ended_at.expect("the run ended");
    assert!(run.await.unwrap().unwrap().is_some(), "it held the shard");
    assert!(
        ended_at <= until.plus(outdial_timers::TAIL),
        "ended {} ms after its end",
        ended_at.since(until).as_millis()
    );
    assert!(dispatcher.stats().dialed == 0, "nothing was answered");
}
