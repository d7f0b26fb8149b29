//! The stream handler over real streams: campaigns dialed end to end (dispatcher, PSTN
//! simulator, SMA handler, DynamoDB Local), their table's stream read back, and delivered to
//! the handler as Lambda delivers it on its bad days: every batch twice, batches split in
//! halves as `BisectBatchOnFunctionError` splits them, a record that cannot be read, a store
//! that fails. The counters must equal a recount of the call items every time, a batch must
//! cost the writes `docs/analytics.md` promises, and the document's worked example must be
//! what a recorded stream says.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::FutureExt;
use outdial_adapters::clock::SystemClock;
use outdial_adapters::counters::{DynamoCounters, call_facts, read_counters};
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::item::{BY_CAMPAIGN, Item};
use outdial_adapters::store::DynamoStore;
use outdial_core::counters::{
    CampaignCounters, CounterStore, CounterWrite, HistoryItem, Span, script_key,
};
use outdial_core::ids::{CallId, CampaignId, E164};
use outdial_core::messages::Function;
use outdial_core::ports::StoreError;
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::{RetryPolicy, RetrySpec};
use outdial_core::time::{Clock, Timestamp};
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::record::{Record, Recorder};
use outdial_local::sim::{Callee, Callees, SimConfig, Simulator, voice_client};
use outdial_local::streams::{Consumer, PollerSettings, ShardRecords, StreamPoller, read_stream};
use outdial_local::tables::{client, counting_client, fresh_table};
use outdial_sma::{Settings as SmaSettings, SmaHandler};
use outdial_stack::InProcess;
use outdial_stream::{Handled, StreamHandler};

/// The stream function's recorder of AWS operations, for the permission test.
fn stream_recorder() -> Option<Recorder> {
    outdial_local::record::shared().map(|log| log.recorder(Function::Stream))
}
use outdial_timers::{Dispatcher, Settings};
use serde_json::{Value, json};

const SCRIPT: &str = r#"{"start": "menu", "steps": {
    "menu": {"gather": {"say": "Press 1 to confirm."}, "branches": {"1": "ok"}, "no_input": "bye"},
    "ok": {"say": "Thank you.", "outcome": "confirmed"},
    "bye": {"say": "Goodbye.", "outcome": "no_input"}}}"#;

fn single_attempt() -> RetrySpec {
    RetrySpec {
        max_attempts: 1,
        busy_after_s: 60,
        no_answer_after_s: 60,
        failed_after_s: 60,
        declined_after_s: None,
    }
}

/// A mix of every way a call ends.
fn mixed(i: usize) -> Callee {
    match i % 6 {
        0 => Callee::Answer {
            after_ms: 1_000,
            digits: Some("1".into()),
        },
        1 => Callee::Answer {
            after_ms: 2_000,
            digits: None,
        },
        2 => Callee::Busy,
        3 => Callee::NoAnswer { ring_ms: 10_000 },
        4 => Callee::Fail { code: 404 },
        _ => Callee::HangUpMidPrompt { after_ms: 1_500 },
    }
}

/// Campaigns written to a fresh table, ready to be dialed.
struct Run {
    endpoint: String,
    ddb: Client,
    store: DynamoStore,
    campaigns: Vec<(Campaign, Vec<NewCall>)>,
    by_number: BTreeMap<String, Callee>,
}

