//! [`StreamPoller`]: a table's stream delivered to a consumer as Lambda's event source
//! mapping delivers it, with its answers to partial and whole failures.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::event::{lambda_event, lambda_record, seq_of};
use super::shards::{GET_LIMIT, describe, iterator, lineage_order, stream_arn, streams_client};

/// The function the records are delivered to: the stream handler, hosted in process or behind
/// a local Lambda Invoke API. It answers with the handler's JSON response, or an error for a
/// failed invocation.
pub type Consumer = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

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
    /// Pause before a failed delivery is retried; it doubles with each further failure in a
    /// row on the shard, up to `max_retry_delay`, as Lambda backs off a failing batch.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
}

impl Default for PollerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(150),
            batch_size: 100,
            max_retries: 5,
            retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_secs(5),
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
    /// Failed deliveries in a row (the retry delay doubles with each).
    failing: u32,
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
            endpoint: endpoint.to_owned(),
            table: table.to_owned(),
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
///
/// It survives the database going away and coming back (paused, or killed and restarted on
/// its folder): a request that fails drops the shard's iterator, and the next round describes
/// the stream again and asks for a fresh iterator just after the last record it read. Records
/// read and not yet delivered stay buffered, so delivery resumes after the last record handed
/// on, in order; a record may be delivered again (exactly-once counting is the consumer's, by
/// watermark). A shard that is no longer in the stream and cannot be read is closed, and a
/// stream that cannot be described is looked up again by its table.
struct Worker {
    client: StreamsClient,
    endpoint: String,
    table: String,
    arn: String,
    consumer: Consumer,
    settings: PollerSettings,
    shards: BTreeMap<String, ShardState>,
    stats: Arc<Mutex<PollerStats>>,
    stop: watch::Receiver<bool>,
}

/// How one delivery went.
pub(super) enum Delivery {
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
        let described = match describe(&self.client, &self.arn).await {
            Ok(described) => described,
            Err(e) => {
                // The table may have a new stream (created again on a database that lost its
                // data): the next round describes that one.
                if let Ok(arn) = stream_arn(&self.endpoint, &self.table).await {
                    if arn != self.arn {
                        tracing::warn!(old = %self.arn, new = %arn, "the table's stream changed");
                        self.arn = arn;
                    }
                }
                return Err(e);
            }
        };
        let listed: BTreeSet<String> = described.iter().map(|s| s.id.clone()).collect();
        for shard in lineage_order(described) {
            self.shards.entry(shard.id).or_insert_with(|| ShardState {
                parent: shard.parent,
                iterator: None,
                buffer: VecDeque::new(),
                last_read: None,
                closed: false,
                failures: HashMap::new(),
                plan: Vec::new(),
                failing: 0,
            });
        }
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        let mut read = 0;
        let mut failed = None;
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
                // One shard's failure does not hold up the others; the round reports it.
                match self.read_shard(&id, listed.contains(&id)).await {
                    Ok(n) => read += n,
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
                self.deliver_shard(&id).await;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(read),
        }
    }

    /// Reads what the shard has beyond what was read before. `listed`: whether the stream's
    /// latest description still has the shard.
    async fn read_shard(&mut self, id: &str, listed: bool) -> anyhow::Result<usize> {
        let Some(state) = self.shards.get_mut(id) else {
            return Ok(0);
        };
        if state.closed {
            return Ok(0);
        }
        let it = match state.iterator.take() {
            Some(it) => it,
            None => match iterator(&self.client, &self.arn, id, state.last_read.as_deref()).await {
                Ok(it) => it,
                Err(e) if !listed => {
                    tracing::warn!(
                        shard = id,
                        error = %format!("{e:#}"),
                        "a shard gone from the stream cannot be read: closing it"
                    );
                    state.closed = true;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            },
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
                // The iterator is dropped: the next round asks for a fresh one after the last
                // record read (the database may have restarted meanwhile).
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
            let Some(state) = self.shards.get_mut(id) else {
                return;
            };
            if retry {
                state.failing = state.failing.saturating_add(1);
                let delay = self
                    .settings
                    .retry_delay
                    .saturating_mul(1 << (state.failing - 1).min(16))
                    .min(self.settings.max_retry_delay.max(self.settings.retry_delay));
                tokio::time::sleep(delay).await;
            } else {
                state.failing = 0;
            }
        }
    }
}

/// How many records of `batch` an answer finishes: all of them, or those before the
/// earliest one reported in `batchItemFailures`. An answer naming a record that is not in the
/// batch, or none, fails the batch as a whole (as Lambda treats it).
pub(super) fn finished(answer: &Value, batch: &[Value]) -> Delivery {
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
