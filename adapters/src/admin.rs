//! The API's store on DynamoDB ([`AdminStore`] on [`DynamoStore`]): idempotency records,
//! campaigns' status and counters, contacts appended to a running campaign and the
//! do-not-call list; and [`LambdaTrigger`], which starts the timers function at once.
//!
//! Items this module writes, beside those of `docs/table.md`:
//!
//! | item | `PK` | `SK` | attributes |
//! |---|---|---|---|
//! | idempotency record | `IDEM#<key>` | `IDEM` | `fingerprint`, `state` (`IN_PROGRESS`, `DONE`), `owner`, `lease_until`, `started_at`; once done `status`, `content_type` and `body` or `parts`; `expires_at` a day on |
//! | part of a large answer | `IDEM#<key>` | `PART#<n, 4 digits>` | `body`: the answer's `n`-th slice; `expires_at` as its record |
//! | append | `APPEND#<append_id>` | `APPEND` | `campaign_id`, `contacts`, `at`, `expires_at` with the calls |
//! | do-not-call entry | `DNC#<e164>` | `DNC` | `e164`, `added_at` |
//!
//! An answer can be far larger than the 400 KB an item may hold (every rejected row of a
//! 100,000-row upload), so a large answer is cut into parts written before the record turns
//! `DONE`: a reader that sees `DONE` finds every part, and one `Query` on the record's
//! partition reads the record and its parts in order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, KeysAndAttributes, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use futures::{StreamExt, TryStreamExt};
use outdial_core::admin::{
    AdminStore, AppendId, Appended, Begun, CampaignOverview, DispatchTrigger, IdempotencyKey,
    StoredReply,
};
use outdial_core::counters::CampaignCounters;
use outdial_core::ids::{Attempt, CallId, CampaignId, E164};
use outdial_core::ports::{BoxError, DispatchStore, Lane, StoreError};
use outdial_core::record::{Campaign, CampaignStatus, NewCall};
use outdial_core::time::Timestamp;

use crate::counters::counters_from_item;
use crate::item::{
    self, CALL_SK, CAMPAIGN_SK, COUNTERS_SK, DNC_SK, EXPIRES_AT, Item, RETENTION_SECS, Reader,
    call_pk, campaign_from_item, campaign_pk, dnc_pk, n, s, shard_of_key,
};
use crate::store::{CallItems, DynamoStore, map_err};

/// How long a request's answer is kept for its retries.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most of an answer kept in its record itself; a larger one goes into parts.
const INLINE_BODY: usize = 300_000;
/// The size of one part of a large answer (an item holds at most 400 KB).
const PART_BYTES: usize = 350_000;

const IDEM_SK: &str = "IDEM";
const APPEND_SK: &str = "APPEND";
const IN_PROGRESS: &str = "IN_PROGRESS";
const DONE: &str = "DONE";

/// `BatchGetItem` takes at most 100 keys.
const GET_BATCH: usize = 100;
/// Requests in flight at once for a batch of writes or reads.
const READS_IN_FLIGHT: usize = 16;
/// Attempts at a batch's unprocessed items or keys before giving up.
const BATCH_TRIES: u32 = 8;
/// Attempts at a transaction that collided with another on the same item.
const TRANSACTION_TRIES: u32 = 4;
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

fn idem_pk(key: &IdempotencyKey) -> String {
    format!("IDEM#{}", key.as_str())
}

fn append_pk(id: &AppendId) -> String {
    format!("APPEND#{}", id.as_str())
}

fn part_sk(n: usize) -> String {
    format!("PART#{n:04}")
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other(Box::new(e))
}

/// Whether a single-item write was refused on its condition.
fn condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

/// The reasons a transaction was cancelled, in the order of its items.
fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<&[CancellationReason]> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(c.cancellation_reasons()),
        _ => None,
    }
}

/// The reply a record holds, reading its parts when it was cut into some.
fn inline_reply(item: &Item) -> Result<Option<StoredReply>, StoreError> {
    let r = Reader::new(item);
    let Some(body) = r.opt_s("body")? else {
        return Ok(None);
    };
    Ok(Some(StoredReply {
        status: r.n("status")?,
        content_type: r.s("content_type")?.to_owned(),
        body: body.to_owned(),
    }))
}

