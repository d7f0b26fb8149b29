//! Every port in memory, in one place: what unit tests, benchmarks and the CLI's stand-ins use
//! instead of DynamoDB and the Voice API.
//!
//! - [`MemoryStore`]: one in-memory table behind one lock, implementing the SMA handler's
//!   [`SmaStore`](outdial_core::ports::SmaStore) (`sma`), the dispatcher's
//!   [`DispatchStore`](outdial_core::ports::DispatchStore) (`dispatch`), the API's
//!   [`ApiStore`](outdial_core::admin::ApiStore) (`api`) and the stream's
//!   [`CounterStore`](outdial_core::counters::CounterStore) (`counters`). It keeps what the
//!   DynamoDB table keeps: campaigns with their sweep requests, calls with their entry in the
//!   `due` index (lane, shard and sort key, or none while parked or finished) and their
//!   concurrency slot, event history, orphan events, idempotency records, appends, the
//!   do-not-call list, shard leases, and each campaign's counters with the stream's watermarks.
//!   The counters are the stream's and the dispatcher's at once, as the `COUNTERS` item is:
//!   a claim adds to `live` and the stream's deltas give slots back on the same numbers.
//! - [`MemoryDialer`]: the Voice API, recording every call placed and every update, answering
//!   as it is told; [`MemoryTrigger`]: a dispatcher trigger that counts its requests.
//!
//! The store answers as `DynamoStore` and `DynamoCounters` do, to the letter of each port's
//! contract: the dispatcher's changes are guarded by `Guard::admits`, an SMA event's write by
//! the `Sequence` guard of `lifecycle::order` and the event's `Expected`, and a refused write is
//! sorted with `lifecycle::order` as the DynamoDB store sorts the item it gets back. Keys,
//! shards and cursors are the DynamoDB store's own (`crate::item`), so a page, a cursor or a
//! due entry reads the same from either; `adapters/tests/contract.rs` runs the same scenarios
//! on both. Two things differ on purpose: the indexes are never behind the table (DynamoDB's
//! are eventually consistent), and a page is never cut short by size (DynamoDB stops at 1 MB).
//!
//! Every operation takes the one lock once and never waits while holding it, so each is
//! atomic, as DynamoDB's single-item writes and transactions are. A [`MemoryStore`] is a
//! handle: its clones share one table, so a test keeps one to look inside while a handler
//! owns another. [`MemoryStore::requests`] counts the port calls made on it (one per call,
//! whatever DynamoDB would have needed for it).

mod api;
mod counters;
mod dispatch;
mod sma;
mod voice;

pub use voice::{MemoryDialer, MemoryTrigger, PlaceRequest, UpdateRequest, VoiceAnswer};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use outdial_core::admin::StoredReply;
use outdial_core::counters::{CampaignCounters, HistoryItem, StreamPosition};
use outdial_core::dispatch::Guard;
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence};
use outdial_core::lifecycle::{CallStatus, Outcome};
use outdial_core::numbers::{HealthCounts, Member};
use outdial_core::policy::{DncEntry, Ledger, Policy};
use outdial_core::ports::{Lane, Page, StoreError};
use outdial_core::record::{CallRecord, Campaign, NewCall};
use outdial_core::time::Timestamp;

use crate::item::{due_key, shard_of, status_call};

/// The dispatch shards of a store made with [`MemoryStore::default`].
pub const DEFAULT_SHARDS: u32 = 4;

/// The store in memory: see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    shards: u32,
    tables: Mutex<Tables>,
    requests: AtomicUsize,
    /// While set, writing a campaign's calls never answers ([`MemoryStore::hang_writes`]).
    hang: AtomicBool,
}

