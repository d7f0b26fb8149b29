//! When an attempt that did not reach the callee is tried again.
//!
//! Busy, unanswered and failed attempts are retried after a delay chosen per outcome, which
//! doubles with every further attempt (capped at a day), until the campaign's attempts are
//! used up. An invalid number is never retried; a decline is retried only when the campaign
//! says so, since a person who declined usually meant it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::Attempt;
use crate::sip::Unanswered;

/// The longest a retry is ever put off, however many attempts came before.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);
/// The most attempts a campaign may make per contact.
pub const MAX_ATTEMPTS: u32 = 10;

/// A campaign's retry policy, as its spec states it. Construct it through deserialization or
/// [`RetryPolicy::new`], which reject values that make no sense.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RetrySpec", into = "RetrySpec")]
pub struct RetryPolicy {
    max_attempts: u32,
    busy: Duration,
    no_answer: Duration,
    failed: Duration,
    declined: Option<Duration>,
}

/// The wire form of a [`RetryPolicy`] in a campaign spec, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included (1 means never retry).
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::busy_s")]
    pub busy_after_s: u64,
    #[serde(default = "defaults::no_answer_s")]
    pub no_answer_after_s: u64,
    #[serde(default = "defaults::failed_s")]
    pub failed_after_s: u64,
    /// Retry declined calls after this many seconds; absent means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declined_after_s: Option<u64>,
}

mod defaults {
    pub const fn max_attempts() -> u32 {
        3
    }
    pub const fn busy_s() -> u64 {
        300
    }
    pub const fn no_answer_s() -> u64 {
        1800
    }
    pub const fn failed_s() -> u64 {
        600
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: defaults::max_attempts(),
            busy: Duration::from_secs(defaults::busy_s()),
            no_answer: Duration::from_secs(defaults::no_answer_s()),
            failed: Duration::from_secs(defaults::failed_s()),
            declined: None,
        }
    }
}

/// Why a retry spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("retry.max_attempts must be between 1 and {MAX_ATTEMPTS}, got {0}")]
    MaxAttempts(u32),
    #[error("retry.{0} must be between 1 second and one day")]
    Delay(&'static str),
}

impl TryFrom<RetrySpec> for RetryPolicy {
    type Error = RetryPolicyError;

    fn try_from(spec: RetrySpec) -> Result<Self, Self::Error> {
        if !(1..=MAX_ATTEMPTS).contains(&spec.max_attempts) {
            return Err(RetryPolicyError::MaxAttempts(spec.max_attempts));
        }
        let delay = |secs: u64, name: &'static str| {
            if (1..=MAX_DELAY.as_secs()).contains(&secs) {
                Ok(Duration::from_secs(secs))
            } else {
                Err(RetryPolicyError::Delay(name))
            }
        };
        Ok(Self {
            max_attempts: spec.max_attempts,
            busy: delay(spec.busy_after_s, "busy_after_s")?,
            no_answer: delay(spec.no_answer_after_s, "no_answer_after_s")?,
            failed: delay(spec.failed_after_s, "failed_after_s")?,
            declined: spec
                .declined_after_s
                .map(|s| delay(s, "declined_after_s"))
                .transpose()?,
        })
    }
}

impl From<RetryPolicy> for RetrySpec {
    fn from(p: RetryPolicy) -> Self {
        Self {
            max_attempts: p.max_attempts,
            busy_after_s: p.busy.as_secs(),
            no_answer_after_s: p.no_answer.as_secs(),
            failed_after_s: p.failed.as_secs(),
            declined_after_s: p.declined.map(|d| d.as_secs()),
        }
    }
}

/// What to do after an attempt ended without reaching the callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Dial again as `attempt` once `after` has passed.
    Retry { attempt: Attempt, after: Duration },
    /// The outcome is final: no attempts left, or an outcome that is never retried.
    Final,
}

impl RetryPolicy {
    /// # Errors
    /// See [`RetryPolicyError`].
    pub fn new(spec: RetrySpec) -> Result<Self, RetryPolicyError> {
        Self::try_from(spec)
    }

    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Decides whether attempt `attempt`, which ended as `outcome`, is followed by another.
    #[must_use]
    pub fn decide(&self, attempt: Attempt, outcome: Unanswered) -> RetryDecision {
        let base = match outcome {
            Unanswered::InvalidNumber => return RetryDecision::Final,
            Unanswered::Declined => match self.declined {
                Some(d) => d,
                None => return RetryDecision::Final,
            },
            Unanswered::Busy => self.busy,
            Unanswered::NoAnswer => self.no_answer,
            Unanswered::Failed => self.failed,
        };
        if attempt.get() >= self.max_attempts {
            return RetryDecision::Final;
        }
        let doublings = attempt.get().saturating_sub(1).min(16);
        let after = base.saturating_mul(1 << doublings).min(MAX_DELAY);
        RetryDecision::Retry {
            attempt: attempt.next(),
            after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32) -> Attempt {
        Attempt::new(n).unwrap()
    }

    #[test]
    fn busy_calls_are_retried_with_a_doubling_delay_until_attempts_run_out() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(attempt(1), Unanswered::Busy),
            RetryDecision::Retry {
                attempt: attempt(2),
                after: Duration::from_secs(300)
            }
        );
        assert_eq!(
            p.decide(attempt(2), Unanswered::Busy),
            RetryDecision::Retry {
                attempt: attempt(3),
                after: Duration::from_secs(600)
            }
        );
        assert_eq!(p.decide(attempt(3), Unanswered::Busy), RetryDecision::Final);
    }

    #[test]
    fn invalid_numbers_are_never_retried_and_declines_only_when_asked() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(attempt(1), Unanswered::InvalidNumber),
            RetryDecision::Final
        );
        assert_eq!(
            p.decide(attempt(1), Unanswered::Declined),
            RetryDecision::Final
        );
        let q: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts": 2, "declined_after_s": 3600}"#).unwrap();
        assert_eq!(
            q.decide(attempt(1), Unanswered::Declined),
            RetryDecision::Retry {
                attempt: attempt(2),
                after: Duration::from_secs(3600)
            }
        );
    }

    #[test]
    fn delays_never_exceed_a_day() {
        let p: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts": 10, "no_answer_after_s": 86400}"#).unwrap();
        match p.decide(attempt(9), Unanswered::NoAnswer) {
            RetryDecision::Retry { after, .. } => assert_eq!(after, MAX_DELAY),
            RetryDecision::Final => panic!("attempt 9 of 10 must be retried"),
        }
    }

    #[test]
    fn nonsense_specs_are_refused_with_the_field_named() {
        let err = serde_json::from_str::<RetryPolicy>(r#"{"max_attempts": 0}"#).unwrap_err();
        assert!(err.to_string().contains("max_attempts"), "{err}");
        let err = serde_json::from_str::<RetryPolicy>(r#"{"busy_after_s": 0}"#).unwrap_err();
        assert!(err.to_string().contains("busy_after_s"), "{err}");
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn a_policy_round_trips_through_its_spec() {
        let p = RetryPolicy::default();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), p);
    }
}
