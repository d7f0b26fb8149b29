//! [`ApiStore`] on [`MemoryStore`]: campaigns written with their calls, the account's list of
//! them, idempotency records with their leases, status changes with their sweep requests,
//! appends counted once, and the do-not-call list, each as `DynamoStore` does it
//! (`crate::admin`, `crate::store`).

use std::collections::HashSet;

use outdial_core::admin::{
    ApiStore, AppendId, Appended, Begun, CampaignOverview, IdempotencyKey, LIST_READ_MAX,
    ListedCampaign, StoredReply,
};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164};
use outdial_core::lifecycle::CallStatus;
use outdial_core::numbers::{CallerNumber, Health, HealthCounts, Member, Usage};
use outdial_core::policy::{DncEntry, DncSource, Policy, Reason};
use outdial_core::ports::{DispatchStore, HistoryEntry, Lane, Page, StoreError};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, NewCall};
use outdial_core::time::Timestamp;

use super::{
    AppendRow, CampaignRow, IdempotencyRow, IdempotencyState, Listing, MemoryStore, Tables,
    bad_cursor,
};
use crate::admin::IDEMPOTENCY_TTL;
use crate::item::{listed_campaign, listed_key, shard_of_key, sweep_due_key};

impl MemoryStore {
    /// The sweep request a status change at `now` leaves for the dispatcher: in the watch
    /// lane, sorted before every call.
    fn sweep(&self, id: &CampaignId, now: Timestamp) -> Listing {
        Listing {
            lane: Lane::Watch,
            shard: shard_of_key(id.as_str(), self.shards()),
            key: sweep_due_key(id, now),
        }
    }

    /// [`ApiStore::create_campaign`].
    ///
    /// # Errors
    /// None: the write is complete in one step, the campaign last.
    pub async fn create_campaign(
        &self,
        campaign: &Campaign,
        calls: &[NewCall],
    ) -> Result<(), StoreError> {
        self.hang_if_asked().await;
        let mut t = self.request();
        // A retried request for a campaign that is already complete writes nothing: its calls
        // may have moved on.
        if t.campaigns.contains_key(&campaign.id) {
            return Ok(());
        }
        t.put_calls(self, campaign, calls);
        t.campaigns.insert(
            campaign.id.clone(),
            CampaignRow {
                campaign: campaign.clone(),
                sweep: None,
                completed_at: None,
                announced_at: None,
            },
        );
        t.counters_of(&campaign.id).counters.contacts += count(calls.len());
        Ok(())
    }

    /// [`ApiStore::list_campaigns`]: the campaigns in `campaigns` index order (descending
    /// `listed_key`), read one by one under the contract's rules.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when `cursor` is not a campaign's `listed_key`.
    pub async fn list_campaigns(
        &self,
        status: Option<CampaignStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ListedCampaign>, StoreError> {
        let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        if cursor.is_some_and(|c| listed_campaign(c).is_none()) {
            return Err(bad_cursor());
        }
        let t = self.request();
        let mut listed: Vec<(String, &CampaignRow)> = t
            .campaigns
            .values()
            .map(|row| (listed_key(row.campaign.created_at, &row.campaign.id), row))
            .filter(|(position, _)| cursor.is_none_or(|c| position.as_str() < c))
            .collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0));
        let mut kept: Vec<(String, &CampaignRow)> = Vec::new();
        let mut read: u32 = 0;
        let mut next = None;
        for (position, row) in listed {
            read += 1;
            if status.is_none_or(|st| st == row.campaign.status) {
                kept.push((position.clone(), row));
                if kept.len() > limit {
                    kept.truncate(limit);
                    next = kept.last().map(|(p, _)| p.clone());
                    break;
                }
            }
            if read >= LIST_READ_MAX {
                next = Some(position);
                break;
            }
        }
        let items = kept
            .into_iter()
            .map(|(_, row)| ListedCampaign {
                overview: CampaignOverview {
                    campaign: row.campaign.clone(),
                    counters: t
                        .counters
                        .get(&row.campaign.id)
                        .map(|c| c.counters.clone())
                        .unwrap_or_default(),
                },
                completed_at: row.completed_at,
            })
            .collect();
        Ok(Page { items, next })
    }

    /// [`ApiStore::call_with_history`].
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such call.
    pub async fn call_with_history(
        &self,
        id: &CallId,
    ) -> Result<(CallRecord, Vec<HistoryEntry>), StoreError> {
        let t = self.request();
        let record = t
            .calls
            .get(id)
            .map(|row| row.record.clone())
            .ok_or(StoreError::NotFound)?;
        let history = t
            .history
            .get(id)
            .map(|items| items.values().map(|h| h.entry.clone()).collect())
            .unwrap_or_default();
        Ok((record, history))
    }
}

