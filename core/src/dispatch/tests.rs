#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::ids::{CampaignId, E164, Sequence, TransactionId};
use crate::record::{AppliedEvent, Limits, Pacing};
use crate::retry::RetryPolicy;

fn attempt(n: u32) -> Attempt {
    Attempt::new(n).unwrap()
}

fn record(status: CallStatus, at: u32) -> CallRecord {
    CallRecord::sample(status, attempt(at))
}

/// Any record a dispatcher can meet: any status and attempt, with or without an event, a
/// recorded placing and a transaction, of this attempt or an earlier one.
fn any_record() -> impl Strategy<Value = CallRecord> {
    (
        prop::sample::select(CallStatus::ALL.to_vec()),
        1u32..4,
        prop::option::of(1u32..4),
        prop::option::of(1u32..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(status, at, event_in, placed_in, txn, answered)| {
            let mut r = record(status, at);
            r.last_event = event_in.filter(|&e| e <= at).map(|e| AppliedEvent {
                attempt: attempt(e),
                seq: Sequence::new(1),
                event_type: "RINGING".into(),
                response: "{}".into(),
            });
            r.placed_attempt = placed_in.filter(|&p| p <= at).map(attempt);
            r.transaction_id = txn.then(|| TransactionId::parse("txn-1").unwrap());
            r.answered = answered;
            r
        })
}

fn campaign(status: CampaignStatus) -> Campaign {
    Campaign {
        purpose: crate::policy::Purpose::default(),
        on_cap: crate::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        name: "rules".into(),
        from: E164::parse("+15555550199").unwrap(),
        status,
        retry: RetryPolicy::default(),
        pacing: Pacing::default(),
        script: serde_json::from_str(r#"{"start": "a", "steps": {"a": {"say": "Hi."}}}"#).unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: Timestamp::EPOCH,
        contacts: 0,
    }
}

proptest! {
    /// The rules that make a double dial impossible: a watchdog never puts an attempt back to
    /// waiting as the same attempt; what it gives up on is dialed again, if at all, only as a
    /// later attempt, and never once answered; and the guard of giving up on an unknown
    /// placing refuses a record that shows the attempt was placed.
    #[test]
    fn a_watchdog_never_dials_an_attempt_again(r in any_record()) {
        let placed = r.transaction_id.is_some()
            && (r.placed_attempt == Some(r.attempt)
                || r.last_event.as_ref().is_some_and(|e| e.attempt == r.attempt));
        if for_watchdog(&r, r.attempt) == ForWatchdog::PlacingUnknown {
            prop_assert!(!placed);
        }
        if placed || r.placed_attempt == Some(r.attempt) {
            prop_assert!(!Guard::unplaced(r.attempt).admits(&r, true));
        }
        match give_up(&r, &RetryPolicy::default()) {
            GiveUp::Retry { attempt, .. } => {
                prop_assert!(attempt > r.attempt);
                prop_assert!(!r.answered);
            }
            GiveUp::Lose => prop_assert!(
                r.answered || r.attempt.get() >= 3
            ),
        }
    }

    /// A watchdog acts only on the attempt it was armed for, while that attempt is live.
    #[test]
    fn a_watchdog_of_another_attempt_or_an_ended_call_does_nothing(r in any_record(), armed in 1u32..4) {
        let decision = for_watchdog(&r, attempt(armed));
        if attempt(armed) != r.attempt || !r.status.is_live() {
            prop_assert_eq!(decision, ForWatchdog::Nothing);
        } else {
            prop_assert_ne!(decision, ForWatchdog::Nothing);
        }
    }

    /// Guards are exactly their statuses, attempt and index place.
    #[test]
    fn guards_admit_exactly_their_statuses_in_their_attempt(r in any_record(), at in 1u32..4, listed in any::<bool>()) {
        let a = attempt(at);
        let same = r.attempt == a;
        prop_assert_eq!(Guard::waiting(a).admits(&r, listed), same && WAITING.contains(&r.status));
        prop_assert_eq!(Guard::live(a).admits(&r, listed), same && LIVE.contains(&r.status));
        let parked = Guard::waiting(a).in_index(InIndex::Parked);
        prop_assert_eq!(parked.admits(&r, listed), same && WAITING.contains(&r.status) && !listed);
        prop_assert!(!(Guard::waiting(a).admits(&r, listed) && Guard::live(a).admits(&r, listed)));
    }
}

#[test]
fn an_unknown_answer_is_never_dialed_again_and_a_throttled_one_always_is() {
    assert_eq!(after_dial(DialAnswer::Unknown), AfterDial::LeaveToWatchdog);
    assert_eq!(AfterDial::LeaveToWatchdog.guard(Attempt::FIRST), None);
    assert!(matches!(
        after_dial(DialAnswer::Throttled),
        AfterDial::Release { .. }
    ));
    assert_eq!(after_dial(DialAnswer::Placed), AfterDial::RecordPlaced);
    let refused = after_dial(DialAnswer::Rejected {
        code: "BadRequestException".into(),
        message: "not in the inventory".into(),
    });
    assert_eq!(
        refused,
        AfterDial::Refuse {
            status: CallStatus::Failed,
            reason: "BadRequestException: not in the inventory".into()
        }
    );
    assert_eq!(
        refused.guard(Attempt::FIRST),
        Some(Guard::unplaced(Attempt::FIRST))
    );
}

#[test]
fn a_waiting_call_follows_its_campaign_then_its_hours() {
    let now = Timestamp::from_millis(1_000);
    let opening = Hours::OpensAt(Timestamp::from_millis(5_000), Reason::LegalHours);
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Paused), opening, now),
        ForWaiting::Park
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Cancelled), opening, now),
        ForWaiting::Cancel(Reason::CampaignCancelled)
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Active), opening, now),
        ForWaiting::Defer(Timestamp::from_millis(5_000), Reason::LegalHours)
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Completed), Hours::Open, now),
        ForWaiting::Dial
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Active), Hours::UnknownZone, now),
        ForWaiting::Defer(now.plus(UNKNOWN_ZONE_RECHECK), Reason::UnknownTimezone)
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Active), Hours::Never, now),
        ForWaiting::Cancel(Reason::NoLawfulHours)
    );
    assert_eq!(
        ForWaiting::Park.guard(Attempt::FIRST),
        Some(Guard::waiting(Attempt::FIRST).in_index(InIndex::Listed))
    );
}

