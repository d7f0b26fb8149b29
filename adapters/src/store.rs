//! The DynamoDB store: [`CallStore`] on the table of `docs/table.md`.
//!
//! Every SMA event is one conditional `UpdateItem` on its call item. The condition carries
//! the `Sequence` guard and the state the handler computed from; when it fails,
//! `ReturnValuesOnConditionCheckFailure` hands back the item as it is, so a duplicate is
//! answered with its stored response and a stale event is told apart from a changed record
//! without a second request.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use outdial_core::ids::{Attempt, CallId, CampaignId, Sequence};
use outdial_core::lifecycle::{CallStatus, EndRequest};
use outdial_core::ports::{
    Applied, CallStore, DueCall, DueChange, EventWrite, HistoryEntry, Page, StoreError,
};
use outdial_core::record::{CallRecord, Campaign, NewCall};
use outdial_core::time::Timestamp;

use crate::item::{
    self, BY_CAMPAIGN, CALL_SK, CAMPAIGN_SK, DUE, EXPIRES_AT, Item, NO_END_REQUEST,
    ORPHAN_RETENTION_SECS, Reader, call_from_item, call_pk, campaign_from_item, campaign_item,
    campaign_pk, due_key, due_shard, key, n, new_call_item, s, shard_of, status_call,
};

/// A claimed attempt with no SMA event yet: it was not (or not yet known to be) placed.
const UNPLACED: &str = "#status = :dialing AND #attempt = :attempt \
     AND (attribute_not_exists(seq_attempt) OR seq_attempt < :attempt)";
/// A live call of this attempt.
const LIVE: &str = "#status IN (:dialing, :ringing, :answered) AND #attempt = :attempt";

/// `BatchWriteItem` takes at most 25 items.
const BATCH: usize = 25;
/// Batches in flight at once while a campaign is written.
const BATCH_CONCURRENCY: usize = 8;
/// Attempts at the unprocessed items of one batch before giving up.
const BATCH_TRIES: u32 = 8;

/// The store on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    shards: u32,
}

impl DynamoStore {
    /// A store on `table`, spreading due work over `shards` dispatch shards.
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Self {
        Self {
            client,
            table: table.into(),
            shards: shards.max(1),
        }
    }

    /// Opens the connection to DynamoDB before the first real request needs it (a Lambda
    /// calls this during init, which is not billed against the first event's latency). A
    /// failure only means the first request will connect itself.
    pub async fn warm(&self) {
        let probe = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key("WARM".to_owned(), "WARM")))
            .send()
            .await;
        if let Err(e) = probe {
            tracing::debug!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "warming the DynamoDB connection failed");
        }
    }

    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    #[must_use]
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// One item, read consistently.
    async fn get(&self, pk: String, sk: &str) -> Result<Item, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        out.item.ok_or(StoreError::NotFound)
    }

    /// A conditional `UpdateItem` on a call: [`StoreError::Conflict`] when the condition
    /// fails on an existing call, [`StoreError::NotFound`] when there is none.
    async fn update_call(
        &self,
        call_id: &CallId,
        condition: &str,
        update: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(call_id), CALL_SK)))
            .condition_expression(condition)
            .update_expression(update)
            .set_expression_attribute_names(Some(names(&[
                ("#status", "status"),
                ("#attempt", "attempt"),
            ])))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => {
                refused_item(e)?;
                Err(StoreError::Conflict)
            }
        }
    }

    /// The values a guarded update of a call uses: the attempt, the time, the statuses its
    /// condition names (DynamoDB refuses values an expression does not use), and the status
    /// it sets, if any.
    fn guard_values(
        call_id: &CallId,
        attempt: Attempt,
        condition: &str,
        sets: Option<CallStatus>,
        now: Timestamp,
    ) -> HashMap<String, AttributeValue> {
        let mut values = HashMap::from([
            (":attempt".to_owned(), n(attempt)),
            (":now".to_owned(), n(now.as_millis())),
        ]);
        for status in [
            CallStatus::Dialing,
            CallStatus::Ringing,
            CallStatus::Answered,
        ] {
            let name = format!(":{}", status.as_str().to_lowercase());
            if condition.contains(&name) {
                values.insert(name, s(status.as_str()));
            }
        }
        if let Some(status) = sets {
            values.insert(":status".to_owned(), s(status.as_str()));
            values.insert(":status_call".to_owned(), s(status_call(status, call_id)));
        }
        values
    }

    async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(25);
        for _ in 0..BATCH_TRIES {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(map_err)?;
            requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        Err(StoreError::Throttled(
            format!(
                "{} items still unprocessed after {BATCH_TRIES} tries",
                requests.len()
            )
            .into(),
        ))
    }
}