/// Everything the table holds, one map per kind of item.
#[derive(Debug, Default)]
struct Tables {
    campaigns: HashMap<CampaignId, CampaignRow>,
    calls: HashMap<CallId, CallRow>,
    /// Each call's event history, in the order of its `EVT#<attempt>#<seq>` keys.
    history: HashMap<CallId, BTreeMap<(Attempt, Sequence), HistoryItem>>,
    /// Orphan events by transaction and `Sequence`, as their `ORPHAN#` keys.
    orphans: BTreeMap<(String, Sequence), Orphan>,
    idempotency: HashMap<String, IdempotencyRow>,
    appends: HashMap<String, AppendRow>,
    /// Numbers on the do-not-call list, each with its first entry.
    do_not_call: HashMap<E164, DncEntry>,
    /// Each number's ledger of calls counted against the contact caps.
    ledgers: HashMap<E164, Ledger>,
    /// The caller IDs, each with its registration and usage.
    numbers: BTreeMap<E164, Member>,
    /// Each caller ID's health counters and stream watermarks (kept on its item in the
    /// table; dropped with it).
    number_health: HashMap<E164, (HealthCounts, BTreeMap<String, StreamPosition>)>,
    /// The account's policy and when it was set.
    policy: Option<(Policy, Timestamp)>,
    leases: HashMap<u32, LeaseRow>,
    counters: HashMap<CampaignId, CounterRow>,
}

/// Where an item stands in the `due` index: its partition (lane and shard) and sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub lane: Lane,
    pub shard: u32,
    /// `due_key`: `<epoch ms, 14 digits>#<call id>`, or a campaign's sweep key.
    pub key: String,
}

#[derive(Debug, Clone)]
struct CampaignRow {
    campaign: Campaign,
    /// A status change waiting for a dispatcher's sweep.
    sweep: Option<Listing>,
    completed_at: Option<Timestamp>,
    /// When its `Campaign Completed` event was published.
    announced_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct CallRow {
    record: CallRecord,
    /// `None` while parked, and once nothing is due.
    listing: Option<Listing>,
    /// The attempt holding one of the campaign's concurrency slots.
    slot: Option<Attempt>,
    dialed_at: Option<Timestamp>,
}

/// An event no call was found for, as [`SmaStore::record_orphan`] kept it.
///
/// [`SmaStore::record_orphan`]: outdial_core::ports::SmaStore::record_orphan
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub transaction_id: String,
    pub seq: Sequence,
    pub event_type: String,
    pub raw: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone)]
struct IdempotencyRow {
    fingerprint: String,
    state: IdempotencyState,
    /// Epoch seconds, as the record's TTL: an expired record counts as none.
    expires_at: i64,
}

#[derive(Debug, Clone)]
enum IdempotencyState {
    InProgress {
        owner: String,
        lease_until: Timestamp,
    },
    Done(StoredReply),
}

/// One append of contacts, recorded when it completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRow {
    pub campaign_id: CampaignId,
    pub contacts: usize,
    pub at: Timestamp,
}

#[derive(Debug, Clone)]
struct LeaseRow {
    owner: String,
    until: Timestamp,
    hands_over_at: Timestamp,
    /// The holder's pacing marks, once it handed the lease over.
    handed: Option<outdial_core::ports::PacerMarks>,
}

/// A campaign's counters, and the stream's watermark per stream shard with when its newest
/// record was written.
#[derive(Debug, Clone, Default)]
struct CounterRow {
    counters: CampaignCounters,
    watermarks: BTreeMap<String, (StreamPosition, Option<Timestamp>)>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_SHARDS)
    }
}

