//! The dispatcher's state, shared by its ticks and the dial tasks they start: the store and
//! the dialer, the clock, the campaign cache, the pacers and the calls in flight.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outdial_core::ids::{CallId, CampaignId};
use outdial_core::legal::LegalHours;
use outdial_core::pacing::{AdaptiveRate, Calendar, Fastest, Pacer, SendWindow, reserve};
use outdial_core::policy::Policy;
use outdial_core::ports::{Dialer, DispatchStore, PacerMarks, StoreError};
use outdial_core::record::Campaign;
use outdial_core::time::{Clock, Timestamp};
use tokio::task::JoinSet;
use tracing::warn;

use crate::settings::{Settings, Stats, Totals, bump};

pub(crate) struct Pacing {
    /// Each shard's share of the account's rate (`Settings::account_cps`): a shard dials at
    /// most its share whichever process runs it, so the shards of the account never dial
    /// more than its rate together, in one invocation or several.
    pub(crate) shards: HashMap<u32, ShardPacing>,
    /// Campaigns' marks handed over by the previous run, for pacers not made yet.
    pub(crate) followed: HashMap<CampaignId, i64>,
    /// Each campaign's slots: a calendar, since every shard books them, each ahead.
    pub(crate) campaigns: HashMap<CampaignId, Calendar>,
    /// The guard on actual sends per campaign.
    pub(crate) campaign_sends: HashMap<CampaignId, SendWindow>,
    /// The fastest round trip of `CreateSipMediaApplicationCall` seen: a send that took longer
    /// may have reached the API late by the difference, and the send windows hold the send
    /// `rate` places after it by as much, so a loaded machine's uneven way to the API cannot
    /// crowd a second there.
    pub(crate) fastest: Fastest,
    /// Names the next send in the windows.
    pub(crate) next_send: u64,
}

/// One shard's share of the account's rate: its pacer, the rate it backs off to on
/// throttling, and the guard on its actual sends.
pub(crate) struct ShardPacing {
    pub(crate) pacer: Pacer,
    pub(crate) rate: AdaptiveRate,
    pub(crate) sends: SendWindow,
}

impl Pacing {
    /// Shard `shard`'s share, at `cps` when it is new.
    pub(crate) fn shard(&mut self, shard: u32, cps: f64, now: Timestamp) -> &mut ShardPacing {
        self.shards.entry(shard).or_insert_with(|| ShardPacing {
            pacer: Pacer::new(cps),
            rate: AdaptiveRate::new(cps, now),
            sends: SendWindow::new(cps),
        })
    }
}

/// What this process knows of a campaign's concurrency slots (`live` on its counters item):
/// the count a tick last read, the claims of this process that landed since, and the claims
/// its dial tasks are still making. The ticks of every shard the process runs share it, so
/// that shards ticking side by side do not each start dials for the same free slots: a claim
/// past the cap is refused, and the pacing slot booked for it goes unused.
#[derive(Debug, Default)]
pub(crate) struct Occupancy {
    read: u32,
    landed: u32,
    claiming: u32,
}

/// Every campaign's [`Occupancy`] in this process.
pub(crate) type Occupancies = Arc<Mutex<HashMap<CampaignId, Occupancy>>>;

/// A concurrency slot a dial task is claiming: counted as taken until the claim is made, and
/// after that as landed if it was. Dropped however the task ends.
pub(crate) struct SlotClaim {
    occupancies: Occupancies,
    campaign: CampaignId,
    landed: bool,
}

impl SlotClaim {
    /// The claim holds its slot in the table now (the next read of `live` counts it): given
    /// back to the count as landed.
    pub(crate) fn landed(mut self) {
        self.landed = true;
    }
}

impl Drop for SlotClaim {
    fn drop(&mut self) {
        let mut all = lock(&self.occupancies);
        if let Some(o) = all.get_mut(&self.campaign) {
            o.claiming = o.claiming.saturating_sub(1);
            if self.landed {
                o.landed = o.landed.saturating_add(1);
            }
        }
    }
}

/// Records `live`, just read from the campaign's counters item: claims landed before the read
/// are in it.
pub(crate) fn read_live(occupancies: &Occupancies, campaign: &CampaignId, live: u32) {
    let mut all = lock(occupancies);
    let o = all.entry(campaign.clone()).or_default();
    o.read = live;
    o.landed = 0;
}

