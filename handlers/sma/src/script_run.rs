//! Runs a campaign's call script: from where the call is waiting and what just happened (the
//! callee answered, an action finished or failed, digits arrived), the actions to send next.
//!
//! Consecutive steps that only speak, play or pause go out in one response, up to the SMA's
//! ten actions; a longer run is continued from the last step sent when its
//! `ACTION_SUCCESSFUL` arrives. A step that waits for the callee (gather, record, transfer)
//! or ends the call closes the response. A step without `next` is followed by a hang-up.

use std::collections::BTreeMap;

use outdial_core::contract::{
    Action, AudioSource, BridgeEndpoint, CallAndBridge, DigitOptions, FailureSpeechParameters,
    MAX_ACTIONS, Pause, PlayAudio, PlayAudioAndGetDigits, ReceiveDigits, RecordAudio,
    RecordingDestination, Speak, SpeakAndGetDigits, SpeechParameters,
};
use outdial_core::script::{self, Engine, Gather, OptOut, Prompt, Script, Step, Voice};

/// What just happened to the step the call was waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// `CALL_ANSWERED`: start the script.
    Start,
    /// `ACTION_SUCCESSFUL`, with the digits of a gather.
    Done { digits: Option<&'a str> },
    /// `DIGITS_RECEIVED`: a background listener matched; the opt-out key when the script
    /// has one, otherwise taken as a gather's digits.
    Heard { digits: Option<&'a str> },
    /// `ACTION_FAILED`: a gather got no valid input, a transfer was not answered, or an
    /// action could not run.
    Failed,
}

/// The call's side of one turn.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// `CallId` of the callee's leg.
    pub leg: &'a str,
    /// The campaign's number, the caller id of a transfer.
    pub from: &'a str,
    pub vars: &'a BTreeMap<String, String>,
}

/// The actions to send, the step the call will wait on, and the outcome the turn marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub actions: Vec<Action>,
    pub awaiting: Option<String>,
    pub outcome: Option<String>,
}

/// Outcome marked when a gather ends without input and the script names no branch for it.
pub const NO_INPUT: &str = "no_input";
/// Outcome marked when a transfer is not answered and the script names no branch for it.
pub const TRANSFER_FAILED: &str = "transfer_failed";

/// Outcome marked when the callee pressed the opt-out key.
pub const OPTED_OUT: &str = outdial_core::outcomes::OPTED_OUT;

/// How long the opt-out listener waits after a key before matching, and how long it keeps
/// keys: one key is all it needs.
const LISTEN_GAP_MS: u32 = 1000;
const LISTEN_FLUSH_MS: u32 = 5000;

/// The `ReceiveDigits` that listens for the opt-out key during the whole call: sent with
/// the first actions and again after each match (the service drops keys after a match until
/// a new `ReceiveDigits` arrives).
#[must_use]
pub fn opt_out_listener(opt_out: &OptOut, leg: &str) -> Action {
    Action::ReceiveDigits(ReceiveDigits {
        call_id: Some(leg.to_owned()),
        participant_tag: None,
        input_digits_regex: format!("^{}$", escape_key(&opt_out.digit)),
        in_between_digits_duration_in_milliseconds: LISTEN_GAP_MS,
        flush_digits_duration_in_milliseconds: LISTEN_FLUSH_MS,
    })
}

fn escape_key(key: &str) -> String {
    key.replace('*', "\\*").replace('#', "\\#")
}

/// Whether `digits` (a gather's input or the listener's) is the opt-out key.
fn is_opt_out(opt_out: &OptOut, digits: Option<&str>) -> bool {
    digits.is_some_and(|d| d == opt_out.digit)
}