impl MemoryStore {
    /// An empty store spreading due work over `shards` dispatch shards (at least one), as
    /// `DynamoStore::new` does.
    #[must_use]
    pub fn new(shards: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                shards: shards.max(1),
                tables: Mutex::new(Tables::default()),
                requests: AtomicUsize::new(0),
                hang: AtomicBool::new(false),
            }),
        }
    }

    #[must_use]
    pub fn shards(&self) -> u32 {
        self.shared.shards
    }

    /// Port calls made on this store (and its clones) since it was made or last reset.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// [`Self::requests`], and starts counting from zero again.
    pub fn take_requests(&self) -> usize {
        self.shared.requests.swap(0, Ordering::SeqCst)
    }

    /// While `on`, writing a campaign's calls (creating a campaign, appending contacts) never
    /// answers, as a table that stalls: for tests of what a caller does when its time runs out.
    /// The write is then not made at all.
    pub fn hang_writes(&self, on: bool) {
        self.shared.hang.store(on, Ordering::SeqCst);
    }

    /// Waits for ever while [`Self::hang_writes`] is on.
    async fn hang_if_asked(&self) {
        if self.shared.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    /// The table, locked, for one port call: counted, and never poisoned for good (a test that
    /// panicked while holding it leaves the maps as they were at the panic).
    fn request(&self) -> MutexGuard<'_, Tables> {
        self.shared.requests.fetch_add(1, Ordering::SeqCst);
        self.tables()
    }

    /// The table, locked, for a look inside (not counted).
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.shared
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The dial lane entry of call `id` due at `at`.
    fn dial_listing(&self, id: &CallId, at: Timestamp) -> Listing {
        self.listing(Lane::Dial, id, at)
    }

    fn listing(&self, lane: Lane, id: &CallId, at: Timestamp) -> Listing {
        Listing {
            lane,
            shard: shard_of(id, self.shards()),
            key: due_key(at, id),
        }
    }

    /// Writes `campaign` as it is, without calls or counters, replacing any campaign with its
    /// id: a test's or a benchmark's starting point.
    pub fn insert_campaign(&self, campaign: Campaign) {
        let mut t = self.tables();
        let row = CampaignRow {
            campaign: campaign.clone(),
            sweep: None,
            completed_at: None,
            announced_at: None,
        };
        t.campaigns.insert(campaign.id, row);
    }

    /// Writes `record` as it is, replacing any call with its id: in the `due` index's `lane`
    /// at its `due_at` when both are given (a live call's watchdog or a waiting call's dial),
    /// out of it otherwise; holding a concurrency slot when it is live.
    pub fn insert_call(&self, record: CallRecord, lane: Option<Lane>) {
        let listing = lane
            .zip(record.due_at)
            .map(|(lane, at)| self.listing(lane, &record.id, at));
        let slot = record.status.is_live().then_some(record.attempt);
        let mut t = self.tables();
        t.calls.insert(
            record.id.clone(),
            CallRow {
                record,
                listing,
                slot,
                dialed_at: None,
            },
        );
    }

    /// The call as stored, without counting a request.
    #[must_use]
    pub fn stored_call(&self, id: &CallId) -> Option<CallRecord> {
        self.tables().calls.get(id).map(|row| row.record.clone())
    }

    /// Where call `id` stands in the `due` index; `None` when it is not listed (parked,
    /// finished or unknown).
    #[must_use]
    pub fn listing_of(&self, id: &CallId) -> Option<Listing> {
        self.tables().calls.get(id).and_then(|r| r.listing.clone())
    }

    /// The attempt of call `id` that holds a concurrency slot, if one does.
    #[must_use]
    pub fn slot_of(&self, id: &CallId) -> Option<Attempt> {
        self.tables().calls.get(id).and_then(|r| r.slot)
    }

    /// When call `id` was last claimed for a dial.
    #[must_use]
    pub fn dialed_at(&self, id: &CallId) -> Option<Timestamp> {
        self.tables().calls.get(id).and_then(|r| r.dialed_at)
    }

    /// The campaign's sweep request, while one waits for a dispatcher.
    #[must_use]
    pub fn sweep_of(&self, id: &CampaignId) -> Option<Listing> {
        self.tables()
            .campaigns
            .get(id)
            .and_then(|r| r.sweep.clone())
    }

    /// When the stream handler marked the campaign complete.
    #[must_use]
    pub fn completed_at(&self, id: &CampaignId) -> Option<Timestamp> {
        self.tables().campaigns.get(id).and_then(|r| r.completed_at)
    }

    /// The campaign's counters (all zero before anything counted).
    #[must_use]
    pub fn counters(&self, id: &CampaignId) -> CampaignCounters {
        self.tables()
            .counters
            .get(id)
            .map(|r| r.counters.clone())
            .unwrap_or_default()
    }

    /// The stream's watermark for `shard` on the campaign's counters.
    #[must_use]
    pub fn watermark(&self, id: &CampaignId, shard: &str) -> Option<StreamPosition> {
        self.tables()
            .counters
            .get(id)
            .and_then(|r| r.watermarks.get(shard))
            .map(|(position, _)| position.clone())
    }

    /// Every call's history items, in key order.
    #[must_use]
    pub fn history(&self) -> Vec<HistoryItem> {
        let t = self.tables();
        let mut ids: Vec<&CallId> = t.history.keys().collect();
        ids.sort();
        ids.into_iter()
            .flat_map(|id| t.history[id].values().cloned())
            .collect()
    }

    /// Every orphan event, in key order.
    #[must_use]
    pub fn orphans(&self) -> Vec<Orphan> {
        self.tables().orphans.values().cloned().collect()
    }

    /// The append recorded as `id`, if it completed.
    #[must_use]
    pub fn append(&self, id: &str) -> Option<AppendRow> {
        self.tables().appends.get(id).cloned()
    }

    /// The holder of shard `shard`'s lease and until when, as last written.
    #[must_use]
    pub fn lease_of(&self, shard: u32) -> Option<(String, Timestamp)> {
        self.tables()
            .leases
            .get(&shard)
            .map(|l| (l.owner.clone(), l.until))
    }

    /// [`SmaStore::campaign`](outdial_core::ports::SmaStore::campaign), which the three table
    /// ports share.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such campaign.
    pub async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        self.request()
            .campaigns
            .get(id)
            .map(|row| row.campaign.clone())
            .ok_or(StoreError::NotFound)
    }

    /// [`DispatchStore::call`](outdial_core::ports::DispatchStore::call), which the dispatcher
    /// and the API share.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such call.
    pub async fn call(&self, id: &CallId) -> Result<CallRecord, StoreError> {
        self.request()
            .calls
            .get(id)
            .map(|row| row.record.clone())
            .ok_or(StoreError::NotFound)
    }

    /// [`DispatchStore::list_calls`](outdial_core::ports::DispatchStore::list_calls), which
    /// the dispatcher and the API share.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when `cursor` is not one this store handed out.
    pub async fn list_calls(
        &self,
        campaign: &CampaignId,
        status: Option<CallStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<CallRecord>, StoreError> {
        let t = self.request();
        let (items, next) = t.campaign_calls(campaign, status, false, limit, cursor)?;
        Ok(Page { items, next })
    }
}