/// Takes one of the campaign's concurrency slots for a dial task, if this process knows of
/// one free under `max_concurrent`.
pub(crate) fn take_slot(
    occupancies: &Occupancies,
    campaign: &CampaignId,
    max_concurrent: u32,
) -> Option<SlotClaim> {
    let mut all = lock(occupancies);
    let o = all.entry(campaign.clone()).or_default();
    let held = o.read.saturating_add(o.landed).saturating_add(o.claiming);
    if held >= max_concurrent {
        return None;
    }
    o.claiming += 1;
    Some(SlotClaim {
        occupancies: Arc::clone(occupancies),
        campaign: campaign.clone(),
        landed: false,
    })
}

pub(crate) struct Cached {
    pub(crate) campaign: Arc<Campaign>,
    pub(crate) read_at: Timestamp,
}

/// The account's rules the dispatcher applies to every call.
pub(crate) struct Account {
    /// The contact caps.
    pub(crate) policy: Policy,
    /// The legal calling hours, with the policy's default for numbers no rule covers.
    pub(crate) legal: LegalHours,
}

pub(crate) struct Shared<S, D> {
    pub(crate) store: S,
    pub(crate) dialer: D,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) campaigns: Mutex<HashMap<CampaignId, Cached>>,
    /// The account's policy and the legal hours under it, and when they were read: trusted
    /// for `campaign_ttl`, like a campaign.
    pub(crate) account: Mutex<Option<(Arc<Account>, Timestamp)>>,
    pub(crate) pacing: Mutex<Pacing>,
    /// Calls with a dial task running: a tick that reads them again before their claim
    /// lands leaves them alone.
    pub(crate) in_flight: Mutex<HashSet<CallId>>,
    /// Each campaign's concurrency slots as this process knows them.
    pub(crate) occupancies: Occupancies,
    /// Calls this dispatcher moved to each campaign's window opening, so that the next one
    /// goes a pacing interval after the last instead of piling up on the same instant.
    pub(crate) deferred: Mutex<HashMap<(CampaignId, i64), u32>>,
    /// One claim at a time per caller-ID pool (see `dial::claim`).
    pub(crate) pools: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) totals: Totals,
}

/// Dials and watches calls of the shards it is given.
pub struct Dispatcher<S, D> {
    pub(crate) shared: Arc<Shared<S, D>>,
    pub(crate) tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl<S, D> std::fmt::Debug for Dispatcher<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S, D> Dispatcher<S, D>
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    pub fn new(store: S, dialer: D, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let pacing = Pacing {
            shards: HashMap::new(),
            followed: HashMap::new(),
            campaigns: HashMap::new(),
            campaign_sends: HashMap::new(),
            fastest: Fastest::default(),
            next_send: 0,
        };
        Self {
            shared: Arc::new(Shared {
                store,
                dialer,
                clock,
                settings,
                campaigns: Mutex::new(HashMap::new()),
                account: Mutex::new(None),
                pacing: Mutex::new(pacing),
                in_flight: Mutex::new(HashSet::new()),
                occupancies: Arc::default(),
                deferred: Mutex::new(HashMap::new()),
                pools: Mutex::new(HashMap::new()),
                totals: Totals::default(),
            }),
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
        }
    }

