//! [`DispatchStore`] on [`MemoryStore`]: due work read a page at a time, the claim with its
//! concurrency slot, and every guarded change the dispatcher makes, each admitted exactly when
//! its core [`Guard`] admits the record, as `DynamoStore` writes them; and the shard leases.

use outdial_core::dispatch::{Guard, InIndex};
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence, TransactionId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::numbers::Member;
use outdial_core::policy::{Ledger, Policy, Reason};
use outdial_core::ports::{
    Applied, ClaimWrites, DispatchStore, Due, DuePage, EventWrite, Lane, Lease, PacerMarks, Page,
    StoreError,
};
use outdial_core::record::{CallRecord, Campaign};
use outdial_core::time::Timestamp;

use super::{LeaseRow, MemoryStore, Tables, bad_cursor, outcome_of, page_limit};
use crate::item::{CALL_SK, CAMPAIGN_SK, call_pk, campaign_pk};

impl Tables {
    /// Ends the call `id` that `guard` admits as `status` (also its `outcome` if `outcome`),
    /// with `reason` in `last_error`, out of the `due` index and holding no slot: what
    /// `DynamoStore`'s `end_call` writes. A status that is no outcome leaves `outcome` as it is.
    fn end_call(
        &mut self,
        id: &CallId,
        guard: Guard,
        status: CallStatus,
        outcome: bool,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let row = self.guarded(id, guard)?;
        let r = &mut row.record;
        r.status = status;
        if outcome {
            if let Some(o) = outcome_of(status) {
                r.outcome = Some(o);
            }
        }
        r.last_error = Some(reason.to_owned());
        r.ended_at = Some(now);
        r.updated_at = now;
        r.due_at = None;
        row.listing = None;
        row.slot = None;
        Ok(())
    }
}

