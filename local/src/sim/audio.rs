//! What a callee sounds like once it answers, and how `RecordAudio` stops against it.
//!
//! The PSTN audio service gives the SMA handler no audio: all the handler can learn of the
//! callee is how long a `RecordAudio` ran before its silence rule, its duration or a key
//! stopped it. So each answering callee has a [`Timeline`] from the moment it answers (speech,
//! silence, a beep), and [`record_stop`] applies the action's stop rules to it.

use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// A `RecordAudio` with neither a duration nor a silence rule stops after this long (the
/// service documents no limit; the simulator needs one).
pub const RECORD_CAP_MS: u64 = 60_000;

/// A mailbox that hears nothing for this long after its recording starts hangs up.
pub const MAILBOX_SILENCE_MS: u64 = 8_000;

/// What a sound of the callee is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoundKind {
    /// A person's words, or a greeting's phrase.
    Speech,
    /// A mailbox's tone: sound, not silence, to a silence rule.
    Beep,
}

/// One sound, from `start_ms` to `end_ms` after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sound {
    pub start_ms: u64,
    pub end_ms: u64,
    pub kind: SoundKind,
}

/// A callee's sound from its answer: the sounds in order, silence between them and for ever
/// after the last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    sounds: Vec<Sound>,
}

impl Timeline {
    /// A timeline of these sounds; empty ones are dropped, the rest sorted. Overlapping sounds
    /// are read as one stretch of sound.
    #[must_use]
    pub fn new(mut sounds: Vec<Sound>) -> Self {
        sounds.retain(|s| s.end_ms > s.start_ms);
        sounds.sort_by_key(|s| (s.start_ms, s.end_ms));
        Self { sounds }
    }

    /// Silence for ever: a callee who says nothing.
    #[must_use]
    pub fn silent() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn sounds(&self) -> &[Sound] {
        &self.sounds
    }

    /// Whether the callee makes a sound at `at_ms`.
    #[must_use]
    pub fn sounding_at(&self, at_ms: u64) -> bool {
        self.sounds
            .iter()
            .any(|s| s.start_ms <= at_ms && at_ms < s.end_ms)
    }

    /// When the last sound ends (0 for silence): silence for ever after.
    #[must_use]
    pub fn end_ms(&self) -> u64 {
        self.sounds.iter().map(|s| s.end_ms).max().unwrap_or(0)
    }

    /// The longest silence between two sounds (0 with fewer than two).
    #[must_use]
    pub fn longest_gap_ms(&self) -> u64 {
        let mut longest = 0;
        let mut heard_until: Option<u64> = None;
        for s in &self.sounds {
            if let Some(until) = heard_until {
                longest = longest.max(s.start_ms.saturating_sub(until));
            }
            heard_until = Some(heard_until.map_or(s.end_ms, |u| u.max(s.end_ms)));
        }
        longest
    }
}

/// A `RecordAudio`'s stop rules, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordRules {
    /// `DurationInSeconds`: the recording stops this long after it starts.
    pub duration_ms: Option<u64>,
    /// `SilenceDurationInSeconds`: it stops once the callee has been silent this long,
    /// counted from the recording's start at the earliest.
    pub silence_ms: Option<u64>,
    /// When (after the answer) the callee presses one of its `RecordingTerminators`.
    pub terminator_at_ms: Option<u64>,
}

/// Which rule stopped a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopBy {
    Duration,
    Silence,
    Terminator,
    /// Neither a duration nor a silence rule was given: [`RECORD_CAP_MS`].
    Cap,
}

/// When a recording stops, after the answer, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub at_ms: u64,
    pub by: StopBy,
}

