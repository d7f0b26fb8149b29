//! The API's port: idempotency records, campaigns' lifecycle and progress, contacts appended
//! to a running campaign, and the do-not-call list.
//!
//! Each function has its own port, with only what it does: the SMA handler's and the
//! dispatcher's are in [`crate::ports`], the stream's is [`crate::counters::CounterStore`], and
//! the API's, [`ApiStore`], is here. [`DispatchTrigger`] is how the API starts a dispatcher at once instead of waiting
//! for the schedule.
//!
//! Idempotency works in two layers. An [`IdempotencyKey`] record makes a retried request
//! return the first answer and keeps two copies of one request from running at once; the
//! effects themselves are written so that running them twice changes nothing (a campaign
//! that exists is complete, an append records that it happened in the same transaction that
//! counts its contacts), so an attempt that died half way is completed by the retry that
//! takes its record over.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;

use crate::counters::CampaignCounters;
use crate::ids::{Attempt, CallId, CampaignId, E164};
use crate::lifecycle::CallStatus;
use crate::numbers::{CallerNumber, Member};
use crate::policy::{DncEntry, Policy, Reason};
use crate::ports::{BoxError, HistoryEntry, Page, StoreError};
use crate::record::{CallRecord, Campaign, CampaignStatus, NewCall};
use crate::time::Timestamp;

/// An `Idempotency-Key` header, parsed at the edge: 1 to 255 printable ASCII characters
/// (a UUID is the usual choice). Keys are compared exactly.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a header is not an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an Idempotency-Key is 1 to 255 printable ASCII characters")]
pub struct IdempotencyKeyError;

impl IdempotencyKey {
    pub const MAX: usize = 255;

    /// Parses the header's value. A value in double quotes (the structured-field form of the
    /// IETF draft) is taken without its quotes.
    ///
    /// # Errors
    /// [`IdempotencyKeyError`] when the key is empty, too long or not printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, IdempotencyKeyError> {
        let key = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        let ok = !key.is_empty()
            && key.len() <= Self::MAX
            && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            && !key.starts_with(' ')
            && !key.ends_with(' ');
        if ok {
            Ok(Self(key.to_owned()))
        } else {
            Err(IdempotencyKeyError)
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

/// The answer a request got, kept so that its retries get it again byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` of the body.
    pub content_type: String,
    /// The body, exactly as sent.
    pub body: String,
}

/// What [`ApiStore::begin_request`] found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// There was no record: the caller now holds the key and does the work.
    Started,
    /// A record of this request was in progress past its lease (the attempt that held it
    /// died): the caller now holds the key and completes the same work.
    TakenOver,
    /// This request is being processed by another attempt, whose lease ends at `lease_until`.
    InProgress { lease_until: Timestamp },
    /// The key was used for a different request.
    Mismatch,
    /// The request was processed; here is its answer.
    Done(StoredReply),
}

/// A campaign and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignOverview {
    pub campaign: Campaign,
    pub counters: CampaignCounters,
}

impl CampaignOverview {
    /// Calls that reached a terminal status as a share of contacts, from 0 to 1 (0 for a
    /// campaign without contacts).
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    pub fn progress(&self) -> f64 {
        let contacts = self.counters.contacts.max(0);
        if contacts == 0 {
            0.0
        } else {
            (self.counters.terminal().max(0) as f64 / contacts as f64).min(1.0)
        }
    }
}

/// The most campaigns [`ApiStore::list_campaigns`] reads past its cursor in one call (and one
/// more, to learn whether a full page is the last): a status filter that few campaigns pass
/// answers a short page with a cursor rather than reading the whole list.
pub const LIST_READ_MAX: u32 = 1000;

/// A campaign in the account's list: where it stands, and when it completed.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedCampaign {
    pub overview: CampaignOverview,
    /// When the stream handler last marked it `COMPLETED`. A campaign made `ACTIVE` again by
    /// an append keeps the time of its earlier completion.
    pub completed_at: Option<Timestamp>,
}

/// One append of contacts to a running campaign (`POST /campaigns/{id}/contacts`,
/// `POST /calls`). The store records the append when it completes, so a retry of the same
/// append never counts its contacts twice.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AppendId(String);

/// Why a string is not an append id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an append id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'")]
pub struct AppendIdError;

