//! The simulator's time: scaled wall time, or virtual time that moves only when every call
//! is waiting on it.
//!
//! In [`SimTime::Scaled`](super::SimTime::Scaled) a simulated duration is slept in real time
//! times `speed`, and [`ScaledClock`] reads the start plus the real time elapsed divided by
//! `speed`. In [`SimTime::Virtual`](super::SimTime::Virtual) every call task is a participant
//! of a [`VirtualClock`]: it is awake while it runs or waits for the handler, and parked while
//! it waits on the clock. When no participant is awake the clock jumps to the earliest
//! deadline that any of them (or an outside sleep on the clock) waits for, and wakes those
//! whose deadline it reached.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use outdial_core::time::{Clock, Sleep, Timestamp};
use tokio::sync::mpsc;

/// Simulated time at `speed` real seconds per simulated second: the start, plus the real time
/// elapsed since divided by `speed` (a `speed` that is not above zero reads as 1).
#[derive(Debug)]
pub struct ScaledClock {
    origin: Timestamp,
    started: Instant,
    speed: f64,
}

impl ScaledClock {
    #[must_use]
    pub fn new(origin: Timestamp, started: Instant, speed: f64) -> Self {
        let speed = if speed > 0.0 && speed.is_finite() {
            speed
        } else {
            1.0
        };
        Self {
            origin,
            started,
            speed,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        self.origin.plus(self.elapsed())
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed().div_f64(self.speed)
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d.mul_f64(self.speed)))
    }
}

/// The wall time now, for a clock's origin.
#[must_use]
pub fn wall_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(ms)
}

/// Virtual time: see the module's documentation. Cloning shares the clock.
#[derive(Debug, Clone)]
pub struct VirtualClock(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    origin: Timestamp,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Milliseconds since the origin.
    now_ms: u64,
    next_id: u64,
    /// Each participant: awake (`None`), or parked until a deadline with who to wake.
    participants: BTreeMap<u64, Option<(u64, Waker)>>,
    /// Sleeps on the clock from outside the calls (through [`Clock::sleep`]).
    outside: BTreeMap<u64, (u64, Waker)>,
    /// Outside sleeps the clock reached whose task has not yet taken the wake: the clock
    /// waits for them as for awake participants.
    outside_due: BTreeSet<u64>,
}