impl Tables {
    /// One page of `campaign`'s calls as the `byCampaign` index lists them (by `status_call`),
    /// as `DynamoStore` reads it: those in `status` (all when `None`) after the `status_call`
    /// of `cursor`; `limit` of them evaluated, of which only the parked ones are kept if
    /// `parked` (DynamoDB's filter runs after its limit); with the `status_call` of the last
    /// one evaluated when `limit` were.
    fn campaign_calls(
        &self,
        campaign: &CampaignId,
        status: Option<CallStatus>,
        parked: bool,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<CallRecord>, Option<String>), StoreError> {
        if let Some(cursor) = cursor {
            check_cursor(cursor)?;
        }
        let prefix = status.map(|st| format!("{}#", st.as_str()));
        let mut matching: Vec<(String, &CallRow)> = self
            .calls
            .values()
            .filter(|row| row.record.campaign_id == *campaign)
            .map(|row| (status_call(row.record.status, &row.record.id), row))
            .filter(|(sc, _)| prefix.as_ref().is_none_or(|p| sc.starts_with(p.as_str())))
            .filter(|(sc, _)| cursor.is_none_or(|c| sc.as_str() > c))
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        let limit = page_limit(limit);
        matching.truncate(limit);
        let next = (matching.len() == limit)
            .then(|| matching.last().map(|(sc, _)| sc.clone()))
            .flatten();
        let items = matching
            .into_iter()
            .filter(|(_, row)| !parked || row.listing.is_none())
            .map(|(_, row)| row.record.clone())
            .collect();
        Ok((items, next))
    }

