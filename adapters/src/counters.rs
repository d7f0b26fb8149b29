//! Campaign counters on DynamoDB: the `COUNTERS` item the stream handler keeps, the call
//! images it reads them from, and the event-history items it derives.
//!
//! The counters item (`CAMPAIGN#<id>` / `COUNTERS`) sits beside the campaign's `META` item,
//! so one `Query` reads both. Its counters are flat numeric attributes (`st_COMPLETED`,
//! `out_BUSY`, `script_confirmed`, `verdict_machine`, ...) because `ADD` creates a missing
//! number as zero: one `UpdateItem` moves any set of counters, whether or not the item or the
//! attribute exists.
//!
//! Exactly once rests on one watermark per stream shard, `wm_<shard id>`: the last stream
//! `SequenceNumber` (zero-padded to 40 digits, so string order is numeric order) applied to
//! this campaign from that shard. The handler's update adds a batch's deltas and moves the
//! watermark only if the watermark is still below the batch's first record, so a re-delivered
//! record is refused instead of counted twice; the refusal returns the item
//! (`ReturnValuesOnConditionCheckFailure`), and with it the watermark, in the same round trip.
//! Beside each watermark, `wt_<shard id>` says when its record was written; two days on, no
//! record under it can be delivered again, and the watermark is dropped so that the item,
//! which every claim writes in a transaction, stays small.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Update,
};
use outdial_core::counters::{
    CallFacts, CampaignCounters, Completion, CounterStore, CounterWrite, HealthWrite, HistoryItem,
    LastEvent, Span, StreamPosition, WATERMARK_RETENTION,
};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence};
use outdial_core::lifecycle::{CallStatus, Outcome};
use outdial_core::machine::Verdict;
use outdial_core::numbers::HealthCounts;
use outdial_core::ports::StoreError;
use outdial_core::time::Timestamp;

use crate::condition::{Condition, Guarded};
use crate::ddb::{self, build_err, condition_failed, map_err, written};
use crate::item::{
    CAMPAIGN_SK, COUNTERS_SK, EXPIRES_AT, HEALTHY, Item, NUMBERS_PK, QUARANTINED, Reader, call_pk,
    campaign_pk, key, n, number_sk, s,
};

/// `type` of the counters item.
pub const COUNTERS_TYPE: &str = "counters";
/// `type` of an event-history item.
pub const EVENT_TYPE: &str = "event";
/// Prefix of a shard's watermark attribute.
pub const WATERMARK_PREFIX: &str = "wm_";
/// Prefix of the attribute holding when a shard's watermark record was written.
pub const WATERMARK_TIME_PREFIX: &str = "wt_";

/// Attempts at a counters update that a transaction (the dispatcher's claim, which adds to
/// `live` on the same item) held at that moment.
const CONFLICT_TRIES: u32 = 5;

/// The attribute counting calls in `status`.
#[must_use]
pub fn status_attr(status: CallStatus) -> String {
    format!("st_{}", status.as_str())
}

/// The attribute counting attempts that ended as `status`.
#[must_use]
pub fn outcome_attr(status: CallStatus) -> String {
    format!("out_{}", status.as_str())
}

/// The attribute counting calls whose script concluded `key` (a
/// [`outdial_core::counters::script_key`]).
#[must_use]
pub fn script_attr(key: &str) -> String {
    format!("script_{key}")
}

/// The attribute counting calls skipped (`skip`) or held (`held`) for the reason `code`:
/// `skip_<code>`, `held_<code>`, with the code's `-` written `_` (DynamoDB names allow
/// both; one spelling keeps them plain).
#[must_use]
pub fn reason_attr(kind: &str, code: &str) -> String {
    format!("{kind}_{}", code.replace('-', "_"))
}

/// The attribute counting calls whose answering-machine verdict is `key` (a
/// [`outdial_core::machine::Verdict::as_str`]): `verdict_person`, `verdict_machine`,
/// `verdict_undecided`.
#[must_use]
pub fn verdict_attr(key: &str) -> String {
    format!("verdict_{key}")
}

/// The watermark attribute of stream shard `shard`.
#[must_use]
pub fn watermark_attr(shard: &str) -> String {
    format!("{WATERMARK_PREFIX}{shard}")
}

/// When the newest record under shard `shard`'s watermark was written (epoch milliseconds).
#[must_use]
pub fn watermark_time_attr(shard: &str) -> String {
    format!("{WATERMARK_TIME_PREFIX}{shard}")
}

/// The shards whose watermark time is more than [`WATERMARK_RETENTION`] before `now`, with
/// that time: their records are out of the stream, so their watermarks can go.
#[must_use]
pub fn stale_watermarks(item: &Item, now: Timestamp) -> Vec<(String, String)> {
    let retention = i64::try_from(WATERMARK_RETENTION.as_millis()).unwrap_or(i64::MAX);
    let horizon = now.as_millis().saturating_sub(retention);
    item.iter()
        .filter_map(|(name, value)| {
            let shard = name.strip_prefix(WATERMARK_TIME_PREFIX)?;
            let AttributeValue::N(raw) = value else {
                return None;
            };
            let at: i64 = raw.parse().ok()?;
            (at < horizon).then(|| (shard.to_owned(), raw.clone()))
        })
        .collect()
}

