//! The ports the adapters implement. Each says what an implementation MUST do, so a handler
//! can rely on the contract whether it runs against DynamoDB, DynamoDB Local or a fake.
//! Beside them, the guards the store's conditional writes carry: [`Guard`] for the
//! dispatcher's changes (decided in `dispatch`), [`EventWrite::admits`] for an SMA event's.

use std::future::Future;

use crate::ids::{Attempt, CallId, CampaignId, Sequence, TransactionId};
use crate::lifecycle::{self, CallState, CallStatus, Expected, Order, Outcome};
use crate::machine::Verdict;
use crate::numbers::{Member, Usage};
use crate::policy::{DncEntry, Ledger, LedgerWrite, Policy, Reason};
use crate::record::{CallRecord, Campaign};
use crate::time::Timestamp;

/// The statuses of a call waiting to be dialed.
pub const WAITING: &[CallStatus] = &[CallStatus::Queued, CallStatus::RetryWait];
/// The statuses of a call that has been claimed for a dial and has not ended.
pub const LIVE: &[CallStatus] = &[
    CallStatus::Dialing,
    CallStatus::Ringing,
    CallStatus::Answered,
];

/// Where the call must stand in the `due` index for a change to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InIndex {
    /// Either way.
    Any,
    /// Listed in the `due` index (not parked).
    Listed,
    /// Taken out of it (parked).
    Parked,
}

/// What a conditional change requires of a call record. The store writes it as the change's
/// condition; [`Guard::admits`] says the same of a record in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The call is in this attempt.
    pub attempt: Attempt,
    /// The call is in one of these statuses.
    pub statuses: &'static [CallStatus],
    pub index: InIndex,
    /// No SMA event was applied in this attempt, and the Voice API's placing of it was not
    /// recorded: the attempt is not known to have been placed.
    pub unplaced: bool,
}

impl Guard {
    /// Waiting to be dialed as `attempt`.
    #[must_use]
    pub const fn waiting(attempt: Attempt) -> Self {
        Self {
            attempt,
            statuses: WAITING,
            index: InIndex::Any,
            unplaced: false,
        }
    }

    /// Live as `attempt`.
    #[must_use]
    pub const fn live(attempt: Attempt) -> Self {
        Self {
            attempt,
            statuses: LIVE,
            index: InIndex::Any,
            unplaced: false,
        }
    }

    /// Claimed for a dial as `attempt`, and not known to have been placed.
    #[must_use]
    pub const fn unplaced(attempt: Attempt) -> Self {
        Self {
            attempt,
            statuses: &[CallStatus::Dialing],
            index: InIndex::Any,
            unplaced: true,
        }
    }

    /// The same, and also where the call must stand in the `due` index.
    #[must_use]
    pub const fn in_index(self, index: InIndex) -> Self {
        Self { index, ..self }
    }

    /// Whether a record satisfies the guard; `listed` says whether it is in the `due` index.
    #[must_use]
    pub fn admits(&self, record: &CallRecord, listed: bool) -> bool {
        let index = match self.index {
            InIndex::Any => true,
            InIndex::Listed => listed,
            InIndex::Parked => !listed,
        };
        let unplaced = !self.unplaced
            || (record
                .last_event
                .as_ref()
                .is_none_or(|e| e.attempt < self.attempt)
                && record.placed_attempt.is_none_or(|a| a < self.attempt));
        record.attempt == self.attempt
            && self.statuses.contains(&record.status)
            && index
            && unplaced
    }
}

/// Any error an adapter could not map to a domain variant, with its cause chain intact.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in the store, in terms a handler can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The item does not exist.
    #[error("not found")]
    NotFound,
    /// A conditional write found the item in another state than required.
    #[error("the item is not in the state the write required")]
    Conflict,
    /// The store refused for load; worth retrying later.
    #[error("the store is throttling requests")]
    Throttled(#[source] BoxError),
    /// The request did not complete within its deadline; it may or may not have been applied.
    #[error("the store did not answer in time")]
    Timeout(#[source] BoxError),
    /// The campaign already has as many live calls as its `max_concurrent` allows.
    #[error("the campaign is at its concurrency cap")]
    AtCapacity,
    /// A number's ledger changed since it was read (another claim counted a call to it):
    /// read it again and decide again.
    #[error("the number's ledger changed since it was read")]
    Contended,
    /// A stored item could not be read back into a record.
    #[error("stored item {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// Anything else, with its cause.
    #[error("store request failed")]
    Other(#[source] BoxError),
}

impl StoreError {
    /// Whether trying the same request again later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled(_)
                | Self::Timeout(_)
                | Self::Other(_)
                | Self::AtCapacity
                | Self::Contended
        )
    }
}