    /// The call `id` for a change guarded by `guard`: [`StoreError::NotFound`] when there is
    /// none, [`StoreError::Conflict`] when the guard does not admit it.
    fn guarded(&mut self, id: &CallId, guard: Guard) -> Result<&mut CallRow, StoreError> {
        let row = self.calls.get_mut(id).ok_or(StoreError::NotFound)?;
        if guard.admits(&row.record, row.listing.is_some()) {
            Ok(row)
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Writes new, queued calls of `campaign` (stamped with its `created_at`), each due at its
    /// `due_at` in the dial lane, as `DynamoStore` writes them, replacing any with their ids.
    fn put_calls<'a>(
        &mut self,
        store: &MemoryStore,
        campaign: &Campaign,
        calls: impl IntoIterator<Item = &'a NewCall>,
    ) {
        for call in calls {
            let record = new_record(campaign, call);
            let listing = store.dial_listing(&call.id, call.due_at);
            self.calls.insert(
                call.id.clone(),
                CallRow {
                    record,
                    listing: Some(listing),
                    slot: None,
                    dialed_at: None,
                },
            );
        }
    }

    /// The campaign's counters row, made when it has none (as `ADD` makes the item).
    fn counters_of(&mut self, id: &CampaignId) -> &mut CounterRow {
        self.counters.entry(id.clone()).or_default()
    }
}

/// A new call as its item reads back: queued as the first attempt, created and updated at the
/// campaign's `created_at`.
fn new_record(campaign: &Campaign, call: &NewCall) -> CallRecord {
    CallRecord {
        id: call.id.clone(),
        campaign_id: campaign.id.clone(),
        to: call.to.clone(),
        from: campaign.from.clone(),
        vars: call.vars.clone(),
        tz: call.tz.clone(),
        consent: call.consent.clone(),
        reference: call.reference.clone(),
        reason: None,
        status: CallStatus::Queued,
        attempt: Attempt::FIRST,
        last_event: None,
        answered: false,
        end_request: None,
        transaction_id: None,
        placed_attempt: None,
        outcome: None,
        sip_code: None,
        script_outcome: None,
        last_error: None,
        verdict: None,
        greeting_ms: None,
        digits: Vec::new(),
        due_at: Some(call.due_at),
        created_at: campaign.created_at,
        updated_at: campaign.created_at,
        answered_at: None,
        ended_at: None,
        dialed_at: None,
    }
}

/// The outcome a call ended as `status` records, when `status` is one an attempt can end as.
fn outcome_of(status: CallStatus) -> Option<Outcome> {
    [
        Outcome::Completed,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Declined,
        Outcome::InvalidNumber,
        Outcome::Failed,
        Outcome::Cancelled,
    ]
    .into_iter()
    .find(|o| o.status() == status)
}

/// A page of `limit` items: 1 to 1,000, as DynamoDB's `Limit` is set.
fn page_limit(limit: u32) -> usize {
    usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000)
}

/// What `DynamoStore` answers for a cursor it did not hand out.
fn bad_cursor() -> StoreError {
    StoreError::Corrupt {
        key: "cursor".into(),
        reason: "not a cursor this API returned".into(),
    }
}

/// A listing's cursor is a `status_call`: `<status>#<call id>`.
fn check_cursor(cursor: &str) -> Result<(), StoreError> {
    let (status, id) = cursor.split_once('#').ok_or_else(bad_cursor)?;
    status.parse::<CallStatus>().map_err(|_| bad_cursor())?;
    CallId::parse(id).map_err(|_| bad_cursor())?;
    Ok(())
}