/// The sort key of an event-history item: attempt and `Sequence`, fixed width, so a call's
/// history lists in order.
#[must_use]
pub fn history_sk(attempt: Attempt, seq: Sequence) -> String {
    format!("EVT#{:03}#{:010}", attempt.get(), seq.get())
}

/// Every counter of `c` with its attribute name, zeros left out.
#[must_use]
pub fn counter_attrs(c: &CampaignCounters) -> Vec<(String, i64)> {
    let mut attrs = vec![
        ("contacts".to_owned(), c.contacts),
        ("live".to_owned(), c.live),
        ("placed".to_owned(), c.placed),
        ("answered".to_owned(), c.answered),
        ("talk_ms".to_owned(), c.talk_ms),
        ("answer_wait_ms".to_owned(), c.answer_wait_ms),
    ];
    attrs.extend(c.by_status.iter().map(|(st, v)| (status_attr(*st), *v)));
    attrs.extend(c.outcomes.iter().map(|(st, v)| (outcome_attr(*st), *v)));
    attrs.extend(c.script_outcomes.iter().map(|(k, v)| (script_attr(k), *v)));
    attrs.extend(c.skipped.iter().map(|(k, v)| (reason_attr("skip", k), *v)));
    attrs.extend(c.held.iter().map(|(k, v)| (reason_attr("held", k), *v)));
    attrs.extend(c.verdicts.iter().map(|(k, v)| (verdict_attr(k), *v)));
    attrs.retain(|(_, v)| *v != 0);
    attrs
}

/// Reads a counters item. Watermarks, keys and attributes this version does not know are
/// skipped, so an item written by a newer handler still reads.
///
/// # Errors
/// [`StoreError::Corrupt`] when a counter is not a whole number.
pub fn counters_from_item(item: &Item) -> Result<CampaignCounters, StoreError> {
    let r = Reader::new(item);
    let mut c = CampaignCounters::default();
    for name in item.keys() {
        let slot = match name.as_str() {
            "contacts" => &mut c.contacts,
            "live" => &mut c.live,
            "placed" => &mut c.placed,
            "answered" => &mut c.answered,
            "talk_ms" => &mut c.talk_ms,
            "answer_wait_ms" => &mut c.answer_wait_ms,
            other => {
                let counted = if let Some(status) = other.strip_prefix("st_") {
                    status
                        .parse::<CallStatus>()
                        .ok()
                        .map(|st| c.by_status.entry(st).or_insert(0))
                } else if let Some(status) = other.strip_prefix("out_") {
                    status
                        .parse::<CallStatus>()
                        .ok()
                        .map(|st| c.outcomes.entry(st).or_insert(0))
                } else if let Some(key) = other.strip_prefix("script_") {
                    Some(c.script_outcomes.entry(key.to_owned()).or_insert(0))
                } else if let Some(code) = other.strip_prefix("skip_") {
                    Some(c.skipped.entry(code.replace('_', "-")).or_insert(0))
                } else if let Some(code) = other.strip_prefix("held_") {
                    Some(c.held.entry(code.replace('_', "-")).or_insert(0))
                } else if let Some(key) = other.strip_prefix("verdict_") {
                    Some(c.verdicts.entry(key.to_owned()).or_insert(0))
                } else {
                    None
                };
                match counted {
                    Some(slot) => slot,
                    None => continue,
                }
            }
        };
        *slot = r.n::<i64>(name)?;
    }
    c.by_status.retain(|_, v| *v != 0);
    c.outcomes.retain(|_, v| *v != 0);
    c.script_outcomes.retain(|_, v| *v != 0);
    c.skipped.retain(|_, v| *v != 0);
    c.held.retain(|_, v| *v != 0);
    c.verdicts.retain(|_, v| *v != 0);
    Ok(c)
}