/// The next turn of `script` for a call waiting on `awaiting`.
#[must_use]
pub fn run(script: &Script, awaiting: Option<&str>, progress: Progress<'_>, ctx: &Ctx<'_>) -> Next {
    let waiting = awaiting.and_then(|name| script.step(name).map(|s| (name, s)));
    if let Some(opt_out) = script.opt_out() {
        let pressed = match progress {
            Progress::Heard { digits } => is_opt_out(opt_out, digits),
            Progress::Done { digits } => {
                waiting.is_some_and(|(_, step)| matches!(step.action, script::Action::Gather(_)))
                    && is_opt_out(opt_out, digits)
            }
            Progress::Start | Progress::Failed => false,
        };
        if pressed {
            return Next {
                actions: vec![
                    prompt(&opt_out.say, script, ctx),
                    Action::hangup(ctx.leg, 0),
                ],
                awaiting: None,
                outcome: Some(OPTED_OUT.to_owned()),
            };
        }
    }
    let (from, outcome) = match (progress, waiting) {
        (Progress::Start, _) => {
            let listener = script.opt_out().map(|o| opt_out_listener(o, ctx.leg));
            return render_from(script, Some(script.start()), ctx, listener);
        }
        (Progress::Heard { digits }, _) if script.opt_out().is_some() => {
            // Any other match: the call goes on as with those digits, and the listener is
            // armed again (the service drops keys after a match).
            let mut next = run(script, awaiting, Progress::Done { digits }, ctx);
            if let Some(o) = script.opt_out() {
                if next.actions.len() < MAX_ACTIONS {
                    next.actions.insert(0, opt_out_listener(o, ctx.leg));
                }
            }
            return next;
        }
        (Progress::Heard { digits }, _) => {
            return run(script, awaiting, Progress::Done { digits }, ctx);
        }
        (_, None) => (None, None),
        (Progress::Done { digits }, Some((name, step))) => match &step.action {
            script::Action::Gather(_) => (branch(step, digits.unwrap_or("")), None),
            script::Action::Transfer(_) => {
                // Bridged: the call goes on until a leg hangs up.
                return Next {
                    actions: Vec::new(),
                    awaiting: Some(name.to_owned()),
                    outcome: None,
                };
            }
            script::Action::Hangup => {
                return Next {
                    actions: Vec::new(),
                    awaiting: None,
                    outcome: None,
                };
            }
            _ => (step.next.clone(), None),
        },
        (Progress::Failed, Some((_, step))) => match &step.action {
            script::Action::Gather(_) => match &step.otherwise {
                Some(target) => (Some(target.clone()), None),
                None => (None, Some(NO_INPUT.to_owned())),
            },
            script::Action::Transfer(_) => match &step.otherwise {
                Some(target) => (Some(target.clone()), Some(TRANSFER_FAILED.to_owned())),
                None => (None, Some(TRANSFER_FAILED.to_owned())),
            },
            _ => (None, None),
        },
    };
    let mut next = render_from(script, from.as_deref(), ctx, None);
    if next.outcome.is_none() {
        next.outcome = outcome;
    }
    next
}

/// Where a gather goes with `digits`: its branch, else `next` when it has no branches (it
/// only collects), else its no-input branch.
fn branch(step: &Step, digits: &str) -> Option<String> {
    if digits.is_empty() {
        return step.otherwise.clone();
    }
    if step.branches.is_empty() {
        return step.next.clone();
    }
    step.branches
        .get(digits)
        .cloned()
        .or_else(|| step.otherwise.clone())
}

/// The actions from step `from` on, after `first` when given.
fn render_from(script: &Script, from: Option<&str>, ctx: &Ctx<'_>, first: Option<Action>) -> Next {
    let mut actions: Vec<Action> = first.into_iter().collect();
    let mut outcome = None;
    let mut at = from.map(str::to_owned);
    let mut previous: Option<String> = None;
    loop {
        if actions.len() == MAX_ACTIONS {
            // Full: continue from the last step sent when its ACTION_SUCCESSFUL arrives.
            return Next {
                actions,
                awaiting: previous,
                outcome,
            };
        }
        let Some(step) = at.as_deref().and_then(|name| script.step(name)) else {
            actions.push(Action::hangup(ctx.leg, 0));
            return Next {
                actions,
                awaiting: None,
                outcome,
            };
        };
        if step.outcome.is_some() {
            outcome.clone_from(&step.outcome);
        }
        let name = at.take();
        actions.push(render(step, script, ctx));
        match &step.action {
            script::Action::Say(_) | script::Action::Play(_) | script::Action::Pause { .. } => {
                previous = name;
                at.clone_from(&step.next);
            }
            script::Action::Hangup => {
                return Next {
                    actions,
                    awaiting: None,
                    outcome,
                };
            }
            _ => {
                return Next {
                    actions,
                    awaiting: name,
                    outcome,
                };
            }
        }
    }
}