/// One SMA event, decided by the lifecycle transition, to be written to its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWrite {
    pub call_id: CallId,
    /// The campaign the event says the call is of: the record's must be the same.
    pub campaign_id: CampaignId,
    /// The attempt and `Sequence` of the event.
    pub attempt: Attempt,
    pub seq: Sequence,
    /// The wire event type, kept on the record for the history the stream derives.
    pub event_type: String,
    /// What the decision was computed from: the write applies only if the record is in one of
    /// these statuses with these facts, in this attempt, and the event is newer than the last
    /// one applied.
    pub expected: Expected,
    /// The state after the event.
    pub next: CallState,
    pub transaction_id: TransactionId,
    /// Set when the event ended the attempt.
    pub outcome: Option<Outcome>,
    pub sip_code: Option<String>,
    pub script_outcome: Option<String>,
    /// Keys the callee entered at a question of the script: appended to the call's `digits`.
    pub digits: Option<String>,
    /// What went wrong, when the event reports an error (`ACTION_FAILED`,
    /// `INVALID_LAMBDA_RESPONSE`): `ErrorType: ErrorMessage`.
    pub error: Option<String>,
    /// What becomes of the call's due entry (its retry or watchdog).
    pub due: DueChange,
    /// The response sent for this event, stored for duplicates.
    pub response: String,
    pub at: Timestamp,
    /// The callee pressed the opt-out key: this entry goes on the do-not-call list in the
    /// same write as the event (a number already on it keeps its first entry).
    pub opt_out: Option<DncEntry>,
    /// Answering-machine detection started or judged in this event: the record's verdict,
    /// and the greeting length it was judged from.
    pub detection: Option<Detection>,
}

/// What an event sets of a call's answering-machine detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub verdict: Verdict,
    pub greeting_ms: Option<u32>,
}

impl EventWrite {
    /// Whether the event is about `record` at all: the same campaign, and, once the record
    /// knows the transaction of the event's attempt, that transaction. An event that is not
    /// (forged, or sent to the wrong function) changes nothing and is never given the
    /// record's stored answer.
    #[must_use]
    pub fn belongs_to(&self, record: &CallRecord) -> bool {
        record.campaign_id == self.campaign_id
            && record
                .transaction_of(self.attempt)
                .is_none_or(|known| *known == self.transaction_id)
    }

    /// The statuses the write may be applied in: the expected ones that show the attempt
    /// claimed for a dial (never `QUEUED` or `RETRY_WAIT`: no event is about an attempt
    /// that was not dialed, whatever the decision was computed from).
    #[must_use]
    pub fn statuses(&self) -> Vec<CallStatus> {
        self.expected
            .statuses
            .iter()
            .copied()
            .filter(|s| s.phase() > 0)
            .collect()
    }

    /// Whether the write may be applied over `record`: the one definition of an SMA event's
    /// guard, which the DynamoDB store writes as its condition (`Condition::event`) and the
    /// memory store applies as it is. The event belongs to the record, the record is in the
    /// event's attempt, claimed for a dial, in one of the expected statuses
    /// ([`Self::statuses`]) with the expected end request and answered flag, and the event
    /// is newer than the last one applied (the `Sequence` guard of [`lifecycle::order`]).
    #[must_use]
    pub fn admits(&self, record: &CallRecord) -> bool {
        let last = record.last_event.as_ref().map(|e| (e.attempt, e.seq));
        self.belongs_to(record)
            && record.attempt == self.attempt
            && self.statuses().contains(&record.status)
            && record.end_request == self.expected.end_request
            && record.answered == self.expected.answered
            && lifecycle::order(record.attempt, last, self.attempt, self.seq) == Order::Fresh
    }

