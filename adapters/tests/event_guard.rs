//! The guard of an SMA event's write, as DynamoDB applies it: against the official DynamoDB
//! Local, an update carrying `Condition::event(write)` is applied to exactly the records
//! `EventWrite::admits` admits, for records of the event's campaign and another, in statuses
//! waiting, live and ended, in attempts before and at the event's, with the last event, the
//! recorded placing and the transaction of either attempt or none. Forged events (another
//! campaign, another transaction, a call not claimed for the attempt) must be refused by the
//! write itself, not only by the handler.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use outdial_adapters::condition::Condition;
use outdial_adapters::item::{
    CALL_SK, Item, NO_END_REQUEST, call_from_item, call_pk, key, n, s, status_call,
};
use outdial_core::ids::{Attempt, CallId, CampaignId, Sequence, TransactionId};
use outdial_core::lifecycle::{CallState, CallStatus, Expected};
use outdial_core::ports::{DueChange, EventWrite};
use outdial_core::time::Timestamp;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{client, fresh_table};

const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);
const OURS: &str = "7f9a2d3e-0000-4000-8000-00000000000a";
const THEIRS: &str = "7f9a2d3e-0000-4000-8000-00000000000b";

/// One call record's shape: what the event's guard reads.
#[derive(Debug, Clone, Copy)]
struct Shape {
    own_campaign: bool,
    status: CallStatus,
    attempt: u32,
    /// The attempt of the last event applied, numbered 2.
    event: Option<u32>,
    /// The attempt whose placing was recorded.
    placed: Option<u32>,
    /// The transaction the record holds: the event's, another, or none.
    transaction: Option<&'static str>,
}

fn item(campaign: &CampaignId, other: &CampaignId, shape: Shape) -> Item {
    let id = CallId::random();
    let mut item = key(call_pk(&id), CALL_SK);
    let campaign = if shape.own_campaign { campaign } else { other };
    let attributes = [
        ("type", s("call")),
        ("call_id", s(id.as_str())),
        ("campaign_id", s(campaign.as_str())),
        ("to", s("+15555550100")),
        ("from", s("+15555550199")),
        ("status", s(shape.status.as_str())),
        ("status_call", s(status_call(shape.status, &id))),
        ("attempt", n(shape.attempt)),
        ("answered", AttributeValue::Bool(false)),
        ("end_req", s(NO_END_REQUEST)),
        ("created_at", n(T0.as_millis())),
        ("updated_at", n(T0.as_millis())),
    ];
    item.extend(attributes.map(|(k, v)| (k.to_owned(), v)));
    if let Some(event) = shape.event {
        item.insert("seq_attempt".to_owned(), n(event));
        item.insert("last_seq".to_owned(), n(2));
        item.insert("last_type".to_owned(), s("RINGING"));
        item.insert("last_response".to_owned(), s("{}"));
    }
    if let Some(placed) = shape.placed {
        item.insert("placed_attempt".to_owned(), n(placed));
    }
    if let Some(txn) = shape.transaction {
        item.insert("transaction_id".to_owned(), s(txn));
    }
    item
}

fn shapes() -> Vec<Shape> {
    let mut all = Vec::new();
    for own_campaign in [true, false] {
        for status in [
            CallStatus::Queued,
            CallStatus::Dialing,
            CallStatus::Ringing,
            CallStatus::Answered,
            CallStatus::RetryWait,
            CallStatus::Completed,
        ] {
            for attempt in 1..=2 {
                for event in [None, Some(1), Some(2)] {
                    for placed in [None, Some(1), Some(2)] {
                        for transaction in [None, Some(OURS), Some(THEIRS)] {
                            if event.is_some_and(|e| e > attempt)
                                || placed.is_some_and(|p| p > attempt)
                            {
                                continue;
                            }
                            all.push(Shape {
                                own_campaign,
                                status,
                                attempt,
                                event,
                                placed,
                                transaction,
                            });
                        }
                    }
                }
            }
        }
    }
    all
}

