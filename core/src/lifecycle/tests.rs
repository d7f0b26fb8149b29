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
fn call_answered_is_guarded_by_every_claimed_status_it_moves_forward_from() {
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
    // Not QUEUED or RETRY_WAIT of the same attempt: an attempt not claimed for a dial was
    // never dialed, and the watchdog never puts one that may have been back to waiting.
    assert_eq!(
        guard.statuses,
        vec![
            CallStatus::Dialing,
            CallStatus::Ringing,
            CallStatus::Answered,
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

    /// A call waiting to be dialed (`QUEUED`, or `RETRY_WAIT` for its next attempt) was not
    /// claimed for the attempt, so no SMA event of it can be real: none, in any attempt, with
    /// any `Sequence`, changes it.
    #[test]
    fn no_event_moves_a_call_that_was_not_claimed_for_its_attempt(
        events in scenario(),
        waiting in prop_oneof![Just(CallStatus::Queued), Just(CallStatus::RetryWait)],
        current in 1u32..4,
        event_attempt in 1u32..4,
        at in 0u64..6,
    ) {
        let policy = RetryPolicy::default();
        let attempt = |n: u32| Attempt::new(n).unwrap_or(Attempt::FIRST);
        let state = CallState {
            status: waiting,
            ..CallState::dialing(attempt(current))
        };
        for event in &events {
            let step = transition(&state, attempt(event_attempt), seq(at), event, &policy);
            prop_assert_eq!(&step, &Step::Stale, "{:?}", event);
        }
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
