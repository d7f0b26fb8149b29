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
    /// The one rule that makes a double dial impossible: a watchdog puts an attempt back to
    /// waiting only when nothing shows it was placed, and the store's guard for that change
    /// refuses it whenever something does.
    #[test]
    fn a_watchdog_never_releases_an_attempt_that_was_placed(r in any_record()) {
        let placed = r.transaction_id.is_some()
            && (r.placed_attempt == Some(r.attempt)
                || r.last_event.as_ref().is_some_and(|e| e.attempt == r.attempt));
        if for_watchdog(&r, r.attempt) == ForWatchdog::Release {
            prop_assert!(!placed);
        }
        if placed || r.placed_attempt == Some(r.attempt) {
            prop_assert!(!Guard::unplaced(r.attempt).admits(&r, true));
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
fn a_waiting_call_follows_its_campaign_then_its_window() {
    let opening = Some(Timestamp::from_millis(5_000));
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Paused), opening),
        ForWaiting::Park
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Cancelled), opening),
        ForWaiting::Cancel(CAMPAIGN_CANCELLED)
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Active), opening),
        ForWaiting::Defer(Timestamp::from_millis(5_000))
    );
    assert_eq!(
        for_waiting(&campaign(CampaignStatus::Completed), None),
        ForWaiting::Dial
    );
    assert_eq!(
        ForWaiting::Park.guard(Attempt::FIRST),
        Some(Guard::waiting(Attempt::FIRST).in_index(InIndex::Listed))
    );
}

#[test]
fn a_hang_up_the_sma_cannot_place_loses_the_call_and_anything_else_rechecks_it() {
    assert_eq!(
        after_hang_up(EndRequest::RingTimeout, HangUpAnswer::NotFound),
        AfterHangUp::Lose("the SMA no longer knows the call (ring_timeout watchdog)".into())
    );
    assert_eq!(
        after_hang_up(EndRequest::MaxDuration, HangUpAnswer::Failed),
        AfterHangUp::Rearm
    );
    assert_eq!(
        after_hang_up(EndRequest::MaxDuration, HangUpAnswer::Delivered),
        AfterHangUp::Rearm
    );
    let mut answered = record(CallStatus::Answered, 1);
    answered.answered = true;
    answered.placed_attempt = Some(Attempt::FIRST);
    answered.transaction_id = TransactionId::parse("txn-1").ok();
    assert_eq!(
        for_watchdog(&answered, Attempt::FIRST),
        ForWatchdog::HangUp(EndRequest::MaxDuration)
    );
}

#[test]
fn a_dial_waiting_for_its_slot_gives_way_to_a_pause_or_a_cancel() {
    assert!(still_dial(CampaignStatus::Active));
    assert!(still_dial(CampaignStatus::Completed));
    assert!(!still_dial(CampaignStatus::Paused));
    assert!(!still_dial(CampaignStatus::Cancelled));
}