/// A number of calls as a counter's amount.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Tables {
    /// What a record under `key` means for a request with `fingerprint`, as `DynamoStore`
    /// judges it, taking it over for `owner` when its lease ran out; `None` when there is no
    /// record (or only an expired one).
    fn judge(
        &mut self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Option<Begun> {
        let row = self
            .idempotency
            .get_mut(key)
            .filter(|row| row.expires_at >= now.as_secs())?;
        if row.fingerprint != fingerprint {
            return Some(Begun::Mismatch);
        }
        Some(match &mut row.state {
            IdempotencyState::Done(reply) => Begun::Done(reply.clone()),
            IdempotencyState::InProgress {
                lease_until: held, ..
            } if *held > now => Begun::InProgress { lease_until: *held },
            IdempotencyState::InProgress {
                owner: holder,
                lease_until: held,
            } => {
                // The attempt that held it died: the record is this owner's now.
                *holder = owner.to_owned();
                *held = lease_until;
                Begun::TakenOver
            }
        })
    }

    /// The campaign `id`'s status moved to `to`, with a sweep request at `now`.
    fn move_campaign(
        &mut self,
        id: &CampaignId,
        to: CampaignStatus,
        sweep: Listing,
    ) -> Option<&Campaign> {
        let row = self.campaigns.get_mut(id)?;
        row.campaign.status = to;
        row.sweep = Some(sweep);
        Some(&row.campaign)
    }
}

