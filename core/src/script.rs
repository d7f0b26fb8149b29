//! The call script: a small declarative flow per campaign, run by the SMA handler once the
//! callee answers.
//!
//! A script is a set of named steps and a start. Each step does one thing (say, play,
//! gather digits, record, transfer, pause, hang up), may mark the call's outcome
//! (`confirmed`, `declined`, ...), and names what comes next. Text is a template filled from
//! the contact's variables (`{{name}}`), escaped when it is SSML.
//!
//! ```json
//! { "voice": { "voice_id": "Joanna", "engine": "neural" },
//!   "start": "greet",
//!   "steps": {
//!     "greet":   { "say": "Hello {{name}}, your appointment is on {{date}}.", "next": "menu" },
//!     "menu":    { "gather": { "say": "Press 1 to confirm, 2 to cancel.", "max_digits": 1 },
//!                  "branches": { "1": "confirm", "2": "decline" }, "no_input": "goodbye" },
//!     "confirm": { "say": "Thank you, see you then.", "outcome": "confirmed" },
//!     "decline": { "say": "We have cancelled it.", "outcome": "declined" },
//!     "goodbye": { "say": "We will try again later.", "outcome": "no_input" } } }
//! ```
//!
//! A step without `next` ends the call with a hang-up after it. Validation happens once, when
//! the campaign is created; past that a [`Script`] is runnable.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::E164;
use crate::machine::{Machine, MachineError};

/// Polly's limit on one `Speak` text.
pub const MAX_TEXT: usize = 1000;
/// Steps a script may have.
pub const MAX_STEPS: usize = 64;

/// A validated script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScriptSpec", into = "ScriptSpec")]
pub struct Script {
    voice: Voice,
    start: String,
    steps: BTreeMap<String, Step>,
    opt_out: Option<OptOut>,
    caller_name: Option<String>,
    machine: Option<Machine>,
}

/// The key that puts the callee on the do-not-call list, listened for during the whole
/// call (prompts and menus included), and what the callee hears when they press it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOut {
    /// One of `0`-`9`, `*`, `#`.
    pub digit: String,
    /// The confirmation, spoken before the call hangs up.
    pub say: Prompt,
}

/// The longest `caller_name`.
pub const MAX_CALLER_NAME: usize = 100;

/// The Polly voice used for `say`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voice {
    #[serde(default = "default_voice")]
    pub voice_id: String,
    #[serde(default)]
    pub engine: Engine,
    /// A Polly language code, for bilingual voices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

fn default_voice() -> String {
    "Joanna".to_owned()
}

impl Default for Voice {
    fn default() -> Self {
        Self {
            voice_id: default_voice(),
            engine: Engine::default(),
            language: None,
        }
    }
}

impl Voice {
    /// Checks the voice against what the PSTN audio service speaks with
    /// ([`crate::speech::check_voice`]).
    ///
    /// # Errors
    /// [`ScriptError::Voice`], naming the field at fault.
    pub fn check(&self) -> Result<(), ScriptError> {
        use crate::speech::check_voice;
        let (id, engine) = (Some(self.voice_id.as_str()), Some(self.engine.as_str()));
        let fault = |field| move |reason| ScriptError::Voice { field, reason };
        if crate::speech::voice(&self.voice_id).is_none() {
            check_voice(id, None, None).map_err(fault("voice_id"))?;
        }
        check_voice(id, engine, None).map_err(fault("engine"))?;
        check_voice(id, engine, self.language.as_deref()).map_err(fault("language"))
    }
}

/// Polly's engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Standard,
    Neural,
}

impl Engine {
    /// The engine as the `Speak` action names it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Neural => "neural",
        }
    }
}

/// What the callee hears: speech (plain text or SSML, templated) or a WAV file in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// `"say": "text"`.
    Text(String),
    /// `"say": { "ssml": "<speak>...</speak>" }`.
    Ssml { ssml: String },
    /// `"play": { "bucket": "...", "key": "..." }`.
    Audio { bucket: String, key: String },
}

/// Digits to collect after a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gather {
    /// Spoken prompt (`say`) or audio prompt (`play`): exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<Prompt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<Prompt>,
    /// Played when the input does not match, before the prompt is repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Prompt>,
    #[serde(default = "one")]
    pub min_digits: u32,
    #[serde(default = "one")]
    pub max_digits: u32,
    /// Milliseconds to wait for input per try.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Tries in all.
    #[serde(default = "default_repeat")]
    pub repeat: u32,
    /// Regex the digits must match; by default any digits of the allowed length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Digits that end input early, e.g. `["#"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminators: Vec<String>,
}

