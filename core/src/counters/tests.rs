use super::*;
use crate::machine::{VOICEMAIL_LEFT, Verdict};

fn call(status: CallStatus) -> CallFacts {
    CallFacts {
        id: CallId::parse("call_1").unwrap(),
        campaign_id: CampaignId::parse("cmp_1").unwrap(),
        status,
        attempt: Attempt::FIRST,
        answered: false,
        slot: false,
        last_event: None,
        outcome: None,
        script_outcome: None,
        verdict: None,
        reason: None,
        dialed_at: None,
        answered_at: None,
        ended_at: None,
        updated_at: Timestamp::from_millis(1_000),
        expires_at: Some(99),
        from: None,
        sip_code: None,
        to: None,
        reference: None,
        caller_id: None,
        digits: Vec::new(),
        last_error: None,
    }
}

fn event(mut f: CallFacts, seq: u64, event_type: &str) -> CallFacts {
    f.last_event = Some(LastEvent {
        attempt: f.attempt,
        seq: Sequence::new(seq),
        event_type: event_type.to_owned(),
        response: None,
    });
    f
}

fn sum<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a CallFacts>, &'a CallFacts)>,
) -> CampaignCounters {
    let mut total = CampaignCounters::default();
    for (old, new) in pairs {
        total += &delta(old, Some(new));
    }
    total
}

/// A verdict, or none, from a generated index.
fn verdict_of(i: usize) -> Option<Verdict> {
    Verdict::ALL.get(i).copied()
}

const REASONS: [&str; 3] = ["legal-hours", "cap", "window"];
const SCRIPT_OUTCOMES: [&str; 3] = ["confirmed", VOICEMAIL_LEFT, "no_input"];

/// Counts of `keys`, zeros left out, as a recount would have them.
fn tally<K: Ord>(keys: impl IntoIterator<Item = K>) -> BTreeMap<K, i64> {
    let mut counts = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_insert(0) += 1;
    }
    counts
}

proptest::proptest! {
    /// Whatever statuses a call goes through, and however its slot and its verdict come and
    /// go, the deltas of its changes leave it counted once, in its last status and under its
    /// last verdict, and give back every slot they saw taken.
    #[test]
    fn a_call_counts_once_in_its_last_status_whatever_it_went_through(
        steps in proptest::collection::vec(
            (0..CallStatus::ALL.len(), proptest::bool::ANY, 0..=Verdict::ALL.len()),
            1..24,
        ),
    ) {
        let images: Vec<CallFacts> = steps
            .iter()
            .map(|(i, slot, v)| CallFacts {
                slot: *slot,
                verdict: verdict_of(*v),
                ..call(CallStatus::ALL[*i])
            })
            .collect();
        let mut total = delta(None, images.first());
        for pair in images.windows(2) {
            total += &delta(Some(&pair[0]), Some(&pair[1]));
        }
        let last = &images[images.len() - 1];
        proptest::prop_assert_eq!(&total.by_status, &BTreeMap::from([(last.status, 1)]));
        proptest::prop_assert_eq!(
            &total.verdicts,
            &tally(last.verdict.map(|v| v.as_str().to_owned()))
        );
        let given_back = images
            .windows(2)
            .filter(|p| p[0].slot && !p[1].slot)
            .count();
        proptest::prop_assert_eq!(total.live, -i64::try_from(given_back).unwrap());
    }

    /// A campaign's counters that say what its calls are now (statuses, reasons held, script
    /// outcomes within an attempt, verdicts) are a recount of its calls' last images, however
    /// the calls went and in whatever order their changes are summed.
    #[test]
    fn the_counters_of_what_calls_are_now_are_a_recount_of_their_last_images(
        calls in proptest::collection::vec(
            proptest::collection::vec(
                (
                    0..CallStatus::ALL.len(),
                    0..=Verdict::ALL.len(),
                    0..=REASONS.len(),
                    0..=SCRIPT_OUTCOMES.len(),
                ),
                1..12,
            ),
            1..8,
        ),
        order_seed in proptest::num::u64::ANY,
    ) {
        let lives: Vec<Vec<CallFacts>> = calls
            .iter()
            .enumerate()
            .map(|(k, steps)| {
                steps
                    .iter()
                    .map(|(s, v, r, o)| CallFacts {
                        id: CallId::parse(&format!("call_{k}")).unwrap(),
                        verdict: verdict_of(*v),
                        reason: REASONS.get(*r).map(|r| (*r).to_owned()),
                        script_outcome: SCRIPT_OUTCOMES.get(*o).map(|o| (*o).to_owned()),
                        ..call(CallStatus::ALL[*s])
                    })
                    .collect()
            })
            .collect();
        let mut deltas: Vec<CampaignCounters> = Vec::new();
        for images in &lives {
            deltas.push(delta(None, images.first()));
            for pair in images.windows(2) {
                deltas.push(delta(Some(&pair[0]), Some(&pair[1])));
            }
        }
        // Deltas add up in any order: the handler sums a batch per campaign.
        let mut seed = order_seed;
        for i in (1..deltas.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            deltas.swap(i, usize::try_from(seed >> 33).unwrap() % (i + 1));
        }
        let mut total = CampaignCounters::default();
        for d in &deltas {
            total += d;
        }
        let last: Vec<&CallFacts> = lives.iter().filter_map(|images| images.last()).collect();
        proptest::prop_assert_eq!(&total.by_status, &tally(last.iter().map(|f| f.status)));
        proptest::prop_assert_eq!(
            &total.verdicts,
            &tally(last.iter().filter_map(|f| f.verdict).map(|v| v.as_str().to_owned()))
        );
        proptest::prop_assert_eq!(
            &total.script_outcomes,
            &tally(last.iter().filter_map(|f| f.script_outcome.as_deref()).map(script_key))
        );
        let held = last.iter().filter(|f| matches!(f.status, CallStatus::Queued | CallStatus::RetryWait));
        proptest::prop_assert_eq!(
            &total.held,
            &tally(held.filter_map(|f| f.reason.as_deref()).map(script_key))
        );
    }
}

