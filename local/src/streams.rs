//! DynamoDB Local's stream, delivered to the stream handler as Lambda delivers it.
//!
//! Lambda's event source mapping reads a table's stream shard by shard (a parent before its
//! children), hands the function batches of at most 100 records of one shard in order, and
//! reacts to the answer: `batchItemFailures` make it deliver again from the earliest reported
//! record; a failed invocation makes it split the batch in halves and retry each
//! (`BisectBatchOnFunctionError`), up to a bound of retries after which the records are
//! discarded. [`StreamPoller`] does the same against DynamoDB Local's Streams API
//! (`DescribeStream`, `GetShardIterator`, `GetRecords`), so the local stack's counters come
//! from the real path: the table's own change records, in the JSON shape Lambda builds.
//!
//! Each event also carries what Lambda adds when the mapping has a tumbling window (`shardId`,
//! `window`, `state`, `isFinalInvokeForWindow`), because the stream handler's watermarks are
//! per shard and Lambda names the shard only there. The window itself is not modelled: every
//! batch is in the current one and no final invocation is made.
//!
//! [`read_stream`] reads everything a table's stream holds at once, for tests that want to
//! deliver the same records in their own order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The function the records are delivered to: the stream handler, hosted in process or behind
/// a local Lambda Invoke API. It answers with the handler's JSON response, or an error for a
/// failed invocation.
pub type Consumer = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// The region DynamoDB Local's records claim, as `awsRegion` and in the stream's ARN.
pub const REGION: &str = crate::LOCAL_REGION;
/// The tumbling window the events claim to be in.
const WINDOW: Duration = Duration::from_secs(900);
/// Records one `GetRecords` returns at most.
const GET_LIMIT: i32 = 1000;

/// How the poller behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollerSettings {
    /// Pause between two rounds over the shards.
    pub poll_interval: Duration,
    /// Records per invocation at most (the mapping's `BatchSize`).
    pub batch_size: usize,
    /// Failed deliveries of a record before it is discarded (the mapping's
    /// `MaximumRetryAttempts`).
    pub max_retries: u32,
    /// Pause before a failed delivery is retried.
    pub retry_delay: Duration,
}

impl Default for PollerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(150),
            batch_size: 100,
            max_retries: 5,
            retry_delay: Duration::from_millis(50),
        }
    }
}

/// What the poller has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollerStats {
    /// Records the consumer accepted.
    pub delivered: u64,
    /// Invocations of the consumer.
    pub invocations: u64,
    /// Invocations answered with a `batchItemFailures` entry.
    pub partial_failures: u64,
    /// Invocations that failed as a whole.
    pub invoke_errors: u64,
    /// Batches split in halves after a failed invocation.
    pub bisections: u64,
    /// Records given up on after `max_retries` failed deliveries.
    pub discarded: u64,
    /// Stream requests that failed (and were tried again on the next round).
    pub stream_errors: u64,
}

/// A client for DynamoDB Local's Streams API. DynamoDB Local serves it on its DynamoDB
/// endpoint and accepts any credentials.
#[must_use]
pub fn streams_client(endpoint: &str) -> StreamsClient {
    StreamsClient::from_conf(crate::local_config!(aws_sdk_dynamodbstreams, endpoint).build())
}

/// The latest stream of `table`.
///
/// # Errors
/// When the table cannot be described or has no stream.
pub async fn stream_arn(endpoint: &str, table: &str) -> anyhow::Result<String> {
    let out = crate::tables::client(endpoint)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("describing table {table}"))?;
    out.table
        .and_then(|t| t.latest_stream_arn)
        .with_context(|| format!("table {table} has no stream"))
}

/// Every record one shard of a stream holds, oldest first, in Lambda's shape.
#[derive(Debug, Clone)]
pub struct ShardRecords {
    pub stream_arn: String,
    pub shard_id: String,
    pub records: Vec<Value>,
}

impl ShardRecords {
    /// The event Lambda would invoke the handler with for `records` of this shard.
    #[must_use]
    pub fn event(&self, records: &[Value]) -> Value {
        lambda_event(&self.stream_arn, &self.shard_id, records)
    }
}

