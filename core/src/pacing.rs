//! How fast calls are started: a pacer that spaces dials evenly at a rate, and an adaptive
//! rate that halves when the Voice API throttles and recovers step by step.
//!
//! The pacer is the generic cell rate algorithm with a burst of one: each dial is allowed no
//! sooner than one interval after the previous one, and a late dial does not earn a catch-up
//! burst. The interval is 1% longer than `1/rate`: the API sees a dial a few milliseconds
//! after the pacer allowed it, and that delay varies, so the margin keeps up to 10 ms of
//! jitter from ever putting more than `rate` dials into one second at the API, which is the
//! promise the dispatcher makes. The price is dialing at 99% of the rate.

use std::time::Duration;

use crate::time::Timestamp;

/// Spaces events at most `rate` per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    interval_us: u64,
    /// When the last event happened, in microseconds since the epoch; the next may happen one
    /// interval (at the current rate) later.
    last_us: Option<i64>,
}

/// The fewest calls per second a pacer accepts (one call every 100 s).
pub const MIN_RATE: f64 = 0.01;

/// How much longer than `1/rate` the pacer waits between events.
pub const JITTER_MARGIN: f64 = 0.01;

/// A pacer's interval at `rate`, in whole microseconds: rounded up, so that no two events are
/// ever closer than `(1 + JITTER_MARGIN) / rate`.
fn interval_us(rate: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let us = exact_interval_us(rate).ceil() as u64;
    us.max(1)
}

/// A [`Calendar`]'s interval at `rate`: rounded down. Shards' pacers, each at a share of the
/// rate, round theirs up, so `n` calendar intervals always fit in one pacer interval at a
/// `n`-th of the rate: rounded up too, the gap one shard leaves between its slots could be a
/// microsecond too narrow for another shard's (at 60 a second over two shards, 2 × 16,834 µs
/// against 33,667 µs), and two shards dialed a campaign at about one shard's rate. A
/// microsecond less keeps the interval 1% wider than `1 / rate` all the same.
fn calendar_interval_us(rate: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let us = exact_interval_us(rate).floor() as u64;
    us.max(1)
}

fn exact_interval_us(rate: f64) -> f64 {
    1_000_000.0 * (1.0 + JITTER_MARGIN) / rate.max(MIN_RATE)
}

impl Pacer {
    /// A pacer at `rate` events per second whose first event may happen at once.
    #[must_use]
    pub fn new(rate: f64) -> Self {
        Self {
            interval_us: interval_us(rate),
            last_us: None,
        }
    }

    /// Changes the rate; it applies to the gap after the last event, so a rate that recovers
    /// takes effect at once.
    pub fn set_rate(&mut self, rate: f64) {
        self.interval_us = interval_us(rate);
    }

    /// Takes the right to one event at `now`, or says how long until it can be taken.
    ///
    /// # Errors
    /// The wait until the next event is allowed.
    pub fn take(&mut self, now: Timestamp) -> Result<(), Duration> {
        match self.ready_in(now) {
            Duration::ZERO => {
                self.mark(now);
                Ok(())
            }
            wait => Err(wait),
        }
    }

    /// How long until the next event is allowed (zero: now).
    #[must_use]
    pub fn ready_in(&self, now: Timestamp) -> Duration {
        let now_us = now.as_millis().saturating_mul(1000);
        self.last_us.map_or(Duration::ZERO, |last| {
            let next = last.saturating_add(i64::try_from(self.interval_us).unwrap_or(i64::MAX));
            Duration::from_micros(u64::try_from(next.saturating_sub(now_us)).unwrap_or(0))
        })
    }

    /// Records an event at `now`; call it only when [`Pacer::ready_in`] says zero.
    pub fn mark(&mut self, now: Timestamp) {
        self.last_us = Some(now.as_millis().saturating_mul(1000));
    }

    /// The last event booked or taken, in microseconds since the epoch.
    #[must_use]
    pub fn last_us(&self) -> Option<i64> {
        self.last_us
    }

    /// Goes on from another pacer's last event at `last_us` (microseconds since the epoch),
    /// as if this one had booked it: the next event comes one interval after it, unless this
    /// pacer's own last event is later.
    pub fn follow(&mut self, last_us: i64) {
        self.last_us = Some(self.last_us.map_or(last_us, |own| own.max(last_us)));
    }

