//! What to answer each event with, decided before the write so that the answer is stored with
//! the event and a duplicate gets it byte for byte.

use std::sync::LazyLock;

use outdial_core::contract::{Action, Event, EventType, ParticipantTag, Response};
use outdial_core::lifecycle::{CallStatus, Change};
use outdial_core::messages::CallAttributes;
use outdial_core::ports::{Detection, DueChange};
use outdial_core::record::Campaign;
use outdial_core::retry::RetryPolicy;
use outdial_core::script::Script;
use outdial_core::time::Timestamp;

use crate::machine_run::{self, Hearing};
use crate::script_run::{self, Ctx, Progress};

/// From this `Sequence` on, an event whose actions run is answered with a hang-up: the SMA
/// stops invoking the handler at 1,000 invocations per call, and a call that long is a loop.
pub const INVOCATION_LIMIT: u64 = 990;

/// The most characters of an event's reported error kept on the call's record.
pub const MAX_ERROR_TEXT: usize = 1_000;

/// The script outcome of a call hung up at the invocation limit.
pub const INVOCATION_LIMIT_OUTCOME: &str = "invocation_limit";

/// What the handler decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub response: Response,
    pub sip_code: Option<String>,
    pub script_outcome: Option<String>,
    /// Keys the callee entered at a question of the script in this turn.
    pub digits: Option<String>,
    pub error: Option<String>,
    pub due: DueChange,
    /// The callee pressed the opt-out key in this turn.
    pub opted_out: bool,
    /// What this turn sets of answering-machine detection.
    pub detection: Option<Detection>,
}

/// Whether deciding this event needs the campaign (its script, or its retry policy).
#[must_use]
pub fn needs_campaign(event: &Event) -> bool {
    // The first events set the ring watchdog from the campaign's `limits`; the others run
    // its script or consult its retry policy.
    matches!(
        event.event_type,
        EventType::NewOutboundCall
            | EventType::Ringing
            | EventType::CallAnswered
            | EventType::ActionSuccessful
            | EventType::ActionFailed
            | EventType::DigitsReceived
            | EventType::Hangup
    )
}

static DEFAULT_POLICY: LazyLock<RetryPolicy> = LazyLock::new(RetryPolicy::default);

/// The campaign's retry policy (only a `HANGUP` consults it, and it always has the campaign).
#[must_use]
pub fn policy(campaign: Option<&Campaign>) -> &RetryPolicy {
    campaign.map_or(&DEFAULT_POLICY, |c| &c.retry)
}

/// The callee's leg id: `LEG-A`'s `CallId`.
fn leg_a(event: &Event) -> Option<&str> {
    event.leg(&ParticipantTag::LegA).map(|p| p.call_id.as_str())
}

fn hangup_leg(event: &Event, tag: &ParticipantTag) -> Action {
    match event.leg(tag) {
        Some(p) => Action::hangup(p.call_id.clone(), 0),
        None => Action::Hangup(outdial_core::contract::Hangup {
            call_id: None,
            participant_tag: Some(tag.clone()),
            sip_response_code: Some("0".to_owned()),
        }),
    }
}

fn respond(event: &Event, actions: Vec<Action>, facts: Option<&CallAttributes>) -> Response {
    let mut builder = Response::to(event);
    for action in actions {
        // Every list built here is short; a failure would mean a bug, and the answer would
        // still be well-formed without the extra action.
        if builder.push(action).is_err() {
            tracing::error!("response would exceed 10 actions; extra actions dropped");
            break;
        }
    }
    if let Some(facts) = facts {
        if builder.attributes(facts.encode()).is_err() {
            tracing::error!("TransactionAttributes would exceed 10 keys; not sent");
        }
    }
    builder.build()
}

/// Whether the SMA runs the actions we return for this event.
fn runs_actions(event: &Event) -> bool {
    match event.event_type {
        EventType::Hangup => {
            let tag = event.action_leg().unwrap_or(ParticipantTag::LegA);
            event.other_leg_connected(&tag)
        }
        ref other => other.runs_actions(),
    }
}

