//! The dispatcher's rules, as pure functions: what becomes of a waiting call when its turn
//! comes, of a live call when its watchdog fires, and of a claimed dial once the Voice API
//! has answered; and, for each change the dispatcher makes to a call, the [`Guard`] its
//! conditional write carries. The timers function does the I/O these decide; the store
//! writes each [`Guard`] as a condition and nothing else.

use crate::ids::Attempt;
use crate::lifecycle::{CallStatus, EndRequest};
use crate::record::{CallRecord, Campaign, CampaignStatus};
use crate::time::Timestamp;

/// The statuses of a call waiting to be dialed.
pub const WAITING: &[CallStatus] = &[CallStatus::Queued, CallStatus::RetryWait];
/// The statuses of a call that has been claimed for a dial and has not ended.
pub const LIVE: &[CallStatus] = &[
    CallStatus::Dialing,
    CallStatus::Ringing,
    CallStatus::Answered,
];

/// The reason a call cancelled by its campaign's cancellation carries.
pub const CAMPAIGN_CANCELLED: &str = "the campaign was cancelled";
/// The reason a call whose number is on the do-not-call list carries.
pub const ON_DO_NOT_CALL: &str = "the number is on the do-not-call list";

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

/// What becomes of a waiting call whose turn has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForWaiting {
    /// Its campaign is paused: take it out of the `due` index until the campaign resumes.
    Park,
    /// Its campaign is cancelled: end it, with this reason.
    Cancel(&'static str),
    /// Its calling window is closed: due again at the window's next opening.
    Defer(Timestamp),
    /// Dial it, within its campaign's cap and pacing.
    Dial,
}

impl ForWaiting {
    /// The guard of the change this decision makes (none for a dial: the claim carries its
    /// own).
    #[must_use]
    pub const fn guard(&self, attempt: Attempt) -> Option<Guard> {
        match self {
            Self::Park | Self::Defer(_) => Some(Guard::waiting(attempt).in_index(InIndex::Listed)),
            Self::Cancel(_) => Some(Guard::waiting(attempt)),
            Self::Dial => None,
        }
    }
}

/// Decides a waiting call of `campaign` at `now`; `window_opening` is when its calling
/// window next opens in the contact's zone, `None` while it is open (or the campaign has no
/// window). A completed campaign with a waiting call had one appended as it completed: it is
/// dialed like any other.
#[must_use]
pub fn for_waiting(campaign: &Campaign, window_opening: Option<Timestamp>) -> ForWaiting {
    match campaign.status {
        CampaignStatus::Paused => ForWaiting::Park,
        CampaignStatus::Cancelled => ForWaiting::Cancel(CAMPAIGN_CANCELLED),
        CampaignStatus::Active | CampaignStatus::Completed => {
            window_opening.map_or(ForWaiting::Dial, ForWaiting::Defer)
        }
    }
}

/// What a live call's watchdog does, once the call's record has been read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForWatchdog {
    /// The record moved on (another attempt, or the call ended): nothing to do.
    Nothing,
    /// No `NEW_OUTBOUND_CALL` and no Voice API answer within the deadline: the dial was
    /// never placed. Back to waiting, due now, as the same attempt.
    Release,
    /// Ask the SMA to end the call, for this reason; checked on again after a while.
    HangUp(EndRequest),
}

/// Decides the watchdog of attempt `attempt` of `record` (as read now).
#[must_use]
pub fn for_watchdog(record: &CallRecord, attempt: Attempt) -> ForWatchdog {
    if record.attempt != attempt || !record.status.is_live() {
        return ForWatchdog::Nothing;
    }
    if record.current_transaction().is_none() {
        return ForWatchdog::Release;
    }
    ForWatchdog::HangUp(if record.answered {
        EndRequest::MaxDuration
    } else {
        EndRequest::RingTimeout
    })
}

/// What the SMA answered a watchdog's hang-up request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUpAnswer {
    Delivered,
    /// `UpdateSipMediaApplicationCall` answered 404: the SMA no longer knows the call.
    NotFound,
    /// Throttled, refused or unknown: the request may not have arrived.
    Failed,
}

/// What becomes of a live call after its watchdog's hang-up request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterHangUp {
    /// The call is over without its end reported: `LOST`, with the reason.
    Lose(String),
    /// Check on it again later (its `HANGUP` is on its way, or the request is repeated).
    Rearm,
}

impl AfterHangUp {
    /// The guard of the change this decision makes.
    #[must_use]
    pub const fn guard(&self, attempt: Attempt) -> Guard {
        Guard::live(attempt)
    }
}

/// Decides what a hang-up request for `reason` that got `answer` means for the call.
#[must_use]
pub fn after_hang_up(reason: EndRequest, answer: HangUpAnswer) -> AfterHangUp {
    match answer {
        HangUpAnswer::NotFound => AfterHangUp::Lose(format!(
            "the SMA no longer knows the call ({} watchdog)",
            reason.as_str()
        )),
        HangUpAnswer::Delivered | HangUpAnswer::Failed => AfterHangUp::Rearm,
    }
}

/// How the Voice API answered `CreateSipMediaApplicationCall`, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialAnswer {
    /// Placed: the call exists.
    Placed,
    /// Throttled: certainly not placed.
    Throttled,
    /// Refused (a 4xx other than throttling), with the API's code and message.
    Rejected { code: String, message: String },
    /// The SIP media application does not exist.
    NoSma,
    /// A 5xx, a timeout or no answer: it may or may not have been placed.
    Unknown,
}

/// What becomes of a claimed attempt after the Voice API's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterDial {
    /// Record the placing (its transaction) so that a watchdog never dials it again.
    RecordPlaced,
    /// Give the attempt back, due again after a pause; the account's rate backs off.
    Release { after: std::time::Duration },
    /// End the attempt: it can never be placed.
    Refuse { status: CallStatus, reason: String },
    /// Leave it to the watchdog, which finds out whether it was placed; never dial it again
    /// now.
    LeaveToWatchdog,
}

impl AfterDial {
    /// The guard of the change this decision makes, if it makes one.
    #[must_use]
    pub const fn guard(&self, attempt: Attempt) -> Option<Guard> {
        match self {
            Self::Release { .. } | Self::Refuse { .. } => Some(Guard::unplaced(attempt)),
            Self::RecordPlaced | Self::LeaveToWatchdog => None,
        }
    }
}

/// Decides what a dial's answer means for its call.
#[must_use]
pub fn after_dial(answer: DialAnswer) -> AfterDial {
    match answer {
        DialAnswer::Placed => AfterDial::RecordPlaced,
        DialAnswer::Throttled => AfterDial::Release {
            after: std::time::Duration::from_secs(1),
        },
        // A refusal is about the request (a number not in the inventory, no permission),
        // not the callee: an unreachable number shows as SIP 404 later.
        DialAnswer::Rejected { code, message } => AfterDial::Refuse {
            status: CallStatus::Failed,
            reason: format!("{code}: {message}"),
        },
        DialAnswer::NoSma => AfterDial::Refuse {
            status: CallStatus::Failed,
            reason: "NotFoundException: no such SIP media application".to_owned(),
        },
        DialAnswer::Unknown => AfterDial::LeaveToWatchdog,
    }
}

/// Whether a claimed dial that waited for its slot still goes: a pause or a cancel that
/// arrived meanwhile wins, and the attempt is given back (the campaign's status then decides
/// what becomes of it).
#[must_use]
pub const fn still_dial(status: CampaignStatus) -> bool {
    !matches!(status, CampaignStatus::Paused | CampaignStatus::Cancelled)
}

#[cfg(test)]
mod tests;
