//! The system clock, the one place outdial reads the time.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outdial_core::time::{Clock, Sleep, Timestamp};

/// Wall-clock time, and the runtime's timers for sleeping. Lambda hosts keep it
/// synchronised; a step backwards (rare) is clamped by callers that compare instants with
/// [`Timestamp::since`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// Where [`SystemClock::elapsed`] counts from: the first reading in this process.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(ms)
    }

    fn elapsed(&self) -> Duration {
        origin().elapsed()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}
