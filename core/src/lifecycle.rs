//! The call lifecycle: one status enum, the events that move it, and the pure transition
//! function with its `Sequence` guard.
//!
//! ```text
//! QUEUED -> DIALING -> RINGING -> ANSWERED -> COMPLETED
//!   DIALING | RINGING -> BUSY | NO_ANSWER | DECLINED | INVALID_NUMBER | FAILED
//!   BUSY | NO_ANSWER | FAILED (attempts left) -> RETRY_WAIT -> DIALING
//!   any non-terminal -> CANCELLED (campaign cancelled / call hung up by API)
//!   any non-terminal -> LOST (watchdog: the SMA never reported an end)
//! ```
//!
//! Invariants the transition keeps, which the property tests below check:
//! - an event is applied only when its attempt is the record's attempt, claimed for a dial
//!   (not `QUEUED` or `RETRY_WAIT`), and its `Sequence` is greater than the last one
//!   applied; the same `Sequence` again is a duplicate (answered with the stored response),
//!   a smaller one is stale and changes nothing;
//! - within an attempt the status only moves forward (`QUEUED` < `DIALING` < `RINGING` <
//!   `ANSWERED` < terminal), and across attempts the attempt number only grows;
//! - terminal states absorb every later event.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{Attempt, Sequence};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::sip::{SipCode, Unanswered};

/// Where a call stands. Stored as its `SCREAMING_SNAKE_CASE` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallStatus {
    Queued,
    Dialing,
    Ringing,
    Answered,
    Completed,
    Busy,
    NoAnswer,
    Declined,
    InvalidNumber,
    Failed,
    RetryWait,
    Cancelled,
    Lost,
}

impl CallStatus {
    pub const ALL: [Self; 13] = [
        Self::Queued,
        Self::Dialing,
        Self::Ringing,
        Self::Answered,
        Self::Completed,
        Self::Busy,
        Self::NoAnswer,
        Self::Declined,
        Self::InvalidNumber,
        Self::Failed,
        Self::RetryWait,
        Self::Cancelled,
        Self::Lost,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Dialing => "DIALING",
            Self::Ringing => "RINGING",
            Self::Answered => "ANSWERED",
            Self::Completed => "COMPLETED",
            Self::Busy => "BUSY",
            Self::NoAnswer => "NO_ANSWER",
            Self::Declined => "DECLINED",
            Self::InvalidNumber => "INVALID_NUMBER",
            Self::Failed => "FAILED",
            Self::RetryWait => "RETRY_WAIT",
            Self::Cancelled => "CANCELLED",
            Self::Lost => "LOST",
        }
    }

    /// A terminal status is final: the call will not be dialed again and no event changes it.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Busy
                | Self::NoAnswer
                | Self::Declined
                | Self::InvalidNumber
                | Self::Failed
                | Self::Cancelled
                | Self::Lost
        )
    }

    /// A live call has been handed to the SMA and has not ended.
    #[must_use]
    pub const fn is_live(self) -> bool {
        matches!(self, Self::Dialing | Self::Ringing | Self::Answered)
    }

    /// How far an attempt has come; never decreases within an attempt.
    #[must_use]
    pub const fn phase(self) -> u8 {
        match self {
            Self::Queued | Self::RetryWait => 0,
            Self::Dialing => 1,
            Self::Ringing => 2,
            Self::Answered => 3,
            _ => 4,
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a call status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown call status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for CallStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Which leg an event is about. The callee is the SMA's `LEG-A` on a call we placed; an
/// agent reached by a transfer (`CallAndBridge`) is `LEG-B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    Callee,
    Agent,
}

/// Why outdial asked the SMA to end a call (`CALL_UPDATE_REQUESTED` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndRequest {
    /// The campaign was cancelled.
    Cancel,
    /// `POST /calls/{id}/hangup`.
    Hangup,
    /// Our ring timeout fired (the Voice API has none of its own).
    RingTimeout,
    /// The call outlived the campaign's maximum duration.
    MaxDuration,
}

impl EndRequest {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Hangup => "hangup",
            Self::RingTimeout => "ring_timeout",
            Self::MaxDuration => "max_duration",
        }
    }

    /// Reads the reason back from its string form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Cancel,
            Self::Hangup,
            Self::RingTimeout,
            Self::MaxDuration,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What one SMA event means for the call record, in domain terms; `messages::call_event`