    /// What a store answers when it refused the write over `current` (the record as it
    /// stood): the stored answer of this very event, delivered again; nothing for an event
    /// the record has moved past; otherwise a mismatch, decided again from `current`. An
    /// event that does not belong to the record is always a mismatch, so it never gets the
    /// record's stored answer.
    #[must_use]
    pub fn refused_over<W>(&self, current: CallRecord) -> Applied<W> {
        if !self.belongs_to(&current) {
            return Applied::Mismatch(Box::new(current));
        }
        let last = current.last_event.as_ref().map(|l| (l.attempt, l.seq));
        match lifecycle::order(current.attempt, last, self.attempt, self.seq) {
            Order::Duplicate => Applied::Duplicate {
                response: current.last_event.map(|l| l.response).unwrap_or_default(),
            },
            Order::Stale => Applied::Stale(Box::new(current)),
            Order::Fresh => Applied::Mismatch(Box::new(current)),
        }
    }
}

/// What an event does to the call's entry in the `due` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueChange {
    /// Leave it as it is.
    Keep,
    /// Nothing is due any more (the call ended).
    Clear,
    /// Due at this instant (a retry, or the next watchdog deadline).
    At(Timestamp),
}

/// What became of an [`EventWrite`]. `W` is what a written event hands back: the record as
/// it now is (the default), or nothing (`()`) where the caller answers from the write itself,
/// as the SMA handler does ([`SmaStore::apply_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied<W = Box<CallRecord>> {
    /// Written; what the store was asked to hand back.
    Written(W),
    /// This exact event (attempt and `Sequence`) was applied before; here is what was answered.
    Duplicate { response: String },
    /// The record has seen a later event or a later attempt; nothing was written.
    Stale(Box<CallRecord>),
    /// The record is not in the expected state (changed by someone else), or the event does
    /// not belong to it ([`EventWrite::belongs_to`]); nothing was written.
    Mismatch(Box<CallRecord>),
}

impl<W> Applied<W> {
    /// The same outcome, with what a written event hands back turned by `f`.
    #[must_use]
    pub fn map_written<V>(self, f: impl FnOnce(W) -> V) -> Applied<V> {
        match self {
            Self::Written(w) => Applied::Written(f(w)),
            Self::Duplicate { response } => Applied::Duplicate { response },
            Self::Stale(record) => Applied::Stale(record),
            Self::Mismatch(record) => Applied::Mismatch(record),
        }
    }
}

/// The two queues of a dispatch shard in the `due` index. Waiting calls wait for their dial
/// in one; live calls' watchdogs and campaigns' sweep requests are in the other, so that a
/// backlog of paced dials never delays a watchdog or a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// `QUEUED` and `RETRY_WAIT` calls, due when they may be dialed.
    Dial,
    /// Live calls, due at their watchdog deadline; campaigns due for a sweep.
    Watch,
}

/// Work the `due` index lists for a dispatch shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// A call to dial (waiting) or to check on (live: its watchdog), as the index holds it
    /// (an eventually consistent copy: only its status and attempt may be behind).
    Call(Box<CallRecord>),
    /// A campaign whose status changed (paused, resumed, cancelled): its calls need a sweep.
    Campaign {
        id: CampaignId,
        /// The entry's sort key, so clearing it does not clear a newer request.
        due_key: String,
    },
}

/// One read of a shard's due work, earliest first, with where to go on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePage {
    pub items: Vec<Due>,
    /// Pass back as `after` to read the entries that follow.
    pub next: Option<String>,
}

/// One page of a listing, with the cursor for the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// One SMA event as the call's history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub attempt: Attempt,
    pub seq: Sequence,
    pub event_type: String,
    pub status: CallStatus,
    pub at: Timestamp,
    /// The `Type` of each action outdial answered the event with, in order (none for an
    /// answer with no actions, one that was not JSON, or an event recorded before actions
    /// were kept).
    pub actions: Vec<String>,
    /// What mattered in those actions, for a person: spoken text, audio played, a hang-up's
    /// code ([`crate::counters::action_summary`]); at most
    /// [`crate::counters::DETAIL_MAX_BYTES`].
    pub detail: Option<String>,
    /// The answers this event added to the call's `digits`.
    pub digits: Vec<String>,
    /// The call's `sip_code` as this event set it (a `HANGUP`).
    pub sip_code: Option<String>,
    /// The call's `last_error` as this event set it.
    pub last_error: Option<String>,
}

/// The SMA handler's port: the one write that records an event on its call, and the reads and
/// writes of its two recovery paths (a call found by its transaction, an event kept as an
/// orphan). The campaign is read for its script.
pub trait SmaStore: Send + Sync {
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such campaign.
    fn campaign(
        &self,
        id: &CampaignId,
    ) -> impl Future<Output = Result<Campaign, StoreError>> + Send;

