//! The store writes the dispatcher's guards as conditions, and DynamoDB must read them as
//! core does: against the official DynamoDB Local, a conditional update carrying
//! `Condition::from(guard)` is applied to exactly the records `Guard::admits` admits, for
//! every status, attempts before, at and after the guard's, listed and parked, with and
//! without an SMA event or a placing recorded in an attempt before, at or after the guard's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use outdial_adapters::condition::Condition;
use outdial_adapters::item::{
    CALL_SK, Item, NO_END_REQUEST, call_from_item, call_pk, due_key, due_shard, key, n, s,
    status_call,
};
use outdial_core::dispatch::{Guard, InIndex};
use outdial_core::ids::{Attempt, CallId, CampaignId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::time::Timestamp;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{client, fresh_table};

const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);

/// A call item as the store leaves it: in `status` as `attempt`, in the `due` index if
/// `listed`, with the last SMA event applied in attempt `event` and the Voice API's placing
/// recorded for attempt `placed`, when they are given.
fn record(
    campaign: &CampaignId,
    status: CallStatus,
    attempt: u32,
    listed: bool,
    event: Option<u32>,
    placed: Option<u32>,
) -> Item {
    let id = CallId::random();
    let mut item = key(call_pk(&id), CALL_SK);
    let attributes = [
        ("type", s("call")),
        ("call_id", s(id.as_str())),
        ("campaign_id", s(campaign.as_str())),
        ("to", s("+15555550100")),
        ("from", s("+15555550199")),
        ("status", s(status.as_str())),
        ("status_call", s(status_call(status, &id))),
        ("attempt", n(attempt)),
        ("answered", AttributeValue::Bool(false)),
        ("end_req", s(NO_END_REQUEST)),
        ("due_at", n(T0.as_millis())),
        ("created_at", n(T0.as_millis())),
        ("updated_at", n(T0.as_millis())),
    ];
    item.extend(attributes.map(|(k, v)| (k.to_owned(), v)));
    if listed {
        item.insert("due_shard".to_owned(), s(due_shard(0)));
        item.insert("due_key".to_owned(), s(due_key(T0, &id)));
    }
    if let Some(event) = event {
        item.insert("seq_attempt".to_owned(), n(event));
        item.insert("last_seq".to_owned(), n(3));
        item.insert("last_type".to_owned(), s("CALL_ANSWERED"));
        item.insert("last_response".to_owned(), s("{}"));
    }
    if let Some(placed) = placed {
        item.insert("placed_attempt".to_owned(), n(placed));
        item.insert(
            "transaction_id".to_owned(),
            s("7f9a2d3e-0000-4000-8000-000000000001"),
        );
    }
    item
}

/// Every combination of status, attempt (1 to 3), place in the `due` index, and attempts of
/// the last SMA event and of the recorded placing: each none, 1 or 2, and one of them 3.
fn records(campaign: &CampaignId) -> Vec<Item> {
    let some = [None, Some(1), Some(2)];
    let mut placings: Vec<(Option<u32>, Option<u32>)> = some
        .iter()
        .flat_map(|event| some.iter().map(move |placed| (*event, *placed)))
        .collect();
    placings.extend([(Some(3), None), (None, Some(3))]);
    let mut all = Vec::new();
    for status in CallStatus::ALL {
        for attempt in 1..=3 {
            for listed in [true, false] {
                for (event, placed) in &placings {
                    all.push(record(campaign, status, attempt, listed, *event, *placed));
                }
            }
        }
    }
    all
}

/// The three kinds of guard, each anywhere, listed and parked, for attempt 2 (the records'
/// attempts and placings fall before, at and after it).
fn guards() -> Vec<Guard> {
    let attempt = Attempt::FIRST.next();
    let mut all = Vec::new();
    for guard in [
        Guard::waiting(attempt),
        Guard::live(attempt),
        Guard::unplaced(attempt),
    ] {
        for index in [InIndex::Any, InIndex::Listed, InIndex::Parked] {
            all.push(guard.in_index(index));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guarded_update_applies_to_exactly_the_records_its_guard_admits() {
    let endpoint = shared_endpoint().expect("DynamoDB Local");
    let ddb = client(&endpoint);
    let table = fresh_table(&ddb, "guards").await.expect("table");
    let records = records(&CampaignId::random());
    support::put_all(&ddb, &table, &records).await;

    let guards = guards();
    let cases: Vec<(&Item, Guard)> = records
        .iter()
        .flat_map(|item| guards.iter().map(move |guard| (item, *guard)))
        .collect();
    let outcomes: Vec<(&Item, Guard, bool)> = futures::stream::iter(cases)
        .map(|(item, guard)| {
            let (ddb, table) = (&ddb, &table);
            async move {
                (
                    item,
                    guard,
                    support::applies(
                        ddb,
                        table,
                        item,
                        Condition::from(guard),
                        &format!("{guard:?}"),
                    )
                    .await,
                )
            }
        })
        .buffer_unordered(support::IN_FLIGHT)
        .collect()
        .await;

    let mut disagreements = Vec::new();
    for (item, guard, applied) in &outcomes {
        let record = call_from_item(item).unwrap();
        let admitted = guard.admits(&record, item.contains_key("due_shard"));
        if admitted != *applied {
            disagreements.push(format!(
                "{guard:?} on {:?} attempt {} listed {} event {:?} placed {:?}: \
                 admits {admitted}, DynamoDB applied {applied}",
                record.status,
                record.attempt.get(),
                item.contains_key("due_shard"),
                record.last_event.as_ref().map(|e| e.attempt.get()),
                record.placed_attempt.map(Attempt::get),
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree, first ones:\n{}",
        disagreements.len(),
        outcomes.len(),
        disagreements[..disagreements.len().min(20)].join("\n")
    );
    // Not vacuous: every guard both admits and refuses some of the records.
    for guard in &guards {
        let applied = outcomes
            .iter()
            .filter(|(_, g, applied)| g == guard && *applied)
            .count();
        assert!(
            0 < applied && applied < records.len(),
            "{guard:?} applied to {applied} of {} records",
            records.len()
        );
    }
}
