//! What the dispatcher is told (its [`Settings`]) and what it reports: a [`Tick`]'s work and
//! the running [`Stats`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How the dispatcher paces and watches.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Calls per second for the whole account (across campaigns) on this shard.
    pub account_cps: f64,
    /// How long after a dial its `NEW_OUTBOUND_CALL` must have arrived.
    pub first_event_within: Duration,
    /// How long after asking the SMA to end a call the watchdog looks again.
    pub recheck_after: Duration,
    /// Due entries read per request.
    pub batch: u32,
    /// How far ahead dials are prepared (claimed and booked on the pacers).
    pub horizon: Duration,
    /// Dial tasks in flight at most.
    pub max_in_flight: usize,
    /// How long a campaign's status is trusted before it is read again (a pause or a cancel
    /// takes effect within this).
    pub campaign_ttl: Duration,
    /// Calls a sweep changes at once.
    pub sweep_concurrency: usize,
    /// Whether the law's calling hours hold calls outside them (as they always do in the
    /// function). Only a local stack, whose simulated callees live nowhere, may leave them
    /// out; the calling windows and the contact caps apply either way.
    pub legal_hours: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            account_cps: 5.0,
            first_event_within: Duration::from_secs(60),
            recheck_after: Duration::from_secs(30),
            batch: 100,
            horizon: Duration::from_secs(1),
            max_in_flight: 512,
            campaign_ttl: Duration::from_secs(2),
            sweep_concurrency: 16,
            legal_hours: true,
        }
    }
}

/// What one tick did itself; the outcomes of its dials arrive later, in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Dial tasks started.
    pub started: u32,
    /// Watchdogs looked at.
    pub watched: u32,
    /// Waiting calls parked, cancelled or moved to their window's opening.
    pub settled: u32,
    /// Campaign sweeps done.
    pub swept: u32,
    /// Set when pacing (or the in-flight bound) stopped the tick: how long until the next
    /// tick has work.
    pub paced_for: Option<Duration>,
    /// How late the earliest watchdog due was when the tick read it: a dispatcher that keeps
    /// up sees a few hundred milliseconds at most; more means calls are stuck past their
    /// watchdog.
    pub overdue: Option<Duration>,
    /// Due calls left for a later tick because their campaign's own rate was booked ahead
    /// (the account had room): the tick went on to other campaigns' calls behind them.
    pub paced_back: u32,
    /// How long until the earliest of those campaigns has a slot again.
    pub campaign_paced_for: Option<Duration>,
}

impl Tick {
    /// Whether the tick changed anything.
    #[must_use]
    pub fn did_work(&self) -> bool {
        self.started + self.watched + self.settled + self.swept > 0
    }

    pub(crate) fn progressed_since(&self, before: &Self) -> bool {
        self.started + self.watched + self.settled + self.swept
            > before.started + before.watched + before.settled + before.swept
    }
}

/// What the dispatcher has done since it started, dials' outcomes included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Dials the Voice API accepted.
    pub dialed: u32,
    pub throttled: u32,
    pub refused: u32,
    /// Dials whose answer is unknown (left to the watchdog).
    pub unknown: u32,
    /// Attempts whose end could not be known (placing unknown, or the SMA no longer knew
    /// the call and kept no `HANGUP` of it), queued as their next attempt.
    pub retried: u32,
    /// Calls the SMA no longer knew whose end was read from their orphaned `HANGUP`.
    pub recovered: u32,
    /// Live calls the SMA was asked to end (watchdogs and cancels).
    pub hung_up: u32,
    /// Attempts whose end could not be known, ended `LOST` (answered, or none left).
    pub lost: u32,
    /// Waiting calls ended without a dial (cancelled campaign, do-not-call list).
    pub cancelled: u32,
    pub do_not_call: u32,
    pub parked: u32,
    pub unparked: u32,
    /// Waiting calls moved to their window's next opening.
    pub deferred: u32,
    /// Claims refused by the campaign's concurrency cap.
    pub at_capacity: u32,
    /// Times a tick found a campaign's concurrency slots all taken, as far as this process
    /// knows, and passed its other calls over (no claim was tried for them).
    pub cap_reached: u32,
    /// Waiting calls a contact cap of the account policy ended or held.
    pub capped: u32,
    /// Claims tried again because another claim counted a call to the same number first,
    /// or dialed from the same caller ID.
    pub contended: u32,
    /// Waiting calls held because no caller ID of their pool could place them.
    pub caller_ids_held: u32,
    /// Dials that woke up late enough, next to one on time, that the send window held them
    /// back (2 ms or more), so that no second at the API holds more dials than the rate.
    pub held: u32,
}