#[test]
fn a_call_the_sma_no_longer_knows_is_over_and_anything_else_is_checked_again() {
    assert_eq!(after_hang_up(HangUpAnswer::NotFound), AfterHangUp::Over);
    assert_eq!(after_hang_up(HangUpAnswer::Failed), AfterHangUp::Rearm);
    assert_eq!(after_hang_up(HangUpAnswer::Delivered), AfterHangUp::Rearm);
    let mut answered = record(CallStatus::Answered, 1);
    answered.answered = true;
    answered.placed_attempt = Some(Attempt::FIRST);
    answered.transaction_id = TransactionId::parse("txn-1").ok();
    assert_eq!(
        for_watchdog(&answered, Attempt::FIRST),
        ForWatchdog::HangUp(EndRequest::MaxDuration)
    );
    let dialing = record(CallStatus::Dialing, 1);
    assert_eq!(
        for_watchdog(&dialing, Attempt::FIRST),
        ForWatchdog::PlacingUnknown
    );
}

#[test]
fn an_attempt_whose_end_is_unknown_is_retried_as_a_failure_unless_it_was_answered() {
    let policy = RetryPolicy::default();
    let dialing = record(CallStatus::Dialing, 1);
    let GiveUp::Retry { attempt, after } = give_up(&dialing, &policy) else {
        panic!("a first attempt that reached nobody is tried again");
    };
    assert_eq!(attempt, Attempt::FIRST.next());
    assert_eq!(
        after,
        std::time::Duration::from_secs(600),
        "the failure delay"
    );
    let last = record(CallStatus::Ringing, 3);
    assert_eq!(give_up(&last, &policy), GiveUp::Lose);
    let mut answered = record(CallStatus::Answered, 1);
    answered.answered = true;
    assert_eq!(give_up(&answered, &policy), GiveUp::Lose);
}

