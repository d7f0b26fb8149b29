//! The carrier's view of caller IDs: a number that places too many calls in an hour, or whose
//! answered calls are mostly very short, is flagged as unwanted for a while, and its calls are
//! rejected with SIP 608 until the flag is lifted.
//!
//! The model is off unless [`super::SimConfig::carrier`] is set. Its time line is the
//! simulator's placement clock (`SimConfig::clock` when set, else the wall time elapsed since
//! the simulator started), in milliseconds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The SIP code of a call the carrier rejects as unwanted (608 Rejected).
pub const REJECTED: u16 = 608;

/// An hour, the window of [`Carrier::max_per_hour`], in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// The rules by which the simulated carrier flags a caller ID (the Create request's
/// `FromPhoneNumber`). While a caller ID is flagged, the Create API still answers `201` for
/// its calls, and each of them fails at once with SIP 608, as a [`super::Callee::Fail`] with
/// that code does.
///
/// A caller ID is judged at each call it places, on what the carrier saw of it since its last
/// flag was lifted (or since the simulator started): a flag is a clean slate once it ends.
/// Every placed call counts, including one the Create API answered `500` after placing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Carrier {
    /// Volume rule: a call that would make more than this many calls let through from the
    /// caller ID within the last hour (sliding: the 3,600,000 ms up to and including the call)
    /// is rejected, and the caller ID flagged. Default 100.
    pub max_per_hour: u32,
    /// Short-call rule: an answered call is short when less than this much simulated time
    /// passed from `CALL_ANSWERED` to the call's end (the time its actions, rings and waits
    /// take in the simulation; the handler's own latency is not counted). 0 turns the rule
    /// off. Default 6,000 ms.
    pub short_call_ms: u64,
    /// Short-call rule: the caller ID is flagged when more than this share of its ended calls
    /// (answered or not, let through since the last flag) were short ...
    pub max_short_share: f64,
    /// ... once at least this many of them have ended. Default 20 calls, share 0.5.
    pub min_calls: u32,
    /// How long a caller ID stays flagged, from the call that tripped a rule (written
    /// `block_for_ms` in JSON). Default 24 hours.
    #[serde(rename = "block_for_ms", with = "millis")]
    pub block_for: Duration,
}

impl Default for Carrier {
    fn default() -> Self {
        Self {
            max_per_hour: 100,
            short_call_ms: 6_000,
            max_short_share: 0.5,
            min_calls: 20,
            block_for: Duration::from_secs(24 * 3_600),
        }
    }
}

/// A [`Duration`] as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// What the carrier knows of each caller ID.
#[derive(Debug, Default)]
pub(crate) struct CallerIds {
    by_from: BTreeMap<String, CallerId>,
}

#[derive(Debug, Default)]
struct CallerId {
    /// Flagged until this instant (exclusive).
    blocked_until: Option<i64>,
    /// When its last flag was lifted: what came before is forgotten.
    since: Option<i64>,
    /// When each call let through (since `since`) was placed.
    passed: Vec<i64>,
    /// The calls let through that ended: when each was placed, and whether it was short.
    ended: Vec<(i64, bool)>,
}

impl CallerIds {
    /// Judges a call `from` places at `now`: whether the carrier rejects it. A call that trips
    /// a rule is rejected and flags the caller ID for [`Carrier::block_for`].
    pub fn rejects(&mut self, rules: &Carrier, from: &str, now: i64) -> bool {
        let id = self.by_from.entry(from.to_owned()).or_default();
        if let Some(until) = id.blocked_until {
            if now < until {
                return true;
            }
            id.blocked_until = None;
            id.since = Some(until);
        }
        if let Some(since) = id.since {
            id.passed.retain(|at| *at >= since);
            id.ended.retain(|(at, _)| *at >= since);
        }
        id.passed.retain(|at| now.saturating_sub(*at) < HOUR_MS);
        let too_many = id.passed.len() >= usize::try_from(rules.max_per_hour).unwrap_or(usize::MAX);
        let short = id.ended.iter().filter(|(_, short)| *short).count();
        let ended = id.ended.len();
        #[allow(clippy::cast_precision_loss)]
        let too_short = ended > 0
            && ended >= usize::try_from(rules.min_calls).unwrap_or(usize::MAX)
            && short as f64 / ended as f64 > rules.max_short_share;
        if too_many || too_short {
            let block = i64::try_from(rules.block_for.as_millis()).unwrap_or(i64::MAX);
            id.blocked_until = Some(now.saturating_add(block));
            return true;
        }
        id.passed.push(now);
        false
    }

    /// A call the carrier let through, placed `from` at `placed_at`, ended; `short` when it
    /// was answered and ended within [`Carrier::short_call_ms`].
    pub fn ended(&mut self, from: &str, placed_at: i64, short: bool) {
        let id = self.by_from.entry(from.to_owned()).or_default();
        if id.since.is_none_or(|since| placed_at >= since) {
            id.ended.push((placed_at, short));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max_per_hour: u32) -> Carrier {
        Carrier {
            max_per_hour,
            short_call_ms: 0,
            block_for: Duration::from_secs(600),
            ..Carrier::default()
        }
    }

    #[test]
    fn the_hourly_volume_flags_a_caller_id_for_its_block_then_starts_afresh() {
        let (rules, mut ids) = (rules(2), CallerIds::default());
        assert!(!ids.rejects(&rules, "+1", 0));
        assert!(!ids.rejects(&rules, "+1", 1_000));
        assert!(
            ids.rejects(&rules, "+1", 2_000),
            "the third within the hour"
        );
        assert!(!ids.rejects(&rules, "+2", 2_000), "another caller ID");
        assert!(ids.rejects(&rules, "+1", 601_999), "still flagged");
        assert!(
            !ids.rejects(&rules, "+1", 602_000),
            "lifted, with a clean slate"
        );
        assert!(!ids.rejects(&rules, "+1", 602_001));
        assert!(ids.rejects(&rules, "+1", 602_002));
    }

    #[test]
    fn calls_older_than_an_hour_no_longer_count() {
        let (rules, mut ids) = (rules(2), CallerIds::default());
        assert!(!ids.rejects(&rules, "+1", 0));
        assert!(!ids.rejects(&rules, "+1", 1_000));
        assert!(
            !ids.rejects(&rules, "+1", HOUR_MS),
            "the first left the window"
        );
        assert!(ids.rejects(&rules, "+1", HOUR_MS + 999));
    }

    #[test]
    fn mostly_short_calls_flag_a_caller_id_once_enough_have_ended() {
        let rules = Carrier {
            max_per_hour: 1_000,
            short_call_ms: 5_000,
            max_short_share: 0.5,
            min_calls: 4,
            block_for: Duration::from_secs(60),
        };
        let mut ids = CallerIds::default();
        for (at, short) in [(0, true), (1, true), (2, true)] {
            assert!(!ids.rejects(&rules, "+1", at));
            ids.ended("+1", at, short);
        }
        assert!(
            !ids.rejects(&rules, "+1", 3),
            "three ended: too few to judge"
        );
        ids.ended("+1", 3, false);
        assert!(ids.rejects(&rules, "+1", 4), "three of four short");
        ids.ended("+1", 0, true);
        assert!(!ids.rejects(&rules, "+1", 60_004), "forgotten once lifted");
    }
}
