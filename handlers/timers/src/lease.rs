//! A dispatcher's run over one shard: it takes the shard's lease, ticks until its time is
//! up (renewing the lease), hands the shard over to the next run as it stops booking dials
//! (with where its pacers stood, so the rate goes on without a pause), and gives the lease
//! back once every dial it claimed is settled, all within [`TAIL`] of its end.

use std::sync::Arc;
use std::time::Duration;

use outdial_core::ports::{Dialer, DispatchStore, Lease, StoreError};
use outdial_core::time::Timestamp;
use tracing::{info, warn};

use crate::dispatcher::{Dispatcher, RunTasks};
use crate::invoke::TAIL;

/// How long a dispatcher's lease on its shard lasts; it renews it well before.
pub const LEASE: Duration = Duration::from_secs(20);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a run waiting for a shard's lease asks again when the holder has not said when
/// it hands the shard over.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// How often it asks once the holder's hand-over is due: the holder hands over as its last
/// tick ends, within a few of these.
const HANDOVER_POLL: Duration = Duration::from_millis(20);
/// How long past its announced hand-over a holder is still expected to hand over: after
/// that the waiting run asks as seldom as for a holder that never said.
const HANDOVER_LATE: Duration = Duration::from_secs(2);
/// How long a dispatcher with nothing to do waits before looking again.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// What a run of [`Dispatcher::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    pub ticks: u32,
    pub started: u32,
    /// The latest any due entry was found, over the run.
    pub max_overdue: Duration,
    /// Whether the run took the shard from a run that handed it over with its pacing marks.
    pub followed: bool,
}

impl<S, D> Dispatcher<S, D>
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    /// Dispatches `shard` until `until`, holding its lease so that one dispatcher books dials
    /// per shard; returns what it did, or `None` when the shard stayed another dispatcher's.
    ///
    /// A run says, as it takes the lease, that it hands the shard over one pacing horizon
    /// before `until`, when it stops booking dials: a run waiting for the shard then takes
    /// it with the pacers' marks and books on from the last slot, while this one sends what
    /// it booked. A scheduled run (`lease_wait` above zero) waits for a holder's hand-over
    /// when it comes before its own, or `lease_wait` for a holder that did not say; a run
    /// started on demand does not wait, since the holder sees the new work anyway.
    ///
    /// # Errors
    /// When the store cannot be reached; the lease then runs out and another dispatcher
    /// takes the shard over.
    pub async fn run(
        &self,
        shard: u32,
        owner: &str,
        until: Timestamp,
        lease_wait: Duration,
    ) -> Result<Option<Run>, StoreError> {
        let clock = &self.shared.clock;
        let horizon = self.shared.settings.horizon;
        // Dials are booked up to a horizon ahead: booking stops early enough that every one
        // has been sent by `until`, and the shard is handed over then.
        let hands_over_at = Timestamp::from_millis(
            until
                .as_millis()
                .saturating_sub(i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX)),
        );
        let mut now = clock.now();
        let mut run = Run::default();
        let started = now;
        loop {
            let lease = self
                .shared
                .store
                .lease(shard, owner, now, now.plus(LEASE), hands_over_at)
                .await?;
            match lease {
                Lease::Taken { from } => {
                    if let Some(marks) = from {
                        self.shared.follow(shard, &marks);
                        run.followed = true;
                    }
                    break;
                }
                Lease::Held {
                    hands_over_at: theirs,
                } => {
                    let Some(pause) =
                        wait_for_holder(now, started, lease_wait, theirs, hands_over_at)
                    else {
                        info!(shard, "another dispatcher holds the shard");
                        return Ok(None);
                    };
                    clock.sleep(pause).await;
                    now = clock.now();
                }
            }
        }
        let tasks = Arc::new(RunTasks::default());
        let mut renewed = now;
        let result = loop {
            if now >= hands_over_at {
                break Ok(());
            }
            if now.since(renewed) >= RENEW_EVERY {
                match self
                    .shared
                    .store
                    .lease(shard, owner, now, now.plus(LEASE), hands_over_at)
                    .await
                {
                    Ok(Lease::Taken { .. }) => renewed = now,
                    Ok(Lease::Held { .. }) => {
                        warn!(shard, "lease lost to another dispatcher; stopping");
                        break Ok(());
                    }
                    Err(e) => break Err(e),
                }
            }
            let tick = match self.tick_for(shard, Some(&tasks)).await {
                Ok(tick) => tick,
                Err(e) => break Err(e),
            };
            run.ticks += 1;
            run.started += tick.started;
            run.max_overdue = run.max_overdue.max(tick.overdue.unwrap_or_default());
            let pause = match tick.paced_for {
                Some(wait) => wait,
                None if tick.did_work() => Duration::ZERO,
                None => IDLE_POLL,
            };
            clock.sleep(pause.min(hands_over_at.since(now))).await;
            now = clock.now();
        };
        if result.is_ok() {
            // The next run may take the shard now, and books on from these marks.
            let marks = self.shared.marks(shard);
            if let Err(e) = self.shared.store.hand_over(shard, owner, &marks).await {
                warn!(shard, error = %e, "shard not handed over; the next run takes it once given back");
            }
        }
        // Every claimed dial is sent (or given back) before the lease goes, within TAIL of
        // `until`: whatever the Voice API and the table do, the invocation ends inside its
        // Lambda timeout. A dial still waiting for its answer then goes on without this run
        // (its watchdog decides what became of it), and a lease not given back runs out.
        let tail_end = until.plus(TAIL);
        let within = |at: Timestamp| clock.sleep(at.since(clock.now()));
        tokio::select! {
            () = tasks.settled() => {}
            () = within(tail_end) => warn!(shard, "dials still unanswered at the end of the run's tail; left to their watchdogs"),
        }
        result?;
        tokio::select! {
            given_back = self.shared.store.unlease(shard, owner) => given_back?,
            () = within(tail_end) => warn!(shard, "lease not given back within the run's tail; it runs out"),
        }
        info!(shard, started = run.started, "dispatch run finished");
        Ok(Some(run))
    }
}

