//! [`DispatchStore`] on [`DynamoStore`]: the dispatcher's reads of due work and its guarded
//! changes to calls (claim, park, defer, release, end), each conditional on the [`Guard`]
//! that `outdial_core::dispatch` gives it, and the leases of dispatch shards.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use outdial_core::dispatch::{Guard, InIndex};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, TransactionId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::numbers::Member;
use outdial_core::policy::{Ledger, LedgerWrite, Policy, Reason};
use outdial_core::ports::{
    ClaimWrites, DispatchStore, Due, DuePage, Lane, Lease, NumberWrite, PacerMarks, Page,
    StoreError,
};
use outdial_core::record::{CallRecord, Campaign};
use outdial_core::time::Timestamp;

use super::{DynamoStore, bad_cursor, page_limit, sets_status};
use crate::condition::{Condition, Guarded};
use crate::counters::add_to_counter;
use crate::ddb::{
    self, Cancelled, build_err, failed_on_condition, map_err, refused_on_condition, written,
};
use crate::item::{
    self, CAMPAIGN_SK, COUNTERS_SK, DUE, EXPIRES_AT, Item, LEDGER_SK, Reader, call_from_item,
    call_pk, campaign_pk, dnc_pk, due_key, due_shard, key, lane_shard, ledger_pk, n, s, shard_of,
};

impl DynamoStore {
    /// The account's policy and when it was set; the empty policy when none was.
    ///
    /// # Errors
    /// Only transport and throttling errors, and a policy that cannot be read.
    pub async fn policy(&self) -> Result<(Policy, Option<Timestamp>), StoreError> {
        let item = ddb::get_item(
            &self.client,
            &self.table,
            key(item::POLICY_PK.to_owned(), item::POLICY_SK),
        )
        .await?;
        item::policy_from_item(item.as_ref())
    }

    /// The claim's write of a number's ledger: the new entries, only over the version read.
    fn ledger_update(&self, w: &LedgerWrite) -> Result<Update, StoreError> {
        let entries =
            serde_json::to_string(&w.ledger.entries).map_err(|e| StoreError::Other(Box::new(e)))?;
        let condition = if w.read == 0 {
            "attribute_not_exists(PK)"
        } else {
            "version = :read"
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(ledger_pk(&w.number), LEDGER_SK)))
            .update_expression(
                "SET #type = :type, e164 = :e164, entries = :entries, version = :version, \
                 expires_at = :expires",
            )
            .condition_expression(condition)
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", s("ledger"))
            .expression_attribute_values(":e164", s(w.number.as_str()))
            .expression_attribute_values(":entries", s(entries))
            .expression_attribute_values(":version", n(w.ledger.version))
            .expression_attribute_values(":expires", n(w.expires_at.as_secs()));
        if w.read != 0 {
            update = update.expression_attribute_values(":read", n(w.read));
        }
        update.build().map_err(build_err)
    }
}

impl DynamoStore {
    /// The claim's write of a caller ID's usage: only over the version read, while the
    /// number is registered and healthy.
    fn usage_update(&self, w: &NumberWrite) -> Result<Update, StoreError> {
        let condition = if w.read == 0 {
            "attribute_exists(PK) AND health_state = :healthy AND attribute_not_exists(usage_version)"
        } else {
            "attribute_exists(PK) AND health_state = :healthy AND usage_version = :read"
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                item::NUMBERS_PK.to_owned(),
                &item::number_sk(&w.number),
            )))
            .update_expression(
                "SET recent = :recent, #day = :day, day_count = :day_count, \
                 usage_version = :usage_version",
            )
            .condition_expression(condition)
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":healthy", s(item::HEALTHY));
        for (name, value) in item::number_usage(&w.usage) {
            update = update.expression_attribute_values(format!(":{name}"), value);
        }
        if w.read != 0 {
            update = update.expression_attribute_values(":read", n(w.read));
        }
        update.build().map_err(build_err)
    }

    /// Every caller ID, with its usage, read consistently, page after page.
    ///
    /// # Errors
    /// Only transport and throttling errors, and a number that cannot be read.
    pub async fn numbers(&self) -> Result<Vec<Member>, StoreError> {
        let mut members = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(item::NUMBERS_PK))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(map_err)?;
            for item in out.items() {
                members.push(item::member_from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(members),
            }
        }
    }
}

