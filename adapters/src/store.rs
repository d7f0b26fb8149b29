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
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence, TransactionId};
use outdial_core::lifecycle::{self, CallStatus, EndRequest, Order};
use outdial_core::ports::{
    Applied, CallStore, DispatchStore, Due, DueChange, DuePage, EventWrite, HistoryEntry, Lane,
    Page, StoreError,
};
use outdial_core::record::{CallRecord, Campaign, NewCall};
use outdial_core::time::Timestamp;

use crate::item::{
    self, BY_CAMPAIGN, BY_TRANSACTION, CALL_SK, CAMPAIGN_SK, COUNTERS_SK, DUE, EXPIRES_AT, Item,
    NO_END_REQUEST, ORPHAN_RETENTION_SECS, Reader, call_from_item, call_pk, campaign_from_item,
    campaign_item, campaign_pk, dnc_pk, due_key, due_shard, key, lane_shard, n, new_call_item, s,
    shard_of, status_call,
};

/// A claimed attempt with no SMA event yet: it was not (or not yet known to be) placed.
const UNPLACED: &str = "#status = :dialing AND #attempt = :attempt \
     AND (attribute_not_exists(seq_attempt) OR seq_attempt < :attempt) \
     AND (attribute_not_exists(placed_attempt) OR placed_attempt < :attempt)";