/// How long a run that found the shard held (at `now`, having asked first at `started`)
/// waits before asking again; `None` when it stops waiting. A run that may wait
/// (`lease_wait` above zero) waits for a holder's announced hand-over (`theirs`) that comes
/// before its own (`ours`), asking often once it is due, and for a lease's length past it
/// when the holder is late; for a holder that did not say, `lease_wait` from its first try.
fn wait_for_holder(
    now: Timestamp,
    started: Timestamp,
    lease_wait: Duration,
    theirs: Option<Timestamp>,
    ours: Timestamp,
) -> Option<Duration> {
    if lease_wait.is_zero() || now >= ours {
        return None;
    }
    match theirs {
        Some(at) if at >= ours => None,
        Some(at) if now < at => Some(at.since(now)),
        Some(at) if now.since(at) < HANDOVER_LATE => Some(HANDOVER_POLL),
        // Late: perhaps it died, and its lease runs out within a lease's length.
        Some(at) => poll_until(now, at.plus(LEASE).min(ours)),
        None => poll_until(now, started.plus(lease_wait)),
    }
}

/// Asks every [`LEASE_POLL`] until `give_up`.
fn poll_until(now: Timestamp, give_up: Timestamp) -> Option<Duration> {
    (now < give_up).then(|| LEASE_POLL.min(give_up.since(now)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_run_started_on_demand_never_waits() {
        assert_eq!(
            wait_for_holder(at(0), at(0), Duration::ZERO, Some(at(1)), at(61)),
            None
        );
    }

    #[test]
    fn a_scheduled_run_waits_for_a_hand_over_before_its_own_then_asks_often() {
        // The holder hands over 61 s into its run; this one started at 60 and hands over at 121.
        assert_eq!(
            wait_for_holder(at(60), at(60), WAIT, Some(at(61)), at(121)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_for_holder(at(61), at(60), WAIT, Some(at(61)), at(121)),
            Some(HANDOVER_POLL)
        );
        // Even past its own lease wait: a holder started on demand hands over up to a run
        // after this one started.
        assert_eq!(
            wait_for_holder(at(20), at(1), WAIT, Some(at(50)), at(62)),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn a_holder_that_does_not_say_or_is_late_is_waited_for_lease_wait_at_most() {
        assert_eq!(
            wait_for_holder(at(60), at(60), WAIT, None, at(121)),
            Some(LEASE_POLL)
        );
        assert_eq!(wait_for_holder(at(70), at(60), WAIT, None, at(121)), None);
        // Late by more than HANDOVER_LATE: asked as seldom as one that never said, until
        // its lease would have run out.
        assert_eq!(
            wait_for_holder(at(64), at(60), WAIT, Some(at(61)), at(121)),
            Some(LEASE_POLL)
        );
        assert_eq!(
            wait_for_holder(at(81), at(60), WAIT, Some(at(61)), at(121)),
            None
        );
        // A holder handing over after this run would: not worth waiting for.
        assert_eq!(
            wait_for_holder(at(60), at(60), WAIT, Some(at(130)), at(121)),
            None
        );
    }
}