impl State {
    /// Moves the clock when nothing is awake: to the earliest deadline waited for, waking
    /// every wait it reaches. Returns who to wake (outside the lock).
    fn settle(&mut self) -> Vec<Waker> {
        if !self.outside_due.is_empty() || self.participants.values().any(Option::is_none) {
            return Vec::new();
        }
        let parked = self.participants.values().flatten().map(|(at, _)| *at);
        let outside = self.outside.values().map(|(at, _)| *at);
        let Some(next) = parked.chain(outside).min() else {
            return Vec::new();
        };
        self.now_ms = self.now_ms.max(next);
        let now = self.now_ms;
        let mut wake = Vec::new();
        for slot in self.participants.values_mut() {
            if slot.as_ref().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, waker)) = slot.take() {
                    wake.push(waker);
                }
            }
        }
        let due: Vec<u64> = self
            .outside
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some((_, waker)) = self.outside.remove(&id) {
                self.outside_due.insert(id);
                wake.push(waker);
            }
        }
        wake
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn wake_all(wakers: Vec<Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

impl VirtualClock {
    /// A clock at `origin` with nothing waiting.
    #[must_use]
    pub fn new(origin: Timestamp) -> Self {
        Self(Arc::new(Shared {
            origin,
            state: Mutex::new(State::default()),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds since the origin.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.state().now_ms
    }

    /// A new participant, awake: the clock does not move until it parks or leaves. Join
    /// before the task that will use it is spawned, so that the clock cannot move in between.
    #[must_use]
    pub fn join(&self) -> Participant {
        let id = {
            let mut state = self.state();
            let id = state.id();
            state.participants.insert(id, None);
            id
        };
        Participant {
            clock: self.clone(),
            id,
        }
    }

    /// Runs `send` (a send on a participant's channel) and wakes the participant if it is
    /// parked, both under the clock's lock, so that the clock never moves between a message
    /// and its receiver's waking.
    pub fn deliver<T>(&self, id: u64, send: impl FnOnce() -> T) -> T {
        let (sent, waker) = {
            let mut state = self.state();
            let sent = send();
            let waker = state
                .participants
                .get_mut(&id)
                .and_then(Option::take)
                .map(|(_, w)| w);
            (sent, waker)
        };
        if let Some(w) = waker {
            w.wake();
        }
        sent
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        self.0
            .origin
            .plus(Duration::from_millis(self.state().now_ms))
    }

    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.state().now_ms)
    }

    fn sleep(&self, d: Duration) -> Sleep {
        let ms = u64::try_from(d.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX);
        let at = self.now_ms().saturating_add(ms);
        Box::pin(OutsideSleep {
            clock: self.clone(),
            at,
            id: None,
        })
    }
}

/// A sleep on a [`VirtualClock`] from outside the calls: it counts as a deadline to move to,
/// and once reached, as awake until its task takes the wake.
struct OutsideSleep {
    clock: VirtualClock,
    at: u64,
    id: Option<u64>,
}

impl Future for OutsideSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let clock = self.clock.clone();
        let mut state = clock.state();
        if let Some(id) = self.id {
            if state.outside_due.remove(&id) {
                self.id = None;
                let wake = state.settle();
                drop(state);
                wake_all(wake);
                return Poll::Ready(());
            }
        }
        if state.now_ms >= self.at {
            if let Some(id) = self.id.take() {
                state.outside.remove(&id);
            }
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = state.id();
                self.id = Some(id);
                id
            }
        };
        state.outside.insert(id, (self.at, cx.waker().clone()));
        let wake = state.settle();
        drop(state);
        wake_all(wake);
        Poll::Pending
    }
}

impl Drop for OutsideSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let mut state = self.clock.state();
            state.outside.remove(&id);
            let wake = if state.outside_due.remove(&id) {
                state.settle()
            } else {
                Vec::new()
            };
            drop(state);
            wake_all(wake);
        }
    }
}

/// A call task (or another task of the simulator) on a [`VirtualClock`]: awake from
/// [`VirtualClock::join`] until it leaves (on drop), except while it waits on the clock.
#[derive(Debug)]
pub struct Participant {
    clock: VirtualClock,
    id: u64,
}

/// How a wait that races a channel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Raced<T> {
    /// The deadline came.
    Elapsed,
    /// A message came first.
    Message(T),
    /// The channel is closed.
    Closed,
}

impl Participant {
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    #[must_use]
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Waits `ms` of virtual time.
    pub async fn sleep(&self, ms: u64) {
        let at = self.clock.now_ms().saturating_add(ms);
        self.sleep_until(at).await;
    }

    /// Waits until the clock reads `at` (milliseconds since its origin).
    pub async fn sleep_until(&self, at: u64) {
        Park {
            participant: self,
            at,
            parked: false,
        }
        .await;
    }

    /// Waits until the clock reads `at`, or until a message arrives on `rx` (sent through
    /// [`VirtualClock::deliver`] with this participant's id), whichever comes first.
    pub async fn sleep_until_or_recv<T>(
        &self,
        at: u64,
        rx: &mut mpsc::UnboundedReceiver<T>,
    ) -> Raced<T> {
        ParkOrRecv {
            participant: self,
            at,
            rx,
            parked: false,
        }
        .await
    }

    /// Parks until `at` unless it has come; returns whether it has. Called under the lock.
    fn park(&self, state: &mut State, at: u64, waker: &Waker) -> (bool, Vec<Waker>) {
        if state.now_ms >= at {
            state.participants.insert(self.id, None);
            return (true, Vec::new());
        }
        state
            .participants
            .insert(self.id, Some((at, waker.clone())));
        let wake = state.settle();
        if state.now_ms >= at {
            state.participants.insert(self.id, None);
            return (true, wake);
        }
        (false, wake)
    }