/// When a `RecordAudio` that starts `start_ms` after the answer stops: the earliest of its
/// duration, the first moment the callee has been silent for the silence duration within the
/// recording (silence before the start does not count; a beep is sound), and a terminator
/// key. Without a duration or a silence rule it stops at [`RECORD_CAP_MS`]. On a tie the
/// key wins, then the duration.
#[must_use]
pub fn record_stop(timeline: &Timeline, start_ms: u64, rules: RecordRules) -> Stop {
    let mut stops = Vec::with_capacity(4);
    if let Some(at) = rules.terminator_at_ms.filter(|at| *at >= start_ms) {
        stops.push(Stop {
            at_ms: at,
            by: StopBy::Terminator,
        });
    }
    if let Some(d) = rules.duration_ms {
        stops.push(Stop {
            at_ms: start_ms.saturating_add(d),
            by: StopBy::Duration,
        });
    }
    if let Some(quiet) = rules.silence_ms {
        stops.push(Stop {
            at_ms: silent_for(timeline, start_ms, quiet),
            by: StopBy::Silence,
        });
    }
    if rules.duration_ms.is_none() && rules.silence_ms.is_none() {
        stops.push(Stop {
            at_ms: start_ms.saturating_add(RECORD_CAP_MS),
            by: StopBy::Cap,
        });
    }
    // Stable: among equal times the earlier pushed (the key, then the duration) wins.
    stops.into_iter().min_by_key(|s| s.at_ms).unwrap_or(Stop {
        at_ms: start_ms,
        by: StopBy::Cap,
    })
}

/// The first moment from `start_ms` on at which the callee has been silent for `quiet_ms`
/// without a break, counting from `start_ms` at the earliest.
fn silent_for(timeline: &Timeline, start_ms: u64, quiet_ms: u64) -> u64 {
    let mut quiet_since = start_ms;
    for s in timeline.sounds() {
        if s.end_ms <= quiet_since {
            continue;
        }
        if s.start_ms >= quiet_since.saturating_add(quiet_ms) {
            break;
        }
        quiet_since = quiet_since.max(s.end_ms);
    }
    quiet_since.saturating_add(quiet_ms)
}

/// The truth of who answered: `person` or `machine` in JSON, and equal to those words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    Person,
    Machine,
}

impl Truth {
    /// `person` or `machine`.
    #[must_use]
    pub const fn word(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Machine => "machine",
        }
    }
}

impl std::fmt::Display for Truth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

impl PartialEq<str> for Truth {
    fn eq(&self, other: &str) -> bool {
        self.word() == other
    }
}

impl PartialEq<&str> for Truth {
    fn eq(&self, other: &&str) -> bool {
        self.word() == *other
    }
}

/// A callee's voice, drawn: what it sounds like from its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voice {
    pub truth: Truth,
    /// A person's first words ("Hello?"); 0 for one who says nothing.
    pub hello_ms: Option<u64>,
    /// A mailbox's greeting: its phrases and the pauses between them, not the beep.
    pub greeting_ms: Option<u64>,
    /// When the beep starts, if the mailbox has one.
    pub beep_at_ms: Option<u64>,
    /// When the callee's own sound ends for good: the end of the beep, or of the last words.
    pub greeting_end_ms: u64,
    /// A mailbox's longest recording; it hangs up when it is reached.
    pub record_ms: Option<u64>,
    pub timeline: Timeline,
}

/// The ranges the voices are drawn from (documented in `docs/simulator.md`).
pub mod ranges {
    /// A person's hello, from two kinds of answer, clamped to 0.3-2.5 s: a bare "Hello?"
    /// (log-normal, median 0.55 s), and, one answer in `NAMED_HELLO_ONE_IN`, a hello with the
    /// answerer's name ("Hello, Dana speaking": log-normal, median 1.3 s).
    pub const HELLO_MEDIAN_MS: f64 = 550.0;
    pub const HELLO_SIGMA: f64 = 0.35;
    pub const NAMED_HELLO_MEDIAN_MS: f64 = 1_300.0;
    pub const NAMED_HELLO_SIGMA: f64 = 0.3;
    pub const NAMED_HELLO_ONE_IN: u32 = 10;
    pub const HELLO_MS: (u64, u64) = (300, 2_500);
    /// `long-hello`'s words ("Hello, this is Dana speaking, who is this?").
    pub const LONG_HELLO_MS: u64 = 4_000;
    /// A mailbox's greeting: log-normal, median 8 s, clamped to 3-25 s.
    pub const GREETING_MEDIAN_MS: f64 = 8_000.0;
    pub const GREETING_SIGMA: f64 = 0.45;
    pub const GREETING_MS: (u64, u64) = (3_000, 25_000);
    /// A greeting's phrases and the pauses between them.
    pub const PHRASE_MS: (u64, u64) = (1_000, 4_000);
    pub const PAUSE_MS: (u64, u64) = (200, 900);
    /// One greeting in `LONG_PAUSE_ONE_IN` has one pause this long.
    pub const LONG_PAUSE_MS: (u64, u64) = (1_000, 1_600);
    pub const LONG_PAUSE_ONE_IN: u32 = 20;
    /// A carrier's greeting: uniform, in two or three phrases, with these pauses.
    pub const CARRIER_GREETING_MS: (u64, u64) = (6_000, 9_000);
    pub const CARRIER_PAUSE_MS: (u64, u64) = (300, 800);
    /// The silence between a greeting's last word and its beep, and the beep.
    pub const BEFORE_BEEP_MS: (u64, u64) = (200, 800);
    pub const BEEP_MS: (u64, u64) = (400, 600);
}

