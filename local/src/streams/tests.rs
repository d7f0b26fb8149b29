#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::event::{base64, seq_of};
use super::poller::{Delivery, finished};
use super::*;
use crate::dynamodb::shared_endpoint;
use crate::tables::{client, fresh_table};
use futures::FutureExt;

fn record(seq: &str) -> Value {
    json!({"dynamodb": {"SequenceNumber": seq}})
}

#[test]
fn an_answer_finishes_the_records_before_the_earliest_failure() {
    let batch: Vec<Value> = ["1", "2", "3", "4"].into_iter().map(record).collect();
    let done = |answer: Value| match finished(&answer, &batch) {
        Delivery::Finished(n) => Some(n),
        Delivery::Failed => None,
    };
    assert_eq!(done(json!({"batchItemFailures": []})), Some(4));
    assert_eq!(done(json!(null)), Some(4));
    assert_eq!(
        done(json!({"batchItemFailures": [{"itemIdentifier": "4"}, {"itemIdentifier": "3"}]})),
        Some(2)
    );
    assert_eq!(
        done(json!({"batchItemFailures": [{"itemIdentifier": "9"}]})),
        None
    );
    assert_eq!(done(json!({"batchItemFailures": [{}]})), None);
}

#[test]
fn binary_attributes_are_standard_base64() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

async fn table_with_items(n: usize) -> (String, String) {
    let endpoint = shared_endpoint().unwrap();
    let ddb = client(&endpoint);
    let table = fresh_table(&ddb, "streams").await.unwrap();
    put_items(&ddb, &table, 0..n).await;
    (endpoint, table)
}

async fn put_items(ddb: &aws_sdk_dynamodb::Client, table: &str, items: std::ops::Range<usize>) {
    for i in items {
        ddb.put_item()
            .table_name(table)
            .item(
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{i:04}")),
            )
            .item("SK", aws_sdk_dynamodb::types::AttributeValue::S("T".into()))
            .send()
            .await
            .unwrap();
    }
}

/// A consumer that records every event's sequence numbers and answers with `answer`.
fn recording(
    answer: impl Fn(&[String]) -> Result<Value, String> + Send + Sync + 'static,
) -> (Consumer, Arc<Mutex<Vec<Vec<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let answer = Arc::new(answer);
    let consumer: Consumer = Arc::new(move |event: Value| {
        let seqs: Vec<String> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned())
            .collect();
        assert!(event["shardId"].as_str().is_some_and(|s| !s.is_empty()));
        log.lock().unwrap().push(seqs.clone());
        let answer = Arc::clone(&answer);
        async move { answer(&seqs) }.boxed()
    });
    (consumer, seen)
}

