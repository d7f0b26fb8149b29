//! The stream Lambda: the table's change stream (DynamoDB Streams, `NEW_AND_OLD_IMAGES`)
//! becomes each campaign's counters and each call's event history. `docs/analytics.md` is the
//! contract this implements; `docs/design.md` section 7 says why it exists.
//!
//! A batch is handled in three steps:
//!
//! 1. **Read.** Records are read one by one, in the shard's order. A record whose keys are not
//!    a call item's (`CALL#<id>` / `CALL`) is skipped before anything else is read: campaign,
//!    counters, event-history, lease and idempotency items cost nothing. The first record that
//!    cannot be read (not a stream record, an unreadable call image) ends the batch: only the
//!    records before it are applied, and it is reported in `batchItemFailures`, so Lambda
//!    delivers it and everything after it again.
//! 2. **Count.** Each call change becomes a counters delta (`outdial_core::counters::delta`),
//!    summed per campaign: one conditional `UpdateItem` per campaign per batch adds the sum and
//!    moves the campaign's watermark for this shard. A watermark at or past the batch's first
//!    record means a re-delivery: the records at or below it are dropped and the rest applied
//!    the same way. An update that brings every contact to a terminal status completes the
//!    campaign (one more write, once).
//! 3. **History.** Every change that applied an SMA event becomes its call-event item, with the
//!    actions the event was answered with and what it set (`outdial_core::counters::history`:
//!    read from the images alone, so a response that is not JSON only records no actions),
//!    written with `BatchWriteItem` (25 per request); writing one twice changes nothing.
//!
//! Any write that fails reports the earliest record it covered as failed; what was applied
//! beyond that point is refused by the watermark (counters) or rewritten identically
//! (history) when Lambda delivers it again.
//!
//! The watermark is per stream shard because only a shard's order is guaranteed, which is
//! also why the event source mapping keeps `ParallelizationFactor` at 1. Lambda names the
//! shard (`shardId`) only in tumbling-window events, so the mapping sets a tumbling window;
//! the handler answers those events with the empty `state` they require, and refuses a batch
//! that names no shard rather than count it without the guarantee.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{EventRecord, TimeWindowEventResponse};
use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use outdial_adapters::counters::call_facts;
use outdial_adapters::item::Item;
use outdial_core::counters::{
    self, CallFacts, CampaignCounters, CounterStore, CounterWrite, HealthWrite, HistoryItem, Span,
    StreamPosition,
};
use outdial_core::ids::{CampaignId, E164};
use outdial_core::lifecycle::CallStatus;
use outdial_core::numbers::HealthCounts;
use outdial_core::outcomes::{self, MAX_ENTRIES, Outbound, Publisher};
use outdial_core::ports::StoreError;
use outdial_core::time::{Clock, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

/// `BatchWriteItem` takes at most 25 items.
const HISTORY_CHUNK: usize = 25;
/// Conditional updates of one campaign in one batch before giving up: the first, and one
/// after a re-delivery was found; a third is only needed if another writer moved the
/// watermark in between, which `ParallelizationFactor` 1 rules out.
const APPLY_ROUNDS: usize = 3;
/// How long one batch may take, its writes and their retries included: each write's own
/// deadline (`outdial_adapters::config::Deadline::Background`) bounds one request, not the
/// several a campaign's update may need in turn, so the batch as a whole stops here and
/// reports itself for re-delivery, inside the function's timeout (30 s, in
/// `infra/functions.json`). What it applied before stopping is refused by the watermark or
/// rewritten identically when it comes again.
pub const BATCH_BUDGET: Duration = Duration::from_secs(25);
/// The environment variable naming the EventBridge bus outcome events go to.
pub const EVENT_BUS_VAR: &str = "OUTDIAL_EVENT_BUS";
/// The CloudWatch namespace of the handler's metrics.
pub const METRICS_NAMESPACE: &str = "Outdial";

/// Why a whole batch failed. Lambda then delivers it again (split in halves when the mapping
/// bisects on errors); whatever was applied before the failure is refused by the watermark.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The event is not a batch of stream records at all.
    #[error("the event is not a DynamoDB stream batch: {0}")]
    NotAStreamEvent(String),
    /// The records name no shard, so re-deliveries could not be told apart.
    #[error(
        "the batch names no stream shard (`shardId`): the event source mapping must set a \
         tumbling window, which makes Lambda name the shard"
    )]
    NoShard,
    /// A record without a `SequenceNumber` cannot be reported on its own.
    #[error("record {index} of the batch has no readable SequenceNumber: {reason}")]
    Unidentifiable { index: usize, reason: String },
}