/// Turns an SDK error into the store's terms, keeping the cause.
fn map_err<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let throttled = matches!(
        err.as_service_error().and_then(|e| e.code()),
        Some(
            "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "ThrottlingException"
        )
    );
    if throttled {
        StoreError::Throttled(Box::new(err))
    } else if matches!(err, SdkError::TimeoutError(_)) {
        StoreError::Timeout(Box::new(err))
    } else {
        StoreError::Other(Box::new(err))
    }
}

/// The item an `UpdateItem` refused on its condition (`ReturnValuesOnConditionCheckFailure =
/// ALL_OLD`). A refusal without an item means there is no item: [`StoreError::NotFound`]; any
/// other failure is mapped as usual.
fn refused_item<R>(err: SdkError<UpdateItemError, R>) -> Result<Item, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
            c.item().cloned().ok_or(StoreError::NotFound)
        }
        _ => Err(map_err(err)),
    }
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn end_req(r: Option<EndRequest>) -> &'static str {
    r.map_or(NO_END_REQUEST, EndRequest::as_str)
}

impl CallStore for DynamoStore {
    async fn create_campaign(
        &self,
        campaign: &Campaign,
        calls: &[NewCall],
    ) -> Result<(), StoreError> {
        // A retried request for a campaign that is already complete writes nothing: its calls
        // may have moved on, and rewriting them would set them back to QUEUED.
        match self.campaign(&campaign.id).await {
            Ok(_) => return Ok(()),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let requests: Vec<WriteRequest> = calls
            .iter()
            .map(|call| {
                let put = PutRequest::builder()
                    .set_item(Some(new_call_item(campaign, call, self.shards)))
                    .build()
                    .map_err(|e| StoreError::Other(Box::new(e)))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, StoreError>>()?;
        let batches: Vec<Vec<WriteRequest>> = requests.chunks(BATCH).map(<[_]>::to_vec).collect();
        futures::stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        // Last: the campaign becomes visible only now that every call is written.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(campaign_item(campaign)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(map_err(e)),
        }
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        campaign_from_item(&self.get(campaign_pk(id), CAMPAIGN_SK).await?)
    }

    async fn claim(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        now: Timestamp,
        watchdog_at: Timestamp,
    ) -> Result<CallRecord, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(call_id), CALL_SK)))
            .condition_expression("#status IN (:queued, :retry) AND #attempt = :attempt")
            .update_expression(
                "SET #status = :dialing, status_call = :status_call, due_key = :due_key, \
                 due_at = :due_at, updated_at = :now",
            )
            .set_expression_attribute_names(Some(names(&[
                ("#status", "status"),
                ("#attempt", "attempt"),
            ])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":queued".into(), s(CallStatus::Queued.as_str())),
                (":retry".into(), s(CallStatus::RetryWait.as_str())),
                (":dialing".into(), s(CallStatus::Dialing.as_str())),
                (":attempt".into(), n(attempt)),
                (
                    ":status_call".into(),
                    s(status_call(CallStatus::Dialing, call_id)),
                ),
                (":due_key".into(), s(due_key(watchdog_at, call_id))),
                (":due_at".into(), n(watchdog_at.as_millis())),
                (":now".into(), n(now.as_millis())),
            ])))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(out) => call_from_item(&out.attributes.unwrap_or_default()),
            Err(e) => {
                refused_item(e)?;
                Err(StoreError::Conflict)
            }
        }
    }

    async fn apply_event(&self, w: &EventWrite) -> Result<Applied, StoreError> {
        let next = &w.next;
        let mut set = vec![
            "#status = :status",
            "status_call = :status_call",
            "#attempt = :next_attempt",
            "seq_attempt = :attempt",
            "last_seq = :seq",
            "last_type = :type",
            "last_response = :response",
            "answered = :answered",
            "end_req = :next_end",
            "transaction_id = :txn",
            "updated_at = :at",
        ];
        let mut remove = Vec::new();
        let mut values = HashMap::from([
            (":status".to_owned(), s(next.status.as_str())),
            (
                ":status_call".to_owned(),
                s(status_call(next.status, &w.call_id)),
            ),
            (":next_attempt".to_owned(), n(next.attempt)),
            (":attempt".to_owned(), n(w.attempt)),
            (":seq".to_owned(), n(w.seq)),
            (":type".to_owned(), s(w.event_type.as_str())),
            (":response".to_owned(), s(w.response.as_str())),
            (":answered".to_owned(), AttributeValue::Bool(next.answered)),
            (":next_end".to_owned(), s(end_req(next.end_request))),
            (":txn".to_owned(), s(w.transaction_id.as_str())),
            (":at".to_owned(), n(w.at.as_millis())),
            (
                ":expected_end".to_owned(),
                s(end_req(w.expected.end_request)),
            ),
            (
                ":expected_answered".to_owned(),
                AttributeValue::Bool(w.expected.answered),
            ),
        ]);
        let mut allowed = Vec::with_capacity(w.expected.statuses.len());
        for (i, status) in w.expected.statuses.iter().enumerate() {
            let name = format!(":s{i}");
            values.insert(name.clone(), s(status.as_str()));
            allowed.push(name);
        }
        if allowed.is_empty() {
            // No status leads to this decision: nothing may be written.
            return Err(StoreError::Conflict);
        }
        if next.answered && !w.expected.answered {
            set.push("answered_at = if_not_exists(answered_at, :at)");
        }
        if next.status.is_terminal() {
            set.push("ended_at = :at");
        }
        if let Some(outcome) = w.outcome {
            set.push("outcome = :outcome");
            values.insert(
                ":outcome".into(),
                s(serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()),
            );
        }
        if let Some(code) = &w.sip_code {
            set.push("sip_code = :sip");
            values.insert(":sip".into(), s(code.as_str()));
        }
        if let Some(error) = &w.error {
            set.push("last_error = :error");
            values.insert(":error".into(), s(error.as_str()));
        }
        if let Some(script) = &w.script_outcome {
            set.push("script_outcome = :script");
            values.insert(":script".into(), s(script.as_str()));
        }
        match w.due {
            DueChange::Keep => {}
            DueChange::At(at) => {
                set.extend([
                    "due_shard = :shard",
                    "due_key = :due_key",
                    "due_at = :due_at",
                ]);
                values.insert(
                    ":shard".into(),
                    s(due_shard(shard_of(&w.call_id, self.shards))),
                );
                values.insert(":due_key".into(), s(due_key(at, &w.call_id)));
                values.insert(":due_at".into(), n(at.as_millis()));
            }
            DueChange::Clear => remove.extend(["due_shard", "due_key", "due_at"]),
        }
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(&w.call_id), CALL_SK)))
            .condition_expression(format!(
                "#attempt = :attempt AND #status IN ({}) AND end_req = :expected_end \
                 AND answered = :expected_answered \
                 AND (attribute_not_exists(seq_attempt) OR seq_attempt < :attempt OR last_seq < :seq)",
                allowed.join(", ")
            ))
            .update_expression(update)
            .set_expression_attribute_names(Some(names(&[
                ("#status", "status"),
                ("#attempt", "attempt"),
            ])))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let failed = match out {
            Ok(out) => {
                return Ok(Applied::Written(Box::new(call_from_item(
                    &out.attributes.unwrap_or_default(),
                )?)));
            }
            Err(e) => refused_item(e)?,
        };
        let current = call_from_item(&failed)?;
        if let Some(last) = &current.last_event {
            if last.attempt == w.attempt && last.seq == w.seq {
                return Ok(Applied::Duplicate {
                    response: last.response.clone(),
                });
            }
            if last.attempt > w.attempt || (last.attempt == w.attempt && last.seq > w.seq) {
                return Ok(Applied::Stale(Box::new(current)));
            }
        }
        if current.attempt > w.attempt {
            return Ok(Applied::Stale(Box::new(current)));
        }
        Ok(Applied::Mismatch(Box::new(current)))
    }

    async fn call(&self, id: &CallId) -> Result<CallRecord, StoreError> {
        call_from_item(&self.get(call_pk(id), CALL_SK).await?)
    }

    async fn call_with_history(
        &self,
        id: &CallId,
    ) -> Result<(CallRecord, Vec<HistoryEntry>), StoreError> {
        let mut record = None;
        let mut history = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(call_pk(id)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.try_next().await.map_err(map_err)? {
            let sk = Reader::new(&item).s(item::SK)?.to_owned();
            if sk == CALL_SK {
                record = Some(call_from_item(&item)?);
            } else if sk.starts_with("EVT#") {
                history.push(history_from_item(&item)?);
            }
        }
        Ok((record.ok_or(StoreError::NotFound)?, history))
    }

    async fn list_calls(
        &self,
        campaign: &CampaignId,
        status: Option<CallStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<CallRecord>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CAMPAIGN)
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .expression_attribute_values(":c", s(campaign.as_str()));
        query = match status {
            Some(st) => query
                .key_condition_expression("campaign_id = :c AND begins_with(status_call, :st)")
                .expression_attribute_values(":st", s(format!("{}#", st.as_str()))),
            None => query.key_condition_expression("campaign_id = :c"),
        };
        if let Some(cursor) = cursor {
            query = query.set_exclusive_start_key(Some(cursor_key(campaign, cursor)?));
        }
        let out = query.send().await.map_err(map_err)?;
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(call_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .and_then(|k| match k.get("status_call") {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            });
        Ok(Page { items, next })
    }

    async fn due_calls(
        &self,
        shard: u32,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueCall>, StoreError> {
        // Everything due at or before `until`: keys sort by time first, so all keys below the
        // next millisecond's prefix.
        let bound = until.plus(Duration::from_millis(1)).sort_key();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE)
            .key_condition_expression("due_shard = :shard AND due_key < :bound")
            .expression_attribute_values(":shard", s(due_shard(shard)))
            .expression_attribute_values(":bound", s(bound))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(map_err)?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let record = call_from_item(item)?;
                Ok(DueCall {
                    due_at: record.due_at.unwrap_or(until),
                    call_id: record.id,
                    campaign_id: record.campaign_id,
                    status: record.status,
                    attempt: record.attempt,
                })
            })
            .collect()
    }

    async fn release(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let waiting = if attempt == Attempt::FIRST {
            CallStatus::Queued
        } else {
            CallStatus::RetryWait
        };
        let mut values = Self::guard_values(call_id, attempt, UNPLACED, Some(waiting), now);
        values.insert(
            ":shard".into(),
            s(due_shard(shard_of(call_id, self.shards))),
        );
        values.insert(":due_key".into(), s(due_key(due_at, call_id)));
        values.insert(":due_at".into(), n(due_at.as_millis()));
        self.update_call(
            call_id,
            UNPLACED,
            "SET #status = :status, status_call = :status_call, due_shard = :shard, \
             due_key = :due_key, due_at = :due_at, updated_at = :now",
            values,
        )
        .await
    }

    async fn refuse(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        status: CallStatus,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut values = Self::guard_values(call_id, attempt, UNPLACED, Some(status), now);
        values.insert(":reason".into(), s(reason));
        self.update_call(
            call_id,
            UNPLACED,
            "SET #status = :status, status_call = :status_call, outcome = :status, \
             last_error = :reason, ended_at = :now, updated_at = :now \
             REMOVE due_shard, due_key, due_at",
            values,
        )
        .await
    }

    async fn lose(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut values = Self::guard_values(call_id, attempt, LIVE, Some(CallStatus::Lost), now);
        values.insert(":reason".into(), s(reason));
        self.update_call(
            call_id,
            LIVE,
            "SET #status = :status, status_call = :status_call, last_error = :reason, \
             ended_at = :now, updated_at = :now REMOVE due_shard, due_key, due_at",
            values,
        )
        .await
    }

    async fn rearm(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut values = Self::guard_values(call_id, attempt, LIVE, None, now);
        values.insert(
            ":shard".into(),
            s(due_shard(shard_of(call_id, self.shards))),
        );
        values.insert(":due_key".into(), s(due_key(due_at, call_id)));
        values.insert(":due_at".into(), n(due_at.as_millis()));
        self.update_call(
            call_id,
            LIVE,
            "SET due_shard = :shard, due_key = :due_key, due_at = :due_at, updated_at = :now",
            values,
        )
        .await
    }

    async fn lease(
        &self,
        shard: u32,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut item = key(format!("LEASE#{shard}"), "LEASE");
        item.extend([
            ("type".to_owned(), s("lease")),
            ("owner".to_owned(), s(owner)),
            ("lease_until".to_owned(), n(until.as_millis())),
            (EXPIRES_AT.to_owned(), n(until.as_secs() + 3600)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(PK) OR #owner = :owner OR lease_until < :now",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now.as_millis()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(map_err(e)),
        }
    }

    async fn unlease(&self, shard: u32, owner: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("LEASE#{shard}"), "LEASE")))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(map_err(e)),
        }
    }

    async fn record_orphan(
        &self,
        transaction_id: &str,
        seq: Sequence,
        event_type: &str,
        raw: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut item = key(
            format!("ORPHAN#{transaction_id}"),
            &format!("SEQ#{:010}", seq.get()),
        );
        item.extend([
            ("type".to_owned(), s("orphan")),
            ("event_type".to_owned(), s(event_type)),
            ("raw".to_owned(), s(raw)),
            ("at".to_owned(), n(at.as_millis())),
            (
                EXPIRES_AT.to_owned(),
                n(at.as_secs() + ORPHAN_RETENTION_SECS),
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

/// Rebuilds the index key a listing stopped at from its cursor (the `status_call` value).
fn cursor_key(campaign: &CampaignId, cursor: &str) -> Result<Item, StoreError> {
    let bad = || StoreError::Corrupt {
        key: "cursor".into(),
        reason: "not a cursor this API returned".into(),
    };
    let (status, id) = cursor.split_once('#').ok_or_else(bad)?;
    status.parse::<CallStatus>().map_err(|_| bad())?;
    let id = CallId::parse(id).map_err(|_| bad())?;
    let mut k = key(call_pk(&id), CALL_SK);
    k.insert("campaign_id".into(), s(campaign.as_str()));
    k.insert("status_call".into(), s(cursor));
    Ok(k)
}

fn history_from_item(item: &Item) -> Result<HistoryEntry, StoreError> {
    let r = Reader::new(item);
    let attempt = Attempt::new(r.n("attempt")?).map_err(|e| StoreError::Corrupt {
        key: "EVT".into(),
        reason: e.to_string(),
    })?;
    let status = r
        .s("status")?
        .parse()
        .map_err(
            |e: outdial_core::lifecycle::UnknownStatus| StoreError::Corrupt {
                key: "EVT".into(),
                reason: e.to_string(),
            },
        )?;
    Ok(HistoryEntry {
        attempt,
        seq: Sequence::new(r.n("seq")?),
        event_type: r.s("event_type")?.to_owned(),
        status,
        at: Timestamp::from_millis(r.n("at")?),
    })
}
