//! The API's store on DynamoDB ([`ApiStore`] on [`DynamoStore`]): idempotency records,
//! campaigns' status and counters, contacts appended to a running campaign and the
//! do-not-call list.
//!
//! Items this module writes, beside those of `docs/table.md`:
//!
//! | item | `PK` | `SK` | attributes |
//! |---|---|---|---|
//! | idempotency record | `IDEM#<key>` | `IDEM` | `fingerprint`, `state` (`IN_PROGRESS`, `DONE`), `owner`, `lease_until`, `started_at`; once done `status`, `content_type` and `body` or `parts`; `expires_at` a day on |
//! | part of a large answer | `IDEM#<key>` | `PART#<n, 4 digits>` | `body`: the answer's `n`-th slice; `expires_at` as its record |
//! | append | `APPEND#<append_id>` | `APPEND` | `campaign_id`, `contacts`, `at`, `expires_at` with the calls |
//! | do-not-call entry | `DNC#<e164>` | `DNC` | `e164`, `added_at` |
//! | do-not-call digest | `DNCSUM#<k>`, `DNCSUM#COMPLETE` | `DNCSUM` | see [`crate::dnc`] |
//!
//! A do-not-call check of more than `DIGEST_FROM` (100) numbers first reads the do-not-call
//! digest ([`crate::dnc`]) and looks up only the numbers whose bucket is set; until the
//! digest is marked complete it looks every number up.
//!
//! An answer can be far larger than the 400 KB an item may hold (every rejected row of a
//! 100,000-row upload), so a large answer is cut into parts written before the record turns
//! `DONE`: a reader that sees `DONE` finds every part, and one `Query` on the record's
//! partition reads the record and its parts in order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use outdial_core::admin::{
    ApiStore, AppendId, Appended, Begun, CampaignOverview, IdempotencyKey, ListedCampaign,
    StoredReply,
};
use outdial_core::counters::CampaignCounters;
use outdial_core::ids::{Attempt, CallId, CampaignId, E164};
use outdial_core::lifecycle::CallStatus;
use outdial_core::numbers::{CallerNumber, Member};
use outdial_core::policy::{DncEntry, DncSource, Policy, Reason};
use outdial_core::ports::{DispatchStore, HistoryEntry, Lane, Page, StoreError};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, NewCall};
use outdial_core::time::Timestamp;

use crate::condition::{Condition, Guarded};
use crate::counters::{add_to_counter, counters_from_item};
use crate::ddb::{
    self, Cancelled, build_err, failed_on_condition, map_err, refusal, refused_item,
    refused_on_condition, written,
};
use crate::dnc;
use crate::item::{
    self, CALL_SK, CAMPAIGN_SK, COUNTERS_SK, DNC_SK, EXPIRES_AT, Item, RETENTION_SECS, Reader,
    call_pk, campaign_from_item, campaign_pk, dnc_pk, n, s, shard_of_key,
};
use crate::store::{CallItems, DynamoStore};

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

/// `BatchGetItem`s in flight at once.
const READS_IN_FLIGHT: usize = 16;
/// The fewest distinct numbers a do-not-call check reads the digest for: up to one
/// `BatchGetItem` of entries, looking them all up costs no more than reading the digest.
const DIGEST_FROM: usize = 100;

fn idem_pk(key: &IdempotencyKey) -> String {
    format!("IDEM#{}", key.as_str())
}

fn append_pk(id: &AppendId) -> String {
    format!("APPEND#{}", id.as_str())
}

fn part_sk(n: usize) -> String {
    format!("PART#{n:04}")
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
    /// Reads the items with `keys` (only the attributes in `projection`) with parallel
    /// `BatchGetItem`s (see [`ddb::get_all`]).
    async fn get_all(
        &self,
        keys: impl Iterator<Item = Item>,
        projection: &str,
    ) -> Result<Vec<Item>, StoreError> {
        ddb::get_all(
            self.client(),
            self.table(),
            keys,
            projection,
            READS_IN_FLIGHT,
            false,
        )
        .await
    }

    /// The buckets set in the do-not-call digest among the parts `numbers` fall in, read
    /// strongly consistently with the digest's marker in one `BatchGetItem`; `None` while the
    /// digest is not known to be complete ([`crate::dnc`]).
    async fn dnc_digest(&self, numbers: &[&E164]) -> Result<Option<HashSet<u32>>, StoreError> {
        let parts: HashSet<String> = numbers
            .iter()
            .map(|n| dnc::part_pk(dnc::bucket(n)))
            .collect();
        let keys = std::iter::once(dnc::complete_key())
            .chain(parts.into_iter().map(|pk| item::key(pk, dnc::DIGEST_SK)));
        let items = ddb::get_all(
            self.client(),
            self.table(),
            keys,
            "PK, buckets",
            READS_IN_FLIGHT,
            true,
        )
        .await?;
        let complete = items.iter().any(
            |i| matches!(i.get(item::PK), Some(AttributeValue::S(pk)) if pk == dnc::COMPLETE_PK),
        );
        if !complete {
            return Ok(None);
        }
        let mut set = HashSet::new();
        for part in &items {
            set.extend(dnc::buckets_of(part)?);
        }
        Ok(Some(set))
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
        Ok(written(out)?.then_some(Begun::TakenOver))
    }
}