/// Decides the response and the record's side facts for an event the transition accepted.
#[must_use]
pub fn decide(
    event: &Event,
    facts: &CallAttributes,
    change: &Change,
    campaign: Option<&Campaign>,
    now: Timestamp,
    hearing: Hearing<'_>,
) -> Turn {
    let mut after = facts.clone();
    after.status = change.next.status;
    after.answered = change.next.answered;
    after.end_request = change.next.end_request;
    // The error is kept on the record: bounded, so that an event with a huge message is
    // still recorded (an item holds at most 400 KB).
    let error = event.error().map(|(t, m)| {
        let text = match m {
            Some(m) => format!("{t}: {m}"),
            None => t,
        };
        text.chars().take(MAX_ERROR_TEXT).collect::<String>()
    });
    let sip_code = (event.event_type == EventType::Hangup)
        .then(|| event.sip_response_code())
        .and_then(|c| c.stored());
    let limits = campaign.map(|c| c.limits).unwrap_or_default();
    let due = if let Some(after_retry) = change.retry_after {
        DueChange::At(now.plus(after_retry))
    } else if change.next.status.is_terminal() {
        DueChange::Clear
    } else {
        match event.event_type {
            EventType::NewOutboundCall | EventType::Ringing
                if change.next.status.phase() < CallStatus::Answered.phase() =>
            {
                DueChange::At(now.plus(limits.ring_timeout()))
            }
            EventType::CallAnswered => DueChange::At(now.plus(limits.max_call())),
            _ => DueChange::Keep,
        }
    };
    let mut script_outcome = None;
    let mut digits = None;
    let mut detection = None;
    let leg = leg_a(event).unwrap_or_default().to_owned();

    let actions = match &event.event_type {
        _ if runs_actions(event) && event.sequence >= INVOCATION_LIMIT => {
            script_outcome = Some(INVOCATION_LIMIT_OUTCOME.to_owned());
            after.step = None;
            vec![Action::hangup(leg.clone(), 0)]
        }
        EventType::CallUpdateRequested if after.end_request.is_some() => {
            vec![Action::hangup(leg.clone(), 0)]
        }
        EventType::InvalidLambdaResponse => vec![Action::hangup(leg.clone(), 0)],
        EventType::Hangup => {
            let tag = event.action_leg().unwrap_or(ParticipantTag::LegA);
            if event.other_leg_connected(&tag) {
                let other = if tag == ParticipantTag::LegB {
                    ParticipantTag::LegA
                } else {
                    ParticipantTag::LegB
                };
                vec![hangup_leg(event, &other)]
            } else {
                Vec::new()
            }
        }
        EventType::CallAnswered
        | EventType::ActionSuccessful
        | EventType::ActionFailed
        | EventType::DigitsReceived => {
            match (campaign, after.end_request) {
                (_, Some(_)) | (None, None) => vec![Action::hangup(leg.clone(), 0)],
                (Some(campaign), None) => {
                    let progress = match event.event_type {
                        EventType::CallAnswered => Progress::Start,
                        EventType::ActionFailed => Progress::Failed,
                        EventType::DigitsReceived => Progress::Heard {
                            digits: event.received_digits(),
                        },
                        _ => Progress::Done {
                            digits: event.received_digits(),
                        },
                    };
                    // ReceiveDigits answers at once with empty digits; the digits come later.
                    let listening = event.event_type == EventType::ActionSuccessful
                        && event
                            .action_data
                            .as_ref()
                            .is_some_and(|d| d.action_type == "ReceiveDigits");
                    if listening {
                        Vec::new()
                    } else {
                        // The caller ID this call was dialed from (a pool's number, chosen
                        // per dial), which a transfer presents too.
                        let from = event
                            .leg(&ParticipantTag::LegA)
                            .and_then(|p| p.from.as_deref())
                            .unwrap_or(campaign.from.as_str());
                        let ctx = Ctx {
                            leg: &leg,
                            from,
                            vars: &facts.vars,
                        };
                        let heard = machine_run::turn(
                            &campaign.script,
                            facts.machine,
                            event,
                            hearing,
                            &ctx,
                            campaign.id.as_str(),
                        );
                        let (progress, awaiting) = match heard {
                            machine_run::Turn::Own {
                                actions,
                                phase,
                                detection: judged,
                                outcome,
                            } => {
                                after.machine = phase;
                                after.step = None;
                                detection = judged;
                                if let Some(outcome) = outcome {
                                    after.outcome = Some(outcome.to_owned());
                                    script_outcome = Some(outcome.to_owned());
                                }
                                return Turn {
                                    response: respond(event, actions, Some(&after)),
                                    sip_code,
                                    script_outcome,
                                    digits: None,
                                    error,
                                    due,
                                    opted_out: false,
                                    detection,
                                };
                            }
                            machine_run::Turn::Start { detection: judged } => {
                                detection = judged;
                                (Progress::Start, None)
                            }
                            machine_run::Turn::Script => (progress, facts.step.as_deref()),
                        };
                        after.machine = None;
                        let keys = gathered(&campaign.script, awaiting, &progress);
                        let next = script_run::run(&campaign.script, awaiting, progress, &ctx);
                        if next.outcome.as_deref() != Some(script_run::OPTED_OUT) {
                            digits = keys;
                        }
                        after.step = next.awaiting;
                        if let Some(outcome) = next.outcome {
                            after.outcome = Some(outcome.clone());
                            script_outcome = Some(outcome);
                        }
                        next.actions
                    }
                }
            }
        }
        _ => Vec::new(),
    };
    let opted_out = script_outcome.as_deref() == Some(script_run::OPTED_OUT);
    Turn {
        response: respond(event, actions, Some(&after)),
        sip_code,
        script_outcome,
        digits,
        error,
        due,
        opted_out,
        detection,
    }
}