impl BatchError {
    /// Whether delivering the same batch again could succeed. None of these can: they are
    /// about the event's shape or the mapping's configuration, so the mapping's retries
    /// (bisected) end on the failure queue, where an operator reads them. A store that could
    /// not be reached is never a `BatchError`: it is a partial batch failure, retried from
    /// the record that failed.
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::NotAStreamEvent(_) | Self::NoShard | Self::Unidentifiable { .. } => false,
        }
    }
}

/// What a batch came to.
#[derive(Debug, Default)]
pub struct Handled {
    /// The answer for Lambda: `batchItemFailures` (at most one: where re-delivery must start)
    /// and the empty `state` of a tumbling window.
    pub response: TimeWindowEventResponse,
    /// Call changes applied to counters by this batch, by the status they moved into (or were
    /// inserted in): what the `CallTransitions` metric reports.
    pub transitions: BTreeMap<CallStatus, u64>,
    /// Records of call items read.
    pub calls: usize,
    /// Records of other items, skipped.
    pub skipped: usize,
    /// Campaigns this batch completed.
    pub completed: Vec<CampaignId>,
    /// Caller IDs this batch quarantined, with the reason: what the `NumbersQuarantined`
    /// metric reports.
    pub quarantined: Vec<(E164, String)>,
    /// Outcome events the bus accepted: what the `OutcomeEventsPublished` metric reports.
    pub published: usize,
}

impl Handled {
    /// The response as the JSON Lambda expects.
    #[must_use]
    pub fn response_json(&self) -> Value {
        serde_json::to_value(&self.response)
            .unwrap_or_else(|_| json!({"batchItemFailures": [], "state": {}}))
    }

    /// The sequence number reported as failed, if any.
    #[must_use]
    pub fn failure(&self) -> Option<&str> {
        self.response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.as_deref())
    }

    /// CloudWatch embedded-metric-format lines for this batch: `CallTransitions` (Count) in
    /// namespace `Outdial` with dimension `Status`, one line per status moved into.
    #[must_use]
    pub fn metric_lines(&self, at: Timestamp) -> Vec<String> {
        let mut lines = metric_lines(&self.transitions, at);
        if self.published > 0 {
            let line = count_line(at, "OutcomeEventsPublished", self.published);
            lines.push(line.to_string());
        }
        if !self.quarantined.is_empty() {
            let mut line = count_line(at, "NumbersQuarantined", self.quarantined.len());
            line["Numbers"] = self
                .quarantined
                .iter()
                .map(|(number, reason)| json!({"number": number.masked(), "reason": reason}))
                .collect();
            lines.push(line.to_string());
        }
        lines
    }
}

