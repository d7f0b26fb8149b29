//! The DynamoDB store: [`DynamoStore`], the ports of `outdial-core` on the table of
//! `docs/table.md`. Campaigns, calls and the SMA's
//! [`SmaStore`](outdial_core::ports::SmaStore) are in `calls`, the dispatcher's
//! [`DispatchStore`](outdial_core::ports::DispatchStore) in `dispatch`, and the API's
//! [`ApiStore`](outdial_core::admin::ApiStore) in [`crate::admin`], with the account's list of
//! campaigns in `campaigns`; this module holds the struct and what they share: the guarded
//! update of a call and the listing of a campaign's calls.
//!
//! Every SMA event is one conditional `UpdateItem` on its call item. The condition carries
//! the `Sequence` guard and the state the handler computed from; when it fails,
//! `ReturnValuesOnConditionCheckFailure` hands back the item as it is, so a duplicate is
//! answered with its stored response and a stale event is told apart from a changed record
//! without a second request. Every change the dispatcher makes to a call is guarded the same
//! way, by the [`Guard`] its rules chose, written as a [`Condition`].

mod calls;
mod campaigns;
mod dispatch;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use outdial_core::dispatch::Guard;
use outdial_core::ids::{CallId, CampaignId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::policy::Reason;
use outdial_core::ports::StoreError;
use outdial_core::record::{CallRecord, Campaign, NewCall};
use outdial_core::time::Timestamp;

use crate::condition::{Condition, Guarded};
use crate::ddb::{self, map_err, refusal};
use crate::direct::DirectWrites;
use crate::item::{
    BY_CAMPAIGN, CALL_SK, Item, REASON, call_from_item, call_pk, key, n, new_call_item, s,
    status_call,
};

/// Batches in flight at once while a campaign is written.
const BATCH_CONCURRENCY: usize = 8;

/// The store on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    shards: u32,
    /// The SMA event's write without the SDK's pipeline, where the function set it up.
    direct: Option<Arc<DirectWrites>>,
}

impl DynamoStore {
    /// A store on `table`, spreading due work over `shards` dispatch shards.
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Self {
        Self {
            client,
            table: table.into(),
            shards: shards.max(1),
            direct: None,
        }
    }

    /// The same store, sending each SMA event's write through `direct` (once the SDK client
    /// has made its first request; see [`crate::direct`]). The SMA function's binary does
    /// this; everything else goes through the SDK client as before.
    #[must_use]
    pub fn with_direct_writes(mut self, direct: Arc<DirectWrites>) -> Self {
        self.direct = Some(direct);
        self
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
        ddb::get_item(&self.client, &self.table, key(pk, sk))
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Writes the items `items` yields with parallel `BatchWriteItem`s (see [`ddb::put_all`]).
    pub(crate) async fn put_all(
        &self,
        items: impl Iterator<Item = Item>,
    ) -> Result<(), StoreError> {
        ddb::put_all(&self.client, &self.table, items, BATCH_CONCURRENCY).await
    }

    /// A conditional `UpdateItem` on a call: `update`, with its own attribute `names` and
    /// `values`, if the call meets `condition`. [`StoreError::Conflict`] when the condition
    /// fails on an existing call, [`StoreError::NotFound`] when there is none.
    async fn update_call<'a>(
        &self,
        call_id: &CallId,
        condition: Condition,
        update: &str,
        names: &[(&str, &str)],
        values: impl IntoIterator<Item = (&'a str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        if condition.is_unsatisfiable() {
            return Err(StoreError::Conflict);
        }
        let e = condition.guarding(names, values);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(call_id), CALL_SK)))
            .guarded(e)
            .update_expression(update)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(refusal)?;
        Ok(())
    }

    /// [`Self::update_call`] of an update that moves the call to `status`: `update` is what
    /// it sets beside `status` and `status_call` (and removes), `values` its values.
    async fn update_status<'a>(
        &self,
        call_id: &CallId,
        guard: Guard,
        status: CallStatus,
        update: &str,
        values: impl IntoIterator<Item = (&'a str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        self.update_call(
            call_id,
            Condition::from(guard),
            &format!("SET #status = :status, status_call = :status_call, {update}"),
            &[("#status", "status")],
            values.into_iter().chain(sets_status(call_id, status)),
        )
        .await
    }

    /// Ends a call that meets `guard` with `status` (also as the attempt's `outcome` if
    /// `outcome`) and the reason in `last_error`, out of the `due` index and holding no
    /// concurrency slot.
    async fn end_call(
        &self,
        call_id: &CallId,
        guard: Guard,
        status: CallStatus,
        outcome: bool,
        reason: Result<Reason, &str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (text, code) = match reason {
            Ok(reason) => (reason.describe(), Some(reason)),
            Err(text) => (text, None),
        };
        let mut update = "last_error = :reason, ended_at = :now, updated_at = :now".to_owned();
        let mut values = vec![(":reason", s(text)), (":now", n(now.as_millis()))];
        if outcome {
            update = format!("outcome = :status, {update}");
        }
        let mut names = vec![("#status", "status")];
        if let Some(code) = code {
            update.push_str(", #reason = :code");
            values.push((":code", s(code.code())));
            names.push(("#reason", REASON));
        }
        update.push_str(" REMOVE due_shard, due_key, due_at, slot");
        self.update_call(
            call_id,
            Condition::from(guard),
            &format!("SET #status = :status, status_call = :status_call, {update}"),
            &names,
            values.into_iter().chain(sets_status(call_id, status)),
        )
        .await
    }

    /// One page of `campaign`'s calls from `byCampaign`: those in `status` (all when `None`),
    /// only those parked if `parked`, after the `status_call` of `cursor`; with the
    /// `status_call` the page stopped at, if it did.
    async fn campaign_calls(
        &self,
        campaign: &CampaignId,
        status: Option<CallStatus>,
        parked: bool,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<CallRecord>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CAMPAIGN)
            .limit(page_limit(limit))
            .expression_attribute_values(":c", s(campaign.as_str()));
        query = match status {
            Some(st) => query
                .key_condition_expression("campaign_id = :c AND begins_with(status_call, :st)")
                .expression_attribute_values(":st", s(format!("{}#", st.as_str()))),
            None => query.key_condition_expression("campaign_id = :c"),
        };
        if parked {
            query = query.filter_expression("attribute_not_exists(due_shard)");
        }
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
        Ok((items, next))
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

/// The values of an update that sets a call's status (`:status`, `:status_call`).
fn sets_status(call_id: &CallId, status: CallStatus) -> [(&'static str, AttributeValue); 2] {
    [
        (":status", s(status.as_str())),
        (":status_call", s(status_call(status, call_id))),
    ]
}

/// The `Limit` of a page of `limit` items: 1 to 1,000.
fn page_limit(limit: u32) -> i32 {
    i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000)
}

fn bad_cursor() -> StoreError {
    StoreError::Corrupt {
        key: "cursor".into(),
        reason: "not a cursor this API returned".into(),
    }
}

/// Rebuilds the index key a listing stopped at from its cursor (the `status_call` value).
fn cursor_key(campaign: &CampaignId, cursor: &str) -> Result<Item, StoreError> {
    let (status, id) = cursor.split_once('#').ok_or_else(bad_cursor)?;
    status.parse::<CallStatus>().map_err(|_| bad_cursor())?;
    let id = CallId::parse(id).map_err(|_| bad_cursor())?;
    let mut k = key(call_pk(&id), CALL_SK);
    k.insert("campaign_id".into(), s(campaign.as_str()));
    k.insert("status_call".into(), s(cursor));
    Ok(k)
}
