//! The timers Lambda's dispatcher: turns due calls into placed calls and makes sure every
//! live call ends. See DESIGN.md sections 4 and 5 and `docs/dispatcher.md`.
//!
//! One [`Dispatcher::tick`] reads a dispatch shard's due entries, earliest first, and for each:
//!
//! - a waiting call (`QUEUED`, `RETRY_WAIT`) of an active campaign, inside its calling window
//!   and under its campaign's concurrency cap, gets a pacing slot (per campaign and for the
//!   account) and a dial task: the do-not-call list is checked again, the call is claimed with
//!   a conditional write that also takes a concurrency slot, and it is dialed on its slot with
//!   its `{call_id, campaign_id, attempt, vars}` as `ArgumentsMap`. Dials are prepared ahead
//!   and sent without waiting for the previous answer, so the rate holds whatever the API's
//!   latency. A throttled dial was not placed and goes back to waiting (and the account's rate
//!   halves); a refused one ends with the API's reason; an unknown answer (a 5xx, a timeout)
//!   leaves the attempt `DIALING` for its watchdog to decide, so no attempt is dialed twice;
//! - a waiting call of a paused campaign is parked (taken out of the index until the campaign
//!   resumes), one of a cancelled campaign is cancelled, one outside its window is moved to
//!   the next opening;
//! - a live call whose watchdog fired is looked at: `DIALING` without a first event was never
//!   placed and is queued again as the same attempt; otherwise the SMA is asked to hang it up
//!   (`UpdateSipMediaApplicationCall`), and a call the SMA no longer knows becomes `LOST`;
//! - a campaign whose status changed is swept: a cancelled one's waiting calls are cancelled
//!   and its live calls hung up, a resumed one's parked calls are put back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use outdial_core::ids::{CallId, CampaignId, TransactionId};
use outdial_core::lifecycle::{CallStatus, EndRequest};
use outdial_core::pacing::{AdaptiveRate, Pacer, SendWindow, due_offset, reserve};
use outdial_core::ports::{DialError, Dialer, DispatchStore, Due, Lane, StoreError};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus};
use outdial_core::time::{Clock, Timestamp};
use outdial_core::window;
use tokio::task::JoinSet;
use tracing::{info, warn};

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

    fn progressed_since(&self, before: &Self) -> bool {
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
    /// Claimed dials queued again by their watchdog (never placed).
    pub requeued: u32,
    /// Live calls the SMA was asked to end (watchdogs and cancels).
    pub hung_up: u32,
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
    /// Dials that woke up late enough, next to one on time, that the send window held them
    /// back (2 ms or more), so that no second at the API holds more dials than the rate.
    pub held: u32,
}

#[derive(Debug, Default)]
struct Totals {
    dialed: AtomicU32,
    throttled: AtomicU32,
    refused: AtomicU32,
    unknown: AtomicU32,
    requeued: AtomicU32,
    hung_up: AtomicU32,
    lost: AtomicU32,
    cancelled: AtomicU32,
    do_not_call: AtomicU32,
    parked: AtomicU32,
    unparked: AtomicU32,
    deferred: AtomicU32,
    at_capacity: AtomicU32,
    held: AtomicU32,
}

fn bump(counter: &AtomicU32) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Totals {
    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU32| c.load(Ordering::Relaxed);
        Stats {
            dialed: get(&self.dialed),
            throttled: get(&self.throttled),
            refused: get(&self.refused),
            unknown: get(&self.unknown),
            requeued: get(&self.requeued),
            hung_up: get(&self.hung_up),
            lost: get(&self.lost),
            cancelled: get(&self.cancelled),
            do_not_call: get(&self.do_not_call),
            parked: get(&self.parked),
            unparked: get(&self.unparked),
            deferred: get(&self.deferred),
            at_capacity: get(&self.at_capacity),
            held: get(&self.held),
        }
    }
}

/// How long a dispatcher's lease on its shard lasts; it renews it well before.
pub const LEASE: Duration = Duration::from_secs(20);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a run waiting for a shard's lease asks again.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// How long a dispatcher with nothing to do waits before looking again.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How many reads of a shard one tick makes at most when everything it read was held back
/// (a campaign at its cap, a campaign still being written), so that held-back work does not
/// starve the work behind it.
const PAGES_PER_TICK: usize = 5;
/// How many reads of the watch lane one tick makes at most (a thousand entries at the
/// default batch): a larger pile is worked through over the next ticks.
const WATCH_PAGES_PER_TICK: usize = 10;
/// The reason a call cancelled by its campaign's cancellation carries.
const CAMPAIGN_CANCELLED: &str = "the campaign was cancelled";
const ON_DO_NOT_CALL: &str = "the number is on the do-not-call list";

