//! Who answers the phone: the behaviours the simulator plays per dialed number, and the
//! persona words that name them in a callees file (`outdial dev --callees FILE`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use outdial_core::ids::E164;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One callee's behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Callee {
    /// Answers after `after_ms` of ringing, listens, and presses `digits` when asked (or
    /// nothing: a gather then times out).
    Answer {
        after_ms: u64,
        digits: Option<String>,
    },
    /// Busy at once (SIP 486).
    Busy,
    /// Rings for `ring_ms`, then the network gives up (SIP 480).
    NoAnswer { ring_ms: u64 },
    /// The call fails with this SIP code (e.g. 404 for a number that does not exist, 503).
    Fail { code: u16 },
    /// Answers, then hangs up halfway through the first prompt.
    HangUpMidPrompt { after_ms: u64 },
    /// Answers and wants off the list: once a `ReceiveDigits` listener is armed, it presses
    /// the one key that matches the listener's `InputDigitsRegex`, in the first action that
    /// runs (and again in each later action list, as someone who wants off would). With
    /// nothing ever armed it presses nothing, at a gather too: it is then a silent callee.
    OptsOut { after_ms: u64 },
    /// A voicemail box: answers, plays its greeting, presses nothing, hangs up after
    /// `record_ms` of recording.
    Voicemail { after_ms: u64, record_ms: u64 },
}

impl Default for Callee {
    fn default() -> Self {
        Self::Answer {
            after_ms: 2_000,
            digits: Some("1".to_owned()),
        }
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
    /// Answers and presses nothing.
    Silent,
    /// Busy (SIP 486).
    Busy,
    /// Rings until the network gives up (SIP 480).
    NoAnswer,
    /// The number does not exist (SIP 404).
    Fails,
    /// Answers and hangs up halfway through the first prompt.
    HangsUp,
    /// A voicemail box.
    Voicemail,
}

impl Persona {
    /// Every persona, in the order the documentation lists them.
    pub const ALL: [Self; 9] = [
        Self::Confirms,
        Self::Declines,
        Self::OptsOut,
        Self::Silent,
        Self::Busy,
        Self::NoAnswer,
        Self::Fails,
        Self::HangsUp,
        Self::Voicemail,
    ];

    /// The word a callees file writes.
    #[must_use]
    pub const fn word(self) -> &'static str {
        match self {
            Self::Confirms => "confirms",
            Self::Declines => "declines",
            Self::OptsOut => "opts-out",
            Self::Silent => "silent",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Fails => "fails",
            Self::HangsUp => "hangs-up",
            Self::Voicemail => "voicemail",
        }
    }

    /// The behaviour the word stands for, with the timings of the demo's mix.
    #[must_use]
    pub fn callee(self) -> Callee {
        let answer = |digits: Option<&str>| Callee::Answer {
            after_ms: 3_000,
            digits: digits.map(str::to_owned),
        };
        match self {
            Self::Confirms => answer(Some("1")),
            Self::Declines => answer(Some("2")),
            Self::OptsOut => Callee::OptsOut { after_ms: 3_000 },
            Self::Silent => answer(None),
            Self::Busy => Callee::Busy,
            Self::NoAnswer => Callee::NoAnswer { ring_ms: 25_000 },
            Self::Fails => Callee::Fail { code: 404 },
            Self::HangsUp => Callee::HangUpMidPrompt { after_ms: 2_000 },
            Self::Voicemail => Callee::Voicemail {
                after_ms: 6_000,
                record_ms: 10_000,
            },
        }
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
        "{number:?}: not a callee object ({reason}); write a persona ({}) or an object such as {{\"kind\": \"answer\", \"after_ms\": 1000, \"digits\": \"1\"}}",
        Persona::vocabulary()
    )]
    BadCallee {
        number: String,
        reason: serde_json::Error,
    },
    #[error(
        "{number:?}: a persona is a word ({}) or a callee object, not {kind}",
        Persona::vocabulary()
    )]
    BadValue { number: String, kind: &'static str },
}

/// Reads a callees file: a JSON object from E.164 numbers to a persona word, or to a
/// [`Callee`] written out as its tagged object (`{"kind": "answer", "after_ms": 1000,
/// "digits": "9"}`) for a behaviour no word names.
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
            Value::Object(_) => match serde_json::from_value::<Callee>(value) {
                Ok(callee) => callee,
                Err(reason) => return Err(CalleesFileError::BadCallee { number, reason }),
            },
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
            "busy",
            "no-answer",
            "fails",
            "hangs-up",
            "voicemail",
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
        let digits = |p: Persona| match p.callee() {
            Callee::Answer { digits, .. } => digits,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(digits(Persona::Confirms).as_deref(), Some("1"));
        assert_eq!(digits(Persona::Declines).as_deref(), Some("2"));
        assert_eq!(digits(Persona::Silent), None);
        assert!(matches!(Persona::OptsOut.callee(), Callee::OptsOut { .. }));
        assert_eq!(Persona::Fails.callee(), Callee::Fail { code: 404 });
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
            Callee::OptsOut { after_ms: 3_000 }
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
    }
}