/// A person's hello, drawn.
pub fn draw_hello(rng: &mut Rng) -> u64 {
    let (median, sigma) = if rng.chance(1.0 / f64::from(ranges::NAMED_HELLO_ONE_IN)) {
        (ranges::NAMED_HELLO_MEDIAN_MS, ranges::NAMED_HELLO_SIGMA)
    } else {
        (ranges::HELLO_MEDIAN_MS, ranges::HELLO_SIGMA)
    };
    rng.log_normal(median, sigma, ranges::HELLO_MS.0, ranges::HELLO_MS.1)
}

/// A person who says `hello_ms` of words on answering, then nothing.
#[must_use]
pub fn person(hello_ms: u64) -> Voice {
    Voice {
        truth: Truth::Person,
        hello_ms: Some(hello_ms),
        greeting_ms: None,
        beep_at_ms: None,
        greeting_end_ms: hello_ms,
        record_ms: None,
        timeline: Timeline::new(vec![speech(0, hello_ms)]),
    }
}

/// What kind of greeting a mailbox plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    /// The owner's own: phrases of 1-4 s with short pauses, now and then a long one.
    Own,
    /// The carrier's: two or three phrases, short pauses.
    Carrier,
}

/// A mailbox: its greeting (of `greeting_ms`, or drawn), then its beep if it has one, then
/// silence while it records for at most `record_ms`.
pub fn mailbox(
    rng: &mut Rng,
    kind: Greeting,
    greeting_ms: Option<u64>,
    beep: bool,
    record_ms: u64,
) -> Voice {
    let total = greeting_ms.unwrap_or_else(|| match kind {
        Greeting::Own => rng.log_normal(
            ranges::GREETING_MEDIAN_MS,
            ranges::GREETING_SIGMA,
            ranges::GREETING_MS.0,
            ranges::GREETING_MS.1,
        ),
        Greeting::Carrier => {
            rng.between(ranges::CARRIER_GREETING_MS.0, ranges::CARRIER_GREETING_MS.1)
        }
    });
    let mut sounds = match kind {
        Greeting::Own => own_greeting(rng, total),
        Greeting::Carrier => carrier_greeting(rng, total),
    };
    let spoken_until = sounds.last().map_or(0, |s| s.end_ms);
    let (beep_at_ms, greeting_end_ms) = if beep {
        let at = spoken_until + rng.between(ranges::BEFORE_BEEP_MS.0, ranges::BEFORE_BEEP_MS.1);
        let end = at + rng.between(ranges::BEEP_MS.0, ranges::BEEP_MS.1);
        sounds.push(Sound {
            start_ms: at,
            end_ms: end,
            kind: SoundKind::Beep,
        });
        (Some(at), end)
    } else {
        (None, spoken_until)
    };
    Voice {
        truth: Truth::Machine,
        hello_ms: None,
        greeting_ms: Some(total),
        beep_at_ms,
        greeting_end_ms,
        record_ms: Some(record_ms),
        timeline: Timeline::new(sounds),
    }
}

fn speech(start_ms: u64, end_ms: u64) -> Sound {
    Sound {
        start_ms,
        end_ms,
        kind: SoundKind::Speech,
    }
}