    /// The account's dial rate now on the shards this dispatcher has dialed (each backs off
    /// on throttling): the lowest shard's share; the configured share before any dial.
    #[must_use]
    pub fn account_rate(&self) -> f64 {
        lock(&self.shared.pacing)
            .shards
            .values()
            .map(|s| s.rate.current())
            .reduce(f64::min)
            .unwrap_or(self.shared.settings.account_cps)
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

    /// The campaign, from a cache that trusts a status for `campaign_ttl`; `None` while it
    /// is not visible (its calls are still being written).
    pub(crate) async fn campaign(
        &self,
        id: &CampaignId,
    ) -> Result<Option<Arc<Campaign>>, StoreError> {
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
}

/// How many campaigns' pacing marks a hand-over carries at most (the most recently booked):
/// a lease item stays small whatever the account runs.
const MARKS_KEPT: usize = 1000;

impl<S, D> Shared<S, D> {
    /// Where the pacers of `shard` stand: the last slot each booked.
    pub(crate) fn marks(&self, shard: u32) -> PacerMarks {
        let pacing = lock(&self.pacing);
        let mut campaigns: Vec<(CampaignId, i64)> = pacing
            .campaigns
            .iter()
            .filter_map(|(id, p)| p.last_us().map(|last| (id.clone(), last)))
            .collect();
        campaigns.sort_unstable_by_key(|(_, last)| std::cmp::Reverse(*last));
        campaigns.truncate(MARKS_KEPT);
        PacerMarks {
            account: pacing.shards.get(&shard).and_then(|s| s.pacer.last_us()),
            campaigns: campaigns.into_iter().collect(),
        }
    }

    /// Goes on from the marks a previous run of `shard` handed over: each pacer books its next
    /// slot one interval after the last one there (or after its own, if later).
    pub(crate) fn follow(&self, shard: u32, marks: &PacerMarks) {
        let mut pacing = lock(&self.pacing);
        if let Some(last) = marks.account {
            let now = self.clock.now();
            pacing
                .shard(shard, self.settings.account_cps, now)
                .pacer
                .follow(last);
        }
        for (id, last) in &marks.campaigns {
            match pacing.campaigns.get_mut(id) {
                Some(own) => own.follow(*last),
                None => {
                    pacing.followed.insert(id.clone(), *last);
                }
            }
        }
    }
}

/// The dial tasks one run started: the run settles its own before it gives its lease back,
/// not those of the run that took the shard over from it.
#[derive(Debug, Default)]
pub(crate) struct RunTasks {
    left: AtomicUsize,
    done: tokio::sync::Notify,
}

impl RunTasks {
    pub(crate) fn started(&self) {
        self.left.fetch_add(1, Ordering::SeqCst);
    }

    /// A guard that counts the task finished when it is dropped, so that a task that ends
    /// abnormally does not keep its run waiting.
    pub(crate) fn finish_on_drop(self: Arc<Self>) -> Finished {
        Finished(self)
    }

    /// Waits until every task started so far has finished.
    pub(crate) async fn settled(&self) {
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.left.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// Counts its run's task finished when dropped.
pub(crate) struct Finished(Arc<RunTasks>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.left.fetch_sub(1, Ordering::SeqCst);
        self.0.done.notify_waiters();
    }
}

/// A dial's booked pacing slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// The shard whose share of the account's rate it was booked on.
    pub(crate) shard: u32,
    /// On the clock's [`Clock::elapsed`] scale.
    pub(crate) at: Duration,
    /// How long after the booking it is.
    pub(crate) wait: Duration,
}

/// A dial let through the send windows, named in them until its answer comes back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sending {
    id: u64,
    shard: u32,
    at_us: u64,
}

impl<S: DispatchStore, D> Shared<S, D> {
    /// The lock that takes turns among this dispatcher's claims from pool `name`.
    pub(crate) fn pool_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.pools).entry(name.to_owned()).or_default())
    }

    /// The account's rules, from a cache trusted for `campaign_ttl`.
    pub(crate) async fn account(&self) -> Result<Arc<Account>, StoreError> {
        let now = self.clock.now();
        if let Some((account, read_at)) = lock(&self.account).as_ref() {
            if now.since(*read_at) < self.settings.campaign_ttl {
                return Ok(Arc::clone(account));
            }
        }
        let policy = self.store.policy().await?;
        let account = Arc::new(Account {
            legal: policy.legal_hours(),
            policy,
        });
        *lock(&self.account) = Some((Arc::clone(&account), now));
        Ok(account)
    }
}

