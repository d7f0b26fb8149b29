//! The system clock, the one place outdial reads the time.

use std::time::{SystemTime, UNIX_EPOCH};

use outdial_core::time::{Clock, Timestamp};

/// Wall-clock time. Lambda hosts keep it synchronised; a step backwards (rare) is clamped by
/// callers that compare instants with [`Timestamp::since`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(ms)
    }
}