/// Cuts `body` into slices of at most `max` bytes, on character boundaries.
fn slices(body: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        out.push(head);
        rest = tail;
    }
    out
}

impl DynamoStore {
    /// Reads the items with `keys` (only `PK` and the attributes in `projection`) with
    /// parallel `BatchGetItem`s, retrying unprocessed keys. Items that do not exist are
    /// simply not in the answer.
    async fn get_all(
        &self,
        keys: impl Iterator<Item = Item>,
        projection: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut keys = keys.peekable();
        let batches = std::iter::from_fn(move || {
            keys.peek()?;
            Some(keys.by_ref().take(GET_BATCH).collect::<Vec<Item>>())
        });
        let found: Vec<Vec<Item>> = futures::stream::iter(batches)
            .map(|batch| self.get_batch(batch, projection))
            .buffer_unordered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn get_batch(
        &self,
        mut keys: Vec<Item>,
        projection: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut delay = Duration::from_millis(25);
        for _ in 0..BATCH_TRIES {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression(projection)
                .build()
                .map_err(build_err)?;
            let out = self
                .client()
                .batch_get_item()
                .request_items(self.table(), request)
                .send()
                .await
                .map_err(map_err)?;
            if let Some(mut responses) = out.responses {
                found.extend(responses.remove(self.table()).unwrap_or_default());
            }
            keys = out
                .unprocessed_keys
                .and_then(|mut m| m.remove(self.table()))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(found);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        Err(StoreError::Throttled(
            format!(
                "{} keys still unprocessed after {BATCH_TRIES} tries",
                keys.len()
            )
            .into(),
        ))
    }

    /// The answer of a `DONE` record: inline, or put together from its parts.
    async fn stored_reply(
        &self,
        key: &IdempotencyKey,
        record: &Item,
    ) -> Result<StoredReply, StoreError> {
        if let Some(reply) = inline_reply(record)? {
            return Ok(reply);
        }
        let r = Reader::new(record);
        let parts: usize = r.n("parts")?;
        let mut pages = self
            .client()
            .query()
            .table_name(self.table())
            // Only this answer's parts: an expired answer under the same key may have left
            // more behind.
            .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :last")
            .expression_attribute_values(":pk", s(idem_pk(key)))
            .expression_attribute_values(":first", s(part_sk(0)))
            .expression_attribute_values(":last", s(part_sk(parts.saturating_sub(1))))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut body = String::new();
        let mut seen = 0;
        while let Some(item) = pages.try_next().await.map_err(map_err)? {
            body.push_str(Reader::new(&item).s("body")?);
            seen += 1;
        }
        if seen != parts {
            return Err(StoreError::Corrupt {
                key: idem_pk(key),
                reason: format!("{parts} parts expected, {seen} found"),
            });
        }
        Ok(StoredReply {
            status: r.n("status")?,
            content_type: r.s("content_type")?.to_owned(),
            body,
        })
    }

    /// What an existing record means for a request with `fingerprint`.
    async fn judge(
        &self,
        key: &IdempotencyKey,
        record: &Item,
        fingerprint: &str,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Begun>, StoreError> {
        let r = Reader::new(record);
        if r.s("fingerprint")? != fingerprint {
            return Ok(Some(Begun::Mismatch));
        }
        if r.s("state")? == DONE {
            return Ok(Some(Begun::Done(self.stored_reply(key, record).await?)));
        }
        let held_until = Timestamp::from_millis(r.n("lease_until")?);
        if held_until > now {
            return Ok(Some(Begun::InProgress {
                lease_until: held_until,
            }));
        }
        // The attempt that held it died: take it over, unless someone else just did.
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_of(key)))
            .condition_expression("#state = :in_progress AND #owner = :old")
            .update_expression("SET #owner = :owner, lease_until = :lease, started_at = :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":old", s(r.s("owner")?))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":lease", n(lease_until.as_millis()))
            .expression_attribute_values(":now", n(now.as_millis()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(Some(Begun::TakenOver)),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }
}

fn key_of(key: &IdempotencyKey) -> Item {
    item::key(idem_pk(key), IDEM_SK)
}

impl AdminStore for DynamoStore {
    async fn begin_request(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Begun, StoreError> {
        let expires = now.plus(IDEMPOTENCY_TTL).as_secs();
        let mut record = key_of(key);
        record.extend([
            ("type".to_owned(), s("idem")),
            ("fingerprint".to_owned(), s(fingerprint)),
            ("state".to_owned(), s(IN_PROGRESS)),
            ("owner".to_owned(), s(owner)),
            ("started_at".to_owned(), n(now.as_millis())),
            ("lease_until".to_owned(), n(lease_until.as_millis())),
            (EXPIRES_AT.to_owned(), n(expires)),
        ]);
        // A race between a takeover and a third request can send us round again; each round
        // either decides or sees the record change, so a few are plenty.
        for _ in 0..3 {
            let out = self
                .client()
                .put_item()
                .table_name(self.table())
                .set_item(Some(record.clone()))
                // TTL deletes lazily: an expired record counts as none.
                .condition_expression("attribute_not_exists(PK) OR expires_at < :now_s")
                .expression_attribute_values(":now_s", n(now.as_secs()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let existing = match out {
                Ok(_) => return Ok(Begun::Started),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        c.item().cloned()
                    }
                    _ => return Err(map_err(e)),
                },
            };
            // Deleted between the refusal and now: go round and put it.
            let Some(existing) = existing else { continue };
            if let Some(begun) = self
                .judge(key, &existing, fingerprint, owner, now, lease_until)
                .await?
            {
                return Ok(begun);
            }
        }
        Err(StoreError::Conflict)
    }

    async fn finish_request(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        reply: &StoredReply,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let expires = now.plus(IDEMPOTENCY_TTL).as_secs();
        let mut update = "SET #state = :done, #status = :status, content_type = :ct, \
                          finished_at = :now, expires_at = :exp"
            .to_owned();
        let mut values = HashMap::from([
            (":done".to_owned(), s(DONE)),
            (":status".to_owned(), n(reply.status)),
            (":ct".to_owned(), s(reply.content_type.as_str())),
            (":now".to_owned(), n(now.as_millis())),
            (":exp".to_owned(), n(expires)),
            (":owner".to_owned(), s(owner)),
            (":in_progress".to_owned(), s(IN_PROGRESS)),
        ]);
        if reply.body.len() <= INLINE_BODY {
            update.push_str(", body = :body");
            values.insert(":body".to_owned(), s(reply.body.as_str()));
        } else {
            // Parts first: once the record says DONE, every part is there.
            let parts: Vec<Item> = slices(&reply.body, PART_BYTES)
                .into_iter()
                .enumerate()
                .map(|(i, slice)| {
                    let mut part = item::key(idem_pk(key), &part_sk(i));
                    part.extend([
                        ("type".to_owned(), s("idem_part")),
                        ("body".to_owned(), s(slice)),
                        (EXPIRES_AT.to_owned(), n(expires)),
                    ]);
                    part
                })
                .collect();
            update.push_str(", parts = :parts");
            values.insert(":parts".to_owned(), n(parts.len()));
            self.put_all(parts.into_iter()).await?;
        }
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_of(key)))
            .condition_expression("#state = :in_progress AND #owner = :owner")
            .update_expression(update)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Conflict),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn abandon_request(&self, key: &IdempotencyKey, owner: &str) -> Result<(), StoreError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key_of(key)))
            .condition_expression("#state = :in_progress AND #owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn overview(&self, id: &CampaignId) -> Result<CampaignOverview, StoreError> {
        // COUNTERS and META sort next to each other: one read, two items.
        let out = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :counters AND :meta")
            .expression_attribute_values(":pk", s(campaign_pk(id)))
            .expression_attribute_values(":counters", s(COUNTERS_SK))
            .expression_attribute_values(":meta", s(CAMPAIGN_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        let mut campaign = None;
        let mut counters = CampaignCounters::default();
        for item in out.items.unwrap_or_default() {
            match Reader::new(&item).s(item::SK)? {
                CAMPAIGN_SK => campaign = Some(campaign_from_item(&item)?),
                COUNTERS_SK => counters = counters_from_item(&item)?,
                _ => {}
            }
        }
        let campaign = campaign.ok_or(StoreError::NotFound)?;
        Ok(CampaignOverview { campaign, counters })
    }

    async fn set_status(
        &self,
        id: &CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
        now: Timestamp,
    ) -> Result<Campaign, StoreError> {
        let mut values = HashMap::from([(":to".to_owned(), s(to.as_str()))]);
        let mut allowed = Vec::with_capacity(from.len());
        for (i, status) in from.iter().enumerate() {
            let name = format!(":from{i}");
            values.insert(name.clone(), s(status.as_str()));
            allowed.push(name);
        }
        if allowed.is_empty() {
            return Err(StoreError::Conflict);
        }
        values.extend(sweep_values(id, self.shards(), now));
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(campaign_pk(id), CAMPAIGN_SK)))
            .condition_expression(format!(
                "attribute_exists(PK) AND #status IN ({})",
                allowed.join(", ")
            ))
            .update_expression(format!("SET #status = :to, {SWEEP}"))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(out) => campaign_from_item(&out.attributes.unwrap_or_default()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Err(if c.item().is_some() {
                        StoreError::Conflict
                    } else {
                        StoreError::NotFound
                    })
                }
                _ => Err(map_err(e)),
            },
        }
    }

    async fn append_calls(
        &self,
        campaign: &Campaign,
        append: &AppendId,
        calls: &[NewCall],
        now: Timestamp,
    ) -> Result<Appended, StoreError> {
        if campaign.status == CampaignStatus::Cancelled {
            return Err(StoreError::Conflict);
        }
        let marker = item::key(append_pk(append), APPEND_SK);
        let done = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(marker.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        if done.item.is_some() {
            return Ok(Appended::AlreadyWritten);
        }
        // A retry of an append that died half way finds some calls written, and maybe
        // dialed already: those are left as they are.
        let keys: Vec<Item> = calls
            .iter()
            .map(|c| item::key(call_pk(&c.id), CALL_SK))
            .collect();
        let existing: HashSet<String> = self
            .get_all(keys.into_iter(), "PK")
            .await?
            .iter()
            .filter_map(|i| match i.get(item::PK) {
                Some(AttributeValue::S(pk)) => Some(pk.clone()),
                _ => None,
            })
            .collect();
        // Appended calls are stamped with the time of the append, not the campaign's.
        let stamp = Campaign {
            created_at: now,
            ..campaign.clone()
        };
        let missing: Vec<&NewCall> = calls
            .iter()
            .filter(|c| !existing.contains(&call_pk(&c.id)))
            .collect();
        self.put_all(CallItems {
            campaign: &stamp,
            calls: missing.into_iter(),
            shards: self.shards(),
        })
        .await?;
        self.commit_append(campaign, marker, calls.len(), now).await
    }

    async fn cancel_waiting_call(
        &self,
        id: &CallId,
        attempt: Attempt,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        DispatchStore::cancel_waiting(self, id, attempt, reason, now).await
    }

    async fn add_do_not_call(&self, number: &E164, now: Timestamp) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(dnc_pk(number), DNC_SK)))
            .update_expression(
                "SET #type = :type, e164 = :e164, added_at = if_not_exists(added_at, :now)",
            )
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", s("dnc"))
            .expression_attribute_values(":e164", s(number.as_str()))
            .expression_attribute_values(":now", n(now.as_millis()))
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn remove_do_not_call(&self, number: &E164) -> Result<(), StoreError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(item::key(dnc_pk(number), DNC_SK)))
            .condition_expression("attribute_exists(PK)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::NotFound),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn on_do_not_call(&self, numbers: &[E164]) -> Result<HashSet<E164>, StoreError> {
        let unique: HashSet<&E164> = numbers.iter().collect();
        let keys: Vec<Item> = unique
            .into_iter()
            .map(|number| item::key(dnc_pk(number), DNC_SK))
            .collect();
        self.get_all(keys.into_iter(), "PK, e164")
            .await?
            .iter()
            .map(|i| Reader::new(i).parsed("e164", E164::parse))
            .collect()
    }
}