/// An owner's greeting of exactly `total` ms: phrases of 1-4 s separated by pauses of
/// 0.2-0.9 s (a greeting of 4 s or less is one phrase); one in twenty with two or more
/// phrases has one of its pauses drawn at 1.0-1.6 s instead, the time taken from its longest
/// phrase.
fn own_greeting(rng: &mut Rng, total: u64) -> Vec<Sound> {
    let (phrase_min, phrase_max) = ranges::PHRASE_MS;
    let (pause_min, pause_max) = ranges::PAUSE_MS;
    // Phrase lengths and the pauses after each but the last.
    let mut phrases = Vec::new();
    let mut pauses = Vec::new();
    let mut left = total;
    loop {
        if left <= phrase_max {
            phrases.push(left);
            break;
        }
        // Room for this phrase, the longest pause and a last phrase of at least the minimum.
        let most = phrase_max.min(left - pause_max - phrase_min);
        let phrase = rng.between(phrase_min, most);
        let pause = rng.between(pause_min, pause_max);
        phrases.push(phrase);
        pauses.push(pause);
        left -= phrase + pause;
    }
    if !pauses.is_empty() && rng.between(1, u64::from(ranges::LONG_PAUSE_ONE_IN)) == 1 {
        let which = usize::try_from(rng.between(0, pauses.len() as u64 - 1)).unwrap_or(0);
        let wanted = rng.between(ranges::LONG_PAUSE_MS.0, ranges::LONG_PAUSE_MS.1);
        let extra = wanted.saturating_sub(pauses[which]);
        let (longest, _) = phrases
            .iter()
            .enumerate()
            .max_by_key(|(i, p)| (**p, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        let spare = phrases[longest].saturating_sub(phrase_min);
        let extra = extra.min(spare);
        if pauses[which] + extra >= ranges::LONG_PAUSE_MS.0 {
            pauses[which] += extra;
            phrases[longest] -= extra;
        }
    }
    lay_out(&phrases, &pauses)
}

/// A carrier's greeting of exactly `total` ms: two or three phrases (of weights 2-4 each)
/// separated by pauses of 0.3-0.8 s.
fn carrier_greeting(rng: &mut Rng, total: u64) -> Vec<Sound> {
    let count = if rng.chance(0.5) { 2 } else { 3 };
    let pauses: Vec<u64> = (1..count)
        .map(|_| rng.between(ranges::CARRIER_PAUSE_MS.0, ranges::CARRIER_PAUSE_MS.1))
        .collect();
    let spoken = total.saturating_sub(pauses.iter().sum());
    let weights: Vec<u64> = (0..count).map(|_| rng.between(2, 4)).collect();
    let sum: u64 = weights.iter().sum();
    let mut phrases: Vec<u64> = weights.iter().map(|w| spoken * w / sum).collect();
    let laid: u64 = phrases.iter().sum();
    if let Some(last) = phrases.last_mut() {
        *last += spoken - laid;
    }
    lay_out(&phrases, &pauses)
}

/// Phrases one after the other, each followed by its pause.
fn lay_out(phrases: &[u64], pauses: &[u64]) -> Vec<Sound> {
    let mut at = 0;
    let mut sounds = Vec::with_capacity(phrases.len());
    for (i, phrase) in phrases.iter().enumerate() {
        sounds.push(speech(at, at + phrase));
        at += phrase + pauses.get(i).copied().unwrap_or(0);
    }
    sounds
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rules(duration_ms: Option<u64>, silence_ms: Option<u64>) -> RecordRules {
        RecordRules {
            duration_ms,
            silence_ms,
            terminator_at_ms: None,
        }
    }

    /// A greeting of two phrases (0-2 s, 2.5-5 s) and a beep at 5.5-6 s.
    fn greeting_with_beep() -> Timeline {
        Timeline::new(vec![
            speech(0, 2_000),
            speech(2_500, 5_000),
            Sound {
                start_ms: 5_500,
                end_ms: 6_000,
                kind: SoundKind::Beep,
            },
        ])
    }

    #[test]
    fn a_person_stops_the_recording_a_silence_after_the_hello() {
        let hello = person(1_200).timeline;
        let stop = record_stop(&hello, 0, rules(Some(4_000), Some(1_000)));
        assert_eq!(
            stop,
            Stop {
                at_ms: 2_200,
                by: StopBy::Silence
            }
        );
    }

    #[test]
    fn silence_before_the_recording_does_not_count() {
        let hello = person(500).timeline;
        // Started 3 s after a 0.5 s hello: 1 s of silence counted from the start.
        let stop = record_stop(&hello, 3_000, rules(None, Some(1_000)));
        assert_eq!(stop.at_ms, 4_000);
        assert_eq!(stop.by, StopBy::Silence);
        // Started mid-hello: silence counts from its end.
        let stop = record_stop(&hello, 200, rules(None, Some(1_000)));
        assert_eq!(stop.at_ms, 1_500);
    }

    #[test]
    fn a_pause_shorter_than_the_silence_rule_does_not_stop_it_and_a_beep_is_sound() {
        let t = greeting_with_beep();
        // Pauses of 0.5 s: a 1 s rule runs to 1 s after the beep.
        let stop = record_stop(&t, 0, rules(Some(30_000), Some(1_000)));
        assert_eq!(stop.at_ms, 7_000);
        assert_eq!(stop.by, StopBy::Silence);
        // A 0.4 s rule stops in the first pause.
        let stop = record_stop(&t, 0, rules(None, Some(400)));
        assert_eq!(stop.at_ms, 2_400);
        // Started in the pause before the beep: the beep breaks the silence.
        let stop = record_stop(&t, 5_100, rules(None, Some(500)));
        assert_eq!(stop.at_ms, 6_500);
    }

    #[test]
    fn the_duration_caps_a_greeting_that_goes_on() {
        let t = greeting_with_beep();
        let stop = record_stop(&t, 0, rules(Some(4_000), Some(1_000)));
        assert_eq!(
            stop,
            Stop {
                at_ms: 4_000,
                by: StopBy::Duration
            }
        );
        let stop = record_stop(&t, 1_000, rules(Some(4_000), None));
        assert_eq!(stop.at_ms, 5_000);
        assert_eq!(
            record_stop(&t, 0, rules(None, None)),
            Stop {
                at_ms: RECORD_CAP_MS,
                by: StopBy::Cap
            }
        );
    }

    #[test]
    fn a_mailbox_without_a_beep_goes_quiet_at_its_last_word() {
        let mut rng = Rng::new(3);
        let v = mailbox(&mut rng, Greeting::Own, Some(9_000), false, 60_000);
        assert_eq!(v.beep_at_ms, None);
        assert_eq!(v.greeting_end_ms, 9_000);
        assert_eq!(v.timeline.end_ms(), 9_000);
        let stop = record_stop(&v.timeline, 4_000, rules(Some(30_000), Some(2_000)));
        assert_eq!(stop.at_ms, 11_000, "{:?}", v.timeline);
    }

    #[test]
    fn a_key_stops_the_recording_when_it_comes_first() {
        let t = greeting_with_beep();
        let stop = record_stop(
            &t,
            0,
            RecordRules {
                duration_ms: Some(4_000),
                silence_ms: Some(1_000),
                terminator_at_ms: Some(1_000),
            },
        );
        assert_eq!(
            stop,
            Stop {
                at_ms: 1_000,
                by: StopBy::Terminator
            }
        );
    }

    #[test]
    fn a_silent_callee_stops_a_silence_rule_at_once_after_it() {
        let stop = record_stop(&Timeline::silent(), 0, rules(Some(4_000), Some(1_000)));
        assert_eq!(stop.at_ms, 1_000);
    }

    #[test]
    fn greetings_keep_their_length_and_shape() {
        for seed in 0..2_000 {
            let mut rng = Rng::new(seed);
            let v = mailbox(&mut rng, Greeting::Own, None, true, 60_000);
            let total = v.greeting_ms.unwrap();
            assert!((3_000..=25_000).contains(&total), "{total}");
            let phrases: Vec<&Sound> = v
                .timeline
                .sounds()
                .iter()
                .filter(|s| s.kind == SoundKind::Speech)
                .collect();
            assert_eq!(phrases.last().unwrap().end_ms, total, "seed {seed}");
            for p in &phrases {
                assert!(p.end_ms - p.start_ms >= 1_000, "seed {seed}: {p:?}");
                assert!(p.end_ms - p.start_ms <= 4_000, "seed {seed}: {p:?}");
            }
            for w in phrases.windows(2) {
                let gap = w[1].start_ms - w[0].end_ms;
                assert!((200..=1_600).contains(&gap), "seed {seed}: {gap}");
            }
            let beep = v.beep_at_ms.unwrap();
            assert!((total + 200..=total + 800).contains(&beep));
            assert!((beep + 400..=beep + 600).contains(&v.greeting_end_ms));

            let c = mailbox(&mut rng, Greeting::Carrier, None, true, 60_000);
            let total = c.greeting_ms.unwrap();
            assert!((6_000..=9_000).contains(&total), "{total}");
            let phrases = c.timeline.sounds().len() - 1;
            assert!((2..=3).contains(&phrases));
            assert!(c.timeline.longest_gap_ms() <= 800);
        }
    }
}