impl DispatchStore for DynamoStore {
    async fn pool(&self, name: &str) -> Result<Vec<Member>, StoreError> {
        let mut members = self.numbers().await?;
        members.retain(|m| m.number.pool == name);
        Ok(members)
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        Self::campaign(self, id).await
    }

    async fn call(&self, id: &CallId) -> Result<CallRecord, StoreError> {
        Self::call(self, id).await
    }

    async fn list_calls(
        &self,
        campaign: &CampaignId,
        status: Option<CallStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<CallRecord>, StoreError> {
        Self::list_calls(self, campaign, status, limit, cursor).await
    }

    async fn claim(
        &self,
        call: &CallRecord,
        now: Timestamp,
        watchdog_at: Timestamp,
        max_live: u32,
        writes: &ClaimWrites,
    ) -> Result<CallRecord, StoreError> {
        let mut values = vec![
            (
                ":shard",
                s(lane_shard(Lane::Watch, shard_of(&call.id, self.shards))),
            ),
            (":due_key", s(due_key(watchdog_at, &call.id))),
            (":due_at", n(watchdog_at.as_millis())),
            (":now", n(now.as_millis())),
            (":attempt", n(call.attempt)),
        ];
        values.extend(sets_status(&call.id, CallStatus::Dialing));
        let mut names = vec![("#status", "status"), ("#reason", item::REASON)];
        let mut set = String::from(
            "SET #status = :status, status_call = :status_call, due_shard = :shard, \
             due_key = :due_key, due_at = :due_at, updated_at = :now, dialed_at = :now, \
             slot = :attempt",
        );
        if let Some(w) = &writes.number {
            // `pooled`: the stream counts the attempt toward the number's health.
            values.push((":from", s(w.number.as_str())));
            values.push((":pooled", AttributeValue::Bool(true)));
            names.push(("#from", "from"));
            set.push_str(", #from = :from, pooled = :pooled");
        }
        let e = Condition::from(Guard::waiting(call.attempt)).guarding(&names, values);
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(&call.id), item::CALL_SK)))
            .guarded(e)
            .update_expression(format!("{set} REMOVE #reason"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        // The campaign's concurrency slot, taken in the same transaction while below its cap.
        let slot = add_to_counter(
            &self.table,
            &call.campaign_id,
            "live",
            1,
            Condition::new().absent_or_below("live", n(max_live)),
        )?;
        let mut claimed = call.clone();
        claimed.status = CallStatus::Dialing;
        claimed.due_at = Some(watchdog_at);
        claimed.updated_at = now;
        claimed.dialed_at = Some(now);
        claimed.reason = None;
        if let Some(w) = &writes.number {
            claimed.from = w.number.clone();
        }
        let mut items = vec![
            TransactWriteItem::builder().update(claim).build(),
            TransactWriteItem::builder().update(slot).build(),
        ];
        if let Some(ledger) = &writes.ledger {
            items.push(
                TransactWriteItem::builder()
                    .update(self.ledger_update(ledger)?)
                    .build(),
            );
        }
        if let Some(number) = &writes.number {
            items.push(
                TransactWriteItem::builder()
                    .update(self.usage_update(number)?)
                    .build(),
            );
        }
        ddb::transact(
            &self.client,
            items,
            Duration::from_millis(5),
            claimed,
            |reasons| {
                // The call, its slot, then the ledger and the number's usage when written.
                let [call, slot, guarded @ ..] = reasons else {
                    return None;
                };
                Some(if let Some(refused) = refused_on_condition(call) {
                    Cancelled::Answer(Err(refused))
                } else if failed_on_condition(slot) {
                    Cancelled::Answer(Err(StoreError::AtCapacity))
                } else if guarded.iter().any(failed_on_condition) {
                    Cancelled::Answer(Err(StoreError::Contended))
                } else {
                    Cancelled::Retry
                })
            },
        )
        .await
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
            .limit(page_limit(limit));
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
        reason: Reason,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let guard = Guard::waiting(attempt);
        self.end_call(
            call_id,
            guard,
            CallStatus::Cancelled,
            false,
            Ok(reason),
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
        let guard = Guard::waiting(attempt).in_index(InIndex::Listed);
        self.update_call(
            call_id,
            Condition::from(guard),
            "SET updated_at = :now REMOVE due_shard, due_key",
            &[],
            [(":now", n(now.as_millis()))],
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
                (st, Some(rest).filter(|r| !r.is_empty()))
            }
        };
        let (items, more) = self
            .campaign_calls(campaign, Some(status), true, limit, inner)
            .await?;
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
        let due_at = call.due_at.unwrap_or(not_before).max(not_before);
        let guard = Guard::waiting(call.attempt).in_index(InIndex::Parked);
        self.update_call(
            &call.id,
            Condition::from(guard),
            "SET due_shard = :shard, due_key = :due_key, due_at = :due_at, updated_at = :now",
            &[],
            [
                (":shard", s(due_shard(shard_of(&call.id, self.shards)))),
                (":due_key", s(due_key(due_at, &call.id))),
                (":due_at", n(due_at.as_millis())),
                (":now", n(now.as_millis())),
            ],
        )
        .await
    }

    async fn defer(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        reason: Reason,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let guard = Guard::waiting(attempt).in_index(InIndex::Listed);
        self.update_call(
            call_id,
            Condition::from(guard),
            "SET due_key = :due_key, due_at = :due_at, updated_at = :now, #reason = :reason",
            &[("#reason", item::REASON)],
            [
                (":due_key", s(due_key(due_at, call_id))),
                (":due_at", n(due_at.as_millis())),
                (":now", n(now.as_millis())),
                (":reason", s(reason.code())),
            ],
        )
        .await
    }

    async fn campaign_swept(&self, id: &CampaignId, due_key: &str) -> Result<(), StoreError> {
        let e = Condition::new()
            .equals("due_key", s(due_key))
            .guarding(&[], []);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(id), CAMPAIGN_SK)))
            .guarded(e)
            .update_expression("REMOVE due_shard, due_key, due_at")
            .send()
            .await;
        // Refused: a newer request replaced the entry (or the campaign is gone); leave it.
        written(out)?;
        Ok(())
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

    async fn ledger(&self, number: &E164) -> Result<Ledger, StoreError> {
        let item =
            ddb::get_item(&self.client, &self.table, key(ledger_pk(number), LEDGER_SK)).await?;
        item::ledger_from_item(item.as_ref())
    }

    async fn policy(&self) -> Result<Policy, StoreError> {
        Self::policy(self).await.map(|(policy, _)| policy)
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
        self.update_status(
            call_id,
            Guard::unplaced(attempt),
            waiting,
            "due_shard = :shard, due_key = :due_key, due_at = :due_at, updated_at = :now \
             REMOVE slot",
            [
                (":shard", s(due_shard(shard_of(call_id, self.shards)))),
                (":due_key", s(due_key(due_at, call_id))),
                (":due_at", n(due_at.as_millis())),
                (":now", n(now.as_millis())),
            ],
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
        self.update_call(
            call_id,
            Condition::new().attempt(attempt),
            "SET transaction_id = :txn, placed_attempt = :attempt, updated_at = :now",
            &[],
            [
                (":attempt", n(attempt)),
                (":txn", s(transaction.as_str())),
                (":now", n(now.as_millis())),
            ],
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
        let guard = Guard::unplaced(attempt);
        self.end_call(call_id, guard, status, true, Err(reason), now)
            .await
    }

    async fn give_up(
        &self,
        call_id: &CallId,
        guard: Guard,
        retry: Option<(Attempt, Timestamp)>,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some((attempt, due_at)) = retry else {
            return self
                .end_call(call_id, guard, CallStatus::Lost, false, Err(reason), now)
                .await;
        };
        self.update_call(
            call_id,
            Condition::from(guard),
            "SET #status = :status, status_call = :status_call, #attempt = :next_attempt, \
             answered = :answered, end_req = :no_end, last_error = :reason, \
             due_shard = :shard, due_key = :due_key, due_at = :due_at, updated_at = :now \
             REMOVE slot, outcome",
            &[("#status", "status"), ("#attempt", "attempt")],
            [
                (":next_attempt", n(attempt)),
                (":answered", AttributeValue::Bool(false)),
                (":no_end", s(item::NO_END_REQUEST)),
                (":reason", s(reason)),
                (":shard", s(due_shard(shard_of(call_id, self.shards)))),
                (":due_key", s(due_key(due_at, call_id))),
                (":due_at", n(due_at.as_millis())),
                (":now", n(now.as_millis())),
            ]
            .into_iter()
            .chain(sets_status(call_id, CallStatus::RetryWait)),
        )
        .await
    }

    async fn orphans(&self, transaction: &TransactionId) -> Result<Vec<String>, StoreError> {
        Self::orphans(self, transaction).await
    }

    async fn apply_event(
        &self,
        write: &outdial_core::ports::EventWrite,
    ) -> Result<outdial_core::ports::Applied, StoreError> {
        Self::apply_event(self, write).await
    }

    async fn rearm(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_call(
            call_id,
            Condition::from(Guard::live(attempt)),
            "SET due_shard = :shard, due_key = :due_key, due_at = :due_at, updated_at = :now",
            &[],
            [
                (
                    ":shard",
                    s(lane_shard(Lane::Watch, shard_of(call_id, self.shards))),
                ),
                (":due_key", s(due_key(due_at, call_id))),
                (":due_at", n(due_at.as_millis())),
                (":now", n(now.as_millis())),
            ],
        )
        .await
    }

    async fn lease(
        &self,
        shard: u32,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        hands_over_at: Timestamp,
    ) -> Result<Lease, StoreError> {
        let mut item = key(format!("LEASE#{shard}"), "LEASE");
        item.extend([
            ("type".to_owned(), s("lease")),
            ("owner".to_owned(), s(owner)),
            ("lease_until".to_owned(), n(until.as_millis())),
            ("hands_over_at".to_owned(), n(hands_over_at.as_millis())),
            (EXPIRES_AT.to_owned(), n(until.as_secs() + 3600)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(PK) OR #owner = :owner OR lease_until < :now \
                 OR attribute_exists(handed)",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now.as_millis()))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(out) => {
                let from = match out.attributes() {
                    Some(old) if Reader::new(old).s("owner")? != owner => {
                        old.get("handed").map(marks_from).transpose()?
                    }
                    _ => None,
                };
                Ok(Lease::Taken { from })
            }
            Err(e) => {
                let held = ddb::refused_item(e)?;
                let hands_over_at = match &held {
                    Some(item) => Reader::new(item)
                        .opt_n::<i64>("hands_over_at")?
                        .map(Timestamp::from_millis),
                    None => None,
                };
                Ok(Lease::Held { hands_over_at })
            }
        }
    }

    async fn hand_over(
        &self,
        shard: u32,
        owner: &str,
        marks: &PacerMarks,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("LEASE#{shard}"), "LEASE")))
            .update_expression("SET handed = :marks")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":marks", marks_item(marks))
            .send()
            .await;
        // Refused: the lease is not `owner`'s (any more); nothing to hand over.
        written(out)?;
        Ok(())
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
        // Refused: the lease is not `owner`'s (any more); leave it.
        written(out)?;
        Ok(())
    }
}

