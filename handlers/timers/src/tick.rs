//! One pass over a shard's due entries: the watch lane first (watchdogs and sweeps), then the
//! dial lane as far as pacing allows, each waiting call decided by
//! [`outdial_core::dispatch::for_waiting`] and, when it may go, booked on the pacers and
//! handed to a dial task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outdial_core::dispatch::{self, ForWaiting};
use outdial_core::ids::CampaignId;
use outdial_core::lifecycle::CallStatus;
use outdial_core::pacing::due_offset;
use outdial_core::ports::{Dialer, DispatchStore, Due, Lane, StoreError};
use outdial_core::record::{CallRecord, Campaign};
use outdial_core::time::Timestamp;
use tracing::warn;

use crate::dial::dial;
use crate::dispatcher::{Ahead, Dispatcher, RunTasks, counted, lock, read_live, take_slot};
use crate::settings::{Tick, bump};

/// How many reads of a shard one tick makes at most when everything it read was held back
/// (a campaign at its cap, a campaign still being written), so that held-back work does not
/// starve the work behind it.
const PAGES_PER_TICK: usize = 5;
/// How many reads of the watch lane one tick makes at most (a thousand entries at the
/// default batch): a larger pile is worked through over the next ticks.
const WATCH_PAGES_PER_TICK: usize = 10;

/// What a tick knows of a campaign it met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Met {
    /// Its `live` count was read this tick; its calls may go while it has free slots.
    Open,
    /// At its concurrency cap, or its own pacer is booked ahead: its other calls are passed
    /// over for the rest of the tick.
    PassedOver,
}

/// What the tick decided for one waiting call.
pub(crate) enum Next {
    /// Dial it (a task was started).
    Started,
    /// Leave it for now (campaign not visible yet, at its cap, the call already in flight).
    HeldBack,
    /// It was parked, cancelled or deferred.
    Settled,
    /// The account's pacing horizon is full: end the tick.
    Full(Duration),
    /// The campaign's own pacing horizon is full: leave its calls for a later tick, and go
    /// on to other campaigns' calls.
    Paced(Duration),
}