/// A prompt on its own: `Speak` in the script's voice for text, `PlayAudio` for a recording.
#[must_use]
pub fn prompt(prompt: &Prompt, script: &Script, ctx: &Ctx<'_>) -> Action {
    match prompt {
        Prompt::Audio { .. } => Action::PlayAudio(PlayAudio {
            call_id: Some(ctx.leg.to_owned()),
            participant_tag: None,
            playback_terminators: None,
            repeat: None,
            audio_source: audio(prompt),
        }),
        Prompt::Text(_) | Prompt::Ssml { .. } => {
            let (text, text_type) = speech(prompt, ctx.vars);
            let voice = script.voice();
            Action::Speak(Speak {
                call_id: ctx.leg.to_owned(),
                text,
                engine: Some(engine(voice)),
                language_code: voice.language.clone(),
                text_type: Some(text_type),
                voice_id: Some(voice.voice_id.clone()),
            })
        }
    }
}

fn engine(voice: &Voice) -> String {
    match voice.engine {
        Engine::Standard => "standard",
        Engine::Neural => "neural",
    }
    .to_owned()
}

/// Text and `TextType` for a spoken prompt, filled from the contact's variables.
fn speech(prompt: &Prompt, vars: &BTreeMap<String, String>) -> (String, String) {
    match prompt {
        Prompt::Ssml { ssml } => (script::fill(ssml, vars, true), "ssml".to_owned()),
        Prompt::Text(t) => (script::fill(t, vars, false), "text".to_owned()),
        Prompt::Audio { .. } => (String::new(), "text".to_owned()),
    }
}

fn audio(prompt: &Prompt) -> AudioSource {
    match prompt {
        Prompt::Audio { bucket, key } => AudioSource::s3(bucket, key),
        Prompt::Text(_) | Prompt::Ssml { .. } => AudioSource::s3("", ""),
    }
}

fn digit_options(
    g: &Gather,
    branches: &BTreeMap<String, String>,
    opt_out: Option<&OptOut>,
) -> DigitOptions {
    // Without an explicit regex, accept exactly the digits the script branches on (and the
    // opt-out key, so a menu hands it over too), so the SMA itself re-prompts on anything
    // else.
    let regex = g.regex.clone().or_else(|| {
        (!branches.is_empty()).then(|| {
            let keys: Vec<String> = branches
                .keys()
                .chain(opt_out.map(|o| &o.digit))
                .map(|k| escape_key(k))
                .collect();
            format!("^({})$", keys.join("|"))
        })
    });
    DigitOptions {
        input_digits_regex: regex,
        min_number_of_digits: Some(g.min_digits),
        max_number_of_digits: Some(g.max_digits),
        terminator_digits: (!g.terminators.is_empty()).then(|| g.terminators.clone()),
        in_between_digits_duration_in_milliseconds: Some(g.timeout_ms.min(5000)),
        repeat: Some(g.repeat),
        repeat_duration_in_milliseconds: g.timeout_ms,
    }
}

