//! The dispatcher's rules, as pure functions: what becomes of a waiting call when its turn
//! comes, of a live call when its watchdog fires (and of one whose end cannot be known), and
//! of a claimed dial once the Voice API has answered; and, for each change the dispatcher
//! makes to a call, the [`Guard`] its conditional write carries (the type is the store
//! port's, in `ports`). The timers function does the I/O these decide; the store writes each
//! [`Guard`] as a condition and nothing else.

use std::time::Duration;

use crate::contract::{Event, Response};
use crate::ids::{Attempt, Sequence};
use crate::legal::LegalHours;
use crate::lifecycle::{CallEvent, CallStatus, EndRequest, Leg, Step, expected, transition};
use crate::messages;
use crate::policy::Reason;
use crate::ports::{DueChange, EventWrite};
use crate::record::{CallRecord, Campaign, CampaignStatus};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::sip::Unanswered;
use crate::time::Timestamp;
use crate::window::{self, CallingWindow, Zone};

/// How long a call whose callee's zone is unknown waits before it is looked at again.
pub const UNKNOWN_ZONE_RECHECK: Duration = Duration::from_secs(24 * 3600);

pub use crate::ports::{Guard, InIndex, LIVE, WAITING};

/// What becomes of a waiting call whose turn has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForWaiting {
    /// Its campaign is paused: take it out of the `due` index until the campaign resumes.
    Park,
    /// End it without a dial, for this reason (its campaign is cancelled, or it can never
    /// be called lawfully).
    Cancel(Reason),
    /// Held for this reason: due again at this instant.
    Defer(Timestamp, Reason),
    /// Dial it, within its campaign's cap and pacing.
    Dial,
}

impl ForWaiting {
    /// The guard of the change this decision makes (none for a dial: the claim carries its
    /// own).
    #[must_use]
    pub const fn guard(&self, attempt: Attempt) -> Option<Guard> {
        match self {
            Self::Park | Self::Defer(..) => Some(Guard::waiting(attempt).in_index(InIndex::Listed)),
            Self::Cancel(_) => Some(Guard::waiting(attempt)),
            Self::Dial => None,
        }
    }
}

/// Whether a waiting call may be placed now as far as the clock goes: the campaign's
/// calling window and the law's hours in the callee's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hours {
    /// Both allow a call now.
    Open,
    /// Not now: both next allow it at this instant; the reason says which held it.
    OpensAt(Timestamp, Reason),
    /// The law's hours depend on the callee's zone, which nothing settles.
    UnknownZone,
    /// The campaign's window and the law's hours never meet for this number.
    Never,
}

/// Whether `call` of `campaign` may be placed at `now` as far as the clock goes: the
/// campaign's window, and under it the law's hours (`legal`) unless the campaign's purpose
/// is exempt from them or `legal` is `None` (a local stack told to leave them out).
///
/// The callee's zone is the contact's `tz`, else the one its number's area code or country
/// says, else the zone the campaign's window names. With none of them, a call the law's
/// hours apply to is [`Hours::UnknownZone`]; one they do not apply to is open when the
/// campaign has no window.
#[must_use]
pub fn hours(
    legal: Option<&LegalHours>,
    campaign: &Campaign,
    call: &CallRecord,
    now: Timestamp,
) -> Hours {
    let window = campaign.window.as_ref();
    let zone = callee_zone(call, window);
    let legal = legal.filter(|_| campaign.purpose.keeps_legal_hours());
    match (legal, zone) {
        (None, zone) => match (window, zone) {
            (None, _) => Hours::Open,
            (Some(win), zone) => {
                let zone = zone.unwrap_or_else(|| win.zone().clone());
                if win.is_open(now, &zone) {
                    Hours::Open
                } else {
                    Hours::OpensAt(win.next_opening(now, &zone), Reason::Window)
                }
            }
        },
        (Some(_), None) => Hours::UnknownZone,
        (Some(legal), Some(zone)) => match legal.next_lawful(&call.to, window, now, &zone) {
            None => Hours::Never,
            Some(at) if at <= now => Hours::Open,
            Some(at) if legal.is_open(&call.to, now, &zone) => Hours::OpensAt(at, Reason::Window),
            Some(at) => Hours::OpensAt(at, Reason::LegalHours),
        },
    }
}

/// The callee's zone: the contact's, the number's, or the campaign window's, the first
/// that resolves (a stored `tz` that no longer resolves falls back to the number's).
fn callee_zone(call: &CallRecord, win: Option<&CallingWindow>) -> Option<Zone> {
    if let Some(zone) = call.tz.as_deref().and_then(|tz| Zone::get(tz).ok()) {
        return Some(zone);
    }
    window::number_zone(&call.to).or_else(|| win.map(|w| w.zone().clone()))
}

