//! Runs answering-machine detection ([`outdial_core::machine`]) for a call whose script turns
//! it on: listens at the answer, judges from how long the listening ran, waits out a
//! machine's greeting and beep, leaves the message once, and hands a person to the script.
//!
//! Where the call stands travels in its `TransactionAttributes` as a [`Phase`], with the
//! instant each listening began on the handler's audio clock; the verdict and the greeting
//! length go on the record in the event's one write.

use outdial_core::contract::{Action, Event, EventType, RecordAudio, RecordingDestination};
use outdial_core::machine::{
    Machine, Phase, VOICEMAIL_CUT_OFF, VOICEMAIL_LEFT, VOICEMAIL_UNHEARD, Verdict,
};
use outdial_core::ports::Detection;
use outdial_core::script::Script;

use crate::script_run::{self, Ctx};

/// What detection needs from outside the event: where the service may put the greetings it
/// records, and the time on the clock the listening is timed with.
#[derive(Debug, Clone, Copy)]
pub struct Hearing<'a> {
    /// The bucket for greetings (`OUTDIAL_GREETINGS_BUCKET`); without one detection is off.
    pub bucket: Option<&'a str>,
    /// Now, in epoch milliseconds of the audio clock.
    pub now_ms: i64,
}

/// The prefix of every greeting's object key, below which the bucket accepts the service's
/// writes (`infra/lib/outdial-stack.ts`).
pub const GREETINGS_PREFIX: &str = "greetings/";

/// What detection makes of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// Not detection's business: the script decides, and detection is over.
    Script,
    /// The script starts now (a person, or a listening that could not run), after
    /// `detection` is recorded.
    Start { detection: Option<Detection> },
    /// Detection's own answer and where it leaves the call.
    Own {
        actions: Vec<Action>,
        phase: Option<Phase>,
        detection: Option<Detection>,
        outcome: Option<&'static str>,
    },
}

