#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use outdial_core::time::ManualClock;

/// Counters in memory, with the watermark rule of the DynamoDB store, counting requests.
#[derive(Debug, Default)]
struct Memory {
    counters: Mutex<HashMap<(CampaignId, String), StreamPosition>>,
    totals: Mutex<HashMap<CampaignId, CampaignCounters>>,
    history: Mutex<Vec<HistoryItem>>,
    requests: AtomicUsize,
    /// While set, a counters update never answers (a store that hangs).
    stalled: std::sync::atomic::AtomicBool,
    /// Caller IDs registered: whether each is healthy, its counts and watermarks.
    numbers: Mutex<HashMap<E164, NumberRow>>,
    /// Whether the (one) campaign's completion was announced.
    announced: std::sync::atomic::AtomicBool,
}

/// A caller ID in [`Memory`]: healthy or not, its counts, its watermark per shard.
type NumberRow = (bool, HealthCounts, HashMap<String, StreamPosition>);

impl CounterStore for Memory {
    async fn apply(
        &self,
        campaign: &CampaignId,
        span: &Span,
        delta: &CampaignCounters,
    ) -> Result<CounterWrite, StoreError> {
        let (shard, first, last) = (&span.shard, &span.first, &span.last);
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut marks = self.counters.lock().unwrap();
        let mut totals = self.totals.lock().unwrap();
        let total = totals.entry(campaign.clone()).or_default();
        let mark = marks.entry((campaign.clone(), shard.clone()));
        if let std::collections::hash_map::Entry::Occupied(m) = &mark {
            if m.get() >= first {
                return Ok(CounterWrite::Behind {
                    watermark: m.get().clone(),
                    counters: total.clone(),
                });
            }
        }
        *total += delta;
        mark.insert_entry(last.clone());
        Ok(CounterWrite::Applied(total.clone()))
    }

    async fn apply_number(
        &self,
        number: &E164,
        span: &Span,
        delta: &HealthCounts,
    ) -> Result<HealthWrite, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut numbers = self.numbers.lock().unwrap();
        let Some((healthy, counts, marks)) = numbers.get_mut(number) else {
            return Ok(HealthWrite::Unregistered);
        };
        if let Some(mark) = marks.get(&span.shard) {
            if mark >= &span.first {
                return Ok(HealthWrite::Behind {
                    watermark: mark.clone(),
                });
            }
        }
        *counts += delta;
        marks.insert(span.shard.clone(), span.last.clone());
        Ok(HealthWrite::Applied {
            counts: *counts,
            healthy: *healthy,
        })
    }

    async fn quarantine(&self, number: &E164, _: &str, _: Timestamp) -> Result<bool, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut numbers = self.numbers.lock().unwrap();
        match numbers.get_mut(number) {
            Some((healthy, ..)) if *healthy => {
                *healthy = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn complete_campaign(&self, _: &CampaignId, _: Timestamp) -> Result<bool, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    async fn record_history(&self, items: &[HistoryItem]) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.history.lock().unwrap().extend_from_slice(items);
        Ok(())
    }

    async fn watermark(
        &self,
        campaign: &CampaignId,
        shard: &str,
    ) -> Result<Option<StreamPosition>, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let marks = self.counters.lock().unwrap();
        Ok(marks.get(&(campaign.clone(), shard.to_owned())).cloned())
    }

    async fn completion(
        &self,
        _: &CampaignId,
    ) -> Result<Option<outdial_core::counters::Completion>, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Ok(Some(outdial_core::counters::Completion {
            completed_at: Timestamp::from_millis(1_000),
            announced: self.announced.load(Ordering::SeqCst),
        }))
    }

    async fn mark_announced(&self, _: &CampaignId, _: Timestamp) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.announced.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn handler() -> StreamHandler<Memory> {
    StreamHandler::new(
        Memory::default(),
        Arc::new(ManualClock::at(Timestamp::from_millis(1_000))),
    )
}

fn image(status: &str, seq: Option<u64>) -> Value {
    let mut image = json!({
        "PK": {"S": "CALL#call_1"}, "SK": {"S": "CALL"}, "type": {"S": "call"},
        "call_id": {"S": "call_1"}, "campaign_id": {"S": "cmp_1"},
        "status": {"S": status}, "attempt": {"N": "1"}, "answered": {"BOOL": false},
        "updated_at": {"N": "1000"}, "expires_at": {"N": "99"},
    });
    if let Some(seq) = seq {
        image["seq_attempt"] = json!({"N": "1"});
        image["last_seq"] = json!({"N": seq.to_string()});
        image["last_type"] = json!({"S": "RINGING"});
    }
    image
}