/// A `HANGUP` of transaction `txn` as the SMA sends it, numbered `seq`, for leg `leg`.
fn hangup_event(txn: &str, seq: u64, leg: &str, code: u16) -> Event {
    crate::contract::validate_event(&serde_json::json!({
        "SchemaVersion": "1.0",
        "Sequence": seq,
        "InvocationEventType": "HANGUP",
        "ActionData": {"Type": "Hangup", "Parameters": {
            "SipResponseCode": code.to_string(), "CallId": "leg-a", "ParticipantTag": leg}},
        "CallDetails": {
            "TransactionId": txn,
            "AwsAccountId": "111122223333",
            "AwsRegion": "us-east-1",
            "SipMediaApplicationId": "sma-1",
            "Participants": [{"CallId": "leg-a", "ParticipantTag": "LEG-A",
                "To": "+15555550100", "From": "+15555550199", "Direction": "Outbound",
                "StartTimeInMilliseconds": "1700000000000", "Status": "Disconnected"}]
        }
    }))
    .unwrap()
}

#[test]
fn an_orphaned_hangup_of_the_attempts_transaction_decides_its_end_under_the_events_guard() {
    let policy = RetryPolicy::default();
    let now = Timestamp::from_millis(1_000_000);
    let mut placed = record(CallStatus::Dialing, 1);
    placed.placed_attempt = Some(Attempt::FIRST);
    placed.transaction_id = TransactionId::parse("txn-1").ok();

    let busy = hangup_event("txn-1", 2, "LEG-A", 486);
    let write = ended_by_orphan(&placed, &busy, &policy, now).unwrap();
    assert!(write.belongs_to(&placed) && write.admits(&placed));
    assert_eq!(write.next.status, CallStatus::RetryWait);
    assert_eq!(write.next.attempt, Attempt::FIRST.next());
    assert_eq!(write.outcome, Some(crate::lifecycle::Outcome::Busy));
    assert_eq!(write.sip_code.as_deref(), Some("486"));
    assert_eq!(
        write.due,
        DueChange::At(now.plus(std::time::Duration::from_secs(300)))
    );
    assert_eq!(write.seq, Sequence::new(2));

    // Another transaction's, the agent leg's, or one the record has seen: nothing.
    assert_eq!(
        ended_by_orphan(
            &placed,
            &hangup_event("txn-2", 2, "LEG-A", 486),
            &policy,
            now
        ),
        None
    );
    assert_eq!(
        ended_by_orphan(&placed, &hangup_event("txn-1", 2, "LEG-B", 0), &policy, now),
        None
    );
    let mut seen = placed.clone();
    seen.last_event = Some(AppliedEvent {
        attempt: Attempt::FIRST,
        seq: Sequence::new(4),
        event_type: "RINGING".into(),
        response: "{}".into(),
    });
    assert_eq!(ended_by_orphan(&seen, &busy, &policy, now), None);
    // A call whose transaction is not known cannot be matched to any orphan.
    assert_eq!(
        ended_by_orphan(&record(CallStatus::Dialing, 1), &busy, &policy, now),
        None
    );
}

#[test]
fn a_dial_waiting_for_its_slot_gives_way_to_a_pause_or_a_cancel() {
    assert!(still_dial(CampaignStatus::Active));
    assert!(still_dial(CampaignStatus::Completed));
    assert!(!still_dial(CampaignStatus::Paused));
    assert!(!still_dial(CampaignStatus::Cancelled));
}

/// The instant of local time `y-m-d h:mi` in `zone`.
fn local(zone: &str, (y, m, d): (i16, i8, i8), (h, mi): (i8, i8)) -> Timestamp {
    let t = jiff::civil::date(y, m, d)
        .at(h, mi, 0, 0)
        .in_tz(zone)
        .unwrap()
        .timestamp();
    Timestamp::from_millis(t.as_millisecond())
}

fn waiting_to(number: &str, tz: Option<&str>) -> CallRecord {
    let mut r = record(CallStatus::Queued, 1);
    r.to = E164::parse(number).unwrap();
    r.tz = tz.map(str::to_owned);
    r
}

fn with_purpose(purpose: crate::policy::Purpose, window: Option<&str>) -> Campaign {
    Campaign {
        purpose,
        window: window.map(|w| serde_json::from_str(w).unwrap()),
        ..campaign(CampaignStatus::Active)
    }
}

const WEEKDAYS_9_TO_17_CHICAGO: &str = r#"{"timezone": "America/Chicago", "hours": {
    "mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
    "thu": ["09:00-17:00"], "fri": ["09:00-17:00"]}}"#;