impl<S, D> Dispatcher<S, D>
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    /// One pass over the due entries of `shard`. Dials it starts run on after it returns;
    /// [`Dispatcher::settle`] waits for them.
    ///
    /// # Errors
    /// When the due index cannot be read; a failure on one entry is logged and the pass goes
    /// on.
    pub async fn tick(&self, shard: u32) -> Result<Tick, StoreError> {
        self.tick_for(shard, None).await
    }

    /// [`Dispatcher::tick`] for a run, which also counts the dial tasks it starts in `run`.
    pub(crate) async fn tick_for(
        &self,
        shard: u32,
        run: Option<&Arc<RunTasks>>,
    ) -> Result<Tick, StoreError> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let mut tick = Tick::default();
        {
            let mut pacing = lock(&shared.pacing);
            let share = pacing.shard(shard, shared.settings.account_cps, now);
            share.rate.recover(now);
            let rate = share.rate.current();
            share.pacer.set_rate(rate);
            share.sends.set_rate(rate);
        }
        // The campaigns this tick met.
        let mut met: HashMap<CampaignId, Met> = HashMap::new();

        // The watch lane first, all of what is due: watchdogs and sweeps never wait behind
        // paced dials.
        let mut after: Option<String> = None;
        for page in 0..WATCH_PAGES_PER_TICK {
            let read = shared
                .store
                .due(
                    shard,
                    Lane::Watch,
                    now,
                    shared.settings.batch,
                    after.as_deref(),
                )
                .await?;
            if page == 0 {
                tick.overdue = read.items.iter().find_map(|d| match d {
                    Due::Call(c) => c.due_at.map(|at| now.since(at)),
                    Due::Campaign { .. } => None,
                });
            }
            for due in read.items {
                if let Some(full) = self.entry(shard, due, now, &mut met, &mut tick, run).await {
                    tick.paced_for = Some(full);
                }
            }
            match read.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if tick.paced_for.is_some() {
            return Ok(tick);
        }

        // Then the dial lane, as far as pacing allows.
        let dial_lane = tick.clone();
        let mut after: Option<String> = None;
        for _ in 0..PAGES_PER_TICK {
            let read = shared
                .store
                .due(
                    shard,
                    Lane::Dial,
                    now,
                    shared.settings.batch,
                    after.as_deref(),
                )
                .await?;
            let before = tick.clone();
            for due in read.items {
                if let Some(full) = self.entry(shard, due, now, &mut met, &mut tick, run).await {
                    tick.paced_for = Some(full);
                    return Ok(tick);
                }
            }
            // Read further only past entries that were all held back (a campaign at its cap
            // or booked ahead at its own rate), so that they do not hold up other campaigns.
            match read.next {
                Some(next) if !tick.progressed_since(&before) => after = Some(next),
                _ => break,
            }
        }
        if !tick.progressed_since(&dial_lane) {
            // Nothing could go: the next tick has work once a campaign's rate frees a slot.
            tick.paced_for = tick.campaign_paced_for;
        }
        Ok(tick)
    }

    /// Handles one due entry; `Some(wait)` when the pacing horizon is full.
    pub(crate) async fn entry(
        &self,
        shard: u32,
        due: Due,
        now: Timestamp,
        met: &mut HashMap<CampaignId, Met>,
        tick: &mut Tick,
        run: Option<&Arc<RunTasks>>,
    ) -> Option<Duration> {
        match due {
            Due::Campaign { id, due_key } => {
                if let Err(e) = self.sweep(&id, &due_key).await {
                    warn!(campaign_id = %id, error = %e, "campaign sweep left for the next tick");
                }
                tick.swept += 1;
            }
            Due::Call(call)
                if matches!(call.status, CallStatus::Queued | CallStatus::RetryWait) =>
            {
                match self.waiting(shard, *call, now, met, run).await {
                    Ok(Next::Started) => tick.started += 1,
                    Ok(Next::Settled) => tick.settled += 1,
                    Ok(Next::HeldBack) => {}
                    Ok(Next::Full(wait)) => return Some(wait),
                    Ok(Next::Paced(wait)) => {
                        tick.paced_back += 1;
                        tick.campaign_paced_for =
                            Some(tick.campaign_paced_for.map_or(wait, |w| w.min(wait)));
                    }
                    Err(e) => warn!(error = %e, "due call left for the next tick"),
                }
            }
            Due::Call(call) if call.status.is_live() => {
                tick.watched += 1;
                if let Err(e) = self.watch(&call).await {
                    warn!(call_id = %call.id, error = %e, "watchdog left for the next tick");
                }
            }
            Due::Call(_) => {}
        }
        None
    }

    /// Decides what to do with a waiting call, and starts its dial when it is time.
    pub(crate) async fn waiting(
        &self,
        shard: u32,
        call: CallRecord,
        now: Timestamp,
        met: &mut HashMap<CampaignId, Met>,
        run: Option<&Arc<RunTasks>>,
    ) -> Result<Next, StoreError> {
        let shared = &self.shared;
        if lock(&shared.in_flight).contains(&call.id) {
            return Ok(Next::HeldBack);
        }
        let Some(campaign) = self.campaign(&call.campaign_id).await? else {
            return Ok(Next::HeldBack);
        };
        let account = shared.account().await?;
        let legal = shared.settings.legal_hours.then_some(&account.legal);
        let hours = dispatch::hours(legal, &campaign, &call, now);
        match dispatch::for_waiting(&campaign, hours, now) {
            ForWaiting::Park => {
                let parked = shared.store.park(&call.id, call.attempt, now).await;
                counted(parked, &shared.totals.parked)?;
                return Ok(Next::Settled);
            }
            ForWaiting::Cancel(reason) => {
                let cancelled = shared
                    .store
                    .cancel_waiting(&call.id, call.attempt, reason, now)
                    .await;
                counted(cancelled, &shared.totals.cancelled)?;
                return Ok(Next::Settled);
            }
            ForWaiting::Defer(opening, reason) => {
                let opening = spread(&shared.deferred, &campaign, opening);
                let deferred = shared
                    .store
                    .defer(&call.id, call.attempt, opening, reason, now)
                    .await;
                counted(deferred, &shared.totals.deferred)?;
                return Ok(Next::Settled);
            }
            ForWaiting::Dial => {}
        }
        match met.get(&campaign.id) {
            Some(Met::PassedOver) => return Ok(Next::HeldBack),
            Some(Met::Open) => {}
            None => {
                let live = shared.store.live(&campaign.id).await?;
                read_live(&shared.occupancies, &campaign.id, live);
                met.insert(campaign.id.clone(), Met::Open);
            }
        }
        if lock(&shared.in_flight).len() >= shared.settings.max_in_flight {
            return Ok(Next::Full(shared.settings.horizon / 4));
        }
        // A concurrency slot first: the dial tasks of every shard in this process count
        // against the same free slots.
        let Some(slot_claim) = take_slot(
            &shared.occupancies,
            &campaign.id,
            campaign.pacing.max_concurrent,
        ) else {
            bump(&shared.totals.cap_reached);
            met.insert(campaign.id.clone(), Met::PassedOver);
            return Ok(Next::HeldBack);
        };
        // Then the slot on both pacers; a slot beyond the horizon ends the tick (the pacers
        // keep no booking for it, and the concurrency slot is given back). The clock's
        // reading and the timer's are taken together, so every slot lands on the pacers'
        // grid whenever its task was spawned.
        let slot = match shared.book(shard, &campaign, Some(shared.settings.horizon)) {
            Ok(slot) => slot,
            Err(Ahead::Account(ahead)) => {
                return Ok(Next::Full(
                    ahead.saturating_sub(shared.settings.horizon / 2),
                ));
            }
            Err(Ahead::Campaign(ahead)) => {
                // No more of this campaign's calls this tick: the ones behind this are
                // passed over without asking the pacers again.
                met.insert(campaign.id.clone(), Met::PassedOver);
                return Ok(Next::Paced(
                    ahead.saturating_sub(shared.settings.horizon / 2),
                ));
            }
        };
        lock(&shared.in_flight).insert(call.id.clone());
        let task = Arc::clone(shared);
        let run = run.map(Arc::clone);
        if let Some(run) = &run {
            run.started();
        }
        let mut tasks = self.tasks.lock().await;
        // Finished dials are reaped as new ones start, so a long-lived dispatcher keeps no
        // more than its dials in flight.
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                warn!(error = %e, "a dial task ended abnormally");
            }
        }
        tasks.spawn(async move {
            // Counted as finished however the task ends.
            let _finished = run.map(RunTasks::finish_on_drop);
            let id = call.id.clone();
            dial(&task, call, campaign, slot, slot_claim).await;
            lock(&task.in_flight).remove(&id);
        });
        Ok(Next::Started)
    }
}

/// How many deferred calls are remembered before the count starts over (a Lambda run is a
/// minute; a long-lived local dispatcher forgets old openings this way).
const DEFERRED_KEPT: usize = 10_000;

/// When a call moved to `opening` is due: the k-th call of a campaign moved to the same
/// opening goes [`due_offset`]`(k)` after it, as a new campaign's calls do, so that the
/// opening does not put the whole campaign in front of every other campaign's due calls.
fn spread(
    deferred: &Mutex<HashMap<(CampaignId, i64), u32>>,
    campaign: &Campaign,
    opening: Timestamp,
) -> Timestamp {
    let k = {
        let mut deferred = lock(deferred);
        if deferred.len() >= DEFERRED_KEPT {
            deferred.clear();
        }
        let k = deferred
            .entry((campaign.id.clone(), opening.as_millis()))
            .or_insert(0);
        *k += 1;
        *k - 1
    };
    opening.plus(due_offset(k, campaign.pacing.calls_per_second))
}