impl Run {
    /// One campaign per list of callees.
    async fn create(campaigns: Vec<Vec<Callee>>, retry: RetrySpec) -> Self {
        let endpoint = shared_endpoint().unwrap();
        let ddb = client(&endpoint);
        let store = DynamoStore::new(ddb.clone(), fresh_table(&ddb, "stream").await.unwrap(), 1);
        let clock = SystemClock;
        let mut by_number = BTreeMap::new();
        let mut written = Vec::new();
        for (k, callees) in campaigns.into_iter().enumerate() {
            let campaign = Campaign {
                purpose: outdial_core::policy::Purpose::default(),
                on_cap: outdial_core::policy::OnCap::default(),
                caller_pool: None,
                id: CampaignId::random(),
                name: format!("stream {k}"),
                from: E164::parse("+15555550199").unwrap(),
                status: CampaignStatus::Active,
                retry: RetryPolicy::new(retry.clone()).unwrap(),
                pacing: Pacing {
                    calls_per_second: 100.0,
                    max_concurrent: 1000,
                },
                script: serde_json::from_str(SCRIPT).unwrap(),
                limits: Limits::default(),
                window: None,
                default_region: "US".into(),
                created_at: clock.now(),
                contacts: callees.len() as u64,
            };
            let calls: Vec<NewCall> = callees
                .into_iter()
                .enumerate()
                .map(|(i, callee)| {
                    let to = format!("+1555{k}{:06}", i + 1);
                    by_number.insert(to.clone(), callee);
                    NewCall {
                        consent: None,
                        reference: None,
                        id: CallId::random(),
                        to: E164::parse(&to).unwrap(),
                        vars: BTreeMap::new(),
                        due_at: clock.now(),
                        tz: None,
                    }
                })
                .collect();
            store.create_campaign(&campaign, &calls).await.unwrap();
            written.push((campaign, calls));
        }
        Self {
            endpoint,
            ddb,
            store,
            campaigns: written,
            by_number,
        }
    }

    fn table(&self) -> &str {
        self.store.table()
    }