struct Pacing {
    account: Pacer,
    account_rate: AdaptiveRate,
    campaigns: HashMap<CampaignId, Pacer>,
    /// The guard on actual sends, for the account and per campaign.
    account_sends: SendWindow,
    campaign_sends: HashMap<CampaignId, SendWindow>,
}

struct Cached {
    campaign: Arc<Campaign>,
    read_at: Timestamp,
}

struct Shared<S, D> {
    store: S,
    dialer: D,
    clock: Arc<dyn Clock>,
    settings: Settings,
    campaigns: Mutex<HashMap<CampaignId, Cached>>,
    pacing: Mutex<Pacing>,
    /// Where the send windows' microseconds count from.
    origin: tokio::time::Instant,
    /// Calls with a dial task running: a tick that reads them again before their claim
    /// lands leaves them alone.
    in_flight: Mutex<HashSet<CallId>>,
    /// Calls this dispatcher moved to each campaign's window opening, so that the next one
    /// goes a pacing interval after the last instead of piling up on the same instant.
    deferred: Mutex<HashMap<(CampaignId, i64), u32>>,
    totals: Totals,
}

/// Dials and watches calls of the shards it is given.
pub struct Dispatcher<S, D> {
    shared: Arc<Shared<S, D>>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl<S, D> std::fmt::Debug for Dispatcher<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

/// What a run of [`Dispatcher::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    pub ticks: u32,
    pub started: u32,
    /// The latest any due entry was found, over the run.
    pub max_overdue: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the tick decided for one waiting call.
enum Next {
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

/// Which pacer has no slot within the horizon, and how far ahead its next slot is.
enum Ahead {
    Account(Duration),
    Campaign(Duration),
}

impl<S, D> Dispatcher<S, D>
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    pub fn new(store: S, dialer: D, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let now = clock.now();
        let pacing = Pacing {
            account: Pacer::new(settings.account_cps),
            account_rate: AdaptiveRate::new(settings.account_cps, now),
            campaigns: HashMap::new(),
            account_sends: SendWindow::new(settings.account_cps),
            campaign_sends: HashMap::new(),
        };
        Self {
            shared: Arc::new(Shared {
                store,
                dialer,
                clock,
                settings,
                campaigns: Mutex::new(HashMap::new()),
                pacing: Mutex::new(pacing),
                origin: tokio::time::Instant::now(),
                in_flight: Mutex::new(HashSet::new()),
                deferred: Mutex::new(HashMap::new()),
                totals: Totals::default(),
            }),
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
        }
    }

    /// The account's dial rate now (it backs off on throttling).
    #[must_use]
    pub fn account_rate(&self) -> f64 {
        lock(&self.shared.pacing).account_rate.current()
    }

    /// What the dispatcher has done so far, finished dials included.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.totals.snapshot()
    }