impl AppendId {
    /// # Errors
    /// [`AppendIdError`] for an empty or long id, or one with other characters than letters,
    /// digits, `-` and `_` (it ends up inside a key).
    pub fn parse(raw: &str) -> Result<Self, AppendIdError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(AppendIdError)
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppendId({})", self.0)
    }
}

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The calls are written and counted now.
    Written,
    /// This append had completed before (a retried request); nothing was written.
    AlreadyWritten,
}

/// The API's port: campaigns and their calls as the API creates, lists and changes them,
/// idempotency records and the do-not-call list.
pub trait ApiStore: Send + Sync {
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

    /// Takes `key` for a request whose fingerprint (a hash of method, path, the headers that
    /// matter and body) is `fingerprint`, on behalf of `owner` (unique per attempt), with a
    /// lease until `lease_until`.
    ///
    /// # Errors
    /// Only transport and throttling errors. An implementation MUST take the key atomically
    /// (two requests racing for a new key: exactly one gets [`Begun::Started`]), MUST answer
    /// [`Begun::Mismatch`] for a record of another fingerprint whatever its state, and MUST
    /// hand a record in progress to a new owner ([`Begun::TakenOver`]) only once `now` is past
    /// its lease.
    fn begin_request(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Begun, StoreError>> + Send;

    /// Stores the answer to the request `owner` holds `key` for; later requests with the key
    /// get it back until the record expires (a day). Answers of any size are kept.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `owner` no longer holds the key (another attempt took it
    /// over): nothing is stored.
    fn finish_request(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        reply: &StoredReply,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives `key` up without an answer (the request failed in a way worth retrying at once).
    ///
    /// # Errors
    /// Only transport and throttling errors; a key `owner` does not hold is left alone.
    fn abandon_request(
        &self,
        key: &IdempotencyKey,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A campaign and its counters, read together.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such campaign.
    fn overview(
        &self,
        id: &CampaignId,
    ) -> impl Future<Output = Result<CampaignOverview, StoreError>> + Send;

    /// The account's campaigns, newest first (by creation time, then by id, both descending),
    /// only those in `status` when it is given, each with its counters and completion time.
    ///
    /// The page holds at most `limit` campaigns from those after the position `cursor` names
    /// (`next` of an earlier page; any campaign's position, whether it still exists or not).
    /// An implementation reads them in that order, counting every campaign it reads, and stops
    /// at the first of:
    /// - `limit + 1` campaigns in `status` read: the page is the first `limit`, and `next` the
    ///   position of its last;
    /// - [`LIST_READ_MAX`] campaigns read: the page is those in `status` (maybe none), and
    ///   `next` the position of the last campaign read (whether or not any follow it);
    /// - no campaign left: `next` is `None`.
    ///
    /// Campaigns written before the list existed are not in it (`docs/table.md`).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] with key `cursor` when `cursor` is not a position.
    fn list_campaigns(
        &self,
        status: Option<CampaignStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<ListedCampaign>, StoreError>> + Send;

    /// Moves a campaign from one of `from` to `to`, and in the same write asks the dispatcher
    /// to sweep it (a due entry at `now`). Returns the campaign as it now is.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such campaign; [`StoreError::Conflict`] when
    /// its status is not one of `from`.
    fn set_status(
        &self,
        id: &CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
        now: Timestamp,
    ) -> impl Future<Output = Result<Campaign, StoreError>> + Send;

    /// Adds `calls` to `campaign` (as read, with its status): writes every call that does not
    /// exist yet, then, in one transaction, records the append as `append`, adds the calls to
    /// the campaign's `contacts` counter and, when the campaign was `COMPLETED`, makes it
    /// `ACTIVE` again (with a due entry for a sweep).
    ///
    /// # Errors
    /// An implementation MUST NOT overwrite a call that exists (a retried append must not set
    /// a dialed call back to `QUEUED`) and MUST count an append once: a recorded append is
    /// [`Appended::AlreadyWritten`]. [`StoreError::Conflict`] when the campaign's status is no
    /// longer `campaign.status` or is `CANCELLED`; [`StoreError::NotFound`] when the campaign
    /// does not exist.
    fn append_calls(
        &self,
        campaign: &Campaign,
        append: &AppendId,
        calls: &[NewCall],
        now: Timestamp,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Ends a call that waits to be dialed as `attempt` (`QUEUED` or `RETRY_WAIT`) as
    /// `CANCELLED`, with `reason` in `last_error`, and takes it out of the `due` index.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such call; [`StoreError::Conflict`] when it
    /// is not waiting as `attempt` (it was claimed meanwhile, or has ended).
    fn cancel_waiting_call(
        &self,
        id: &CallId,
        attempt: Attempt,
        reason: Reason,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts `number` on the do-not-call list (again: adding it twice is not an error).
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn add_do_not_call(
        &self,
        number: &E164,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `number`'s entry on the do-not-call list, with its source; `None` when it is not on it.
    ///
    /// # Errors
    /// Only transport and throttling errors, and an entry that cannot be read.
    fn do_not_call_entry(
        &self,
        number: &E164,
    ) -> impl Future<Output = Result<Option<DncEntry>, StoreError>> + Send;

    /// The account's policy (the empty policy when none was set) and when it was last set.
    ///
    /// # Errors
    /// Only transport and throttling errors, and a policy that cannot be read.
    fn policy(
        &self,
    ) -> impl Future<Output = Result<(Policy, Option<Timestamp>), StoreError>> + Send;

    /// Replaces the account's policy.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn put_policy(
        &self,
        policy: &Policy,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every caller ID the account registered, with its usage.
    ///
    /// # Errors
    /// Only transport and throttling errors, and a number that cannot be read.
    fn numbers(&self) -> impl Future<Output = Result<Vec<Member>, StoreError>> + Send;

    /// Writes a caller ID's registration (pool, caps, display region). A new number is
    /// healthy; an existing one keeps its health, usage and health counts, whatever
    /// `number.health` says, so that a quarantine the stream writes meanwhile stands.
    ///
    /// # Errors
    /// Only transport and throttling errors.
    fn put_number(
        &self,
        number: &CallerNumber,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts a caller ID back in rotation: healthy, its health counts started afresh.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it is not registered.
    fn restore_number(&self, number: &E164) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Retires a caller ID: it is chosen no more (a claim that read it fails and chooses
    /// again).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it was not registered.
    fn delete_number(&self, number: &E164) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes `number` off the do-not-call list.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it was not on it.
    fn remove_do_not_call(
        &self,
        number: &E164,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Which of `numbers` are on the do-not-call list.
    ///
    /// # Errors
    /// Only transport and throttling errors; an implementation MUST look every number up
    /// (retrying what the store left unprocessed) before answering.
    fn on_do_not_call(
        &self,
        numbers: &[E164],
    ) -> impl Future<Output = Result<HashSet<E164>, StoreError>> + Send;
}

/// Starts a dispatcher now rather than at the next scheduled run.
pub trait DispatchTrigger: Send + Sync {
    /// Asks for a dispatcher run; returns once the request is accepted, not when it ran.
    ///
    /// # Errors
    /// Whatever kept the request from being accepted. Callers treat it as a delay, not a
    /// failure: the schedule starts a dispatcher every minute anyway.
    fn dispatch_now(&self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::CallStatus;

    #[test]
    fn idempotency_keys_accept_printable_ascii_and_drop_structured_field_quotes() {
        assert_eq!(
            IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324")
                .unwrap()
                .as_str(),
            "8e03978e-40d5-43e8-bc93-6894a57f9324"
        );
        assert_eq!(IdempotencyKey::parse("\"abc\"").unwrap().as_str(), "abc");
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("\"\"").is_err());
        assert!(IdempotencyKey::parse(" padded").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("é").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn progress_is_terminal_calls_over_contacts() {
        let campaign: Campaign = serde_json::from_value(serde_json::json!({
            "id": "cmp_1", "name": "n", "from": "+15555550199", "status": "ACTIVE",
            "retry": {}, "pacing": {"calls_per_second": 1.0, "max_concurrent": 1},
            "script": {"start": "a", "steps": {"a": {"say": "Hi."}}},
            "limits": {}, "window": null, "default_region": "US", "created_at": 0, "contacts": 4
        }))
        .unwrap();
        let mut overview = CampaignOverview {
            campaign,
            counters: CampaignCounters {
                contacts: 4,
                by_status: [
                    (CallStatus::Completed, 1),
                    (CallStatus::Busy, 1),
                    (CallStatus::Queued, 1),
                    (CallStatus::Dialing, 1),
                ]
                .into_iter()
                .collect(),
                ..CampaignCounters::default()
            },
        };
        assert!((overview.progress() - 0.5).abs() < f64::EPSILON);
        overview.counters = CampaignCounters::default();
        assert!(overview.progress().abs() < f64::EPSILON);
    }

    #[test]
    fn append_ids_refuse_key_separators() {
        assert!(AppendId::parse("app_0123").is_ok());
        assert!(AppendId::parse("a#b").is_err());
        assert!(AppendId::parse("").is_err());
    }
}