/// A CloudWatch embedded-metric-format line of one `Count` metric without dimensions.
fn count_line(at: Timestamp, name: &str, count: usize) -> Value {
    json!({
        "_aws": {
            "Timestamp": at.as_millis(),
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        name: count,
    })
}

/// CloudWatch embedded-metric-format lines: one per status, `CallTransitions` calls moved
/// into it.
#[must_use]
pub fn metric_lines(transitions: &BTreeMap<CallStatus, u64>, at: Timestamp) -> Vec<String> {
    transitions
        .iter()
        .map(|(status, count)| {
            json!({
                "_aws": {
                    "Timestamp": at.as_millis(),
                    "CloudWatchMetrics": [{
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [["Status"]],
                        "Metrics": [{"Name": "CallTransitions", "Unit": "Count"}],
                    }],
                },
                "Status": status.as_str(),
                "CallTransitions": count,
            })
            .to_string()
        })
        .collect()
}

/// The stream handler over a [`CounterStore`].
#[derive(Debug)]
pub struct StreamHandler<S> {
    store: S,
    clock: Arc<dyn Clock>,
    /// Where outcome events go; none are published without one.
    publisher: Option<Arc<dyn Publisher>>,
}

/// A call change read from the batch.
#[derive(Debug)]
struct Change {
    pos: StreamPosition,
    /// `ApproximateCreationDateTime`, when the stream gave one.
    written_at: Option<Timestamp>,
    campaign: CampaignId,
    old: Option<CallFacts>,
    new: Option<CallFacts>,
}

/// A change as it counts.
#[derive(Debug)]
struct Counted {
    pos: StreamPosition,
    written_at: Option<Timestamp>,
    delta: CampaignCounters,
    transition: Option<CallStatus>,
    /// The outcome events the change implies (none when nothing publishes them).
    events: Vec<Outbound>,
}

/// A record that cannot be read.
#[derive(Debug)]
struct Bad {
    pos: Option<StreamPosition>,
    reason: String,
}

/// How one campaign's update went.
#[derive(Debug, Default)]
struct CampaignResult {
    transitions: Vec<CallStatus>,
    completed: bool,
    /// The earliest record of the campaign, when its update failed.
    failed_at: Option<StreamPosition>,
    /// The counters after the update, when they say every contact reached a terminal status.
    complete: Option<CampaignCounters>,
    /// Outcome events published.
    published: usize,
}

impl<S: CounterStore> StreamHandler<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            publisher: None,
        }
    }

    /// This handler, publishing outcome events through `publisher`.
    #[must_use]
    pub fn with_publisher(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one batch, as Lambda delivers it (`Records`, and with a tumbling window
    /// `shardId`, `window` and `state`).
    ///
    /// # Errors
    /// [`BatchError`] when the batch as a whole cannot be handled; a bad record or a failed
    /// write is not an error but a `batchItemFailures` entry.
    pub async fn handle(&self, event: Value) -> Result<Handled, BatchError> {
        let records = event
            .get("Records")
            .and_then(Value::as_array)
            .ok_or_else(|| BatchError::NotAStreamEvent("it has no `Records` list".into()))?;
        let mut handled = Handled::default();
        if records.is_empty() {
            // The final invocation of a tumbling window may carry no records.
            return Ok(handled);
        }
        let shard = event
            .get("shardId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(BatchError::NoShard)?;
        let span = tracing::info_span!("stream_batch", shard, records = records.len());
        self.handle_records(shard, records, &mut handled)
            .instrument(span)
            .await?;
        Ok(handled)
    }

    async fn handle_records(
        &self,
        shard: &str,
        records: &[Value],
        handled: &mut Handled,
    ) -> Result<(), BatchError> {
        let mut changes = Vec::new();
        let mut bad = None;
        for (index, raw) in records.iter().enumerate() {
            match read_record(raw) {
                Ok(Some(change)) => changes.push(change),
                Ok(None) => handled.skipped += 1,
                Err(b) => {
                    tracing::warn!(
                        index,
                        sequence_number = b.pos.as_ref().map(tracing::field::display),
                        reason = %b.reason,
                        "unreadable stream record: the records before it are applied, it and \
                         the rest are delivered again"
                    );
                    bad = Some((index, b));
                    break;
                }
            }
        }
        handled.calls = changes.len();

        let (mut failed_at, campaigns, history) =
            match tokio::time::timeout(BATCH_BUDGET, self.apply_changes(shard, &changes, handled))
                .await
            {
                Ok(applied) => applied,
                Err(_) => {
                    // Whatever went through is refused by the watermark or rewritten
                    // identically when Lambda delivers the batch again.
                    let first = changes.first().map(|c| c.pos.clone());
                    tracing::warn!(
                        budget_ms = u64::try_from(BATCH_BUDGET.as_millis()).unwrap_or(u64::MAX),
                        first = first.as_ref().map(tracing::field::display),
                        "the batch ran out of its budget; reported from its first call record \
                         for re-delivery"
                    );
                    (first, 0, 0)
                }
            };
        let mut fail = |pos: &StreamPosition| {
            if failed_at.as_ref().is_none_or(|f| pos < f) {
                failed_at = Some(pos.clone());
            }
        };
        match bad {
            Some((_, Bad { pos: Some(pos), .. })) => fail(&pos),
            Some((index, Bad { pos: None, reason })) if failed_at.is_none() => {
                return Err(BatchError::Unidentifiable { index, reason });
            }
            _ => {}
        }
        if let Some(pos) = failed_at {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(pos.sequence_number().to_owned());
            handled.response.batch_item_failures = vec![failure];
        }
        tracing::info!(
            calls = handled.calls,
            skipped = handled.skipped,
            campaigns,
            history,
            failed_at = handled.failure(),
            "stream batch handled"
        );
        Ok(())
    }

    /// Applies a batch's changes: each campaign's counters and the event history, side by
    /// side. Returns the earliest record whose write failed, and how many campaigns and
    /// history items the batch touched.
    async fn apply_changes(
        &self,
        shard: &str,
        changes: &[Change],
        handled: &mut Handled,
    ) -> (Option<StreamPosition>, usize, usize) {
        let Plan {
            groups,
            numbers,
            history,
        } = plan(changes, self.publisher.is_some());
        let updates = join_all(
            groups
                .iter()
                .map(|(campaign, counted)| self.apply_campaign(shard, campaign, counted)),
        );
        let health = join_all(
            numbers
                .iter()
                .map(|(number, counted)| self.apply_number(shard, number, counted)),
        );
        let chunks: Vec<&[(StreamPosition, HistoryItem)]> = history.chunks(HISTORY_CHUNK).collect();
        let writes = join_all(chunks.iter().map(|chunk| async move {
            let items: Vec<HistoryItem> = chunk.iter().map(|(_, h)| h.clone()).collect();
            (
                chunk.first().map(|(pos, _)| pos),
                self.store.record_history(&items).await,
            )
        }));
        let (updates, writes, health) = futures::join!(updates, writes, health);

        let mut failed_at: Option<StreamPosition> = None;
        let mut fail = |pos: &StreamPosition| {
            if failed_at.as_ref().is_none_or(|f| pos < f) {
                failed_at = Some(pos.clone());
            }
        };
        for ((campaign, _), result) in groups.iter().zip(updates) {
            for status in result.transitions {
                *handled.transitions.entry(status).or_insert(0) += 1;
            }
            if result.completed {
                handled.completed.push(campaign.clone());
            }
            handled.published += result.published;
            if let Some(pos) = &result.failed_at {
                fail(pos);
            }
        }
        for result in health {
            match result {
                Ok(Some(quarantined)) => handled.quarantined.push(quarantined),
                Ok(None) => {}
                Err(pos) => fail(&pos),
            }
        }
        for (first, result) in writes {
            if let (Some(pos), Err(e)) = (first, result) {
                tracing::error!(
                    sequence_number = %pos,
                    error = %chain(&e),
                    "writing call event history failed; reported for re-delivery"
                );
                fail(pos);
            }
        }
        (failed_at, groups.len(), history.len())
    }

    /// Applies one campaign's changes of this batch: publishes their outcome events (when a
    /// publisher is set), counts them, completes the campaign when it is done, and announces
    /// its completion.
    ///
    /// Events go out before the counters move, and only for records past the counters'
    /// watermark: a re-delivered record was counted, so its events went out before. When the
    /// bus refuses an event after its retries, the records from its record on are neither
    /// counted nor published and are reported for re-delivery.
    async fn apply_campaign(
        &self,
        shard: &str,
        campaign: &CampaignId,
        counted: &[Counted],
    ) -> CampaignResult {
        let Some(publisher) = &self.publisher else {
            return self.count_campaign(shard, campaign, counted, None).await;
        };
        let Some(first) = counted.first().map(|c| c.pos.clone()) else {
            return CampaignResult::default();
        };
        let failed = |e: &StoreError, what: &str| {
            tracing::error!(campaign = %campaign, first = %first, error = %chain(e), "{what} failed; reported for re-delivery");
            CampaignResult {
                failed_at: Some(first.clone()),
                ..CampaignResult::default()
            }
        };
        // Nothing to publish (contacts written, watchdogs moved): no watermark to read.
        let (published, refused_at) = if counted.iter().all(|c| c.events.is_empty()) {
            (0, None)
        } else {
            let watermark = match self.store.watermark(campaign, shard).await {
                Ok(w) => w,
                Err(e) => return failed(&e, "reading the campaign's watermark"),
            };
            let fresh: Vec<(&StreamPosition, &Outbound)> = counted
                .iter()
                .filter(|c| watermark.as_ref().is_none_or(|w| c.pos > *w))
                .flat_map(|c| c.events.iter().map(move |e| (&c.pos, e)))
                .collect();
            let events: Vec<&Outbound> = fresh.iter().map(|(_, e)| *e).collect();
            let (published, refused) = publish(publisher.as_ref(), &events).await;
            let refused_at = refused
                .and_then(|i| fresh.get(i))
                .map(|(pos, _)| (*pos).clone());
            if let Some(pos) = &refused_at {
                tracing::error!(
                    campaign = %campaign,
                    sequence_number = %pos,
                    "outcome events of this record and after it were not published; reported \
                     for re-delivery"
                );
            }
            (published, refused_at)
        };
        let mut result = self
            .count_campaign(shard, campaign, counted, refused_at.as_ref())
            .await;
        result.published = published;
        if let Some(pos) = refused_at {
            if result.failed_at.as_ref().is_none_or(|f| pos < *f) {
                result.failed_at = Some(pos);
            }
        }
        if let Some(counters) = result.complete.take() {
            if let Err(e) = self.announce(publisher.as_ref(), campaign, &counters).await {
                return CampaignResult {
                    published: result.published,
                    ..failed(&e, "announcing the campaign's completion")
                };
            }
        }
        result
    }

    /// Publishes `Campaign Completed` for a completed campaign unless it was published
    /// before, and marks it published.
    async fn announce(
        &self,
        publisher: &dyn Publisher,
        campaign: &CampaignId,
        counters: &CampaignCounters,
    ) -> Result<(), StoreError> {
        let Some(completion) = self.store.completion(campaign).await? else {
            // Paused or cancelled with every contact done: not completed, not announced.
            return Ok(());
        };
        if completion.announced {
            return Ok(());
        }
        let event = outcomes::campaign_completed(campaign, completion.completed_at, counters);
        if publish(publisher, &[&event]).await.1.is_some() {
            return Err(StoreError::Other(
                "the bus refused `Campaign Completed`".into(),
            ));
        }
        self.store.mark_announced(campaign, self.clock.now()).await
    }

    /// Counts one campaign's changes of this batch (those before `limit`, when given) in one
    /// conditional update (two when the batch is partly a re-delivery), and completes the
    /// campaign when it is done.
    async fn count_campaign(
        &self,
        shard: &str,
        campaign: &CampaignId,
        counted: &[Counted],
        limit: Option<&StreamPosition>,
    ) -> CampaignResult {
        let mut pending: Vec<&Counted> = counted
            .iter()
            .filter(|c| !c.delta.is_zero() && limit.is_none_or(|l| c.pos < *l))
            .collect();
        let Some(first_of_campaign) = pending.first().map(|c| c.pos.clone()) else {
            return CampaignResult::default();
        };
        let failed = |e: &StoreError| {
            tracing::error!(
                campaign = %campaign,
                first = %first_of_campaign,
                error = %chain(e),
                "updating campaign counters failed; reported for re-delivery"
            );
            CampaignResult {
                failed_at: Some(first_of_campaign.clone()),
                ..CampaignResult::default()
            }
        };
        for _ in 0..APPLY_ROUNDS {
            let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
                break;
            };
            let mut delta = CampaignCounters::default();
            for c in &pending {
                delta += &c.delta;
            }
            let span = Span {
                shard: shard.to_owned(),
                first: first.pos.clone(),
                last: last.pos.clone(),
                written_at: pending.iter().filter_map(|c| c.written_at).max(),
            };
            let write = self.store.apply(campaign, &span, &delta).await;
            match write {
                Ok(CounterWrite::Applied(now)) => {
                    let moved_terminal = delta
                        .by_status
                        .iter()
                        .any(|(status, n)| status.is_terminal() && *n != 0);
                    let mut result = CampaignResult {
                        transitions: pending.iter().filter_map(|c| c.transition).collect(),
                        ..CampaignResult::default()
                    };
                    if moved_terminal && now.is_complete() {
                        match self.complete(campaign).await {
                            Ok(done) => result.completed = done,
                            Err(e) => return failed(&e),
                        }
                        result.complete = Some(now);
                    }
                    return result;
                }
                Ok(CounterWrite::Behind {
                    watermark,
                    counters: now,
                }) => {
                    let before = pending.len();
                    pending.retain(|c| c.pos > watermark);
                    tracing::info!(
                        campaign = %campaign,
                        watermark = %watermark,
                        dropped = before - pending.len(),
                        "records already applied (a re-delivery) are dropped"
                    );
                    if pending.is_empty() {
                        // Everything was applied before. If the campaign is done, its
                        // completion may be what failed then: try it again (a no-op when it
                        // went through).
                        let mut result = CampaignResult::default();
                        if now.is_complete() {
                            match self.complete(campaign).await {
                                Ok(done) => result.completed = done,
                                Err(e) => return failed(&e),
                            }
                            result.complete = Some(now);
                        }
                        return result;
                    }
                }
                Err(e) => return failed(&e),
            }
        }
        failed(&StoreError::Conflict)
    }

    /// Adds one caller ID's attempts of this batch to its health counters (only past its
    /// watermark for the shard), and quarantines it when the totals cross a threshold
    /// (`HealthCounts::assess`). The number and the reason when it did; the first record of
    /// the number's when the write failed.
    async fn apply_number(
        &self,
        shard: &str,
        number: &E164,
        counted: &[(StreamPosition, HealthCounts)],
    ) -> Result<Option<(E164, String)>, StreamPosition> {
        let mut pending: Vec<&(StreamPosition, HealthCounts)> = counted.iter().collect();
        let first_of_number = pending.first().map(|(pos, _)| pos.clone());
        let failed = |e: &StoreError| {
            tracing::error!(
                number = %number.masked(),
                error = %chain(e),
                "updating a caller ID's health failed; reported for re-delivery"
            );
            first_of_number.clone()
        };
        for _ in 0..APPLY_ROUNDS {
            let (Some((first, _)), Some((last, _))) = (pending.first(), pending.last()) else {
                return Ok(None);
            };
            let mut delta = HealthCounts::default();
            for (_, c) in &pending {
                delta += c;
            }
            let span = Span {
                shard: shard.to_owned(),
                first: first.clone(),
                last: last.clone(),
                written_at: None,
            };
            match self.store.apply_number(number, &span, &delta).await {
                Ok(HealthWrite::Applied { counts, healthy }) => {
                    let Some(reason) = counts.assess().filter(|_| healthy) else {
                        return Ok(None);
                    };
                    return match self
                        .store
                        .quarantine(number, &reason, self.clock.now())
                        .await
                    {
                        Ok(true) => {
                            tracing::warn!(
                                number = %number.masked(),
                                reason = %reason,
                                "caller ID quarantined: it is chosen no more until restored"
                            );
                            Ok(Some((number.clone(), reason)))
                        }
                        Ok(false) => Ok(None),
                        Err(e) => Err(failed(&e).unwrap_or_else(|| first.clone())),
                    };
                }
                Ok(HealthWrite::Unregistered) => return Ok(None),
                Ok(HealthWrite::Behind { watermark }) => {
                    pending.retain(|(pos, _)| *pos > watermark);
                }
                Err(e) => return Err(failed(&e).unwrap_or_else(|| first.clone())),
            }
        }
        Ok(None)
    }

    async fn complete(&self, campaign: &CampaignId) -> Result<bool, StoreError> {
        let done = self
            .store
            .complete_campaign(campaign, self.clock.now())
            .await?;
        if done {
            tracing::info!(campaign = %campaign, "every contact reached a terminal status: campaign completed");
        }
        Ok(done)
    }
}

/// Rounds of `PutEvents` for one request's entries (the first and its retries) before the
/// batch gives up on them and reports their record for re-delivery.
const PUBLISH_ROUNDS: u32 = 4;
/// The wait before the first retry of refused entries; it doubles with each round after.
const PUBLISH_BACKOFF: Duration = Duration::from_millis(200);

/// Publishes `events` in order, [`MAX_ENTRIES`] per request, retrying the entries the bus
/// refused (and requests that failed whole) with backoff. Returns how many the bus accepted,
/// and the index of the first event it still refused after the retries, where publishing
/// stopped: the requests after that one are not sent.
async fn publish(publisher: &dyn Publisher, events: &[&Outbound]) -> (usize, Option<usize>) {
    let mut published = 0;
    for (n, chunk) in events.chunks(MAX_ENTRIES).enumerate() {
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        let mut last_error = String::new();
        for round in 0..PUBLISH_ROUNDS {
            if round > 0 {
                tokio::time::sleep(PUBLISH_BACKOFF * 2u32.pow(round - 1)).await;
            }
            let batch: Vec<Outbound> = pending.iter().map(|&i| chunk[i].clone()).collect();
            match publisher.publish(&batch).await {
                Ok(results) => {
                    let mut refused = Vec::new();
                    for (&i, result) in pending.iter().zip(results) {
                        match result {
                            None => published += 1,
                            Some(error) => {
                                refused.push(i);
                                last_error = error;
                            }
                        }
                    }
                    pending = refused;
                }
                Err(e) => last_error = chain(&e),
            }
            if pending.is_empty() {
                break;
            }
            tracing::warn!(
                round,
                refused = pending.len(),
                error = %last_error,
                "the bus refused outcome events; retrying them"
            );
        }
        if let Some(&first) = pending.first() {
            tracing::error!(
                detail_type = chunk[first].kind.detail_type(),
                refused = pending.len(),
                error = %last_error,
                "the bus refused outcome events after every retry"
            );
            return (published, Some(n * MAX_ENTRIES + first));
        }
    }
    (published, None)
}

/// What a batch's changes come to.
#[derive(Debug, Default)]
struct Plan {
    /// Deltas by campaign, campaigns in order of first appearance.
    groups: Vec<(CampaignId, Vec<Counted>)>,
    /// Health counts by caller ID (attempts that ended), in order of first appearance.
    numbers: Vec<(E164, Vec<(StreamPosition, HealthCounts)>)>,
    /// Event-history items, each with the record it came from, without duplicates.
    history: Vec<(StreamPosition, HistoryItem)>,
}

/// Groups the changes' deltas by campaign and lists the event-history items they imply.
fn plan(changes: &[Change], publishing: bool) -> Plan {
    let mut numbers: Vec<(E164, Vec<(StreamPosition, HealthCounts)>)> = Vec::new();
    let mut number_index: HashMap<E164, usize> = HashMap::new();
    let mut groups: Vec<(CampaignId, Vec<Counted>)> = Vec::new();
    let mut index: HashMap<&CampaignId, usize> = HashMap::new();
    let mut history = Vec::new();
    let mut seen = HashSet::new();
    for change in changes {
        let (old, new) = (change.old.as_ref(), change.new.as_ref());
        let transition = new
            .filter(|n| old.is_none_or(|o| o.status != n.status))
            .map(|n| n.status);
        let counted = Counted {
            pos: change.pos.clone(),
            written_at: change.written_at,
            delta: counters::delta(old, new),
            transition,
            events: match new {
                Some(n) if publishing => outcomes::call_events(old, n),
                _ => Vec::new(),
            },
        };
        let at = *index.entry(&change.campaign).or_insert_with(|| {
            groups.push((change.campaign.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(counted);
        if let Some((number, counts)) = counters::number_delta(old, new) {
            let at = *number_index.entry(number.clone()).or_insert_with(|| {
                numbers.push((number, Vec::new()));
                numbers.len() - 1
            });
            numbers[at].1.push((change.pos.clone(), counts));
        }
        if let Some(item) = new.and_then(|n| counters::history(old, n)) {
            let key = (item.call_id.clone(), item.entry.attempt, item.entry.seq);
            if seen.insert(key) {
                history.push((change.pos.clone(), item));
            }
        }
    }
    Plan {
        groups,
        numbers,
        history,
    }
}

/// Reads one record: `Ok(None)` for an item that is not a call, which costs nothing more.
fn read_record(raw: &Value) -> Result<Option<Change>, Bad> {
    let pos = raw
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .ok_or_else(|| Bad {
            pos: None,
            reason: "no dynamodb.SequenceNumber".into(),
        })
        .and_then(|seq| {
            StreamPosition::parse(seq).map_err(|e| Bad {
                pos: None,
                reason: e.to_string(),
            })
        })?;
    let bad = |reason: String| Bad {
        pos: Some(pos.clone()),
        reason,
    };
    let key = |name: &str| {
        raw.pointer(&format!("/dynamodb/Keys/{name}/S"))
            .and_then(Value::as_str)
    };
    match (key("PK"), key("SK")) {
        (Some(pk), Some("CALL")) if pk.starts_with("CALL#") => {}
        (Some(_), Some(_)) => return Ok(None),
        _ => return Err(bad("no string keys PK and SK".into())),
    }
    let record = EventRecord::deserialize(raw)
        .map_err(|e| bad(format!("not a DynamoDB stream record: {e}")))?;
    let (has_old, has_new) = match record.event_name.as_str() {
        "INSERT" => (false, true),
        "MODIFY" => (true, true),
        "REMOVE" => (true, false),
        other => return Err(bad(format!("unknown eventName {other:?}"))),
    };
    let read = |image: serde_dynamo::Item, which: &str| -> Result<CallFacts, Bad> {
        if image.is_empty() {
            return Err(bad(format!(
                "{which} is missing (the stream must be NEW_AND_OLD_IMAGES)"
            )));
        }
        call_facts(&to_item(image)).map_err(|e| bad(format!("{which}: {e}")))
    };
    let change = record.change;
    let old = if has_old {
        Some(read(change.old_image, "OldImage")?)
    } else {
        None
    };
    let new = if has_new {
        Some(read(change.new_image, "NewImage")?)
    } else {
        None
    };
    let campaign = match (&old, &new) {
        (Some(o), Some(n)) if o.campaign_id != n.campaign_id => {
            return Err(bad("the images name different campaigns".into()));
        }
        (_, Some(f)) | (Some(f), None) => f.campaign_id.clone(),
        (None, None) => return Err(bad("a change with no image".into())),
    };
    let written_at = raw
        .pointer("/dynamodb/ApproximateCreationDateTime")
        .and_then(Value::as_f64)
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .map(|secs| Timestamp::from_millis((secs * 1000.0) as i64));
    Ok(Some(Change {
        pos,
        written_at,
        campaign,
        old,
        new,
    }))
}

/// A stream image as the SDK's item type, which the adapters read.
fn to_item(image: serde_dynamo::Item) -> Item {
    image
        .into_inner()
        .into_iter()
        .map(|(k, v)| (k, to_attr(v)))
        .collect()
}

fn to_attr(v: serde_dynamo::AttributeValue) -> AttributeValue {
    use serde_dynamo::AttributeValue as D;
    match v {
        D::N(n) => AttributeValue::N(n),
        D::S(s) => AttributeValue::S(s),
        D::Bool(b) => AttributeValue::Bool(b),
        D::B(b) => AttributeValue::B(Blob::new(b)),
        D::Null(b) => AttributeValue::Null(b),
        D::M(m) => AttributeValue::M(m.into_iter().map(|(k, v)| (k, to_attr(v))).collect()),
        D::L(l) => AttributeValue::L(l.into_iter().map(to_attr).collect()),
        D::Ss(v) => AttributeValue::Ss(v),
        D::Ns(v) => AttributeValue::Ns(v),
        D::Bs(v) => AttributeValue::Bs(v.into_iter().map(Blob::new).collect()),
    }
}

/// An error and its causes, on one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests;