fn key_of(key: &IdempotencyKey) -> Item {
    item::key(idem_pk(key), IDEM_SK)
}

impl ApiStore for DynamoStore {
    async fn create_campaign(
        &self,
        campaign: &Campaign,
        calls: &[NewCall],
    ) -> Result<(), StoreError> {
        Self::create_campaign(self, campaign, calls).await
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        Self::campaign(self, id).await
    }

    async fn call(&self, id: &CallId) -> Result<CallRecord, StoreError> {
        Self::call(self, id).await
    }

    async fn call_with_history(
        &self,
        id: &CallId,
    ) -> Result<(CallRecord, Vec<HistoryEntry>), StoreError> {
        Self::call_with_history(self, id).await
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
                Err(e) => refused_item(e)?,
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
        if written(out)? {
            Ok(())
        } else {
            Err(StoreError::Conflict)
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
        // Refused: `owner` does not hold the key, which is left alone.
        written(out)?;
        Ok(())
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

    async fn list_campaigns(
        &self,
        status: Option<CampaignStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ListedCampaign>, StoreError> {
        Self::list_campaigns(self, status, limit, cursor).await
    }

    async fn set_status(
        &self,
        id: &CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
        now: Timestamp,
    ) -> Result<Campaign, StoreError> {
        let condition = Condition::new().exists(item::PK).one_of(
            "status",
            from.iter()
                .map(|st| (st.as_str().to_lowercase(), s(st.as_str()))),
        );
        if condition.is_unsatisfiable() {
            return Err(StoreError::Conflict);
        }
        let mut values = vec![(":to", s(to.as_str()))];
        values.extend(sweep_values(id, self.shards(), now));
        let e = condition.guarding(&[("#status", "status")], values);
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(campaign_pk(id), CAMPAIGN_SK)))
            .guarded(e)
            .update_expression(format!("SET #status = :to, {SWEEP}"))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(refusal)?;
        campaign_from_item(&out.attributes.unwrap_or_default())
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
        let done = ddb::get_item(self.client(), self.table(), marker.clone()).await?;
        if done.is_some() {
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
        reason: Reason,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        DispatchStore::cancel_waiting(self, id, attempt, reason, now).await
    }

    async fn add_do_not_call(&self, number: &E164, now: Timestamp) -> Result<(), StoreError> {
        // The bucket first: once the entry exists, the digest has it ([`crate::dnc`]).
        self.add_to_digest(number).await?;
        let entry = DncEntry {
            e164: number.clone(),
            added_at: now,
            source: DncSource::Api,
        };
        let (update, values) = item::dnc_update(&entry);
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(dnc_pk(number), DNC_SK)))
            .update_expression(update)
            .expression_attribute_names("#type", "type")
            .expression_attribute_names("#source", "source");
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        request.send().await.map_err(map_err)?;
        Ok(())
    }

    async fn do_not_call_entry(&self, number: &E164) -> Result<Option<DncEntry>, StoreError> {
        ddb::get_item(
            self.client(),
            self.table(),
            item::key(dnc_pk(number), DNC_SK),
        )
        .await?
        .as_ref()
        .map(item::dnc_from_item)
        .transpose()
    }

    async fn policy(&self) -> Result<(Policy, Option<Timestamp>), StoreError> {
        Self::policy(self).await
    }

    async fn put_policy(&self, policy: &Policy, now: Timestamp) -> Result<(), StoreError> {
        let spec = serde_json::to_string(policy).map_err(|e| StoreError::Other(Box::new(e)))?;
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(
                item::key(item::POLICY_PK.to_owned(), item::POLICY_SK)
                    .into_iter()
                    .chain([
                        ("type".to_owned(), s("policy")),
                        ("spec".to_owned(), s(spec)),
                        ("updated_at".to_owned(), n(now.as_millis())),
                    ])
                    .collect(),
            ))
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn numbers(&self) -> Result<Vec<Member>, StoreError> {
        DynamoStore::numbers(self).await
    }