const fn one() -> u32 {
    1
}
const fn default_timeout_ms() -> u32 {
    5000
}
const fn default_repeat() -> u32 {
    2
}

/// A recording of the callee, to S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default = "default_record_s")]
    pub max_seconds: u32,
    /// Seconds of silence that end the recording; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_seconds: Option<u32>,
    #[serde(default = "default_terminators")]
    pub terminators: Vec<String>,
}

const fn default_record_s() -> u32 {
    60
}
fn default_terminators() -> Vec<String> {
    vec!["#".to_owned()]
}

/// A transfer to an agent: `CallAndBridge` to a PSTN number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub to: E164,
    #[serde(default = "default_transfer_s")]
    pub timeout_s: u32,
}

const fn default_transfer_s() -> u32 {
    30
}

/// What one step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Say(Prompt),
    Play(Prompt),
    Gather(Gather),
    Record(Record),
    Transfer(Transfer),
    Pause { ms: u32 },
    Hangup,
}

/// One step of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    /// Marks the call's script outcome when the step runs.
    pub outcome: Option<String>,
    /// What comes after; `None` ends the call.
    pub next: Option<String>,
    /// For `gather`: the step per digit string.
    pub branches: BTreeMap<String, String>,
    /// For `gather`: when no (valid) input came; for `transfer`: when the agent did not
    /// answer. Without it the call ends.
    pub otherwise: Option<String>,
}

/// The wire form of a script in a campaign spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptSpec {
    #[serde(default)]
    pub voice: Voice,
    pub start: String,
    pub steps: BTreeMap<String, StepSpec>,
    /// `{"digit": "9", "say": "..."}`: the automated opt-out every call offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<OptOut>,
    /// Who is calling, as the first spoken prompt must say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_name: Option<String>,
    /// Answering-machine detection and the message left on one ([`crate::machine`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
}

/// The wire form of a step: exactly one of the action keys, and the flow keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<Prompt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<Prompt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gather: Option<Gather>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hangup: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub branches: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<String>,
}

