//! What outdial could have known about one call attempt, from the simulator's report: the
//! judge of a call that ended `LOST`.
//!
//! outdial gives an attempt up (and, with no attempt left or once the callee was reached,
//! ends the call `LOST`) only when it cannot know what became of it
//! ([dispatcher.md](../../../docs/dispatcher.md), "Watchdogs"). The simulator saw both
//! sides, so it can say whether that was so:
//!
//! - **placing unknown**: no invocation of the attempt that named its call reached the
//!   handler with an answer the service took, and the Create API's `201` never reached the
//!   dialer (it answered `500`, before or after placing the call, or no request was made at
//!   all). An event that names no call (the `HANGUP` of a call whose `NEW_OUTBOUND_CALL` was
//!   never answered carries no `TransactionAttributes`) can only be matched by a transaction
//!   outdial never heard of;
//! - **end unknown**: the attempt's `HANGUP` never reached the handler;
//! - **database outage**: what did reach the handler (or the dialer) did so while the
//!   database was down, or within the SMA's event budget after it came back, so it could not
//!   be written.
//!
//! Anything else was knowable: a `LOST` call the simulator cannot confirm is a bug.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CallReport, CreateRequest, HandlerRan, Invocation, Report};

/// A span of the simulator's time line (milliseconds from its start, as its report counts
/// them) during which the database did not answer: paused, or killed until it answered
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub from_ms: u64,
    pub to_ms: u64,
}

/// Why an attempt's fate could not be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknowable {
    /// Nothing of the attempt reached outdial: its Create requests were all answered with an
    /// error (or it placed the call and answered `500`), and no invocation's answer was
    /// taken.
    PlacingUnknown,
    /// The claim was made but no Create request of the attempt ever reached the simulator
    /// (a dispatcher that stopped between its claim and its request, or a claim whose own
    /// answer was lost to a database outage).
    NeverRequested,
    /// The call was placed and its `HANGUP` never reached the handler.
    EndUnknown,
    /// What would have told outdial reached it only while the database was down (or within
    /// the event budget after it came back).
    Outage,
}

impl Unknowable {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PlacingUnknown => "placing_unknown",
            Self::NeverRequested => "never_requested",
            Self::EndUnknown => "end_unknown",
            Self::Outage => "database_outage",
        }
    }
}

/// The simulator's judgement of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// outdial could not have known what became of it.
    Unknowable { why: Unknowable },
    /// outdial could have known: it was placed and ended in plain sight.
    Knowable { evidence: String },
}

impl Verdict {
    #[must_use]
    pub const fn unknowable(&self) -> bool {
        matches!(self, Self::Unknowable { .. })
    }
}