impl Stats {
    /// What was done between `before` and this snapshot.
    #[must_use]
    pub fn since(&self, before: &Self) -> Self {
        Self {
            dialed: self.dialed.saturating_sub(before.dialed),
            throttled: self.throttled.saturating_sub(before.throttled),
            refused: self.refused.saturating_sub(before.refused),
            unknown: self.unknown.saturating_sub(before.unknown),
            retried: self.retried.saturating_sub(before.retried),
            recovered: self.recovered.saturating_sub(before.recovered),
            hung_up: self.hung_up.saturating_sub(before.hung_up),
            lost: self.lost.saturating_sub(before.lost),
            cancelled: self.cancelled.saturating_sub(before.cancelled),
            do_not_call: self.do_not_call.saturating_sub(before.do_not_call),
            parked: self.parked.saturating_sub(before.parked),
            unparked: self.unparked.saturating_sub(before.unparked),
            deferred: self.deferred.saturating_sub(before.deferred),
            at_capacity: self.at_capacity.saturating_sub(before.at_capacity),
            cap_reached: self.cap_reached.saturating_sub(before.cap_reached),
            capped: self.capped.saturating_sub(before.capped),
            contended: self.contended.saturating_sub(before.contended),
            caller_ids_held: self.caller_ids_held.saturating_sub(before.caller_ids_held),
            held: self.held.saturating_sub(before.held),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub(crate) dialed: AtomicU32,
    pub(crate) throttled: AtomicU32,
    pub(crate) refused: AtomicU32,
    pub(crate) unknown: AtomicU32,
    pub(crate) retried: AtomicU32,
    pub(crate) recovered: AtomicU32,
    pub(crate) hung_up: AtomicU32,
    pub(crate) lost: AtomicU32,
    pub(crate) cancelled: AtomicU32,
    pub(crate) do_not_call: AtomicU32,
    pub(crate) parked: AtomicU32,
    pub(crate) unparked: AtomicU32,
    pub(crate) deferred: AtomicU32,
    pub(crate) at_capacity: AtomicU32,
    pub(crate) cap_reached: AtomicU32,
    pub(crate) capped: AtomicU32,
    pub(crate) contended: AtomicU32,
    pub(crate) caller_ids_held: AtomicU32,
    pub(crate) held: AtomicU32,
}

pub(crate) fn bump(counter: &AtomicU32) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Totals {
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU32| c.load(Ordering::Relaxed);
        Stats {
            dialed: get(&self.dialed),
            throttled: get(&self.throttled),
            refused: get(&self.refused),
            unknown: get(&self.unknown),
            retried: get(&self.retried),
            recovered: get(&self.recovered),
            hung_up: get(&self.hung_up),
            lost: get(&self.lost),
            cancelled: get(&self.cancelled),
            do_not_call: get(&self.do_not_call),
            parked: get(&self.parked),
            unparked: get(&self.unparked),
            deferred: get(&self.deferred),
            at_capacity: get(&self.at_capacity),
            cap_reached: get(&self.cap_reached),
            capped: get(&self.capped),
            contended: get(&self.contended),
            caller_ids_held: get(&self.caller_ids_held),
            held: get(&self.held),
        }
    }
}