fn render(step: &Step, script: &Script, ctx: &Ctx<'_>) -> Action {
    let voice = script.voice();
    let leg = ctx.leg.to_owned();
    match &step.action {
        script::Action::Say(p) | script::Action::Play(p) => prompt(p, script, ctx),
        script::Action::Gather(g) => {
            let digits = digit_options(g, &step.branches, script.opt_out());
            match (&g.say, &g.play) {
                (_, Some(play)) => Action::PlayAudioAndGetDigits(PlayAudioAndGetDigits {
                    call_id: Some(leg),
                    participant_tag: None,
                    audio_source: audio(play),
                    failure_audio_source: audio(g.failure.as_ref().unwrap_or(play)),
                    digits,
                }),
                (say, None) => {
                    let prompt = say.clone().unwrap_or(Prompt::Text(String::new()));
                    let (text, text_type) = speech(&prompt, ctx.vars);
                    let failure = g.failure.as_ref().map(|f| speech(f, ctx.vars));
                    Action::SpeakAndGetDigits(SpeakAndGetDigits {
                        call_id: leg,
                        speech_parameters: SpeechParameters {
                            text,
                            engine: Some(engine(voice)),
                            language_code: voice.language.clone(),
                            text_type: Some(text_type),
                            voice_id: Some(voice.voice_id.clone()),
                        },
                        failure_speech_parameters: FailureSpeechParameters {
                            text: failure.as_ref().map(|(t, _)| t.clone()),
                            engine: None,
                            language_code: None,
                            text_type: failure.map(|(_, tt)| tt),
                            voice_id: None,
                        },
                        digits,
                    })
                }
            }
        }
        script::Action::Record(r) => Action::RecordAudio(RecordAudio {
            call_id: Some(leg),
            participant_tag: None,
            duration_in_seconds: Some(r.max_seconds),
            silence_duration_in_seconds: r.silence_seconds,
            silence_threshold: None,
            recording_terminators: r.terminators.clone(),
            recording_destination: RecordingDestination {
                destination_type: "S3".to_owned(),
                bucket_name: r.bucket.clone(),
                prefix: r.prefix.clone(),
            },
        }),
        script::Action::Transfer(t) => Action::CallAndBridge(CallAndBridge {
            call_timeout_seconds: Some(t.timeout_s),
            caller_id_number: ctx.from.to_owned(),
            endpoints: vec![BridgeEndpoint {
                bridge_endpoint_type: "PSTN".to_owned(),
                uri: Some(t.to.as_str().to_owned()),
                arn: None,
            }],
            ringback_tone: None,
            sip_headers: None,
        }),
        script::Action::Pause { ms } => Action::Pause(Pause {
            call_id: Some(leg),
            participant_tag: None,
            duration_in_milliseconds: *ms,
        }),
        script::Action::Hangup => Action::hangup(leg, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMINDER: &str = r#"{
        "start": "greet",
        "steps": {
            "greet": { "say": "Hello {{name}}.", "next": "menu" },
            "menu": { "gather": { "say": "Press 1 or 2." }, "branches": { "1": "yes", "2": "no" }, "no_input": "bye" },
            "yes": { "say": "Confirmed.", "outcome": "confirmed" },
            "no": { "say": "Declined.", "outcome": "declined" },
            "bye": { "say": "Goodbye." }
        }
    }"#;

    fn ctx(vars: &BTreeMap<String, String>) -> Ctx<'_> {
        Ctx {
            leg: "leg-a",
            from: "+15555550199",
            vars,
        }
    }

    fn types(next: &Next) -> Vec<&'static str> {
        next.actions.iter().map(Action::type_name).collect()
    }

    #[test]
    fn the_answer_speaks_the_greeting_and_asks_for_digits_in_one_response() {
        let script: Script = serde_json::from_str(REMINDER).unwrap();
        let vars = BTreeMap::from([("name".to_owned(), "Ada".to_owned())]);
        let next = run(&script, None, Progress::Start, &ctx(&vars));
        assert_eq!(types(&next), ["Speak", "SpeakAndGetDigits"]);
        assert_eq!(next.awaiting.as_deref(), Some("menu"));
        let Action::Speak(s) = &next.actions[0] else {
            panic!()
        };
        assert_eq!(s.text, "Hello Ada.");
        let Action::SpeakAndGetDigits(g) = &next.actions[1] else {
            panic!()
        };
        assert_eq!(g.digits.input_digits_regex.as_deref(), Some("^(1|2)$"));
    }

    #[test]
    fn digits_take_their_branch_and_the_call_ends_with_a_hangup() {
        let script: Script = serde_json::from_str(REMINDER).unwrap();
        let vars = BTreeMap::new();
        let next = run(
            &script,
            Some("menu"),
            Progress::Done { digits: Some("1") },
            &ctx(&vars),
        );
        assert_eq!(types(&next), ["Speak", "Hangup"]);
        assert_eq!(next.outcome.as_deref(), Some("confirmed"));
        assert_eq!(next.awaiting, None);
    }

    #[test]
    fn a_gather_without_input_takes_its_no_input_branch() {
        let script: Script = serde_json::from_str(REMINDER).unwrap();
        let vars = BTreeMap::new();
        let next = run(&script, Some("menu"), Progress::Failed, &ctx(&vars));
        assert_eq!(types(&next), ["Speak", "Hangup"]);
        let no_branch: Script = serde_json::from_str(
            r#"{"start": "m", "steps": {"m": {"gather": {"say": "press 1"}, "branches": {"1": "m"}}}}"#,
        )
        .unwrap();
        let next = run(&no_branch, Some("m"), Progress::Failed, &ctx(&vars));
        assert_eq!(types(&next), ["Hangup"]);
        assert_eq!(next.outcome.as_deref(), Some(NO_INPUT));
    }

    #[test]
    fn a_run_longer_than_ten_actions_is_split_and_continued() {
        let steps: Vec<String> = (0..13)
            .map(|i| {
                let next = if i < 12 {
                    format!(r#", "next": "s{}""#, i + 1)
                } else {
                    String::new()
                };
                format!(r#""s{i}": {{"say": "line {i}"{next}}}"#)
            })
            .collect();
        let script: Script = serde_json::from_str(&format!(
            r#"{{"start": "s0", "steps": {{{}}}}}"#,
            steps.join(",")
        ))
        .unwrap();
        let vars = BTreeMap::new();
        let first = run(&script, None, Progress::Start, &ctx(&vars));
        assert_eq!(first.actions.len(), 10);
        assert_eq!(first.awaiting.as_deref(), Some("s9"));
        let second = run(
            &script,
            first.awaiting.as_deref(),
            Progress::Done { digits: None },
            &ctx(&vars),
        );
        assert_eq!(types(&second), ["Speak", "Speak", "Speak", "Hangup"]);
    }

    #[test]
    fn a_transfer_bridges_and_then_waits() {
        let script: Script = serde_json::from_str(
            r#"{"start": "t", "steps": {"t": {"transfer": {"to": "+15555550142"}, "outcome": "transferred", "on_fail": "sorry"}, "sorry": {"say": "No one is free."}}}"#,
        )
        .unwrap();
        let vars = BTreeMap::new();
        let next = run(&script, None, Progress::Start, &ctx(&vars));
        assert_eq!(types(&next), ["CallAndBridge"]);
        assert_eq!(next.outcome.as_deref(), Some("transferred"));
        let bridged = run(
            &script,
            Some("t"),
            Progress::Done { digits: None },
            &ctx(&vars),
        );
        assert!(bridged.actions.is_empty());
        let failed = run(&script, Some("t"), Progress::Failed, &ctx(&vars));
        assert_eq!(types(&failed), ["Speak", "Hangup"]);
        assert_eq!(failed.outcome.as_deref(), Some(TRANSFER_FAILED));
    }

    #[test]
    fn every_kind_of_step_renders_to_actions_the_contract_accepts() {
        let script: Script = serde_json::from_str(
            r##"{"voice": {"voice_id": "Matthew", "engine": "neural", "language": "en-US"},
                "start": "a", "steps": {
                "a": {"play": {"bucket": "prompts", "key": "hello.wav"}, "next": "b"},
                "b": {"pause_ms": 500, "next": "c"},
                "c": {"say": {"ssml": "<speak>Hi {{name}}</speak>"}, "next": "d"},
                "d": {"gather": {"play": {"bucket": "prompts", "key": "menu.wav"}, "min_digits": 4, "max_digits": 4, "terminators": ["#"]},
                      "next": "e", "no_input": "e"},
                "e": {"record": {"bucket": "recordings", "prefix": "calls/", "max_seconds": 30, "silence_seconds": 3}, "next": "f"},
                "f": {"transfer": {"to": "+15555550142", "timeout_s": 20}}}}"##,
        )
        .unwrap();
        let vars = BTreeMap::from([("name".to_owned(), "<Ada>".to_owned())]);
        let mut turns = vec![run(&script, None, Progress::Start, &ctx(&vars))];
        for _ in 0..2 {
            let last = turns.last().unwrap();
            let next = run(
                &script,
                last.awaiting.as_deref(),
                Progress::Done {
                    digits: Some("1234"),
                },
                &ctx(&vars),
            );
            turns.push(next);
        }
        let kinds: Vec<Vec<&str>> = turns.iter().map(types).collect();
        assert_eq!(
            kinds,
            [
                vec!["PlayAudio", "Pause", "Speak", "PlayAudioAndGetDigits"],
                vec!["RecordAudio"],
                vec!["CallAndBridge"]
            ]
        );
        for turn in &turns {
            let mut builder = outdial_core::contract::Response::builder("1.0");
            for a in &turn.actions {
                builder.push(a.clone()).unwrap();
            }
            let json = serde_json::to_value(builder.build()).unwrap();
            outdial_core::contract::validate_response(&json)
                .unwrap_or_else(|e| panic!("{e}: {json}"));
        }
        let Action::Speak(s) = &turns[0].actions[2] else {
            panic!()
        };
        assert_eq!(s.text, "<speak>Hi &lt;Ada&gt;</speak>");
        assert_eq!(s.text_type.as_deref(), Some("ssml"));
    }

    fn with_opt_out() -> Script {
        let json = REMINDER.replacen(
            r#""steps""#,
            r#""opt_out": {"digit": "9", "say": "You will not be called again."}, "steps""#,
            1,
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn the_opt_out_key_is_listened_for_from_the_answer_and_accepted_by_menus() {
        let script = with_opt_out();
        let vars = BTreeMap::new();
        let next = run(&script, None, Progress::Start, &ctx(&vars));
        assert_eq!(types(&next)[0], "ReceiveDigits");
        let Action::ReceiveDigits(listener) = &next.actions[0] else {
            panic!("a listener first");
        };
        assert_eq!(listener.input_digits_regex, "^9$");
        let Some(Action::SpeakAndGetDigits(menu)) = next.actions.last() else {
            panic!("the menu last");
        };
        assert_eq!(menu.digits.input_digits_regex.as_deref(), Some("^(1|2|9)$"));
        for action in &next.actions {
            let json = serde_json::to_value(action).unwrap();
            assert!(
                outdial_core::contract::validate_action(&json).is_ok(),
                "{json}"
            );
        }
    }

    #[test]
    fn pressing_the_opt_out_key_confirms_hangs_up_and_marks_the_call() {
        let script = with_opt_out();
        let vars = BTreeMap::new();
        let heard = run(
            &script,
            Some("menu"),
            Progress::Heard { digits: Some("9") },
            &ctx(&vars),
        );
        let in_menu = run(
            &script,
            Some("menu"),
            Progress::Done { digits: Some("9") },
            &ctx(&vars),
        );
        for next in [heard, in_menu] {
            assert_eq!(types(&next), ["Speak", "Hangup"]);
            assert_eq!(next.outcome.as_deref(), Some(OPTED_OUT));
            assert_eq!(next.awaiting, None);
        }
        // Any other match goes on as those digits, and re-arms the listener.
        let other = run(
            &script,
            Some("menu"),
            Progress::Heard { digits: Some("1") },
            &ctx(&vars),
        );
        assert_eq!(types(&other), ["ReceiveDigits", "Speak", "Hangup"]);
        assert_eq!(other.outcome.as_deref(), Some("confirmed"));
        // Without an opt-out, a key is a menu choice as before.
        let plain: Script = serde_json::from_str(REMINDER).unwrap();
        let chosen = run(
            &plain,
            Some("menu"),
            Progress::Done { digits: Some("1") },
            &ctx(&vars),
        );
        assert_eq!(chosen.outcome.as_deref(), Some("confirmed"));
    }
}