impl DispatchStore for MemoryStore {
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
        let listing = self.listing(Lane::Watch, &call.id, watchdog_at);
        let mut t = self.request();
        // The call's condition is judged first, as DynamoDB reports the transaction's items.
        t.guarded(&call.id, Guard::waiting(call.attempt))?;
        let live = t.counters.get(&call.campaign_id).map(|c| c.counters.live);
        if live.is_some_and(|live| live >= i64::from(max_live)) {
            return Err(StoreError::AtCapacity);
        }
        if let Some(w) = &writes.ledger {
            let stored = t.ledgers.get(&w.number).map_or(0, |l| l.version);
            if stored != w.read {
                return Err(StoreError::Contended);
            }
        }
        if let Some(w) = &writes.number {
            let usable = t
                .numbers
                .get(&w.number)
                .is_some_and(|m| m.number.health.is_healthy() && m.usage.version == w.read);
            if !usable {
                return Err(StoreError::Contended);
            }
        }
        if let Some(w) = &writes.ledger {
            t.ledgers.insert(w.number.clone(), w.ledger.clone());
        }
        if let Some(w) = &writes.number {
            if let Some(member) = t.numbers.get_mut(&w.number) {
                member.usage = w.usage.clone();
            }
        }
        t.counters_of(&call.campaign_id).counters.live += 1;
        let row = t.guarded(&call.id, Guard::waiting(call.attempt))?;
        row.record.status = CallStatus::Dialing;
        row.record.due_at = Some(watchdog_at);
        row.record.updated_at = now;
        row.listing = Some(listing);
        row.dialed_at = Some(now);
        row.record.dialed_at = Some(now);
        row.slot = Some(call.attempt);
        row.record.reason = None;
        if let Some(w) = &writes.number {
            row.record.from = w.number.clone();
        }
        // The call as claimed, from the record the dispatcher read (as `DynamoStore` answers).
        let mut claimed = call.clone();
        claimed.status = CallStatus::Dialing;
        claimed.due_at = Some(watchdog_at);
        claimed.updated_at = now;
        claimed.dialed_at = Some(now);
        claimed.reason = None;
        if let Some(w) = &writes.number {
            claimed.from = w.number.clone();
        }
        Ok(claimed)
    }

    async fn pool(&self, name: &str) -> Result<Vec<Member>, StoreError> {
        let t = self.request();
        Ok(t.numbers
            .values()
            .filter(|m| m.number.pool == name)
            .cloned()
            .collect())
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
        let bound = until.plus(std::time::Duration::from_millis(1)).sort_key();
        let after = after.map(due_cursor).transpose()?;
        let t = self.request();
        let in_partition = |l: &super::Listing| {
            l.lane == lane
                && l.shard == shard
                && l.key < bound
                && after.as_ref().is_none_or(|a| l.key.as_str() > a.as_str())
        };
        let mut entries: Vec<(String, String, Due)> = t
            .calls
            .values()
            .filter_map(|row| {
                let l = row.listing.as_ref().filter(|l| in_partition(l))?;
                Some((
                    l.key.clone(),
                    call_pk(&row.record.id),
                    Due::Call(Box::new(row.record.clone())),
                ))
            })
            .chain(t.campaigns.values().filter_map(|row| {
                let l = row.sweep.as_ref().filter(|l| in_partition(l))?;
                Some((
                    l.key.clone(),
                    campaign_pk(&row.campaign.id),
                    Due::Campaign {
                        id: row.campaign.id.clone(),
                        due_key: l.key.clone(),
                    },
                ))
            }))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let limit = page_limit(limit);
        entries.truncate(limit);
        // As DynamoDB's `LastEvaluatedKey`: the entry a full page stopped at, `PK|SK|due_key`.
        let next = (entries.len() == limit)
            .then(|| {
                entries.last().map(|(key, pk, due)| {
                    let sk = match due {
                        Due::Call(_) => CALL_SK,
                        Due::Campaign { .. } => CAMPAIGN_SK,
                    };
                    format!("{pk}|{sk}|{key}")
                })
            })
            .flatten();
        Ok(DuePage {
            items: entries.into_iter().map(|(_, _, due)| due).collect(),
            next,
        })
    }

    async fn cancel_waiting(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        reason: Reason,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let guard = Guard::waiting(attempt);
        let mut t = self.request();
        t.end_call(
            call_id,
            guard,
            CallStatus::Cancelled,
            false,
            reason.describe(),
            now,
        )?;
        if let Some(row) = t.calls.get_mut(call_id) {
            row.record.reason = Some(reason);
        }
        Ok(())
    }

    async fn park(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut t = self.request();
        // `due_at` stays: it is when the call would have been due, and unparking keeps it.
        let row = t.guarded(call_id, Guard::waiting(attempt).in_index(InIndex::Listed))?;
        row.record.updated_at = now;
        row.listing = None;
        Ok(())
    }

    async fn parked_calls(
        &self,
        campaign: &CampaignId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<CallRecord>, StoreError> {
        // As `DynamoStore` walks them: the campaign's QUEUED calls, then its RETRY_WAIT calls,
        // the cursor saying which and where (`<status>~<status_call>`).
        let (status, inner) = match cursor {
            None => (CallStatus::Queued, None),
            Some(c) => {
                let (st, rest) = c.split_once('~').ok_or_else(bad_cursor)?;
                let st: CallStatus = st.parse().map_err(|_| bad_cursor())?;
                (st, Some(rest).filter(|r| !r.is_empty()))
            }
        };
        let t = self.request();
        let (items, more) = t.campaign_calls(campaign, Some(status), true, limit, inner)?;
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
        let listing = self.dial_listing(&call.id, due_at);
        let mut t = self.request();
        let row = t.guarded(
            &call.id,
            Guard::waiting(call.attempt).in_index(InIndex::Parked),
        )?;
        row.record.due_at = Some(due_at);
        row.record.updated_at = now;
        row.listing = Some(listing);
        Ok(())
    }

    async fn defer(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        reason: Reason,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let key = crate::item::due_key(due_at, call_id);
        let mut t = self.request();
        let row = t.guarded(call_id, Guard::waiting(attempt).in_index(InIndex::Listed))?;
        row.record.due_at = Some(due_at);
        row.record.updated_at = now;
        row.record.reason = Some(reason);
        // Only the sort key moves: the call stays in its lane and shard.
        if let Some(listing) = row.listing.as_mut() {
            listing.key = key;
        }
        Ok(())
    }

    async fn campaign_swept(&self, id: &CampaignId, due_key: &str) -> Result<(), StoreError> {
        let mut t = self.request();
        // Left alone when a newer request replaced the entry (or the campaign is gone).
        if let Some(row) = t.campaigns.get_mut(id) {
            if row.sweep.as_ref().is_some_and(|s| s.key == due_key) {
                row.sweep = None;
            }
        }
        Ok(())
    }

    async fn live(&self, campaign: &CampaignId) -> Result<u32, StoreError> {
        let t = self.request();
        Ok(t.counters.get(campaign).map_or(0, |c| {
            u32::try_from(c.counters.live.max(0)).unwrap_or(u32::MAX)
        }))
    }

    async fn ledger(&self, number: &E164) -> Result<Ledger, StoreError> {
        Ok(self
            .request()
            .ledgers
            .get(number)
            .cloned()
            .unwrap_or_default())
    }

    async fn policy(&self) -> Result<Policy, StoreError> {
        Ok(self
            .request()
            .policy
            .as_ref()
            .map(|(p, _)| p.clone())
            .unwrap_or_default())
    }

    async fn do_not_call(&self, number: &E164) -> Result<bool, StoreError> {
        Ok(self.request().do_not_call.contains_key(number))
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
        let listing = self.dial_listing(call_id, due_at);
        let mut t = self.request();
        let row = t.guarded(call_id, Guard::unplaced(attempt))?;
        row.record.status = waiting;
        row.record.due_at = Some(due_at);
        row.record.updated_at = now;
        row.listing = Some(listing);
        row.slot = None;
        Ok(())
    }

    async fn placed(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        transaction: &TransactionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut t = self.request();
        let row = t.calls.get_mut(call_id).ok_or(StoreError::NotFound)?;
        if row.record.attempt != attempt {
            return Err(StoreError::Conflict);
        }
        row.record.transaction_id = Some(transaction.clone());
        row.record.placed_attempt = Some(attempt);
        row.record.updated_at = now;
        Ok(())
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
        self.request()
            .end_call(call_id, guard, status, true, reason, now)
    }

    async fn give_up(
        &self,
        call_id: &CallId,
        guard: Guard,
        retry: Option<(Attempt, Timestamp)>,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut t = self.request();
        let Some((attempt, due_at)) = retry else {
            return t.end_call(call_id, guard, CallStatus::Lost, false, reason, now);
        };
        let listing = self.dial_listing(call_id, due_at);
        let row = t.guarded(call_id, guard)?;
        let r = &mut row.record;
        r.status = CallStatus::RetryWait;
        r.attempt = attempt;
        r.answered = false;
        r.end_request = None;
        r.outcome = None;
        r.last_error = Some(reason.to_owned());
        r.due_at = Some(due_at);
        r.updated_at = now;
        row.listing = Some(listing);
        row.slot = None;
        Ok(())
    }

    async fn orphans(&self, transaction: &TransactionId) -> Result<Vec<String>, StoreError> {
        let t = self.request();
        Ok(t.orphans
            .range((transaction.as_str().to_owned(), Sequence::new(0))..)
            .take_while(|((txn, _), _)| txn == transaction.as_str())
            .map(|(_, orphan)| orphan.raw.clone())
            .collect())
    }

    async fn apply_event(&self, write: &EventWrite) -> Result<Applied, StoreError> {
        Self::apply_event(self, write).await
    }

    async fn rearm(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let listing = self.listing(Lane::Watch, call_id, due_at);
        let mut t = self.request();
        let row = t.guarded(call_id, Guard::live(attempt))?;
        row.record.due_at = Some(due_at);
        row.record.updated_at = now;
        row.listing = Some(listing);
        Ok(())
    }

    async fn lease(
        &self,
        shard: u32,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        hands_over_at: Timestamp,
    ) -> Result<Lease, StoreError> {
        let mut t = self.request();
        let from = match t.leases.get(&shard) {
            None => None,
            Some(l) if l.owner == owner || l.until < now => None,
            Some(l) => match &l.handed {
                Some(marks) => Some(marks.clone()),
                None => {
                    return Ok(Lease::Held {
                        hands_over_at: Some(l.hands_over_at),
                    });
                }
            },
        };
        t.leases.insert(
            shard,
            LeaseRow {
                owner: owner.to_owned(),
                until,
                hands_over_at,
                handed: None,
            },
        );
        Ok(Lease::Taken { from })
    }

    async fn hand_over(
        &self,
        shard: u32,
        owner: &str,
        marks: &PacerMarks,
    ) -> Result<(), StoreError> {
        let mut t = self.request();
        if let Some(l) = t.leases.get_mut(&shard).filter(|l| l.owner == owner) {
            l.handed = Some(marks.clone());
        }
        Ok(())
    }

    async fn unlease(&self, shard: u32, owner: &str) -> Result<(), StoreError> {
        let mut t = self.request();
        if t.leases.get(&shard).is_some_and(|l| l.owner == owner) {
            t.leases.remove(&shard);
        }
        Ok(())
    }
}

/// The `due_key` a due cursor (`PK|SK|due_key`, as `DynamoStore` hands them out) stopped at.
fn due_cursor(cursor: &str) -> Result<String, StoreError> {
    let mut parts = cursor.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(due)) => Ok(due.to_owned()),
        _ => Err(bad_cursor()),
    }
}
