//! Answering-machine detection: telling a mailbox's greeting from a person's "Hello?".
//!
//! The PSTN audio service gives the handler no audio and no detector: a mailbox that picks up
//! is an ordinary `CALL_ANSWERED`. What it offers is `RecordAudio`, which stops after a set
//! stretch of silence or at a set length. A person answers with a short hello and then waits
//! for someone to speak; a mailbox plays a greeting of several seconds, beeps, and then waits
//! in silence for the message. So the detector listens with a short `RecordAudio` and judges
//! from how long it ran:
//!
//! 1. **Listen**: `RecordAudio` stopping after `silence_s` of silence, or at `listen_s`. Its
//!    length, less the closing silence, is the greeting. At most `person_max_ms` is a person,
//!    who hears the script; longer, or still speaking at `listen_s`, is a machine.
//! 2. **Wait for the beep**: a second `RecordAudio`, stopping after `beep_silence_s` of
//!    silence (longer than the pauses between a greeting's sentences) or at `greeting_max_s`.
//!    Stopped by silence, the greeting and its beep are over: the message is spoken, once,
//!    into the mailbox. Still going at `greeting_max_s`, the greeting never paused: the call
//!    hangs up rather than talk into it (`voicemail_unheard`).
//!
//! The handler times both with its clock, from its answer to the event that reports the
//! recording's end; the recording itself is never read. The defaults are the ones measured
//! best by `outdial bench amd` over the simulator's population (`docs/voicemail.md`).

use serde::{Deserialize, Serialize};

use crate::script::Prompt;

/// Script outcome of a call whose voicemail message played to its end.
pub const VOICEMAIL_LEFT: &str = "voicemail_left";
/// Script outcome of a call whose mailbox greeting never paused long enough to speak after
/// it, or whose message could not be played: nothing was left.
pub const VOICEMAIL_UNHEARD: &str = "voicemail_unheard";
/// Script outcome of a call whose message started after the greeting but ended before the
/// message did (the mailbox or the line hung up).
pub const VOICEMAIL_CUT_OFF: &str = "voicemail_cut_off";

/// The script's `machine` block: whether to listen for a machine, what to leave on one, and
/// the detector's thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Listen before the script starts. Off, the script starts at the answer as without a
    /// `machine` block.
    #[serde(default = "yes")]
    pub detect: bool,
    /// What a mailbox is left: text (or `{"ssml": ...}`) spoken with the script's voice, or a
    /// recording (`{"bucket": ..., "key": ...}`).
    pub message: Prompt,
    /// The longest greeting judged a person's, in milliseconds.
    #[serde(default = "default_person_max_ms")]
    pub person_max_ms: u32,
    /// The silence that ends a greeting, in whole seconds (`RecordAudio` counts silence in
    /// seconds).
    #[serde(default = "default_silence_s")]
    pub silence_s: u32,
    /// The longest the detector listens, in seconds; still speaking then is a machine.
    #[serde(default = "default_listen_s")]
    pub listen_s: u32,
    /// The silence that marks a machine's greeting (and beep) over, in seconds.
    #[serde(default = "default_beep_silence_s")]
    pub beep_silence_s: u32,
    /// The longest greeting waited through, in seconds.
    #[serde(default = "default_greeting_max_s")]
    pub greeting_max_s: u32,
    /// `RecordAudio`'s `SilenceThreshold` (1 to 1,000; the service's default, 200, is about
    /// 60 dB) when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_threshold: Option<u32>,
}

const fn yes() -> bool {
    true
}
/// Default of [`Machine::person_max_ms`].
pub const DEFAULT_PERSON_MAX_MS: u32 = 2_500;
const fn default_person_max_ms() -> u32 {
    DEFAULT_PERSON_MAX_MS
}
/// Default of [`Machine::silence_s`].
pub const DEFAULT_SILENCE_S: u32 = 1;
const fn default_silence_s() -> u32 {
    DEFAULT_SILENCE_S
}
/// Default of [`Machine::listen_s`].
pub const DEFAULT_LISTEN_S: u32 = 4;
const fn default_listen_s() -> u32 {
    DEFAULT_LISTEN_S
}
/// Default of [`Machine::beep_silence_s`].
pub const DEFAULT_BEEP_SILENCE_S: u32 = 2;
const fn default_beep_silence_s() -> u32 {
    DEFAULT_BEEP_SILENCE_S
}
/// Default of [`Machine::greeting_max_s`].
pub const DEFAULT_GREETING_MAX_S: u32 = 30;
const fn default_greeting_max_s() -> u32 {
    DEFAULT_GREETING_MAX_S
}