    async fn put_number(&self, number: &CallerNumber) -> Result<(), StoreError> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(
                item::NUMBERS_PK.to_owned(),
                &item::number_sk(&number.e164),
            )))
            .update_expression(
                "SET #type = :type, e164 = :e164, #pool = :pool, #number = :number, \
                 health_state = if_not_exists(health_state, :healthy)",
            )
            .expression_attribute_names("#type", "type")
            .expression_attribute_names("#pool", "pool")
            .expression_attribute_names("#number", "number");
        for (name, value) in item::number_registration(number)? {
            update = update.expression_attribute_values(format!(":{name}"), value);
        }
        update.send().await.map_err(map_err)?;
        Ok(())
    }

    async fn restore_number(&self, number: &E164) -> Result<(), StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(
                item::NUMBERS_PK.to_owned(),
                &item::number_sk(number),
            )))
            .condition_expression("attribute_exists(PK)")
            .update_expression(
                "SET health_state = :healthy REMOVE quarantine_reason, quarantined_at, \
                 h_attempts, h_answered, h_short, h_declined, h_rejected",
            )
            .expression_attribute_values(":healthy", s(item::HEALTHY))
            .send()
            .await;
        if written(out)? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn delete_number(&self, number: &E164) -> Result<(), StoreError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(item::key(
                item::NUMBERS_PK.to_owned(),
                &item::number_sk(number),
            )))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(map_err)?;
        if out.attributes.is_some_and(|a| !a.is_empty()) {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
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
        if written(out)? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn on_do_not_call(&self, numbers: &[E164]) -> Result<HashSet<E164>, StoreError> {
        let unique: Vec<&E164> = numbers
            .iter()
            .collect::<HashSet<&E164>>()
            .into_iter()
            .collect();
        // A list that one `BatchGetItem` looks up gains nothing from the digest; a longer one
        // is narrowed to the numbers whose bucket is set, once the digest is complete.
        let (candidates, consistent) = if unique.len() <= DIGEST_FROM {
            (unique, false)
        } else {
            match self.dnc_digest(&unique).await? {
                Some(set) => (
                    unique
                        .into_iter()
                        .filter(|n| set.contains(&dnc::bucket(n)))
                        .collect(),
                    true,
                ),
                None => (unique, false),
            }
        };
        let keys: Vec<Item> = candidates
            .into_iter()
            .map(|number| item::key(dnc_pk(number), DNC_SK))
            .collect();
        ddb::get_all(
            self.client(),
            self.table(),
            keys.into_iter(),
            "PK, e164",
            READS_IN_FLIGHT,
            consistent,
        )
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
fn sweep_values(
    id: &CampaignId,
    shards: u32,
    now: Timestamp,
) -> [(&'static str, AttributeValue); 3] {
    [
        (
            ":due_shard",
            s(item::lane_shard(
                Lane::Watch,
                shard_of_key(id.as_str(), shards),
            )),
        ),
        (":due_key", s(item::sweep_due_key(id, now))),
        (":due_at", n(now.as_millis())),
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
        let counters = add_to_counter(
            self.table(),
            &campaign.id,
            "contacts",
            contacts,
            Condition::new(),
        )?;
        let meta_key = item::key(campaign_pk(&campaign.id), CAMPAIGN_SK);
        let status = if campaign.status == CampaignStatus::Completed {
            let mut values = vec![(":active", s(CampaignStatus::Active.as_str()))];
            values.extend(sweep_values(&campaign.id, self.shards(), now));
            let e = Condition::new()
                .equals("status", s(CampaignStatus::Completed.as_str()))
                .guarding(&[("#status", "status")], values);
            let update = Update::builder()
                .table_name(self.table())
                .set_key(Some(meta_key))
                .guarded(e)
                .update_expression(format!("SET #status = :active, {SWEEP}"))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_err)?;
            TransactWriteItem::builder().update(update).build()
        } else {
            let e = Condition::new()
                .equals("status", s(campaign.status.as_str()))
                .guarding(&[], []);
            let check = ConditionCheck::builder()
                .table_name(self.table())
                .set_key(Some(meta_key))
                .guarded(e)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_err)?;
            TransactWriteItem::builder().condition_check(check).build()
        };
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(counters).build(),
            status,
        ];
        ddb::transact(
            self.client(),
            items,
            Duration::from_millis(10),
            Appended::Written,
            |reasons| match reasons {
                [marker, _, meta] => Some(if failed_on_condition(marker) {
                    Cancelled::Answer(Ok(Appended::AlreadyWritten))
                } else if let Some(refused) = refused_on_condition(meta) {
                    Cancelled::Answer(Err(refused))
                } else {
                    // Another transaction held the counters at that moment: try again.
                    Cancelled::Retry
                }),
                _ => None,
            },
        )
        .await
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