    /// Waits until every dial task started so far has finished.
    pub async fn settle(&self) {
        let mut tasks = self.tasks.lock().await;
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                warn!(error = %e, "a dial task ended abnormally");
            }
        }
    }

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
            tokio::time::sleep(LEASE_POLL).await;
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
            tokio::time::sleep(pause.min(until.since(now))).await;
            now = clock.now();
        };
        // Every claimed dial is sent (or given back) before the lease goes.
        self.settle().await;
        result?;
        self.shared.store.unlease(shard, owner).await?;
        info!(shard, started = run.started, "dispatch run finished");
        Ok(Some(run))
    }

    /// One pass over the due entries of `shard`. Dials it starts run on after it returns;
    /// [`Dispatcher::settle`] waits for them.
    ///
    /// # Errors
    /// When the due index cannot be read; a failure on one entry is logged and the pass goes
    /// on.
    pub async fn tick(&self, shard: u32) -> Result<Tick, StoreError> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let mut tick = Tick::default();
        {
            let mut pacing = lock(&shared.pacing);
            pacing.account_rate.recover(now);
            let rate = pacing.account_rate.current();
            pacing.account.set_rate(rate);
            pacing.account_sends.set_rate(rate);
        }
        // Per campaign, the concurrency slots this tick may still take.
        let mut headroom: HashMap<CampaignId, u32> = HashMap::new();

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
                if let Some(full) = self.entry(due, now, &mut headroom, &mut tick).await {
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
                if let Some(full) = self.entry(due, now, &mut headroom, &mut tick).await {
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
    async fn entry(
        &self,
        due: Due,
        now: Timestamp,
        headroom: &mut HashMap<CampaignId, u32>,
        tick: &mut Tick,
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
                match self.waiting(*call, now, headroom).await {
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

    /// The campaign, from a cache that trusts a status for `campaign_ttl`; `None` while it
    /// is not visible (its calls are still being written).
    async fn campaign(&self, id: &CampaignId) -> Result<Option<Arc<Campaign>>, StoreError> {
        let shared = &self.shared;
        let now = shared.clock.now();
        if let Some(c) = lock(&shared.campaigns).get(id) {
            if now.since(c.read_at) < shared.settings.campaign_ttl {
                return Ok(Some(Arc::clone(&c.campaign)));
            }
        }
        match shared.store.campaign(id).await {
            Ok(c) => {
                let c = Arc::new(c);
                lock(&shared.campaigns).insert(
                    id.clone(),
                    Cached {
                        campaign: Arc::clone(&c),
                        read_at: now,
                    },
                );
                Ok(Some(c))
            }
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Decides what to do with a waiting call, and starts its dial when it is time.
    async fn waiting(
        &self,
        call: CallRecord,
        now: Timestamp,
        headroom: &mut HashMap<CampaignId, u32>,
    ) -> Result<Next, StoreError> {
        let shared = &self.shared;
        if lock(&shared.in_flight).contains(&call.id) {
            return Ok(Next::HeldBack);
        }
        let Some(campaign) = self.campaign(&call.campaign_id).await? else {
            return Ok(Next::HeldBack);
        };
        match campaign.status {
            CampaignStatus::Paused => {
                let parked = shared.store.park(&call.id, call.attempt, now).await;
                counted(parked, &shared.totals.parked)?;
                return Ok(Next::Settled);
            }
            CampaignStatus::Cancelled => {
                let cancelled = shared
                    .store
                    .cancel_waiting(&call.id, call.attempt, CAMPAIGN_CANCELLED, now)
                    .await;
                counted(cancelled, &shared.totals.cancelled)?;
                return Ok(Next::Settled);
            }
            // A completed campaign with a waiting call had one appended as it completed: it
            // is dialed like any other.
            CampaignStatus::Active | CampaignStatus::Completed => {}
        }
        if let Some(win) = &campaign.window {
            // The API refuses a bad zone; a stored one that no longer resolves falls back to
            // what the number says, or the campaign's.
            let zone = window::zone_for(call.tz.as_deref(), &call.to, win.zone())
                .or_else(|_| window::zone_for(None, &call.to, win.zone()))
                .map_or_else(|_| win.zone().clone(), |(zone, _)| zone);
            if !win.is_open(now, &zone) {
                let opening = spread(&shared.deferred, &campaign, win.next_opening(now, &zone));
                let deferred = shared
                    .store
                    .defer(&call.id, call.attempt, opening, now)
                    .await;
                counted(deferred, &shared.totals.deferred)?;
                return Ok(Next::Settled);
            }
        }
        let room = match headroom.get(&campaign.id) {
            Some(room) => *room,
            None => {
                let live = shared.store.live(&campaign.id).await?;
                campaign.pacing.max_concurrent.saturating_sub(live)
            }
        };
        if room == 0 {
            headroom.insert(campaign.id.clone(), 0);
            return Ok(Next::HeldBack);
        }
        if lock(&shared.in_flight).len() >= shared.settings.max_in_flight {
            return Ok(Next::Full(shared.settings.horizon / 4));
        }
        // Book the slot on both pacers; a slot beyond the horizon ends the tick (the pacers
        // keep no booking for it). The clock's reading and the timer's are taken together,
        // so every slot lands on the pacers' grid whenever its task was spawned.
        let slot = match shared.book(&campaign, Some(shared.settings.horizon)) {
            Ok(slot) => slot,
            Err(Ahead::Account(ahead)) => {
                return Ok(Next::Full(
                    ahead.saturating_sub(shared.settings.horizon / 2),
                ));
            }
            Err(Ahead::Campaign(ahead)) => {
                // No more of this campaign's calls this tick: the ones behind this are
                // passed over without asking the pacers again.
                headroom.insert(campaign.id.clone(), 0);
                return Ok(Next::Paced(
                    ahead.saturating_sub(shared.settings.horizon / 2),
                ));
            }
        };
        headroom.insert(campaign.id.clone(), room - 1);
        lock(&shared.in_flight).insert(call.id.clone());
        let task = Arc::clone(shared);
        self.tasks.lock().await.spawn(async move {
            let id = call.id.clone();
            dial(&task, call, campaign, slot).await;
            lock(&task.in_flight).remove(&id);
        });
        Ok(Next::Started)
    }

    /// A live call's watchdog fired.
    async fn watch(&self, due: &CallRecord) -> Result<(), StoreError> {
        let shared = &self.shared;
        if lock(&shared.in_flight).contains(&due.id) {
            // Its dial task is still running here: the dial has not been sent, or its answer
            // is on its way.
            return Ok(());
        }
        let now = shared.clock.now();
        let record = shared.store.call(&due.id).await?;
        if record.attempt != due.attempt || !record.status.is_live() {
            return Ok(());
        }
        let Some(transaction) = record.current_transaction().cloned() else {
            // Neither the Voice API's answer nor a NEW_OUTBOUND_CALL within its deadline:
            // the dial was never placed.
            info!(call_id = %record.id, "no first event in time; queued again as the same attempt");
            return match shared
                .store
                .release(&record.id, record.attempt, now, now)
                .await
            {
                Ok(()) => {
                    bump(&shared.totals.requeued);
                    Ok(())
                }
                Err(StoreError::Conflict) => Ok(()),
                Err(e) => Err(e),
            };
        };
        let reason = if record.answered {
            EndRequest::MaxDuration
        } else {
            EndRequest::RingTimeout
        };
        let arguments = BTreeMap::from([
            ("op".to_owned(), "hangup".to_owned()),
            ("reason".to_owned(), reason.as_str().to_owned()),
        ]);
        match shared.dialer.update(&transaction, arguments).await {
            Err(DialError::NotFound) => {
                let why = format!(
                    "the SMA no longer knows the call ({} watchdog)",
                    reason.as_str()
                );
                match shared
                    .store
                    .lose(&record.id, record.attempt, &why, now)
                    .await
                {
                    Ok(()) => {
                        bump(&shared.totals.lost);
                        Ok(())
                    }
                    Err(StoreError::Conflict) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            answer => {
                if answer.is_ok() {
                    bump(&shared.totals.hung_up);
                }
                match shared
                    .store
                    .rearm(
                        &record.id,
                        record.attempt,
                        now.plus(shared.settings.recheck_after),
                        now,
                    )
                    .await
                {
                    Err(StoreError::Conflict) => Ok(()),
                    other => other,
                }
            }
        }
    }

    /// Carries a campaign's status change to its calls: a cancelled campaign's waiting calls
    /// are cancelled and its live calls asked to hang up; a resumed campaign's parked calls
    /// go back into the `due` index. The request is cleared once everything is done; a
    /// sweep cut short by an error is done again (each change is conditional, so repeating
    /// one is harmless).
    async fn sweep(&self, id: &CampaignId, due_key: &str) -> Result<(), StoreError> {
        let shared = &self.shared;
        lock(&shared.campaigns).remove(id);
        let Some(campaign) = self.campaign(id).await? else {
            return shared.store.campaign_swept(id, due_key).await;
        };
        match campaign.status {
            CampaignStatus::Cancelled => {
                for status in [CallStatus::Queued, CallStatus::RetryWait] {
                    self.for_each_call(id, status, |call| async move {
                        let now = shared.clock.now();
                        let cancelled = shared
                            .store
                            .cancel_waiting(&call.id, call.attempt, CAMPAIGN_CANCELLED, now)
                            .await;
                        counted(cancelled, &shared.totals.cancelled)
                    })
                    .await?;
                }
                for status in [
                    CallStatus::Dialing,
                    CallStatus::Ringing,
                    CallStatus::Answered,
                ] {
                    self.for_each_call(id, status, |call| async move {
                        // A dial not yet known to be placed has no transaction: its dial
                        // task cancels it once the Voice API answers, or its watchdog
                        // re-queues it and the campaign's status then cancels it.
                        if let Some(transaction) = call.current_transaction() {
                            send_cancel(shared, &call.id, transaction).await;
                        }
                        Ok(())
                    })
                    .await?;
                }
            }
            CampaignStatus::Active => {
                // Resumed calls are due at the campaign's pace from now, as a new campaign's
                // are, so that they interleave with other campaigns' due calls instead of
                // standing in front of them all.
                let start = shared.clock.now();
                let rate = campaign.pacing.calls_per_second;
                let mut unparked_before = 0u32;
                let mut cursor: Option<String> = None;
                loop {
                    let page = shared
                        .store
                        .parked_calls(id, shared.settings.batch, cursor.as_deref())
                        .await?;
                    let base = unparked_before;
                    unparked_before =
                        base.saturating_add(u32::try_from(page.items.len()).unwrap_or(u32::MAX));
                    futures::stream::iter(page.items.into_iter().zip(base..))
                        .map(|(call, k)| async move {
                            let not_before = start.plus(due_offset(k, rate));
                            let now = shared.clock.now();
                            let unparked = shared.store.unpark(&call, not_before, now).await;
                            counted(unparked, &shared.totals.unparked)
                        })
                        .buffer_unordered(shared.settings.sweep_concurrency)
                        .collect::<Vec<Result<(), StoreError>>>()
                        .await
                        .into_iter()
                        .collect::<Result<Vec<()>, StoreError>>()?;
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
            }
            // Paused calls are parked as they come due; nothing else to do.
            CampaignStatus::Paused | CampaignStatus::Completed => {}
        }
        info!(campaign_id = %id, status = campaign.status.as_str(), "campaign swept");
        shared.store.campaign_swept(id, due_key).await
    }

    /// Runs `each` over every call of the campaign in `status`, a page at a time, several at
    /// once.
    async fn for_each_call<'a, F, Fut>(
        &'a self,
        id: &CampaignId,
        status: CallStatus,
        each: F,
    ) -> Result<(), StoreError>
    where
        F: Fn(CallRecord) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>> + 'a,
    {
        let shared = &self.shared;
        let mut cursor: Option<String> = None;
        loop {
            let page = shared
                .store
                .list_calls(id, Some(status), shared.settings.batch, cursor.as_deref())
                .await?;
            futures::stream::iter(page.items)
                .map(&each)
                .buffer_unordered(shared.settings.sweep_concurrency)
                .collect::<Vec<Result<(), StoreError>>>()
                .await
                .into_iter()
                .collect::<Result<Vec<()>, StoreError>>()?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// A dial's booked pacing slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: tokio::time::Instant,
    /// How long after the booking it is.
    wait: Duration,
}

impl<S, D> Shared<S, D> {
    /// Takes the right to send a dial of `campaign` now, or says how long to wait: the send
    /// windows (the account's and the campaign's) hold a dial that woke up late if sending
    /// it now would put more dials into one second than the rate.
    fn send_now(&self, campaign: &Campaign) -> Duration {
        let now_us = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut pacing = lock(&self.pacing);
        let Pacing {
            account_sends,
            campaign_sends,
            ..
        } = &mut *pacing;
        let own = campaign_sends
            .entry(campaign.id.clone())
            .or_insert_with(|| SendWindow::new(campaign.pacing.calls_per_second));
        let wait = own.ready_in(now_us).max(account_sends.ready_in(now_us));
        if wait.is_zero() {
            own.record(now_us);
            account_sends.record(now_us);
        }
        wait
    }

    /// Books the next slot on the campaign's pacer and the account's; `Err` naming the pacer
    /// whose next slot is beyond `horizon` (the account's first). The clock's reading and the
    /// timer's are taken together, so every slot lands on the pacers' grid whenever its task
    /// runs.
    fn book(&self, campaign: &Campaign, horizon: Option<Duration>) -> Result<Slot, Ahead> {
        let mut pacing = lock(&self.pacing);
        let now = self.clock.now();
        let anchor = tokio::time::Instant::now();
        let Pacing {
            account, campaigns, ..
        } = &mut *pacing;
        let own = campaigns
            .entry(campaign.id.clone())
            .or_insert_with(|| Pacer::new(campaign.pacing.calls_per_second));
        if let Some(horizon) = horizon {
            let (account_in, own_in) = (account.ready_in(now), own.ready_in(now));
            if account_in > horizon {
                return Err(Ahead::Account(account_in));
            }
            if own_in > horizon {
                return Err(Ahead::Campaign(own_in));
            }
        }
        let wait = reserve(&mut [own, account], now);
        Ok(Slot {
            at: anchor + wait,
            wait,
        })
    }
}

/// The result of a conditional change to one waiting call, counted in `total` when it was
/// made. A call that moved on meanwhile (claimed, ended, gone) needs nothing more.
fn counted(result: Result<(), StoreError>, total: &AtomicU32) -> Result<(), StoreError> {
    match result {
        Ok(()) => {
            bump(total);
            Ok(())
        }
        Err(StoreError::Conflict | StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
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

/// Records the Voice API's `TransactionId` for the placed attempt, then cancels the call at
/// once if its campaign was cancelled while the request was out: the cancel sweep skips a
/// dial whose placing it does not know of yet.
async fn placed<S: DispatchStore, D: Dialer>(
    shared: &Shared<S, D>,
    call: &CallRecord,
    campaign: &Campaign,
    transaction: &TransactionId,
    now: Timestamp,
) {
    match shared
        .store
        .placed(&call.id, call.attempt, transaction, now)
        .await
    {
        // The SMA's first event records the transaction too; until it does, the watchdog
        // takes an unknown placing for none.
        Ok(()) | Err(StoreError::Conflict | StoreError::NotFound) => {}
        Err(e) => {
            warn!(call_id = %call.id, error = %e, "placed call's transaction not recorded");
        }
    }
    let status = lock(&shared.campaigns)
        .get(&campaign.id)
        .map_or(campaign.status, |c| c.campaign.status);
    if status == CampaignStatus::Cancelled {
        send_cancel(shared, &call.id, transaction).await;
    }
}

/// Asks the SMA handler to end a call of a cancelled campaign; a call already over (404) is
/// fine, and a request that fails is left to the call's watchdog.
async fn send_cancel<S: DispatchStore, D: Dialer>(
    shared: &Shared<S, D>,
    call_id: &CallId,
    transaction: &TransactionId,
) {
    let cancel = BTreeMap::from([("op".to_owned(), "cancel".to_owned())]);
    match shared.dialer.update(transaction, cancel).await {
        Ok(()) => bump(&shared.totals.hung_up),
        Err(DialError::NotFound) => {}
        Err(e) => {
            warn!(%call_id, error = %e, "cancel not delivered; the watchdog ends the call");
        }
    }
}

/// One dial: the do-not-call list checked again, the claim (with its concurrency slot), the
/// wait for its pacing slot, the request, and what its answer means for the call.
async fn dial<S: DispatchStore, D: Dialer>(
    shared: &Shared<S, D>,
    call: CallRecord,
    campaign: Arc<Campaign>,
    slot: Slot,
) {
    let store = &shared.store;
    match store.do_not_call(&call.to).await {
        Ok(false) => {}
        Ok(true) => {
            let now = shared.clock.now();
            match store
                .cancel_waiting(&call.id, call.attempt, ON_DO_NOT_CALL, now)
                .await
            {
                Ok(()) => bump(&shared.totals.do_not_call),
                Err(StoreError::Conflict | StoreError::NotFound) => {}
                Err(e) => {
                    warn!(call_id = %call.id, error = %e, "do-not-call cancel left for the next tick")
                }
            }
            return;
        }
        Err(e) => {
            warn!(call_id = %call.id, error = %e, "do-not-call list unreadable; dial left for the next tick");
            return;
        }
    }
    let now = shared.clock.now();
    // The watchdog counts from the moment the dial goes out, not from the claim.
    let watchdog_at = now.plus(slot.wait + shared.settings.first_event_within);
    let claimed = match store
        .claim(&call, now, watchdog_at, campaign.pacing.max_concurrent)
        .await
    {
        Ok(c) => c,
        Err(StoreError::AtCapacity) => {
            bump(&shared.totals.at_capacity);
            return;
        }
        Err(StoreError::Conflict | StoreError::NotFound) => return,
        Err(e) => {
            warn!(call_id = %call.id, error = %e, "claim failed; left for the next tick");
            return;
        }
    };
    let mut arguments = BTreeMap::from([
        ("call_id".to_owned(), claimed.id.to_string()),
        ("campaign_id".to_owned(), claimed.campaign_id.to_string()),
        ("attempt".to_owned(), claimed.attempt.to_string()),
    ]);
    if !claimed.vars.is_empty() {
        if let Ok(vars) = serde_json::to_string(&claimed.vars) {
            arguments.insert("vars".to_owned(), vars);
        }
    }
    tokio::time::sleep_until(slot.at).await;
    let mut held = Duration::ZERO;
    loop {
        let wait = shared.send_now(&campaign);
        if wait.is_zero() {
            break;
        }
        held += wait;
        tokio::time::sleep(wait).await;
    }
    // A dial held for less than a couple of milliseconds is on its slot, give or take the
    // timer's resolution.
    if held >= Duration::from_millis(2) {
        bump(&shared.totals.held);
    }
    // A pause or a cancel that arrived while the dial waited for its slot wins: the call goes
    // back to waiting, and the campaign's status decides what becomes of it.
    let status = lock(&shared.campaigns)
        .get(&campaign.id)
        .map_or(campaign.status, |c| c.campaign.status);
    if matches!(status, CampaignStatus::Paused | CampaignStatus::Cancelled) {
        let now = shared.clock.now();
        if let Err(e) = store.release(&claimed.id, claimed.attempt, now, now).await {
            warn!(call_id = %claimed.id, error = %e, "held dial not given back; the watchdog does it");
        }
        return;
    }
    let answer = shared
        .dialer
        .place(&campaign.from, &claimed.to, arguments)
        .await;
    let now = shared.clock.now();
    let outcome = match answer {
        Ok(transaction) => {
            bump(&shared.totals.dialed);
            placed(shared, &claimed, &campaign, &transaction, now).await;
            Ok(())
        }
        Err(DialError::Throttled) => {
            bump(&shared.totals.throttled);
            {
                let mut pacing = lock(&shared.pacing);
                pacing.account_rate.throttled(now);
                let rate = pacing.account_rate.current();
                pacing.account.set_rate(rate);
                pacing.account_sends.set_rate(rate);
            }
            info!(call_id = %claimed.id, "dial throttled; back to waiting");
            store
                .release(
                    &claimed.id,
                    claimed.attempt,
                    now.plus(Duration::from_secs(1)),
                    now,
                )
                .await
        }
        Err(DialError::Rejected { code, message }) => {
            bump(&shared.totals.refused);
            // A refusal is about the request (a number not in the inventory, no
            // permission), not the callee: an unreachable number shows as SIP 404 later.
            warn!(call_id = %claimed.id, %code, "dial refused");
            store
                .refuse(
                    &claimed.id,
                    claimed.attempt,
                    CallStatus::Failed,
                    &format!("{code}: {message}"),
                    now,
                )
                .await
        }
        Err(DialError::NotFound) => {
            bump(&shared.totals.refused);
            store
                .refuse(
                    &claimed.id,
                    claimed.attempt,
                    CallStatus::Failed,
                    "NotFoundException: no such SIP media application",
                    now,
                )
                .await
        }
        Err(DialError::Unknown(e)) => {
            // It may have been placed: the watchdog decides, never a second dial now.
            bump(&shared.totals.unknown);
            warn!(call_id = %claimed.id, error = %e, "dial answer unknown; the watchdog decides");
            Ok(())
        }
    };
    if let Err(e) = outcome {
        // The claim stands: the call's watchdog finds it DIALING without an event and queues
        // it again.
        warn!(call_id = %claimed.id, error = %e, "dial outcome not recorded; the watchdog decides");
    }
}

/// What the timers function reads from its environment beyond the shared [`Config`](outdial_adapters::config::Config).
#[derive(Debug, Clone, PartialEq)]
pub struct TimersConfig {
    /// `OUTDIAL_SMA_ID`: the SIP media application calls are placed through.
    pub sma_id: String,
    /// `OUTDIAL_ACCOUNT_CPS`: calls per second for the whole account (default 5, the
    /// documented PSTN action rate; raise it with the account's quota).
    pub account_cps: f64,
}

impl TimersConfig {
    /// # Errors
    /// When `OUTDIAL_SMA_ID` is missing or `OUTDIAL_ACCOUNT_CPS` is not a positive number;
    /// the message names the variable.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// # Errors
    /// As [`TimersConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let sma_id = lookup("OUTDIAL_SMA_ID")
            .filter(|s| !s.is_empty())
            .context("OUTDIAL_SMA_ID is not set: it names the SIP media application")?;
        let account_cps = match lookup("OUTDIAL_ACCOUNT_CPS") {
            None => 5.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0 && *r <= 10_000.0)
                .with_context(|| {
                    format!(
                        "OUTDIAL_ACCOUNT_CPS must be a number above 0 and at most 10000, got {v:?}"
                    )
                })?,
        };
        Ok(Self {
            sma_id,
            account_cps,
        })
    }
}

/// One CloudWatch embedded-metric-format line with what happened between two [`Stats`]
/// snapshots: `Dialed`, `DialThrottled` and `CallsLost` (counts) and `OverdueSeconds` (how
/// late the most overdue due entry was; calls stuck past their watchdog show here).
#[must_use]
pub fn metrics_line(before: &Stats, after: &Stats, overdue: Duration, at: Timestamp) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": at.as_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Outdial",
                "Dimensions": [[]],
                "Metrics": [
                    {"Name": "Dialed", "Unit": "Count"},
                    {"Name": "DialThrottled", "Unit": "Count"},
                    {"Name": "CallsLost", "Unit": "Count"},
                    {"Name": "OverdueSeconds", "Unit": "Seconds"},
                ],
            }],
        },
        "Dialed": after.dialed.saturating_sub(before.dialed),
        "DialThrottled": after.throttled.saturating_sub(before.throttled),
        "CallsLost": after.lost.saturating_sub(before.lost),
        "OverdueSeconds": overdue.as_secs_f64(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_sma_is_required_and_the_account_rate_defaults_to_five() {
        let err = TimersConfig::from_lookup(lookup(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("OUTDIAL_SMA_ID"), "{err}");
        let c = TimersConfig::from_lookup(lookup(&[("OUTDIAL_SMA_ID", "sma")])).unwrap();
        assert!((c.account_cps - 5.0).abs() < f64::EPSILON);
        for bad in ["0", "-1", "fast", "NaN"] {
            let err = TimersConfig::from_lookup(lookup(&[
                ("OUTDIAL_SMA_ID", "sma"),
                ("OUTDIAL_ACCOUNT_CPS", bad),
            ]))
            .unwrap_err()
            .to_string();
            assert!(err.contains("OUTDIAL_ACCOUNT_CPS"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_metrics_line_is_embedded_metric_format_with_the_run_s_differences() {
        let before = Stats {
            dialed: 10,
            throttled: 1,
            ..Stats::default()
        };
        let after = Stats {
            dialed: 25,
            throttled: 4,
            lost: 2,
            ..Stats::default()
        };
        let line = metrics_line(
            &before,
            &after,
            Duration::from_millis(1500),
            Timestamp::from_millis(1_900_000_000_000),
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Outdial");
        assert_eq!(v["Dialed"], 15);
        assert_eq!(v["DialThrottled"], 3);
        assert_eq!(v["CallsLost"], 2);
        assert_eq!(v["OverdueSeconds"], 1.5);
        assert!(!line.contains('\n'));
    }
}

/// How long a scheduled invocation waits for the previous one to give a shard back.
pub const SCHEDULED_LEASE_WAIT: Duration = Duration::from_secs(10);
/// The longest one invocation dispatches: the schedule fires every minute, and the next run
/// waits for this one's leases, so shards hand over within a couple of seconds.
pub const RUN_FOR: Duration = Duration::from_secs(58);
/// What an invocation leaves before its deadline to send its last dials and give the
/// leases back.
pub const MARGIN: Duration = Duration::from_secs(5);

/// What one invocation of the timers function did.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The function's answer: shards held and calls dialed.
    pub answer: serde_json::Value,
    /// The run's figures as one embedded-metric-format line ([`metrics_line`]); the Lambda
    /// prints it for CloudWatch, the local stack has no use for it.
    pub metrics: String,
    /// The shards whose dispatch failed.
    pub errors: Vec<String>,
}

/// One invocation of the timers function, as Lambda and the local stack run it: every shard
/// is dispatched side by side until `deadline` less [`MARGIN`] (at most [`RUN_FOR`]).
/// `scheduled` says whether the schedule started it (it then waits for the previous run's
/// leases) or the API did (it leaves held shards to their holders). A shard whose dispatch
/// failed is retryable: the schedule runs again within a minute, and leases run out.
pub async fn invoke<S, D>(
    dispatcher: &Dispatcher<S, D>,
    shards: u32,
    owner: &str,
    deadline: Timestamp,
    scheduled: bool,
) -> Invocation
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    let clock = Arc::clone(&dispatcher.shared.clock);
    let now = clock.now();
    let until = Timestamp::from_millis(
        deadline
            .as_millis()
            .saturating_sub(i64::try_from(MARGIN.as_millis()).unwrap_or(0))
            .min(now.plus(RUN_FOR).as_millis()),
    );
    let lease_wait = if scheduled {
        SCHEDULED_LEASE_WAIT
    } else {
        Duration::ZERO
    };
    let before = dispatcher.stats();
    let runs = (0..shards)
        .map(|shard| async move { (shard, dispatcher.run(shard, owner, until, lease_wait).await) });
    let mut overdue = Duration::ZERO;
    let mut held = 0;
    let mut errors = Vec::new();
    for (shard, result) in futures::future::join_all(runs).await {
        match result {
            Ok(Some(run)) => {
                held += 1;
                overdue = overdue.max(run.max_overdue);
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("shard {shard}: {e}")),
        }
    }
    let done = dispatcher.stats();
    Invocation {
        answer: serde_json::json!({
            "shards": held,
            "dialed": done.dialed.saturating_sub(before.dialed),
        }),
        metrics: metrics_line(&before, &done, overdue, clock.now()),
        errors,
    }
}

/// Whether an invocation's event comes from the schedule (EventBridge Scheduler sends the
/// payload the stack configures, `{"source": "outdial.schedule"}`) rather than from the API.
#[must_use]
pub fn is_scheduled(event: &serde_json::Value) -> bool {
    event.get("source").and_then(serde_json::Value::as_str) != Some("outdial.api")
}