/// reads it from the wire event ([`crate::contract`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// `NEW_OUTBOUND_CALL`: the SMA accepted the call and starts dialing.
    Placed,
    /// `RINGING`.
    Ringing,
    /// `CALL_ANSWERED`.
    Answered,
    /// `ACTION_SUCCESSFUL`, `ACTION_FAILED`, `ACTION_INTERRUPTED` or `DIGITS_RECEIVED`: the
    /// script is running, which also proves the callee answered.
    ScriptProgress,
    /// `CALL_UPDATE_REQUESTED` carrying one of our commands.
    EndRequested(EndRequest),
    /// `HANGUP` of one leg.
    Hangup { leg: Leg, code: SipCode },
    /// `INVALID_LAMBDA_RESPONSE`: recorded; the handler answers with a hang-up.
    InvalidResponse,
    /// Anything else (an unknown event type, an update we did not send): recorded only.
    Other,
}

/// The facts about a call that decide how an event moves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    pub status: CallStatus,
    pub attempt: Attempt,
    /// The last `Sequence` applied in this attempt (`None` before the first event).
    pub last_seq: Option<Sequence>,
    /// Whether this attempt was answered.
    pub answered: bool,
    /// Set when we asked the SMA to end the call; decides the final status.
    pub end_request: Option<EndRequest>,
}

impl CallState {
    /// A call just claimed for dialing as `attempt`.
    #[must_use]
    pub fn dialing(attempt: Attempt) -> Self {
        Self {
            status: CallStatus::Dialing,
            attempt,
            last_seq: None,
            answered: false,
            end_request: None,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Completed,
    Busy,
    NoAnswer,
    Declined,
    InvalidNumber,
    Failed,
    Cancelled,
}

impl Outcome {
    /// The terminal status this outcome gives a call that is not retried.
    #[must_use]
    pub const fn status(self) -> CallStatus {
        match self {
            Self::Completed => CallStatus::Completed,
            Self::Busy => CallStatus::Busy,
            Self::NoAnswer => CallStatus::NoAnswer,
            Self::Declined => CallStatus::Declined,
            Self::InvalidNumber => CallStatus::InvalidNumber,
            Self::Failed => CallStatus::Failed,
            Self::Cancelled => CallStatus::Cancelled,
        }
    }

    const fn from_unanswered(u: Unanswered) -> Self {
        match u {
            Unanswered::Busy => Self::Busy,
            Unanswered::NoAnswer => Self::NoAnswer,
            Unanswered::Declined => Self::Declined,
            Unanswered::InvalidNumber => Self::InvalidNumber,
            Unanswered::Failed => Self::Failed,
        }
    }
}

/// The result of offering an event to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The same `Sequence` was applied before: answer with the stored response.
    Duplicate,
    /// An older `Sequence`, or an event of an earlier attempt: change nothing.
    Stale,
    /// The call is terminal: the event is absorbed and changes nothing.
    Absorbed,
    /// Apply this change.
    Apply(Change),
}

/// What applying an event does to the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The state after the event (`last_seq` set to the event's).
    pub next: CallState,
    /// Set when the event ended the attempt.
    pub outcome: Option<Outcome>,
    /// Set when the attempt is retried: due after this delay, as `next.attempt`.
    pub retry_after: Option<Duration>,
}

/// Where an event stands against what its call has seen: the `Sequence` guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newer than every event applied: decide it.
    Fresh,
    /// The event applied last, delivered again: answer with what was answered then.
    Duplicate,
    /// Older than the event applied last, or of an earlier attempt: change nothing.
    Stale,
}

/// The `Sequence` guard, the one copy of it: event `seq` of attempt `attempt`, offered to a
/// call now in attempt `current` whose last applied event was `last` (attempt and
/// `Sequence`). Events are ordered by attempt, then `Sequence`; the store's conditional
/// write enforces the same order, and reads back with this what a refused write met.
#[must_use]
pub fn order(
    current: Attempt,
    last: Option<(Attempt, Sequence)>,
    attempt: Attempt,
    seq: Sequence,
) -> Order {
    match last {
        Some(last) if last == (attempt, seq) => Order::Duplicate,
        Some(last) if last > (attempt, seq) => Order::Stale,
        _ if current > attempt => Order::Stale,
        _ => Order::Fresh,
    }
}