fn fast() -> PollerSettings {
    PollerSettings {
        poll_interval: Duration::from_millis(50),
        retry_delay: Duration::from_millis(5),
        max_retry_delay: Duration::from_millis(20),
        ..PollerSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_delivered_once_in_order_in_batches_of_at_most_100() {
    let (endpoint, table) = table_with_items(250).await;
    let (consumer, seen) = recording(|_| Ok(json!({"batchItemFailures": []})));
    let poller = StreamPoller::start(&endpoint, &table, consumer, fast())
        .await
        .unwrap();
    poller
        .wait_caught_up(Duration::from_secs(30))
        .await
        .unwrap();
    let batches = seen.lock().unwrap().clone();
    assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 100));
    let all: Vec<String> = batches.concat();
    assert_eq!(all.len(), 250);
    let stream = read_stream(&endpoint, &table).await.unwrap();
    let expected: Vec<String> = stream
        .iter()
        .flat_map(|s| s.records.iter().map(|r| seq_of(Some(r)).unwrap()))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(poller.stats().delivered, 250);
    poller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_failure_is_delivered_again_from_that_record() {
    let (endpoint, table) = table_with_items(10).await;
    let failed_once = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&failed_once);
    let (consumer, seen) = recording(move |seqs| {
        let mut failed = flag.lock().unwrap();
        if !*failed && seqs.len() > 5 {
            *failed = true;
            return Ok(json!({"batchItemFailures": [{"itemIdentifier": seqs[5]}]}));
        }
        Ok(json!({"batchItemFailures": []}))
    });
    let poller = StreamPoller::start(&endpoint, &table, consumer, fast())
        .await
        .unwrap();
    poller
        .wait_caught_up(Duration::from_secs(30))
        .await
        .unwrap();
    let batches = seen.lock().unwrap().clone();
    assert_eq!(batches[0].len(), 10);
    assert_eq!(batches[1], batches[0][5..].to_vec());
    let stats = poller.stats();
    assert_eq!((stats.delivered, stats.partial_failures), (10, 1));
    poller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_invocation_is_bisected_and_a_poison_record_discarded_after_its_retries() {
    let (endpoint, table) = table_with_items(8).await;
    let stream = read_stream(&endpoint, &table).await.unwrap();
    let poison = seq_of(stream[0].records.get(5)).unwrap();
    let bad = poison.clone();
    let (consumer, seen) = recording(move |seqs| {
        if seqs.contains(&bad) {
            Err("handler crashed".to_owned())
        } else {
            Ok(json!({"batchItemFailures": []}))
        }
    });
    let settings = PollerSettings {
        max_retries: 2,
        ..fast()
    };
    let poller = StreamPoller::start(&endpoint, &table, consumer, settings)
        .await
        .unwrap();
    poller
        .wait_caught_up(Duration::from_secs(30))
        .await
        .unwrap();
    let batches = seen.lock().unwrap().clone();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    // 8 fails; halves of 4: the first passes, the second fails and splits into 2 and 2;
    // [4,5] fails and splits; [4] passes, [5] fails three times and is discarded; [6,7].
    assert_eq!(sizes, vec![8, 4, 4, 2, 1, 1, 1, 1, 2]);
    let delivered: Vec<String> = batches
        .iter()
        .filter(|b| !b.contains(&poison))
        .flat_map(|b| b.iter().cloned())
        .collect();
    assert_eq!(delivered.len(), 7);
    let stats = poller.stats();
    assert_eq!((stats.delivered, stats.discarded), (7, 1));
    assert_eq!(stats.bisections, 3);
    poller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_resumes_after_its_database_is_killed_and_restarted() {
    use crate::dynamodb::{DynamoDbLocal, Storage};
    let dir = std::env::temp_dir().join(format!("outdial-poller-{}", uuid::Uuid::new_v4()));
    let storage = Storage::Dir(dir.clone());
    let db = Arc::new(
        tokio::task::spawn_blocking(move || DynamoDbLocal::start(&storage))
            .await
            .unwrap()
            .unwrap(),
    );
    let endpoint = db.endpoint().to_owned();
    let ddb = client(&endpoint);
    let table = fresh_table(&ddb, "restart").await.unwrap();
    put_items(&ddb, &table, 0..10).await;
    let (consumer, seen) = recording(|_| Ok(json!({"batchItemFailures": []})));
    let poller = StreamPoller::start(&endpoint, &table, consumer, fast())
        .await
        .unwrap();
    poller
        .wait_caught_up(Duration::from_secs(30))
        .await
        .unwrap();

    // Killed as a crash would, down for a while, then started again on its folder.
    let control = Arc::clone(&db);
    tokio::task::spawn_blocking(move || {
        control.kill()?;
        std::thread::sleep(Duration::from_millis(500));
        control.restart()
    })
    .await
    .unwrap()
    .unwrap();
    put_items(&ddb, &table, 10..20).await;
    poller
        .wait_caught_up(Duration::from_secs(60))
        .await
        .unwrap();

    // Every record, in order, each delivered once (the buffer and the position survived).
    let delivered: Vec<String> = seen.lock().unwrap().concat();
    let stream = read_stream(&endpoint, &table).await.unwrap();
    let expected: Vec<String> = stream
        .iter()
        .flat_map(|s| s.records.iter().map(|r| seq_of(Some(r)).unwrap()))
        .collect();
    assert_eq!(expected.len(), 20);
    assert_eq!(delivered, expected);
    assert_eq!(poller.stats().delivered, 20);
    poller.stop().await;
    db.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