/// What the detector concluded about who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Listening, or the call ended (or the recording failed) before a judgement.
    Undecided,
    Person,
    Machine,
}

impl Verdict {
    pub const ALL: [Self; 3] = [Self::Undecided, Self::Person, Self::Machine];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Undecided => "undecided",
            Self::Person => "person",
            Self::Machine => "machine",
        }
    }

    /// The verdict a stored word names.
    #[must_use]
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == word)
    }
}

/// One judgement: the verdict and the greeting length it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The greeting's measured length: the listening time less its closing silence, or the
    /// whole listening time when it ran to `listen_s` (the greeting was at least that long).
    pub greeting_ms: u32,
}

/// A `machine` block the detector cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("script.machine.{field}: {reason}")]
pub struct MachineError {
    pub field: &'static str,
    pub reason: String,
}

impl Machine {
    /// Checks the thresholds' ranges and that they fit together (the message is checked with
    /// the script's other prompts).
    ///
    /// # Errors
    /// [`MachineError`] naming the field at fault.
    pub fn check(&self) -> Result<(), MachineError> {
        let fault = |field, reason: &str| {
            Err(MachineError {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(500..=10_000).contains(&self.person_max_ms) {
            return fault("person_max_ms", "must be 500 to 10000");
        }
        if !(1..=5).contains(&self.silence_s) {
            return fault("silence_s", "must be 1 to 5");
        }
        if !(2..=30).contains(&self.listen_s) {
            return fault("listen_s", "must be 2 to 30");
        }
        if u64::from(self.listen_s) * 1_000
            <= u64::from(self.person_max_ms) + u64::from(self.silence_s) * 1_000
        {
            return fault(
                "listen_s",
                "must be longer than person_max_ms and silence_s together, or a person's silence is never heard",
            );
        }
        if !(1..=10).contains(&self.beep_silence_s) {
            return fault("beep_silence_s", "must be 1 to 10");
        }
        if !(5..=120).contains(&self.greeting_max_s) {
            return fault("greeting_max_s", "must be 5 to 120");
        }
        if self
            .silence_threshold
            .is_some_and(|t| !(1..=1_000).contains(&t))
        {
            return fault("silence_threshold", "must be 1 to 1000");
        }
        Ok(())
    }

    /// Judges the first listen, which ran for `elapsed_ms` (from the answer that started it to
    /// the event that reported its end); `key_pressed` when a recording terminator stopped
    /// it: machines press no keys.
    #[must_use]
    pub fn judge(&self, elapsed_ms: u64, key_pressed: bool) -> Judgement {
        let listen_ms = u64::from(self.listen_s) * 1_000;
        // The event cannot say whether silence or the duration stopped the recording, so a
        // listening that reached `listen_s` is taken to have run to it. A silence stop that
        // only crossed `listen_s` on the event's trip back is then recorded `silence_s` too
        // long; the verdict is the same either way (`check` keeps `listen_s` above
        // `person_max_ms` plus `silence_s`).
        let greeting = if elapsed_ms >= listen_ms {
            elapsed_ms
        } else {
            elapsed_ms.saturating_sub(u64::from(self.silence_s) * 1_000)
        };
        let greeting_ms = u32::try_from(greeting).unwrap_or(u32::MAX);
        let verdict = if key_pressed || greeting_ms <= self.person_max_ms {
            Verdict::Person
        } else {
            Verdict::Machine
        };
        Judgement {
            verdict,
            greeting_ms,
        }
    }

    /// Whether the wait for the beep, which ran for `elapsed_ms`, ended in silence (the
    /// greeting is over: speak) rather than at `greeting_max_s` (it never paused).
    #[must_use]
    pub fn greeting_over(&self, elapsed_ms: u64) -> bool {
        elapsed_ms < u64::from(self.greeting_max_s) * 1_000
    }
}

/// Where a call stands in detection, carried in its `TransactionAttributes` between events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The first listen runs since this instant (epoch milliseconds of the handler's clock).
    Listening { since_ms: i64 },
    /// Judged a machine; waiting since this instant for its greeting and beep to end.
    AwaitingBeep { since_ms: i64 },
    /// The message is playing into the mailbox.
    Message,
}

impl Phase {
    /// The attribute value: `listen:<ms>`, `beep:<ms>`, `message`.
    #[must_use]
    pub fn encode(self) -> String {
        match self {
            Self::Listening { since_ms } => format!("listen:{since_ms}"),
            Self::AwaitingBeep { since_ms } => format!("beep:{since_ms}"),
            Self::Message => "message".to_owned(),
        }
    }

    /// Reads an attribute value back; `None` for anything else.
    #[must_use]
    pub fn decode(value: &str) -> Option<Self> {
        if value == "message" {
            return Some(Self::Message);
        }
        let (kind, ms) = value.split_once(':')?;
        let since_ms = ms.parse().ok()?;
        match kind {
            "listen" => Some(Self::Listening { since_ms }),
            "beep" => Some(Self::AwaitingBeep { since_ms }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn machine(json: &str) -> Machine {
        serde_json::from_str(json).unwrap()
    }

    fn defaults() -> Machine {
        machine(r#"{"message": "Please call us back."}"#)
    }

    #[test]
    fn the_defaults_are_documented_values_and_fit_together() {
        let m = defaults();
        assert!(m.detect);
        assert_eq!(
            (
                m.person_max_ms,
                m.silence_s,
                m.listen_s,
                m.beep_silence_s,
                m.greeting_max_s
            ),
            (2_500, 1, 4, 2, 30)
        );
        m.check().unwrap();
        let doc = include_str!("../../docs/voicemail.md");
        for (field, value) in [
            ("person_max_ms", "2500"),
            ("silence_s", "1"),
            ("listen_s", "4"),
            ("beep_silence_s", "2"),
            ("greeting_max_s", "30"),
        ] {
            assert!(
                doc.contains(&format!("| `{field}` | {value} |")),
                "docs/voicemail.md gives {field}'s default as {value}"
            );
        }
    }

    #[test]
    fn a_short_hello_followed_by_silence_is_a_person() {
        let m = defaults();
        // "Hello?" for 0.7 s, then a second of silence stops the recording.
        assert_eq!(
            m.judge(1_700, false),
            Judgement {
                verdict: Verdict::Person,
                greeting_ms: 700
            }
        );
        // Silence from the start: a person waiting for us.
        assert_eq!(m.judge(1_000, false).verdict, Verdict::Person);
        assert_eq!(m.judge(1_000, false).greeting_ms, 0);
        // Exactly the limit is still a person.
        assert_eq!(m.judge(3_500, false).verdict, Verdict::Person);
    }

    #[test]
    fn a_long_greeting_is_a_machine_and_a_key_is_a_person() {
        let m = defaults();
        assert_eq!(m.judge(3_501, false).verdict, Verdict::Machine);
        // Still speaking when the listen ran out: at least that long.
        assert_eq!(
            m.judge(4_020, false),
            Judgement {
                verdict: Verdict::Machine,
                greeting_ms: 4_020
            }
        );
        assert_eq!(m.judge(4_020, true).verdict, Verdict::Person);
    }

    #[test]
    fn the_wait_for_the_beep_ends_in_silence_or_at_the_limit() {
        let m = defaults();
        assert!(m.greeting_over(2_000));
        assert!(m.greeting_over(29_999));
        assert!(!m.greeting_over(30_000));
        assert!(!m.greeting_over(30_050));
    }

    #[test]
    fn thresholds_out_of_range_or_at_odds_are_refused_by_name() {
        let refused = |json: &str| {
            machine(&format!(r#"{{"message": "m", {json}}}"#))
                .check()
                .unwrap_err()
                .to_string()
        };
        assert!(refused(r#""silence_s": 0"#).starts_with("script.machine.silence_s"));
        assert!(refused(r#""person_max_ms": 50"#).contains("person_max_ms"));
        let e = refused(r#""person_max_ms": 3500, "listen_s": 4"#);
        assert!(e.contains("listen_s") && e.contains("never heard"), "{e}");
        assert!(refused(r#""greeting_max_s": 500"#).contains("greeting_max_s"));
        assert!(refused(r#""silence_threshold": 0"#).contains("silence_threshold"));
        assert!(
            serde_json::from_str::<Machine>(r#"{"message": "m", "beep": true}"#).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn phases_survive_the_attribute_map() {
        for phase in [
            Phase::Listening {
                since_ms: 1_764_000_000_123,
            },
            Phase::AwaitingBeep { since_ms: 42 },
            Phase::Message,
        ] {
            assert_eq!(Phase::decode(&phase.encode()), Some(phase));
        }
        for junk in ["", "listen", "listen:x", "beep:", "other:1", "messages"] {
            assert_eq!(Phase::decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn verdicts_read_back_from_their_words() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(Verdict::parse("robot"), None);
    }
}
