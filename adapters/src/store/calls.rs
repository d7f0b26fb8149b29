//! Campaigns and calls on [`DynamoStore`]: campaigns written with their calls, the SMA's one
//! conditional write per event, and the reads of calls (by id, with their history, by
//! campaign and by SMA transaction). Each function's port ([`SmaStore`], [`DispatchStore`](outdial_core::ports::DispatchStore),
//! [`ApiStore`]) offers the ones that function uses, and its contract is written there.
//!
//! [`ApiStore`]: outdial_core::admin::ApiStore

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use outdial_core::ids::{Attempt, CallId, CampaignId, Sequence, TransactionId};
use outdial_core::lifecycle::{CallStatus, UnknownStatus};
use outdial_core::policy::DncEntry;
use outdial_core::ports::{
    Applied, DueChange, EventWrite, HistoryEntry, Lane, Page, SmaStore, StoreError,
};
use outdial_core::record::{CallRecord, Campaign, NewCall};
use outdial_core::time::Timestamp;

use super::{CallItems, DynamoStore, sets_status};
use crate::condition::{Condition, Guarded};
use crate::counters::{
    HISTORY_ACTIONS, HISTORY_DETAIL, HISTORY_DIGITS, HISTORY_LAST_ERROR, HISTORY_SIP_CODE,
    add_to_counter,
};
use crate::ddb::{self, Cancelled, build_err, failed_on_condition, map_err, refused_item};
use crate::direct::{self, Updated};
use crate::item::{
    self, BY_TRANSACTION, CALL_SK, CAMPAIGN_SK, EXPIRES_AT, Item, ORPHAN_RETENTION_SECS, Reader,
    call_from_item, call_pk, campaign_from_item, campaign_item, campaign_pk, due_key, end_req, key,
    lane_shard, n, s, shard_of,
};

