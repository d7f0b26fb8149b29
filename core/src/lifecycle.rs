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
//! - an event is applied only when its attempt is the record's attempt and its `Sequence`
//!   is greater than the last one applied; the same `Sequence` again is a duplicate (answered
//!   with the stored response), a smaller one is stale and changes nothing;
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

/// What one SMA event means for the call record, in domain terms. The SMA handler maps the
/// wire event ([`crate::contract`]) to this.
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

/// Cancels a call that has not ended (campaign cancel, or an API hang-up before dialing).
/// Returns `None` when the call is already terminal. A live call is not cancelled here: it is
/// asked to hang up and becomes `CANCELLED` when its `HANGUP` arrives.
#[must_use]
pub fn cancel_waiting(state: &CallState) -> Option<CallStatus> {
    matches!(state.status, CallStatus::Queued | CallStatus::RetryWait)
        .then_some(CallStatus::Cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(n: u64) -> Sequence {
        Sequence::new(n)
    }

    fn hangup(code: SipCode) -> CallEvent {
        CallEvent::Hangup {
            leg: Leg::Callee,
            code,
        }
    }

    /// Feeds events to a call, applying each accepted change, and returns the final state.
    fn run(events: &[(u64, CallEvent)], policy: &RetryPolicy) -> (CallState, Option<Outcome>) {
        let mut state = CallState::dialing(Attempt::FIRST);
        let mut last_outcome = None;
        for (n, e) in events {
            if let Step::Apply(change) = transition(&state, Attempt::FIRST, seq(*n), e, policy) {
                state = change.next;
                if change.outcome.is_some() {
                    last_outcome = change.outcome;
                }
            }
        }
        (state, last_outcome)
    }

    #[test]
    fn an_answered_call_that_hangs_up_is_completed() {
        let events = [
            (1, CallEvent::Placed),
            (2, CallEvent::Ringing),
            (3, CallEvent::Answered),
            (4, CallEvent::ScriptProgress),
            (5, hangup(SipCode::Code(0))),
        ];
        let (state, outcome) = run(&events, &RetryPolicy::default());
        assert_eq!(state.status, CallStatus::Completed);
        assert_eq!(outcome, Some(Outcome::Completed));
    }

    #[test]
    fn a_busy_call_waits_for_its_retry_as_the_next_attempt() {
        let events = [(1, CallEvent::Placed), (2, hangup(SipCode::Code(486)))];
        let state = CallState::dialing(Attempt::FIRST);
        let Step::Apply(first) = transition(
            &state,
            Attempt::FIRST,
            seq(1),
            &events[0].1,
            &RetryPolicy::default(),
        ) else {
            panic!("NEW_OUTBOUND_CALL must apply");
        };
        let Step::Apply(change) = transition(
            &first.next,
            Attempt::FIRST,
            seq(2),
            &events[1].1,
            &RetryPolicy::default(),
        ) else {
            panic!("HANGUP must apply");
        };
        assert_eq!(change.next.status, CallStatus::RetryWait);
        assert_eq!(change.next.attempt.get(), 2);
        assert_eq!(change.next.last_seq, None);
        assert_eq!(change.outcome, Some(Outcome::Busy));
        assert_eq!(change.retry_after, Some(Duration::from_secs(300)));
    }

    #[test]
    fn the_last_attempt_ends_with_its_outcome() {
        let policy: RetryPolicy = serde_json::from_str(r#"{"max_attempts": 1}"#).unwrap();
        let (state, _) = run(
            &[(1, CallEvent::Placed), (2, hangup(SipCode::Code(480)))],
            &policy,
        );
        assert_eq!(state.status, CallStatus::NoAnswer);
    }

    #[test]
    fn an_invalid_number_is_final_at_once() {
        let (state, _) = run(
            &[(1, CallEvent::Placed), (2, hangup(SipCode::Code(404)))],
            &RetryPolicy::default(),
        );
        assert_eq!(state.status, CallStatus::InvalidNumber);
    }

    #[test]
    fn normal_clearing_means_answered_even_when_call_answered_was_not_seen() {
        let (state, _) = run(
            &[(1, CallEvent::Placed), (3, hangup(SipCode::Code(0)))],
            &RetryPolicy::default(),
        );
        assert_eq!(state.status, CallStatus::Completed);
    }

    #[test]
    fn a_cancel_request_makes_the_hangup_cancelled_even_when_answered() {
        let events = [
            (1, CallEvent::Placed),
            (2, CallEvent::Answered),
            (3, CallEvent::EndRequested(EndRequest::Cancel)),
            (4, hangup(SipCode::Code(0))),
        ];
        assert_eq!(
            run(&events, &RetryPolicy::default()).0.status,
            CallStatus::Cancelled
        );
    }

    #[test]
    fn a_ring_timeout_is_a_retryable_no_answer() {
        let events = [
            (1, CallEvent::Placed),
            (2, CallEvent::Ringing),
            (3, CallEvent::EndRequested(EndRequest::RingTimeout)),
            (4, hangup(SipCode::Absent)),
        ];
        let (state, outcome) = run(&events, &RetryPolicy::default());
        assert_eq!(outcome, Some(Outcome::NoAnswer));
        assert_eq!(state.status, CallStatus::RetryWait);
    }

    #[test]
    fn the_agent_leg_hanging_up_does_not_end_the_call() {
        let events = [
            (1, CallEvent::Placed),
            (2, CallEvent::Answered),
            (
                3,
                CallEvent::Hangup {
                    leg: Leg::Agent,
                    code: SipCode::Code(0),
                },
            ),
        ];
        assert_eq!(
            run(&events, &RetryPolicy::default()).0.status,
            CallStatus::Answered
        );
    }

    #[test]
    fn duplicate_hangup_does_not_change_a_completed_call() {
        let policy = RetryPolicy::default();
        let (state, _) = run(
            &[
                (1, CallEvent::Placed),
                (2, CallEvent::Answered),
                (3, hangup(SipCode::Code(0))),
            ],
            &policy,
        );
        assert_eq!(
            transition(
                &state,
                Attempt::FIRST,
                seq(3),
                &hangup(SipCode::Code(0)),
                &policy
            ),
            Step::Duplicate
        );
        assert_eq!(
            transition(
                &state,
                Attempt::FIRST,
                seq(2),
                &CallEvent::Answered,
                &policy
            ),
            Step::Stale
        );
        assert_eq!(
            transition(&state, Attempt::FIRST, seq(9), &CallEvent::Ringing, &policy),
            Step::Absorbed
        );
    }

    #[test]
    fn events_of_an_earlier_attempt_are_stale() {
        let mut state = CallState::dialing(Attempt::new(2).unwrap());
        state.last_seq = Some(seq(1));
        assert_eq!(
            transition(
                &state,
                Attempt::FIRST,
                seq(5),
                &CallEvent::Answered,
                &RetryPolicy::default()
            ),
            Step::Stale
        );
    }

    #[test]
    fn call_answered_is_guarded_by_every_status_it_moves_forward_from() {
        let policy = RetryPolicy::default();
        let pre = CallState::dialing(Attempt::FIRST);
        let Step::Apply(change) =
            transition(&pre, Attempt::FIRST, seq(3), &CallEvent::Answered, &policy)
        else {
            panic!("applies");
        };
        let guard = expected(
            &pre,
            Attempt::FIRST,
            seq(3),
            &CallEvent::Answered,
            &policy,
            &change,
        );
        // QUEUED and RETRY_WAIT of the same attempt are included on purpose: a dial the
        // watchdog gave up on that turns out to be live is adopted, so it is never dialed again.
        assert_eq!(
            guard.statuses,
            vec![
                CallStatus::Queued,
                CallStatus::Dialing,
                CallStatus::Ringing,
                CallStatus::Answered,
                CallStatus::RetryWait
            ]
        );
        assert!(!guard.answered);
    }

    #[test]
    fn a_hangup_is_guarded_by_the_live_statuses_only() {
        let policy = RetryPolicy::default();
        let mut pre = CallState::dialing(Attempt::FIRST);
        pre.status = CallStatus::Answered;
        pre.answered = true;
        let event = hangup(SipCode::Code(0));
        let Step::Apply(change) = transition(&pre, Attempt::FIRST, seq(9), &event, &policy) else {
            panic!("applies");
        };
        let guard = expected(&pre, Attempt::FIRST, seq(9), &event, &policy, &change);
        assert!(guard.statuses.iter().all(|s| !s.is_terminal()));
        assert!(guard.statuses.contains(&CallStatus::Answered));
        assert!(guard.answered);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse::<CallStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert!("SPEAKING".parse::<CallStatus>().is_err());
    }

    #[test]
    fn only_waiting_calls_are_cancelled_directly() {
        let mut state = CallState::dialing(Attempt::FIRST);
        assert_eq!(cancel_waiting(&state), None);
        state.status = CallStatus::Queued;
        assert_eq!(cancel_waiting(&state), Some(CallStatus::Cancelled));
    }

    /// The events of one attempt as the SMA numbers them, for one of the callee behaviours.
    fn scenario() -> impl Strategy<Value = Vec<CallEvent>> {
        let code = prop_oneof![
            Just(SipCode::Absent),
            Just(SipCode::Code(0)),
            Just(SipCode::Code(480)),
            Just(SipCode::Code(486)),
            Just(SipCode::Code(404)),
            Just(SipCode::Code(603)),
            Just(SipCode::Code(503)),
        ];
        let end = prop_oneof![
            Just(None),
            Just(Some(EndRequest::Cancel)),
            Just(Some(EndRequest::RingTimeout)),
            Just(Some(EndRequest::Hangup)),
        ];
        (
            any::<bool>(),
            any::<bool>(),
            0usize..6,
            end,
            code,
            any::<bool>(),
        )
            .prop_map(|(rings, answers, steps, end, code, agent)| {
                let mut events = vec![CallEvent::Placed];
                if rings {
                    events.push(CallEvent::Ringing);
                }
                if answers {
                    events.push(CallEvent::Answered);
                    events.extend(std::iter::repeat_n(CallEvent::ScriptProgress, steps));
                    if agent {
                        events.push(CallEvent::Hangup {
                            leg: Leg::Agent,
                            code: SipCode::Code(0),
                        });
                    }
                }
                if let Some(req) = end {
                    events.push(CallEvent::EndRequested(req));
                }
                events.push(CallEvent::Hangup {
                    leg: Leg::Callee,
                    code,
                });
                events
            })
    }

    fn numbered(events: Vec<CallEvent>) -> Vec<(u64, CallEvent)> {
        (1u64..).zip(events).collect()
    }

    proptest! {
        /// The SMA sends event n+1 only after event n was answered (or given up on), but any
        /// invocation can be delivered again later: a 5 s retry, a network duplicate, a slow
        /// first invocation that lands after its retry. Whatever the copies, the record ends
        /// where in-order delivery puts it.
        #[test]
        fn late_and_repeated_deliveries_end_where_in_order_delivery_ends(
            events in scenario(),
            copies in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..12),
        ) {
            let policy = RetryPolicy::default();
            let in_order = numbered(events);
            let mut delivery = in_order.clone();
            for (which, offset) in copies {
                let i = which.index(in_order.len());
                // A copy of event i lands anywhere after its first delivery.
                let first = delivery.iter().position(|(n, _)| *n == in_order[i].0).unwrap_or(0);
                let at = first + 1 + offset.index(delivery.len() - first);
                delivery.insert(at, in_order[i].clone());
            }
            prop_assert_eq!(run(&delivery, &policy), run(&in_order, &policy));
        }

        /// Under any order at all, with duplicates, a call never moves backwards and a
        /// terminal call never changes.
        #[test]
        fn a_call_never_moves_backwards_and_terminal_states_absorb(
            events in scenario(),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 1..24),
        ) {
            let policy = RetryPolicy::default();
            let in_order = numbered(events);
            let mut state = CallState::dialing(Attempt::FIRST);
            for pick in order {
                let (n, e) = &in_order[pick.index(in_order.len())];
                let before = state.clone();
                if let Step::Apply(change) = transition(&state, Attempt::FIRST, seq(*n), e, &policy) {
                    state = change.next;
                }
                prop_assert!(state.attempt >= before.attempt);
                if state.attempt == before.attempt {
                    prop_assert!(state.status.phase() >= before.status.phase());
                }
                if before.status.is_terminal() {
                    prop_assert_eq!(&state, &before);
                }
            }
        }

        /// The guard orders events by attempt, then `Sequence`: the last event again is a
        /// duplicate, anything before it stale, anything after it fresh, unless the call
        /// has moved on to a later attempt than the event's.
        #[test]
        fn the_sequence_guard_is_the_order_of_attempt_then_sequence(
            current in 1u32..4,
            last in proptest::option::of((1u32..4, 0u64..6)),
            event in (1u32..4, 0u64..6),
        ) {
            let attempt = |n: u32| Attempt::new(n).unwrap_or(Attempt::FIRST);
            let last = last.map(|(a, s)| (attempt(a), seq(s)));
            let (a, s) = (attempt(event.0), seq(event.1));
            let expected = match last {
                Some(l) if l == (a, s) => Order::Duplicate,
                Some(l) if l > (a, s) => Order::Stale,
                _ if attempt(current) > a => Order::Stale,
                _ => Order::Fresh,
            };
            prop_assert_eq!(order(attempt(current), last, a, s), expected);
        }

        /// `transition` decides only what the guard lets through: whatever the event, a
        /// duplicate or a stale one is never applied.
        #[test]
        fn transition_applies_only_what_the_guard_calls_fresh(
            events in scenario(),
            last in proptest::option::of(0u64..6),
            at in 0u64..6,
        ) {
            let policy = RetryPolicy::default();
            let state = CallState {
                last_seq: last.map(seq),
                ..CallState::dialing(Attempt::FIRST)
            };
            let guard = order(state.attempt, state.last_seq.map(|l| (state.attempt, l)), Attempt::FIRST, seq(at));
            for event in &events {
                let step = transition(&state, Attempt::FIRST, seq(at), event, &policy);
                match guard {
                    Order::Duplicate => prop_assert_eq!(&step, &Step::Duplicate),
                    Order::Stale => prop_assert_eq!(&step, &Step::Stale),
                    Order::Fresh => prop_assert!(!matches!(step, Step::Duplicate | Step::Stale)),
                }
            }
        }
    }
}