    /// Awake again (a wait given up before its deadline).
    fn unpark(&self) {
        let mut state = self.clock.state();
        if let Some(slot) = state.participants.get_mut(&self.id) {
            *slot = None;
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        let mut state = self.clock.state();
        state.participants.remove(&self.id);
        let wake = state.settle();
        drop(state);
        wake_all(wake);
    }
}

struct Park<'a> {
    participant: &'a Participant,
    at: u64,
    parked: bool,
}

impl Future for Park<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.participant.clock.state();
        let (due, wake) = self.participant.park(&mut state, self.at, cx.waker());
        drop(state);
        wake_all(wake);
        self.parked = !due;
        if due { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Drop for Park<'_> {
    fn drop(&mut self) {
        if self.parked {
            self.participant.unpark();
        }
    }
}

struct ParkOrRecv<'a, 'r, T> {
    participant: &'a Participant,
    at: u64,
    rx: &'r mut mpsc::UnboundedReceiver<T>,
    parked: bool,
}

impl<T> Future for ParkOrRecv<'_, '_, T> {
    type Output = Raced<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Raced<T>> {
        let this = &mut *self;
        let mut state = this.participant.clock.state();
        // Under the lock: a message delivered through `deliver` is either seen here or wakes
        // the parked participant.
        let received = match this.rx.try_recv() {
            Ok(message) => Some(Raced::Message(message)),
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Raced::Closed),
            Err(mpsc::error::TryRecvError::Empty) => None,
        };
        if let Some(raced) = received {
            state.participants.insert(this.participant.id, None);
            this.parked = false;
            return Poll::Ready(raced);
        }
        let (due, wake) = this.participant.park(&mut state, this.at, cx.waker());
        drop(state);
        wake_all(wake);
        this.parked = !due;
        if due {
            Poll::Ready(Raced::Elapsed)
        } else {
            Poll::Pending
        }
    }
}

impl<T> Drop for ParkOrRecv<'_, '_, T> {
    fn drop(&mut self) {
        if self.parked {
            self.participant.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn the_clock_moves_only_when_every_participant_waits() {
        let clock = VirtualClock::new(Timestamp::from_millis(1_000));
        let a = clock.join();
        let b = clock.join();
        let c2 = clock.clone();
        let slow = tokio::spawn(async move {
            // Awake for real time: the clock must not move meanwhile.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(c2.now_ms(), 0, "b is awake");
            b.sleep(300).await;
            c2.now_ms()
        });
        a.sleep(1_000).await;
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(slow.await.unwrap(), 300);
        assert_eq!(clock.now(), Timestamp::from_millis(2_000));
    }

    #[tokio::test]
    async fn a_message_ends_a_wait_and_the_clock_waits_for_its_receiver() {
        let clock = VirtualClock::new(Timestamp::EPOCH);
        let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
        let p = clock.join();
        let id = p.id();
        // A second participant keeps the clock from moving until the message is sent.
        let holder = clock.join();
        let c2 = clock.clone();
        let waiter = tokio::spawn(async move {
            let raced = p.sleep_until_or_recv(5_000, &mut rx).await;
            let at = c2.now_ms();
            (raced, at)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        clock.deliver(id, || tx.send(7).unwrap());
        let (raced, at) = waiter.await.unwrap();
        assert_eq!(raced, Raced::Message(7));
        assert_eq!(at, 0, "the message came before any time passed");
        drop(holder);
    }

    #[tokio::test]
    async fn an_outside_sleep_moves_the_clock_when_no_call_is_awake() {
        let clock = VirtualClock::new(Timestamp::EPOCH);
        clock.sleep(Duration::from_secs(3)).await;
        assert_eq!(clock.now_ms(), 3_000);
        let p = clock.join();
        let c2 = clock.clone();
        let outside = tokio::spawn(async move { c2.sleep(Duration::from_secs(1)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(clock.now_ms(), 3_000, "a participant is awake");
        p.sleep(5_000).await;
        outside.await.unwrap();
        assert_eq!(clock.now_ms(), 8_000);
    }
}