impl ApiStore for MemoryStore {
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
        let mut t = self.request();
        if let Some(begun) = t.judge(key.as_str(), fingerprint, owner, now, lease_until) {
            return Ok(begun);
        }
        t.idempotency.insert(
            key.as_str().to_owned(),
            IdempotencyRow {
                fingerprint: fingerprint.to_owned(),
                state: IdempotencyState::InProgress {
                    owner: owner.to_owned(),
                    lease_until,
                },
                expires_at: now.plus(IDEMPOTENCY_TTL).as_secs(),
            },
        );
        Ok(Begun::Started)
    }

    async fn finish_request(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        reply: &StoredReply,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut t = self.request();
        let row = t
            .idempotency
            .get_mut(key.as_str())
            .filter(|row| {
                matches!(&row.state, IdempotencyState::InProgress { owner: holder, .. } if holder == owner)
            })
            .ok_or(StoreError::Conflict)?;
        row.state = IdempotencyState::Done(reply.clone());
        row.expires_at = now.plus(IDEMPOTENCY_TTL).as_secs();
        Ok(())
    }

    async fn abandon_request(&self, key: &IdempotencyKey, owner: &str) -> Result<(), StoreError> {
        let mut t = self.request();
        let held = t.idempotency.get(key.as_str()).is_some_and(|row| {
            matches!(&row.state, IdempotencyState::InProgress { owner: holder, .. } if holder == owner)
        });
        if held {
            t.idempotency.remove(key.as_str());
        }
        Ok(())
    }

    async fn overview(&self, id: &CampaignId) -> Result<CampaignOverview, StoreError> {
        let t = self.request();
        let campaign = t
            .campaigns
            .get(id)
            .map(|row| row.campaign.clone())
            .ok_or(StoreError::NotFound)?;
        let counters = t
            .counters
            .get(id)
            .map(|row| row.counters.clone())
            .unwrap_or_default();
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
        // No status to move from: refused before the campaign is looked at, as DynamoDB's
        // condition cannot be written.
        if from.is_empty() {
            return Err(StoreError::Conflict);
        }
        let sweep = self.sweep(id, now);
        let mut t = self.request();
        let current = t.campaigns.get(id).ok_or(StoreError::NotFound)?;
        if !from.contains(&current.campaign.status) {
            return Err(StoreError::Conflict);
        }
        t.move_campaign(id, to, sweep)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn append_calls(
        &self,
        campaign: &Campaign,
        append: &AppendId,
        calls: &[NewCall],
        now: Timestamp,
    ) -> Result<Appended, StoreError> {
        self.hang_if_asked().await;
        if campaign.status == CampaignStatus::Cancelled {
            return Err(StoreError::Conflict);
        }
        let sweep = self.sweep(&campaign.id, now);
        let mut t = self.request();
        if t.appends.contains_key(append.as_str()) {
            return Ok(Appended::AlreadyWritten);
        }
        // The calls that do not exist yet are written first, stamped with the time of the
        // append, whatever the campaign's status turns out to be (as in `DynamoStore`, whose
        // transaction checks it after them).
        let stamp = Campaign {
            created_at: now,
            ..campaign.clone()
        };
        let missing: Vec<&NewCall> = calls
            .iter()
            .filter(|c| !t.calls.contains_key(&c.id))
            .collect();
        t.put_calls(self, &stamp, missing);
        // Then the transaction: the campaign's status checked (or a completed campaign made
        // active again), the append recorded, its contacts counted.
        let stored = t
            .campaigns
            .get(&campaign.id)
            .map(|row| row.campaign.status)
            .ok_or(StoreError::NotFound)?;
        if stored != campaign.status {
            return Err(StoreError::Conflict);
        }
        if campaign.status == CampaignStatus::Completed {
            t.move_campaign(&campaign.id, CampaignStatus::Active, sweep);
        }
        t.appends.insert(
            append.as_str().to_owned(),
            AppendRow {
                campaign_id: campaign.id.clone(),
                contacts: calls.len(),
                at: now,
            },
        );
        t.counters_of(&campaign.id).counters.contacts += count(calls.len());
        Ok(Appended::Written)
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
        self.request()
            .do_not_call
            .entry(number.clone())
            .or_insert_with(|| DncEntry {
                e164: number.clone(),
                added_at: now,
                source: DncSource::Api,
            });
        Ok(())
    }

    async fn do_not_call_entry(&self, number: &E164) -> Result<Option<DncEntry>, StoreError> {
        Ok(self.request().do_not_call.get(number).cloned())
    }

    async fn policy(&self) -> Result<(Policy, Option<Timestamp>), StoreError> {
        Ok(self
            .request()
            .policy
            .clone()
            .map_or((Policy::default(), None), |(p, at)| (p, Some(at))))
    }

    async fn put_policy(&self, policy: &Policy, now: Timestamp) -> Result<(), StoreError> {
        self.request().policy = Some((policy.clone(), now));
        Ok(())
    }

    async fn numbers(&self) -> Result<Vec<Member>, StoreError> {
        Ok(self.request().numbers.values().cloned().collect())
    }

    async fn put_number(&self, number: &CallerNumber) -> Result<(), StoreError> {
        let mut t = self.request();
        let (usage, health) = t.numbers.get(&number.e164).map_or_else(
            || (Usage::default(), Health::Healthy),
            |m| (m.usage.clone(), m.number.health.clone()),
        );
        t.numbers.insert(
            number.e164.clone(),
            Member {
                number: CallerNumber {
                    health,
                    ..number.clone()
                },
                usage,
            },
        );
        Ok(())
    }

    async fn restore_number(&self, number: &E164) -> Result<(), StoreError> {
        let mut t = self.request();
        let member = t.numbers.get_mut(number).ok_or(StoreError::NotFound)?;
        member.number.health = Health::Healthy;
        if let Some((counts, _)) = t.number_health.get_mut(number) {
            *counts = HealthCounts::default();
        }
        Ok(())
    }

    async fn delete_number(&self, number: &E164) -> Result<(), StoreError> {
        let mut t = self.request();
        t.number_health.remove(number);
        t.numbers
            .remove(number)
            .map(|_| ())
            .ok_or(StoreError::NotFound)
    }

    async fn remove_do_not_call(&self, number: &E164) -> Result<(), StoreError> {
        self.request()
            .do_not_call
            .remove(number)
            .map(|_| ())
            .ok_or(StoreError::NotFound)
    }

    async fn on_do_not_call(&self, numbers: &[E164]) -> Result<HashSet<E164>, StoreError> {
        let t = self.request();
        Ok(numbers
            .iter()
            .filter(|n| t.do_not_call.contains_key(*n))
            .cloned()
            .collect())
    }
}
