//! The DynamoDB store against the official DynamoDB Local, a fresh table per test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use outdial_adapters::direct::DirectWrites;
use outdial_adapters::memory::MemoryStore;
use outdial_adapters::store::DynamoStore;
use outdial_core::dispatch::Guard;
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence, TransactionId};
use outdial_core::lifecycle::{CallEvent, CallStatus, Expected, Step, expected, transition};
use outdial_core::ports::{
    Applied, DispatchStore, Due, DueChange, EventWrite, Lane, Lease, PacerMarks, StoreError,
};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::sip::SipCode;
use outdial_core::time::Timestamp;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{RequestCounter, counting_client, fresh_table, sma_clients};

/// An instant in 2030: items expire 90 days after creation, and DynamoDB Local does delete
/// expired items, so tests write in the future.
const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);

async fn store() -> (DynamoStore, RequestCounter) {
    let endpoint = shared_endpoint().expect("DynamoDB Local");
    let (client, counter) = counting_client(&endpoint);
    let table = fresh_table(&client, "store").await.expect("table");
    counter.reset();
    (DynamoStore::new(client, table, 4), counter)
}

/// The requests a store sent since the last look, through the SDK and, where it has them,
/// its hand-signed event writes.
struct Sent {
    sdk: RequestCounter,
    direct: Option<Arc<DirectWrites>>,
    seen: u64,
}

impl Sent {
    fn take(&mut self) -> u64 {
        let direct = self.direct.as_ref().map_or(0, |d| d.requests());
        let sdk = u64::try_from(self.sdk.take()).unwrap();
        let since = direct - self.seen;
        self.seen = direct;
        sdk + since
    }

    /// Event writes sent directly since the store was made.
    fn direct_since_start(&self) -> u64 {
        self.direct.as_ref().map_or(0, |d| d.requests()) - self.seen
    }
}

/// The store as the SMA function's binary builds it: event writes signed and sent directly
/// (once its warming request has shown the SDK client's endpoint), everything else through
/// the SDK.
async fn direct_store() -> (DynamoStore, Sent) {
    let endpoint = shared_endpoint().expect("DynamoDB Local");
    let (client, counter, direct) = sma_clients(&endpoint);
    let table = fresh_table(&client, "direct").await.expect("table");
    let store = DynamoStore::new(client, table, 4).with_direct_writes(Arc::clone(&direct));
    store.warm().await;
    assert!(direct.ready());
    counter.reset();
    let seen = direct.requests();
    (
        store,
        Sent {
            sdk: counter,
            direct: Some(direct),
            seen,
        },
    )
}

/// [`store`] with its counter as a [`Sent`].
async fn sdk_store() -> (DynamoStore, Sent) {
    let (store, sdk) = store().await;
    (
        store,
        Sent {
            sdk,
            direct: None,
            seen: 0,
        },
    )
}

fn campaign(contacts: u64) -> Campaign {
    Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        name: "reminders".into(),
        from: E164::parse("+15555550199").unwrap(),
        status: CampaignStatus::Active,
        retry: RetryPolicy::default(),
        pacing: Pacing::default(),
        script: serde_json::from_str(r#"{"start": "bye", "steps": {"bye": {"say": "Goodbye."}}}"#)
            .unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: T0,
        contacts,
    }
}

fn calls(n: usize) -> Vec<NewCall> {
    (0..n)
        .map(|i| NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: CallId::random(),
            to: E164::parse(&format!("+1555555{i:04}")).unwrap(),
            vars: BTreeMap::from([("name".to_owned(), format!("contact {i}"))]),
            due_at: T0,
        })
        .collect()
}

/// Computes the write for `event` (numbered `seq`) on `record`, as the SMA handler does.
fn write_for(record: &CallRecord, seq: u64, event: CallEvent, response: &str) -> EventWrite {
    let pre = record.state();
    let policy = RetryPolicy::default();
    let Step::Apply(change) = transition(&pre, record.attempt, Sequence::new(seq), &event, &policy)
    else {
        panic!("event {seq} should apply to {pre:?}");
    };
    let expected = expected(
        &pre,
        record.attempt,
        Sequence::new(seq),
        &event,
        &policy,
        &change,
    );
    EventWrite {
        call_id: record.id.clone(),
        campaign_id: record.campaign_id.clone(),
        attempt: record.attempt,
        seq: Sequence::new(seq),
        event_type: format!("{event:?}"),
        expected,
        next: change.next,
        transaction_id: TransactionId::parse("5b1c2a0e-1111-2222-3333-444455556666").unwrap(),
        outcome: change.outcome,
        sip_code: None,
        script_outcome: None,
        digits: None,
        error: None,
        due: change
            .retry_after
            .map_or(DueChange::Clear, |d| DueChange::At(T0.plus(d))),
        response: response.to_owned(),
        at: T0,
        opt_out: None,
        detection: None,
    }
}

/// Claims call `id` as the dispatcher does: from its record, with no concurrency cap.
async fn claim(
    store: &DynamoStore,
    id: &CallId,
    watchdog_at: Timestamp,
) -> Result<CallRecord, StoreError> {
    let waiting = store.call(id).await?;
    store
        .claim(
            &waiting,
            T0,
            watchdog_at,
            u32::MAX,
            &outdial_core::ports::ClaimWrites::default(),
        )
        .await
}

async fn dialing_call(store: &DynamoStore) -> CallRecord {
    let c = campaign(1);
    let call = calls(1).remove(0);
    store
        .create_campaign(&c, std::slice::from_ref(&call))
        .await
        .unwrap();
    claim(store, &call.id, T0.plus(Duration::from_secs(60)))
        .await
        .unwrap()
}