/// The write of event `seq` of attempt 2 of transaction [`OURS`], decided from `statuses`.
fn write(campaign: &CampaignId, seq: u64, statuses: Vec<CallStatus>) -> EventWrite {
    let attempt = Attempt::FIRST.next();
    EventWrite {
        call_id: CallId::random(),
        campaign_id: campaign.clone(),
        attempt,
        seq: Sequence::new(seq),
        event_type: "CALL_ANSWERED".into(),
        expected: Expected {
            statuses,
            answered: false,
            end_request: None,
        },
        next: CallState {
            status: CallStatus::Answered,
            attempt,
            last_seq: Some(Sequence::new(seq)),
            answered: true,
            end_request: None,
        },
        transaction_id: TransactionId::parse(OURS).unwrap(),
        outcome: None,
        sip_code: None,
        script_outcome: None,
        digits: None,
        error: None,
        due: DueChange::Keep,
        response: "{}".into(),
        at: T0,
        opt_out: None,
        detection: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_events_write_applies_to_exactly_the_records_its_guard_admits() {
    let endpoint = shared_endpoint().expect("DynamoDB Local");
    let ddb = client(&endpoint);
    let table = fresh_table(&ddb, "eventguard").await.expect("table");
    let (campaign, other) = (CampaignId::random(), CampaignId::random());
    let items: Vec<Item> = shapes()
        .into_iter()
        .map(|shape| item(&campaign, &other, shape))
        .collect();
    support::put_all(&ddb, &table, &items).await;
    // Every status (the unclaimed ones too, as an older handler might have asked), and the
    // live ones only; a `Sequence` below, at and above the records' last one.
    let writes: Vec<EventWrite> = [1, 2, 3]
        .into_iter()
        .flat_map(|seq| {
            [
                write(&campaign, seq, CallStatus::ALL.to_vec()),
                write(
                    &campaign,
                    seq,
                    vec![CallStatus::Dialing, CallStatus::Ringing],
                ),
            ]
        })
        .collect();
    let cases: Vec<(&Item, &EventWrite)> = items
        .iter()
        .flat_map(|item| writes.iter().map(move |w| (item, w)))
        .collect();
    let outcomes: Vec<(&Item, &EventWrite, bool)> = futures::stream::iter(cases)
        .map(|(item, w)| {
            let (ddb, table) = (&ddb, &table);
            async move {
                (
                    item,
                    w,
                    support::applies(ddb, table, item, Condition::event(w), &format!("{w:?}"))
                        .await,
                )
            }
        })
        .buffer_unordered(support::IN_FLIGHT)
        .collect()
        .await;

    let mut disagreements = Vec::new();
    let mut admitted_some = false;
    let mut refused_own_call = false;
    for (item, w, applied) in &outcomes {
        let record = call_from_item(item).unwrap();
        let admitted = w.admits(&record);
        admitted_some |= admitted;
        refused_own_call |= !admitted && record.campaign_id == campaign;
        if admitted != *applied {
            disagreements.push(format!(
                "seq {} statuses {:?} on {record:?}: admits {admitted}, DynamoDB applied {applied}",
                w.seq.get(),
                w.expected.statuses,
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree, first ones:\n{}",
        disagreements.len(),
        outcomes.len(),
        disagreements[..disagreements.len().min(10)].join("\n")
    );
    assert!(admitted_some && refused_own_call, "not vacuous");
    // Nothing of another campaign, another known transaction or an unclaimed attempt is
    // ever written.
    for (item, _, applied) in &outcomes {
        let record = call_from_item(item).unwrap();
        if record.campaign_id != campaign
            || record.status.phase() == 0
            || record
                .transaction_of(record.attempt)
                .is_some_and(|t| t.as_str() != OURS)
        {
            assert!(!applied, "{record:?}");
        }
    }
}