/// Decides a waiting call of `campaign` at `now`, given its [`Hours`]. A completed campaign
/// with a waiting call had one appended as it completed: it is dialed like any other.
#[must_use]
pub fn for_waiting(campaign: &Campaign, hours: Hours, now: Timestamp) -> ForWaiting {
    match campaign.status {
        CampaignStatus::Paused => ForWaiting::Park,
        CampaignStatus::Cancelled => ForWaiting::Cancel(Reason::CampaignCancelled),
        CampaignStatus::Active | CampaignStatus::Completed => match hours {
            Hours::Open => ForWaiting::Dial,
            Hours::OpensAt(at, reason) => ForWaiting::Defer(at, reason),
            Hours::UnknownZone => {
                ForWaiting::Defer(now.plus(UNKNOWN_ZONE_RECHECK), Reason::UnknownTimezone)
            }
            Hours::Never => ForWaiting::Cancel(Reason::NoLawfulHours),
        },
    }
}

/// What a live call's watchdog does, once the call's record has been read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForWatchdog {
    /// The record moved on (another attempt, or the call ended): nothing to do.
    Nothing,
    /// Neither the Voice API's answer nor an SMA event of the attempt arrived within the
    /// deadline. Whether it was placed cannot be known (a `500` may hide a placed call whose
    /// first events never reached the handler), so it is never dialed again as the same
    /// attempt: it is given up on ([`give_up`], with [`Guard::unplaced`]).
    PlacingUnknown,
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
        return ForWatchdog::PlacingUnknown;
    }
    ForWatchdog::HangUp(if record.answered {
        EndRequest::MaxDuration
    } else {
        EndRequest::RingTimeout
    })
}

/// The reason an attempt whose placing could not be known carries.
pub const PLACING_UNKNOWN: &str =
    "placing unknown: neither the Voice API's answer nor an SMA event of the attempt arrived";
/// The reason an attempt the SMA no longer knows, and whose end was never reported, carries.
pub const END_UNKNOWN: &str =
    "end unknown: the SMA no longer knows the call and no HANGUP of it was received";

/// What becomes of an attempt whose end cannot be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The call is dialed again as the next attempt, `after` from now, as the retry policy
    /// says for a failed attempt.
    Retry { attempt: Attempt, after: Duration },
    /// The call ends `LOST`: it was answered (the callee was reached, so it is not called
    /// again), or no attempt is left.
    Lose,
}

/// Decides what becomes of `record`'s attempt, whose end cannot be known: an attempt that
/// was answered is not repeated; any other follows the retry policy as a failed one.
#[must_use]
pub fn give_up(record: &CallRecord, policy: &RetryPolicy) -> GiveUp {
    if record.answered {
        return GiveUp::Lose;
    }
    match policy.decide(record.attempt, Unanswered::Failed) {
        RetryDecision::Retry { attempt, after } => GiveUp::Retry { attempt, after },
        RetryDecision::Final => GiveUp::Lose,
    }
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
    /// The call is over without its end recorded. Its `HANGUP` may have reached the SMA
    /// handler without naming the call and been kept as an orphan: that decides the end
    /// ([`ended_by_orphan`]); without one, the attempt is given up on ([`give_up`], with
    /// [`Guard::live`]).
    Over,
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

/// Decides what a watchdog's hang-up request that got `answer` means for the call.
#[must_use]
pub const fn after_hang_up(answer: HangUpAnswer) -> AfterHangUp {
    match answer {
        HangUpAnswer::NotFound => AfterHangUp::Over,
        HangUpAnswer::Delivered | HangUpAnswer::Failed => AfterHangUp::Rearm,
    }
}

/// The write that records the end of `record`'s attempt from `hangup`, the `HANGUP` of its
/// transaction that the SMA handler received but could not match to the call and kept as an
/// orphan: decided by the lifecycle exactly as the handler would have decided it, and
/// written under the same guard. The answer it stores is the empty action list the handler
/// gave. `None` when the event is not the callee's `HANGUP` of the attempt's transaction, or
/// the lifecycle does not apply it.
#[must_use]
pub fn ended_by_orphan(
    record: &CallRecord,
    hangup: &Event,
    policy: &RetryPolicy,
    now: Timestamp,
) -> Option<EventWrite> {
    let transaction = record.current_transaction()?;
    if hangup.call_details.transaction_id != transaction.as_str() {
        return None;
    }
    let event = messages::call_event(hangup);
    let CallEvent::Hangup {
        leg: Leg::Callee,
        code,
    } = &event
    else {
        return None;
    };
    let pre = record.state();
    let seq = Sequence::new(hangup.sequence);
    let Step::Apply(change) = transition(&pre, record.attempt, seq, &event, policy) else {
        return None;
    };
    let answer = Response::empty(&hangup.schema_version);
    Some(EventWrite {
        call_id: record.id.clone(),
        campaign_id: record.campaign_id.clone(),
        attempt: record.attempt,
        seq,
        event_type: hangup.event_type.as_str().to_owned(),
        expected: expected(&pre, record.attempt, seq, &event, policy, &change),
        next: change.next.clone(),
        transaction_id: transaction.clone(),
        outcome: change.outcome,
        sip_code: code.stored(),
        script_outcome: None,
        digits: None,
        error: None,
        due: change
            .retry_after
            .map_or(DueChange::Clear, |after| DueChange::At(now.plus(after))),
        response: serde_json::to_string(&answer).ok()?,
        at: now,
        opt_out: None,
        detection: None,
    })
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