/// Every entry of every shard due by `until`, read a page of `page` at a time.
async fn all_due(store: &DynamoStore, until: Timestamp, page: u32) -> Vec<Due> {
    let mut due = Vec::new();
    for shard in 0..store.shards() {
        for lane in [Lane::Dial, Lane::Watch] {
            let mut after = None;
            loop {
                let read = store
                    .due(shard, lane, until, page, after.as_deref())
                    .await
                    .unwrap();
                due.extend(read.items);
                match read.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    due
}

fn due_calls(due: &[Due]) -> Vec<&CallRecord> {
    due.iter()
        .filter_map(|d| match d {
            Due::Call(c) => Some(c.as_ref()),
            Due::Campaign { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn a_campaign_is_written_with_all_its_calls_queued_and_due() {
    let (store, _) = store().await;
    let c = campaign(60);
    let new = calls(60);
    store.create_campaign(&c, &new).await.unwrap();

    assert_eq!(store.campaign(&c.id).await.unwrap(), c);
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_calls(&c.id, Some(CallStatus::Queued), 25, cursor.as_deref())
            .await
            .unwrap();
        listed.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed.len(), 60);
    assert!(
        listed
            .iter()
            .all(|r| r.status == CallStatus::Queued && r.campaign_id == c.id)
    );

    let due = all_due(&store, T0, 7).await;
    assert_eq!(
        due_calls(&due).len(),
        60,
        "read 7 at a time, every call once"
    );
    assert!(due_calls(&due).iter().all(|d| d.due_at <= Some(T0)));
    assert!(
        all_due(&store, T0.plus(Duration::from_secs(0)), 1000)
            .await
            .len()
            == 60
    );
    assert!(
        all_due(&store, Timestamp::from_millis(T0.as_millis() - 1), 1000)
            .await
            .is_empty(),
        "nothing is due before its time"
    );
}

#[tokio::test]
async fn writing_a_complete_campaign_again_changes_no_call() {
    let (store, _) = store().await;
    let c = campaign(1);
    let call = calls(1).remove(0);
    store
        .create_campaign(&c, std::slice::from_ref(&call))
        .await
        .unwrap();
    claim(&store, &call.id, T0).await.unwrap();
    store
        .create_campaign(&c, std::slice::from_ref(&call))
        .await
        .unwrap();
    assert_eq!(
        store.call(&call.id).await.unwrap().status,
        CallStatus::Dialing
    );
}

#[tokio::test]
async fn a_call_is_claimed_once() {
    let (store, _) = store().await;
    let record = dialing_call(&store).await;
    assert_eq!(record.status, CallStatus::Dialing);
    let mut waiting = record.clone();
    waiting.status = CallStatus::Queued;
    let again = store
        .claim(
            &waiting,
            T0,
            T0,
            u32::MAX,
            &outdial_core::ports::ClaimWrites::default(),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    waiting.id = CallId::random();
    let missing = store
        .claim(
            &waiting,
            T0,
            T0,
            u32::MAX,
            &outdial_core::ports::ClaimWrites::default(),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

#[tokio::test]
async fn the_same_event_twice_and_an_older_event_after_a_newer_one_change_nothing_in_one_request_each()
 {
    let (store, sent) = sdk_store().await;
    same_event_twice_and_older_after_newer(&store, sent).await;
}

#[tokio::test]
async fn through_direct_writes_the_same_event_twice_and_an_older_one_change_nothing_in_one_request_each()
 {
    let (store, sent) = direct_store().await;
    same_event_twice_and_older_after_newer(&store, sent).await;
}

async fn same_event_twice_and_older_after_newer(store: &DynamoStore, mut requests: Sent) {
    let record = dialing_call(store).await;
    requests.take();

    let placed = write_for(
        &record,
        1,
        CallEvent::Placed,
        r#"{"SchemaVersion":"1.0","Actions":[]}"#,
    );
    let Applied::Written(after_placed) = store.apply_event(&placed).await.unwrap() else {
        panic!("NEW_OUTBOUND_CALL must be written");
    };
    assert_eq!(requests.take(), 1);

    let answered_response = r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Speak","Parameters":{"CallId":"leg-a","Text":"Hello"}}]}"#;
    let answered = write_for(&after_placed, 3, CallEvent::Answered, answered_response);
    let Applied::Written(after_answered) = store.apply_event(&answered).await.unwrap() else {
        panic!("CALL_ANSWERED must be written");
    };
    assert_eq!(requests.take(), 1);
    assert_eq!(after_answered.status, CallStatus::Answered);
    assert!(after_answered.answered_at.is_some());

    // The same event again: the stored response, byte for byte, and no change.
    let dup = store.apply_event(&answered).await.unwrap();
    assert_eq!(requests.take(), 1);
    assert_eq!(
        dup,
        Applied::Duplicate {
            response: answered_response.to_owned()
        }
    );
    assert_eq!(store.call(&record.id).await.unwrap(), *after_answered);
    requests.take();

    // RINGING (2) arriving after CALL_ANSWERED (3): stale, no change.
    let late = write_for(
        &after_placed,
        2,
        CallEvent::Ringing,
        r#"{"SchemaVersion":"1.0","Actions":[]}"#,
    );
    let stale = store.apply_event(&late).await.unwrap();
    assert_eq!(requests.take(), 1);
    assert!(matches!(stale, Applied::Stale(_)), "{stale:?}");
    assert_eq!(store.call(&record.id).await.unwrap(), *after_answered);

    // As the SMA handler writes (no record handed back): refusals read the same, and a
    // written event is the same write, in one request each.
    requests.take();
    assert_eq!(
        store.record_event(&answered).await.unwrap(),
        Applied::Duplicate {
            response: answered_response.to_owned()
        }
    );
    assert!(matches!(
        store.record_event(&late).await.unwrap(),
        Applied::Stale(_)
    ));
    assert_eq!(requests.take(), 2);
    let progress = write_for(
        &after_answered,
        4,
        CallEvent::ScriptProgress,
        r#"{"SchemaVersion":"1.0","Actions":[]}"#,
    );
    assert_eq!(
        store.record_event(&progress).await.unwrap(),
        Applied::Written(())
    );
    assert_eq!(requests.take(), 1);
    let now = store.call(&record.id).await.unwrap();
    assert_eq!(
        now.last_event.map(|l| (l.seq, l.event_type)),
        Some((Sequence::new(4), "ScriptProgress".to_owned()))
    );
}

#[tokio::test]
async fn a_record_changed_by_someone_else_is_returned_as_a_mismatch() {
    let (store, sent) = sdk_store().await;
    record_changed_by_someone_else(&store, sent).await;
}

#[tokio::test]
async fn through_direct_writes_a_record_changed_by_someone_else_is_a_mismatch() {
    let (store, sent) = direct_store().await;
    record_changed_by_someone_else(&store, sent).await;
}

async fn record_changed_by_someone_else(store: &DynamoStore, mut requests: Sent) {
    let record = dialing_call(store).await;
    let mut write = write_for(&record, 1, CallEvent::Placed, "{}");
    write.expected = Expected {
        statuses: vec![CallStatus::Ringing, CallStatus::Answered],
        answered: false,
        end_request: None,
    };
    requests.take();
    let out = store.apply_event(&write).await.unwrap();
    assert_eq!(requests.take(), 1);
    match out {
        Applied::Mismatch(current) => assert_eq!(*current, record),
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_busy_hangup_queues_the_next_attempt_and_a_repeat_of_it_is_a_duplicate() {
    let (store, _) = sdk_store().await;
    busy_hangup_queues_the_next_attempt(&store).await;
}

#[tokio::test]
async fn through_direct_writes_a_busy_hangup_queues_the_next_attempt() {
    let (store, sent) = direct_store().await;
    busy_hangup_queues_the_next_attempt(&store).await;
    assert_eq!(
        sent.direct_since_start(),
        4,
        "its four event writes went direct"
    );
}

async fn busy_hangup_queues_the_next_attempt(store: &DynamoStore) {
    let record = dialing_call(store).await;
    let Applied::Written(placed) = store
        .apply_event(&write_for(&record, 1, CallEvent::Placed, "{}"))
        .await
        .unwrap()
    else {
        panic!("placed");
    };
    let busy = write_for(
        &placed,
        2,
        CallEvent::Hangup {
            leg: outdial_core::lifecycle::Leg::Callee,
            code: SipCode::Code(486),
        },
        r#"{"SchemaVersion":"1.0","Actions":[]}"#,
    );
    let Applied::Written(waiting) = store.apply_event(&busy).await.unwrap() else {
        panic!("HANGUP must be written");
    };
    assert_eq!(waiting.status, CallStatus::RetryWait);
    assert_eq!(waiting.attempt.get(), 2);
    assert_eq!(waiting.due_at, Some(T0.plus(Duration::from_secs(300))));
    let due = all_due(store, T0.plus(Duration::from_secs(300)), 10).await;
    assert!(
        due_calls(&due)
            .iter()
            .any(|d| d.id == record.id && d.attempt.get() == 2)
    );
    assert!(matches!(
        store.apply_event(&busy).await.unwrap(),
        Applied::Duplicate { .. }
    ));
    // The retry is claimed as attempt 2, and attempt 1's late events are stale.
    let claimed = claim(store, &record.id, T0).await.unwrap();
    assert_eq!(claimed.attempt, waiting.attempt);
    assert_eq!(claimed.status, CallStatus::Dialing);
    let late = write_for(&placed, 5, CallEvent::Answered, "{}");
    assert!(matches!(
        store.apply_event(&late).await.unwrap(),
        Applied::Stale(_)
    ));
}

#[tokio::test]
async fn events_for_unknown_calls_are_not_found() {
    let (store, _) = sdk_store().await;
    unknown_calls_are_not_found(&store).await;
}

#[tokio::test]
async fn through_direct_writes_events_for_unknown_calls_are_not_found() {
    let (store, _) = direct_store().await;
    unknown_calls_are_not_found(&store).await;
}

async fn unknown_calls_are_not_found(store: &DynamoStore) {
    let record = dialing_call(store).await;
    let mut write = write_for(&record, 1, CallEvent::Placed, "{}");
    write.call_id = CallId::random();
    assert!(matches!(
        store.apply_event(&write).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.call(&write.call_id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.campaign(&CampaignId::random()).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn an_orphan_event_is_kept_and_a_call_reads_with_its_history() {
    let (store, _) = store().await;
    store
        .record_orphan(
            "t-1",
            Sequence::new(3),
            "CALL_ANSWERED",
            r#"{"Sequence":3}"#,
            T0,
        )
        .await
        .unwrap();
    let record = dialing_call(&store).await;
    let (read, history) = store.call_with_history(&record.id).await.unwrap();
    assert_eq!(read, record);
    assert!(history.is_empty());
}

#[tokio::test]
async fn a_bad_cursor_is_refused() {
    let (store, _) = store().await;
    let err = store
        .list_calls(&CampaignId::random(), None, 10, Some("garbage"))
        .await;
    assert!(matches!(err, Err(StoreError::Corrupt { .. })), "{err:?}");
}

#[tokio::test]
async fn an_unplaced_dial_goes_back_to_waiting_or_ends_refused_but_never_once_placed() {
    let (store, requests) = store().await;
    let record = dialing_call(&store).await;
    requests.reset();
    store
        .release(
            &record.id,
            Attempt::FIRST,
            T0.plus(Duration::from_secs(1)),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(requests.take(), 1);
    let waiting = store.call(&record.id).await.unwrap();
    assert_eq!(waiting.status, CallStatus::Queued);
    assert_eq!(waiting.due_at, Some(T0.plus(Duration::from_secs(1))));
    // Released once, it can be claimed again as the same attempt, and refused.
    claim(&store, &record.id, T0).await.unwrap();
    store
        .refuse(
            &record.id,
            Attempt::FIRST,
            CallStatus::Failed,
            "ForbiddenException: no",
            T0,
        )
        .await
        .unwrap();
    let refused = store.call(&record.id).await.unwrap();
    assert_eq!(refused.status, CallStatus::Failed);
    assert_eq!(
        refused.last_error.as_deref(),
        Some("ForbiddenException: no")
    );
    assert_eq!(refused.due_at, None);

    // A call the SMA reported on was placed: it is never released or refused.
    let placed = dialing_call(&store).await;
    store
        .apply_event(&write_for(&placed, 1, CallEvent::Placed, "{}"))
        .await
        .unwrap();
    assert!(matches!(
        store.release(&placed.id, Attempt::FIRST, T0, T0).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store
            .refuse(&placed.id, Attempt::FIRST, CallStatus::Failed, "x", T0)
            .await,
        Err(StoreError::Conflict)
    ));
}

#[tokio::test]
async fn a_dial_the_voice_api_placed_is_never_released_and_is_found_by_its_transaction() {
    let (store, requests) = store().await;
    let record = dialing_call(&store).await;
    let transaction = TransactionId::parse("7f9a2d3e-0000-4000-8000-000000000001").unwrap();
    assert_eq!(store.call_by_transaction(&transaction).await.unwrap(), None);
    requests.reset();
    store
        .placed(&record.id, Attempt::FIRST, &transaction, T0)
        .await
        .unwrap();
    assert_eq!(requests.take(), 1);
    let placed = store.call(&record.id).await.unwrap();
    assert_eq!(placed.status, CallStatus::Dialing);
    assert_eq!(placed.placed_attempt, Some(Attempt::FIRST));
    assert_eq!(placed.current_transaction(), Some(&transaction));
    assert!(matches!(
        store.release(&record.id, Attempt::FIRST, T0, T0).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store
            .refuse(&record.id, Attempt::FIRST, CallStatus::Failed, "x", T0)
            .await,
        Err(StoreError::Conflict)
    ));
    requests.reset();
    let found = store.call_by_transaction(&transaction).await.unwrap();
    assert_eq!(found.map(|r| r.id), Some(record.id.clone()));
    assert_eq!(requests.take(), 2, "a Query of byTransaction and a GetItem");

    // Another attempt's answer is refused, and a call that does not exist is not found.
    let second = Attempt::FIRST.next();
    assert!(matches!(
        store.placed(&record.id, second, &transaction, T0).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store
            .placed(&CallId::random(), Attempt::FIRST, &transaction, T0)
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_live_call_is_rearmed_or_lost_and_a_finished_one_is_left_alone() {
    let (store, _) = store().await;
    let record = dialing_call(&store).await;
    store
        .rearm(
            &record.id,
            Attempt::FIRST,
            T0.plus(Duration::from_secs(30)),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        store.call(&record.id).await.unwrap().due_at,
        Some(T0.plus(Duration::from_secs(30)))
    );
    let live = Guard::live(Attempt::FIRST);
    store
        .give_up(
            &record.id,
            live,
            None,
            "the SMA no longer knows the call",
            T0,
        )
        .await
        .unwrap();
    let lost = store.call(&record.id).await.unwrap();
    assert_eq!(lost.status, CallStatus::Lost);
    assert_eq!(lost.due_at, None);
    assert!(matches!(
        store.give_up(&record.id, live, None, "again", T0).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.rearm(&record.id, Attempt::FIRST, T0, T0).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.give_up(&CallId::random(), live, None, "x", T0).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn an_attempt_given_up_on_waits_as_the_next_one_with_its_slot_given_back() {
    let (store, _) = store().await;
    let record = dialing_call(&store).await;
    let due = T0.plus(Duration::from_secs(600));
    let next = Attempt::FIRST.next();
    store
        .give_up(
            &record.id,
            Guard::unplaced(Attempt::FIRST),
            Some((next, due)),
            "placing unknown",
            T0,
        )
        .await
        .unwrap();
    let waiting = store.call(&record.id).await.unwrap();
    assert_eq!(waiting.status, CallStatus::RetryWait);
    assert_eq!(waiting.attempt, next);
    assert_eq!(waiting.due_at, Some(due));
    assert_eq!(waiting.last_error.as_deref(), Some("placing unknown"));
    let item = raw(&store, format!("CALL#{}", record.id), "CALL").await;
    assert!(
        !item.contains_key("slot"),
        "its concurrency slot is given back"
    );
    assert!(
        due_calls(&all_due(&store, due, 100).await)
            .iter()
            .any(|d| d.id == record.id && d.attempt == next),
        "due in the dial lane as the next attempt"
    );
    // A call whose placing became known is not given up on as unplaced.
    let placed = dialing_call(&store).await;
    let transaction = TransactionId::parse("7f9a2d3e-0000-4000-8000-000000000002").unwrap();
    store
        .placed(&placed.id, Attempt::FIRST, &transaction, T0)
        .await
        .unwrap();
    assert!(matches!(
        store
            .give_up(
                &placed.id,
                Guard::unplaced(Attempt::FIRST),
                Some((next, due)),
                "placing unknown",
                T0
            )
            .await,
        Err(StoreError::Conflict)
    ));
}

#[tokio::test]
async fn a_transactions_orphans_are_read_back_in_sequence_order() {
    let (store, requests) = store().await;
    let transaction = TransactionId::parse("7f9a2d3e-0000-4000-8000-000000000003").unwrap();
    for (seq, kind) in [(12, "HANGUP"), (2, "RINGING")] {
        store
            .record_orphan(
                transaction.as_str(),
                Sequence::new(seq),
                kind,
                &format!(r#"{{"Sequence":{seq}}}"#),
                T0,
            )
            .await
            .unwrap();
    }
    store
        .record_orphan("another", Sequence::new(1), "HANGUP", "{}", T0)
        .await
        .unwrap();
    requests.reset();
    let raw = DispatchStore::orphans(&store, &transaction).await.unwrap();
    assert_eq!(raw, [r#"{"Sequence":2}"#, r#"{"Sequence":12}"#]);
    assert_eq!(requests.take(), 1, "one Query");
    let none = TransactionId::parse("7f9a2d3e-0000-4000-8000-000000000004").unwrap();
    assert!(
        DispatchStore::orphans(&store, &none)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Whether `store` gave the lease to `owner` (`until` and its hand-over `s` seconds after
/// [`T0`], at `now`).
async fn takes(store: &impl DispatchStore, owner: &str, now: u64, until: u64) -> bool {
    let later = |s| T0.plus(Duration::from_secs(s));
    let lease = store
        .lease(0, owner, later(now), later(until), later(until - 1))
        .await
        .unwrap();
    matches!(lease, Lease::Taken { .. })
}

/// The lease's contract, which the DynamoDB store and the in-memory one share.
async fn one_holder_until_it_runs_out_is_given_up_or_handed_over(store: &impl DispatchStore) {
    let later = |s| T0.plus(Duration::from_secs(s));
    assert!(takes(store, "a", 0, 20).await);
    assert!(!takes(store, "b", 5, 25).await, "a holds it");
    assert!(takes(store, "a", 5, 25).await, "a renews");
    assert!(
        matches!(
            store
                .lease(1, "b", later(5), later(25), later(24))
                .await
                .unwrap(),
            Lease::Taken { from: None }
        ),
        "another shard is free"
    );
    // Refused, b learns when a means to hand the shard over.
    assert_eq!(
        store
            .lease(0, "b", later(24), later(44), later(43))
            .await
            .unwrap(),
        Lease::Held {
            hands_over_at: Some(later(24))
        }
    );
    assert!(takes(store, "b", 26, 46).await, "a died: b takes over");
    store.unlease(0, "a").await.unwrap();
    assert!(
        !takes(store, "a", 27, 47).await,
        "a stale holder cannot give it up"
    );
    store.unlease(0, "b").await.unwrap();
    assert!(takes(store, "a", 27, 47).await, "given up: free at once");

    // Handed over: the next owner takes it at once, with the marks, before it runs out.
    let marks = PacerMarks {
        account: Some(1_900_000_046_123_456),
        campaigns: [(CampaignId::random(), 1_900_000_046_023_456)].into(),
    };
    store.hand_over(0, "b", &marks).await.unwrap();
    assert!(
        !takes(store, "b", 30, 50).await,
        "only the holder hands over"
    );
    store.hand_over(0, "a", &marks).await.unwrap();
    assert_eq!(
        store
            .lease(0, "b", later(30), later(50), later(49))
            .await
            .unwrap(),
        Lease::Taken {
            from: Some(marks.clone())
        }
    );
    assert!(
        takes(store, "b", 31, 50).await,
        "b renews, with no marks to follow"
    );
    assert!(
        !takes(store, "a", 31, 51).await,
        "a handed it over for good"
    );
    store.unlease(0, "a").await.unwrap();
    assert!(!takes(store, "c", 32, 52).await, "b still holds it");
}

#[tokio::test]
async fn a_shard_lease_has_one_holder_until_it_runs_out_is_given_up_or_handed_over() {
    let (store, _) = store().await;
    one_holder_until_it_runs_out_is_given_up_or_handed_over(&store).await;
}

#[tokio::test]
async fn the_in_memory_lease_keeps_the_same_contract() {
    one_holder_until_it_runs_out_is_given_up_or_handed_over(&MemoryStore::new(1)).await;
}

/// The raw attributes of an item, to look at what the records do not show.
async fn raw(store: &DynamoStore, pk: String, sk: &str) -> outdial_adapters::item::Item {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .set_key(Some(outdial_adapters::item::key(pk, sk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

fn number(item: &outdial_adapters::item::Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

#[tokio::test]
async fn a_new_campaign_counts_its_contacts_once_even_when_written_again() {
    let (store, _) = store().await;
    let c = campaign(5);
    let new = calls(5);
    store.create_campaign(&c, &new).await.unwrap();
    store.create_campaign(&c, &new).await.unwrap();
    let counters = raw(&store, format!("CAMPAIGN#{}", c.id), "COUNTERS").await;
    assert_eq!(number(&counters, "contacts"), Some(5));
}

#[tokio::test]
async fn claims_take_concurrency_slots_up_to_the_campaigns_cap_and_leaving_live_gives_them_back() {
    let (store, _) = store().await;
    let c = campaign(3);
    let new = calls(3);
    store.create_campaign(&c, &new).await.unwrap();
    let mut claimed = Vec::new();
    for call in &new {
        let waiting = store.call(&call.id).await.unwrap();
        claimed.push(
            store
                .claim(
                    &waiting,
                    T0,
                    T0,
                    2,
                    &outdial_core::ports::ClaimWrites::default(),
                )
                .await,
        );
    }
    assert!(claimed[0].is_ok() && claimed[1].is_ok(), "{claimed:?}");
    assert!(
        matches!(claimed[2], Err(StoreError::AtCapacity)),
        "{claimed:?}"
    );
    let counters = raw(&store, format!("CAMPAIGN#{}", c.id), "COUNTERS").await;
    assert_eq!(number(&counters, "live"), Some(2));
    let third = store.call(&new[2].id).await.unwrap();
    assert_eq!(
        third.status,
        CallStatus::Queued,
        "a refused claim changes nothing"
    );

    let first = raw(&store, format!("CALL#{}", new[0].id), "CALL").await;
    assert_eq!(number(&first, "slot"), Some(1));
    assert_eq!(number(&first, "dialed_at"), Some(T0.as_millis()));
    store
        .release(&new[0].id, Attempt::FIRST, T0, T0)
        .await
        .unwrap();
    let released = raw(&store, format!("CALL#{}", new[0].id), "CALL").await;
    assert_eq!(
        number(&released, "slot"),
        None,
        "a released dial holds no slot"
    );
    store
        .refuse(&new[1].id, Attempt::FIRST, CallStatus::Failed, "no", T0)
        .await
        .unwrap();
    let refused = raw(&store, format!("CALL#{}", new[1].id), "CALL").await;
    assert_eq!(
        number(&refused, "slot"),
        None,
        "a refused dial holds no slot"
    );
}

#[tokio::test]
async fn a_call_that_hangs_up_gives_its_slot_back_in_the_same_write() {
    let (store, _) = store().await;
    let record = dialing_call(&store).await;
    let placed = write_for(&record, 1, CallEvent::Placed, "{}");
    let Applied::Written(placed) = store.apply_event(&placed).await.unwrap() else {
        panic!("NEW_OUTBOUND_CALL must be written");
    };
    let live = raw(&store, format!("CALL#{}", record.id), "CALL").await;
    assert_eq!(number(&live, "slot"), Some(1), "a live call keeps its slot");
    let hangup = write_for(
        &placed,
        2,
        CallEvent::Hangup {
            leg: outdial_core::lifecycle::Leg::Callee,
            code: SipCode::parse("486"),
        },
        "{}",
    );
    store.apply_event(&hangup).await.unwrap();
    let ended = raw(&store, format!("CALL#{}", record.id), "CALL").await;
    assert_eq!(number(&ended, "slot"), None);
}

#[tokio::test]
async fn parked_calls_leave_the_due_index_and_come_back_when_unparked() {
    let (store, _) = store().await;
    let c = campaign(3);
    let new = calls(3);
    store.create_campaign(&c, &new).await.unwrap();
    for call in &new[..2] {
        store.park(&call.id, Attempt::FIRST, T0).await.unwrap();
    }
    assert_eq!(due_calls(&all_due(&store, T0, 100).await).len(), 1);
    let again = store.park(&new[0].id, Attempt::FIRST, T0).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");

    let mut parked = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .parked_calls(&c.id, 1, cursor.as_deref())
            .await
            .unwrap();
        parked.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(parked.len(), 2, "{parked:?}");
    let later = T0.plus(Duration::from_secs(30));
    for call in &parked {
        store.unpark(call, later, later).await.unwrap();
    }
    let due = all_due(&store, later, 100).await;
    assert_eq!(due_calls(&due).len(), 3);
    let back = store.call(&new[0].id).await.unwrap();
    assert_eq!(back.due_at, Some(later), "due again no earlier than now");
}

#[tokio::test]
async fn a_waiting_call_is_cancelled_without_a_dial_but_a_live_one_is_not() {
    let (store, _) = store().await;
    let c = campaign(1);
    let new = calls(1);
    store.create_campaign(&c, &new).await.unwrap();
    store
        .cancel_waiting(
            &new[0].id,
            Attempt::FIRST,
            outdial_core::policy::Reason::CampaignCancelled,
            T0,
        )
        .await
        .unwrap();
    let cancelled = store.call(&new[0].id).await.unwrap();
    assert_eq!(cancelled.status, CallStatus::Cancelled);
    assert_eq!(
        cancelled.last_error.as_deref(),
        Some(outdial_core::policy::Reason::CampaignCancelled.describe())
    );
    assert_eq!(
        cancelled.reason,
        Some(outdial_core::policy::Reason::CampaignCancelled)
    );
    assert_eq!(cancelled.due_at, None);
    assert!(due_calls(&all_due(&store, T0, 100).await).is_empty());

    let live = dialing_call(&store).await;
    let refused = store
        .cancel_waiting(
            &live.id,
            Attempt::FIRST,
            outdial_core::policy::Reason::CampaignCancelled,
            T0,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
}

#[tokio::test]
async fn a_deferred_call_is_due_at_its_new_time_only() {
    let (store, _) = store().await;
    let c = campaign(1);
    let new = calls(1);
    store.create_campaign(&c, &new).await.unwrap();
    let opening = T0.plus(Duration::from_secs(3600));
    store
        .defer(
            &new[0].id,
            Attempt::FIRST,
            opening,
            outdial_core::policy::Reason::Window,
            T0,
        )
        .await
        .unwrap();
    assert!(due_calls(&all_due(&store, T0, 100).await).is_empty());
    let due = all_due(&store, opening, 100).await;
    assert_eq!(due_calls(&due)[0].due_at, Some(opening));
}

#[tokio::test]
async fn a_campaign_sweep_request_is_listed_as_due_and_cleared_once_unless_renewed() {
    let (store, _) = store().await;
    let c = campaign(0);
    store.create_campaign(&c, &[]).await.unwrap();
    let shard = outdial_adapters::item::shard_of_key(c.id.as_str(), store.shards());
    let request = |at: Timestamp| {
        let due_key = outdial_adapters::item::due_key(at, &CallId::parse(c.id.as_str()).unwrap());
        let store = store.clone();
        let id = c.id.clone();
        async move {
            store
                .client()
                .update_item()
                .table_name(store.table())
                .set_key(Some(outdial_adapters::item::key(
                    format!("CAMPAIGN#{id}"),
                    "META",
                )))
                .update_expression("SET due_shard = :s, due_key = :k, due_at = :a")
                .expression_attribute_values(
                    ":s",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("DUE#{shard}")),
                )
                .expression_attribute_values(
                    ":k",
                    aws_sdk_dynamodb::types::AttributeValue::S(due_key.clone()),
                )
                .expression_attribute_values(
                    ":a",
                    aws_sdk_dynamodb::types::AttributeValue::N(at.as_millis().to_string()),
                )
                .send()
                .await
                .unwrap();
            due_key
        }
    };
    let first = request(T0).await;
    let due = all_due(&store, T0, 100).await;
    assert_eq!(
        due,
        vec![Due::Campaign {
            id: c.id.clone(),
            due_key: first.clone()
        }]
    );
    let renewed = request(T0.plus(Duration::from_secs(1))).await;
    store.campaign_swept(&c.id, &first).await.unwrap();
    assert_eq!(
        all_due(&store, T0.plus(Duration::from_secs(1)), 100)
            .await
            .len(),
        1,
        "a newer request survives clearing the older one"
    );
    store.campaign_swept(&c.id, &renewed).await.unwrap();
    assert!(
        all_due(&store, T0.plus(Duration::from_secs(1)), 100)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn numbers_on_the_do_not_call_list_are_found_and_others_are_not() {
    let (store, _) = store().await;
    let listed = E164::parse("+15555550123").unwrap();
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(outdial_adapters::item::key(
            format!("DNC#{listed}"),
            "DNC",
        )))
        .send()
        .await
        .unwrap();
    assert!(store.do_not_call(&listed).await.unwrap());
    assert!(
        !store
            .do_not_call(&E164::parse("+15555550124").unwrap())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_opt_out_lists_the_number_with_its_event_once_and_keeps_a_first_entry() {
    use outdial_core::admin::ApiStore;
    use outdial_core::policy::{DncEntry, DncSource};
    let (store, _) = store().await;
    let record = dialing_call(&store).await;
    let placed = write_for(&record, 1, CallEvent::Placed, "{}");
    let Applied::Written(placed) = store.apply_event(&placed).await.unwrap() else {
        panic!("NEW_OUTBOUND_CALL must be written");
    };
    let Applied::Written(answered) = store
        .apply_event(&write_for(&placed, 2, CallEvent::Answered, "{}"))
        .await
        .unwrap()
    else {
        panic!("CALL_ANSWERED must be written");
    };
    assert_eq!(store.do_not_call_entry(&record.to).await.unwrap(), None);
    let entry = DncEntry {
        e164: record.to.clone(),
        added_at: T0,
        source: DncSource::OptOut {
            call_id: record.id.clone(),
        },
    };
    let mut pressed = write_for(&answered, 3, CallEvent::ScriptProgress, "{\"opted\":1}");
    pressed.script_outcome = Some("opted_out".into());
    pressed.opt_out = Some(entry.clone());
    let Applied::Written(after) = store.apply_event(&pressed).await.unwrap() else {
        panic!("the opt-out must be written");
    };
    assert_eq!(after.script_outcome.as_deref(), Some("opted_out"));
    assert_eq!(
        store.do_not_call_entry(&record.to).await.unwrap(),
        Some(entry.clone())
    );
    // The same event again: its stored answer, and the entry as it was.
    let mut again = pressed.clone();
    again.at = T0.plus(Duration::from_secs(5));
    if let Some(e) = again.opt_out.as_mut() {
        e.added_at = again.at;
    }
    assert_eq!(
        store.apply_event(&again).await.unwrap(),
        Applied::Duplicate {
            response: "{\"opted\":1}".into()
        }
    );
    assert_eq!(
        store.do_not_call_entry(&record.to).await.unwrap(),
        Some(entry)
    );
    // A number the API listed first keeps the API's entry when its callee opts out too.
    let other = E164::parse("+15555550177").unwrap();
    store.add_do_not_call(&other, T0).await.unwrap();
    let listed = store.do_not_call_entry(&other).await.unwrap().unwrap();
    assert_eq!(listed.source, DncSource::Api);
}

/// A do-not-call entry as a version before the digest wrote it: no bucket.
async fn old_entry(store: &DynamoStore, number: &E164) {
    let mut item = outdial_adapters::item::key(format!("DNC#{number}"), "DNC");
    item.extend([
        ("type".to_owned(), AttributeValue::S("dnc".into())),
        ("e164".to_owned(), AttributeValue::S(number.as_str().into())),
    ]);
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_do_not_call_digest_misses_no_number_any_writer_listed_and_old_entries_until_built() {
    use outdial_core::admin::ApiStore;
    use outdial_core::policy::{DncEntry, DncSource};
    use std::collections::HashSet;
    let (store, counter) = store().await;
    // The opt-out's callee, and 1,000 numbers beside it: far more than one lookup batch.
    let record = dialing_call(&store).await;
    let mut numbers: Vec<E164> = (0..1_000)
        .map(|i| E164::parse(&format!("+1202555{i:04}")).unwrap())
        .collect();
    numbers.push(record.to.clone());
    let found = |expected: &[&E164]| {
        let expected: HashSet<E164> = expected.iter().map(|n| (*n).clone()).collect();
        let numbers = numbers.clone();
        let store = &store;
        async move {
            assert_eq!(store.on_do_not_call(&numbers).await.unwrap(), expected);
        }
    };

    // Written before the digest: found by looking every number up, while it is not built.
    let old = &numbers[7];
    old_entry(&store, old).await;
    counter.reset();
    found(&[old]).await;
    assert!(
        counter.take() >= 11,
        "a digest read, then every number looked up"
    );
    assert_eq!(store.build_dnc_digest(T0).await.unwrap(), 1);
    counter.reset();
    found(&[old]).await;
    assert_eq!(
        counter.take(),
        2,
        "the digest, then the few numbers in its buckets"
    );

    // The API's writer.
    let api = &numbers[500];
    store.add_do_not_call(api, T0).await.unwrap();
    found(&[old, api]).await;

    // The opt-out key, in the event's own transaction.
    let placed = write_for(&record, 1, CallEvent::Placed, "{}");
    let Applied::Written(placed) = store.apply_event(&placed).await.unwrap() else {
        panic!("NEW_OUTBOUND_CALL must be written");
    };
    let Applied::Written(answered) = store
        .apply_event(&write_for(&placed, 2, CallEvent::Answered, "{}"))
        .await
        .unwrap()
    else {
        panic!("CALL_ANSWERED must be written");
    };
    let mut pressed = write_for(&answered, 3, CallEvent::ScriptProgress, "{}");
    pressed.opt_out = Some(DncEntry {
        e164: record.to.clone(),
        added_at: T0,
        source: DncSource::OptOut {
            call_id: record.id.clone(),
        },
    });
    counter.reset();
    assert!(matches!(
        store.apply_event(&pressed).await.unwrap(),
        Applied::Written(_)
    ));
    assert_eq!(
        counter.take(),
        2,
        "one transaction, and the record read back"
    );
    found(&[old, api, &record.to]).await;

    // A removed number is not found; its bucket stays set, so the others still are.
    store.remove_do_not_call(api).await.unwrap();
    found(&[old, &record.to]).await;

    // Building again changes nothing; a short list is looked up directly.
    assert_eq!(store.build_dnc_digest(T0).await.unwrap(), 2);
    found(&[old, &record.to]).await;
    assert_eq!(
        store
            .on_do_not_call(std::slice::from_ref(old))
            .await
            .unwrap(),
        HashSet::from([old.clone()])
    );

    // Each bucket sits in its part, a small number set.
    let part = raw(
        &store,
        outdial_adapters::dnc::part_pk(outdial_adapters::dnc::bucket(old)),
        outdial_adapters::dnc::DIGEST_SK,
    )
    .await;
    assert!(
        outdial_adapters::dnc::buckets_of(&part)
            .unwrap()
            .contains(&outdial_adapters::dnc::bucket(old))
    );
}

#[tokio::test]
async fn a_claim_from_a_pool_writes_the_numbers_usage_only_over_the_version_read() {
    use outdial_core::admin::ApiStore;
    use outdial_core::numbers::{Choice, Health, NumberSpec, choose};
    use outdial_core::ports::{ClaimWrites, NumberWrite};

    let (store, _) = store().await;
    let e164 = E164::parse("+12125550100").unwrap();
    let spec: NumberSpec =
        serde_json::from_str(r#"{"pool": "east", "caps": {"per_minute": 2}}"#).unwrap();
    let registered = spec.registration(e164.clone()).unwrap();
    ApiStore::put_number(&store, &registered).await.unwrap();
    let c = campaign(3);
    let new = calls(3);
    store.create_campaign(&c, &new).await.unwrap();

    // Choose, claim, as the dispatcher does.
    let claim_from_pool = |id: CallId, at: Timestamp| {
        let store = store.clone();
        async move {
            let pool = store.pool("east").await.unwrap();
            let waiting = store.call(&id).await.unwrap();
            let Choice::Number { index, usage } = choose(&pool, &waiting.to, true, at) else {
                return (Err(StoreError::AtCapacity), pool);
            };
            let writes = ClaimWrites {
                ledger: None,
                number: Some(NumberWrite {
                    number: pool[index].number.e164.clone(),
                    read: pool[index].usage.version,
                    usage,
                }),
            };
            (store.claim(&waiting, at, at, u32::MAX, &writes).await, pool)
        }
    };
    let (first, _) = claim_from_pool(new[0].id.clone(), T0).await;
    let first = first.unwrap();
    assert_eq!(first.from, e164);
    assert_eq!(store.call(&new[0].id).await.unwrap().from, e164);
    let pool = store.pool("east").await.unwrap();
    assert_eq!(pool[0].usage.version, 1);
    assert_eq!(pool[0].usage.recent, vec![T0.as_millis()]);
    assert!(store.pool("west").await.unwrap().is_empty());

    // A claim over a stale usage is contended, and writes nothing.
    let stale = ClaimWrites {
        ledger: None,
        number: Some(NumberWrite {
            number: e164.clone(),
            read: 0,
            usage: outdial_core::numbers::Usage::default().with_placement(T0),
        }),
    };
    let waiting = store.call(&new[1].id).await.unwrap();
    let contended = store.claim(&waiting, T0, T0, u32::MAX, &stale).await;
    assert!(
        matches!(contended, Err(StoreError::Contended)),
        "{contended:?}"
    );
    assert_eq!(
        store.call(&new[1].id).await.unwrap().status,
        CallStatus::Queued
    );

    // A number quarantined after it was read is not dialed from.
    let read = store.pool("east").await.unwrap();
    {
        use outdial_core::counters::CounterStore;
        let counters =
            outdial_adapters::counters::DynamoCounters::new(store.client().clone(), store.table());
        assert!(counters.quarantine(&e164, "answer rate", T0).await.unwrap());
    }
    // A registration written meanwhile leaves the quarantine standing.
    ApiStore::put_number(&store, &registered).await.unwrap();
    assert!(matches!(
        store.pool("east").await.unwrap()[0].number.health,
        Health::Quarantined { .. }
    ));
    let writes = ClaimWrites {
        ledger: None,
        number: Some(NumberWrite {
            number: e164.clone(),
            read: read[0].usage.version,
            usage: read[0].usage.with_placement(T0),
        }),
    };
    let refused = store.claim(&waiting, T0, T0, u32::MAX, &writes).await;
    assert!(matches!(refused, Err(StoreError::Contended)), "{refused:?}");
    // Restored, it is; its usage survived the registration's rewrite.
    ApiStore::restore_number(&store, &e164).await.unwrap();
    let (second, pool) = claim_from_pool(new[1].id.clone(), T0.plus(Duration::from_secs(1))).await;
    assert_eq!(pool[0].usage.version, 1);
    assert_eq!(second.unwrap().from, e164);
    // Full for the minute: the pool waits.
    let pool = store.pool("east").await.unwrap();
    assert_eq!(
        choose(&pool, &new[2].to, true, T0.plus(Duration::from_secs(2))),
        Choice::Full {
            until: T0.plus(Duration::from_secs(62))
        }
    );
    // Retired, it is gone from the pool.
    ApiStore::delete_number(&store, &e164).await.unwrap();
    assert!(store.pool("east").await.unwrap().is_empty());
    assert!(matches!(
        ApiStore::delete_number(&store, &e164).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        ApiStore::restore_number(&store, &e164).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_caller_ids_health_counts_once_per_shard_position_and_a_restore_starts_afresh() {
    use outdial_adapters::counters::DynamoCounters;
    use outdial_core::admin::ApiStore;
    use outdial_core::counters::{CounterStore, HealthWrite, Span, StreamPosition};
    use outdial_core::numbers::{HealthCounts, NumberSpec};

    let (store, _) = store().await;
    let counters = DynamoCounters::new(store.client().clone(), store.table());
    let e164 = E164::parse("+12125550100").unwrap();
    let span = |first: &str, last: &str| Span {
        shard: "shardId-1".into(),
        first: StreamPosition::parse(first).unwrap(),
        last: StreamPosition::parse(last).unwrap(),
        written_at: None,
    };
    let rejected = HealthCounts::of_attempt(false, None, Some(608));
    // Not registered: nothing is written.
    assert_eq!(
        counters
            .apply_number(&e164, &span("100", "101"), &rejected)
            .await
            .unwrap(),
        HealthWrite::Unregistered
    );
    let registered = serde_json::from_str::<NumberSpec>(r#"{"pool": "east"}"#)
        .unwrap()
        .registration(e164.clone())
        .unwrap();
    ApiStore::put_number(&store, &registered).await.unwrap();
    let applied = counters
        .apply_number(&e164, &span("100", "101"), &rejected)
        .await
        .unwrap();
    assert!(
        matches!(applied, HealthWrite::Applied { counts, healthy: true } if counts.rejected == 1)
    );
    // The same records again are behind the watermark.
    assert!(matches!(
        counters
            .apply_number(&e164, &span("100", "101"), &rejected)
            .await
            .unwrap(),
        HealthWrite::Behind { .. }
    ));
    assert!(
        counters
            .quarantine(&e164, "3 calls rejected", T0)
            .await
            .unwrap()
    );
    assert!(!counters.quarantine(&e164, "again", T0).await.unwrap());
    let member = &store.pool("east").await.unwrap()[0];
    assert_eq!(
        member.number.health,
        outdial_core::numbers::Health::Quarantined {
            reason: "3 calls rejected".into(),
            at: T0
        }
    );
    // A quarantined number is counted, and reported unhealthy.
    let applied = counters
        .apply_number(&e164, &span("102", "102"), &rejected)
        .await
        .unwrap();
    assert!(
        matches!(applied, HealthWrite::Applied { counts, healthy: false } if counts.rejected == 2)
    );
    // Registered again, it stays quarantined; restored, its counts start afresh.
    ApiStore::put_number(&store, &registered).await.unwrap();
    assert!(
        !store.pool("east").await.unwrap()[0]
            .number
            .health
            .is_healthy()
    );
    ApiStore::restore_number(&store, &registered.e164)
        .await
        .unwrap();
    assert!(
        store.pool("east").await.unwrap()[0]
            .number
            .health
            .is_healthy()
    );
    let applied = counters
        .apply_number(&e164, &span("103", "103"), &rejected)
        .await
        .unwrap();
    assert!(
        matches!(applied, HealthWrite::Applied { counts, healthy: true } if counts.rejected == 1)
    );
}

/// The account's campaigns, every page of them by `status` and `limit`, followed to the end,
/// with the cursor each page handed out.
async fn every_campaign_page(
    store: &impl outdial_core::admin::ApiStore,
    status: Option<CampaignStatus>,
    limit: u32,
) -> Vec<outdial_core::ports::Page<outdial_core::admin::ListedCampaign>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_campaigns(status, limit, cursor.as_deref())
            .await
            .unwrap();
        cursor.clone_from(&page.next);
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "the pages never end");
    }
}

#[tokio::test]
async fn the_list_of_campaigns_pages_alike_from_dynamodb_and_memory_within_its_read_budget() {
    use outdial_core::admin::{ApiStore, LIST_READ_MAX};
    use outdial_core::counters::CounterStore;

    let (dynamo, _) = store().await;
    let memory = MemoryStore::default();
    // 1,100 campaigns, newest first as listed: the k-th created at T0 - k seconds, but every
    // tenth shares the millisecond of the one before it (then the greater id comes first).
    // Three are paused, 0, 600 and 1,050 places from the newest; every seventh is active;
    // the rest completed.
    let n: usize = 1100;
    let mut made: Vec<Campaign> = Vec::new();
    for k in 0..n {
        let mut c = campaign(0);
        let step = i64::try_from(k - k / 10).unwrap();
        c.created_at = Timestamp::from_millis(T0.as_millis() - step * 1000);
        c.status = match k {
            0 | 600 | 1050 => CampaignStatus::Paused,
            k if k % 7 == 0 => CampaignStatus::Active,
            _ => CampaignStatus::Completed,
        };
        made.push(c);
    }
    for chunk in made.chunks(25) {
        let requests = chunk
            .iter()
            .map(|c| {
                let put = aws_sdk_dynamodb::types::PutRequest::builder()
                    .set_item(Some(outdial_adapters::item::campaign_item(c).unwrap()))
                    .build()
                    .unwrap();
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .put_request(put)
                    .build()
            })
            .collect();
        let out = dynamo
            .client()
            .batch_write_item()
            .request_items(dynamo.table(), requests)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items.unwrap_or_default().is_empty());
    }
    for c in &made {
        memory.insert_campaign(c.clone());
    }
    // Two more, written with calls, so that their counters count contacts; one completed.
    for contacts in [2, 3] {
        let mut c = campaign(contacts);
        c.created_at = T0.plus(Duration::from_secs(contacts));
        let calls = calls(usize::try_from(contacts).unwrap());
        dynamo.create_campaign(&c, &calls).await.unwrap();
        ApiStore::create_campaign(&memory, &c, &calls)
            .await
            .unwrap();
        made.push(c);
    }
    let finished = made.last().unwrap().id.clone();
    let at = T0.plus(Duration::from_secs(60));
    let counters =
        outdial_adapters::counters::DynamoCounters::new(dynamo.client().clone(), dynamo.table());
    assert!(counters.complete_campaign(&finished, at).await.unwrap());
    assert!(memory.complete_campaign(&finished, at).await.unwrap());

    let mut newest_first = made.clone();
    newest_first.sort_by(|a, b| (b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str())));
    // Each case pages through all 1,100 on DynamoDB Local: a few are enough (an odd page
    // size, a sparse status past the budget, a common one, one no campaign is in).
    for (status, limit) in [
        (None, 37),
        (Some(CampaignStatus::Paused), 2),
        (Some(CampaignStatus::Active), 100),
        (Some(CampaignStatus::Cancelled), 10),
    ] {
        let from_dynamo = every_campaign_page(&dynamo, status, limit).await;
        let from_memory = every_campaign_page(&memory, status, limit).await;
        assert_eq!(from_dynamo, from_memory, "{status:?} {limit}");
        // Together the pages are every campaign in the status, newest first, once each.
        let listed: Vec<&CampaignId> = from_dynamo
            .iter()
            .flat_map(|p| p.items.iter().map(|l| &l.overview.campaign.id))
            .collect();
        let expected: Vec<&CampaignId> = newest_first
            .iter()
            .filter(|c| {
                let now = if c.id == finished {
                    CampaignStatus::Completed
                } else {
                    c.status
                };
                status.is_none_or(|st| st == now)
            })
            .map(|c| &c.id)
            .collect();
        assert_eq!(listed, expected, "{status:?} {limit}");
        assert!(from_dynamo.iter().all(|p| p.items.len() <= limit as usize));
    }

    // The paused ones lie 0, 602 and 1,052 places from the newest (two newer campaigns came
    // since): the first page reads its budget and stops short, at the last campaign it read.
    let paused = every_campaign_page(&dynamo, Some(CampaignStatus::Paused), 2).await;
    let sizes: Vec<usize> = paused.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [2, 1]);
    let budget_end = &newest_first[LIST_READ_MAX as usize - 1];
    assert_eq!(
        paused[0].next,
        Some(outdial_adapters::item::listed_key(
            budget_end.created_at,
            &budget_end.id
        ))
    );
    // Counters and completion come with each campaign.
    let newest = &every_campaign_page(&dynamo, None, 2).await[0].items;
    assert_eq!(newest[0].overview.campaign.id, finished);
    assert_eq!(newest[0].overview.counters.contacts, 3);
    assert_eq!(newest[0].completed_at, Some(at));
    assert_eq!(newest[1].overview.counters.contacts, 2);
    assert_eq!(newest[1].completed_at, None);

    // A cursor is any campaign's position; anything else is refused by both.
    for bad in ["garbage", "01900000000000.cmp_1", "1900000000000#cmp_1", ""] {
        for err in [
            dynamo.list_campaigns(None, 10, Some(bad)).await.err(),
            memory.list_campaigns(None, 10, Some(bad)).await.err(),
        ] {
            assert!(
                matches!(err, Some(StoreError::Corrupt { .. })),
                "{bad:?}: {err:?}"
            );
        }
    }
    let unknown = outdial_adapters::item::listed_key(T0, &CampaignId::random());
    assert_eq!(
        dynamo
            .list_campaigns(None, 1000, Some(&unknown))
            .await
            .unwrap(),
        memory
            .list_campaigns(None, 1000, Some(&unknown))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_table_kept_from_before_an_index_existed_gains_it_with_the_items_it_holds() {
    use outdial_adapters::table::TableDef;

    let endpoint = shared_endpoint().expect("DynamoDB Local");
    let (client, _) = counting_client(&endpoint);
    let full = TableDef::load().unwrap();
    let mut older = full.clone();
    older
        .global_secondary_indexes
        .retain(|i| i.name != outdial_adapters::item::CAMPAIGNS);
    let name = format!("older-{}", uuid::Uuid::new_v4().simple());
    older.create(&client, &name).await.unwrap();
    let store = DynamoStore::new(client.clone(), name.clone(), 4);
    let c = campaign(2);
    store.create_campaign(&c, &calls(2)).await.unwrap();
    assert!(store.list_campaigns(None, 10, None).await.is_err());

    assert_eq!(
        full.add_missing_indexes(&client, &name).await.unwrap(),
        vec![outdial_adapters::item::CAMPAIGNS.to_owned()]
    );
    let page = store.list_campaigns(None, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].overview.campaign, c);
    assert_eq!(page.items[0].overview.counters.contacts, 2);
    assert!(
        full.add_missing_indexes(&client, &name)
            .await
            .unwrap()
            .is_empty()
    );
}