    /// The earliest instant at or after `now_us` (microseconds since the epoch) that this
    /// pacer allows an event.
    fn next_us(&self, now_us: i64) -> i64 {
        self.last_us.map_or(now_us, |last| {
            last.saturating_add(i64::try_from(self.interval_us).unwrap_or(i64::MAX))
                .max(now_us)
        })
    }
}

/// A campaign's pacer when several dispatchers book its slots: one per shard, each ahead of
/// time and each in its own order. No two of its events are closer than one interval, as with
/// a [`Pacer`], but a slot may be booked before one booked earlier, in a gap left there. A
/// [`Pacer`] knows only its last event, so a shard that books ahead would push every other
/// shard's next slot of the campaign behind its own: on virtual time, two shards sharing a
/// campaign at the account's rate booked about 60% of it that way.
///
/// While more than one booker (shard) books, a slot that would leave a gap to the slot before
/// it that is not a whole number of intervals goes to the next whole one: the bookers' slots
/// then share one grid and no gap is too narrow for a slot yet wider than an interval. A shard
/// whose share of the account's rate lies between the campaign's rate and half of it books
/// its own slots closer together than two intervals and farther apart than one; left there,
/// no other shard's slot fits between them, and two such shards sharing a campaign at 150 a
/// second (each at 100) booked 75% of it on virtual time.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// Rounded down, where a [`Pacer`]'s is rounded up ([`calendar_interval_us`]).
    interval_us: u64,
    /// The last event of a pacer this one follows (a previous run's): nothing is booked
    /// within one interval after it, nor before it.
    floor_us: Option<i64>,
    /// The slots booked that a new one could still come too close to, in microseconds since
    /// the epoch.
    booked: std::collections::BTreeSet<i64>,
    /// Who booked lately, and when they last did (microseconds since the epoch, as `now`).
    bookers: Vec<(u32, i64)>,
}

/// How long a booker counts as booking after its last booking: a dispatcher books at least
/// every half second while it has due calls of the campaign.
const BOOKING_LATELY_US: i64 = 2_000_000;

impl Calendar {
    /// A calendar at `rate` events per second, with nothing booked.
    #[must_use]
    pub fn new(rate: f64) -> Self {
        Self {
            interval_us: calendar_interval_us(rate),
            floor_us: None,
            booked: std::collections::BTreeSet::new(),
            bookers: Vec::new(),
        }
    }

    /// The latest event booked or followed, in microseconds since the epoch.
    #[must_use]
    pub fn last_us(&self) -> Option<i64> {
        self.booked.last().copied().max(self.floor_us)
    }

    /// Goes on from another pacer's last event at `last_us`: every slot from now on comes at
    /// least one interval after it.
    pub fn follow(&mut self, last_us: i64) {
        self.floor_us = Some(self.floor_us.map_or(last_us, |own| own.max(last_us)));
    }

    /// How long until the earliest free slot at or after `now`.
    #[must_use]
    pub fn ready_in(&self, now: Timestamp) -> Duration {
        let now_us = now.as_millis().saturating_mul(1000);
        Duration::from_micros(u64::try_from(self.earliest(now_us) - now_us).unwrap_or(0))
    }

    fn interval(&self) -> i64 {
        i64::try_from(self.interval_us).unwrap_or(i64::MAX)
    }

    /// The earliest instant at or after `from_us` at least one interval from every slot booked
    /// and after the floor.
    fn earliest(&self, from_us: i64) -> i64 {
        let interval = self.interval();
        let mut at = self
            .floor_us
            .map_or(from_us, |floor| from_us.max(floor.saturating_add(interval)));
        // Slots before `at - interval` cannot be too close; those after are visited in
        // order, each pushing `at` past itself until a gap of an interval either side opens.
        for &slot in self
            .booked
            .range(at.saturating_sub(interval).saturating_add(1)..)
        {
            if slot >= at.saturating_add(interval) {
                break;
            }
            at = slot.saturating_add(interval);
        }
        at
    }