/// Detection's turn for `event`, for a call in `phase` (none before the answer or when
/// detection is not running).
#[must_use]
pub fn turn(
    script: &Script,
    phase: Option<Phase>,
    event: &Event,
    hearing: Hearing<'_>,
    ctx: &Ctx<'_>,
    campaign: &str,
) -> Turn {
    let Some(machine) = script.machine() else {
        return Turn::Script;
    };
    let action = event
        .action_data
        .as_ref()
        .map_or("", |d| d.action_type.as_str());
    // `since_ms` came back from the call's attributes: a time ahead of now (another
    // instance's clock, or a forged attribute) counts as no time at all.
    let elapsed =
        |since_ms: i64| u64::try_from(hearing.now_ms.saturating_sub(since_ms)).unwrap_or(0);
    // Machines press no keys: a recording stopped by one was stopped by a person.
    let key_pressed = event.action_data.as_ref().is_some_and(|d| {
        d.extra
            .get("RecordingTerminatorUsed")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|k| !k.is_empty())
    });
    let hang_up_with = |outcome, detection| Turn::Own {
        actions: vec![Action::hangup(ctx.leg, 0)],
        phase: None,
        detection,
        outcome: Some(outcome),
    };
    let hang_up = |outcome| hang_up_with(outcome, None);
    match (phase, &event.event_type) {
        (None, EventType::CallAnswered) => {
            let Some(bucket) = hearing.bucket else {
                // Recording is turned off for the deployment: nothing to listen with.
                tracing::warn!("machine detection asked for but no greetings bucket is set");
                return Turn::Script;
            };
            let mut actions: Vec<Action> = script
                .opt_out()
                .map(|o| script_run::opt_out_listener(o, ctx.leg))
                .into_iter()
                .collect();
            actions.push(record(
                machine,
                ctx.leg,
                bucket,
                campaign,
                machine.listen_s,
                machine.silence_s,
            ));
            Turn::Own {
                actions,
                phase: Some(Phase::Listening {
                    since_ms: hearing.now_ms,
                }),
                detection: Some(Detection {
                    verdict: Verdict::Undecided,
                    greeting_ms: None,
                }),
                outcome: None,
            }
        }
        (Some(Phase::Listening { since_ms }), EventType::ActionSuccessful)
            if action == "RecordAudio" =>
        {
            let judged = machine.judge(elapsed(since_ms), key_pressed);
            let detection = Some(Detection {
                verdict: judged.verdict,
                greeting_ms: Some(judged.greeting_ms),
            });
            match (judged.verdict, hearing.bucket) {
                (Verdict::Machine, Some(bucket)) => Turn::Own {
                    actions: vec![record(
                        machine,
                        ctx.leg,
                        bucket,
                        campaign,
                        machine.greeting_max_s,
                        machine.beep_silence_s,
                    )],
                    phase: Some(Phase::AwaitingBeep {
                        since_ms: hearing.now_ms,
                    }),
                    detection,
                    outcome: None,
                },
                // The deployment stopped recording between this call's answer and now: the
                // beep cannot be waited for, and a mailbox must not get the script.
                (Verdict::Machine, None) => hang_up_with(VOICEMAIL_UNHEARD, detection),
                _ => Turn::Start { detection },
            }
        }
        // The listening could not run (the bucket refused it, say, or the opt-out listener
        // before it failed and the service dropped the rest of the list): better the script
        // than silence. The verdict stays `undecided`; the event's error is on the call.
        (Some(Phase::Listening { .. }), EventType::ActionFailed) => Turn::Start { detection: None },
        // A key while waiting for the beep: someone with a long hello, judged a machine, is
        // there after all.
        (Some(Phase::AwaitingBeep { .. }), EventType::ActionSuccessful)
            if action == "RecordAudio" && key_pressed =>
        {
            Turn::Start {
                detection: Some(Detection {
                    verdict: Verdict::Person,
                    greeting_ms: None,
                }),
            }
        }
        (Some(Phase::AwaitingBeep { since_ms }), EventType::ActionSuccessful)
            if action == "RecordAudio" =>
        {
            if machine.greeting_over(elapsed(since_ms)) {
                Turn::Own {
                    actions: vec![script_run::prompt(&machine.message, script, ctx)],
                    phase: Some(Phase::Message),
                    detection: None,
                    outcome: Some(VOICEMAIL_CUT_OFF),
                }
            } else {
                hang_up(VOICEMAIL_UNHEARD)
            }
        }
        (Some(Phase::AwaitingBeep { .. } | Phase::Message), EventType::ActionFailed) => {
            hang_up(VOICEMAIL_UNHEARD)
        }
        (Some(Phase::Message), EventType::ActionSuccessful) => hang_up(VOICEMAIL_LEFT),
        // Another action's report while detection runs (a listener's, say): keep waiting.
        (Some(phase), EventType::ActionSuccessful) => Turn::Own {
            actions: Vec::new(),
            phase: Some(phase),
            detection: None,
            outcome: None,
        },
        // Digits (the opt-out key), or an event detection has no part in.
        _ => Turn::Script,
    }
}

fn record(
    machine: &Machine,
    leg: &str,
    bucket: &str,
    campaign: &str,
    duration_s: u32,
    silence_s: u32,
) -> Action {
    Action::RecordAudio(RecordAudio {
        call_id: Some(leg.to_owned()),
        participant_tag: None,
        duration_in_seconds: Some(duration_s),
        silence_duration_in_seconds: Some(silence_s),
        silence_threshold: machine.silence_threshold,
        // A person may press a key to speak to us at once; a machine never does.
        recording_terminators: vec!["#".to_owned()],
        recording_destination: RecordingDestination {
            destination_type: "S3".to_owned(),
            bucket_name: bucket.to_owned(),
            prefix: Some(format!("{GREETINGS_PREFIX}{campaign}/")),
        },
    })
}