fn record(
    seq: &str,
    name: &str,
    keys: (&str, &str),
    old: Option<Value>,
    new: Option<Value>,
) -> Value {
    let mut change = json!({
        "Keys": {"PK": {"S": keys.0}, "SK": {"S": keys.1}},
        "SequenceNumber": seq, "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": 1_700_000_000,
    });
    if let Some(old) = old {
        change["OldImage"] = old;
    }
    if let Some(new) = new {
        change["NewImage"] = new;
    }
    json!({
        "eventID": format!("e{seq}"), "eventName": name, "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": change,
    })
}

fn call(seq: &str, old: (&str, Option<u64>), new: (&str, Option<u64>)) -> Value {
    record(
        seq,
        "MODIFY",
        ("CALL#call_1", "CALL"),
        Some(image(old.0, old.1)),
        Some(image(new.0, new.1)),
    )
}

fn batch(records: Vec<Value>) -> Value {
    json!({"Records": records, "shardId": "shardId-0001", "state": {},
           "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:15:00Z"},
           "isFinalInvokeForWindow": false, "isWindowTerminatedEarly": false})
}

#[tokio::test]
async fn records_of_other_items_are_skipped_without_a_request() {
    let h = handler();
    let others = vec![
        record(
            "101",
            "INSERT",
            ("CAMPAIGN#cmp_1", "META"),
            None,
            Some(json!({"x": {"S": "y"}})),
        ),
        record(
            "102",
            "MODIFY",
            ("CAMPAIGN#cmp_1", "COUNTERS"),
            Some(json!({})),
            Some(json!({})),
        ),
        record(
            "103",
            "INSERT",
            ("CALL#call_1", "EVT#001#0000000001"),
            None,
            Some(json!({})),
        ),
        record(
            "104",
            "MODIFY",
            ("LEASE#0", "LEASE"),
            Some(json!({})),
            Some(json!({})),
        ),
        record(
            "105",
            "INSERT",
            ("IDEM#k", "IDEM"),
            None,
            Some(json!({"bad": "not an attribute"})),
        ),
    ];
    let handled = h.handle(batch(others)).await.unwrap();
    assert_eq!(h.store.requests.load(Ordering::SeqCst), 0);
    assert_eq!((handled.skipped, handled.calls), (5, 0));
    assert_eq!(handled.failure(), None);
}

