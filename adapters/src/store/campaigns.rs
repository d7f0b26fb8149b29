//! The account's campaigns on [`DynamoStore`]: [`ApiStore::list_campaigns`] from the sparse
//! `campaigns` index (partition `listed` = `campaign`, sort key `listed_key`, every attribute
//! projected), newest first, each campaign with its counters from one `BatchGetItem`.
//!
//! A status filter is applied to the items as they are read rather than as a
//! `FilterExpression`: DynamoDB bills a filtered query for every item it reads either way, and
//! reading them here tells the listing exactly where it stopped, so it follows the port's
//! contract to the campaign (the in-memory store implements the same rules).
//!
//! [`ApiStore::list_campaigns`]: outdial_core::admin::ApiStore::list_campaigns

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use outdial_core::admin::{CampaignOverview, LIST_READ_MAX, ListedCampaign};
use outdial_core::ports::{Page, StoreError};
use outdial_core::record::{Campaign, CampaignStatus};
use outdial_core::time::Timestamp;

use super::{DynamoStore, bad_cursor};
use crate::counters::counters_from_item;
use crate::ddb::{self, map_err};
use crate::item::{
    self, CAMPAIGN_SK, CAMPAIGNS, COUNTERS_SK, Item, LISTED, LISTED_CAMPAIGN, LISTED_KEY, Reader,
    campaign_from_item, campaign_pk, key, s,
};

/// Campaigns read per query while a status filter may skip some: the page's room when that is
/// more. A campaign item is one to a few KB, so a step reads some hundreds of KB at most.
const FILTERED_STEP: u32 = 100;

/// A campaign read from the index, with its position there.
struct Read {
    campaign: Campaign,
    completed_at: Option<Timestamp>,
    position: String,
}

impl DynamoStore {
    /// [`ApiStore::list_campaigns`](outdial_core::admin::ApiStore::list_campaigns).
    ///
    /// # Errors
    /// As that port's contract says.
    pub async fn list_campaigns(
        &self,
        status: Option<CampaignStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ListedCampaign>, StoreError> {
        let limit = limit.max(1);
        let mut start = cursor.map(start_key).transpose()?;
        let mut kept: Vec<Read> = Vec::new();
        let mut read: u32 = 0;
        let next = loop {
            // Up to one campaign past the page (it tells whether another page follows), at
            // least a step's worth while a filter may skip some, within the budget.
            let room = limit.saturating_add(1).saturating_sub(count(kept.len()));
            let step = match status {
                None => room,
                Some(_) => room.max(FILTERED_STEP),
            }
            .min(LIST_READ_MAX.saturating_sub(read));
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(CAMPAIGNS)
                .key_condition_expression("#listed = :listed")
                .expression_attribute_names("#listed", LISTED)
                .expression_attribute_values(":listed", s(LISTED_CAMPAIGN))
                .scan_index_forward(false)
                .limit(i32::try_from(step).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(map_err)?;
            let mut last_read = None;
            for found in out.items.unwrap_or_default() {
                read += 1;
                let r = Reader::new(&found);
                let position = r.s(LISTED_KEY)?.to_owned();
                let campaign = campaign_from_item(&found)?;
                if status.is_none_or(|st| st == campaign.status) {
                    kept.push(Read {
                        campaign,
                        completed_at: r.opt_n::<i64>("completed_at")?.map(Timestamp::from_millis),
                        position: position.clone(),
                    });
                    if count(kept.len()) > limit {
                        break;
                    }
                }
                last_read = Some(position);
            }
            if count(kept.len()) > limit {
                kept.truncate(limit as usize);
                break kept.last().map(|r| r.position.clone());
            }
            // The budget is spent: stop at the last campaign read, whether or not DynamoDB saw
            // more after it (it may name a last key even when none follows).
            if read >= LIST_READ_MAX {
                break last_read;
            }
            match out.last_evaluated_key {
                None => break None,
                Some(last) => start = Some(last),
            }
        };
        let mut counters = self.counters_of(&kept).await?;
        let items = kept
            .into_iter()
            .map(|r| ListedCampaign {
                overview: CampaignOverview {
                    counters: counters
                        .remove(&campaign_pk(&r.campaign.id))
                        .unwrap_or_default(),
                    campaign: r.campaign,
                },
                completed_at: r.completed_at,
            })
            .collect();
        Ok(Page { items, next })
    }

    /// The counters of `campaigns`, by their partition key, in one `BatchGetItem` (a page holds
    /// at most 100; more take one more each 100). A campaign without counters yet is absent.
    async fn counters_of(
        &self,
        campaigns: &[Read],
    ) -> Result<HashMap<String, outdial_core::counters::CampaignCounters>, StoreError> {
        if campaigns.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<Item> = campaigns
            .iter()
            .map(|r| key(campaign_pk(&r.campaign.id), COUNTERS_SK))
            .collect();
        ddb::get_all(&self.client, &self.table, keys.into_iter(), "", 1, false)
            .await?
            .iter()
            .map(|found| {
                let pk = Reader::new(found).s(item::PK)?.to_owned();
                Ok((pk, counters_from_item(found)?))
            })
            .collect()
    }
}

/// A count of items as the listing's `u32`.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The index key a listing continues after, from its cursor (a campaign's `listed_key`).
fn start_key(cursor: &str) -> Result<Item, StoreError> {
    let id = item::listed_campaign(cursor).ok_or_else(bad_cursor)?;
    let mut k = key(campaign_pk(&id), CAMPAIGN_SK);
    k.insert(LISTED.into(), s(LISTED_CAMPAIGN));
    k.insert(LISTED_KEY.into(), AttributeValue::S(cursor.to_owned()));
    Ok(k)
}
