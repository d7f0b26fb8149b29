//! A dispatcher's run over one shard: it takes the shard's lease, ticks until its time is
//! up (renewing the lease), and hands the lease back once every claimed dial is settled, all
//! within [`TAIL`] of its end.

use std::time::Duration;

use outdial_core::ports::{Dialer, DispatchStore, StoreError};
use outdial_core::time::Timestamp;
use tracing::{info, warn};

use crate::dispatcher::Dispatcher;
use crate::invoke::TAIL;

/// How long a dispatcher's lease on its shard lasts; it renews it well before.
pub const LEASE: Duration = Duration::from_secs(20);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a run waiting for a shard's lease asks again.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// How long a dispatcher with nothing to do waits before looking again.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// What a run of [`Dispatcher::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    pub ticks: u32,
    pub started: u32,
    /// The latest any due entry was found, over the run.
    pub max_overdue: Duration,
}

impl<S, D> Dispatcher<S, D>
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    /// Dispatches `shard` until `until`, holding its lease so that one dispatcher runs per
    /// shard; returns what it did, or `None` when another dispatcher held the lease for
    /// `lease_wait` (a scheduled run waits a little for the previous one to hand over; a run
    /// started on demand does not wait, since the holder will see the new work anyway).
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
        let mut now = clock.now();
        let give_up = now.plus(lease_wait);
        while !self
            .shared
            .store
            .lease(shard, owner, now, now.plus(LEASE))
            .await?
        {
            if now >= give_up || now.plus(self.shared.settings.horizon) >= until {
                info!(shard, "another dispatcher holds the shard");
                return Ok(None);
            }
            clock.sleep(LEASE_POLL).await;
            now = clock.now();
        }
        let mut renewed = now;
        let mut run = Run::default();
        let result = loop {
            // Dials are prepared up to a horizon ahead: stop starting new ones early enough
            // that every one has been sent by `until`.
            if now.plus(self.shared.settings.horizon) >= until {
                break Ok(());
            }
            if now.since(renewed) >= RENEW_EVERY {
                match self
                    .shared
                    .store
                    .lease(shard, owner, now, now.plus(LEASE))
                    .await
                {
                    Ok(true) => renewed = now,
                    Ok(false) => {
                        warn!(shard, "lease lost to another dispatcher; stopping");
                        break Ok(());
                    }
                    Err(e) => break Err(e),
                }
            }
            let tick = match self.tick(shard).await {
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
            clock.sleep(pause.min(until.since(now))).await;
            now = clock.now();
        };
        // Every claimed dial is sent (or given back) before the lease goes, within TAIL of
        // `until`: whatever the Voice API and the table do, the invocation ends inside its
        // Lambda timeout. A dial still waiting for its answer then goes on without this run
        // (its watchdog decides what became of it), and a lease not given back runs out.
        let tail_end = until.plus(TAIL);
        let within = |at: Timestamp| clock.sleep(at.since(clock.now()));
        tokio::select! {
            () = self.settle() => {}
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