/// Why a script was refused; each names the step and field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("script.start names step {0:?}, which does not exist")]
    NoStart(String),
    #[error("script has {0} steps; at most {MAX_STEPS} are allowed")]
    TooManySteps(usize),
    #[error(
        "script.steps.{0}: a step does exactly one of say, play, gather, record, transfer, pause_ms, hangup"
    )]
    OneAction(String),
    #[error("script.steps.{step}.{field}: names step {target:?}, which does not exist")]
    Dangling {
        step: String,
        field: String,
        target: String,
    },
    #[error("script.steps.{step}.{field}: {reason}")]
    Invalid {
        step: String,
        field: String,
        reason: String,
    },
    #[error(
        "script.steps.{0}: steps that only speak, play or pause loop back to themselves without waiting for the callee"
    )]
    SilentLoop(String),
    /// The script does not identify the caller as its first spoken words (a rule for every
    /// prerecorded call: 47 CFR 64.1200(b)(1)).
    #[error("script.caller_name: {0}")]
    Identification(String),
    /// The opt-out is malformed or clashes with a menu.
    #[error("script.opt_out.{field}: {reason}")]
    OptOut { field: &'static str, reason: String },
    /// The voice is one the PSTN audio service cannot speak with (`crate::speech`).
    #[error("script.voice.{field}: {reason}")]
    Voice { field: &'static str, reason: String },
    /// The `machine` block's thresholds or message are unusable.
    #[error(transparent)]
    Machine(#[from] MachineError),
}

fn invalid(step: &str, field: &str, reason: impl Into<String>) -> ScriptError {
    ScriptError::Invalid {
        step: step.to_owned(),
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn check_prompt(step: &str, field: &str, p: &Prompt, audio: bool) -> Result<(), ScriptError> {
    match (p, audio) {
        (Prompt::Text(t) | Prompt::Ssml { ssml: t }, false) => {
            if t.trim().is_empty() {
                Err(invalid(step, field, "is empty"))
            } else if t.chars().count() > MAX_TEXT {
                Err(invalid(
                    step,
                    field,
                    format!("is longer than {MAX_TEXT} characters"),
                ))
            } else {
                Ok(())
            }
        }
        (Prompt::Audio { bucket, key }, true) => {
            if bucket.is_empty() || key.is_empty() {
                Err(invalid(step, field, "needs a bucket and a key"))
            } else {
                Ok(())
            }
        }
        (_, true) => Err(invalid(
            step,
            field,
            "play takes { \"bucket\": ..., \"key\": ... }",
        )),
        (_, false) => Err(invalid(step, field, "say takes text or { \"ssml\": ... }")),
    }
}

fn digits_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '#' || c == '*')
}

impl TryFrom<ScriptSpec> for Script {
    type Error = ScriptError;

    fn try_from(spec: ScriptSpec) -> Result<Self, Self::Error> {
        if spec.steps.len() > MAX_STEPS {
            return Err(ScriptError::TooManySteps(spec.steps.len()));
        }
        if !spec.steps.contains_key(&spec.start) {
            return Err(ScriptError::NoStart(spec.start));
        }
        spec.voice.check()?;
        let mut steps = BTreeMap::new();
        for (name, s) in &spec.steps {
            let chosen = [
                s.say.is_some(),
                s.play.is_some(),
                s.gather.is_some(),
                s.record.is_some(),
                s.transfer.is_some(),
                s.pause_ms.is_some(),
                s.hangup,
            ]
            .into_iter()
            .filter(|b| *b)
            .count();
            if chosen != 1 {
                return Err(ScriptError::OneAction(name.clone()));
            }
            let action = if let Some(p) = &s.say {
                check_prompt(name, "say", p, false)?;
                Action::Say(p.clone())
            } else if let Some(p) = &s.play {
                check_prompt(name, "play", p, true)?;
                Action::Play(p.clone())
            } else if let Some(g) = &s.gather {
                gather::check(name, g, &s.branches)?;
                Action::Gather(g.clone())
            } else if let Some(r) = &s.record {
                if r.bucket.is_empty() {
                    return Err(invalid(name, "record.bucket", "is empty"));
                }
                if !(1..=3600).contains(&r.max_seconds) {
                    return Err(invalid(name, "record.max_seconds", "must be 1 to 3600"));
                }
                if r.silence_seconds.is_some_and(|s| !(1..=1000).contains(&s)) {
                    return Err(invalid(name, "record.silence_seconds", "must be 1 to 1000"));
                }
                if r.terminators.is_empty()
                    || r.terminators.iter().any(|t| t.len() != 1 || !digits_ok(t))
                {
                    return Err(invalid(
                        name,
                        "record.terminators",
                        "one or more of 0-9, # and *",
                    ));
                }
                Action::Record(r.clone())
            } else if let Some(t) = &s.transfer {
                if !(1..=120).contains(&t.timeout_s) {
                    return Err(invalid(name, "transfer.timeout_s", "must be 1 to 120"));
                }
                Action::Transfer(t.clone())
            } else if let Some(ms) = s.pause_ms {
                if !(1..=60_000).contains(&ms) {
                    return Err(invalid(name, "pause_ms", "must be 1 to 60000"));
                }
                Action::Pause { ms }
            } else {
                Action::Hangup
            };
            if !s.branches.is_empty() && !matches!(action, Action::Gather(_)) {
                return Err(invalid(
                    name,
                    "branches",
                    "only a gather step branches on digits",
                ));
            }
            if s.no_input.is_some() && !matches!(action, Action::Gather(_)) {
                return Err(invalid(name, "no_input", "only a gather step has no_input"));
            }
            if s.on_fail.is_some() && !matches!(action, Action::Transfer(_)) {
                return Err(invalid(name, "on_fail", "only a transfer step has on_fail"));
            }
            if matches!(action, Action::Hangup | Action::Transfer(_)) && s.next.is_some() {
                return Err(invalid(
                    name,
                    "next",
                    "nothing runs after a hang-up or a transfer",
                ));
            }
            if let Some(o) = &s.outcome {
                if o.is_empty()
                    || o.len() > 40
                    || !o
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(invalid(
                        name,
                        "outcome",
                        "1 to 40 characters of letters, digits, '_' and '-'",
                    ));
                }
            }
            let targets = s
                .next
                .iter()
                .map(|t| ("next".to_owned(), t))
                .chain(s.branches.iter().map(|(k, t)| (format!("branches.{k}"), t)))
                .chain(s.no_input.iter().map(|t| ("no_input".to_owned(), t)))
                .chain(s.on_fail.iter().map(|t| ("on_fail".to_owned(), t)));
            for (field, target) in targets {
                if !spec.steps.contains_key(target) {
                    return Err(ScriptError::Dangling {
                        step: name.clone(),
                        field,
                        target: target.clone(),
                    });
                }
            }
            steps.insert(
                name.clone(),
                Step {
                    action,
                    outcome: s.outcome.clone(),
                    next: s.next.clone(),
                    branches: s.branches.clone(),
                    otherwise: s.no_input.clone().or_else(|| s.on_fail.clone()),
                },
            );
        }
        if let Some(name) = &spec.caller_name {
            let len = name.trim().chars().count();
            if len == 0 || len > MAX_CALLER_NAME {
                return Err(ScriptError::Identification(format!(
                    "is 1 to {MAX_CALLER_NAME} characters"
                )));
            }
        }
        if let Some(opt_out) = &spec.opt_out {
            check_opt_out(opt_out, &steps)?;
        }
        if let Some(machine) = &spec.machine {
            machine.check()?;
            let audio = matches!(machine.message, Prompt::Audio { .. });
            if let Err(ScriptError::Invalid { reason, .. }) =
                check_prompt("", "", &machine.message, audio)
            {
                return Err(MachineError {
                    field: "message",
                    reason,
                }
                .into());
            }
        }
        let script = Self {
            voice: spec.voice,
            start: spec.start,
            steps,
            opt_out: spec.opt_out,
            caller_name: spec.caller_name.map(|n| n.trim().to_owned()),
            machine: spec.machine,
        };
        script.check_silent_loops()?;
        Ok(script)
    }
}

impl From<Script> for ScriptSpec {
    fn from(script: Script) -> Self {
        let steps = script
            .steps
            .into_iter()
            .map(|(name, step)| {
                let mut s = StepSpec {
                    outcome: step.outcome,
                    next: step.next,
                    branches: step.branches,
                    ..StepSpec::default()
                };
                match step.action {
                    Action::Say(p) => s.say = Some(p),
                    Action::Play(p) => s.play = Some(p),
                    Action::Gather(g) => {
                        s.gather = Some(g);
                        s.no_input = step.otherwise;
                    }
                    Action::Record(r) => s.record = Some(r),
                    Action::Transfer(t) => {
                        s.transfer = Some(t);
                        s.on_fail = step.otherwise;
                    }
                    Action::Pause { ms } => s.pause_ms = Some(ms),
                    Action::Hangup => s.hangup = true,
                }
                (name, s)
            })
            .collect();
        Self {
            voice: script.voice,
            start: script.start,
            steps,
            opt_out: script.opt_out,
            caller_name: script.caller_name,
            machine: script.machine,
        }
    }
}

fn check_opt_out(opt_out: &OptOut, steps: &BTreeMap<String, Step>) -> Result<(), ScriptError> {
    let fault = |field, reason: String| ScriptError::OptOut { field, reason };
    if opt_out.digit.len() != 1 || !digits_ok(&opt_out.digit) {
        return Err(fault("digit", "is one of 0-9, * and #".to_owned()));
    }
    if let Err(ScriptError::Invalid { reason, .. }) = check_prompt("", "", &opt_out.say, false) {
        return Err(fault("say", reason));
    }
    for (name, step) in steps {
        if step.branches.contains_key(&opt_out.digit) {
            return Err(fault(
                "digit",
                format!(
                    "step {name:?} branches on {:?}, which opts the callee out",
                    opt_out.digit
                ),
            ));
        }
    }
    Ok(())
}

impl Script {
    #[must_use]
    pub fn voice(&self) -> &Voice {
        &self.voice
    }

    #[must_use]
    pub fn start(&self) -> &str {
        &self.start
    }

    #[must_use]
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.get(name)
    }

    /// The opt-out the call offers, when the script has one.
    #[must_use]
    pub fn opt_out(&self) -> Option<&OptOut> {
        self.opt_out.as_ref()
    }

    #[must_use]
    pub fn caller_name(&self) -> Option<&str> {
        self.caller_name.as_deref()
    }

    /// The answering-machine detector, when the script turns it on.
    #[must_use]
    pub fn machine(&self) -> Option<&Machine> {
        self.machine.as_ref().filter(|m| m.detect)
    }

    /// Checks that the script names `caller_name` in its first spoken prompt: the first
    /// step from the start, past pauses, that speaks (a `say`, or a gather's `say`) must
    /// contain the name (letter case aside). Audio cannot be read, so a script that begins
    /// with a recording is refused too.
    ///
    /// # Errors
    /// [`ScriptError::Identification`] saying what is missing.
    pub fn check_identification(&self) -> Result<(), ScriptError> {
        let refuse = |reason: String| Err(ScriptError::Identification(reason));
        let Some(name) = self.caller_name.as_deref() else {
            return refuse(
                "is required: the first spoken prompt must say who is calling (47 CFR 64.1200(b)(1))"
                    .to_owned(),
            );
        };
        // A message left on a machine is a prerecorded call of its own: it names the caller.
        if let Some(machine) = self.machine() {
            match &machine.message {
                Prompt::Text(t) | Prompt::Ssml { ssml: t }
                    if !t.to_lowercase().contains(&name.to_lowercase()) =>
                {
                    return refuse(format!(
                        "the voicemail message (machine.message) must name the caller {name:?}"
                    ));
                }
                Prompt::Audio { .. } => {
                    return refuse(format!(
                        "the voicemail message (machine.message) is a recording; write it as text that names the caller {name:?}"
                    ));
                }
                Prompt::Text(_) | Prompt::Ssml { .. } => {}
            }
        }
        let mut at = Some(self.start.as_str());
        let mut seen = BTreeSet::new();
        while let Some(step_name) = at.filter(|n| seen.insert(*n)) {
            let Some(step) = self.steps.get(step_name) else {
                break;
            };
            let prompt = match &step.action {
                Action::Pause { .. } => {
                    at = step.next.as_deref();
                    continue;
                }
                Action::Say(p) | Action::Play(p) => Some(p),
                Action::Gather(g) => g.say.as_ref().or(g.play.as_ref()),
                _ => None,
            };
            return match prompt {
                Some(Prompt::Text(t) | Prompt::Ssml { ssml: t })
                    if t.to_lowercase().contains(&name.to_lowercase()) =>
                {
                    Ok(())
                }
                Some(Prompt::Text(_) | Prompt::Ssml { .. }) => refuse(format!(
                    "the first spoken prompt (step {step_name:?}) must name the caller {name:?}"
                )),
                Some(Prompt::Audio { .. }) => refuse(format!(
                    "the first prompt (step {step_name:?}) is a recording; begin with a say that names the caller {name:?}"
                )),
                None => refuse(format!(
                    "step {step_name:?} comes before anything is said; begin with a say that names the caller {name:?}"
                )),
            };
        }
        refuse(format!(
            "nothing is said; begin with a say that names the caller {name:?}"
        ))
    }

    /// The template variables the script's texts use.
    #[must_use]
    pub fn variables(&self) -> BTreeSet<String> {
        let mut vars = BTreeSet::new();
        let mut add = |p: &Prompt| {
            if let Prompt::Text(t) | Prompt::Ssml { ssml: t } = p {
                vars.extend(template_variables(t));
            }
        };
        if let Some(machine) = &self.machine {
            add(&machine.message);
        }
        for step in self.steps.values() {
            match &step.action {
                Action::Say(p) => add(p),
                Action::Gather(g) => {
                    g.say.iter().chain(g.failure.iter()).for_each(&mut add);
                }
                _ => {}
            }
        }
        vars
    }

    /// A step that only speaks, plays or pauses never waits for the callee; a cycle of them
    /// would run until the SMA's invocation limit, so it is refused.
    fn check_silent_loops(&self) -> Result<(), ScriptError> {
        for start in self.steps.keys() {
            let mut seen = BTreeSet::new();
            let mut at = Some(start.as_str());
            while let Some(name) = at {
                if !seen.insert(name) {
                    return Err(ScriptError::SilentLoop(start.clone()));
                }
                at = self.steps.get(name).and_then(|s| match s.action {
                    Action::Say(_) | Action::Play(_) | Action::Pause { .. } => s.next.as_deref(),
                    _ => None,
                });
            }
        }
        Ok(())
    }
}

/// The names inside `{{...}}` in a template.
#[must_use]
pub fn template_variables(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        out.push(after[..close].trim().to_owned());
        rest = &after[close + 2..];
    }
    out
}

/// Fills `{{name}}` placeholders from `vars`; a missing variable becomes empty. With `ssml`,
/// values are escaped so a contact's data can never inject markup.
#[must_use]
pub fn fill(template: &str, vars: &BTreeMap<String, String>, ssml: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        out.push_str(&rest[..open]);
        let value = vars.get(after[..close].trim()).map_or("", String::as_str);
        if ssml {
            escape_ssml(value, &mut out);
        } else {
            out.push_str(value);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

fn escape_ssml(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

mod gather;
#[cfg(test)]
mod tests;
