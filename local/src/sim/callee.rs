//! Who answers the phone: the behaviours the simulator plays per dialed number, and the
//! persona words that name them in a callees file (`outdial dev --callees FILE`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use outdial_core::ids::E164;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audio::{self, Greeting, Voice};
use super::rng::{self, Rng};

/// One callee's behaviour. A callee that answers has a voice from its answer on (see
/// [`Callee::voice`]): a person says hello, a mailbox plays its greeting; a timing left `None`
/// is drawn per number from the simulator's seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Callee {
    /// A person: answers after `after_ms` of ringing, says a drawn hello, listens, and presses
    /// `digits` when asked (or nothing: a gather then times out). [`Callee::Person`] with
    /// `hello_ms` `None`.
    Answer {
        after_ms: u64,
        digits: Option<String>,
    },
    /// A person: answers after `after_ms`, says hello for `hello_ms` (drawn when `None`),
    /// then listens and presses `digits` when asked.
    Person {
        after_ms: u64,
        #[serde(default)]
        hello_ms: Option<u64>,
        #[serde(default)]
        digits: Option<String>,
    },
    /// A person who answers after `after_ms` and says nothing at all, and presses nothing.
    Silent { after_ms: u64 },
    /// A person who answers with a long sentence ("Hello, this is Dana speaking, who is
    /// this?", `hello_ms`, 4 s when `None`), then listens and presses 1 at a gather.
    LongHello {
        after_ms: u64,
        #[serde(default)]
        hello_ms: Option<u64>,
    },
    /// Busy at once (SIP 486).
    Busy,
    /// Rings for `ring_ms`, then the network gives up (SIP 480).
    NoAnswer { ring_ms: u64 },
    /// The call fails with this SIP code (e.g. 404 for a number that does not exist, 503).
    Fail { code: u16 },
    /// A person who answers, says a drawn hello, then hangs up halfway through the first
    /// prompt.
    HangUpMidPrompt { after_ms: u64 },
    /// A person who answers, says hello (`hello_ms`, drawn when `None`), and wants off the
    /// list: once a `ReceiveDigits` listener is armed, it presses the one key that matches the
    /// listener's `InputDigitsRegex`, in the first action that runs (and again in each later
    /// action list, as someone who wants off would). With nothing ever armed it presses
    /// nothing, at a gather too: it is then a silent callee.
    OptsOut {
        after_ms: u64,
        #[serde(default)]
        hello_ms: Option<u64>,
    },
    /// A voicemail box: answers after `after_ms`, plays its owner's greeting (`greeting_ms`,
    /// drawn when `None`) and then, if `beep`, a beep; records what is played after it for at
    /// most `record_ms`, then hangs up (sooner if nothing is played at all). Presses nothing.
    Voicemail {
        after_ms: u64,
        record_ms: u64,
        #[serde(default)]
        greeting_ms: Option<u64>,
        #[serde(default = "beeps")]
        beep: bool,
    },
    /// A carrier's voicemail: as [`Callee::Voicemail`] with a beep, but the greeting is the
    /// carrier's own, shorter and more regular (`greeting_ms`, drawn when `None`).
    CarrierVoicemail {
        after_ms: u64,
        record_ms: u64,
        #[serde(default)]
        greeting_ms: Option<u64>,
    },
}

fn beeps() -> bool {
    true
}

impl Default for Callee {
    fn default() -> Self {
        Self::Answer {
            after_ms: 2_000,
            digits: Some("1".to_owned()),
        }
    }
}

