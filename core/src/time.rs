//! Time as the domain sees it: instants in Unix milliseconds, and the [`Clock`] port.
//!
//! The domain never reads the system clock. Handlers get a clock from their caller (the
//! system clock in Lambda, a [`ManualClock`] in tests), so retries, watchdogs and calling
//! windows are tested by advancing time rather than sleeping.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
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

    /// This instant as RFC 3339 in UTC (`2026-11-25T06:08:52.123Z`); the milliseconds as a
    /// number for an instant outside the years -9999 to 9999.
    #[must_use]
    pub fn rfc3339(self) -> String {
        jiff::Timestamp::from_millisecond(self.0)
            .map_or_else(|_| self.0.to_string(), |ts| ts.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A wait on a [`Clock`], as [`Clock::sleep`] returns it.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the current time comes from, and how to wait for it to pass. Everything that paces,
/// waits or times out does so through this port, so that tests run it on a [`ManualClock`]
/// and never wait for real time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant. Implementations MUST never go backwards within one process.
    fn now(&self) -> Timestamp;

    /// Time elapsed on this clock since an origin of its own, as finely as it can tell
    /// (pacing spaces calls by fractions of a millisecond). It MUST never go backwards, and
    /// advances with [`Clock::now`].
    fn elapsed(&self) -> Duration;

    /// Completes once `d` has passed on this clock (at once for zero).
    fn sleep(&self, d: Duration) -> Sleep;
}

/// A clock that only moves when told to: for tests and simulations. Its sleeps complete when
/// [`ManualClock::advance`] or [`ManualClock::set`] moves it past their deadline, so a test
/// decides when time passes, whatever the load of the machine.
#[derive(Debug, Default)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug, Default)]
struct Manual {
    ms: AtomicI64,
    /// Sleeps waiting to be woken: each one's id, its deadline and who to wake. A sleep that
    /// is dropped before it is due (the other branch of a race won) leaves it.
    sleepers: Mutex<Vec<(u64, i64, Waker)>>,
    /// The next sleep's id.
    next_id: AtomicU64,
}

impl Manual {
    fn now(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }

    fn wake_due(&self) {
        let now = self.now();
        let due: Vec<Waker> = {
            let mut sleepers = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
            let (due, waiting) = std::mem::take(&mut *sleepers)
                .into_iter()
                .partition(|(_, at, _)| *at <= now);
            *sleepers = waiting;
            due.into_iter().map(|(_, _, w)| w).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

impl ManualClock {
    #[must_use]
    pub fn at(t: Timestamp) -> Self {
        Self(Arc::new(Manual {
            ms: AtomicI64::new(t.as_millis()),
            sleepers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        }))
    }

    /// Moves the clock forward, waking the sleeps it makes due.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.ms.fetch_add(ms, Ordering::SeqCst);
        self.0.wake_due();
    }

    /// Sets the clock to `t`, which must not be earlier than now (a clock never goes back).
    pub fn set(&self, t: Timestamp) {
        self.0.ms.fetch_max(t.as_millis(), Ordering::SeqCst);
        self.0.wake_due();
    }

    /// When the earliest sleep on this clock is due, if any is waiting.
    #[must_use]
    pub fn next_wake(&self) -> Option<Timestamp> {
        let sleepers = self
            .0
            .sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sleepers.iter().map(|(_, at, _)| *at).min().map(Timestamp)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.now())
    }

    fn elapsed(&self) -> Duration {
        u64::try_from(self.0.now()).map_or(Duration::ZERO, Duration::from_millis)
    }

    fn sleep(&self, d: Duration) -> Sleep {
        // Rounded up: a sleep never ends before its time.
        let ms = i64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i64::MAX);
        Box::pin(ManualSleep {
            clock: Arc::clone(&self.0),
            at: self.0.now().saturating_add(ms),
            id: self.0.next_id.fetch_add(1, Ordering::Relaxed),
        })
    }
}

struct ManualSleep {
    clock: Arc<Manual>,
    at: i64,
    id: u64,
}

impl ManualSleep {
    fn sleepers(&self) -> std::sync::MutexGuard<'_, Vec<(u64, i64, Waker)>> {
        self.clock
            .sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.at {
            return Poll::Ready(());
        }
        {
            // One entry per sleep, with the waker of its latest poll.
            let mut sleepers = self.sleepers();
            sleepers.retain(|(id, ..)| *id != self.id);
            sleepers.push((self.id, self.at, cx.waker().clone()));
        }
        // The clock may have moved between the check and the registration.
        if self.clock.now() >= self.at {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ManualSleep {
    /// A sleep given up before it was due (a race's other branch won) no longer counts as
    /// waiting: [`ManualClock::next_wake`] does not report it.
    fn drop(&mut self) {
        let id = self.id;
        self.sleepers().retain(|(other, ..)| *other != id);
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
    fn a_manual_sleep_ends_when_the_clock_passes_its_deadline_and_not_before() {
        use std::sync::atomic::AtomicBool;
        use std::task::Wake;

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let clock = ManualClock::at(Timestamp::from_millis(1_000));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut sleep = clock.sleep(Duration::from_micros(1_500));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.next_wake(), Some(Timestamp::from_millis(1_002)));
        clock.advance(Duration::from_millis(1));
        assert!(!flag.0.load(Ordering::SeqCst), "not due at 1,001 ms");
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_millis(1));
        assert!(flag.0.load(Ordering::SeqCst), "woken at its deadline");
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
        assert!(
            clock
                .sleep(Duration::ZERO)
                .as_mut()
                .poll(&mut cx)
                .is_ready()
        );
    }

    #[test]
    fn a_sleep_given_up_before_its_deadline_is_no_longer_waited_for() {
        let clock = ManualClock::at(Timestamp::from_millis(1_000));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut early = clock.sleep(Duration::from_secs(1));
        let mut late = clock.sleep(Duration::from_secs(5));
        assert!(early.as_mut().poll(&mut cx).is_pending());
        assert!(early.as_mut().poll(&mut cx).is_pending());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.next_wake(), Some(Timestamp::from_millis(2_000)));
        drop(early);
        assert_eq!(clock.next_wake(), Some(Timestamp::from_millis(6_000)));
        drop(late);
        assert_eq!(clock.next_wake(), None);
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