    /// [`Calendar::earliest`], moved on to a whole number of intervals after the slot before
    /// it: a gap left narrower than that is lost to every booker.
    fn earliest_on_grid(&self, from_us: i64) -> i64 {
        let interval = self.interval();
        let at = self.earliest(from_us);
        let Some(&before) = self.booked.range(..at).next_back() else {
            return at;
        };
        // Intervals are whole microseconds, rounded down, and the bookers' pacers round
        // theirs up: a gap a few microseconds over a whole number of intervals is on the grid.
        let slack = (interval / 64).max(1);
        let gap = at - before;
        let over = (gap - slack).max(1);
        let whole = (over + interval - 1) / interval;
        let on_grid = before.saturating_add(whole.saturating_mul(interval));
        if on_grid <= at {
            return at;
        }
        self.earliest(on_grid)
    }

    /// Books, for `booker`, the earliest free slot at or after `from_us` (on the grid of the
    /// slots before it while others book too), and forgets the slots so far before `now_us`
    /// that no later booking can come near them.
    fn book(&mut self, booker: u32, from_us: i64, now_us: i64) -> i64 {
        self.bookers
            .retain(|(who, last)| *who != booker && now_us - *last < BOOKING_LATELY_US);
        let at = if self.bookers.is_empty() {
            self.earliest(from_us)
        } else {
            self.earliest_on_grid(from_us)
        };
        self.bookers.push((booker, now_us));
        self.booked.insert(at);
        let keep_from = now_us.saturating_sub(self.interval());
        if self.booked.first().is_some_and(|first| *first < keep_from) {
            self.booked = self.booked.split_off(&keep_from);
        }
        at
    }
}

/// How much faster than its rate a campaign's calls are made due: a quarter, so that the
/// dispatcher always finds the next call due when the pacer frees a slot, and the pacer, not
/// the due times, sets the pace.
pub const DUE_AHEAD: f64 = 1.25;

/// The latest [`due_offset`] puts a call after the moment its calls may first go: a week,
/// well inside the 90 days a call's item lives, whatever the rate and however many calls.
pub const MAX_DUE_SPREAD: Duration = Duration::from_secs(7 * 86_400);

/// When the `k`-th of a campaign's calls that may first go at the same moment is due, after
/// that moment: `k / (calls_per_second × DUE_AHEAD)`, at most [`MAX_DUE_SPREAD`] (a rate
/// that is not a positive number counts as the smallest there is). Due work is read in time order, so
/// spacing due times by each campaign's rate interleaves campaigns by when their calls can go:
/// a large campaign's calls do not all stand in front of those of a campaign started after it.
#[must_use]
pub fn due_offset(k: u32, calls_per_second: f64) -> Duration {
    let per_ms = calls_per_second.max(f64::MIN_POSITIVE) * DUE_AHEAD / 1000.0;
    // A float-to-integer `as` saturates: no rate can overflow it.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (f64::from(k) / per_ms) as u64;
    Duration::from_millis(ms).min(MAX_DUE_SPREAD)
}

/// Books the next event on every pacer at once: the earliest instant at or after `now` that
/// all of them allow and that `calendar` has free, recorded as taken on each. Returns how long
/// after `now` it is, so a dispatcher can prepare a dial ahead (claim it) and send it exactly
/// on its slot; the slots it books keep the same spacing as events taken one by one with
/// [`Pacer::take`]. `booker` names who books (a dispatch shard), for the calendar to know
/// when it is shared.
pub fn reserve(
    booker: u32,
    pacers: &mut [&mut Pacer],
    calendar: &mut Calendar,
    now: Timestamp,
) -> Duration {
    let now_us = now.as_millis().saturating_mul(1000);
    let from = pacers
        .iter()
        .map(|p| p.next_us(now_us))
        .max()
        .unwrap_or(now_us);
    let at = calendar.book(booker, from, now_us);
    for p in pacers.iter_mut() {
        p.last_us = Some(at);
    }
    Duration::from_micros(u64::try_from(at.saturating_sub(now_us)).unwrap_or(0))
}