    /// Applies one SMA event in a single conditional write, and answers duplicates and stale
    /// events from the same round trip. A written event hands nothing back: the handler knows
    /// what it wrote (`write.next`), so the store need not read the record back (DynamoDB's
    /// `ReturnValues` is `NONE` on this request).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the call does not exist. A failed condition is never an
    /// error: it is [`Applied::Duplicate`], [`Applied::Stale`] or [`Applied::Mismatch`].
    fn apply_event(
        &self,
        write: &EventWrite,
    ) -> impl Future<Output = Result<Applied<()>, StoreError>> + Send;

    /// The call whose current `transaction_id` is `transaction`, for an SMA event that
    /// arrived without the attributes naming its call (the service never accepted an answer
    /// to the call's first event). `None` when no call has it.
    ///
    /// # Errors
    /// Only transport and throttling errors, and a record that cannot be read.
    fn call_by_transaction(
        &self,
        transaction: &TransactionId,
    ) -> impl Future<Output = Result<Option<CallRecord>, StoreError>> + Send;

    /// Keeps an event that no call could be found for, with its raw payload, for inspection.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn record_orphan(
        &self,
        transaction_id: &str,
        seq: Sequence,
        event_type: &str,
        raw: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The dispatcher's port: due work, claims, watchdogs, leases and sweeps, and the campaign and
/// call reads its rules are decided on.
/// What a claim writes beside the call and its campaign's slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimWrites {
    /// The callee's ledger, when a contact cap counts the call.
    pub ledger: Option<LedgerWrite>,
    /// The caller ID chosen from the campaign's pool, and its new usage.
    pub number: Option<NumberWrite>,
}

/// A claim's write to a caller ID: `usage` replaces the one read, only if the number's usage
/// still has version `read` (0: none yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberWrite {
    pub number: crate::ids::E164,
    pub read: u64,
    pub usage: Usage,
}

pub trait DispatchStore: Send + Sync {
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such campaign.
    fn campaign(
        &self,
        id: &CampaignId,
    ) -> impl Future<Output = Result<Campaign, StoreError>> + Send;

    /// # Errors
    /// [`StoreError::NotFound`] when there is no such call.
    fn call(&self, id: &CallId) -> impl Future<Output = Result<CallRecord, StoreError>> + Send;

