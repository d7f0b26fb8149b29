//! The ports the adapters implement. Each says what an implementation MUST do, so a handler
//! can rely on the contract whether it runs against DynamoDB, DynamoDB Local or a fake.

use std::future::Future;

use crate::ids::{Attempt, CallId, CampaignId, Sequence, TransactionId};
use crate::lifecycle::{CallState, CallStatus, Expected, Outcome};
use crate::record::{CallRecord, Campaign, NewCall};
use crate::time::Timestamp;

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
        matches!(self, Self::Throttled(_) | Self::Timeout(_) | Self::Other(_))
    }
}

/// One SMA event, decided by the lifecycle transition, to be written to its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWrite {
    pub call_id: CallId,
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
    /// What went wrong, when the event reports an error (`ACTION_FAILED`,
    /// `INVALID_LAMBDA_RESPONSE`): `ErrorType: ErrorMessage`.
    pub error: Option<String>,
    /// What becomes of the call's due entry (its retry or watchdog).
    pub due: DueChange,
    /// The response sent for this event, stored for duplicates.
    pub response: String,
    pub at: Timestamp,
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

/// What became of an [`EventWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Written; the record as it now is.
    Written(Box<CallRecord>),
    /// This exact event (attempt and `Sequence`) was applied before; here is what was answered.
    Duplicate { response: String },
    /// The record has seen a later event or a later attempt; nothing was written.
    Stale(Box<CallRecord>),
    /// The record is not in the expected state (changed by someone else); nothing was written.
    Mismatch(Box<CallRecord>),
}

/// A call due for work, as the `due` index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCall {
    pub call_id: CallId,
    pub campaign_id: CampaignId,
    pub status: CallStatus,
    pub attempt: Attempt,
    pub due_at: Timestamp,
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
}

/// The table: campaigns, calls, and what is due.
pub trait CallStore: Send + Sync {
    /// Writes a campaign and all its calls, queued and due at their `due_at`.
    ///
    /// # Errors
    /// The campaign item MUST be written last, after every call item, so a campaign is never
    /// visible with part of its calls; writing the same campaign again (a retried request)
    /// MUST complete it without duplicating a call.
    fn create_campaign(
        &self,
        campaign: &Campaign,
        calls: &[NewCall],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// # Errors
    /// [`StoreError::NotFound`] when there is no such campaign.
    fn campaign(
        &self,
        id: &CampaignId,
    ) -> impl Future<Output = Result<Campaign, StoreError>> + Send;

    /// Claims a due call for dialing as `attempt`: `QUEUED` or `RETRY_WAIT` with that attempt
    /// becomes `DIALING`, due again at `watchdog_at` (when the dial is checked on).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the call is not waiting to be dialed as `attempt` (someone
    /// else claimed it, or it was cancelled); [`StoreError::NotFound`] when it does not exist.
    fn claim(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        now: Timestamp,
        watchdog_at: Timestamp,
    ) -> impl Future<Output = Result<CallRecord, StoreError>> + Send;

    /// Applies one SMA event in a single conditional write, and answers duplicates and stale
    /// events from the same round trip.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the call does not exist. A failed condition is never an
    /// error: it is [`Applied::Duplicate`], [`Applied::Stale`] or [`Applied::Mismatch`].
    fn apply_event(
        &self,
        write: &EventWrite,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// # Errors
    /// [`StoreError::NotFound`] when there is no such call.
    fn call(&self, id: &CallId) -> impl Future<Output = Result<CallRecord, StoreError>> + Send;

    /// A call and its event history, oldest first.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such call.
    fn call_with_history(
        &self,
        id: &CallId,
    ) -> impl Future<Output = Result<(CallRecord, Vec<HistoryEntry>), StoreError>> + Send;

    /// A campaign's calls, optionally only those in `status`, ordered by status and id.
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

    /// Calls of dispatch shard `shard` due at or before `until`, earliest first.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn due_calls(
        &self,
        shard: u32,
        until: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DueCall>, StoreError>> + Send;

    /// Puts a claimed attempt that was certainly not placed (the API throttled it, or no
    /// `NEW_OUTBOUND_CALL` came before its watchdog) back to waiting, due at `due_at`, as the
    /// same attempt.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is `DIALING` as `attempt` with no SMA event
    /// applied in that attempt (an event proves the call was placed).
    fn release(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        due_at: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a claimed attempt that can never be placed (the API refused it) as `status`,
    /// with the reason in `last_error`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] under the same condition as [`CallStore::release`].
    fn refuse(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        status: CallStatus,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a live call the SMA no longer knows (`UpdateSipMediaApplicationCall` answered 404)
    /// as `LOST`, with the reason.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] unless the call is live as `attempt`.
    fn lose(
        &self,
        call_id: &CallId,
        attempt: Attempt,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

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

    /// Takes or renews the lease on dispatch shard `shard` for `owner` until `until`: granted
    /// when nobody holds it, when `owner` already does, or when the holder's lease ran out
    /// (the holder died). Returns whether `owner` holds it now.
    ///
    /// # Errors
    /// Only transport and throttling errors; a lease held by someone else is `Ok(false)`.
    fn lease(
        &self,
        shard: u32,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lease up if `owner` holds it, so the next dispatcher need not wait it out.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn unlease(
        &self,
        shard: u32,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

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