#[test]
fn an_insert_counts_the_call_in_its_status() {
    let d = delta(None, Some(&call(CallStatus::Queued)));
    assert_eq!(d.by_status, BTreeMap::from([(CallStatus::Queued, 1)]));
    assert_eq!(d.placed + d.answered + d.live, 0);
}

#[test]
fn an_answered_call_counts_once_from_claim_to_completion() {
    let queued = call(CallStatus::Queued);
    let mut dialing = call(CallStatus::Dialing);
    dialing.slot = true;
    dialing.dialed_at = Some(Timestamp::from_millis(10_000));
    let placed = event(dialing.clone(), 1, "NEW_OUTBOUND_CALL");
    let ringing = event(
        CallFacts {
            status: CallStatus::Ringing,
            ..placed.clone()
        },
        2,
        "RINGING",
    );
    let mut answered = event(
        CallFacts {
            status: CallStatus::Answered,
            answered: true,
            answered_at: Some(Timestamp::from_millis(13_000)),
            ..ringing.clone()
        },
        3,
        "CALL_ANSWERED",
    );
    answered.script_outcome = None;
    let mut scripted = event(answered.clone(), 4, "DIGITS_RECEIVED");
    scripted.script_outcome = Some("confirmed".into());
    let mut ended = event(
        CallFacts {
            status: CallStatus::Completed,
            slot: false,
            outcome: Some(Outcome::Completed),
            ended_at: Some(Timestamp::from_millis(43_000)),
            ..scripted.clone()
        },
        5,
        "HANGUP",
    );
    ended.slot = false;
    let total = sum([
        (None, &queued),
        (Some(&queued), &dialing),
        (Some(&dialing), &placed),
        (Some(&placed), &ringing),
        (Some(&ringing), &answered),
        (Some(&answered), &scripted),
        (Some(&scripted), &ended),
    ]);
    assert_eq!(
        total.by_status,
        BTreeMap::from([(CallStatus::Completed, 1)])
    );
    // The claim's +1 is the dispatcher's; the stream gives the slot back.
    assert_eq!(total.live, -1);
    assert_eq!(total.placed, 1);
    assert_eq!(total.answered, 1);
    assert_eq!(total.outcomes, BTreeMap::from([(CallStatus::Completed, 1)]));
    assert_eq!(
        total.script_outcomes,
        BTreeMap::from([("confirmed".into(), 1)])
    );
    assert_eq!(total.talk_ms, 30_000);
    assert_eq!(total.answer_wait_ms, 3_000);
}

