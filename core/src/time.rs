//! Time as the domain sees it: instants in Unix milliseconds, and the [`Clock`] port.
//!
//! The domain never reads the system clock. Handlers get a clock from their caller (the
//! system clock in Lambda, a [`ManualClock`] in tests), so retries, watchdogs and calling
//! windows are tested by advancing time rather than sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An instant, as milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const EPOCH: Self = Self(0);

    #[must_use]
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    #[must_use]
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (DynamoDB's TTL attribute wants seconds).
    #[must_use]
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant moved forward by `d`, saturating far in the future.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    #[must_use]
    pub fn since(self, earlier: Self) -> Duration {
        u64::try_from(self.0.saturating_sub(earlier.0))
            .map_or(Duration::ZERO, Duration::from_millis)
    }

    /// The sortable fixed-width form used inside index sort keys (`due_key`), so that string
    /// order is time order for every instant from 1970 to the year 5138.
    #[must_use]
    pub fn sort_key(self) -> String {
        format!("{:014}", self.0.max(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Where the current time comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant. Implementations MUST never go backwards within one process.
    fn now(&self) -> Timestamp;
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    #[must_use]
    pub fn at(t: Timestamp) -> Self {
        Self(AtomicI64::new(t.as_millis()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `t`, which must not be earlier than now (a clock never goes back).
    pub fn set(&self, t: Timestamp) {
        self.0.fetch_max(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_forward() {
        let clock = ManualClock::at(Timestamp::from_millis(1_000));
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), Timestamp::from_millis(3_000));
        clock.set(Timestamp::from_millis(10));
        assert_eq!(clock.now(), Timestamp::from_millis(3_000));
    }

    #[test]
    fn sort_keys_order_like_time() {
        let a = Timestamp::from_millis(999).sort_key();
        let b = Timestamp::from_millis(1_700_000_000_000).sort_key();
        assert!(a < b);
        assert_eq!(b.len(), a.len());
    }

    #[test]
    fn durations_between_instants_never_go_negative() {
        let t = Timestamp::from_millis(5_000);
        assert_eq!(
            t.since(Timestamp::from_millis(2_000)),
            Duration::from_secs(3)
        );
        assert_eq!(Timestamp::from_millis(2_000).since(t), Duration::ZERO);
        assert_eq!(t.as_secs(), 5);
    }
}