/// Reads everything the stream of `table` holds now, shard by shard, parents first.
///
/// # Errors
/// When the stream cannot be described or read.
pub async fn read_stream(endpoint: &str, table: &str) -> anyhow::Result<Vec<ShardRecords>> {
    let arn = stream_arn(endpoint, table).await?;
    let client = streams_client(endpoint);
    let mut shards = Vec::new();
    for shard in lineage_order(describe(&client, &arn).await?) {
        let mut iterator = Some(iterator(&client, &arn, &shard.id, None).await?);
        let mut records = Vec::new();
        while let Some(it) = iterator.take() {
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(GET_LIMIT)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .with_context(|| format!("reading shard {}", shard.id))?;
            let got = out.records.unwrap_or_default();
            let empty = got.is_empty();
            records.extend(got.iter().map(|r| lambda_record(r, &arn)));
            // An open shard always has a next iterator: stop once it has nothing more. (DynamoDB
            // Local answers with every record it holds, never an empty page before more.)
            if !empty {
                iterator = out.next_shard_iterator;
            }
        }
        shards.push(ShardRecords {
            stream_arn: arn.clone(),
            shard_id: shard.id,
            records,
        });
    }
    Ok(shards)
}

/// The event Lambda invokes a function with for `records` of one shard, with the fields a
/// tumbling window adds.
#[must_use]
pub fn lambda_event(stream_arn: &str, shard_id: &str, records: &[Value]) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let start = now - now % WINDOW.as_secs();
    let rfc3339 = |secs: u64| {
        DateTime::from_secs(i64::try_from(secs).unwrap_or(0))
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_default()
    };
    json!({
        "Records": records,
        "shardId": shard_id,
        "eventSourceARN": stream_arn,
        "window": {"start": rfc3339(start), "end": rfc3339(start + WINDOW.as_secs())},
        "state": {},
        "isFinalInvokeForWindow": false,
        "isWindowTerminatedEarly": false,
    })
}

/// One stream record in the shape of a Lambda `DynamodbEvent` record.
#[must_use]
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let mut change = Map::new();
    if let Some(d) = &record.dynamodb {
        if let Some(t) = &d.approximate_creation_date_time {
            change.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        for (name, image) in [
            ("Keys", &d.keys),
            ("NewImage", &d.new_image),
            ("OldImage", &d.old_image),
        ] {
            if let Some(image) = image {
                change.insert(name.into(), item_json(image));
            }
        }
        if let Some(seq) = &d.sequence_number {
            change.insert("SequenceNumber".into(), json!(seq));
        }
        change.insert("SizeBytes".into(), json!(d.size_bytes.unwrap_or(0)));
        if let Some(view) = &d.stream_view_type {
            change.insert("StreamViewType".into(), json!(view.as_str()));
        }
    }
    let mut out = json!({
        "eventID": record.event_id.clone().unwrap_or_default(),
        "eventName": record.event_name.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default(),
        "eventVersion": record.event_version.clone().unwrap_or_else(|| "1.1".to_owned()),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region.clone().unwrap_or_else(|| REGION.to_owned()),
        "eventSourceARN": stream_arn,
        "dynamodb": Value::Object(change),
    });
    if let (Some(identity), Some(obj)) = (&record.user_identity, out.as_object_mut()) {
        obj.insert(
            "userIdentity".into(),
            json!({"type": identity.r#type(), "principalId": identity.principal_id()}),
        );
    }
    out
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attr_json(v)))
            .collect(),
    )
}

/// An attribute value in DynamoDB's JSON form (`{"S": "..."}`, `{"N": "1"}`, ...).
fn attr_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(b) => json!({"NULL": b}),
        AttributeValue::B(b) => json!({"B": base64(b.as_ref())}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => {
            json!({"BS": v.iter().map(|b| base64(b.as_ref())).collect::<Vec<_>>()})
        }
        AttributeValue::L(l) => json!({"L": l.iter().map(attr_json).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": item_json(m)}),
        // A type newer than this SDK: keep the record readable and say what it was.
        _ => json!({"NULL": true}),
    }
}

/// Standard base64 with padding, as Lambda encodes binary attributes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
struct ShardInfo {
    id: String,
    parent: Option<String>,
}

async fn describe(client: &StreamsClient, arn: &str) -> anyhow::Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = client
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| format!("describing stream {arn}"))?;
        let Some(desc) = out.stream_description else {
            bail!("stream {arn} has no description");
        };
        shards.extend(desc.shards.unwrap_or_default().into_iter().filter_map(|s| {
            Some(ShardInfo {
                id: s.shard_id?,
                parent: s.parent_shard_id,
            })
        }));
        match desc.last_evaluated_shard_id {
            Some(last) => start = Some(last),
            None => return Ok(shards),
        }
    }
}