#[test]
fn a_busy_attempt_that_is_retried_ends_as_busy_and_the_call_waits() {
    let mut ringing = event(call(CallStatus::Ringing), 2, "RINGING");
    ringing.slot = true;
    let retry = CallFacts {
        status: CallStatus::RetryWait,
        attempt: Attempt::FIRST.next(),
        slot: false,
        outcome: Some(Outcome::Busy),
        ..event(ringing.clone(), 3, "HANGUP")
    };
    let d = delta(Some(&ringing), Some(&retry));
    assert_eq!(d.outcomes, BTreeMap::from([(CallStatus::Busy, 1)]));
    assert_eq!(d.live, -1);
    assert_eq!(
        d.placed, 0,
        "the event belongs to an attempt already placed"
    );
    assert_eq!(d.answered, 0);
}

#[test]
fn a_dial_given_back_is_not_an_attempt_end_whatever_status_it_waits_in() {
    for (attempt, waiting) in [(1, CallStatus::Queued), (2, CallStatus::RetryWait)] {
        let mut dialing = call(CallStatus::Dialing);
        dialing.attempt = Attempt::new(attempt).unwrap();
        dialing.slot = true;
        // A retried call keeps the outcome of the attempt before.
        dialing.outcome = Some(Outcome::NoAnswer);
        let released = CallFacts {
            status: waiting,
            slot: false,
            ..dialing.clone()
        };
        let d = delta(Some(&dialing), Some(&released));
        assert!(d.outcomes.is_empty(), "{waiting}: {d:?}");
        assert_eq!(d.live, -1);
    }
}

#[test]
fn an_attempt_given_up_on_counts_as_lost_whatever_the_attempt_before_ended_as() {
    let mut ringing = event(call(CallStatus::Ringing), 2, "RINGING");
    ringing.slot = true;
    ringing.attempt = Attempt::new(2).unwrap();
    // The first attempt was busy; the second's end is unknown.
    ringing.outcome = Some(Outcome::Busy);
    let given_up = CallFacts {
        status: CallStatus::RetryWait,
        attempt: Attempt::new(3).unwrap(),
        outcome: None,
        slot: false,
        ..ringing.clone()
    };
    let d = delta(Some(&ringing), Some(&given_up));
    assert_eq!(d.outcomes, BTreeMap::from([(CallStatus::Lost, 1)]));
    assert_eq!(d.live, -1);
}

#[test]
fn a_lost_answered_call_counts_its_talk_time() {
    let mut answered = event(call(CallStatus::Answered), 3, "CALL_ANSWERED");
    answered.answered = true;
    answered.answered_at = Some(Timestamp::from_millis(5_000));
    let lost = CallFacts {
        status: CallStatus::Lost,
        ended_at: Some(Timestamp::from_millis(65_000)),
        ..answered.clone()
    };
    let d = delta(Some(&answered), Some(&lost));
    assert_eq!(d.outcomes, BTreeMap::from([(CallStatus::Lost, 1)]));
    assert_eq!(d.talk_ms, 60_000);
    assert_eq!(d.answered, 0, "answered was counted when it was answered");
}

#[test]
fn a_script_outcome_that_changes_moves_the_call_between_outcomes() {
    let mut first = event(call(CallStatus::Answered), 4, "DIGITS_RECEIVED");
    first.answered = true;
    first.script_outcome = Some("confirmed".into());
    let second = CallFacts {
        script_outcome: Some("transferred".into()),
        ..event(first.clone(), 5, "ACTION_SUCCESSFUL")
    };
    let d = delta(Some(&first), Some(&second));
    assert_eq!(
        d.script_outcomes,
        BTreeMap::from([("confirmed".into(), -1), ("transferred".into(), 1)])
    );
}

#[test]
fn a_removal_changes_nothing_but_a_slot_still_held() {
    let done = call(CallStatus::Completed);
    assert!(delta(Some(&done), None).is_zero());
    let mut live = call(CallStatus::Ringing);
    live.slot = true;
    assert_eq!(delta(Some(&live), None).live, -1);
}

#[test]
fn a_write_that_changes_nothing_counted_is_a_zero_delta() {
    let mut ringing = event(call(CallStatus::Ringing), 2, "RINGING");
    ringing.slot = true;
    let rearmed = CallFacts {
        updated_at: Timestamp::from_millis(9_000),
        ..ringing.clone()
    };
    assert!(delta(Some(&ringing), Some(&rearmed)).is_zero());
}

#[test]
fn deltas_of_a_round_trip_cancel_and_leave_no_zero_entries() {
    let queued = call(CallStatus::Queued);
    let dialing = call(CallStatus::Dialing);
    let mut total = delta(Some(&queued), Some(&dialing));
    total += &delta(Some(&dialing), Some(&queued));
    assert!(total.is_zero(), "{total:?}");
}