impl Callee {
    /// The `kind` tag it is written with (`answer`, `voicemail`, ...).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Answer { .. } => "answer",
            Self::Person { .. } => "person",
            Self::Silent { .. } => "silent",
            Self::LongHello { .. } => "long_hello",
            Self::Busy => "busy",
            Self::NoAnswer { .. } => "no_answer",
            Self::Fail { .. } => "fail",
            Self::HangUpMidPrompt { .. } => "hang_up_mid_prompt",
            Self::OptsOut { .. } => "opts_out",
            Self::Voicemail { .. } => "voicemail",
            Self::CarrierVoicemail { .. } => "carrier_voicemail",
        }
    }

    /// The persona word that names this behaviour, whatever its timings; `None` for one no
    /// word names (a person who presses 0, a failure with 503).
    #[must_use]
    pub fn persona(&self) -> Option<Persona> {
        match self {
            Self::Answer { digits, .. } | Self::Person { digits, .. } => match digits.as_deref() {
                Some("1") => Some(Persona::Confirms),
                Some("2") => Some(Persona::Declines),
                _ => None,
            },
            Self::Silent { .. } => Some(Persona::Silent),
            Self::LongHello { .. } => Some(Persona::LongHello),
            Self::Busy => Some(Persona::Busy),
            Self::NoAnswer { .. } => Some(Persona::NoAnswer),
            Self::Fail { code: 404 } => Some(Persona::Fails),
            Self::Fail { .. } => None,
            Self::HangUpMidPrompt { .. } => Some(Persona::HangsUp),
            Self::OptsOut { .. } => Some(Persona::OptsOut),
            Self::Voicemail { beep: true, .. } => Some(Persona::Voicemail),
            Self::Voicemail { beep: false, .. } => Some(Persona::VoicemailNoBeep),
            Self::CarrierVoicemail { .. } => Some(Persona::CarrierVoicemail),
        }
    }

    /// How long it rings before it answers; `None` for a callee that never answers.
    #[must_use]
    pub const fn answers_after(&self) -> Option<u64> {
        match self {
            Self::Answer { after_ms, .. }
            | Self::Person { after_ms, .. }
            | Self::Silent { after_ms }
            | Self::LongHello { after_ms, .. }
            | Self::HangUpMidPrompt { after_ms }
            | Self::OptsOut { after_ms, .. }
            | Self::Voicemail { after_ms, .. }
            | Self::CarrierVoicemail { after_ms, .. } => Some(*after_ms),
            Self::Busy | Self::NoAnswer { .. } | Self::Fail { .. } => None,
        }
    }

    /// Whether it is a machine that records (it never presses a key).
    #[must_use]
    pub const fn is_mailbox(&self) -> bool {
        matches!(self, Self::Voicemail { .. } | Self::CarrierVoicemail { .. })
    }

    /// The digits it presses when a gather asks; `None`: it lets the gather time out.
    #[must_use]
    pub fn gather_digits(&self) -> Option<&str> {
        match self {
            Self::Answer { digits, .. } | Self::Person { digits, .. } => digits.as_deref(),
            Self::LongHello { .. } => Some("1"),
            _ => None,
        }
    }

    /// What it sounds like from its answer, with every timing left `None` drawn from `seed`
    /// and the dialed `number` (so a number sounds the same in every run with that seed);
    /// `None` for a callee that never answers. The ranges are in [`audio::ranges`].
    #[must_use]
    pub fn voice(&self, seed: u64, number: &str) -> Option<Voice> {
        let mut draws = Rng::new(rng::mix(
            seed ^ rng::hash(format!("voice#{number}").as_bytes()),
        ));
        let voice = match self {
            Self::Answer { .. } | Self::HangUpMidPrompt { .. } => {
                audio::person(audio::draw_hello(&mut draws))
            }
            Self::Person { hello_ms, .. } | Self::OptsOut { hello_ms, .. } => {
                audio::person(hello_ms.unwrap_or_else(|| audio::draw_hello(&mut draws)))
            }
            Self::Silent { .. } => audio::person(0),
            Self::LongHello { hello_ms, .. } => {
                audio::person(hello_ms.unwrap_or(audio::ranges::LONG_HELLO_MS))
            }
            Self::Voicemail {
                record_ms,
                greeting_ms,
                beep,
                ..
            } => audio::mailbox(&mut draws, Greeting::Own, *greeting_ms, *beep, *record_ms),
            Self::CarrierVoicemail {
                record_ms,
                greeting_ms,
                ..
            } => audio::mailbox(
                &mut draws,
                Greeting::Carrier,
                *greeting_ms,
                true,
                *record_ms,
            ),
            Self::Busy | Self::NoAnswer { .. } | Self::Fail { .. } => return None,
        };
        Some(voice)
    }
}

/// Which callee answers which number: an explicit map, then a seeded mix by number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callees {
    pub by_number: BTreeMap<String, Callee>,
    /// Weighted behaviours for numbers not in the map; empty means [`Callee::default`].
    pub mix: Vec<(u32, Callee)>,
}

impl Callees {
    /// The behaviour for `number`: the map's, else one drawn from the mix by a stable hash of
    /// the number and `seed`, so a run repeats exactly.
    #[must_use]
    pub fn for_number(&self, number: &str, seed: u64) -> Callee {
        if let Some(c) = self.by_number.get(number) {
            return c.clone();
        }
        let total: u64 = self.mix.iter().map(|(w, _)| u64::from(*w)).sum();
        if total == 0 {
            return Callee::default();
        }
        let mut pick = super::rng::mix(seed ^ super::rng::hash(number.as_bytes())) % total;
        for (w, c) in &self.mix {
            let w = u64::from(*w);
            if pick < w {
                return c.clone();
            }
            pick -= w;
        }
        Callee::default()
    }

    /// The mix the demo uses: mostly people who answer and confirm, some who decline or do
    /// not press anything, and busy, unanswered, failing and voicemail lines.
    #[must_use]
    pub fn demo_mix() -> Self {
        Self {
            by_number: BTreeMap::new(),
            mix: vec![
                (50, Persona::Confirms.callee()),
                (12, Persona::Declines.callee()),
                (6, Persona::Silent.callee()),
                (8, Persona::Busy.callee()),
                (8, Persona::NoAnswer.callee()),
                (4, Persona::Fails.callee()),
                (3, Callee::Fail { code: 503 }),
                (4, Persona::HangsUp.callee()),
                (5, Persona::Voicemail.callee()),
            ],
        }
    }

