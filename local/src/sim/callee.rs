//! Who answers the phone: the behaviours the simulator plays per dialed number.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
        let answer = |digits: Option<&str>| Callee::Answer {
            after_ms: 3_000,
            digits: digits.map(str::to_owned),
        };
        Self {
            by_number: BTreeMap::new(),
            mix: vec![
                (50, answer(Some("1"))),
                (12, answer(Some("2"))),
                (6, answer(None)),
                (8, Callee::Busy),
                (8, Callee::NoAnswer { ring_ms: 25_000 }),
                (4, Callee::Fail { code: 404 }),
                (3, Callee::Fail { code: 503 }),
                (4, Callee::HangUpMidPrompt { after_ms: 2_000 }),
                (
                    5,
                    Callee::Voicemail {
                        after_ms: 6_000,
                        record_ms: 10_000,
                    },
                ),
            ],
        }
    }
}