#[test]
fn history_is_written_only_for_changes_that_applied_an_sma_event() {
    let dialing = call(CallStatus::Dialing);
    let placed = event(dialing.clone(), 1, "NEW_OUTBOUND_CALL");
    let item = history(Some(&dialing), &placed).unwrap();
    assert_eq!(item.entry.seq, Sequence::new(1));
    assert_eq!(item.entry.event_type, "NEW_OUTBOUND_CALL");
    assert_eq!(item.entry.status, CallStatus::Dialing);
    assert_eq!(item.expires_at, Some(99));
    let rearmed = CallFacts {
        updated_at: Timestamp::from_millis(2_000),
        ..placed.clone()
    };
    assert_eq!(history(Some(&placed), &rearmed), None);
}

#[test]
fn completion_needs_every_contact_terminal() {
    let mut c = CampaignCounters {
        contacts: 2,
        ..CampaignCounters::default()
    };
    c.by_status.insert(CallStatus::Completed, 1);
    c.by_status.insert(CallStatus::RetryWait, 1);
    assert!(!c.is_complete());
    c.by_status.remove(&CallStatus::RetryWait);
    c.by_status.insert(CallStatus::Busy, 1);
    assert!(c.is_complete());
    assert!(!CampaignCounters::default().is_complete());
}

#[test]
fn script_keys_keep_valid_names_and_tame_the_rest() {
    assert_eq!(script_key("no_input"), "no_input");
    assert_eq!(script_key("call-back"), "call-back");
    assert_eq!(script_key("a b.c"), "a_b_c");
    assert_eq!(script_key(""), "_");
    assert_eq!(script_key(&"x".repeat(50)).len(), 40);
}

#[test]
fn stream_positions_compare_as_numbers_and_keep_the_form_given() {
    let short = StreamPosition::parse("900000000000000000001").unwrap();
    let long = StreamPosition::parse("1000000000000000000001").unwrap();
    assert!(short < long);
    assert_eq!(short.as_str().len(), StreamPosition::WIDTH);
    assert_eq!(short.to_string(), "900000000000000000001");
    let padded = StreamPosition::parse("000000000000000000068").unwrap();
    assert_eq!(padded, StreamPosition::parse("68").unwrap());
    assert_eq!(padded.sequence_number(), "000000000000000000068");
    assert!(StreamPosition::parse("12a").is_err());
    assert!(StreamPosition::parse("").is_err());
    assert!(StreamPosition::parse(&"1".repeat(41)).is_err());
}

fn with_reason(mut f: CallFacts, reason: &str) -> CallFacts {
    f.reason = Some(reason.to_owned());
    f
}

#[test]
fn held_calls_count_by_reason_while_they_wait_and_skipped_ones_once() {
    let queued = call(CallStatus::Queued);
    let held = with_reason(queued.clone(), "legal-hours");
    // Held: +1 under its reason; held again for the same reason: nothing.
    assert_eq!(
        delta(Some(&queued), Some(&held)).held,
        BTreeMap::from([("legal-hours".to_owned(), 1)])
    );
    assert!(delta(Some(&held), Some(&held.clone())).is_zero());
    // Held for another reason: moved.
    let capped = with_reason(queued.clone(), "cap");
    assert_eq!(
        delta(Some(&held), Some(&capped)).held,
        BTreeMap::from([("cap".to_owned(), 1), ("legal-hours".to_owned(), -1)])
    );
    // Claimed (the claim clears the reason): no longer held.
    let dialing = call(CallStatus::Dialing);
    assert_eq!(
        delta(Some(&capped), Some(&dialing)).held,
        BTreeMap::from([("cap".to_owned(), -1)])
    );
    // Skipped: cancelled with a reason counts once, and leaves the held count.
    let skipped = with_reason(call(CallStatus::Cancelled), "cap");
    let d = delta(Some(&capped), Some(&skipped));
    assert_eq!(d.skipped, BTreeMap::from([("cap".to_owned(), 1)]));
    assert_eq!(d.held, BTreeMap::from([("cap".to_owned(), -1)]));
    assert!(
        delta(Some(&skipped), Some(&skipped.clone()))
            .skipped
            .is_empty()
    );
    // A cancel without a reason (written before reasons existed) is counted as before only.
    assert!(
        delta(Some(&queued), Some(&call(CallStatus::Cancelled)))
            .skipped
            .is_empty()
    );
}

