//! The timers Lambda's dispatcher: turns due calls into placed calls and makes sure every
//! live call ends. See DESIGN.md sections 4 and 5.
//!
//! One [`Dispatcher::tick`] reads a dispatch shard's due entries, earliest first, and for each:
//!
//! - a waiting call (`QUEUED`, `RETRY_WAIT`) of an active campaign is paced (per campaign and
//!   for the account), claimed with a conditional write, and dialed with its
//!   `{call_id, campaign_id, attempt, vars}` as `ArgumentsMap`. A throttled dial was not
//!   placed and goes back to waiting (and the account's rate halves); a refused one ends with
//!   the API's reason; an unknown answer (a 5xx, a timeout) leaves the attempt `DIALING` for
//!   its watchdog to decide, so no attempt is ever dialed twice;
//! - a live call whose watchdog fired is looked at: `DIALING` without a first event was never
//!   placed and is queued again as the same attempt; otherwise the SMA is asked to hang it up
//!   (`UpdateSipMediaApplicationCall`), and a call the SMA no longer knows becomes `LOST`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outdial_core::ids::CampaignId;
use outdial_core::lifecycle::{CallStatus, EndRequest};
use outdial_core::pacing::{AdaptiveRate, Pacer};
use outdial_core::ports::{CallStore, DialError, Dialer, DueCall, StoreError};
use outdial_core::record::{Campaign, CampaignStatus};
use outdial_core::time::{Clock, Timestamp};
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
    /// Due entries read per tick.
    pub batch: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            account_cps: 5.0,
            first_event_within: Duration::from_secs(60),
            recheck_after: Duration::from_secs(30),
            batch: 100,
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    pub dialed: u32,
    pub throttled: u32,
    pub refused: u32,
    pub unknown: u32,
    pub requeued: u32,
    pub hung_up: u32,
    pub lost: u32,
    /// Set when pacing stopped the tick: how long until the next dial is allowed.
    pub paced_for: Option<Duration>,
}

impl Tick {
    /// Whether the tick changed anything (a dial, a release, a watchdog action).
    #[must_use]
    pub fn did_work(&self) -> bool {
        self.dialed
            + self.throttled
            + self.refused
            + self.unknown
            + self.requeued
            + self.hung_up
            + self.lost
            > 0
    }

    fn absorb(&mut self, other: &Tick) {
        self.dialed += other.dialed;
        self.throttled += other.throttled;
        self.refused += other.refused;
        self.unknown += other.unknown;
        self.requeued += other.requeued;
        self.hung_up += other.hung_up;
        self.lost += other.lost;
    }
}

/// How long a dispatcher's lease on its shard lasts; it renews it well before.
pub const LEASE: Duration = Duration::from_secs(20);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// The longest a tick waits for a pacing slot before ending and leaving the wait to its caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(1);
/// How long a dispatcher with nothing to do waits before looking again.
const IDLE_POLL: Duration = Duration::from_millis(250);

struct Pacing {
    account: Pacer,
    account_rate: AdaptiveRate,
    campaigns: HashMap<CampaignId, Pacer>,
}

/// Dials and watches calls of the shards it is given.
pub struct Dispatcher<S, D> {
    store: S,
    dialer: D,
    clock: Arc<dyn Clock>,
    settings: Settings,
    campaigns: Mutex<HashMap<CampaignId, Arc<Campaign>>>,
    pacing: Mutex<Pacing>,
}

impl<S, D> std::fmt::Debug for Dispatcher<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

enum Dialed {
    Placed,
    Skipped,
    Paced(Duration),
}

impl<S: CallStore, D: Dialer> Dispatcher<S, D> {
    pub fn new(store: S, dialer: D, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let now = clock.now();
        let pacing = Pacing {
            account: Pacer::new(settings.account_cps),
            account_rate: AdaptiveRate::new(settings.account_cps, now),
            campaigns: HashMap::new(),
        };
        Self {
            store,
            dialer,
            clock,
            settings,
            campaigns: Mutex::new(HashMap::new()),
            pacing: Mutex::new(pacing),
        }
    }

    /// The account's dial rate now (it backs off on throttling).
    #[must_use]
    pub fn account_rate(&self) -> f64 {
        self.lock_pacing().account_rate.current()
    }