/// Judges attempt `attempt` of call `call_id`: whether outdial could have known that it was
/// placed and how it ended. `outages` are the database's, and `grace` is how long after one
/// a request that was under way may still fail because of it (the SMA's event budget).
#[must_use]
pub fn judge(
    report: &Report,
    call_id: &str,
    attempt: u32,
    outages: &[Outage],
    grace: Duration,
) -> Verdict {
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let during_outage = |from: u64, to: u64| {
        outages
            .iter()
            .any(|o| from <= o.to_ms.saturating_add(grace_ms) && to >= o.from_ms)
    };
    let requests: Vec<&CreateRequest> = report
        .creates
        .iter()
        .filter(|r| r.call_id.as_deref() == Some(call_id) && r.attempt == Some(attempt))
        .collect();
    let placed: Vec<&CallReport> = report
        .calls
        .iter()
        .filter(|c| {
            c.arguments.get("call_id").map(String::as_str) == Some(call_id)
                && c.arguments.get("attempt").and_then(|a| a.parse().ok()) == Some(attempt)
        })
        .collect();

    // Placing: the dialer heard the 201, or the handler answered an event naming the call.
    let answered: Vec<&CreateRequest> = requests
        .iter()
        .copied()
        .filter(|r| r.status == 201)
        .collect();
    let taken: Vec<&Invocation> = placed
        .iter()
        .flat_map(|c| &c.invocation_log)
        .filter(|i| i.handler == HandlerRan::Ran && i.accepted && i.named)
        .collect();
    let placing_seen = answered.iter().any(|r| !during_outage(r.at_ms, r.at_ms))
        || taken
            .iter()
            .any(|i| !during_outage(i.sent_ms, i.answered_ms));
    if !placing_seen {
        let why = if !answered.is_empty() || !taken.is_empty() {
            Unknowable::Outage
        } else if requests.is_empty() && placed.is_empty() {
            Unknowable::NeverRequested
        } else {
            Unknowable::PlacingUnknown
        };
        return Verdict::Unknowable { why };
    }

    // The end: a HANGUP of a placed call reached the handler.
    let hangups: Vec<&Invocation> = placed
        .iter()
        .flat_map(|c| &c.invocation_log)
        .filter(|i| i.event_type == "HANGUP" && i.handler == HandlerRan::Ran)
        .collect();
    match hangups
        .iter()
        .find(|i| !during_outage(i.sent_ms, i.answered_ms))
    {
        Some(hangup) => Verdict::Knowable {
            evidence: format!(
                "placed, and its HANGUP (Sequence {}) reached the handler at {} ms",
                hangup.sequence, hangup.sent_ms
            ),
        },
        None if hangups.is_empty() => Verdict::Unknowable {
            why: Unknowable::EndUnknown,
        },
        None => Verdict::Unknowable {
            why: Unknowable::Outage,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::Callee;
    use super::*;

    const BUDGET: Duration = Duration::from_millis(2_500);

    fn report(creates: Vec<CreateRequest>, calls: Vec<CallReport>) -> Report {
        Report {
            calls,
            violations: Vec::new(),
            placed_per_number: BTreeMap::new(),
            placed_per_number_purpose: BTreeMap::new(),
            digits_received: 0,
            double_dials: 0,
            placed_per_second: Vec::new(),
            max_in_any_second: 0,
            placing_span_s: 0.0,
            create_requests: 0,
            throttled: 0,
            creates,
            placed_per_from: BTreeMap::new(),
            carrier_rejected: BTreeMap::new(),
        }
    }

    fn create(attempt: u32, at_ms: u64, status: u16, tx: Option<&str>) -> CreateRequest {
        CreateRequest {
            at_ms,
            to: "+15555550100".into(),
            call_id: Some("call_a".into()),
            attempt: Some(attempt),
            status,
            transaction_id: tx.map(str::to_owned),
        }
    }

    fn event(kind: &str, seq: u64, at: u64, handler: HandlerRan, accepted: bool) -> Invocation {
        Invocation {
            event_type: kind.into(),
            sequence: seq,
            sent_ms: at,
            answered_ms: at + 5,
            handler,
            accepted,
            named: true,
            copy: false,
        }
    }

    fn call(attempt: u32, create_answered: bool, log: Vec<Invocation>) -> CallReport {
        CallReport {
            transaction_id: format!("tx-{attempt}"),
            to: "+15555550100".into(),
            callee: Callee::Busy,
            arguments: [
                ("call_id", "call_a".to_owned()),
                ("attempt", attempt.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            invocations: log.len() as u64,
            ended: true,
            transcript: Vec::new(),
            placed_ms: 1_000,
            create_answered,
            invocation_log: log,
            audio: None,
        }
    }

    fn why(verdict: &Verdict) -> Option<Unknowable> {
        match verdict {
            Verdict::Unknowable { why } => Some(*why),
            Verdict::Knowable { .. } => None,
        }
    }

    #[test]
    fn a_call_placed_and_ended_in_plain_sight_was_knowable() {
        let r = report(
            vec![create(2, 1_000, 201, Some("tx-2"))],
            vec![call(
                2,
                true,
                vec![
                    event("NEW_OUTBOUND_CALL", 1, 1_010, HandlerRan::Ran, true),
                    event("HANGUP", 2, 1_500, HandlerRan::Ran, true),
                ],
            )],
        );
        let verdict = judge(&r, "call_a", 2, &[], BUDGET);
        assert!(!verdict.unknowable(), "{verdict:?}");
        // Another attempt of the same call, never requested, is judged on its own.
        assert_eq!(
            why(&judge(&r, "call_a", 3, &[], BUDGET)),
            Some(Unknowable::NeverRequested)
        );
        // So is another call.
        assert_eq!(
            why(&judge(&r, "call_b", 2, &[], BUDGET)),
            Some(Unknowable::NeverRequested)
        );
    }

    #[test]
    fn a_500_before_placing_is_placing_unknown() {
        let r = report(vec![create(1, 1_000, 500, None)], Vec::new());
        assert_eq!(
            why(&judge(&r, "call_a", 1, &[], BUDGET)),
            Some(Unknowable::PlacingUnknown)
        );
    }

    #[test]
    fn a_500_after_placing_is_placing_unknown_only_if_no_answer_was_taken() {
        // NEW_OUTBOUND_CALL failed twice (once before the handler, once after it ran and its
        // answer was lost): the call ended with 480 and nothing of it reached outdial.
        let lost = call(
            1,
            false,
            vec![
                event("NEW_OUTBOUND_CALL", 1, 1_010, HandlerRan::NotRun, false),
                event("NEW_OUTBOUND_CALL", 1, 1_020, HandlerRan::Ran, false),
                // No answer was taken, so the HANGUP names nothing.
                Invocation {
                    named: false,
                    ..event("HANGUP", 2, 1_030, HandlerRan::Ran, true)
                },
            ],
        );
        let r = report(vec![create(1, 1_000, 500, Some("tx-1"))], vec![lost]);
        assert_eq!(
            why(&judge(&r, "call_a", 1, &[], BUDGET)),
            Some(Unknowable::PlacingUnknown)
        );
        // One taken answer is enough for the handler to know the call.
        let seen = call(
            1,
            false,
            vec![
                event("NEW_OUTBOUND_CALL", 1, 1_010, HandlerRan::Ran, true),
                event("HANGUP", 2, 1_030, HandlerRan::Ran, true),
            ],
        );
        let r = report(vec![create(1, 1_000, 500, Some("tx-1"))], vec![seen]);
        assert!(!judge(&r, "call_a", 1, &[], BUDGET).unknowable());
    }

    #[test]
    fn a_hangup_that_never_reached_the_handler_is_end_unknown() {
        let r = report(
            vec![create(1, 1_000, 201, Some("tx-1"))],
            vec![call(
                1,
                true,
                vec![
                    event("NEW_OUTBOUND_CALL", 1, 1_010, HandlerRan::Ran, true),
                    event("HANGUP", 2, 1_500, HandlerRan::NotRun, false),
                    event("HANGUP", 2, 1_510, HandlerRan::Unknown, false),
                ],
            )],
        );
        assert_eq!(
            why(&judge(&r, "call_a", 1, &[], BUDGET)),
            Some(Unknowable::EndUnknown)
        );
        // A HANGUP whose answer was lost after the handler ran did reach it.
        let r = report(
            vec![create(1, 1_000, 201, Some("tx-1"))],
            vec![call(
                1,
                true,
                vec![
                    event("NEW_OUTBOUND_CALL", 1, 1_010, HandlerRan::Ran, true),
                    event("HANGUP", 2, 1_500, HandlerRan::Ran, false),
                ],
            )],
        );
        assert!(!judge(&r, "call_a", 1, &[], BUDGET).unknowable());
    }

    #[test]
    fn what_reached_outdial_during_an_outage_or_its_budget_after_does_not_count() {
        let r = report(
            vec![create(1, 10_000, 201, Some("tx-1"))],
            vec![call(
                1,
                true,
                vec![
                    event("NEW_OUTBOUND_CALL", 1, 10_010, HandlerRan::Ran, true),
                    event("HANGUP", 2, 21_000, HandlerRan::Ran, true),
                ],
            )],
        );
        let outage = |from_ms, to_ms| [Outage { from_ms, to_ms }];
        // Placed before the outage, ended during it.
        assert_eq!(
            why(&judge(&r, "call_a", 1, &outage(20_000, 30_000), BUDGET)),
            Some(Unknowable::Outage)
        );
        // Ended within the budget after it: a request under way may still have failed.
        assert_eq!(
            why(&judge(&r, "call_a", 1, &outage(15_000, 19_000), BUDGET)),
            Some(Unknowable::Outage)
        );
        // Ended after the budget: knowable.
        assert!(!judge(&r, "call_a", 1, &outage(15_000, 18_000), BUDGET).unknowable());
        // Placed during the outage, but a later event named the call: knowable.
        assert!(!judge(&r, "call_a", 1, &outage(9_000, 10_020), BUDGET).unknowable());
        // Placed during the outage, and nothing after it reached the handler.
        let unheard = report(
            vec![create(1, 10_000, 201, Some("tx-1"))],
            vec![call(
                1,
                true,
                vec![
                    event("NEW_OUTBOUND_CALL", 1, 10_010, HandlerRan::Ran, true),
                    event("HANGUP", 2, 21_000, HandlerRan::NotRun, false),
                ],
            )],
        );
        assert_eq!(
            why(&judge(
                &unheard,
                "call_a",
                1,
                &outage(9_000, 10_020),
                BUDGET
            )),
            Some(Unknowable::Outage)
        );
        assert_eq!(
            why(&judge(&unheard, "call_a", 1, &[], BUDGET)),
            Some(Unknowable::EndUnknown)
        );
        // An outage long before or after changes nothing.
        assert!(!judge(&r, "call_a", 1, &outage(1_000, 2_000), BUDGET).unknowable());
        assert!(!judge(&r, "call_a", 1, &outage(40_000, 50_000), BUDGET).unknowable());
    }
}