    /// Dials every call through the dispatcher and the simulator until all are terminal.
    async fn dial_until_done(&self) {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let handler = Arc::new(SmaHandler::new(
            self.store.clone(),
            Arc::clone(&clock),
            SmaSettings::default(),
        ));
        let config = SimConfig {
            speed: 0.002,
            callees: Callees {
                by_number: self.by_number.clone(),
                mix: Vec::new(),
            },
            ..SimConfig::default()
        };
        let sim = Simulator::start(config, "sma-local", Arc::new(InProcess(handler)))
            .await
            .unwrap();
        let dispatcher = Dispatcher::new(
            self.store.clone(),
            ChimeDialer::new(voice_client(&sim.endpoint()), "sma-local"),
            clock,
            Settings {
                account_cps: 200.0,
                first_event_within: Duration::from_secs(30),
                recheck_after: Duration::from_millis(200),
                // The fictional 555 numbers have no zone for the law's hours to be read in.
                legal_hours: false,
                ..Settings::default()
            },
        );
        let started = Instant::now();
        loop {
            dispatcher.tick(0).await.unwrap();
            let mut done = sim.live_calls() == 0;
            for (_, calls) in &self.campaigns {
                for call in calls {
                    done &= self
                        .store
                        .call(&call.id)
                        .await
                        .unwrap()
                        .status
                        .is_terminal();
                }
            }
            if done {
                dispatcher.settle().await;
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the campaign did not end"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = sim.report();
        assert_eq!(report.double_dials, 0);
        assert!(report.violations.is_empty(), "{:#?}", report.violations);
    }

    /// The campaign's call items, from the `byCampaign` index.
    async fn call_items(&self, campaign: &CampaignId) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .ddb
                .query()
                .table_name(self.table())
                .index_name(BY_CAMPAIGN)
                .key_condition_expression("campaign_id = :c")
                .expression_attribute_values(":c", AttributeValue::S(campaign.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// The campaign's counters, as the API reads them.
    async fn counters(&self, campaign: &CampaignId) -> CampaignCounters {
        read_counters(&self.ddb, self.table(), campaign)
            .await
            .unwrap()
    }

    async fn campaign_status(&self, campaign: &CampaignId) -> CampaignStatus {
        self.store.campaign(campaign).await.unwrap().status
    }

    fn handler(&self) -> StreamHandler<DynamoCounters> {
        StreamHandler::new(
            DynamoCounters::new(
                self.ddb.clone().recorded(stream_recorder().as_ref()),
                self.table(),
            ),
            Arc::new(SystemClock),
        )
    }
}

/// What the counters of a single-attempt campaign must be, recounted from its call items:
/// every call in its status; the slots still held; an attempt placed per call the SMA saw;
/// an attempt ended per terminal call; answers, script outcomes, verdicts and times from the
/// items.
fn recount(items: &[Item], contacts: usize) -> CampaignCounters {
    let mut c = CampaignCounters {
        contacts: contacts as i64,
        ..CampaignCounters::default()
    };
    for item in items {
        let f = call_facts(item).unwrap();
        *c.by_status.entry(f.status).or_insert(0) += 1;
        c.live += i64::from(f.slot);
        c.placed += i64::from(f.last_event.is_some());
        if f.answered {
            c.answered += 1;
            if let (Some(a), Some(d)) = (f.answered_at, f.dialed_at) {
                c.answer_wait_ms += a.as_millis() - d.as_millis();
            }
        }
        if f.status.is_terminal() {
            *c.outcomes.entry(f.status).or_insert(0) += 1;
            if f.answered {
                if let (Some(a), Some(e)) = (f.answered_at, f.ended_at) {
                    c.talk_ms += e.as_millis() - a.as_millis();
                }
            }
        }
        if let Some(o) = &f.script_outcome {
            *c.script_outcomes.entry(script_key(o)).or_insert(0) += 1;
        }
        if let Some(v) = f.verdict {
            *c.verdicts.entry(v.as_str().to_owned()).or_insert(0) += 1;
        }
    }
    c
}

fn seq(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap()
}

fn is_call(record: &Value) -> bool {
    record["dynamodb"]["Keys"]["SK"]["S"] == "CALL"
}

/// A call change that applied an SMA event (and so has an event-history item).
fn applied_event(record: &Value) -> bool {
    let image = |which: &str, name: &str| record["dynamodb"][which][name]["N"].clone();
    is_call(record)
        && record["eventName"] != "REMOVE"
        && !image("NewImage", "last_seq").is_null()
        && (image("NewImage", "last_seq") != image("OldImage", "last_seq")
            || image("NewImage", "seq_attempt") != image("OldImage", "seq_attempt"))
}

async fn deliver<S: CounterStore>(
    handler: &StreamHandler<S>,
    shard: &ShardRecords,
    records: &[Value],
) -> Handled {
    handler.handle(shard.event(records)).await.unwrap()
}

/// Delivers `records` as Lambda does when the handler reports failures: again from the
/// reported record, until a delivery reports none. Returns the failures reported.
async fn deliver_until_done<S: CounterStore>(
    handler: &StreamHandler<S>,
    shard: &ShardRecords,
    records: &[Value],
) -> Vec<String> {
    let mut reported = Vec::new();
    let mut from = 0;
    for _ in 0..10 {
        let handled = deliver(handler, shard, &records[from..]).await;
        let Some(failed) = handled.failure() else {
            return reported;
        };
        reported.push(failed.to_owned());
        from += records[from..]
            .iter()
            .position(|r| seq(r) == failed)
            .expect("the reported record is in the batch");
    }
    panic!("the batch kept failing: {reported:?}");
}

/// Every batch of every shard delivered twice, a third of them bisected around a full
/// delivery, and one with an unreadable record that is reported and delivered again from it.
/// Returns the campaigns the deliveries completed.
async fn deliver_chaotically<S: CounterStore>(
    handler: &StreamHandler<S>,
    stream: &[ShardRecords],
    batch: usize,
) -> Vec<CampaignId> {
    let mut completed = Vec::new();
    let mut corrupted = false;
    for shard in stream {
        for (i, records) in shard.records.chunks(batch).enumerate() {
            let half = records.len() / 2;
            let mut runs: Vec<&[Value]> = match i % 3 {
                // Bisected after a failed invocation: halves, then the whole batch again.
                0 => vec![&records[..half], &records[half..], records],
                // The whole batch, then its halves again.
                1 => vec![records, &records[..half], &records[half..]],
                _ => vec![records, records],
            };
            let target = records
                .iter()
                .enumerate()
                .filter(|(_, r)| is_call(r) && r["eventName"] == "MODIFY")
                .map(|(k, _)| k)
                .nth(3);
            if let (false, Some(k)) = (corrupted, target) {
                corrupted = true;
                let mut bad = records.to_vec();
                bad[k]["dynamodb"]["NewImage"]["status"] = json!({"S": "NOT_A_STATUS"});
                let handled = deliver(handler, shard, &bad).await;
                assert_eq!(handled.failure(), Some(seq(&records[k])));
                completed.extend(handled.completed);
                // Lambda delivers again from the reported record.
                runs.insert(0, &records[k..]);
            }
            for run in runs {
                let handled = deliver(handler, shard, run).await;
                assert_eq!(handled.failure(), None, "{:?}", handled.response);
                completed.extend(handled.completed);
            }
        }
    }
    assert!(corrupted, "the stream had no batch to corrupt");
    completed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_stay_exact_when_every_batch_is_delivered_twice_and_bisected() {
    let run = Run::create(vec![(0..30).map(mixed).collect()], single_attempt()).await;
    run.dial_until_done().await;
    let (campaign, calls) = &run.campaigns[0];
    let stream = read_stream(&run.endpoint, run.table()).await.unwrap();
    let records: usize = stream.iter().map(|s| s.records.len()).sum();
    assert!(records > 150, "a stream of {records} records");

    let handler = run.handler();
    let completed = deliver_chaotically(&handler, &stream, 50).await;

    let items = run.call_items(&campaign.id).await;
    assert_eq!(items.len(), calls.len());
    let expected = recount(&items, calls.len());
    assert_eq!(run.counters(&campaign.id).await, expected);
    assert_eq!(expected.live, 0, "every slot was given back");
    assert!(expected.answered > 0 && expected.talk_ms > 0 && expected.answer_wait_ms > 0);
    assert_eq!(completed, vec![campaign.id.clone()], "completed once");
    assert_eq!(
        run.campaign_status(&campaign.id).await,
        CampaignStatus::Completed
    );

    // One history item per SMA event applied, listed in order for `GET /calls/{id}`.
    let events = stream
        .iter()
        .flat_map(|s| &s.records)
        .filter(|r| applied_event(r))
        .count();
    let mut history = 0;
    for call in calls {
        let (_, entries) = run.store.call_with_history(&call.id).await.unwrap();
        let keys: Vec<_> = entries.iter().map(|e| (e.attempt, e.seq)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        history += entries.len();
    }
    assert_eq!(history, events);
}

/// A store that fails once where it is told to, and otherwise is DynamoDB's.
struct Flaky {
    inner: DynamoCounters,
    fail_campaign: Mutex<Option<CampaignId>>,
    fail_history: AtomicBool,
}

impl CounterStore for Flaky {
    async fn apply(
        &self,
        campaign: &CampaignId,
        span: &Span,
        delta: &CampaignCounters,
    ) -> Result<CounterWrite, StoreError> {
        let fail = {
            let mut target = self.fail_campaign.lock().unwrap();
            if target.as_ref() == Some(campaign) {
                target.take().is_some()
            } else {
                false
            }
        };
        if fail {
            return Err(StoreError::Timeout("injected".into()));
        }
        self.inner.apply(campaign, span, delta).await
    }

    async fn apply_number(
        &self,
        number: &E164,
        span: &Span,
        delta: &outdial_core::numbers::HealthCounts,
    ) -> Result<outdial_core::counters::HealthWrite, StoreError> {
        self.inner.apply_number(number, span, delta).await
    }

    async fn quarantine(
        &self,
        number: &E164,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.quarantine(number, reason, now).await
    }

    async fn complete_campaign(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.complete_campaign(campaign, now).await
    }

    async fn record_history(&self, items: &[HistoryItem]) -> Result<(), StoreError> {
        if self.fail_history.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Throttled("injected".into()));
        }
        self.inner.record_history(items).await
    }

    async fn watermark(
        &self,
        campaign: &CampaignId,
        shard: &str,
    ) -> Result<Option<outdial_core::counters::StreamPosition>, StoreError> {
        self.inner.watermark(campaign, shard).await
    }

    async fn completion(
        &self,
        campaign: &CampaignId,
    ) -> Result<Option<outdial_core::counters::Completion>, StoreError> {
        self.inner.completion(campaign).await
    }

    async fn mark_announced(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.mark_announced(campaign, now).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_reports_its_earliest_record_and_redelivery_counts_everything_once() {
    let run = Run::create(
        vec![(0..12).map(mixed).collect(), (0..12).map(mixed).collect()],
        single_attempt(),
    )
    .await;
    run.dial_until_done().await;
    let stream = read_stream(&run.endpoint, run.table()).await.unwrap();
    let second = run.campaigns[1].0.id.clone();
    let handler = StreamHandler::new(
        Flaky {
            inner: DynamoCounters::new(run.ddb.clone(), run.table()),
            fail_campaign: Mutex::new(None),
            fail_history: AtomicBool::new(false),
        },
        Arc::new(SystemClock),
    );
    let campaign_of = |records: &[Value], sequence_number: &str| {
        let r = records.iter().find(|r| seq(r) == sequence_number).unwrap();
        r["dynamodb"]["NewImage"]["campaign_id"]["S"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut reported = Vec::new();
    for shard in &stream {
        let batches: Vec<&[Value]> = shard.records.chunks(50).collect();
        assert!(batches.len() >= 3, "{} batches", batches.len());
        for (i, records) in batches.into_iter().enumerate() {
            match i {
                // The second campaign's update fails: its first record that counts is
                // reported, and the first campaign's records after it are applied already.
                1 => *handler.store().fail_campaign.lock().unwrap() = Some(second.clone()),
                // A history write fails: the first record of that 25 is reported.
                2 => handler.store().fail_history.store(true, Ordering::SeqCst),
                _ => {}
            }
            let failures = deliver_until_done(&handler, shard, records).await;
            match i {
                1 => {
                    assert_eq!(failures.len(), 1, "{failures:?}");
                    assert_eq!(campaign_of(records, &failures[0]), second.as_str());
                }
                2 => {
                    let first_event = records.iter().find(|r| applied_event(r)).unwrap();
                    assert_eq!(failures, vec![seq(first_event).to_owned()]);
                }
                _ => assert_eq!(failures, Vec::<String>::new()),
            }
            reported.extend(failures);
        }
    }
    assert!(!reported.is_empty(), "the injected failures were reported");
    for (campaign, calls) in &run.campaigns {
        let items = run.call_items(&campaign.id).await;
        assert_eq!(
            run.counters(&campaign.id).await,
            recount(&items, calls.len())
        );
        assert_eq!(
            run.campaign_status(&campaign.id).await,
            CampaignStatus::Completed
        );
    }
}

/// The requests one delivery of `records` sends, measured on a fresh table (so every batch
/// lands on counters that start empty), and that table.
async fn cost(run: &Run, shard: &ShardRecords, records: &[Value]) -> (usize, String) {
    let (counting, requests) = counting_client(&run.endpoint);
    let table = fresh_table(&run.ddb, "writes").await.unwrap();
    let handler = StreamHandler::new(DynamoCounters::new(counting, &table), Arc::new(SystemClock));
    requests.reset();
    let handled = deliver(&handler, shard, records).await;
    assert_eq!(handled.failure(), None);
    (requests.get(), table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_record_batch_costs_one_update_per_campaign_and_one_request_per_25_events() {
    let run = Run::create(vec![(0..36).map(mixed).collect()], single_attempt()).await;
    run.dial_until_done().await;
    let stream = read_stream(&run.endpoint, run.table()).await.unwrap();
    let shard = &stream[0];
    let all: Vec<Value> = stream.iter().flat_map(|s| s.records.clone()).collect();

    // The stream as it comes: the calls' inserts, the campaign, claims and SMA events.
    let first_100 = &all[..100];
    let events = first_100.iter().filter(|r| applied_event(r)).count();
    let (natural, _) = cost(&run, shard, first_100).await;
    assert_eq!(natural, 1 + events.div_ceil(25));

    // The worst case for one campaign: 100 changes that each applied an SMA event.
    let busy: Vec<Value> = all
        .iter()
        .filter(|r| applied_event(r))
        .take(100)
        .cloned()
        .collect();
    assert_eq!(busy.len(), 100);
    let (worst, measured) = cost(&run, shard, &busy).await;
    assert_eq!(worst, 1 + 4);

    // Records of other items cost nothing: the handler's own counters and history writes,
    // campaigns, counters written by the dispatcher.
    let own = read_stream(&run.endpoint, &measured).await.unwrap();
    let others: Vec<Value> = own
        .iter()
        .flat_map(|s| s.records.clone())
        .chain(all.iter().filter(|r| !is_call(r)).cloned())
        .take(100)
        .collect();
    assert_eq!(others.len(), 100);
    assert!(others.iter().all(|r| !is_call(r)));
    assert_eq!(cost(&run, shard, &others).await.0, 0);

    println!(
        "writes per 100-record batch: {natural} requests for the stream as it comes \
         ({events} SMA events), {worst} for 100 SMA events of one campaign, 0 for 100 \
         records of other items"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stream_feeds_the_handler_while_a_campaign_runs() {
    let run = Run::create(vec![(0..18).map(mixed).collect()], single_attempt()).await;
    let handler = Arc::new(run.handler());
    let consumer: Consumer = {
        let handler = Arc::clone(&handler);
        Arc::new(move |event| {
            let handler = Arc::clone(&handler);
            async move {
                handler
                    .handle(event)
                    .await
                    .map(|h| h.response_json())
                    .map_err(|e| e.to_string())
            }
            .boxed()
        })
    };
    let poller = StreamPoller::start(
        &run.endpoint,
        run.table(),
        consumer,
        PollerSettings {
            poll_interval: Duration::from_millis(100),
            ..PollerSettings::default()
        },
    )
    .await
    .unwrap();
    run.dial_until_done().await;
    poller
        .wait_caught_up(Duration::from_secs(60))
        .await
        .unwrap();
    let stats = poller.stats();
    poller.stop().await;

    let (campaign, calls) = &run.campaigns[0];
    let items = run.call_items(&campaign.id).await;
    assert_eq!(
        run.counters(&campaign.id).await,
        recount(&items, calls.len())
    );
    assert_eq!(
        run.campaign_status(&campaign.id).await,
        CampaignStatus::Completed
    );
    assert_eq!((stats.invoke_errors, stats.discarded), (0, 0), "{stats:?}");
    assert!(stats.delivered > 0);
}

/// The dialing report of `docs/analytics.md`, computed from raw stream records the way the
/// document tells a consumer to, with nothing of outdial's code.
#[derive(Debug, Default, PartialEq)]
struct Report {
    contacts: BTreeSet<String>,
    placed: u64,
    answered: u64,
    ended: BTreeMap<String, u64>,
    status: BTreeMap<String, String>,
    script: BTreeMap<String, String>,
}

impl Report {
    fn add(&mut self, record: &Value) {
        let change = &record["dynamodb"];
        if change["Keys"]["SK"]["S"] != "CALL" || record["eventName"] == "REMOVE" {
            return;
        }
        let (old, new) = (&change["OldImage"], &change["NewImage"]);
        let s = |image: &Value, name: &str| image[name]["S"].as_str().map(str::to_owned);
        let num = |image: &Value, name: &str| {
            image[name]["N"]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok())
        };
        let call = s(new, "call_id").unwrap();
        self.contacts.insert(call.clone());
        if let Some(attempt) = num(new, "seq_attempt") {
            if num(old, "seq_attempt").is_none_or(|before| before < attempt) {
                self.placed += 1;
            }
        }
        let answered = |image: &Value| image["answered"]["BOOL"] == true;
        if answered(new) && !(answered(old) && num(old, "attempt") == num(new, "attempt")) {
            self.answered += 1;
        }
        let live = |status: &Option<String>| {
            matches!(status.as_deref(), Some("DIALING" | "RINGING" | "ANSWERED"))
        };
        let (was, now) = (s(old, "status"), s(new, "status"));
        if live(&was) && !live(&now) {
            match now.as_deref() {
                Some("QUEUED") => {}
                Some("RETRY_WAIT") if num(old, "attempt") == num(new, "attempt") => {}
                Some("RETRY_WAIT") => {
                    let ended_as = s(new, "outcome").unwrap_or_else(|| "LOST".to_owned());
                    *self.ended.entry(ended_as).or_insert(0) += 1;
                }
                Some(terminal) => *self.ended.entry(terminal.to_owned()).or_insert(0) += 1,
                None => {}
            }
        }
        self.status.insert(call.clone(), now.unwrap());
        if let Some(outcome) = s(new, "script_outcome") {
            self.script.insert(call, outcome);
        }
    }

    fn text(&self) -> String {
        format!(
            "contacts           {}\nattempts placed    {}\nattempts answered  {} ({}%)\n\
             attempts ended     {}\ncalls now          {}\nscript outcomes    {}\n",
            self.contacts.len(),
            self.placed,
            self.answered,
            (self.answered * 100).checked_div(self.placed).unwrap_or(0),
            list(self.ended.iter().map(|(k, v)| (k, *v))),
            list(tally(self.status.values())),
            list(tally(self.script.values())),
        )
    }
}

fn tally<'a>(values: impl Iterator<Item = &'a String>) -> BTreeMap<&'a String, u64> {
    let mut counts = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts
}

fn list<'a>(counts: impl IntoIterator<Item = (&'a String, u64)>) -> String {
    counts
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fenced block of `docs/analytics.md` that opens with ```` ```<tag> ````.
fn doc_block(tag: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/analytics.md"
    ))
    .unwrap();
    let open = format!("```{tag}\n");
    let start = doc.find(&open).unwrap_or_else(|| panic!("no {tag} block")) + open.len();
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

fn attribute_names(image: &Value) -> BTreeSet<String> {
    image
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_example_of_docs_analytics_md_is_what_a_recorded_stream_says() {
    // The example's campaign: two answers (one confirms, one says nothing), a busy line and
    // an unanswered one that are tried twice, and a number that does not exist.
    let callees = vec![
        Callee::Answer {
            after_ms: 1_000,
            digits: Some("1".into()),
        },
        Callee::Answer {
            after_ms: 1_000,
            digits: None,
        },
        Callee::Busy,
        Callee::NoAnswer { ring_ms: 10_000 },
        Callee::Fail { code: 404 },
    ];
    let retry = RetrySpec {
        max_attempts: 2,
        busy_after_s: 1,
        no_answer_after_s: 1,
        failed_after_s: 1,
        declined_after_s: None,
    };
    let run = Run::create(vec![callees], retry).await;
    run.dial_until_done().await;
    let stream = read_stream(&run.endpoint, run.table()).await.unwrap();
    let records: Vec<&Value> = stream.iter().flat_map(|s| &s.records).collect();

    // The report, as the document computes it, is the one it shows.
    let mut report = Report::default();
    for record in &records {
        report.add(record);
    }
    assert_eq!(report.text(), doc_block("text report"));

    // The example record has exactly the attributes of a real one of the same change.
    let example: Value = serde_json::from_str(&doc_block("json record")).unwrap();
    let (from, to) = (
        example["dynamodb"]["OldImage"]["status"]["S"].clone(),
        example["dynamodb"]["NewImage"]["status"]["S"].clone(),
    );
    let real = records
        .iter()
        .find(|r| {
            is_call(r)
                && r["dynamodb"]["OldImage"]["status"]["S"] == from
                && r["dynamodb"]["NewImage"]["status"]["S"] == to
        })
        .expect("a real record of the example's change");
    assert_eq!(attribute_names(&example), attribute_names(real));
    assert_eq!(
        attribute_names(&example["dynamodb"]),
        attribute_names(&real["dynamodb"])
    );
    for image in ["Keys", "OldImage", "NewImage"] {
        assert_eq!(
            attribute_names(&example["dynamodb"][image]),
            attribute_names(&real["dynamodb"][image]),
            "{image}"
        );
    }

    // And the handler's counters say the same as the report.
    let handler = run.handler();
    for shard in &stream {
        for batch in shard.records.chunks(100) {
            assert_eq!(deliver(&handler, shard, batch).await.failure(), None);
        }
    }
    let campaign = &run.campaigns[0].0;
    let c = run.counters(&campaign.id).await;
    assert_eq!(c.contacts as usize, report.contacts.len());
    assert_eq!(c.placed as u64, report.placed);
    assert_eq!(c.answered as u64, report.answered);
    let ended: BTreeMap<String, u64> = c
        .outcomes
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), *n as u64))
        .collect();
    assert_eq!(ended, report.ended);
}