/// The guard on the sends themselves: however late some dials go out (a busy machine wakes a
/// task late, and a late dial then goes out beside an on-time one), and however long a send
/// takes to reach the API, no second at the API holds more sends than the rate allows.
///
/// A send reaches the API no sooner than the quickest way there after it leaves, and no later
/// than the quickest way back before its answer comes back (it *lands*). So one more send may
/// leave a second after the send `rate` places before it, plus how much longer that one's
/// round trip took than the fastest seen (no quicker than the two quickest ways together): a
/// send whose way was slow holds the send `rate` places after it by as much. [`SEND_GUARD`]
/// is added for what no round trip shows (the clocks' resolution, a fastest trip slower than
/// the two quickest ways), and a send still out counts as late as [`MAX_SEND_GUARD`]: past
/// it the way is broken, not slow, and holding would cost the rate for nothing. So no second
/// at the API holds more than the rate while no send is more than 40 ms later than the
/// fastest. Times are microseconds on any monotonic clock the caller keeps; sends are named
/// by a number the caller gives, unique among the window's sends.
#[derive(Debug, Clone, PartialEq)]
pub struct SendWindow {
    capacity: usize,
    sent: std::collections::VecDeque<Sent>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sent {
    id: u64,
    at_us: u64,
    landed_us: Option<u64>,
}

/// Added to every send's lateness: what the round trips cannot show.
pub const SEND_GUARD: Duration = Duration::from_millis(10);

/// The most a send holds the send `rate` places after it beyond a second: past it the way to
/// the API is broken, not slow, and the rate would suffer for nothing.
pub const MAX_SEND_GUARD: Duration = Duration::from_millis(50);

fn capacity(rate: f64) -> usize {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = rate.max(0.0).floor() as usize;
    whole.max(1)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl SendWindow {
    /// A window allowing `rate` sends a second (its whole part, at least one).
    #[must_use]
    pub fn new(rate: f64) -> Self {
        Self {
            capacity: capacity(rate),
            sent: std::collections::VecDeque::new(),
        }
    }

    pub fn set_rate(&mut self, rate: f64) {
        self.capacity = capacity(rate);
    }

    /// How long after `now_us` one more send keeps every second at the API within the rate
    /// (zero: at once), given the `fastest` round trip seen (see [`SendWindow`] for the
    /// delays this covers).
    #[must_use]
    pub fn ready_in(&self, now_us: u64, fastest: Duration) -> Duration {
        if self.sent.len() < self.capacity {
            return Duration::ZERO;
        }
        let oldest = self.sent[self.sent.len() - self.capacity];
        let took = oldest
            .landed_us
            .unwrap_or(u64::MAX)
            .saturating_sub(oldest.at_us);
        let late = took.saturating_sub(micros(fastest));
        let guard = late
            .saturating_add(micros(SEND_GUARD))
            .min(micros(MAX_SEND_GUARD));
        let ready = oldest.at_us.saturating_add(1_000_000 + guard);
        Duration::from_micros(ready.saturating_sub(now_us))
    }

    /// Records send `id` leaving at `now_us`; call it only when [`SendWindow::ready_in`] says
    /// zero.
    pub fn record(&mut self, id: u64, now_us: u64) {
        self.sent.push_back(Sent {
            id,
            at_us: now_us,
            landed_us: None,
        });
        while self.sent.len() > self.capacity {
            self.sent.pop_front();
        }
    }

    /// Send `id`'s answer came back (or it never left) at `now_us`. A send the window no longer
    /// holds is past mattering.
    pub fn landed(&mut self, id: u64, now_us: u64) {
        if let Some(sent) = self.sent.iter_mut().rev().find(|s| s.id == id) {
            sent.landed_us = Some(now_us.max(sent.at_us));
        }
    }
}

/// The fastest round trip of the way to the API seen so far, from a send's leave to its answer:
/// what no send's way there and back beats, so a send that took longer was late by the
/// difference. It never forgets: a way grown slower only makes the windows hold longer, and a
/// faster one shows at once. Any answer counts: one the API gives quickly (a 429) makes the
/// others look later than they were, which holds sends longer, never shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fastest(Option<Duration>);

impl Fastest {
    /// Records one send's round trip.
    pub fn record(&mut self, round_trip: Duration) {
        self.0 = Some(self.0.map_or(round_trip, |f| f.min(round_trip)));
    }

    /// The fastest round trip seen (zero before any: every send then counts as late as its
    /// whole round trip).
    #[must_use]
    pub fn get(&self) -> Duration {
        self.0.unwrap_or(Duration::ZERO)
    }
}

/// A rate that halves on throttling and climbs back additively (AIMD), never above its target
/// nor below a 32nd of it: a long storm of 429s slows dialing, it does not stop it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveRate {
    target: f64,
    current: f64,
    /// Added per quiet second.
    step: f64,
    last_change: Timestamp,
}

impl AdaptiveRate {
    /// Starts at `target`; after a throttle it climbs back by `target / 10` per quiet second.
    #[must_use]
    pub fn new(target: f64, now: Timestamp) -> Self {
        let target = target.max(MIN_RATE);
        Self {
            target,
            current: target,
            step: (target / 10.0).max(MIN_RATE),
            last_change: now,
        }
    }