/// The keys a callee entered at the gather the call was waiting on (`awaiting`): what the
/// call's `digits` keep. Nothing for an empty entry or a step that asks no question.
fn gathered(script: &Script, awaiting: Option<&str>, progress: &Progress<'_>) -> Option<String> {
    let keys = match progress {
        Progress::Done { digits } | Progress::Heard { digits } => *digits,
        Progress::Start | Progress::Failed => None,
    }?;
    let asked = awaiting
        .and_then(|name| script.step(name))
        .is_some_and(|step| matches!(step.action, outdial_core::script::Action::Gather(_)));
    (asked && !keys.is_empty()).then(|| keys.to_owned())
}

/// A call-back to a campaign number: the message, then a hang-up (never an empty list, which
/// fails an inbound call).
#[must_use]
pub fn inbound(event: &Event, message: &str) -> Response {
    let leg = leg_a(event).unwrap_or_default().to_owned();
    let speak = Action::Speak(outdial_core::contract::Speak {
        call_id: leg.clone(),
        text: message.to_owned(),
        engine: None,
        language_code: None,
        text_type: Some("text".to_owned()),
        voice_id: None,
    });
    respond(event, vec![speak, Action::hangup(leg, 0)], None)
}

/// Hangs up the callee where the event's actions run, else answers nothing: for an event of a
/// call that has ended or an attempt that is over, and when the campaign cannot be read.
#[must_use]
pub fn hang_up(event: &Event, facts: &CallAttributes) -> Response {
    let actions = if runs_actions(event) {
        vec![Action::hangup(leg_a(event).unwrap_or_default(), 0)]
    } else {
        Vec::new()
    };
    respond(event, actions, Some(facts))
}

/// An event that names no call we know: hang up where actions run, else nothing.
#[must_use]
pub fn safe(event: &Event) -> Response {
    let actions = if runs_actions(event) {
        vec![hangup_leg(event, &ParticipantTag::LegA)]
    } else {
        Vec::new()
    };
    respond(event, actions, None)
}