/// The watermark of stream shard `shard` in a counters item, if it has one.
///
/// # Errors
/// [`StoreError::Corrupt`] when the attribute is not a sequence number.
pub fn watermark_from_item(item: &Item, shard: &str) -> Result<Option<StreamPosition>, StoreError> {
    let r = Reader::new(item);
    let name = watermark_attr(shard);
    r.opt_s(&name)?
        .map(|raw| {
            StreamPosition::parse(raw).map_err(|e| StoreError::Corrupt {
                key: format!("COUNTERS {name}"),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Reads what the stream handler needs from an image of a call item (`docs/table.md`).
///
/// # Errors
/// [`StoreError::Corrupt`] naming the attribute that is missing or malformed.
pub fn call_facts(item: &Item) -> Result<CallFacts, StoreError> {
    let r = Reader::new(item);
    let attempt = |name: &str| -> Result<Option<Attempt>, StoreError> {
        r.opt_n::<u32>(name)?
            .map(|a| {
                Attempt::new(a).map_err(|e| StoreError::Corrupt {
                    key: "call image".into(),
                    reason: format!("{name}: {e}"),
                })
            })
            .transpose()
    };
    let time = |name: &str| -> Result<Option<Timestamp>, StoreError> {
        Ok(r.opt_n::<i64>(name)?.map(Timestamp::from_millis))
    };
    let last_event = match (attempt("seq_attempt")?, r.opt_n::<u64>("last_seq")?) {
        (Some(attempt), Some(seq)) => Some(LastEvent {
            attempt,
            seq: Sequence::new(seq),
            event_type: r.s("last_type")?.to_owned(),
            // Read leniently: only the event history shows it, and a malformed one must not
            // hold up the counters.
            response: lenient_s(item, "last_response"),
        }),
        _ => None,
    };
    let answered = match item.get("answered") {
        None => false,
        Some(AttributeValue::Bool(b)) => *b,
        Some(_) => {
            return Err(StoreError::Corrupt {
                key: "call image".into(),
                reason: "answered is not a boolean".into(),
            });
        }
    };
    Ok(CallFacts {
        id: r.parsed("call_id", CallId::parse)?,
        campaign_id: r.parsed("campaign_id", CampaignId::parse)?,
        status: r.parsed("status", str::parse::<CallStatus>)?,
        attempt: attempt("attempt")?.ok_or_else(|| StoreError::Corrupt {
            key: "call image".into(),
            reason: "attempt is missing".into(),
        })?,
        answered,
        slot: item.contains_key("slot"),
        last_event,
        outcome: r
            .opt_s("outcome")?
            .map(|raw| {
                serde_json::from_value::<Outcome>(serde_json::Value::String(raw.to_owned()))
                    .map_err(|e| StoreError::Corrupt {
                        key: "call image".into(),
                        reason: format!("outcome: {e}"),
                    })
            })
            .transpose()?,
        script_outcome: r.opt_s("script_outcome")?.map(str::to_owned),
        verdict: r
            .opt_s("verdict")?
            .map(|raw| {
                Verdict::parse(raw).ok_or_else(|| StoreError::Corrupt {
                    key: "call image".into(),
                    reason: format!("verdict: unknown verdict {raw:?}"),
                })
            })
            .transpose()?,
        reason: r.opt_s(crate::item::REASON)?.map(str::to_owned),
        dialed_at: time("dialed_at")?,
        answered_at: time("answered_at")?,
        ended_at: time("ended_at")?,
        updated_at: time("updated_at")?.unwrap_or(Timestamp::EPOCH),
        expires_at: r.opt_n::<i64>(EXPIRES_AT)?,
        // Only a call dialed from a pool's number counts toward that number's health.
        from: if item.contains_key("pooled") {
            r.opt_s("from")?
                .map(E164::parse)
                .transpose()
                .map_err(|e| StoreError::Corrupt {
                    key: "call image".into(),
                    reason: format!("from: {e}"),
                })?
        } else {
            None
        },
        sip_code: r.opt_s("sip_code")?.map(str::to_owned),
        to: r.opt_s("to")?.map(str::to_owned),
        reference: r.opt_s(crate::item::REF)?.map(str::to_owned),
        caller_id: r.opt_s("from")?.map(str::to_owned),
        digits: crate::item::digits(item)?,
        last_error: lenient_s(item, "last_error"),
    })
}

/// A string attribute only the event history shows: absent when it is not a string.
fn lenient_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// The health counters' attribute names on a caller ID's item, with each field.
const HEALTH_ATTRS: [&str; 5] = [
    "h_attempts",
    "h_answered",
    "h_short",
    "h_declined",
    "h_rejected",
];

fn health_values(c: &HealthCounts) -> [i64; 5] {
    [c.attempts, c.answered, c.short, c.declined, c.rejected]
}

fn health_from_item(item: &Item) -> Result<HealthCounts, StoreError> {
    let r = Reader::new(item);
    let get = |name: &str| -> Result<i64, StoreError> { Ok(r.opt_n::<i64>(name)?.unwrap_or(0)) };
    Ok(HealthCounts {
        attempts: get(HEALTH_ATTRS[0])?,
        answered: get(HEALTH_ATTRS[1])?,
        short: get(HEALTH_ATTRS[2])?,
        declined: get(HEALTH_ATTRS[3])?,
        rejected: get(HEALTH_ATTRS[4])?,
    })
}

/// An event-history item's action types (L of S), in order.
pub const HISTORY_ACTIONS: &str = "actions";
/// An event-history item's summary of what mattered in its actions (S).
pub const HISTORY_DETAIL: &str = "detail";
/// The answers an event added to its call's `digits` (L of S, as on the call).
pub const HISTORY_DIGITS: &str = "digits";
/// The `sip_code` an event set (S).
pub const HISTORY_SIP_CODE: &str = "sip_code";
/// The `last_error` an event set (S).
pub const HISTORY_LAST_ERROR: &str = "last_error";

/// The event-history item of one SMA event (`CALL#<id>` / `EVT#<attempt>#<seq>`), which
/// `GET /calls/{id}` lists.
#[must_use]
pub fn history_item(h: &HistoryItem) -> Item {
    let mut item = key(
        call_pk(&h.call_id),
        &history_sk(h.entry.attempt, h.entry.seq),
    );
    item.extend([
        ("type".to_owned(), s(EVENT_TYPE)),
        ("call_id".to_owned(), s(h.call_id.as_str())),
        ("campaign_id".to_owned(), s(h.campaign_id.as_str())),
        ("attempt".to_owned(), n(h.entry.attempt)),
        ("seq".to_owned(), n(h.entry.seq)),
        ("event_type".to_owned(), s(h.entry.event_type.as_str())),
        ("status".to_owned(), s(h.entry.status.as_str())),
        ("at".to_owned(), n(h.entry.at.as_millis())),
    ]);
    // What the call heard and did: each attribute only when there is something to show, so
    // an event with nothing to show costs nothing more.
    let list = |values: &[String]| AttributeValue::L(values.iter().map(s).collect());
    if !h.entry.actions.is_empty() {
        item.insert(HISTORY_ACTIONS.to_owned(), list(&h.entry.actions));
    }
    if !h.entry.digits.is_empty() {
        item.insert(HISTORY_DIGITS.to_owned(), list(&h.entry.digits));
    }
    for (name, value) in [
        (HISTORY_DETAIL, &h.entry.detail),
        (HISTORY_SIP_CODE, &h.entry.sip_code),
        (HISTORY_LAST_ERROR, &h.entry.last_error),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(expires) = h.expires_at {
        item.insert(EXPIRES_AT.to_owned(), n(expires));
    }
    item
}

/// A campaign's counters, read consistently: what `GET /campaigns/{id}` shows and the
/// dispatcher's concurrency cap counts. A campaign whose counters were never written (no call
/// of it has reached the stream handler, and it has no contacts) has all counters at zero.
///
/// # Errors
/// Transport and throttling errors, and [`StoreError::Corrupt`] for an unreadable item.
pub async fn read_counters(
    client: &Client,
    table: &str,
    campaign: &CampaignId,
) -> Result<CampaignCounters, StoreError> {
    ddb::get_item(client, table, key(campaign_pk(campaign), COUNTERS_SK))
        .await?
        .map_or_else(
            || Ok(CampaignCounters::default()),
            |item| counters_from_item(&item),
        )
}

/// The update of `campaign`'s counters item that adds `amount` to `counter` if the item meets
/// `condition`, creating the item if need be: a step of the transactions that write a
/// campaign or append to one (`contacts`) and claim a call (`live`, below the campaign's cap).
///
/// # Errors
/// Only if the SDK refuses to build the request, which a table name never causes.
pub(crate) fn add_to_counter(
    table: &str,
    campaign: &CampaignId,
    counter: &str,
    amount: usize,
    condition: Condition,
) -> Result<Update, StoreError> {
    let e = condition.guarding(
        &[("#type", "type")],
        [
            (":type", s(COUNTERS_TYPE)),
            (":campaign", s(campaign.as_str())),
            (":amount", n(amount)),
        ],
    );
    Update::builder()
        .table_name(table)
        .set_key(Some(key(campaign_pk(campaign), COUNTERS_SK)))
        .guarded(e)
        .update_expression(format!(
            "SET #type = :type, campaign_id = :campaign ADD {counter} :amount"
        ))
        .build()
        .map_err(build_err)
}

/// The stream handler's store: counters items, campaign completion and event history on one
/// table.
#[derive(Debug, Clone)]
pub struct DynamoCounters {
    client: Client,
    table: String,
}

impl DynamoCounters {
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
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

    /// The campaign's counters (see [`read_counters`]).
    ///
    /// # Errors
    /// As [`read_counters`].
    pub async fn read(&self, campaign: &CampaignId) -> Result<CampaignCounters, StoreError> {
        read_counters(&self.client, &self.table, campaign).await
    }

    /// Drops the watermarks of shards whose records are all out of the stream (see
    /// [`stale_watermarks`]), each only if it did not move meanwhile. Best effort: a
    /// watermark left behind costs room, never correctness, so a failure is only logged.
    async fn prune(&self, campaign: &CampaignId, item: &Item, now: Timestamp) {
        let stale = stale_watermarks(item, now);
        if stale.is_empty() {
            return;
        }
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut removes = Vec::new();
        let mut conditions = Vec::new();
        for (i, (shard, at)) in stale.iter().enumerate() {
            names.insert(format!("#w{i}"), watermark_attr(shard));
            names.insert(format!("#t{i}"), watermark_time_attr(shard));
            values.insert(format!(":t{i}"), AttributeValue::N(at.clone()));
            removes.push(format!("#w{i}, #t{i}"));
            conditions.push(format!("#t{i} = :t{i}"));
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(campaign), COUNTERS_SK)))
            .condition_expression(conditions.join(" AND "))
            .update_expression(format!("REMOVE {}", removes.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match out {
            Ok(_) => {
                tracing::info!(campaign = %campaign, shards = stale.len(), "watermarks of drained shards dropped")
            }
            Err(e) if condition_failed(&e) => {}
            Err(e) => tracing::warn!(
                campaign = %campaign,
                error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                "dropping stale watermarks failed; they stay until a later batch"
            ),
        }
    }
}

impl CounterStore for DynamoCounters {
    async fn apply(
        &self,
        campaign: &CampaignId,
        span: &Span,
        delta: &CampaignCounters,
    ) -> Result<CounterWrite, StoreError> {
        let shard = span.shard.as_str();
        let mut names = HashMap::from([
            ("#type".to_owned(), "type".to_owned()),
            ("#wm".to_owned(), watermark_attr(shard)),
        ]);
        let mut values = HashMap::from([
            (":type".to_owned(), s(COUNTERS_TYPE)),
            (":campaign".to_owned(), s(campaign.as_str())),
            (":first".to_owned(), s(span.first.as_str())),
            (":last".to_owned(), s(span.last.as_str())),
        ]);
        let mut update = "SET #type = :type, campaign_id = :campaign, #wm = :last".to_owned();
        if let Some(at) = span.written_at {
            update.push_str(", #wt = :wt");
            names.insert("#wt".to_owned(), watermark_time_attr(shard));
            values.insert(":wt".to_owned(), n(at.as_millis()));
        }
        let mut adds = Vec::new();
        for (i, (name, v)) in counter_attrs(delta).into_iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            names.insert(format!("#c{i}"), name);
            values.insert(format!(":c{i}"), n(v));
        }
        if !adds.is_empty() {
            update.push_str(" ADD ");
            update.push_str(&adds.join(", "));
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(campaign), COUNTERS_SK)))
            .condition_expression("attribute_not_exists(#wm) OR #wm < :first")
            .update_expression(update)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let mut delay = Duration::from_millis(10);
        let mut tries = 0;
        loop {
            tries += 1;
            let err = match request.clone().send().await {
                Ok(out) => {
                    let item = out.attributes.unwrap_or_default();
                    if let Some(at) = span.written_at {
                        self.prune(campaign, &item, at).await;
                    }
                    return Ok(CounterWrite::Applied(counters_from_item(&item)?));
                }
                Err(e) => e,
            };
            match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    let item = refused.item().cloned().unwrap_or_default();
                    let watermark =
                        watermark_from_item(&item, shard)?.ok_or_else(|| StoreError::Corrupt {
                            key: format!("{}/{COUNTERS_SK}", campaign_pk(campaign)),
                            reason: format!("refused without a watermark for shard {shard}"),
                        })?;
                    return Ok(CounterWrite::Behind {
                        watermark,
                        counters: counters_from_item(&item)?,
                    });
                }
                Some(UpdateItemError::TransactionConflictException(_))
                    if tries < CONFLICT_TRIES =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                _ => return Err(map_err(err)),
            }
        }
    }

    async fn apply_number(
        &self,
        number: &E164,
        span: &Span,
        delta: &HealthCounts,
    ) -> Result<HealthWrite, StoreError> {
        let shard = span.shard.as_str();
        let mut names = HashMap::from([("#wm".to_owned(), watermark_attr(shard))]);
        let mut values = HashMap::from([
            (":first".to_owned(), s(span.first.as_str())),
            (":last".to_owned(), s(span.last.as_str())),
        ]);
        let mut adds = Vec::new();
        for (i, (name, v)) in HEALTH_ATTRS.iter().zip(health_values(delta)).enumerate() {
            adds.push(format!("#h{i} :h{i}"));
            names.insert(format!("#h{i}"), (*name).to_owned());
            values.insert(format!(":h{i}"), n(v));
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(NUMBERS_PK.to_owned(), &number_sk(number))))
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(#wm) OR #wm < :first)",
            )
            .update_expression(format!("SET #wm = :last ADD {}", adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                Ok(HealthWrite::Applied {
                    counts: health_from_item(&item)?,
                    healthy: item
                        .get("health_state")
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|state| state == HEALTHY),
                })
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    match refused.item() {
                        // Not registered (or retired): nothing to count.
                        None => Ok(HealthWrite::Unregistered),
                        Some(item) if item.is_empty() => Ok(HealthWrite::Unregistered),
                        Some(item) => match watermark_from_item(item, shard)? {
                            Some(watermark) => Ok(HealthWrite::Behind { watermark }),
                            None => Ok(HealthWrite::Unregistered),
                        },
                    }
                }
                _ => Err(map_err(err)),
            },
        }
    }

    async fn quarantine(
        &self,
        number: &E164,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // By the health attributes alone (no read): `member_from_item` reads them over the
        // registration's JSON.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(NUMBERS_PK.to_owned(), &number_sk(number))))
            .condition_expression("health_state = :healthy")
            .update_expression(
                "SET health_state = :quarantined, quarantine_reason = :reason, \
                 quarantined_at = :at",
            )
            .expression_attribute_values(":healthy", s(HEALTHY))
            .expression_attribute_values(":quarantined", s(QUARANTINED))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":at", n(now.as_millis()))
            .send()
            .await;
        written(out)
    }

    async fn complete_campaign(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(campaign), CAMPAIGN_SK)))
            .condition_expression("#status = :active")
            .update_expression("SET #status = :completed, completed_at = :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s("ACTIVE"))
            .expression_attribute_values(":completed", s("COMPLETED"))
            .expression_attribute_values(":now", n(now.as_millis()))
            .send()
            .await;
        written(out)
    }

    async fn record_history(&self, items: &[HistoryItem]) -> Result<(), StoreError> {
        // One batch at a time.
        ddb::put_all(&self.client, &self.table, items.iter().map(history_item), 1).await
    }

    async fn watermark(
        &self,
        campaign: &CampaignId,
        shard: &str,
    ) -> Result<Option<StreamPosition>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(campaign), COUNTERS_SK)))
            .projection_expression("#wm")
            .expression_attribute_names("#wm", watermark_attr(shard))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        match out.item {
            Some(item) => watermark_from_item(&item, shard),
            None => Ok(None),
        }
    }

    async fn completion(&self, campaign: &CampaignId) -> Result<Option<Completion>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(campaign), CAMPAIGN_SK)))
            .projection_expression("#status, completed_at, announced_at")
            .expression_attribute_names("#status", "status")
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let r = Reader::new(&item);
        if r.opt_s("status")? != Some("COMPLETED") {
            return Ok(None);
        }
        Ok(Some(Completion {
            completed_at: Timestamp::from_millis(r.opt_n::<i64>("completed_at")?.unwrap_or(0)),
            announced: item.contains_key("announced_at"),
        }))
    }

    async fn mark_announced(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(campaign_pk(campaign), CAMPAIGN_SK)))
            .condition_expression("attribute_exists(PK)")
            .update_expression("SET announced_at = if_not_exists(announced_at, :now)")
            .expression_attribute_values(":now", n(now.as_millis()))
            .send()
            .await;
        written(out).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn counters_round_trip_through_their_attributes() {
        let c = CampaignCounters {
            contacts: 5,
            live: 1,
            by_status: BTreeMap::from([(CallStatus::Completed, 3), (CallStatus::Ringing, 1)]),
            placed: 4,
            answered: 3,
            outcomes: BTreeMap::from([(CallStatus::Completed, 3)]),
            script_outcomes: BTreeMap::from([("confirmed".to_owned(), 2)]),
            skipped: BTreeMap::from([("do-not-call".to_owned(), 2), ("cap".to_owned(), 1)]),
            held: BTreeMap::from([("unknown-timezone".to_owned(), 1)]),
            verdicts: BTreeMap::from([("person".to_owned(), 2), ("machine".to_owned(), 1)]),
            talk_ms: 90_000,
            answer_wait_ms: 12_000,
        };
        let mut item = key(
            campaign_pk(&CampaignId::parse("cmp_1").unwrap()),
            COUNTERS_SK,
        );
        for (name, v) in counter_attrs(&c) {
            item.insert(name, n(v));
        }
        item.insert(watermark_attr("shardId-1"), s("0042"));
        item.insert("st_SOMETHING_NEW".to_owned(), n(7));
        item.insert("st_BUSY".to_owned(), n(0));
        item.insert("verdict_undecided".to_owned(), n(0));
        assert_eq!(item["verdict_person"], n(2));
        assert_eq!(counters_from_item(&item).unwrap(), c);
        assert_eq!(
            watermark_from_item(&item, "shardId-1").unwrap(),
            Some(StreamPosition::parse("42").unwrap())
        );
        assert_eq!(watermark_from_item(&item, "shardId-2").unwrap(), None);
    }

    /// A call image as the stream carries it, answered, with `extra` attributes.
    fn answered_image(extra: &[(&str, AttributeValue)]) -> Item {
        let mut item = key("CALL#call_1".to_owned(), "CALL");
        item.extend([
            ("call_id".to_owned(), s("call_1")),
            ("campaign_id".to_owned(), s("cmp_1")),
            ("status".to_owned(), s("ANSWERED")),
            ("attempt".to_owned(), n(1)),
            ("answered".to_owned(), AttributeValue::Bool(true)),
        ]);
        item.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        item
    }

    #[test]
    fn a_call_image_gives_its_verdict_and_an_unknown_one_is_corrupt() {
        let none = call_facts(&answered_image(&[])).unwrap();
        assert_eq!(none.verdict, None);
        let judged = call_facts(&answered_image(&[
            ("verdict", s("machine")),
            ("greeting_ms", n(7400)),
        ]))
        .unwrap();
        assert_eq!(judged.verdict, Some(Verdict::Machine));
        assert!(matches!(
            call_facts(&answered_image(&[("verdict", s("fax"))])),
            Err(StoreError::Corrupt { reason, .. }) if reason.contains("verdict")
        ));
    }

    #[test]
    fn a_counter_that_is_not_a_number_is_corrupt() {
        let mut item = Item::new();
        item.insert("placed".to_owned(), s("many"));
        assert!(matches!(
            counters_from_item(&item),
            Err(StoreError::Corrupt { .. })
        ));
    }

    fn span(shard: &str, first: u64, last: u64, at_ms: i64) -> Span {
        Span {
            shard: shard.to_owned(),
            first: StreamPosition::parse(&first.to_string()).unwrap(),
            last: StreamPosition::parse(&last.to_string()).unwrap(),
            written_at: Some(Timestamp::from_millis(at_ms)),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watermarks_refuse_redeliveries_and_go_once_their_shard_is_out_of_the_stream() {
        let endpoint = outdial_local::dynamodb::shared_endpoint().unwrap();
        let ddb = outdial_local::tables::client(&endpoint);
        let table = outdial_local::tables::fresh_table(&ddb, "counters")
            .await
            .unwrap();
        let store = DynamoCounters::new(ddb.clone(), &table);
        let campaign = CampaignId::random();
        let one = CampaignCounters {
            placed: 1,
            ..CampaignCounters::default()
        };
        let t0 = 1_800_000_000_000;
        let hour = 3_600_000;
        let applied = |w: CounterWrite| match w {
            CounterWrite::Applied(c) => c,
            CounterWrite::Behind { watermark, .. } => panic!("refused at {watermark}"),
        };
        applied(
            store
                .apply(&campaign, &span("a", 1, 2, t0), &one)
                .await
                .unwrap(),
        );
        applied(
            store
                .apply(&campaign, &span("b", 5, 6, t0 + hour), &one)
                .await
                .unwrap(),
        );
        // A re-delivery of shard b is refused, with the watermark to trim it by.
        match store
            .apply(&campaign, &span("b", 6, 9, t0 + hour), &one)
            .await
            .unwrap()
        {
            CounterWrite::Behind {
                watermark,
                counters,
            } => {
                assert_eq!(watermark, StreamPosition::parse("6").unwrap());
                assert_eq!(counters.placed, 2);
            }
            CounterWrite::Applied(c) => panic!("applied twice: {c:?}"),
        }
        let raw = || async {
            ddb.get_item()
                .table_name(&table)
                .set_key(Some(key(campaign_pk(&campaign), COUNTERS_SK)))
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        };
        assert!(
            raw().await.contains_key("wm_a"),
            "shard a is still in the stream"
        );
        let now = applied(
            store
                .apply(&campaign, &span("b", 7, 9, t0 + 49 * hour), &one)
                .await
                .unwrap(),
        );
        assert_eq!(now.placed, 3);
        let item = raw().await;
        assert!(
            !item.contains_key("wm_a") && !item.contains_key("wt_a"),
            "{item:?}"
        );
        assert_eq!(
            watermark_from_item(&item, "b").unwrap(),
            Some(StreamPosition::parse("9").unwrap())
        );
    }

    /// The size DynamoDB bills an item by: each attribute's name and value (a number at
    /// most 21 bytes, a list 3 bytes and 1 a member besides its members).
    fn billed_size(item: &Item) -> usize {
        fn value(v: &AttributeValue) -> usize {
            match v {
                AttributeValue::S(s) => s.len(),
                AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
                other => panic!("not used here: {other:?}"),
            }
        }
        item.iter().map(|(k, v)| k.len() + value(v)).sum()
    }

    /// A call image after SMA event `seq` of type `event_type`, with `extra` attributes.
    fn after_event(seq: u64, event_type: &str, extra: &[(&str, AttributeValue)]) -> Item {
        let mut item = answered_image(&[
            ("seq_attempt", n(1)),
            ("last_seq", n(seq)),
            ("last_type", s(event_type)),
            (
                "updated_at",
                n(1_800_000_000_000_i64 + i64::try_from(seq).unwrap()),
            ),
            (EXPIRES_AT, n(1_807_776_000)),
        ]);
        item.insert(
            "call_id".to_owned(),
            s("call_0123456789abcdef0123456789abcdef"),
        );
        item.insert(
            "campaign_id".to_owned(),
            s("cmp_0123456789abcdef0123456789abcdef"),
        );
        item.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        item
    }

    fn event_item(old: &Item, new: &Item) -> Item {
        let old = call_facts(old).unwrap();
        let new = call_facts(new).unwrap();
        history_item(&outdial_core::counters::history(Some(&old), &new).unwrap())
    }

    #[test]
    fn an_event_item_keeps_the_actions_answered_and_what_the_event_set() {
        let response = serde_json::json!({"SchemaVersion": "1.0", "Actions": [
            {"Type": "Speak", "Parameters": {"CallId": "a", "Text": "Hello Ada, this is Acme \
                Clinic with a reminder of your appointment tomorrow at 9:30."}},
            {"Type": "SpeakAndGetDigits", "Parameters": {"CallId": "a",
                "SpeechParameters": {"Text": "Press 1 to confirm or 2 to cancel."},
                "FailureSpeechParameters": {"Text": "Sorry?"},
                "MinNumberOfDigits": 1, "MaxNumberOfDigits": 1}}
        ]})
        .to_string();
        let old = after_event(2, "RINGING", &[]);
        let new = after_event(3, "CALL_ANSWERED", &[("last_response", s(&response))]);
        let item = event_item(&old, &new);
        assert_eq!(
            item[HISTORY_ACTIONS],
            AttributeValue::L(vec![s("Speak"), s("SpeakAndGetDigits")])
        );
        assert_eq!(
            item[HISTORY_DETAIL],
            s(
                "Speak \"Hello Ada, this is Acme Clinic with a reminder of your appointment \
               tomorrow at 9:30.\"; SpeakAndGetDigits \"Press 1 to confirm or 2 to cancel.\""
            )
        );
        for absent in [HISTORY_DIGITS, HISTORY_SIP_CODE, HISTORY_LAST_ERROR] {
            assert!(!item.contains_key(absent), "{absent}: {item:?}");
        }
        // Within one write unit: the event's own attributes and these together.
        let bare = event_item(&old, &after_event(3, "CALL_ANSWERED", &[]));
        assert!(billed_size(&item) < 1024, "{}", billed_size(&item));
        assert!(billed_size(&item) - billed_size(&bare) < 250);

        // The callee's answer, then the hang-up with its code; an error set by the event.
        let answered = after_event(
            4,
            "ACTION_SUCCESSFUL",
            &[
                ("digits", AttributeValue::L(vec![s("1")])),
                (
                    "last_response",
                    s(r#"{"Actions":[{"Type":"Hangup","Parameters":{"SipResponseCode":"0"}}]}"#),
                ),
            ],
        );
        let item = event_item(&new, &answered);
        assert_eq!(item[HISTORY_DIGITS], AttributeValue::L(vec![s("1")]));
        assert_eq!(item[HISTORY_DETAIL], s("Hangup 0"));
        let hung_up = after_event(
            5,
            "HANGUP",
            &[
                ("digits", AttributeValue::L(vec![s("1")])),
                ("sip_code", s("0")),
                ("last_error", s("ACTION_FAILED: Hangup failed")),
                (
                    "last_response",
                    s(r#"{"SchemaVersion":"1.0","Actions":[]}"#),
                ),
            ],
        );
        let item = event_item(&answered, &hung_up);
        assert!(!item.contains_key(HISTORY_ACTIONS) && !item.contains_key(HISTORY_DETAIL));
        assert!(!item.contains_key(HISTORY_DIGITS), "no answer added");
        assert_eq!(item[HISTORY_SIP_CODE], s("0"));
        assert_eq!(item[HISTORY_LAST_ERROR], s("ACTION_FAILED: Hangup failed"));
    }

    #[test]
    fn a_bad_last_response_records_no_actions_and_reads_no_worse() {
        let old = after_event(2, "RINGING", &[]);
        for bad in [
            s("not JSON {"),
            s(""),
            s(r#"{"Actions": "Speak"}"#),
            s(r#"[{"Type": "Speak"}]"#),
            n(5),
            AttributeValue::L(vec![s("Speak")]),
        ] {
            let new = after_event(3, "CALL_ANSWERED", &[("last_response", bad.clone())]);
            let item = event_item(&old, &new);
            assert!(
                !item.contains_key(HISTORY_ACTIONS) && !item.contains_key(HISTORY_DETAIL),
                "{bad:?}: {item:?}"
            );
            assert_eq!(item["event_type"], s("CALL_ANSWERED"));
        }
        // An action without a `Type` is left out; the others stay.
        let new = after_event(
            3,
            "CALL_ANSWERED",
            &[(
                "last_response",
                s(
                    r#"{"Actions":[{"Parameters":{}},7,{"Type":"Pause","Parameters":{"DurationInMilliseconds":500}}]}"#,
                ),
            )],
        );
        let item = event_item(&old, &new);
        assert_eq!(item[HISTORY_ACTIONS], AttributeValue::L(vec![s("Pause")]));
        assert_eq!(item[HISTORY_DETAIL], s("Pause 500 ms"));
    }

    #[test]
    fn an_event_item_stays_bounded_whatever_it_was_answered_with() {
        let speak = serde_json::json!({
            "Type": "Speak",
            "Parameters": {"CallId": "a", "Text": "é".repeat(2_000)}
        });
        let response = serde_json::json!({"Actions": vec![speak; 12]}).to_string();
        let old = after_event(2, "RINGING", &[]);
        let new = after_event(
            3,
            "ACTION_FAILED",
            &[
                ("last_response", s(response)),
                ("digits", AttributeValue::L(vec![s("9".repeat(500)); 9])),
                ("sip_code", s("x".repeat(500))),
                (
                    "last_error",
                    s("ACTION_FAILED: ".to_owned() + &"ü".repeat(1_000)),
                ),
            ],
        );
        let item = event_item(&old, &new);
        let AttributeValue::L(actions) = &item[HISTORY_ACTIONS] else {
            panic!("{item:?}");
        };
        assert_eq!(actions.len(), outdial_core::counters::HISTORY_MAX_ACTIONS);
        let detail = item[HISTORY_DETAIL].as_s().unwrap();
        assert!(detail.len() <= outdial_core::counters::DETAIL_MAX_BYTES);
        assert!(
            detail.starts_with("Speak \"éé") && detail.ends_with('…'),
            "{detail}"
        );
        let AttributeValue::L(digits) = &item[HISTORY_DIGITS] else {
            panic!("{item:?}");
        };
        assert_eq!(digits.len(), outdial_core::counters::HISTORY_MAX_DIGITS);
        assert!(digits.iter().all(|d| d.as_s().unwrap().len() <= 64));
        assert!(item[HISTORY_SIP_CODE].as_s().unwrap().len() <= 32);
        assert!(item[HISTORY_LAST_ERROR].as_s().unwrap().len() <= 256);
        assert!(billed_size(&item) < 2048, "{}", billed_size(&item));
    }

    #[test]
    fn history_keys_list_a_call_in_event_order() {
        let a = history_sk(Attempt::FIRST, Sequence::new(9));
        let b = history_sk(Attempt::FIRST, Sequence::new(10));
        let c = history_sk(Attempt::FIRST.next(), Sequence::new(1));
        assert_eq!(a, "EVT#001#0000000009");
        assert!(a < b && b < c);
    }
}