    fn lock_pacing(&self) -> std::sync::MutexGuard<'_, Pacing> {
        self.pacing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Dispatches `shard` until `until`, holding its lease so that one dispatcher runs per
    /// shard; returns what it did, or `None` when another dispatcher holds the lease.
    ///
    /// # Errors
    /// When the store cannot be reached; the lease then runs out and another dispatcher
    /// takes the shard over.
    pub async fn run(
        &self,
        shard: u32,
        owner: &str,
        until: Timestamp,
    ) -> Result<Option<Tick>, StoreError> {
        let mut now = self.clock.now();
        if !self.store.lease(shard, owner, now, now.plus(LEASE)).await? {
            info!(shard, "another dispatcher holds the shard");
            return Ok(None);
        }
        let mut renewed = now;
        let mut total = Tick::default();
        while now < until {
            if now.since(renewed) >= RENEW_EVERY {
                if !self.store.lease(shard, owner, now, now.plus(LEASE)).await? {
                    warn!(shard, "lease lost to another dispatcher; stopping");
                    return Ok(Some(total));
                }
                renewed = now;
            }
            let tick = self.tick(shard).await?;
            total.absorb(&tick);
            let pause = match tick.paced_for {
                Some(wait) => wait,
                None if tick.did_work() => Duration::ZERO,
                None => IDLE_POLL,
            };
            tokio::time::sleep(pause.min(until.since(now))).await;
            now = self.clock.now();
        }
        self.store.unlease(shard, owner).await?;
        info!(shard, dialed = total.dialed, "dispatch run finished");
        Ok(Some(total))
    }