#[tokio::test]
async fn an_unreadable_call_image_is_reported_and_only_the_records_before_it_count() {
    let h = handler();
    let mut broken = call("203", ("RINGING", Some(2)), ("ANSWERED", Some(3)));
    broken["dynamodb"]["NewImage"]["status"] = json!({"S": "WHATEVER"});
    let handled = h
        .handle(batch(vec![
            call("201", ("DIALING", None), ("DIALING", Some(1))),
            call("202", ("DIALING", Some(1)), ("RINGING", Some(2))),
            broken,
            call("204", ("ANSWERED", Some(3)), ("COMPLETED", Some(4))),
        ]))
        .await
        .unwrap();
    assert_eq!(handled.failure(), Some("203"));
    let totals = h.store.totals.lock().unwrap().clone();
    let c = &totals[&CampaignId::parse("cmp_1").unwrap()];
    assert_eq!(c.placed, 1);
    assert_eq!(c.status(CallStatus::Ringing), 1);
    assert_eq!(
        c.status(CallStatus::Completed),
        0,
        "the record after it waits"
    );
    assert_eq!(h.store.history.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_redelivered_overlapping_batch_applies_only_what_is_new() {
    let h = handler();
    let records = vec![
        call("301", ("DIALING", None), ("DIALING", Some(1))),
        call("302", ("DIALING", Some(1)), ("RINGING", Some(2))),
        call("303", ("RINGING", Some(2)), ("NO_ANSWER", Some(3))),
    ];
    h.handle(batch(records[..2].to_vec())).await.unwrap();
    let again = h.handle(batch(records.clone())).await.unwrap();
    assert_eq!(
        again.transitions,
        BTreeMap::from([(CallStatus::NoAnswer, 1)])
    );
    h.handle(batch(records)).await.unwrap();
    let totals = h.store.totals.lock().unwrap().clone();
    let c = &totals[&CampaignId::parse("cmp_1").unwrap()];
    assert_eq!(c.placed, 1);
    assert_eq!(
        c.by_status,
        BTreeMap::from([(CallStatus::Dialing, -1), (CallStatus::NoAnswer, 1)])
    );
    assert_eq!(c.outcome(CallStatus::NoAnswer), 1);
}

#[tokio::test]
async fn a_batch_that_names_no_shard_or_has_an_unnamed_record_fails_whole() {
    let h = handler();
    let mut unsharded = batch(vec![call("401", ("DIALING", None), ("DIALING", Some(1)))]);
    unsharded.as_object_mut().unwrap().remove("shardId");
    assert!(matches!(
        h.handle(unsharded).await,
        Err(BatchError::NoShard)
    ));
    let nameless = batch(vec![json!({"eventName": "MODIFY", "dynamodb": {}})]);
    assert!(matches!(
        h.handle(nameless).await,
        Err(BatchError::Unidentifiable { index: 0, .. })
    ));
    assert!(matches!(
        h.handle(json!({"foo": 1})).await,
        Err(BatchError::NotAStreamEvent(_))
    ));
    // The final invocation of a window may be empty, and names nothing to do.
    let empty = h.handle(json!({"Records": []})).await.unwrap();
    assert_eq!(
        empty.response_json(),
        json!({"batchItemFailures": [], "state": {}})
    );
}

#[tokio::test]
async fn the_answer_has_the_shape_lambda_reads() {
    let h = handler();
    let mut broken = call("501", ("DIALING", None), ("DIALING", Some(1)));
    broken["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("NewImage");
    let handled = h.handle(batch(vec![broken])).await.unwrap();
    assert_eq!(
        handled.response_json(),
        json!({"batchItemFailures": [{"itemIdentifier": "501"}], "state": {}})
    );
}

#[test]
fn metric_lines_are_embedded_metric_format_one_per_status() {
    let lines = metric_lines(
        &BTreeMap::from([(CallStatus::Completed, 3), (CallStatus::Busy, 1)]),
        Timestamp::from_millis(1_700_000_000_000),
    );
    assert_eq!(lines.len(), 2);
    let busy: Value = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["Status"] == "BUSY")
        .unwrap();
    assert_eq!(busy["Status"], "BUSY");
    assert_eq!(busy["CallTransitions"], 1);
    assert_eq!(busy["_aws"]["Timestamp"], 1_700_000_000_000_i64);
    let directive = &busy["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Outdial");
    assert_eq!(directive["Dimensions"], json!([["Status"]]));
    assert_eq!(
        directive["Metrics"],
        json!([{"Name": "CallTransitions", "Unit": "Count"}])
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_whose_store_hangs_stops_at_its_budget_and_is_applied_once_when_delivered_again() {
    let h = handler();
    let records = vec![
        call("401", ("DIALING", None), ("DIALING", Some(1))),
        call("402", ("DIALING", Some(1)), ("RINGING", Some(2))),
    ];
    h.store.stalled.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let handled = h.handle(batch(records.clone())).await.unwrap();
    assert_eq!(
        started.elapsed(),
        BATCH_BUDGET,
        "it stops at its budget, not before"
    );
    assert_eq!(
        handled.failure(),
        Some("401"),
        "the whole batch comes again"
    );
    assert!(handled.transitions.is_empty());

    h.store.stalled.store(false, Ordering::SeqCst);
    let again = h.handle(batch(records)).await.unwrap();
    assert_eq!(again.failure(), None);
    let totals = h.store.totals.lock().unwrap().clone();
    let c = &totals[&CampaignId::parse("cmp_1").unwrap()];
    assert_eq!((c.placed, c.status(CallStatus::Ringing)), (1, 1));
}

/// A pooled call's attempt ending `FAILED` with SIP `code`, dialed from `from`.
fn pooled_end(seq: &str, call: &str, from: &str, code: &str) -> Value {
    let mut old = image("DIALING", None);
    let mut new = image("FAILED", Some(2));
    for im in [&mut old, &mut new] {
        im["PK"] = json!({"S": format!("CALL#{call}")});
        im["call_id"] = json!({"S": call});
        im["from"] = json!({"S": from});
        im["pooled"] = json!({"BOOL": true});
    }
    new["sip_code"] = json!({"S": code});
    record(
        seq,
        "MODIFY",
        (&format!("CALL#{call}"), "CALL"),
        Some(old),
        Some(new),
    )
}

#[tokio::test]
async fn a_caller_id_rejected_as_unwanted_three_times_is_quarantined_once() {
    let h = handler();
    let (bad, good) = (
        E164::parse("+12125550100").unwrap(),
        E164::parse("+12125550101").unwrap(),
    );
    for number in [&bad, &good] {
        h.store().numbers.lock().unwrap().insert(
            number.clone(),
            (true, HealthCounts::default(), HashMap::new()),
        );
    }
    let first = batch(vec![
        pooled_end("201", "call_1", bad.as_str(), "608"),
        pooled_end("202", "call_2", bad.as_str(), "607"),
        pooled_end("203", "call_3", good.as_str(), "486"),
    ]);
    let handled = h.handle(first.clone()).await.unwrap();
    assert!(handled.quarantined.is_empty());
    // Delivered again: nothing counts twice.
    let again = h.handle(first).await.unwrap();
    assert!(again.quarantined.is_empty());
    let handled = h
        .handle(batch(vec![pooled_end(
            "204",
            "call_4",
            bad.as_str(),
            "608",
        )]))
        .await
        .unwrap();
    assert_eq!(handled.quarantined.len(), 1);
    assert_eq!(handled.quarantined[0].0, bad);
    assert!(
        handled.quarantined[0].1.contains("3 calls rejected"),
        "{:?}",
        handled.quarantined
    );
    let metric = handled.metric_lines(Timestamp::from_millis(5_000));
    assert!(
        metric
            .iter()
            .any(|l| l.contains("\"NumbersQuarantined\":1")),
        "{metric:?}"
    );
    {
        let numbers = h.store().numbers.lock().unwrap();
        assert_eq!(numbers[&bad].1.rejected, 3);
        assert!(!numbers[&bad].0);
        assert!(numbers[&good].0);
        assert_eq!(numbers[&good].1.attempts, 1);
    }
    // Once quarantined, later ends count but quarantine nothing more.
    let later = h
        .handle(batch(vec![pooled_end(
            "205",
            "call_5",
            bad.as_str(),
            "608",
        )]))
        .await
        .unwrap();
    assert!(later.quarantined.is_empty());
    // A call not dialed from a pool counts toward no number.
    let mut single = call("206", ("DIALING", None), ("FAILED", Some(2)));
    single["dynamodb"]["NewImage"]["from"] = json!({"S": good.as_str()});
    single["dynamodb"]["NewImage"]["sip_code"] = json!({"S": "608"});
    h.handle(batch(vec![single])).await.unwrap();
    assert_eq!(h.store().numbers.lock().unwrap()[&good].1.attempts, 1);
}

/// A change of call `id` between two images, each `(status, last_seq, verdict, script
/// outcome)`, with the greeting length of a judged verdict.
fn detected(
    seq: &str,
    id: &str,
    old: (&str, u64, Option<&str>, Option<&str>),
    new: (&str, u64, Option<&str>, Option<&str>),
) -> Value {
    let build = |(status, last, verdict, outcome): (&str, u64, Option<&str>, Option<&str>)| {
        let mut im = image(status, Some(last));
        im["PK"] = json!({"S": format!("CALL#{id}")});
        im["call_id"] = json!({"S": id});
        if status != "RINGING" {
            im["answered"] = json!({"BOOL": true});
        }
        if let Some(v) = verdict {
            im["verdict"] = json!({"S": v});
            if v != "undecided" {
                im["greeting_ms"] = json!({"N": if v == "machine" { "7400" } else { "900" }});
            }
        }
        if let Some(o) = outcome {
            im["script_outcome"] = json!({"S": o});
        }
        im
    };
    record(
        seq,
        "MODIFY",
        (&format!("CALL#{id}"), "CALL"),
        Some(build(old)),
        Some(build(new)),
    )
}

#[tokio::test]
async fn verdicts_count_each_call_once_under_its_last_verdict_however_batches_overlap() {
    // Three answered calls listened to: a mailbox that is left a message, a person, and one
    // hung up while still listening. Their changes interleave as the stream would have them.
    let records = vec![
        detected(
            "601",
            "call_a",
            ("RINGING", 2, None, None),
            ("ANSWERED", 3, Some("undecided"), None),
        ),
        detected(
            "602",
            "call_b",
            ("RINGING", 2, None, None),
            ("ANSWERED", 3, Some("undecided"), None),
        ),
        detected(
            "603",
            "call_c",
            ("RINGING", 2, None, None),
            ("ANSWERED", 3, Some("undecided"), None),
        ),
        detected(
            "604",
            "call_a",
            ("ANSWERED", 3, Some("undecided"), None),
            ("ANSWERED", 4, Some("machine"), None),
        ),
        detected(
            "605",
            "call_b",
            ("ANSWERED", 3, Some("undecided"), None),
            ("ANSWERED", 4, Some("person"), None),
        ),
        detected(
            "606",
            "call_c",
            ("ANSWERED", 3, Some("undecided"), None),
            ("COMPLETED", 4, Some("undecided"), None),
        ),
        detected(
            "607",
            "call_b",
            ("ANSWERED", 4, Some("person"), None),
            ("ANSWERED", 5, Some("person"), Some("confirmed")),
        ),
        detected(
            "608",
            "call_a",
            ("ANSWERED", 4, Some("machine"), None),
            ("ANSWERED", 5, Some("machine"), Some("voicemail_left")),
        ),
        detected(
            "609",
            "call_a",
            ("ANSWERED", 5, Some("machine"), Some("voicemail_left")),
            ("COMPLETED", 6, Some("machine"), Some("voicemail_left")),
        ),
        detected(
            "610",
            "call_b",
            ("ANSWERED", 5, Some("person"), Some("confirmed")),
            ("COMPLETED", 6, Some("person"), Some("confirmed")),
        ),
    ];
    let expected = BTreeMap::from([
        ("machine".to_owned(), 1),
        ("person".to_owned(), 1),
        ("undecided".to_owned(), 1),
    ]);
    let campaign = CampaignId::parse("cmp_1").unwrap();
    // Every batch size, a batch starting at every record (so each batch re-delivers all of
    // the one before but its first record), then the whole stream again.
    for size in 1..=records.len() {
        let h = handler();
        for from in 0..records.len() {
            let to = (from + size).min(records.len());
            let handled = h.handle(batch(records[from..to].to_vec())).await.unwrap();
            assert_eq!(handled.failure(), None);
        }
        h.handle(batch(records.clone())).await.unwrap();
        let totals = h.store.totals.lock().unwrap().clone();
        let c = &totals[&campaign];
        assert_eq!(c.verdicts, expected, "batches of {size}");
        assert_eq!(
            c.script_outcomes,
            BTreeMap::from([
                ("confirmed".to_owned(), 1),
                ("voicemail_left".to_owned(), 1)
            ]),
            "batches of {size}"
        );
    }
    // Half way, the mailbox is counted a machine and the person still undecided.
    let h = handler();
    h.handle(batch(records[..4].to_vec())).await.unwrap();
    let totals = h.store.totals.lock().unwrap().clone();
    assert_eq!(
        totals[&campaign].verdicts,
        BTreeMap::from([("machine".to_owned(), 1), ("undecided".to_owned(), 2)])
    );
}

/// A bus in memory: what it accepted, and refusals to inject.
#[derive(Debug, Default)]
struct Bus {
    accepted: Mutex<Vec<Outbound>>,
    /// Entries still to refuse one by one, and requests still to fail whole.
    refuse_entries: AtomicUsize,
    fail_requests: AtomicUsize,
    requests: AtomicUsize,
    /// Events of this kind are refused every time.
    refuse_kind: Mutex<Option<outdial_core::outcomes::Kind>>,
}

impl Publisher for Bus {
    fn publish<'a>(
        &'a self,
        events: &'a [Outbound],
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<outdial_core::outcomes::Accepted, StoreError>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            assert!(
                events.len() <= MAX_ENTRIES,
                "PutEvents takes at most 10 entries"
            );
            self.requests.fetch_add(1, Ordering::SeqCst);
            let take = |n: &AtomicUsize| {
                n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            };
            if take(&self.fail_requests) {
                return Err(StoreError::Throttled("injected".into()));
            }
            Ok(events
                .iter()
                .map(|e| {
                    if *self.refuse_kind.lock().unwrap() == Some(e.kind)
                        || take(&self.refuse_entries)
                    {
                        Some("ThrottlingException: injected".to_owned())
                    } else {
                        self.accepted.lock().unwrap().push(e.clone());
                        None
                    }
                })
                .collect())
        })
    }
}

fn publishing() -> (StreamHandler<Memory>, Arc<Bus>) {
    let bus = Arc::new(Bus::default());
    let h = handler().with_publisher(Arc::clone(&bus) as Arc<dyn Publisher>);
    (h, bus)
}

/// A call image at `status` after event `seq`, dialed at 100 ms, answered at 2 s and ended
/// at 30 s as far as `status` has come.
fn timed(status: &str, seq: u64) -> Value {
    let mut image = image(status, Some(seq));
    image["ref"] = json!({"S": "patient-1"});
    image["to"] = json!({"S": "+15555550100"});
    image["dialed_at"] = json!({"N": "100"});
    if matches!(status, "ANSWERED" | "COMPLETED") {
        image["answered"] = json!({"BOOL": true});
        image["answered_at"] = json!({"N": "2000"});
    }
    if status.parse::<CallStatus>().unwrap().is_terminal() {
        image["ended_at"] = json!({"N": "30000"});
    }
    image
}

/// One call's life in records numbered from `first`: queued, dialed, ringing, answered,
/// completed.
fn life(first: u64) -> Vec<Value> {
    let mut queued = image("QUEUED", None);
    queued["ref"] = json!({"S": "patient-1"});
    let mut dialing = timed("DIALING", 1);
    dialing.as_object_mut().unwrap().remove("last_seq");
    dialing.as_object_mut().unwrap().remove("seq_attempt");
    vec![
        record(
            &first.to_string(),
            "INSERT",
            ("CALL#call_1", "CALL"),
            None,
            Some(queued.clone()),
        ),
        record(
            &(first + 1).to_string(),
            "MODIFY",
            ("CALL#call_1", "CALL"),
            Some(queued),
            Some(dialing.clone()),
        ),
        record(
            &(first + 2).to_string(),
            "MODIFY",
            ("CALL#call_1", "CALL"),
            Some(dialing),
            Some(timed("RINGING", 2)),
        ),
        record(
            &(first + 3).to_string(),
            "MODIFY",
            ("CALL#call_1", "CALL"),
            Some(timed("RINGING", 2)),
            Some(timed("ANSWERED", 3)),
        ),
        record(
            &(first + 4).to_string(),
            "MODIFY",
            ("CALL#call_1", "CALL"),
            Some(timed("ANSWERED", 3)),
            Some(timed("COMPLETED", 4)),
        ),
    ]
}

fn published(bus: &Bus) -> Vec<(&'static str, u64)> {
    bus.accepted
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            let detail: Value = serde_json::from_str(&e.detail).unwrap();
            (
                e.kind.detail_type(),
                detail["sequence"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_calls_events_are_published_once_in_order_and_a_redelivery_publishes_nothing() {
    let (h, bus) = publishing();
    let records = life(600);
    let first = h.handle(batch(records[..3].to_vec())).await.unwrap();
    assert_eq!(first.published, 1);
    // Lambda delivers the batch again, with what came since.
    let again = h.handle(batch(records.clone())).await.unwrap();
    assert_eq!((again.published, again.failure()), (2, None));
    h.handle(batch(records)).await.unwrap();
    assert_eq!(
        published(&bus),
        [("Call Placed", 2), ("Call Answered", 3), ("Call Ended", 4)]
    );
    let end: Value = serde_json::from_str(&bus.accepted.lock().unwrap()[2].detail).unwrap();
    assert_eq!(
        (end["ref"].as_str(), end["talk_ms"].as_u64()),
        (Some("patient-1"), Some(28_000))
    );
}

#[tokio::test(start_paused = true)]
async fn refused_entries_are_retried_until_the_bus_takes_them() {
    let (h, bus) = publishing();
    bus.refuse_entries.store(2, Ordering::SeqCst);
    bus.fail_requests.store(1, Ordering::SeqCst);
    let handled = h.handle(batch(life(700))).await.unwrap();
    assert_eq!((handled.published, handled.failure()), (3, None));
    // The refused ones go out after the one taken: receivers order by `sequence`.
    let mut events = published(&bus);
    assert_eq!(events[0], ("Call Ended", 4));
    events.sort_by_key(|(_, seq)| *seq);
    assert_eq!(
        events,
        [("Call Placed", 2), ("Call Answered", 3), ("Call Ended", 4)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_bus_that_keeps_refusing_stops_the_batch_at_that_record_and_loses_nothing() {
    let (h, bus) = publishing();
    let records = life(800);
    // The first request goes through; then the bus fails every try of the next.
    h.handle(batch(records[..2].to_vec())).await.unwrap();
    bus.fail_requests
        .store(usize::try_from(PUBLISH_ROUNDS).unwrap(), Ordering::SeqCst);
    let handled = h.handle(batch(records.clone())).await.unwrap();
    assert_eq!(
        handled.failure(),
        Some("803"),
        "the answer's record is re-delivered"
    );
    let totals = h.store.totals.lock().unwrap().clone();
    let c = &totals[&CampaignId::parse("cmp_1").unwrap()];
    assert_eq!(
        (
            c.status(CallStatus::Ringing),
            c.status(CallStatus::Answered)
        ),
        (1, 0),
        "the record before it counts, the refused one waits"
    );
    // Lambda delivers from the refused record on; the bus takes them now.
    let redelivered = h.handle(batch(records[3..].to_vec())).await.unwrap();
    assert_eq!(redelivered.failure(), None);
    assert_eq!(
        published(&bus),
        [("Call Placed", 2), ("Call Answered", 3), ("Call Ended", 4)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_completed_campaign_is_announced_once_even_when_the_first_try_fails() {
    let (h, bus) = publishing();
    let campaign = CampaignId::parse("cmp_1").unwrap();
    h.store.totals.lock().unwrap().insert(
        campaign.clone(),
        CampaignCounters {
            contacts: 1,
            ..CampaignCounters::default()
        },
    );
    let records = life(900);
    h.handle(batch(records[..4].to_vec())).await.unwrap();
    // The call's end goes out; the bus refuses every try of the announcement.
    *bus.refuse_kind.lock().unwrap() = Some(outdial_core::outcomes::Kind::CampaignCompleted);
    let handled = h.handle(batch(records.clone())).await.unwrap();
    assert_eq!(
        handled.failure(),
        Some("900"),
        "reported from the campaign's first record"
    );
    assert!(!h.store.announced.load(Ordering::SeqCst));
    *bus.refuse_kind.lock().unwrap() = None;
    let again = h.handle(batch(records.clone())).await.unwrap();
    assert_eq!(again.failure(), None);
    h.handle(batch(records)).await.unwrap();
    let kinds: Vec<&str> = published(&bus).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "Call Placed",
            "Call Answered",
            "Call Ended",
            "Campaign Completed"
        ]
    );
    let announced: Value = serde_json::from_str(&bus.accepted.lock().unwrap()[3].detail).unwrap();
    assert_eq!(announced["contacts"], 1);
    assert_eq!(announced["statuses"], json!({"COMPLETED": 1}));
}

#[tokio::test]
async fn a_batch_with_nothing_to_publish_reads_no_watermark() {
    let (h, bus) = publishing();
    let mut queued = image("QUEUED", None);
    queued["ref"] = json!({"S": "patient-1"});
    let records = vec![record(
        "1100",
        "INSERT",
        ("CALL#call_1", "CALL"),
        None,
        Some(queued),
    )];
    h.handle(batch(records)).await.unwrap();
    // The counters' update only.
    assert_eq!(h.store.requests.load(Ordering::SeqCst), 1);
    assert_eq!(bus.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn without_a_publisher_no_watermark_is_read() {
    let h = handler();
    h.handle(batch(life(1000))).await.unwrap();
    // Counters (one update) and history (one write): nothing read first.
    assert_eq!(h.store.requests.load(Ordering::SeqCst), 2);
}

/// A call image after SMA event `seq` of type `event_type`, answered with `response` (the
/// `last_response` attribute as stored), with `extra` attributes.
fn answered_with(seq: u64, event_type: &str, response: Value, extra: Value) -> Value {
    let mut image = image("ANSWERED", Some(seq));
    image["last_type"] = json!({"S": event_type});
    image["last_response"] = response;
    for (name, value) in extra.as_object().unwrap() {
        image[name] = value.clone();
    }
    image
}

#[tokio::test]
async fn each_event_item_keeps_the_actions_answered_and_what_the_event_set() {
    let h = handler();
    let speak = json!({"SchemaVersion": "1.0", "Actions": [
        {"Type": "Speak", "Parameters": {"CallId": "leg-a", "Text": "Hello Ada,\n  this is the clinic."}},
        {"Type": "PlayAudioAndGetDigits", "Parameters": {"CallId": "leg-a",
            "AudioSource": {"Type": "S3", "BucketName": "b", "Key": "prompts/confirm.wav"},
            "FailureAudioSource": {"Type": "S3", "BucketName": "b", "Key": "prompts/again.wav"}}}
    ]})
    .to_string();
    let hang_up = json!({"SchemaVersion": "1.0", "Actions": [
        {"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}}
    ]})
    .to_string();
    let answered = answered_with(
        3,
        "CALL_ANSWERED",
        json!({"S": speak}),
        json!({"last_error": {"S": "ACTION_FAILED: an old one"}}),
    );
    let confirmed = answered_with(
        4,
        "ACTION_SUCCESSFUL",
        json!({"S": hang_up}),
        json!({"digits": {"L": [{"S": "1"}]},
               "last_error": {"S": "ACTION_FAILED: an old one"}}),
    );
    let failed = answered_with(
        5,
        "ACTION_FAILED",
        json!({"S": "{\"SchemaVersion\":\"1.0\",\"Actions\":[]}"}),
        json!({"digits": {"L": [{"S": "1"}]},
               "last_error": {"S": "ACTION_FAILED: an old one"}}),
    );
    let mut ended = answered_with(
        6,
        "HANGUP",
        json!({"S": "not JSON {"}),
        json!({"digits": {"L": [{"S": "1"}]}, "sip_code": {"S": "0"},
               "last_error": {"S": "ACTION_FAILED: an old one"}}),
    );
    ended["status"] = json!({"S": "COMPLETED"});
    let mut odd = ended.clone();
    odd["last_seq"] = json!({"N": "7"});
    odd["last_type"] = json!({"S": "CALL_UPDATE_REQUESTED"});
    odd["last_response"] = json!({"N": "7"});
    let modify = |seq: &str, old: &Value, new: &Value| {
        record(
            seq,
            "MODIFY",
            ("CALL#call_1", "CALL"),
            Some(old.clone()),
            Some(new.clone()),
        )
    };
    let handled = h
        .handle(batch(vec![
            modify("1201", &image("RINGING", Some(2)), &answered),
            modify("1202", &answered, &confirmed),
            modify("1203", &confirmed, &failed),
            modify("1204", &failed, &ended),
            modify("1205", &ended, &odd),
        ]))
        .await
        .unwrap();
    assert_eq!(handled.failure(), None, "a bad last_response fails nothing");
    let history = h.store.history.lock().unwrap().clone();
    let entries: Vec<_> = history.iter().map(|h| &h.entry).collect();
    assert_eq!(entries.len(), 5);

    assert_eq!(entries[0].actions, ["Speak", "PlayAudioAndGetDigits"]);
    assert_eq!(
        entries[0].detail.as_deref(),
        Some("Speak \"Hello Ada, this is the clinic.\"; PlayAudioAndGetDigits prompts/confirm.wav")
    );
    assert!(entries[0].digits.is_empty());
    assert_eq!(
        entries[0].last_error.as_deref(),
        Some("ACTION_FAILED: an old one"),
        "it changed with this event"
    );

    assert_eq!(entries[1].actions, ["Hangup"]);
    assert_eq!(entries[1].detail.as_deref(), Some("Hangup 0"));
    assert_eq!(entries[1].digits, ["1"], "the answer this event added");
    assert_eq!(entries[1].last_error, None, "kept from before");

    assert!(entries[2].actions.is_empty() && entries[2].detail.is_none());
    assert!(entries[2].digits.is_empty());
    assert_eq!(
        entries[2].last_error.as_deref(),
        Some("ACTION_FAILED: an old one"),
        "an ACTION_FAILED shows its error even when it repeats the last one"
    );

    // A response that is not JSON, and one that is not even a string: no actions.
    assert_eq!(entries[3].event_type, "HANGUP");
    assert!(entries[3].actions.is_empty() && entries[3].detail.is_none());
    assert_eq!(entries[3].sip_code.as_deref(), Some("0"));
    assert_eq!(entries[3].status, CallStatus::Completed);
    assert!(entries[4].actions.is_empty() && entries[4].detail.is_none());
    assert_eq!(entries[4].sip_code, None, "not set by this event");
    assert_eq!(entries[4].last_error, None);
}