#[test]
fn the_law_holds_a_florida_number_after_eight_in_the_evening_and_france_on_its_national_day() {
    use crate::policy::Purpose;
    let legal = Some(crate::legal::LegalHours::builtin());
    let informational = with_purpose(Purpose::Informational, None);
    let miami = waiting_to("+13055550100", None);
    let new_york = waiting_to("+12125550100", None);
    let paris = waiting_to("+33142685300", None);

    // Tuesday 2030-07-16, 20:30 in Miami: Florida's law closes at 20:00, the federal at 21:00.
    let evening = local("America/New_York", (2030, 7, 16), (20, 30));
    assert_eq!(
        hours(legal, &informational, &miami, evening),
        Hours::OpensAt(
            local("America/New_York", (2030, 7, 17), (8, 0)),
            Reason::LegalHours
        )
    );
    assert_eq!(
        hours(legal, &informational, &new_york, evening),
        Hours::Open
    );
    // Monday 2031-07-14 (Bastille Day), 11:00 in Paris: the next lawful minute is Tuesday's
    // first range.
    let national_day = local("Europe/Paris", (2031, 7, 14), (11, 0));
    assert_eq!(
        hours(legal, &informational, &paris, national_day),
        Hours::OpensAt(
            local("Europe/Paris", (2031, 7, 15), (10, 0)),
            Reason::LegalHours
        )
    );
    // An emergency is exempt from the law's hours; the local stack may leave them out.
    let emergency = with_purpose(Purpose::Emergency, None);
    assert_eq!(hours(legal, &emergency, &miami, evening), Hours::Open);
    assert_eq!(
        hours(None, &informational, &paris, national_day),
        Hours::Open
    );
}

#[test]
fn a_window_narrows_the_law_and_the_reason_names_which_one_holds_the_call() {
    use crate::policy::Purpose;
    let legal = Some(crate::legal::LegalHours::builtin());
    let campaign = with_purpose(Purpose::Healthcare, Some(WEEKDAYS_9_TO_17_CHICAGO));
    let miami = waiting_to("+13055550100", None);
    // 07:30 Wednesday in Miami: the law opens at 08:00 but the window at 09:00; the law is
    // what holds the call now.
    let early = local("America/New_York", (2030, 7, 17), (7, 30));
    let nine = local("America/New_York", (2030, 7, 17), (9, 0));
    assert_eq!(
        hours(legal, &campaign, &miami, early),
        Hours::OpensAt(nine, Reason::LegalHours)
    );
    // 17:30: the law is open, the window (read in the callee's zone) is not.
    let late = local("America/New_York", (2030, 7, 17), (17, 30));
    assert_eq!(
        hours(legal, &campaign, &miami, late),
        Hours::OpensAt(
            local("America/New_York", (2030, 7, 18), (9, 0)),
            Reason::Window
        )
    );
    assert_eq!(hours(legal, &campaign, &miami, nine), Hours::Open);
    // Without the law, only the window holds it.
    assert_eq!(
        hours(None, &campaign, &miami, early),
        Hours::OpensAt(nine, Reason::Window)
    );
    // A window open only on Sundays never meets France's hours.
    let sundays = with_purpose(
        Purpose::Informational,
        Some(r#"{"timezone": "Europe/Paris", "hours": {"sun": ["10:00-12:00"]}}"#),
    );
    assert_eq!(
        hours(legal, &sundays, &waiting_to("+33142685300", None), early),
        Hours::Never
    );
}

#[test]
fn a_callee_whose_zone_nothing_settles_is_held_unless_the_campaign_names_one() {
    use crate::policy::Purpose;
    let legal = Some(crate::legal::LegalHours::builtin());
    let toll_free = waiting_to("+18005550100", None);
    let now = local("America/Chicago", (2030, 7, 17), (12, 0));
    let no_window = with_purpose(Purpose::Informational, None);
    assert_eq!(
        hours(legal, &no_window, &toll_free, now),
        Hours::UnknownZone
    );
    // The contact's own zone settles it; so does the campaign's window.
    assert_eq!(
        hours(
            legal,
            &no_window,
            &waiting_to("+18005550100", Some("America/Denver")),
            now
        ),
        Hours::Open
    );
    let windowed = with_purpose(Purpose::Informational, Some(WEEKDAYS_9_TO_17_CHICAGO));
    assert_eq!(hours(legal, &windowed, &toll_free, now), Hours::Open);
    // Nothing holds an emergency call without a window, zone or not.
    let emergency = with_purpose(Purpose::Emergency, None);
    assert_eq!(hours(legal, &emergency, &toll_free, now), Hours::Open);
}