/// Offers event `event`, numbered `seq` within attempt `attempt`, to a call in `state`.
#[must_use]
pub fn transition(
    state: &CallState,
    attempt: Attempt,
    seq: Sequence,
    event: &CallEvent,
    policy: &RetryPolicy,
) -> Step {
    match order(
        state.attempt,
        state.last_seq.map(|last| (state.attempt, last)),
        attempt,
        seq,
    ) {
        Order::Duplicate => return Step::Duplicate,
        Order::Stale => return Step::Stale,
        Order::Fresh => {}
    }
    // An event of an attempt the record has not reached yet was sent for a dial that the
    // record does not know: nothing to decide from.
    if attempt != state.attempt {
        return Step::Stale;
    }
    // A call waiting to be dialed as this attempt has not been claimed for it: no dial of it
    // went out, so no SMA event can be about it (it is forged, or of a dial that never was).
    if state.status.phase() == 0 {
        return Step::Stale;
    }
    if state.status.is_terminal() {
        return Step::Absorbed;
    }
    let mut next = CallState {
        last_seq: Some(seq),
        ..state.clone()
    };
    let forward = |next: &mut CallState, to: CallStatus| {
        if to.phase() > next.status.phase() {
            next.status = to;
        }
    };
    let mut outcome = None;
    let mut retry_after = None;
    match event {
        CallEvent::Placed => forward(&mut next, CallStatus::Dialing),
        CallEvent::Ringing => forward(&mut next, CallStatus::Ringing),
        CallEvent::Answered | CallEvent::ScriptProgress => {
            next.answered = true;
            forward(&mut next, CallStatus::Answered);
        }
        CallEvent::EndRequested(req) => {
            // A cancel outranks any other request; otherwise the first request stands.
            if next.end_request.is_none() || *req == EndRequest::Cancel {
                next.end_request = Some(*req);
            }
        }
        CallEvent::Hangup {
            leg: Leg::Callee,
            code,
        } => {
            let answered = state.answered || code.is_normal_clearing();
            next.answered = answered;
            let ended = match state.end_request {
                Some(EndRequest::Cancel | EndRequest::Hangup) => Outcome::Cancelled,
                Some(EndRequest::MaxDuration) => Outcome::Completed,
                _ if answered => Outcome::Completed,
                Some(EndRequest::RingTimeout) => Outcome::NoAnswer,
                None => Outcome::from_unanswered(code.unanswered_outcome()),
            };
            let unanswered = match ended {
                Outcome::Busy => Some(Unanswered::Busy),
                Outcome::NoAnswer => Some(Unanswered::NoAnswer),
                Outcome::Declined => Some(Unanswered::Declined),
                Outcome::InvalidNumber => Some(Unanswered::InvalidNumber),
                Outcome::Failed => Some(Unanswered::Failed),
                Outcome::Completed | Outcome::Cancelled => None,
            };
            let decision = unanswered.map_or(RetryDecision::Final, |u| policy.decide(attempt, u));
            outcome = Some(ended);
            match decision {
                RetryDecision::Retry { attempt, after } => {
                    next = CallState {
                        status: CallStatus::RetryWait,
                        attempt,
                        last_seq: None,
                        answered: false,
                        end_request: None,
                    };
                    retry_after = Some(after);
                }
                RetryDecision::Final => next.status = ended.status(),
            }
        }
        CallEvent::Hangup {
            leg: Leg::Agent, ..
        }
        | CallEvent::InvalidResponse
        | CallEvent::Other => {}
    }
    Step::Apply(Change {
        next,
        outcome,
        retry_after,
    })
}

/// What a write of a [`Change`] requires of the stored record: the decision was computed from
/// a pre-state the handler could only partly see (it learns the call's facts from the SMA's
/// `TransactionAttributes`, which an ignored response may not have updated), so the write is
/// guarded by every status for which the decision comes out the same, and by the facts it
/// depended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The record's status must be one of these.
    pub statuses: Vec<CallStatus>,
    pub answered: bool,
    pub end_request: Option<EndRequest>,
}

/// The guard for applying `change`, decided from `pre`: the statuses that, with the same
/// facts, lead to the same next state.
#[must_use]
pub fn expected(
    pre: &CallState,
    attempt: Attempt,
    seq: Sequence,
    event: &CallEvent,
    policy: &RetryPolicy,
    change: &Change,
) -> Expected {
    let statuses = CallStatus::ALL
        .into_iter()
        .filter(|&status| {
            let candidate = CallState {
                status,
                last_seq: None,
                ..pre.clone()
            };
            matches!(
                transition(&candidate, attempt, seq, event, policy),
                Step::Apply(c) if c == *change
            )
        })
        .collect();
    Expected {
        statuses,
        answered: pre.answered,
        end_request: pre.end_request,
    }
}

#[cfg(test)]
mod tests;