    /// One pass over the due entries of `shard`.
    ///
    /// # Errors
    /// When the due index cannot be read; a failure on one call is logged and the pass goes on.
    pub async fn tick(&self, shard: u32) -> Result<Tick, StoreError> {
        let now = self.clock.now();
        let mut tick = Tick::default();
        {
            let mut pacing = self.lock_pacing();
            pacing.account_rate.recover(now);
            let rate = pacing.account_rate.current();
            pacing.account.set_rate(rate);
        }
        for due in self
            .store
            .due_calls(shard, now, self.settings.batch)
            .await?
        {
            let result = match due.status {
                CallStatus::Queued | CallStatus::RetryWait => {
                    match self.dial(&due, &mut tick).await {
                        Ok(Dialed::Paced(wait)) => {
                            tick.paced_for = Some(wait);
                            break;
                        }
                        Ok(Dialed::Placed | Dialed::Skipped) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                status if status.is_live() => self.watch(&due, &mut tick).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                warn!(call_id = %due.call_id, error = %e, "due call left for the next tick");
            }
        }
        Ok(tick)
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Arc<Campaign>>, StoreError> {
        if let Some(c) = self
            .campaigns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(Some(Arc::clone(c)));
        }
        match self.store.campaign(id).await {
            Ok(c) => {
                let c = Arc::new(c);
                self.campaigns
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.clone(), Arc::clone(&c));
                Ok(Some(c))
            }
            // Not visible yet: its calls are still being written.
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn dial(&self, due: &DueCall, tick: &mut Tick) -> Result<Dialed, StoreError> {
        let Some(campaign) = self.campaign(&due.campaign_id).await? else {
            return Ok(Dialed::Skipped);
        };
        if campaign.status != CampaignStatus::Active {
            return Ok(Dialed::Skipped);
        }
        // A slot more than a second away ends the tick; the caller waits.
        let wait = self.pacing_wait(&campaign, self.clock.now(), false);
        if wait > MAX_INLINE_WAIT {
            return Ok(Dialed::Paced(wait));
        }
        let now = self.clock.now();
        let claimed = match self
            .store
            .claim(
                &due.call_id,
                due.attempt,
                now,
                now.plus(self.settings.first_event_within),
            )
            .await
        {
            Ok(c) => c,
            Err(StoreError::Conflict | StoreError::NotFound) => return Ok(Dialed::Skipped),
            Err(e) => return Err(e),
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
        // The slot is taken right before the request goes out, so the spacing the API sees is
        // the pacer's, not stretched or squeezed by the claim's latency.
        loop {
            let wait = self.pacing_wait(&campaign, self.clock.now(), true);
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        match self
            .dialer
            .place(&campaign.from, &claimed.to, arguments)
            .await
        {
            Ok(_) => {
                tick.dialed += 1;
                Ok(Dialed::Placed)
            }
            Err(DialError::Throttled) => {
                tick.throttled += 1;
                {
                    let mut pacing = self.lock_pacing();
                    pacing.account_rate.throttled(now);
                    let rate = pacing.account_rate.current();
                    pacing.account.set_rate(rate);
                }
                info!(call_id = %claimed.id, "dial throttled; back to waiting");
                self.store
                    .release(
                        &claimed.id,
                        claimed.attempt,
                        now.plus(Duration::from_secs(1)),
                        now,
                    )
                    .await?;
                Ok(Dialed::Skipped)
            }
            Err(DialError::Rejected { code, message }) => {
                tick.refused += 1;
                // A refusal is about the request (a number not in the inventory, no
                // permission), not the callee: an unreachable number shows as SIP 404 later.
                warn!(call_id = %claimed.id, %code, "dial refused");
                self.store
                    .refuse(
                        &claimed.id,
                        claimed.attempt,
                        CallStatus::Failed,
                        &format!("{code}: {message}"),
                        now,
                    )
                    .await?;
                Ok(Dialed::Skipped)
            }
            Err(DialError::NotFound) => {
                tick.refused += 1;
                self.store
                    .refuse(
                        &claimed.id,
                        claimed.attempt,
                        CallStatus::Failed,
                        "NotFoundException: no such SIP media application",
                        now,
                    )
                    .await?;
                Ok(Dialed::Skipped)
            }
            Err(DialError::Unknown(e)) => {
                // It may have been placed: the watchdog decides, never a second dial now.
                tick.unknown += 1;
                warn!(call_id = %claimed.id, error = %e, "dial answer unknown; the watchdog decides");
                Ok(Dialed::Placed)
            }
        }
    }

    /// How long until both the campaign's pacer and the account's allow a dial; with `take`
    /// and no wait, the slot is taken.
    fn pacing_wait(&self, campaign: &Campaign, now: Timestamp, take: bool) -> Duration {
        let mut pacing = self.lock_pacing();
        let Pacing {
            account, campaigns, ..
        } = &mut *pacing;
        let own = campaigns
            .entry(campaign.id.clone())
            .or_insert_with(|| Pacer::new(campaign.pacing.calls_per_second));
        let wait = own.ready_in(now).max(account.ready_in(now));
        if take && wait.is_zero() {
            own.mark(now);
            account.mark(now);
        }
        wait
    }

    async fn watch(&self, due: &DueCall, tick: &mut Tick) -> Result<(), StoreError> {
        let now = self.clock.now();
        let record = self.store.call(&due.call_id).await?;
        if record.attempt != due.attempt || !record.status.is_live() {
            return Ok(());
        }
        let placed = record
            .last_event
            .as_ref()
            .is_some_and(|e| e.attempt == record.attempt);
        let Some(transaction) = record.transaction_id.clone().filter(|_| placed) else {
            // No NEW_OUTBOUND_CALL within its deadline: the dial was never placed.
            tick.requeued += 1;
            info!(call_id = %record.id, "no first event in time; queued again as the same attempt");
            return match self
                .store
                .release(&record.id, record.attempt, now, now)
                .await
            {
                Err(StoreError::Conflict) => Ok(()),
                other => other,
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
        match self.dialer.update(&transaction, arguments).await {
            Err(DialError::NotFound) => {
                tick.lost += 1;
                let why = format!(
                    "the SMA no longer knows the call ({} watchdog)",
                    reason.as_str()
                );
                match self.store.lose(&record.id, record.attempt, &why, now).await {
                    Err(StoreError::Conflict) => Ok(()),
                    other => other,
                }
            }
            answer => {
                if answer.is_ok() {
                    tick.hung_up += 1;
                }
                match self
                    .store
                    .rearm(
                        &record.id,
                        record.attempt,
                        now.plus(self.settings.recheck_after),
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
}