/// Shards ordered so that a parent comes before its children.
fn lineage_order(shards: Vec<ShardInfo>) -> Vec<ShardInfo> {
    let known: BTreeMap<String, ShardInfo> =
        shards.into_iter().map(|s| (s.id.clone(), s)).collect();
    fn depth<'a>(mut s: &'a ShardInfo, known: &'a BTreeMap<String, ShardInfo>) -> usize {
        let mut d = 0;
        while let Some(parent) = s.parent.as_ref().and_then(|p| known.get(p)) {
            d += 1;
            s = parent;
            if d > known.len() {
                break;
            }
        }
        d
    }
    let mut ordered: Vec<(usize, ShardInfo)> = known
        .values()
        .map(|s| (depth(s, &known), s.clone()))
        .collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    ordered.into_iter().map(|(_, s)| s).collect()
}

/// An iterator at the start of the shard, or just after `after`.
async fn iterator(
    client: &StreamsClient,
    arn: &str,
    shard: &str,
    after: Option<&str>,
) -> anyhow::Result<String> {
    let mut request = client.get_shard_iterator().stream_arn(arn).shard_id(shard);
    request = match after {
        Some(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("getting an iterator for shard {shard}"))?
        .shard_iterator
        .with_context(|| format!("no iterator for shard {shard}"))
}

/// Where one shard's reading stands.
#[derive(Debug)]
struct ShardState {
    parent: Option<String>,
    iterator: Option<String>,
    /// Records read and not yet finished with, oldest first.
    buffer: VecDeque<Value>,
    /// The last record read (where a new iterator starts after).
    last_read: Option<String>,
    /// The shard is closed and every record of it was read.
    closed: bool,
    /// Failed deliveries per record (by sequence number).
    failures: HashMap<String, u32>,
    /// Sizes of the batches a bisection still has to deliver, the next one last.
    plan: Vec<usize>,
}

impl ShardState {
    fn done(&self) -> bool {
        self.closed && self.buffer.is_empty()
    }

    /// Counts one more failed delivery of the first buffered record; once it has failed more
    /// than `max_retries` times it is dropped, and this returns true.
    fn give_up_on_head(&mut self, shard: &str, max_retries: u32) -> bool {
        let seq = seq_of(self.buffer.front()).unwrap_or_default();
        let count = self.failures.entry(seq.clone()).or_insert(0);
        *count += 1;
        if *count <= max_retries {
            return false;
        }
        tracing::error!(
            shard,
            sequence_number = %seq,
            max_retries,
            "record discarded after too many failed deliveries"
        );
        self.failures.remove(&seq);
        self.buffer.pop_front();
        true
    }
}

/// Where the poller stands, as `wait_caught_up` watches it.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Rounds over the shards completed.
    rounds: u64,
    /// The last completed round read no new record and left nothing undelivered.
    idle: bool,
    /// The last error a round met, if the last round met one.
    error: Option<String>,
}

/// Delivers a table's stream to a consumer, as Lambda's event source mapping does, until
/// stopped (or dropped).
#[derive(Debug)]
pub struct StreamPoller {
    progress: watch::Receiver<Progress>,
    stop: watch::Sender<bool>,
    stats: Arc<Mutex<PollerStats>>,
    task: Option<JoinHandle<()>>,
}

impl StreamPoller {
    /// Starts polling the stream of `table` on the DynamoDB Local at `endpoint`, from the
    /// oldest record it holds.
    ///
    /// # Errors
    /// When the table has no stream.
    pub async fn start(
        endpoint: &str,
        table: &str,
        consumer: Consumer,
        settings: PollerSettings,
    ) -> anyhow::Result<Self> {
        Self::start_recorded(endpoint, table, consumer, settings, None).await
    }

    /// As [`StreamPoller::start`], with the stream requests recorded as `recorder`'s (the
    /// consumer function's: in AWS the event source mapping reads with its role).
    ///
    /// # Errors
    /// When the table has no stream.
    pub async fn start_recorded(
        endpoint: &str,
        table: &str,
        consumer: Consumer,
        settings: PollerSettings,
        recorder: Option<&crate::record::Recorder>,
    ) -> anyhow::Result<Self> {
        use crate::record::Record;
        let arn = stream_arn(endpoint, table).await?;
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (stop, stop_rx) = watch::channel(false);
        let stats = Arc::new(Mutex::new(PollerStats::default()));
        let worker = Worker {
            client: streams_client(endpoint).recorded(recorder),
            arn,
            consumer,
            settings,
            shards: BTreeMap::new(),
            stats: Arc::clone(&stats),
            stop: stop_rx,
        };
        let task = tokio::spawn(worker.run(progress_tx));
        Ok(Self {
            progress,
            stop,
            stats,
            task: Some(task),
        })
    }