/// The update that puts a campaign in the `due` index so a dispatcher sweeps it now.
const SWEEP: &str = "due_shard = :due_shard, due_key = :due_key, due_at = :due_at";

/// The `due` entry of a sweep request: in the watch lane, sorted before everything else (see
/// [`item::sweep_due_key`]), so the next dispatcher of the shard sweeps it first.
fn sweep_values(id: &CampaignId, shards: u32, now: Timestamp) -> [(String, AttributeValue); 3] {
    [
        (
            ":due_shard".to_owned(),
            s(item::lane_shard(
                Lane::Watch,
                shard_of_key(id.as_str(), shards),
            )),
        ),
        (":due_key".to_owned(), s(item::sweep_due_key(id, now))),
        (":due_at".to_owned(), n(now.as_millis())),
    ]
}

impl DynamoStore {
    /// The last step of an append, in one transaction: the append's record (once), the
    /// contacts counted, and the campaign's status checked (or a completed campaign made
    /// active again).
    async fn commit_append(
        &self,
        campaign: &Campaign,
        marker: Item,
        contacts: usize,
        now: Timestamp,
    ) -> Result<Appended, StoreError> {
        let mut record = marker;
        record.extend([
            ("type".to_owned(), s("append")),
            ("campaign_id".to_owned(), s(campaign.id.as_str())),
            ("contacts".to_owned(), n(contacts)),
            ("at".to_owned(), n(now.as_millis())),
            (EXPIRES_AT.to_owned(), n(now.as_secs() + RETENTION_SECS)),
        ]);
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(build_err)?;
        let counters = Update::builder()
            .table_name(self.table())
            .set_key(Some(item::key(campaign_pk(&campaign.id), COUNTERS_SK)))
            .update_expression("SET #type = :type, campaign_id = :campaign ADD contacts :contacts")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", s("counters"))
            .expression_attribute_values(":campaign", s(campaign.id.as_str()))
            .expression_attribute_values(":contacts", n(contacts))
            .build()
            .map_err(build_err)?;
        let meta_key = item::key(campaign_pk(&campaign.id), CAMPAIGN_SK);
        let status = if campaign.status == CampaignStatus::Completed {
            let mut values = HashMap::from([
                (
                    ":expected".to_owned(),
                    s(CampaignStatus::Completed.as_str()),
                ),
                (":active".to_owned(), s(CampaignStatus::Active.as_str())),
            ]);
            values.extend(sweep_values(&campaign.id, self.shards(), now));
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(self.table())
                        .set_key(Some(meta_key))
                        .condition_expression("#status = :expected")
                        .update_expression(format!("SET #status = :active, {SWEEP}"))
                        .expression_attribute_names("#status", "status")
                        .set_expression_attribute_values(Some(values))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_err)?,
                )
                .build()
        } else {
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(self.table())
                        .set_key(Some(meta_key))
                        .condition_expression("#status = :expected")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":expected", s(campaign.status.as_str()))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_err)?,
                )
                .build()
        };
        let mut delay = Duration::from_millis(10);
        for _ in 0..TRANSACTION_TRIES {
            let out = self
                .client()
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .update(counters.clone())
                        .build(),
                )
                .transact_items(status.clone())
                .send()
                .await;
            let err = match out {
                Ok(_) => return Ok(Appended::Written),
                Err(e) => e,
            };
            match cancellation_reasons(&err) {
                Some([marker, _, meta]) => {
                    if marker.code() == Some(CONDITION_FAILED) {
                        return Ok(Appended::AlreadyWritten);
                    }
                    if meta.code() == Some(CONDITION_FAILED) {
                        return Err(if meta.item().is_some() {
                            StoreError::Conflict
                        } else {
                            StoreError::NotFound
                        });
                    }
                    // Another transaction held the counters at that moment: try again.
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
}

/// Starts the timers function with an asynchronous `Invoke` (`InvocationType::Event`), so the
/// API's answer never waits for a dispatcher.
#[derive(Debug, Clone)]
pub struct LambdaTrigger {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaTrigger {
    /// A trigger for the function named (or ARN'd) `function`.
    #[must_use]
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }
}

/// What the timers function receives from the API: any payload starts a run; this one says
/// where it came from, for its logs.
const TRIGGER_PAYLOAD: &[u8] = br#"{"source":"outdial.api"}"#;

impl DispatchTrigger for LambdaTrigger {
    async fn dispatch_now(&self) -> Result<(), BoxError> {
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(TRIGGER_PAYLOAD))
            .send()
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_answers_are_cut_on_character_boundaries_and_join_back() {
        let body = "é".repeat(10) + "abc";
        let parts = slices(&body, 3);
        assert!(parts.iter().all(|p| p.len() <= 3 && !p.is_empty()));
        assert_eq!(parts.concat(), body);
        assert!(slices("", 3).is_empty());
    }
}