    #[must_use]
    pub fn current(&self) -> f64 {
        self.current
    }

    /// The API throttled a dial: halve the rate, at most once per second (one burst of 429s
    /// is one signal).
    pub fn throttled(&mut self, now: Timestamp) {
        if now.since(self.last_change) >= Duration::from_secs(1) || self.current >= self.target {
            self.current = (self.current / 2.0).max(self.floor());
            self.last_change = now;
        }
    }

    fn floor(&self) -> f64 {
        (self.target / 32.0).max(MIN_RATE)
    }

    /// Time passed without throttling: climb back one step per whole quiet second.
    pub fn recover(&mut self, now: Timestamp) {
        let quiet = now.since(self.last_change).as_secs();
        if quiet >= 1 && self.current < self.target {
            #[allow(clippy::cast_precision_loss)]
            let climbed = self.current + self.step * quiet as f64;
            self.current = climbed.min(self.target);
            self.last_change = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_offsets_run_a_quarter_ahead_of_the_rate_and_never_past_a_week() {
        assert_eq!(due_offset(0, 10.0), Duration::ZERO);
        assert_eq!(due_offset(1, 10.0), Duration::from_millis(80));
        assert_eq!(due_offset(100, 10.0), Duration::from_secs(8));
        assert_eq!(due_offset(100_000, 100.0), Duration::from_secs(800));
        assert_eq!(due_offset(5, f64::NAN), MAX_DUE_SPREAD);
        assert_eq!(due_offset(u32::MAX, 0.0), MAX_DUE_SPREAD);
        assert_eq!(
            due_offset(u32::MAX, 0.01),
            MAX_DUE_SPREAD,
            "a week at the most"
        );
    }
    use proptest::prelude::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_pacer_spaces_events_evenly() {
        let mut p = Pacer::new(10.0);
        assert!(p.take(at(0)).is_ok());
        assert_eq!(p.take(at(50)), Err(Duration::from_micros(51_000)));
        assert!(p.take(at(100)).is_err());
        assert!(p.take(at(102)).is_ok());
    }

    #[test]
    fn a_late_event_earns_no_burst() {
        let mut p = Pacer::new(10.0);
        assert!(p.take(at(0)).is_ok());
        assert!(p.take(at(5_000)).is_ok());
        assert!(p.take(at(5_001)).is_err());
    }

    #[test]
    fn a_faster_rate_applies_from_the_last_event() {
        let mut p = Pacer::new(0.1);
        assert!(p.take(at(0)).is_ok());
        assert!(p.take(at(500)).is_err());
        p.set_rate(10.0);
        assert!(p.take(at(500)).is_ok());
    }

    #[test]
    fn a_storm_slows_the_rate_to_a_floor_not_to_a_stop() {
        let mut r = AdaptiveRate::new(64.0, at(0));
        for s in 0..60 {
            r.throttled(at(s * 1_000));
        }
        assert!((r.current() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn throttling_halves_the_rate_once_per_burst_and_quiet_seconds_restore_it() {
        let mut r = AdaptiveRate::new(100.0, at(0));
        r.throttled(at(10));
        r.throttled(at(20));
        assert!((r.current() - 50.0).abs() < 1e-9);
        r.throttled(at(1_100));
        assert!((r.current() - 25.0).abs() < 1e-9);
        r.recover(at(3_100));
        assert!((r.current() - 45.0).abs() < 1e-9);
        r.recover(at(60_000));
        assert!((r.current() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn reserved_slots_are_spaced_like_taken_events_across_pacers() {
        let mut campaign = Calendar::new(10.0);
        let mut account = Pacer::new(20.0);
        let waits: Vec<Duration> = (0..3)
            .map(|_| reserve(0, &mut [&mut account], &mut campaign, at(0)))
            .collect();
        assert_eq!(
            waits,
            [
                Duration::ZERO,
                Duration::from_micros(101_000),
                Duration::from_micros(202_000)
            ]
        );
        // The account pacer saw the slots too: nothing else fits before the last one.
        assert_eq!(account.ready_in(at(202)), Duration::from_micros(50_500));
    }

    #[test]
    fn a_calendar_that_follows_another_books_one_interval_after_its_last_event() {
        let mut handing = Calendar::new(10.0);
        let slots: Vec<Duration> = (0..3)
            .map(|_| reserve(0, &mut [], &mut handing, at(0)))
            .collect();
        assert_eq!(slots[2], Duration::from_micros(202_000));
        let last = handing.last_us().unwrap();
        // A fresh calendar, as the next dispatcher has, books after the last slot handed
        // over, not in the gaps before it (which it cannot see)...
        let mut taking = Calendar::new(10.0);
        taking.follow(last);
        assert_eq!(taking.ready_in(at(0)), Duration::from_micros(303_000));
        assert_eq!(
            reserve(0, &mut [], &mut taking, at(100)),
            Duration::from_micros(203_000)
        );
        // ...and one that booked later itself keeps its own.
        let before = taking.last_us();
        taking.follow(last);
        assert_eq!(taking.last_us(), before);
    }

    #[test]
    fn a_calendar_fills_a_gap_before_a_slot_booked_ahead() {
        let mut c = Calendar::new(10.0);
        let mut book = |from_ms: i64| c.book(0, from_ms * 1000, 0) / 1000;
        assert_eq!(book(300), 300);
        // Before it: free, as long as an interval (101 ms) stays on either side.
        assert_eq!(book(0), 0);
        assert_eq!(book(0), 101);
        // 202 ms would be 98 ms from the slot at 300: the next free one is after it.
        assert_eq!(book(0), 401);
        assert_eq!(book(150), 502);
    }

    #[test]
    fn a_calendar_forgets_slots_no_later_booking_can_come_near() {
        let mut c = Calendar::new(10.0);
        for k in 0..100 {
            c.book(0, k * 101_000, k * 101_000);
        }
        // Only the slots within an interval before the last booking's "now" are kept.
        assert!(c.booked.len() <= 2, "{:?}", c.booked);
        assert_eq!(c.last_us(), Some(99 * 101_000));
    }

    #[test]
    fn shards_booking_ahead_share_a_campaign_at_its_full_rate() {
        // The account's rate split over shards, one campaign: each shard books every slot it
        // has within 200 ms ahead, one shard after the other, as the dispatchers' loops do on
        // their own. 10 s of slots, on virtual time; each case books at least 98% of the
        // campaign's rate (1% under it is the pacers' margin). Among them, rates whose
        // intervals do not divide evenly (60 a second over two shards: with the calendar's
        // interval rounded up, each gap a shard left was a microsecond too narrow for the
        // other's slot, and it booked 82%), and campaigns faster than one shard's share but
        // slower than two shards' (60 over two shards of 50, 150 over two of 100: with no
        // common grid, a shard's own slots came closer than two intervals and no other
        // shard's fitted between them, 93% and 75%).
        for (account, shards, rate) in [
            (100.0, 2, 100.0),
            (60.0, 2, 60.0),
            (50.0, 2, 50.0),
            (90.0, 3, 90.0),
            (100.0, 4, 70.0),
            (100.0, 4, 40.0),
            (7.0, 2, 7.0),
            (5.0, 4, 4.0),
            (100.0, 2, 60.0),
            (200.0, 2, 150.0),
        ] {
            let mut campaign = Calendar::new(rate);
            let mut pacers: Vec<Pacer> = (0..shards)
                .map(|_| Pacer::new(account / f64::from(shards)))
                .collect();
            let mut slots = Vec::new();
            for now_ms in (0..10_000).step_by(50) {
                for (booker, shard) in (0..).zip(&mut pacers) {
                    while shard.ready_in(at(now_ms)) <= Duration::from_millis(200) {
                        let wait = reserve(booker, &mut [shard], &mut campaign, at(now_ms));
                        slots.push(
                            at(now_ms).as_millis() * 1000
                                + i64::try_from(wait.as_micros()).unwrap(),
                        );
                    }
                }
            }
            slots.sort_unstable();
            let case = format!("{shards} shards of {account}/s, a campaign at {rate}/s");
            let in_ten_seconds = slots.iter().filter(|&&s| s < 10_000_000).count();
            #[allow(clippy::cast_precision_loss)]
            let share = in_ten_seconds as f64 / (10.0 * rate);
            assert!(share >= 0.98, "{case}: {in_ten_seconds} slots in 10 s");
            let closest = slots.windows(2).map(|w| w[1] - w[0]).min().unwrap();
            #[allow(clippy::cast_possible_truncation)]
            let least = (1_000_000.0 / rate) as i64;
            assert!(closest > least, "{case}: two slots {closest} us apart");
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let per_second = rate as usize;
            for w in slots.windows(per_second + 1) {
                assert!(
                    w[per_second] - w[0] >= 1_000_000,
                    "{case}: {} slots within one second",
                    per_second + 1
                );
            }
        }
    }

    #[test]
    fn a_shard_booking_alone_keeps_its_own_rate_and_gets_it_back_when_the_other_stops() {
        // Two shards of 50 a second, a campaign at 60. Both book for the first 2 s, then only
        // the first: once the second has not booked for 2 s, the first books at its own rate
        // again rather than keep a slot free between its own for a shard that has gone.
        let mut campaign = Calendar::new(60.0);
        let mut pacers = [Pacer::new(50.0), Pacer::new(50.0)];
        let mut first = Vec::new();
        for now_ms in (0..12_000).step_by(50) {
            for (booker, shard) in (0..).zip(&mut pacers) {
                if booker == 1 && now_ms >= 2_000 {
                    continue;
                }
                while shard.ready_in(at(now_ms)) <= Duration::from_millis(200) {
                    let wait = reserve(booker, &mut [shard], &mut campaign, at(now_ms));
                    if booker == 0 {
                        first.push(now_ms * 1000 + i64::try_from(wait.as_micros()).unwrap());
                    }
                }
            }
        }
        let between = |from_s: i64, to_s: i64| {
            first
                .iter()
                .filter(|&&s| (from_s * 1_000_000..to_s * 1_000_000).contains(&s))
                .count()
        };
        // Sharing (after the first 200 ms, which the first booked alone), each shard takes
        // every other slot of the campaign's 60.
        assert!((29..=31).contains(&between(1, 2)), "{}", between(1, 2));
        // Alone from 4.2 s on: its own 50 (49.5 with the margin).
        assert_eq!(between(5, 12), 346);
    }

    const QUICK: Duration = Duration::from_micros(500);

    #[test]
    fn a_send_window_holds_a_late_send_that_would_crowd_a_second() {
        let mut w = SendWindow::new(2.0);
        w.record(1, 0);
        w.landed(1, 500);
        w.record(2, 600_000);
        w.landed(2, 600_500);
        // A third send at 0.9 s would put three in one second: it waits for a second and the
        // guard after the first.
        assert_eq!(w.ready_in(900_000, QUICK), Duration::from_micros(110_000));
        assert_eq!(w.ready_in(1_010_000, QUICK), Duration::ZERO);
        w.record(3, 1_010_000);
        assert_eq!(w.ready_in(1_100_000, QUICK), Duration::from_micros(510_000));
    }

    #[test]
    fn a_send_whose_way_was_slow_holds_the_one_a_second_after_it_by_as_much() {
        let mut w = SendWindow::new(2.0);
        // The first send's answer took 17.5 ms where the fastest took 0.5: it may have reached
        // the API 17 ms after it left, so the send a second after it waits 17 ms more.
        w.record(1, 0);
        w.landed(1, 17_500);
        w.record(2, 600_000);
        w.landed(2, 600_500);
        assert_eq!(w.ready_in(900_000, QUICK), Duration::from_micros(127_000));
        // A send still out counts as late as the cap allows.
        let mut w = SendWindow::new(1.0);
        w.record(1, 0);
        assert_eq!(w.ready_in(900_000, QUICK), Duration::from_micros(150_000));
        // And however slow, never more than the cap.
        w.landed(1, 400_000);
        assert_eq!(w.ready_in(900_000, QUICK), Duration::from_micros(150_000));
        // Before any round trip is known, a send is as late as its whole round trip.
        let mut w = SendWindow::new(1.0);
        w.record(1, 0);
        w.landed(1, 3_000);
        assert_eq!(
            w.ready_in(900_000, Fastest::default().get()),
            Duration::from_micros(113_000)
        );
    }

    #[test]
    fn the_fastest_round_trip_is_the_least_seen() {
        let mut f = Fastest::default();
        assert_eq!(f.get(), Duration::ZERO);
        for ms in [7, 3, 9, 4] {
            f.record(Duration::from_millis(ms));
        }
        assert_eq!(f.get(), Duration::from_millis(3));
    }

    proptest! {
        /// Whatever the rate, however bunched the tries and however unevenly each send's way
        /// there and back takes (up to 40 ms more than the quickest way there, where the cap
        /// does not bind), no second at the API holds more sends than the rate; and no send is
        /// held past a second after the send `rate` places before it plus the guard that one's
        /// own round trip sets. The way's fastest round trip is its minimum both ways, as the
        /// first send of a quiet process sees.
        #[test]
        fn no_second_at_the_api_holds_more_sends_than_the_rate(
            rate in 1u32..120,
            tries in proptest::collection::vec(
                (0u64..30_000, 0u64..40_000, 0u64..1_000), 1..800),
        ) {
            const THERE: u64 = 400;
            const BACK: u64 = 300;
            let rate_n = rate as usize;
            let mut w = SendWindow::new(f64::from(rate));
            let mut fastest = Fastest::default();
            let mut now = 0u64;
            let mut out: Vec<(u64, u64, u64)> = Vec::new();
            let (mut left, mut took, mut arrivals): (Vec<u64>, Vec<u64>, Vec<u64>) =
                (Vec::new(), Vec::new(), Vec::new());
            for (id, (gap, there, back)) in (0u64..).zip(tries) {
                // The first send goes the quickest way.
                let (there, back) = if id == 0 { (0, 0) } else { (there, back) };
                now += gap;
                let tried = now;
                loop {
                    out.retain(|&(id, left, landed)| {
                        if landed > now {
                            return true;
                        }
                        w.landed(id, landed);
                        fastest.record(Duration::from_micros(landed - left));
                        false
                    });
                    let wait = w.ready_in(now, fastest.get());
                    if wait.is_zero() {
                        break;
                    }
                    // Wait no longer than the next answer, which may shorten the wait.
                    let next = out.iter().map(|&(_, _, l)| l).min().unwrap_or(u64::MAX);
                    now = (now + u64::try_from(wait.as_micros()).unwrap()).min(next.max(now + 1));
                }
                let i = left.len();
                if i >= rate_n {
                    let (at, trip) = (left[i - rate_n], took[i - rate_n]);
                    let latest = at + 1_000_000 + (10_000 + trip).min(50_000);
                    prop_assert!(now <= tried.max(latest), "send {i} held to {now}, past {latest}");
                }
                w.record(id, now);
                let trip = THERE + there + BACK + back;
                out.push((id, now, now + trip));
                left.push(now);
                took.push(trip);
                arrivals.push(now + THERE + there);
            }
            arrivals.sort_unstable();
            for (i, start) in arrivals.iter().enumerate() {
                let inside = arrivals[i..].iter().take_while(|t| **t < start + 1_000_000).count();
                prop_assert!(inside <= rate_n, "{inside} arrivals in one second at rate {rate}");
            }
        }
    }

    proptest! {
        /// Whatever the rate and however irregularly the dispatcher asks, no window of one
        /// second holds more than `rate` events.
        #[test]
        fn no_second_holds_more_events_than_the_rate(
            rate in 1u32..200,
            asks in proptest::collection::vec(0i64..40, 1..600),
        ) {
            let mut p = Pacer::new(f64::from(rate));
            let mut now = 0i64;
            let mut taken = Vec::new();
            for gap in asks {
                now += gap;
                if p.take(at(now)).is_ok() {
                    taken.push(now);
                }
            }
            for (i, start) in taken.iter().enumerate() {
                let in_window = taken[i..].iter().take_while(|t| **t < start + 1000).count();
                prop_assert!(in_window <= rate as usize, "{in_window} events in one second at rate {rate}");
            }
        }
    }
}