/// A lease's `handed` attribute: the account's mark (if any) and each campaign's.
fn marks_item(marks: &PacerMarks) -> AttributeValue {
    let mut map = std::collections::HashMap::new();
    if let Some(account) = marks.account {
        map.insert("account".to_owned(), n(account));
    }
    let campaigns = marks
        .campaigns
        .iter()
        .map(|(id, last)| (id.as_str().to_owned(), n(*last)))
        .collect();
    map.insert("campaigns".to_owned(), AttributeValue::M(campaigns));
    AttributeValue::M(map)
}

/// The pacing marks a lease's `handed` attribute holds.
fn marks_from(value: &AttributeValue) -> Result<PacerMarks, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: "LEASE".into(),
        reason,
    };
    let AttributeValue::M(map) = value else {
        return Err(corrupt("its handed marks are not a map".into()));
    };
    let r = Reader::new(map);
    let mut marks = PacerMarks {
        account: r.opt_n("account")?,
        ..PacerMarks::default()
    };
    if let Some(AttributeValue::M(campaigns)) = map.get("campaigns") {
        let r = Reader::new(campaigns);
        for id in campaigns.keys() {
            let campaign =
                CampaignId::parse(id).map_err(|e| corrupt(format!("its handed marks: {e}")))?;
            marks.campaigns.insert(campaign, r.n(id)?);
        }
    }
    Ok(marks)
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