    /// The population an answering-machine detector is measured on: only callees that
    /// answer, about two thirds people and one third machines, as a reminder campaign's
    /// answered calls are. Each number draws its own timings ([`Callee::voice`]).
    ///
    /// | share | persona |
    /// |---|---|
    /// | 42 % | `confirms` |
    /// | 12 % | `declines` |
    /// | 3 % | `opts-out` |
    /// | 3 % | `hangs-up` |
    /// | 3 % | `silent` |
    /// | 3 % | `long-hello` |
    /// | 22 % | `voicemail` |
    /// | 4 % | `voicemail-no-beep` |
    /// | 8 % | `carrier-voicemail` |
    #[must_use]
    pub fn amd_mix() -> Self {
        Self {
            by_number: BTreeMap::new(),
            mix: vec![
                (44, Persona::Confirms.callee()),
                (12, Persona::Declines.callee()),
                (3, Persona::OptsOut.callee()),
                (3, Persona::HangsUp.callee()),
                (3, Persona::Silent.callee()),
                (1, Persona::LongHello.callee()),
                (22, Persona::Voicemail.callee()),
                (4, Persona::VoicemailNoBeep.callee()),
                (8, Persona::CarrierVoicemail.callee()),
            ],
        }
    }
}

/// A callee named by a word: the vocabulary of a callees file. Each word stands for one
/// [`Callee`] with the demo's timings (see [`Persona::callee`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    /// Answers and presses 1 at the menu.
    Confirms,
    /// Answers and presses 2 at the menu.
    Declines,
    /// Answers and presses the opt-out key at its first chance ([`Callee::OptsOut`]).
    OptsOut,
    /// Answers, says nothing at all, and presses nothing.
    Silent,
    /// Answers with a 4 s sentence, then presses 1 at the menu.
    LongHello,
    /// Busy (SIP 486).
    Busy,
    /// Rings until the network gives up (SIP 480).
    NoAnswer,
    /// The number does not exist (SIP 404).
    Fails,
    /// Answers and hangs up halfway through the first prompt.
    HangsUp,
    /// A voicemail box: its owner's greeting, then a beep.
    Voicemail,
    /// A voicemail box whose greeting ends without a beep.
    VoicemailNoBeep,
    /// The carrier's voicemail: its own short greeting, then a beep.
    CarrierVoicemail,
}

impl Persona {
    /// Every persona, in the order the documentation lists them (the words added for the
    /// answering-machine bench last, so that the older vocabulary reads as it did).
    pub const ALL: [Self; 12] = [
        Self::Confirms,
        Self::Declines,
        Self::OptsOut,
        Self::Silent,
        Self::Busy,
        Self::NoAnswer,
        Self::Fails,
        Self::HangsUp,
        Self::Voicemail,
        Self::VoicemailNoBeep,
        Self::CarrierVoicemail,
        Self::LongHello,
    ];