    /// A campaign's calls, optionally only those in `status`, ordered by status and id (a sweep
    /// reads the calls of a paused or cancelled campaign this way).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when `cursor` is not one this store handed out.
    fn list_calls(
        &self,
        campaign: &CampaignId,
        status: Option<CallStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<CallRecord>, StoreError>> + Send;

    /// Claims a due call for dialing as `call.attempt` and takes one of its campaign's
    /// concurrency slots, in one atomic write: `QUEUED` or `RETRY_WAIT` with that attempt
    /// becomes `DIALING`, due again at `watchdog_at` (when the dial is checked on), holding a
    /// slot until it leaves the live statuses; the campaign's `live` count grows by one, and
    /// only while it is below `max_live`; with `writes.ledger`, the number's ledger is
    /// replaced, only while it is at the version read (the contact caps' count); with
    /// `writes.number`, the call is dialed from that caller ID (its `from`) and the number's
    /// usage is replaced, only while it is at the version read and the number is healthy
    /// and registered (its caps' count). The call's `reason` is cleared. Returns the call as
    /// claimed.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the call is not waiting to be dialed as `call.attempt`
    /// (someone else claimed it, or it was cancelled); [`StoreError::NotFound`] when it does
    /// not exist; [`StoreError::AtCapacity`] when the campaign holds `max_live` slots;
    /// [`StoreError::Contended`] when the ledger or the number's usage is no longer at the
    /// version read, or the number was quarantined or retired meanwhile.
    fn claim(
        &self,
        call: &CallRecord,
        now: Timestamp,
        watchdog_at: Timestamp,
        max_live: u32,
        writes: &ClaimWrites,
    ) -> impl Future<Output = Result<CallRecord, StoreError>> + Send;

    /// The caller IDs of pool `name`, each with its usage, read consistently (empty when the
    /// pool has none).
    ///
    /// # Errors
    /// Only transport and throttling errors, and a number that cannot be read.
    fn pool(&self, name: &str) -> impl Future<Output = Result<Vec<Member>, StoreError>> + Send;

    /// The number's ledger of counted calls, read consistently; empty at version 0 when it
    /// has none.
    ///
    /// # Errors
    /// Only transport and throttling errors, and a ledger that cannot be read.
    fn ledger(
        &self,
        number: &crate::ids::E164,
    ) -> impl Future<Output = Result<Ledger, StoreError>> + Send;

    /// The account's policy; the empty policy when none was set.
    ///
    /// # Errors
    /// Only transport and throttling errors, and a policy that cannot be read.
    fn policy(&self) -> impl Future<Output = Result<Policy, StoreError>> + Send;

    /// Work of `lane` of dispatch shard `shard` due at or before `until`, earliest first,
    /// from after the entry `after` names (a [`DuePage::next`]) when given.
    ///
    /// # Errors
    /// Only transport and throttling errors; [`StoreError::Corrupt`] for an `after` this
    /// store did not hand out.
    fn due(
        &self,
        shard: u32,
        lane: Lane,
        until: Timestamp,
        limit: u32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<DuePage, StoreError>> + Send;

    /// Ends a call that is waiting to be dialed as `attempt` (`QUEUED` or `RETRY_WAIT`)
    /// without dialing it: its campaign was cancelled, its number is on the do-not-call list,
    /// or it was hung up through the API. It becomes `CANCELLED` with `reason` (and its
    /// description in `last_error`).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is waiting as `attempt`.
    fn cancel_waiting(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        reason: Reason,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes a waiting call of a paused campaign out of the `due` index (it keeps its
    /// `due_at`), so paused work does not crowd the index; [`DispatchStore::unpark`] puts it back.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is waiting as `attempt`.
    fn park(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A campaign's parked calls, a page at a time.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when `cursor` is not one this store handed out.
    fn parked_calls(
        &self,
        campaign: &CampaignId,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<CallRecord>, StoreError>> + Send;

    /// Puts a parked call back in the `due` index, due at its `due_at` or `not_before`,
    /// whichever is later.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is parked.
    fn unpark(
        &self,
        call: &CallRecord,
        not_before: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves a waiting call's due time (a calling window's next opening, a cap's
    /// reopening), holding it for `reason`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is waiting as `attempt` and in the index.
    fn defer(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        reason: Reason,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes a campaign's sweep request out of the `due` index, unless a newer one replaced
    /// the entry `due_key` names.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn campaign_swept(
        &self,
        id: &CampaignId,
        due_key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many concurrency slots the campaign's calls hold (its `live` count), as last
    /// written; zero before its first claim.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn live(&self, campaign: &CampaignId) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Whether `number` is on the do-not-call list.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn do_not_call(
        &self,
        number: &crate::ids::E164,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Puts a claimed attempt that was certainly not placed (the API throttled it, or no
    /// `NEW_OUTBOUND_CALL` came before its watchdog) back to waiting, due at `due_at`, as the
    /// same attempt.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is `DIALING` as `attempt` with no SMA event
    /// applied in that attempt and no [`DispatchStore::placed`] for it (either proves the
    /// call was placed).
    fn release(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that the Voice API placed `attempt` as `transaction`: from then on its
    /// watchdog knows the call exists (it hangs it up rather than dialing again), and a
    /// cancel or hang-up reaches it before its first SMA event has been applied.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the call has moved on to another attempt.
    fn placed(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        transaction: &TransactionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a claimed attempt that can never be placed (the API refused it) as `status`,
    /// with the reason in `last_error`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] under the same condition as [`DispatchStore::release`].
    fn refuse(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        status: CallStatus,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up on the current attempt of a live call whose end cannot be known (its placing
    /// is unknown, or the SMA no longer knows it and reported no end), if the call meets
    /// `guard`: with `retry`, it waits to be dialed as that later attempt, due at that
    /// instant in the dial lane, not answered, with no end request and no `outcome` (how
    /// the attempt ended is not known); without, it ends `LOST`. Either way it leaves the live statuses (its concurrency slot is given back)
    /// with `reason` in `last_error`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call meets `guard`; [`StoreError::NotFound`] when
    /// it does not exist.
    fn give_up(
        &self,
        call_id: &CallId,
        guard: Guard,
        retry: Option<(Attempt, Timestamp)>,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The raw payloads of the events of transaction `transaction` that the SMA handler kept
    /// as orphans ([`SmaStore::record_orphan`]), in `Sequence` order: a watchdog reads a
    /// call's end from them when the SMA no longer knows the call.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn orphans(
        &self,
        transaction: &TransactionId,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// [`SmaStore::apply_event`]: a watchdog records a call's end from its orphaned `HANGUP`
    /// with the very write the SMA handler would have made.
    ///
    /// # Errors
    /// As [`SmaStore::apply_event`].
    fn apply_event(
        &self,
        write: &EventWrite,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Moves a live call's watchdog to `due_at` (after asking the SMA to end it).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is live as `attempt`.
    fn rearm(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes or renews the lease on dispatch shard `shard` for `owner` until `until`, saying
    /// that `owner` means to hand it over at `hands_over_at`: granted when nobody holds it,
    /// when `owner` already does, when the holder's lease ran out (the holder died), or when
    /// the holder handed it over ([`DispatchStore::hand_over`]), whose pacing marks then come
    /// with the answer. Refused, the answer says when the holder means to hand it over.
    ///
    /// # Errors
    /// Only transport and throttling errors; a lease held by someone else is
    /// [`Lease::Held`].
    fn lease(
        &self,
        shard: u32,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        hands_over_at: Timestamp,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send;

    /// Hands the lease over early, if `owner` still holds it: the next dispatcher may take it
    /// at once, and goes on booking from `marks` while `owner` sends the dials it booked.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn hand_over(
        &self,
        shard: u32,
        owner: &str,
        marks: &PacerMarks,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the lease up if `owner` holds it, so the next dispatcher need not wait it out.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn unlease(
        &self,
        shard: u32,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The answer to [`DispatchStore::lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The caller holds the lease; `from` are the pacing marks of the dispatcher that handed
    /// it over, when one did.
    Taken { from: Option<PacerMarks> },
    /// Someone else holds it, and means to hand it over at `hands_over_at` (unknown for a
    /// lease written without it).
    Held { hands_over_at: Option<Timestamp> },
}

/// Where a dispatcher's pacers stood when it handed its shard over: the last slot each had
/// booked, in microseconds since the epoch. The next dispatcher books on from there, so the
/// dial rate neither pauses nor doubles up at the hand-over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacerMarks {
    /// The account's pacer.
    pub account: Option<i64>,
    /// Each campaign's pacer.
    pub campaigns: std::collections::BTreeMap<CampaignId, i64>,
}

/// Why a call could not be placed or updated, in terms the dispatcher acts on.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// 429 `ThrottledClientException`: the call was not placed; slow down and try again.
    #[error("the Voice API is throttling calls")]
    Throttled,
    /// A 4xx other than throttling: this request will never succeed (a bad number, a number
    /// not in the inventory, no permission). `code` is the API's error code.
    #[error("the Voice API refused the call: {code}: {message}")]
    Rejected { code: String, message: String },
    /// `UpdateSipMediaApplicationCall` answered 404: the call is over.
    #[error("no such call")]
    NotFound,
    /// A 5xx, a timeout, or no answer: the call may or may not have been placed.
    #[error("the Voice API's answer is unknown")]
    Unknown(#[source] BoxError),
}

/// The Amazon Chime SDK Voice API, as outdial uses it.
pub trait Dialer: Send + Sync {
    /// `CreateSipMediaApplicationCall`: dials `to` from `from`, passing `arguments` (at most
    /// 20) to the SMA handler's `NEW_OUTBOUND_CALL`.
    ///
    /// # Errors
    /// An implementation MUST return [`DialError::Unknown`] whenever the call may have been
    /// placed (a 5xx, a timeout), so that the caller never dials the same attempt twice, and
    /// [`DialError::Throttled`] only when it certainly was not.
    fn place(
        &self,
        from: &crate::ids::E164,
        to: &crate::ids::E164,
        arguments: std::collections::BTreeMap<String, String>,
    ) -> impl Future<Output = Result<TransactionId, DialError>> + Send;

    /// `UpdateSipMediaApplicationCall`: delivers `arguments` to the SMA handler as
    /// `CALL_UPDATE_REQUESTED`.
    ///
    /// # Errors
    /// [`DialError::NotFound`] when the call is over; otherwise as [`Dialer::place`].
    fn update(
        &self,
        transaction: &TransactionId,
        arguments: std::collections::BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), DialError>> + Send;
}