/// A live call of this attempt.
const LIVE: &str = "#status IN (:dialing, :ringing, :answered) AND #attempt = :attempt";
/// A call waiting to be dialed as this attempt.
const WAITING: &str = "#status IN (:queued, :retry_wait) AND #attempt = :attempt";
/// How often a claim is tried again when another writer holds the campaign's counters item
/// in a transaction at the same moment.
const CLAIM_TRIES: u32 = 4;

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
        let names = [("#status", "status"), ("#attempt", "attempt")];
        self.update_call_with(call_id, condition, update, &names, values)
            .await
    }

    /// Ends a call that is in `condition` as `attempt` with `status` and the reason in
    /// `last_error`, out of the `due` index and holding no concurrency slot.
    async fn end_call(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        condition: &str,
        status: CallStatus,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut values = Self::guard_values(call_id, attempt, condition, Some(status), now);
        values.insert(":reason".into(), s(reason));
        self.update_call(
            call_id,
            condition,
            "SET #status = :status, status_call = :status_call, last_error = :reason, \
             ended_at = :now, updated_at = :now REMOVE due_shard, due_key, due_at, slot",
            values,
        )
        .await
    }

    /// [`Self::update_call`] with its own attribute names (DynamoDB refuses unused ones).
    async fn update_call_with(
        &self,
        call_id: &CallId,
        condition: &str,
        update: &str,
        attribute_names: &[(&str, &str)],
        values: HashMap<String, AttributeValue>,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(call_id), CALL_SK)))
            .condition_expression(condition)
            .update_expression(update)
            .set_expression_attribute_names(Some(names(attribute_names)))
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
            CallStatus::Queued,
            CallStatus::RetryWait,
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

    /// Writes the items `items` yields with parallel `BatchWriteItem`s, retrying what
    /// DynamoDB left unprocessed. Items are built as their batch is sent, so a list of
    /// 100,000 calls never sits in memory as items all at once.
    pub(crate) async fn put_all(
        &self,
        items: impl Iterator<Item = Item>,
    ) -> Result<(), StoreError> {
        let mut items = items.peekable();
        let batches = std::iter::from_fn(move || {
            items.peek()?;
            Some(items.by_ref().take(BATCH).collect::<Vec<Item>>())
        });
        futures::stream::iter(batches)
            .map(|batch| async move {
                let requests = batch
                    .into_iter()
                    .map(|item| {
                        let put = PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(|e| StoreError::Other(Box::new(e)))?;
                        Ok(WriteRequest::builder().put_request(put).build())
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                write_requests(self.client(), self.table(), requests).await
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// The items of new calls, built one at a time as they are written.
pub(crate) struct CallItems<'a> {
    pub(crate) campaign: &'a Campaign,
    pub(crate) calls: std::vec::IntoIter<&'a NewCall>,
    pub(crate) shards: u32,
}

impl Iterator for CallItems<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.calls
            .next()
            .map(|call| new_call_item(self.campaign, call, self.shards))
    }
}

/// Writes `requests` (at most 25) with `BatchWriteItem`, retrying what DynamoDB leaves
/// unprocessed with a growing pause.
///
/// # Errors
/// [`StoreError::Throttled`] when items are still unprocessed after a few tries; otherwise
/// as the request fails.
pub(crate) async fn write_requests(
    client: &Client,
    table: &str,
    mut requests: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    let mut delay = Duration::from_millis(25);
    for _ in 0..BATCH_TRIES {
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(map_err)?;
        requests = out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
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

/// Turns an SDK error into the store's terms, keeping the cause.
pub(crate) fn map_err<E, R>(err: SdkError<E, R>) -> StoreError
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
                // Another transaction held the item at that moment: try again shortly.
                | "TransactionConflictException"
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
        self.put_all(CallItems {
            campaign,
            calls: calls.iter().collect::<Vec<_>>().into_iter(),
            shards: self.shards,
        })
        .await?;
        // Last: the campaign becomes visible only now that every call is written, and in the
        // same transaction its counters learn how many contacts it has (once: a retry that
        // finds the campaign written changes nothing).
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(campaign_item(campaign)?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        let counters = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(&campaign.id), COUNTERS_SK)))
            .update_expression("SET #type = :type, campaign_id = :campaign ADD contacts :contacts")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", s("counters"))
            .expression_attribute_values(":campaign", s(campaign.id.as_str()))
            .expression_attribute_values(":contacts", n(calls.len()))
            .build()
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(counters).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => match cancellation_codes(&e) {
                Some(codes) if codes.first().map(String::as_str) == Some(CONDITION_FAILED) => {
                    Ok(())
                }
                _ => Err(map_err(e)),
            },
        }
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        campaign_from_item(&self.get(campaign_pk(id), CAMPAIGN_SK).await?)
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
        if !next.status.is_live() {
            // The call leaves the live statuses: its concurrency slot is given back (the
            // stream handler sees `slot` go and decrements the campaign's `live` count).
            remove.push("slot");
        }
        match w.due {
            DueChange::Keep => {}
            DueChange::At(at) => {
                set.extend([
                    "due_shard = :shard",
                    "due_key = :due_key",
                    "due_at = :due_at",
                ]);
                // A live call's next deadline is a watchdog; anything else waits for a dial.
                let lane = if next.status.is_live() {
                    Lane::Watch
                } else {
                    Lane::Dial
                };
                values.insert(
                    ":shard".into(),
                    s(lane_shard(lane, shard_of(&w.call_id, self.shards))),
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
        let last = current.last_event.as_ref().map(|l| (l.attempt, l.seq));
        Ok(
            match lifecycle::order(current.attempt, last, w.attempt, w.seq) {
                Order::Duplicate => Applied::Duplicate {
                    response: current.last_event.map(|l| l.response).unwrap_or_default(),
                },
                Order::Stale => Applied::Stale(Box::new(current)),
                Order::Fresh => Applied::Mismatch(Box::new(current)),
            },
        )
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

    async fn call_by_transaction(
        &self,
        transaction: &TransactionId,
    ) -> Result<Option<CallRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_TRANSACTION)
            .key_condition_expression("transaction_id = :t")
            .expression_attribute_values(":t", s(transaction.as_str()))
            .limit(2)
            .send()
            .await
            .map_err(map_err)?;
        // The index is keys-only and eventually consistent: the call is read from the table,
        // and kept only if this is still its transaction.
        for found in out.items.unwrap_or_default() {
            let Some(AttributeValue::S(pk)) = found.get(item::PK) else {
                continue;
            };
            if !pk.starts_with("CALL#") {
                continue;
            }
            let record = match self.get(pk.clone(), CALL_SK).await {
                Ok(item) => call_from_item(&item)?,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            if record.transaction_id.as_ref() == Some(transaction) {
                return Ok(Some(record));
            }
        }
        Ok(None)
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

impl DispatchStore for DynamoStore {
    async fn claim(
        &self,
        call: &CallRecord,
        now: Timestamp,
        watchdog_at: Timestamp,
        max_live: u32,
    ) -> Result<CallRecord, StoreError> {
        let mut values = Self::guard_values(
            &call.id,
            call.attempt,
            WAITING,
            Some(CallStatus::Dialing),
            now,
        );
        values.extend([
            (
                ":shard".to_owned(),
                s(lane_shard(Lane::Watch, shard_of(&call.id, self.shards))),
            ),
            (":due_key".to_owned(), s(due_key(watchdog_at, &call.id))),
            (":due_at".to_owned(), n(watchdog_at.as_millis())),
        ]);
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(&call.id), CALL_SK)))
            .condition_expression(WAITING)
            .update_expression(
                "SET #status = :status, status_call = :status_call, due_shard = :shard, \
                 due_key = :due_key, due_at = :due_at, updated_at = :now, dialed_at = :now, \
                 slot = :attempt",
            )
            .set_expression_attribute_names(Some(names(&[
                ("#status", "status"),
                ("#attempt", "attempt"),
            ])))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        let slot = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(&call.campaign_id), COUNTERS_SK)))
            .condition_expression("attribute_not_exists(live) OR live < :max")
            .update_expression("SET #type = :type, campaign_id = :campaign ADD live :one")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", s("counters"))
            .expression_attribute_values(":campaign", s(call.campaign_id.as_str()))
            .expression_attribute_values(":max", n(max_live))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        let mut delay = Duration::from_millis(5);
        for _ in 0..CLAIM_TRIES {
            let out = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(claim.clone()).build())
                .transact_items(TransactWriteItem::builder().update(slot.clone()).build())
                .send()
                .await;
            let err = match out {
                Ok(_) => {
                    let mut claimed = call.clone();
                    claimed.status = CallStatus::Dialing;
                    claimed.due_at = Some(watchdog_at);
                    claimed.updated_at = now;
                    return Ok(claimed);
                }
                Err(e) => e,
            };
            let refusal = err.as_service_error().and_then(|e| match e {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    Some(c.cancellation_reasons())
                }
                _ => None,
            });
            match refusal {
                Some([call_reason, slot_reason]) => {
                    if call_reason.code() == Some(CONDITION_FAILED) {
                        return Err(if call_reason.item().is_some() {
                            StoreError::Conflict
                        } else {
                            StoreError::NotFound
                        });
                    }
                    if slot_reason.code() == Some(CONDITION_FAILED) {
                        return Err(StoreError::AtCapacity);
                    }
                    // Another transaction held one of the items at that moment: try again.
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                _ => return Err(map_err(err)),
            }
        }
        Err(StoreError::Throttled(
            "the campaign's counters stayed busy with other transactions".into(),
        ))
    }

    async fn due(
        &self,
        shard: u32,
        lane: Lane,
        until: Timestamp,
        limit: u32,
        after: Option<&str>,
    ) -> Result<DuePage, StoreError> {
        // Everything due at or before `until`: keys sort by time first, so all keys below the
        // next millisecond's prefix.
        let bound = until.plus(Duration::from_millis(1)).sort_key();
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE)
            .key_condition_expression("due_shard = :shard AND due_key < :bound")
            .expression_attribute_values(":shard", s(lane_shard(lane, shard)))
            .expression_attribute_values(":bound", s(bound))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000));
        if let Some(after) = after {
            query = query.set_exclusive_start_key(Some(due_cursor_key(shard, lane, after)?));
        }
        let out = query.send().await.map_err(map_err)?;
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let r = Reader::new(item);
                if r.opt_s("type")? == Some("campaign") {
                    Ok(Due::Campaign {
                        id: r.parsed("campaign_id", CampaignId::parse)?,
                        due_key: r.s("due_key")?.to_owned(),
                    })
                } else {
                    Ok(Due::Call(Box::new(call_from_item(item)?)))
                }
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = out.last_evaluated_key.and_then(|k| {
            let get = |name: &str| match k.get(name) {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            };
            Some(format!(
                "{}|{}|{}",
                get(item::PK)?,
                get(item::SK)?,
                get("due_key")?
            ))
        });
        Ok(DuePage { items, next })
    }

    async fn cancel_waiting(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.end_call(
            call_id,
            attempt,
            WAITING,
            CallStatus::Cancelled,
            reason,
            now,
        )
        .await
    }

    async fn park(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // `due_at` stays: it is when the call would have been due, and unparking keeps it.
        let condition = format!("{WAITING} AND attribute_exists(due_shard)");
        let values = Self::guard_values(call_id, attempt, WAITING, None, now);
        self.update_call(
            call_id,
            &condition,
            "SET updated_at = :now REMOVE due_shard, due_key",
            values,
        )
        .await
    }

    async fn parked_calls(
        &self,
        campaign: &CampaignId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<CallRecord>, StoreError> {
        // Parked calls are waiting calls out of the `due` index; the listing walks the
        // campaign's QUEUED calls, then its RETRY_WAIT calls, and the cursor says where.
        let (status, inner) = match cursor {
            None => (CallStatus::Queued, None),
            Some(c) => {
                let (st, rest) = c.split_once('~').ok_or_else(bad_cursor)?;
                let st: CallStatus = st.parse().map_err(|_| bad_cursor())?;
                (st, Some(rest.to_owned()).filter(|r| !r.is_empty()))
            }
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CAMPAIGN)
            .key_condition_expression("campaign_id = :c AND begins_with(status_call, :st)")
            .filter_expression("attribute_not_exists(due_shard)")
            .expression_attribute_values(":c", s(campaign.as_str()))
            .expression_attribute_values(":st", s(format!("{}#", status.as_str())))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000));
        if let Some(inner) = &inner {
            query = query.set_exclusive_start_key(Some(cursor_key(campaign, inner)?));
        }
        let out = query.send().await.map_err(map_err)?;
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(call_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let more = out
            .last_evaluated_key
            .and_then(|k| match k.get("status_call") {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            });
        let next = match (more, status) {
            (Some(k), st) => Some(format!("{}~{k}", st.as_str())),
            (None, CallStatus::Queued) => Some(format!("{}~", CallStatus::RetryWait.as_str())),
            (None, _) => None,
        };
        Ok(Page { items, next })
    }

    async fn unpark(
        &self,
        call: &CallRecord,
        not_before: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let condition = format!("{WAITING} AND attribute_not_exists(due_shard)");
        let due_at = call.due_at.unwrap_or(not_before).max(not_before);
        let mut values = Self::guard_values(&call.id, call.attempt, WAITING, None, now);
        values.extend([
            (
                ":shard".to_owned(),
                s(due_shard(shard_of(&call.id, self.shards))),
            ),
            (":due_key".to_owned(), s(due_key(due_at, &call.id))),
            (":due_at".to_owned(), n(due_at.as_millis())),
        ]);
        self.update_call(
            &call.id,
            &condition,
            "SET due_shard = :shard, due_key = :due_key, due_at = :due_at, updated_at = :now",
            values,
        )
        .await
    }

    async fn defer(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let condition = format!("{WAITING} AND attribute_exists(due_shard)");
        let mut values = Self::guard_values(call_id, attempt, WAITING, None, now);
        values.extend([
            (":due_key".to_owned(), s(due_key(due_at, call_id))),
            (":due_at".to_owned(), n(due_at.as_millis())),
        ]);
        self.update_call(
            call_id,
            &condition,
            "SET due_key = :due_key, due_at = :due_at, updated_at = :now",
            values,
        )
        .await
    }

    async fn campaign_swept(&self, id: &CampaignId, due_key: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(id), CAMPAIGN_SK)))
            .condition_expression("due_key = :k")
            .update_expression("REMOVE due_shard, due_key, due_at")
            .expression_attribute_values(":k", s(due_key))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // A newer request replaced the entry (or the campaign is gone): leave it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(map_err(e)),
        }
    }

    async fn live(&self, campaign: &CampaignId) -> Result<u32, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(campaign), COUNTERS_SK)))
            .projection_expression("live")
            .send()
            .await
            .map_err(map_err)?;
        match out.item {
            None => Ok(0),
            Some(item) => Ok(Reader::new(&item)
                .opt_n::<i64>("live")?
                .map_or(0, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))),
        }
    }

    async fn do_not_call(&self, number: &E164) -> Result<bool, StoreError> {
        match self.get(dnc_pk(number), item::DNC_SK).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
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
             due_key = :due_key, due_at = :due_at, updated_at = :now REMOVE slot",
            values,
        )
        .await
    }

    async fn placed(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        transaction: &TransactionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_call_with(
            call_id,
            "#attempt = :attempt",
            "SET transaction_id = :txn, placed_attempt = :attempt, updated_at = :now",
            &[("#attempt", "attempt")],
            HashMap::from([
                (":attempt".to_owned(), n(attempt)),
                (":txn".to_owned(), s(transaction.as_str())),
                (":now".to_owned(), n(now.as_millis())),
            ]),
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
             REMOVE due_shard, due_key, due_at, slot",
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
        self.end_call(call_id, attempt, LIVE, CallStatus::Lost, reason, now)
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
            s(lane_shard(Lane::Watch, shard_of(call_id, self.shards))),
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
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// The cancellation reason codes of a refused transaction, in the order of its items.
fn cancellation_codes<R>(err: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<String>> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

fn bad_cursor() -> StoreError {
    StoreError::Corrupt {
        key: "cursor".into(),
        reason: "not a cursor this API returned".into(),
    }
}

/// Rebuilds the `due` index key a read stopped at from its cursor (`PK|SK|due_key`).
fn due_cursor_key(shard: u32, lane: Lane, cursor: &str) -> Result<Item, StoreError> {
    let mut parts = cursor.splitn(3, '|');
    let (Some(pk), Some(sk), Some(due)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_cursor());
    };
    let mut k = key(pk.to_owned(), sk);
    k.insert("due_shard".into(), s(lane_shard(lane, shard)));
    k.insert("due_key".into(), s(due));
    Ok(k)
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