    /// Waits until every record written before the call has been delivered: a round over
    /// the shards that began after the call found nothing new and nothing left to deliver.
    /// While records keep being written, that moment may not come before `timeout`.
    ///
    /// # Errors
    /// When `timeout` passes first (naming the last stream error, if any), or the poller
    /// stopped.
    pub async fn wait_caught_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut progress = self.progress.clone();
        // The round running now may have started before the call; the one after it did not.
        let target = progress.borrow().rounds + 2;
        let waited =
            tokio::time::timeout(timeout, progress.wait_for(|p| p.rounds >= target && p.idle))
                .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => bail!("the stream poller has stopped"),
            Err(_) => {
                let p = self.progress.borrow().clone();
                bail!(
                    "the stream was not caught up within {timeout:?} (rounds {}, last error: {})",
                    p.rounds,
                    p.error.as_deref().unwrap_or("none")
                )
            }
        }
    }

    /// What the poller has done so far.
    #[must_use]
    pub fn stats(&self) -> PollerStats {
        self.stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Stops polling after the delivery in progress, if any, and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "the stream poller ended abnormally");
            }
        }
    }
}

impl Drop for StreamPoller {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The polling loop's state, owned by its task.
struct Worker {
    client: StreamsClient,
    arn: String,
    consumer: Consumer,
    settings: PollerSettings,
    shards: BTreeMap<String, ShardState>,
    stats: Arc<Mutex<PollerStats>>,
    stop: watch::Receiver<bool>,
}

/// How one delivery went.
enum Delivery {
    /// The first `n` records are finished with.
    Finished(usize),
    /// The invocation failed as a whole.
    Failed,
}

impl Worker {
    async fn run(mut self, progress: watch::Sender<Progress>) {
        let mut rounds = 0;
        while !self.stopping() {
            let (read, error) = match self.round().await {
                Ok(read) => (read, None),
                Err(e) => {
                    self.stat(|s| s.stream_errors += 1);
                    tracing::warn!(error = %format!("{e:#}"), "reading the local stream failed; trying again");
                    (1, Some(format!("{e:#}")))
                }
            };
            rounds += 1;
            let idle = read == 0 && self.shards.values().all(|s| s.buffer.is_empty());
            progress.send_replace(Progress {
                rounds,
                idle,
                error,
            });
            let mut stop = self.stop.clone();
            let _ = tokio::time::timeout(self.settings.poll_interval, stop.wait_for(|s| *s)).await;
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn stat(&self, f: impl FnOnce(&mut PollerStats)) {
        match self.stats.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// One round: learns new shards, reads each shard whose parent is done, and delivers
    /// what it read. Returns how many records it read.
    async fn round(&mut self) -> anyhow::Result<usize> {
        for shard in lineage_order(describe(&self.client, &self.arn).await?) {
            self.shards.entry(shard.id).or_insert_with(|| ShardState {
                parent: shard.parent,
                iterator: None,
                buffer: VecDeque::new(),
                last_read: None,
                closed: false,
                failures: HashMap::new(),
                plan: Vec::new(),
            });
        }
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        let mut read = 0;
        for id in ids {
            if self.stopping() {
                break;
            }
            let ready = match self.shards.get(&id) {
                Some(s) if s.done() => false,
                Some(s) => s
                    .parent
                    .as_ref()
                    .and_then(|p| self.shards.get(p))
                    .is_none_or(ShardState::done),
                None => false,
            };
            if ready {
                read += self.read_shard(&id).await?;
                self.deliver_shard(&id).await;
            }
        }
        Ok(read)
    }

    /// Reads what the shard has beyond what was read before.
    async fn read_shard(&mut self, id: &str) -> anyhow::Result<usize> {
        let Some(state) = self.shards.get_mut(id) else {
            return Ok(0);
        };
        if state.closed {
            return Ok(0);
        }
        let it = match state.iterator.take() {
            Some(it) => it,
            None => iterator(&self.client, &self.arn, id, state.last_read.as_deref()).await?,
        };
        let out = self
            .client
            .get_records()
            .shard_iterator(it)
            .limit(GET_LIMIT)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                if matches!(
                    e.as_service_error(),
                    Some(GetRecordsError::ExpiredIteratorException(_))
                ) {
                    // A fresh iterator after the last record read, next round.
                    return Ok(0);
                }
                return Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                    .with_context(|| format!("reading shard {id}"));
            }
        };
        let records = out.records.unwrap_or_default();
        for record in &records {
            if let Some(seq) = record
                .dynamodb
                .as_ref()
                .and_then(|d| d.sequence_number.clone())
            {
                state.last_read = Some(seq);
            }
            state.buffer.push_back(lambda_record(record, &self.arn));
        }
        match out.next_shard_iterator {
            Some(next) => state.iterator = Some(next),
            None => state.closed = true,
        }
        Ok(records.len())
    }

    /// Delivers the shard's buffered records in batches, with Lambda's answers to failures.
    async fn deliver_shard(&mut self, id: &str) {
        loop {
            if self.stopping() {
                return;
            }
            let Some(state) = self.shards.get_mut(id) else {
                return;
            };
            if state.buffer.is_empty() {
                state.plan.clear();
                return;
            }
            let size = state
                .plan
                .pop()
                .unwrap_or(self.settings.batch_size)
                .clamp(1, state.buffer.len());
            let batch: Vec<Value> = state.buffer.iter().take(size).cloned().collect();
            let event = lambda_event(&self.arn, id, &batch);
            self.stat(|s| s.invocations += 1);
            let delivery = match (self.consumer)(event).await {
                Ok(answer) => finished(&answer, &batch),
                Err(e) => {
                    tracing::warn!(shard = id, records = size, error = %e, "the stream consumer failed");
                    Delivery::Failed
                }
            };
            let Some(state) = self.shards.get_mut(id) else {
                return;
            };
            let max_retries = self.settings.max_retries;
            let retry = match delivery {
                Delivery::Finished(n) if n == size => {
                    state.buffer.drain(..n);
                    self.stat(|s| s.delivered += n as u64);
                    false
                }
                Delivery::Finished(n) => {
                    state.buffer.drain(..n);
                    // Delivered again from the reported record: the rest of this batch first.
                    let discarded = state.give_up_on_head(id, max_retries);
                    let rest = size - n - usize::from(discarded);
                    if rest > 0 {
                        state.plan.push(rest);
                    }
                    self.stat(|s| {
                        s.delivered += n as u64;
                        s.partial_failures += 1;
                        s.discarded += u64::from(discarded);
                    });
                    true
                }
                Delivery::Failed if size > 1 => {
                    let first = size / 2;
                    state.plan.push(size - first);
                    state.plan.push(first);
                    self.stat(|s| {
                        s.invoke_errors += 1;
                        s.bisections += 1;
                    });
                    true
                }
                Delivery::Failed => {
                    let discarded = state.give_up_on_head(id, max_retries);
                    if !discarded {
                        state.plan.push(1);
                    }
                    self.stat(|s| {
                        s.invoke_errors += 1;
                        s.discarded += u64::from(discarded);
                    });
                    true
                }
            };
            if retry {
                tokio::time::sleep(self.settings.retry_delay).await;
            }
        }
    }
}

fn seq_of(record: Option<&Value>) -> Option<String> {
    record?
        .pointer("/dynamodb/SequenceNumber")?
        .as_str()
        .map(str::to_owned)
}

/// How many records of `batch` an answer finishes: all of them, or those before the
/// earliest one reported in `batchItemFailures`. An answer naming a record that is not in the
/// batch, or none, fails the batch as a whole (as Lambda treats it).
fn finished(answer: &Value, batch: &[Value]) -> Delivery {
    let Some(failures) = answer.get("batchItemFailures").and_then(Value::as_array) else {
        return Delivery::Finished(batch.len());
    };
    if failures.is_empty() {
        return Delivery::Finished(batch.len());
    }
    let mut earliest: Option<usize> = None;
    for failure in failures {
        let Some(id) = failure.get("itemIdentifier").and_then(Value::as_str) else {
            return Delivery::Failed;
        };
        let Some(at) = batch
            .iter()
            .position(|r| seq_of(Some(r)).as_deref() == Some(id))
        else {
            return Delivery::Failed;
        };
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest.map_or(Delivery::Failed, Delivery::Finished)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

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
        for i in 0..n {
            ddb.put_item()
                .table_name(&table)
                .item(
                    "PK",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{i:04}")),
                )
                .item("SK", aws_sdk_dynamodb::types::AttributeValue::S("T".into()))
                .send()
                .await
                .unwrap();
        }
        (endpoint, table)
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
}