#[test]
fn an_ended_attempt_counts_against_the_caller_id_it_was_dialed_from() {
    let from = crate::ids::E164::parse("+12125550100").unwrap();
    let live = CallFacts {
        from: Some(from.clone()),
        answered: true,
        answered_at: Some(Timestamp::from_millis(10_000)),
        ..call(CallStatus::Answered)
    };
    let ended = CallFacts {
        ended_at: Some(Timestamp::from_millis(15_000)),
        sip_code: Some("0".into()),
        ..CallFacts {
            status: CallStatus::Completed,
            ..live.clone()
        }
    };
    let (number, counts) = number_delta(Some(&live), Some(&ended)).unwrap();
    assert_eq!(number, from);
    assert_eq!((counts.attempts, counts.answered, counts.short), (1, 1, 1));
    // No end, no count; a repeat of the end counts nothing either.
    assert_eq!(number_delta(Some(&live), Some(&live)), None);
    assert_eq!(number_delta(Some(&ended), Some(&ended)), None);
    assert_eq!(number_delta(None, Some(&ended)), None);
    // A carrier's rejection.
    let rejected = CallFacts {
        status: CallStatus::Failed,
        answered: false,
        answered_at: None,
        sip_code: Some("608".into()),
        ..ended.clone()
    };
    let dialing = CallFacts {
        status: CallStatus::Dialing,
        answered: false,
        answered_at: None,
        ..live
    };
    let (_, counts) = number_delta(Some(&dialing), Some(&rejected)).unwrap();
    assert_eq!((counts.attempts, counts.rejected), (1, 1));
}

#[test]
fn a_verdict_moves_the_call_from_undecided_to_its_judgement_and_counts_once() {
    let mut answered = event(call(CallStatus::Answered), 3, "CALL_ANSWERED");
    answered.answered = true;
    answered.slot = true;
    let listening = CallFacts {
        verdict: Some(Verdict::Undecided),
        ..answered.clone()
    };
    let d = delta(Some(&answered), Some(&listening));
    assert_eq!(d.verdicts, BTreeMap::from([("undecided".to_owned(), 1)]));
    let judged = CallFacts {
        verdict: Some(Verdict::Machine),
        ..event(listening.clone(), 4, "ACTION_SUCCESSFUL")
    };
    assert_eq!(
        delta(Some(&listening), Some(&judged)).verdicts,
        BTreeMap::from([("machine".to_owned(), 1), ("undecided".to_owned(), -1)])
    );
    // The message left, and the call ended: the verdict stands, counted once.
    let left = CallFacts {
        status: CallStatus::Completed,
        slot: false,
        script_outcome: Some(VOICEMAIL_LEFT.to_owned()),
        ..event(judged.clone(), 5, "HANGUP")
    };
    let d = delta(Some(&judged), Some(&left));
    assert!(d.verdicts.is_empty(), "{d:?}");
    assert_eq!(
        d.script_outcomes,
        BTreeMap::from([(VOICEMAIL_LEFT.to_owned(), 1)])
    );
    let total = sum([
        (Some(&answered), &listening),
        (Some(&listening), &judged),
        (Some(&judged), &left),
    ]);
    assert_eq!(total.verdicts, BTreeMap::from([("machine".to_owned(), 1)]));
    // Hung up while listening: the call stays undecided.
    let hung_up = CallFacts {
        status: CallStatus::Completed,
        slot: false,
        ..event(listening.clone(), 4, "HANGUP")
    };
    let total = sum([(Some(&answered), &listening), (Some(&listening), &hung_up)]);
    assert_eq!(
        total.verdicts,
        BTreeMap::from([("undecided".to_owned(), 1)])
    );
    // The TTL's removal leaves the history counted.
    assert!(delta(Some(&left), None).verdicts.is_empty());
}

#[test]
fn verdicts_add_up_and_leave_no_zero_entries() {
    let mut total = CampaignCounters::default();
    total += &CampaignCounters {
        verdicts: BTreeMap::from([("undecided".to_owned(), 2)]),
        ..CampaignCounters::default()
    };
    total += &CampaignCounters {
        verdicts: BTreeMap::from([("undecided".to_owned(), -2), ("person".to_owned(), 2)]),
        ..CampaignCounters::default()
    };
    assert_eq!(total.verdicts, BTreeMap::from([("person".to_owned(), 2)]));
}