    /// The word a callees file writes.
    #[must_use]
    pub const fn word(self) -> &'static str {
        match self {
            Self::Confirms => "confirms",
            Self::Declines => "declines",
            Self::OptsOut => "opts-out",
            Self::Silent => "silent",
            Self::LongHello => "long-hello",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Fails => "fails",
            Self::HangsUp => "hangs-up",
            Self::Voicemail => "voicemail",
            Self::VoicemailNoBeep => "voicemail-no-beep",
            Self::CarrierVoicemail => "carrier-voicemail",
        }
    }

    /// The behaviour the word stands for, with the timings of the demo's mix; the voice's
    /// timings are left to be drawn per number.
    #[must_use]
    pub fn callee(self) -> Callee {
        let person = |digits: Option<&str>| Callee::Person {
            after_ms: 3_000,
            hello_ms: None,
            digits: digits.map(str::to_owned),
        };
        let mailbox = |beep: bool| Callee::Voicemail {
            after_ms: 6_000,
            record_ms: 60_000,
            greeting_ms: None,
            beep,
        };
        match self {
            Self::Confirms => person(Some("1")),
            Self::Declines => person(Some("2")),
            Self::OptsOut => Callee::OptsOut {
                after_ms: 3_000,
                hello_ms: None,
            },
            Self::Silent => Callee::Silent { after_ms: 3_000 },
            Self::LongHello => Callee::LongHello {
                after_ms: 3_000,
                hello_ms: None,
            },
            Self::Busy => Callee::Busy,
            Self::NoAnswer => Callee::NoAnswer { ring_ms: 25_000 },
            Self::Fails => Callee::Fail { code: 404 },
            Self::HangsUp => Callee::HangUpMidPrompt { after_ms: 2_000 },
            Self::Voicemail => mailbox(true),
            Self::VoicemailNoBeep => mailbox(false),
            Self::CarrierVoicemail => Callee::CarrierVoicemail {
                after_ms: 20_000,
                record_ms: 60_000,
                greeting_ms: None,
            },
        }
    }

    /// The settings a callees file may give this persona beside its word (`{"persona":
    /// "voicemail", "greeting_ms": 9000}`).
    #[must_use]
    pub const fn settings(self) -> &'static [&'static str] {
        match self {
            Self::Confirms | Self::Declines | Self::OptsOut | Self::LongHello => {
                &["after_ms", "hello_ms"]
            }
            Self::Silent | Self::HangsUp => &["after_ms"],
            Self::Busy | Self::Fails => &[],
            Self::NoAnswer => &["ring_ms"],
            Self::Voicemail => &["after_ms", "greeting_ms", "beep", "record_ms"],
            Self::VoicemailNoBeep | Self::CarrierVoicemail => {
                &["after_ms", "greeting_ms", "record_ms"]
            }
        }
    }

    /// The behaviour with a callees file's settings applied (each one of
    /// [`Persona::settings`]); the message says what is wrong with a setting.
    fn callee_with(self, settings: &serde_json::Map<String, Value>) -> Result<Callee, Refused> {
        let mut callee = self.callee();
        for (key, value) in settings {
            if key == "persona" {
                continue;
            }
            if !self.settings().contains(&key.as_str()) {
                return Err(Refused::Key(key.clone()));
            }
            if key == "beep" {
                let Some(on) = value.as_bool() else {
                    return Err(Refused::Value(key.clone(), "true or false"));
                };
                if let Callee::Voicemail { beep, .. } = &mut callee {
                    *beep = on;
                }
                continue;
            }
            let Some(ms) = value.as_u64().filter(|ms| *ms <= MAX_TIMING_MS) else {
                return Err(Refused::Value(
                    key.clone(),
                    "a whole number of milliseconds, at most 600000",
                ));
            };
            match (key.as_str(), &mut callee) {
                (
                    "after_ms",
                    Callee::Person { after_ms, .. }
                    | Callee::Silent { after_ms }
                    | Callee::LongHello { after_ms, .. }
                    | Callee::HangUpMidPrompt { after_ms }
                    | Callee::OptsOut { after_ms, .. }
                    | Callee::Voicemail { after_ms, .. }
                    | Callee::CarrierVoicemail { after_ms, .. },
                ) => *after_ms = ms,
                (
                    "hello_ms",
                    Callee::Person { hello_ms, .. }
                    | Callee::LongHello { hello_ms, .. }
                    | Callee::OptsOut { hello_ms, .. },
                ) => *hello_ms = Some(ms),
                (
                    "greeting_ms",
                    Callee::Voicemail { greeting_ms, .. }
                    | Callee::CarrierVoicemail { greeting_ms, .. },
                ) => *greeting_ms = Some(ms),
                (
                    "record_ms",
                    Callee::Voicemail { record_ms, .. }
                    | Callee::CarrierVoicemail { record_ms, .. },
                ) => *record_ms = ms,
                ("ring_ms", Callee::NoAnswer { ring_ms }) => *ring_ms = ms,
                _ => return Err(Refused::Key(key.clone())),
            }
        }
        Ok(callee)
    }

    /// The vocabulary, for messages: `confirms, declines, ...`.
    #[must_use]
    pub fn vocabulary() -> String {
        Self::ALL.map(Self::word).join(", ")
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Why a persona's settings were refused.
/// The longest timing a callees file may give (ten minutes): longer is a mistake, and a
/// greeting laid out phrase by phrase must stay small.
pub const MAX_TIMING_MS: u64 = 600_000;

enum Refused {
    Key(String),
    Value(String, &'static str),
}

/// A word that names no persona.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown persona {word:?}; the personas are: {}",
    Persona::vocabulary()
)]
pub struct UnknownPersona {
    pub word: String,
}

impl FromStr for Persona {
    type Err = UnknownPersona;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.word() == word)
            .ok_or_else(|| UnknownPersona {
                word: word.to_owned(),
            })
    }
}

/// Why a callees file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CalleesFileError {
    #[error("the callees file is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error(
        "the callees file must be a JSON object of E.164 numbers to personas ({vocabulary}), not {found}",
        vocabulary = Persona::vocabulary()
    )]
    NotAnObject { found: &'static str },
    #[error("{number:?} is not an E.164 number: {reason}")]
    NotE164 {
        number: String,
        reason: outdial_core::ids::E164Error,
    },
    #[error("{number:?}: {reason}")]
    UnknownPersona {
        number: String,
        reason: UnknownPersona,
    },
    #[error(
        "{number:?}: not a callee object ({reason}); write a persona ({}), an object naming one such as {{\"persona\": \"voicemail\", \"greeting_ms\": 9000}}, or a callee such as {{\"kind\": \"answer\", \"after_ms\": 1000, \"digits\": \"1\"}}",
        Persona::vocabulary()
    )]
    BadCallee {
        number: String,
        reason: serde_json::Error,
    },
    #[error(
        "{number:?}: {key:?} is not a setting of the persona {persona}; it takes {}",
        allowed(&["persona"], persona.settings())
    )]
    UnknownSetting {
        number: String,
        persona: Persona,
        key: String,
    },
    #[error("{number:?}: the persona's {key:?} must be {expected}")]
    BadSetting {
        number: String,
        key: String,
        expected: &'static str,
    },
    #[error(
        "{number:?}: \"persona\" must be one of the words {}, not {found}",
        Persona::vocabulary()
    )]
    PersonaNotAWord { number: String, found: &'static str },
    #[error("{number:?}: {key:?} is not a field of a {kind:?} callee; it takes {allowed}")]
    UnknownField {
        number: String,
        kind: &'static str,
        key: String,
        allowed: String,
    },
    #[error(
        "{number:?}: a persona is a word ({}) or a callee object, not {kind}",
        Persona::vocabulary()
    )]
    BadValue { number: String, kind: &'static str },
}