impl<S, D> Shared<S, D> {
    /// Takes the right to send a dial of `campaign` now, or says how long to wait: the send
    /// windows (the account's and the campaign's) hold a dial that woke up late if sending
    /// it now would put more dials into one second at the API than the rate.
    pub(crate) fn send_now(&self, shard: u32, campaign: &Campaign) -> Result<Sending, Duration> {
        let now_us = self.elapsed_us();
        let now = self.clock.now();
        let mut pacing = lock(&self.pacing);
        let account_cps = self.settings.account_cps;
        let fastest = pacing.fastest.get();
        let wait = {
            let own = pacing
                .campaign_sends
                .entry(campaign.id.clone())
                .or_insert_with(|| SendWindow::new(campaign.pacing.calls_per_second))
                .ready_in(now_us, fastest);
            let account = &pacing.shard(shard, account_cps, now).sends;
            own.max(account.ready_in(now_us, fastest))
        };
        if !wait.is_zero() {
            return Err(wait);
        }
        let id = pacing.next_send;
        pacing.next_send += 1;
        if let Some(own) = pacing.campaign_sends.get_mut(&campaign.id) {
            own.record(id, now_us);
        }
        pacing
            .shard(shard, account_cps, now)
            .sends
            .record(id, now_us);
        Ok(Sending {
            id,
            shard,
            at_us: now_us,
        })
    }

    /// The answer to `sending` came back (`answered`), or the API's answer is unknown, or the
    /// dial never left: its windows learn when, and an answered round trip may be the fastest.
    pub(crate) fn landed(&self, campaign: &CampaignId, sending: Sending, answered: bool) {
        let now_us = self.elapsed_us();
        let mut pacing = lock(&self.pacing);
        if answered {
            let round_trip = Duration::from_micros(now_us.saturating_sub(sending.at_us));
            pacing.fastest.record(round_trip);
        }
        if let Some(own) = pacing.campaign_sends.get_mut(campaign) {
            own.landed(sending.id, now_us);
        }
        if let Some(shard) = pacing.shards.get_mut(&sending.shard) {
            shard.sends.landed(sending.id, now_us);
        }
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Books the next slot on the campaign's pacer and the account's; `Err` naming the pacer
    /// whose next slot is beyond `horizon` (the account's first). The clock's reading and the
    /// timer's are taken together, so every slot lands on the pacers' grid whenever its task
    /// runs.
    pub(crate) fn book(
        &self,
        shard: u32,
        campaign: &Campaign,
        horizon: Option<Duration>,
    ) -> Result<Slot, Ahead> {
        let mut pacing = lock(&self.pacing);
        let now = self.clock.now();
        let anchor = self.clock.elapsed();
        pacing.shard(shard, self.settings.account_cps, now);
        let Pacing {
            shards,
            campaigns,
            followed,
            ..
        } = &mut *pacing;
        let Some(ShardPacing { pacer: account, .. }) = shards.get_mut(&shard) else {
            return Err(Ahead::Account(Duration::ZERO));
        };
        let own = campaigns.entry(campaign.id.clone()).or_insert_with(|| {
            let mut own = Calendar::new(campaign.pacing.calls_per_second);
            if let Some(last) = followed.remove(&campaign.id) {
                own.follow(last);
            }
            own
        });
        if let Some(horizon) = horizon {
            let (account_in, own_in) = (account.ready_in(now), own.ready_in(now));
            if account_in > horizon {
                return Err(Ahead::Account(account_in));
            }
            if own_in > horizon {
                return Err(Ahead::Campaign(own_in));
            }
        }
        let wait = reserve(shard, &mut [account], own, now);
        Ok(Slot {
            shard,
            at: anchor + wait,
            wait,
        })
    }
}

/// The result of a conditional change to a live or claimed call, counted in `total` when it
/// was made; a call that moved on meanwhile (its guard no longer holds) needs nothing more.
pub(crate) fn settled(result: Result<(), StoreError>, total: &AtomicU32) -> Result<(), StoreError> {
    match result {
        Ok(()) => {
            bump(total);
            Ok(())
        }
        Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Which pacer has no slot within the horizon, and how far ahead its next slot is.
pub(crate) enum Ahead {
    Account(Duration),
    Campaign(Duration),
}

/// The result of a conditional change to one waiting call, counted in `total` when it was
/// made. A call that moved on meanwhile (claimed, ended, gone) needs nothing more.
pub(crate) fn counted(result: Result<(), StoreError>, total: &AtomicU32) -> Result<(), StoreError> {
    match result {
        Ok(()) => {
            bump(total);
            Ok(())
        }
        Err(StoreError::Conflict | StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}