impl DynamoStore {
    /// [`ApiStore::create_campaign`](outdial_core::admin::ApiStore::create_campaign).
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn create_campaign(
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
            .map_err(build_err)?;
        let counters = add_to_counter(
            &self.table,
            &campaign.id,
            "contacts",
            calls.len(),
            Condition::new(),
        )?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(counters).build(),
        ];
        // Sent once (never retried, so no pause): any other cancellation fails the request.
        ddb::transact(&self.client, items, Duration::ZERO, (), |reasons| {
            reasons
                .first()
                .is_some_and(failed_on_condition)
                .then_some(Cancelled::Answer(Ok(())))
        })
        .await
    }

    /// [`SmaStore::campaign`].
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        campaign_from_item(&self.get(campaign_pk(id), CAMPAIGN_SK).await?)
    }

    /// [`SmaStore::apply_event`], handing back the record as written.
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn apply_event(&self, w: &EventWrite) -> Result<Applied, StoreError> {
        Ok(match self.write_event(w, true).await? {
            Applied::Written(item) => Applied::Written(Box::new(match item {
                Some(item) => call_from_item(&item)?,
                None => self.call(&w.call_id).await?,
            })),
            Applied::Duplicate { response } => Applied::Duplicate { response },
            Applied::Stale(record) => Applied::Stale(record),
            Applied::Mismatch(record) => Applied::Mismatch(record),
        })
    }

    /// [`SmaStore::apply_event`]: [`Self::apply_event`] without reading the written record
    /// back (`ReturnValues` `NONE`): fewer bytes on the wire and nothing to parse, on the
    /// request every SMA event makes.
    ///
    /// # Errors
    /// As [`Self::apply_event`].
    pub async fn record_event(&self, w: &EventWrite) -> Result<Applied<()>, StoreError> {
        Ok(self.write_event(w, false).await?.map_written(drop))
    }

    /// The write of [`Self::apply_event`]; a written event hands back the item as it now is
    /// when `new_image` asks for it and the request could return it (a transaction cannot:
    /// `None`).
    async fn write_event(
        &self,
        w: &EventWrite,
        new_image: bool,
    ) -> Result<Applied<Option<Item>>, StoreError> {
        let condition = Condition::event(w);
        if condition.is_unsatisfiable() {
            // No status leads to this decision: nothing may be written.
            return Err(StoreError::Conflict);
        }
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
        let mut values = vec![
            (":next_attempt", n(next.attempt)),
            (":attempt", n(w.attempt)),
            (":seq", n(w.seq)),
            (":type", s(w.event_type.as_str())),
            (":response", s(w.response.as_str())),
            (":answered", AttributeValue::Bool(next.answered)),
            (":next_end", s(end_req(next.end_request))),
            (":txn", s(w.transaction_id.as_str())),
            (":at", n(w.at.as_millis())),
        ];
        values.extend(sets_status(&w.call_id, next.status));
        if next.answered && !w.expected.answered {
            set.push("answered_at = if_not_exists(answered_at, :at)");
        }
        if next.status.is_terminal() {
            set.push("ended_at = :at");
        }
        if let Some(outcome) = w.outcome {
            set.push("outcome = :outcome");
            values.push((
                ":outcome",
                s(serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()),
            ));
        }
        if let Some(code) = &w.sip_code {
            set.push("sip_code = :sip");
            values.push((":sip", s(code.as_str())));
        }
        if let Some(error) = &w.error {
            set.push("last_error = :error");
            values.push((":error", s(error.as_str())));
        }
        if let Some(script) = &w.script_outcome {
            set.push("script_outcome = :script");
            values.push((":script", s(script.as_str())));
        }
        if let Some(keys) = &w.digits {
            set.push("digits = list_append(if_not_exists(digits, :no_digits), :digits)");
            values.push((":no_digits", AttributeValue::L(Vec::new())));
            values.push((":digits", AttributeValue::L(vec![s(keys.as_str())])));
        }
        if let Some(detection) = &w.detection {
            set.push("verdict = :verdict");
            values.push((":verdict", s(detection.verdict.as_str())));
            if let Some(ms) = detection.greeting_ms {
                set.push("greeting_ms = :greeting");
                values.push((":greeting", n(ms)));
            }
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
                values.extend([
                    (
                        ":shard",
                        s(lane_shard(lane, shard_of(&w.call_id, self.shards))),
                    ),
                    (":due_key", s(due_key(at, &w.call_id))),
                    (":due_at", n(at.as_millis())),
                ]);
            }
            DueChange::Clear => remove.extend(["due_shard", "due_key", "due_at"]),
        }
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let e = condition.guarding(&[("#status", "status"), ("#attempt", "attempt")], values);
        if let Some(entry) = &w.opt_out {
            return self.apply_with_opt_out(w, e, &update, entry).await;
        }
        if let Some(direct) = self.direct.as_ref().filter(|d| d.ready()) {
            let key = key(call_pk(&w.call_id), CALL_SK);
            let update = direct::Update {
                table: &self.table,
                key: &key,
                expression: &update,
                guard: &e,
                new_image,
            };
            let old = match direct.update_item(&update).await? {
                Updated::Written(item) => return Ok(Applied::Written(new_image.then_some(item))),
                Updated::Refused(old) => old.ok_or(StoreError::NotFound)?,
            };
            return Ok(w.refused_over(call_from_item(&old)?));
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(&w.call_id), CALL_SK)))
            .guarded(e)
            .update_expression(update)
            .return_values(if new_image {
                ReturnValue::AllNew
            } else {
                ReturnValue::None
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let failed = match out {
            Ok(out) => {
                return Ok(Applied::Written(
                    new_image.then(|| out.attributes.unwrap_or_default()),
                ));
            }
            Err(e) => refused_item(e)?.ok_or(StoreError::NotFound)?,
        };
        Ok(w.refused_over(call_from_item(&failed)?))
    }

    /// [`Self::apply_event`] of an event that opts the callee out: the call's update, the
    /// do-not-call entry and its bucket in the digest in one transaction, so the number is on
    /// the list exactly when the event is recorded. A refusal is judged from the call's old
    /// image, as for any event. A transaction returns no new image: [`Self::apply_event`]
    /// reads the record back after it (a second request, on this event only).
    async fn apply_with_opt_out(
        &self,
        w: &EventWrite,
        e: crate::condition::Expressions,
        update: &str,
        entry: &DncEntry,
    ) -> Result<Applied<Option<Item>>, StoreError> {
        let call = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(&w.call_id), CALL_SK)))
            .guarded(e)
            .update_expression(update)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        let (dnc_expression, dnc_values) = item::dnc_update(entry);
        let mut dnc = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(item::dnc_pk(&entry.e164), item::DNC_SK)))
            .update_expression(dnc_expression)
            .expression_attribute_names("#type", "type")
            .expression_attribute_names("#source", "source");
        for (name, value) in dnc_values {
            dnc = dnc.expression_attribute_values(name, value);
        }
        // The number's bucket in the do-not-call digest, in the same transaction: the
        // digest never lacks a listed number (`crate::dnc`).
        let items = vec![
            TransactWriteItem::builder().update(call).build(),
            TransactWriteItem::builder()
                .update(dnc.build().map_err(build_err)?)
                .build(),
            TransactWriteItem::builder()
                .update(crate::dnc::add_bucket_in(&self.table, &entry.e164)?)
                .build(),
        ];
        let answer = ddb::transact(
            &self.client,
            items,
            Duration::from_millis(5),
            None,
            |reasons| match reasons {
                [call, _, _] if failed_on_condition(call) => Some(Cancelled::Answer(Ok(Some(
                    call.item().cloned().ok_or(StoreError::NotFound),
                )))),
                [_, _, _] => Some(Cancelled::Retry),
                _ => None,
            },
        )
        .await?;
        match answer {
            None => Ok(Applied::Written(None)),
            Some(old) => Ok(w.refused_over(call_from_item(&old?)?)),
        }
    }

    /// [`DispatchStore::call`](outdial_core::ports::DispatchStore::call).
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn call(&self, id: &CallId) -> Result<CallRecord, StoreError> {
        call_from_item(&self.get(call_pk(id), CALL_SK).await?)
    }

    /// [`ApiStore::call_with_history`](outdial_core::admin::ApiStore::call_with_history).
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn call_with_history(
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

    /// [`DispatchStore::list_calls`](outdial_core::ports::DispatchStore::list_calls).
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn list_calls(
        &self,
        campaign: &CampaignId,
        status: Option<CallStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<CallRecord>, StoreError> {
        let (items, next) = self
            .campaign_calls(campaign, status, false, limit, cursor)
            .await?;
        Ok(Page { items, next })
    }

    /// [`SmaStore::call_by_transaction`].
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn call_by_transaction(
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

    /// [`SmaStore::record_orphan`].
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn record_orphan(
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

impl DynamoStore {
    /// [`DispatchStore::orphans`](outdial_core::ports::DispatchStore::orphans): one strongly
    /// consistent `Query` of the transaction's `ORPHAN#` partition, whose `SEQ#` keys sort
    /// in `Sequence` order.
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn orphans(&self, transaction: &TransactionId) -> Result<Vec<String>, StoreError> {
        let mut raw = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(format!("ORPHAN#{}", transaction.as_str())))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.try_next().await.map_err(map_err)? {
            raw.push(Reader::new(&item).s("raw")?.to_owned());
        }
        Ok(raw)
    }
}

impl SmaStore for DynamoStore {
    async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        Self::campaign(self, id).await
    }

    async fn apply_event(&self, write: &EventWrite) -> Result<Applied<()>, StoreError> {
        Self::record_event(self, write).await
    }

    async fn call_by_transaction(
        &self,
        transaction: &TransactionId,
    ) -> Result<Option<CallRecord>, StoreError> {
        Self::call_by_transaction(self, transaction).await
    }

    async fn record_orphan(
        &self,
        transaction_id: &str,
        seq: Sequence,
        event_type: &str,
        raw: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        Self::record_orphan(self, transaction_id, seq, event_type, raw, at).await
    }
}

fn history_from_item(item: &Item) -> Result<HistoryEntry, StoreError> {
    let r = Reader::new(item);
    let corrupt = |reason: String| StoreError::Corrupt {
        key: "EVT".into(),
        reason,
    };
    let attempt = Attempt::new(r.n("attempt")?).map_err(|e| corrupt(e.to_string()))?;
    let status = r
        .s("status")?
        .parse()
        .map_err(|e: UnknownStatus| corrupt(e.to_string()))?;
    Ok(HistoryEntry {
        attempt,
        seq: Sequence::new(r.n("seq")?),
        event_type: r.s("event_type")?.to_owned(),
        status,
        at: Timestamp::from_millis(r.n("at")?),
        actions: strings(item, HISTORY_ACTIONS).map_err(corrupt)?,
        detail: r.opt_s(HISTORY_DETAIL)?.map(str::to_owned),
        digits: strings(item, HISTORY_DIGITS).map_err(corrupt)?,
        sip_code: r.opt_s(HISTORY_SIP_CODE)?.map(str::to_owned),
        last_error: r.opt_s(HISTORY_LAST_ERROR)?.map(str::to_owned),
    })
}

/// A list of strings (L of S) of an event-history item; empty when absent (an item written
/// before the attribute was).
fn strings(item: &Item, name: &str) -> Result<Vec<String>, String> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| v.as_s().cloned())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{name} is not a list of strings")),
        Some(_) => Err(format!("{name} is not a list of strings")),
    }
}