/// The keys an object may have, for messages: `persona, after_ms, hello_ms`.
fn allowed(first: &[&str], rest: &[&str]) -> String {
    first
        .iter()
        .chain(rest)
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a callees file: a JSON object from E.164 numbers to a persona word, to an object
/// naming a persona with some of its timings (`{"persona": "voicemail", "greeting_ms": 9000,
/// "beep": true}`, the keys of [`Persona::settings`]), or to a [`Callee`] written out as its
/// tagged object (`{"kind": "answer", "after_ms": 1000, "digits": "9"}`) for a behaviour no
/// word names. Unknown keys are refused.
///
/// # Errors
/// A [`CalleesFileError`] naming the first number whose entry cannot be used, or saying
/// that the text is not a JSON object.
pub fn parse_callees_file(text: &str) -> Result<BTreeMap<String, Callee>, CalleesFileError> {
    let value: Value = serde_json::from_str(text).map_err(CalleesFileError::NotJson)?;
    let Value::Object(entries) = value else {
        return Err(CalleesFileError::NotAnObject {
            found: json_kind(&value),
        });
    };
    let mut by_number = BTreeMap::new();
    for (number, value) in entries {
        if let Err(reason) = E164::parse(&number) {
            return Err(CalleesFileError::NotE164 { number, reason });
        }
        let callee = match value {
            Value::String(word) => match word.parse::<Persona>() {
                Ok(persona) => persona.callee(),
                Err(reason) => return Err(CalleesFileError::UnknownPersona { number, reason }),
            },
            Value::Object(settings) if settings.contains_key("persona") => {
                persona_object(number.clone(), &settings)?
            }
            Value::Object(fields) => tagged_object(number.clone(), fields)?,
            other => {
                return Err(CalleesFileError::BadValue {
                    number,
                    kind: json_kind(&other),
                });
            }
        };
        by_number.insert(number, callee);
    }
    Ok(by_number)
}

/// `{"persona": WORD, settings...}`.
fn persona_object(
    number: String,
    settings: &serde_json::Map<String, Value>,
) -> Result<Callee, CalleesFileError> {
    let word = match &settings["persona"] {
        Value::String(word) => word,
        other => {
            return Err(CalleesFileError::PersonaNotAWord {
                number,
                found: json_kind(other),
            });
        }
    };
    let persona = match word.parse::<Persona>() {
        Ok(persona) => persona,
        Err(reason) => return Err(CalleesFileError::UnknownPersona { number, reason }),
    };
    persona
        .callee_with(settings)
        .map_err(|refused| match refused {
            Refused::Key(key) => CalleesFileError::UnknownSetting {
                number,
                persona,
                key,
            },
            Refused::Value(key, expected) => CalleesFileError::BadSetting {
                number,
                key,
                expected,
            },
        })
}

/// `{"kind": KIND, fields...}`: a [`Callee`] as serde reads it, with no key it does not
/// write.
fn tagged_object(
    number: String,
    fields: serde_json::Map<String, Value>,
) -> Result<Callee, CalleesFileError> {
    let callee = match serde_json::from_value::<Callee>(Value::Object(fields.clone())) {
        Ok(callee) => callee,
        Err(reason) => return Err(CalleesFileError::BadCallee { number, reason }),
    };
    // Every field of a callee is written, so the keys it writes are the keys it takes.
    let written = match serde_json::to_value(&callee) {
        Ok(Value::Object(written)) => written,
        _ => serde_json::Map::new(),
    };
    if let Some((key, _)) = fields
        .iter()
        .find(|(_, v)| v.as_u64().is_some_and(|ms| ms > MAX_TIMING_MS))
    {
        return Err(CalleesFileError::BadSetting {
            number,
            key: key.clone(),
            expected: "a whole number of milliseconds, at most 600000",
        });
    }
    if let Some(key) = fields.keys().find(|k| !written.contains_key(*k)) {
        let keys: Vec<&str> = written.keys().map(String::as_str).collect();
        return Err(CalleesFileError::UnknownField {
            number,
            kind: callee.kind(),
            key: key.clone(),
            allowed: allowed(
                &["kind"],
                &keys
                    .into_iter()
                    .filter(|k| *k != "kind")
                    .collect::<Vec<_>>(),
            ),
        });
    }
    Ok(callee)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_documented_persona_word_parses_to_itself() {
        let documented = [
            "confirms",
            "declines",
            "opts-out",
            "silent",
            "long-hello",
            "busy",
            "no-answer",
            "fails",
            "hangs-up",
            "voicemail",
            "voicemail-no-beep",
            "carrier-voicemail",
        ];
        for word in documented {
            let persona: Persona = word.parse().unwrap();
            assert_eq!(persona.word(), word);
        }
        assert_eq!(Persona::ALL.len(), documented.len(), "no undocumented word");
    }

    #[test]
    fn the_documentation_lists_every_persona() {
        let doc = include_str!("../../../docs/simulator.md");
        for persona in Persona::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", persona.word())),
                "docs/simulator.md does not list {persona}"
            );
        }
    }

    #[test]
    fn the_words_stand_for_the_callees_they_describe() {
        let digits = |p: Persona| p.callee().gather_digits().map(str::to_owned);
        assert_eq!(digits(Persona::Confirms).as_deref(), Some("1"));
        assert_eq!(digits(Persona::Declines).as_deref(), Some("2"));
        assert_eq!(digits(Persona::LongHello).as_deref(), Some("1"));
        assert_eq!(digits(Persona::Silent), None);
        assert_eq!(digits(Persona::Voicemail), None);
        assert!(matches!(Persona::OptsOut.callee(), Callee::OptsOut { .. }));
        assert_eq!(Persona::Fails.callee(), Callee::Fail { code: 404 });
        assert!(matches!(
            Persona::VoicemailNoBeep.callee(),
            Callee::Voicemail { beep: false, .. }
        ));
        for persona in Persona::ALL {
            assert_eq!(persona.callee().persona(), Some(persona), "{persona}");
        }
    }

    #[test]
    fn every_answering_persona_has_a_voice_of_its_truth() {
        use crate::sim::audio::Truth;
        for persona in Persona::ALL {
            let callee = persona.callee();
            let voice = callee.voice(1, "+15555550100");
            assert_eq!(
                voice.is_some(),
                callee.answers_after().is_some(),
                "{persona}"
            );
            let Some(voice) = voice else { continue };
            let machine = matches!(
                persona,
                Persona::Voicemail | Persona::VoicemailNoBeep | Persona::CarrierVoicemail
            );
            assert_eq!(voice.truth == Truth::Machine, machine, "{persona}");
            assert_eq!(callee.is_mailbox(), machine, "{persona}");
            assert_eq!(
                voice.beep_at_ms.is_some(),
                machine && persona != Persona::VoicemailNoBeep
            );
        }
        let silent = Persona::Silent.callee().voice(1, "+15555550100").unwrap();
        assert_eq!(silent.hello_ms, Some(0));
        assert!(silent.timeline.sounds().is_empty(), "says nothing at all");
        let long = Persona::LongHello
            .callee()
            .voice(1, "+15555550100")
            .unwrap();
        assert_eq!(long.hello_ms, Some(4_000));
    }

    #[test]
    fn a_number_draws_the_same_voice_for_a_seed_and_others_differ() {
        let callee = Persona::Voicemail.callee();
        let a = callee.voice(9, "+15555550100").unwrap();
        assert_eq!(a, callee.voice(9, "+15555550100").unwrap());
        let others: Vec<_> = (1..20)
            .map(|i| {
                callee
                    .voice(9, &format!("+155555501{i:02}"))
                    .unwrap()
                    .greeting_ms
            })
            .collect();
        assert!(others.iter().any(|g| *g != a.greeting_ms), "{others:?}");
        let explicit = Callee::Voicemail {
            after_ms: 1,
            record_ms: 60_000,
            greeting_ms: Some(9_000),
            beep: true,
        };
        assert_eq!(
            explicit.voice(9, "+15555550100").unwrap().greeting_ms,
            Some(9_000)
        );
    }

    /// The `q` quantile of some draws.
    fn quantile(mut v: Vec<u64>, q: f64) -> u64 {
        v.sort_unstable();
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i]
    }

    #[test]
    fn the_drawn_timings_have_their_documented_shapes() {
        let n = 20_000;
        let numbers: Vec<String> = (0..n).map(|i| format!("+1555{i:07}")).collect();
        let hellos: Vec<u64> = numbers
            .iter()
            .map(|to| {
                Persona::Confirms
                    .callee()
                    .voice(1, to)
                    .unwrap()
                    .hello_ms
                    .unwrap()
            })
            .collect();
        let median = quantile(hellos.clone(), 0.5);
        let p95 = quantile(hellos.clone(), 0.95);
        assert!((550..=610).contains(&median), "hello median {median}");
        assert!((1_300..=1_420).contains(&p95), "hello p95 {p95}");
        assert!(hellos.iter().all(|h| (300..=2_500).contains(h)));
        let under_a_second = hellos.iter().filter(|h| **h < 1_000).count();
        assert!(under_a_second * 100 / n > 70, "{under_a_second}");

        let greetings: Vec<u64> = numbers
            .iter()
            .map(|to| {
                Persona::Voicemail
                    .callee()
                    .voice(1, to)
                    .unwrap()
                    .greeting_ms
                    .unwrap()
            })
            .collect();
        let median = quantile(greetings.clone(), 0.5);
        let p95 = quantile(greetings.clone(), 0.95);
        assert!(
            (7_700..=8_300).contains(&median),
            "greeting median {median}"
        );
        assert!((16_000..=17_600).contains(&p95), "greeting p95 {p95}");
        let mid = greetings
            .iter()
            .filter(|g| (5_000..=12_000).contains(*g))
            .count();
        assert!(mid * 100 / n >= 65, "{mid}");
        let long_pauses = numbers
            .iter()
            .filter(|to| {
                let v = Persona::Voicemail.callee().voice(1, to).unwrap();
                // The pause before the beep is at most 0.8 s: a longer one is inside the greeting.
                v.timeline.longest_gap_ms() >= 1_000
            })
            .count();
        assert!(
            (n * 3 / 100..=n * 6 / 100).contains(&long_pauses),
            "long pauses {long_pauses}"
        );
    }

    #[test]
    fn the_amd_mix_answers_every_call_and_a_third_are_machines() {
        let mix = Callees::amd_mix();
        let total: u32 = mix.mix.iter().map(|(w, _)| w).sum();
        let machines: u32 = mix
            .mix
            .iter()
            .filter(|(_, c)| c.is_mailbox())
            .map(|(w, _)| w)
            .sum();
        assert_eq!(total, 100);
        assert!((30..=36).contains(&machines), "{machines}");
        assert!(mix.mix.iter().all(|(_, c)| c.answers_after().is_some()));
        let drawn: Vec<Callee> = (0..1_000)
            .map(|i| mix.for_number(&format!("+1555{i:07}"), 1))
            .collect();
        let mailboxes = drawn.iter().filter(|c| c.is_mailbox()).count();
        assert!((280..=400).contains(&mailboxes), "{mailboxes}");
    }

    #[test]
    fn an_unknown_word_is_refused_with_the_vocabulary() {
        let e = "maybe".parse::<Persona>().unwrap_err().to_string();
        assert!(e.contains("\"maybe\""), "{e}");
        assert!(e.contains("confirms, declines, opts-out"), "{e}");
        assert!(
            "Confirms".parse::<Persona>().is_err(),
            "words are lower-case"
        );
    }

    #[test]
    fn a_callees_file_maps_numbers_to_words_or_tagged_callees() {
        let file = r#"{"+15555550100": "opts-out", "+15555550101": "busy",
            "+15555550102": {"kind": "answer", "after_ms": 500, "digits": "0"}}"#;
        let by_number = parse_callees_file(file).unwrap();
        assert_eq!(
            by_number["+15555550100"],
            Callee::OptsOut {
                after_ms: 3_000,
                hello_ms: None
            }
        );
        assert_eq!(by_number["+15555550101"], Callee::Busy);
        assert_eq!(
            by_number["+15555550102"],
            Callee::Answer {
                after_ms: 500,
                digits: Some("0".into())
            }
        );
        assert!(parse_callees_file("{}").unwrap().is_empty());
    }

    #[test]
    fn a_bad_callees_file_names_what_is_wrong() {
        let error = |text: &str| parse_callees_file(text).unwrap_err().to_string();
        let e = error("not json");
        assert!(e.contains("not JSON"), "{e}");
        let e = error(r#"["+15555550100"]"#);
        assert!(e.contains("JSON object") && e.contains("an array"), "{e}");
        assert!(e.contains("opts-out"), "the vocabulary: {e}");
        let e = error(r#"{"15555550100": "busy"}"#);
        assert!(e.contains("\"15555550100\" is not an E.164 number"), "{e}");
        let e = error(r#"{"+15555550100": "maybe"}"#);
        assert!(
            e.contains("\"+15555550100\"") && e.contains("\"maybe\"") && e.contains("voicemail"),
            "{e}"
        );
        let e = error(r#"{"+15555550100": 3}"#);
        assert!(
            e.contains("\"+15555550100\"") && e.contains("a number"),
            "{e}"
        );
        let e = error(r#"{"+15555550100": {"kind": "dance"}}"#);
        assert!(e.contains("\"+15555550100\"") && e.contains("dance"), "{e}");
        let e = error(r#"{"+15555550100": {"kind": "busy", "ring_ms": 5}}"#);
        assert!(
            e.contains("\"+15555550100\"") && e.contains("\"ring_ms\"") && e.contains("kind"),
            "{e}"
        );
    }

    #[test]
    fn an_object_names_a_persona_with_its_timings() {
        let file = r#"{
            "+15555550100": {"persona": "voicemail", "greeting_ms": 9000, "beep": true},
            "+15555550101": {"persona": "confirms", "hello_ms": 1200},
            "+15555550102": {"persona": "voicemail", "beep": false, "record_ms": 30000},
            "+15555550103": {"persona": "carrier-voicemail", "after_ms": 1000},
            "+15555550104": {"persona": "no-answer", "ring_ms": 5000},
            "+15555550105": {"persona": "long-hello"},
            "+15555550106": "voicemail-no-beep"
        }"#;
        let by_number = parse_callees_file(file).unwrap();
        assert_eq!(
            by_number["+15555550100"],
            Callee::Voicemail {
                after_ms: 6_000,
                record_ms: 60_000,
                greeting_ms: Some(9_000),
                beep: true
            }
        );
        assert_eq!(
            by_number["+15555550101"],
            Callee::Person {
                after_ms: 3_000,
                hello_ms: Some(1_200),
                digits: Some("1".into())
            }
        );
        assert_eq!(
            by_number["+15555550102"].persona(),
            Some(Persona::VoicemailNoBeep)
        );
        assert!(matches!(
            by_number["+15555550102"],
            Callee::Voicemail {
                record_ms: 30_000,
                ..
            }
        ));
        assert!(matches!(
            by_number["+15555550103"],
            Callee::CarrierVoicemail {
                after_ms: 1_000,
                ..
            }
        ));
        assert_eq!(
            by_number["+15555550104"],
            Callee::NoAnswer { ring_ms: 5_000 }
        );
        assert_eq!(by_number["+15555550105"], Persona::LongHello.callee());
        assert_eq!(by_number["+15555550106"], Persona::VoicemailNoBeep.callee());
    }

    #[test]
    fn a_persona_object_with_an_unknown_key_or_bad_value_is_refused() {
        let error = |text: &str| parse_callees_file(text).unwrap_err().to_string();
        let e = error(r#"{"+15555550100": {"persona": "confirms", "greeting_ms": 9000}}"#);
        assert!(
            e.contains("\"+15555550100\"")
                && e.contains("\"greeting_ms\"")
                && e.contains("confirms")
                && e.contains("persona, after_ms, hello_ms"),
            "{e}"
        );
        let e = error(r#"{"+15555550100": {"persona": "voicemail-no-beep", "beep": true}}"#);
        assert!(e.contains("\"beep\"") && e.contains("record_ms"), "{e}");
        let e = error(r#"{"+15555550100": {"persona": "busy", "after_ms": 1}}"#);
        assert!(e.contains("it takes persona") && e.contains("busy"), "{e}");
        let e = error(r#"{"+15555550100": {"persona": "voicemail", "greeting_ms": "9 s"}}"#);
        assert!(
            e.contains("\"greeting_ms\"") && e.contains("whole number of milliseconds"),
            "{e}"
        );
        let e = error(r#"{"+15555550100": {"persona": "voicemail", "beep": 1}}"#);
        assert!(e.contains("true or false"), "{e}");
        let e = error(r#"{"+15555550100": {"persona": "robot"}}"#);
        assert!(
            e.contains("\"robot\"") && e.contains("carrier-voicemail"),
            "{e}"
        );
        let e = error(r#"{"+15555550100": {"persona": 3}}"#);
        assert!(
            e.contains("\"persona\" must be") && e.contains("a number"),
            "{e}"
        );
        let e = error(r#"{"+15555550100": {"persona": "confirms", "kind": "answer"}}"#);
        assert!(e.contains("\"kind\""), "{e}");
        // A timing past ten minutes is a mistake, in either form of entry.
        let e = error(r#"{"+15555550100": {"persona": "voicemail", "greeting_ms": 1e15}}"#);
        assert!(e.contains("at most 600000"), "{e}");
        let e =
            error(r#"{"+15555550100": {"persona": "carrier-voicemail", "greeting_ms": 600001}}"#);
        assert!(
            e.contains("\"greeting_ms\"") && e.contains("at most 600000"),
            "{e}"
        );
        let e = error(
            r#"{"+15555550100": {"kind": "voicemail", "after_ms": 1000, "record_ms": 60000, "beep": true, "greeting_ms": 99999999999}}"#,
        );
        assert!(
            e.contains("\"greeting_ms\"") && e.contains("at most 600000"),
            "{e}"
        );
        assert!(
            parse_callees_file(
                r#"{"+15555550100": {"persona": "voicemail", "greeting_ms": 600000}}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn callees_written_before_the_voices_still_read() {
        let old: Callee =
            serde_json::from_str(r#"{"kind": "voicemail", "after_ms": 4000, "record_ms": 8000}"#)
                .unwrap();
        assert_eq!(
            old,
            Callee::Voicemail {
                after_ms: 4_000,
                record_ms: 8_000,
                greeting_ms: None,
                beep: true
            }
        );
        let old: Callee = serde_json::from_str(r#"{"kind": "opts_out", "after_ms": 10}"#).unwrap();
        assert_eq!(
            old,
            Callee::OptsOut {
                after_ms: 10,
                hello_ms: None
            }
        );
    }
}
