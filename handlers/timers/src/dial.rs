//! One dial, from its claim to what the Voice API's answer means for the call
//! ([`outdial_core::dispatch::after_dial`]), and the cancel sent to a call whose campaign
//! was cancelled meanwhile.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use outdial_core::dispatch::{self, AfterDial, DialAnswer};
use outdial_core::ids::{CallId, TransactionId};
use outdial_core::lifecycle::EndRequest;
use outdial_core::messages::{self, DialArguments, keys};
use outdial_core::numbers::{self, Choice};
use outdial_core::policy::{Admission, LedgerWrite, OnCap, Reason};
use outdial_core::ports::{ClaimWrites, DialError, Dialer, DispatchStore, NumberWrite, StoreError};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus, PoolRef};
use outdial_core::time::Timestamp;
use tracing::{info, warn};

use crate::dispatcher::{Shared, Slot, SlotClaim, counted, lock};
use crate::settings::bump;

/// How often a claim is tried again when another dispatcher counted a call to the same
/// number between its read of the ledger and its claim.
const CONTENDED_TRIES: usize = 4;

/// Claims `call` for its dial: with the account's contact caps, decided on the number's
/// ledger and counted in the claim's own transaction, so that no interleaving of
/// dispatchers places more calls than a cap allows. A capped call ends or waits as its
/// campaign says; `None` when the call is not to be dialed now.
async fn claim<S: DispatchStore, D: Dialer>(
    shared: &Shared<S, D>,
    call: &CallRecord,
    campaign: &Campaign,
    slot: Slot,
) -> Option<CallRecord> {
    let store = &shared.store;
    let account = match shared.account().await {
        Ok(account) => account,
        Err(e) => {
            warn!(call_id = %call.id, error = %e, "policy unreadable; dial left for the next tick");
            return None;
        }
    };
    let policy = &account.policy;
    // One claim at a time per pool in this dispatcher: claims racing for the least used
    // number would otherwise mostly fail on its version. Other dispatchers' claims are kept
    // out by the version alone.
    let pool_turn = campaign
        .caller_pool
        .as_ref()
        .map(|pool| shared.pool_lock(&pool.pool));
    let _turn = match &pool_turn {
        Some(lock) => Some(lock.lock().await),
        None => None,
    };
    for _ in 0..CONTENDED_TRIES {
        let now = shared.clock.now();
        // A number's usage counts the dial at the instant its slot sends it.
        let number = match &campaign.caller_pool {
            None => None,
            Some(pool) => match caller_id(shared, call, pool, now, now.plus(slot.wait)).await {
                Some(write) => Some(write),
                None => return None,
            },
        };
        let ledger = if policy.caps_purpose(campaign.purpose) {
            match store.ledger(&call.to).await {
                Ok(ledger) => Some(ledger),
                Err(e) => {
                    warn!(call_id = %call.id, error = %e, "ledger unreadable; dial left for the next tick");
                    return None;
                }
            }
        } else {
            None
        };
        let write = match ledger.as_ref().map(|ledger| {
            (
                ledger.version,
                policy.admit(ledger, campaign.purpose, &call.id, call.attempt, now),
            )
        }) {
            None | Some((_, Admission::Uncapped | Admission::AlreadyCounted)) => None,
            Some((read, Admission::Count(ledger))) => Some(LedgerWrite {
                number: call.to.clone(),
                read,
                expires_at: ledger.expires_at(policy.horizon()).unwrap_or(now),
                ledger,
            }),
            Some((_, Admission::Capped { until })) => {
                let held = match campaign.on_cap {
                    OnCap::Cancel => {
                        store
                            .cancel_waiting(&call.id, call.attempt, Reason::Cap, now)
                            .await
                    }
                    OnCap::Defer => {
                        store
                            .defer(&call.id, call.attempt, until, Reason::Cap, now)
                            .await
                    }
                };
                ended_without_dial(call, held, &shared.totals.capped);
                return None;
            }
        };
        // The watchdog counts from the moment the dial goes out, not from the claim.
        let watchdog_at = now.plus(slot.wait + shared.settings.first_event_within);
        let writes = ClaimWrites {
            ledger: write,
            number,
        };
        match store
            .claim(
                call,
                now,
                watchdog_at,
                campaign.pacing.max_concurrent,
                &writes,
            )
            .await
        {
            Ok(c) => return Some(c),
            Err(StoreError::Contended) => bump(&shared.totals.contended),
            Err(StoreError::AtCapacity) => {
                bump(&shared.totals.at_capacity);
                return None;
            }
            Err(StoreError::Conflict | StoreError::NotFound) => return None,
            Err(e) => {
                warn!(call_id = %call.id, error = %e, "claim failed; left for the next tick");
                return None;
            }
        }
    }
    warn!(call_id = %call.id, "the ledger or the caller ID stayed contended; left for the next tick");
    None
}

/// How long a call waits when its pool has no healthy caller ID, before it looks again.
const NO_CALLER_ID_RECHECK: Duration = Duration::from_secs(300);

/// Chooses the caller ID `call` is dialed from, out of `pool`; `None`, with the call held
/// (reason `caller-ids-full` until the first number has room, or `no-caller-id` for a
/// while), when none can place it now.
async fn caller_id<S: DispatchStore, D: Dialer>(
    shared: &Shared<S, D>,
    call: &CallRecord,
    pool: &PoolRef,
    now: Timestamp,
    sent_at: Timestamp,
) -> Option<NumberWrite> {
    let members = match shared.store.pool(&pool.pool).await {
        Ok(members) => members,
        Err(e) => {
            warn!(call_id = %call.id, error = %e, "caller-ID pool unreadable; dial left for the next tick");
            return None;
        }
    };
    let (until, reason) = match numbers::choose(&members, &call.to, pool.local_presence, sent_at) {
        Choice::Number { index, usage } => {
            let member = members.get(index)?;
            return Some(NumberWrite {
                number: member.number.e164.clone(),
                read: member.usage.version,
                usage,
            });
        }
        Choice::Full { until } => (until, Reason::CallerIdsFull),
        Choice::Empty => (now.plus(NO_CALLER_ID_RECHECK), Reason::NoCallerId),
    };
    let held = shared
        .store
        .defer(&call.id, call.attempt, until, reason, now)
        .await;
    ended_without_dial(call, held, &shared.totals.caller_ids_held);
    None
}

/// Counts a waiting call ended or held without a dial; one that moved on meanwhile needs
/// nothing more.
fn ended_without_dial(call: &CallRecord, result: Result<(), StoreError>, total: &AtomicU32) {
    if let Err(e) = counted(result, total) {
        warn!(call_id = %call.id, error = %e, "call not ended or held; left for the next tick");
    }
}

/// Records the Voice API's `TransactionId` for the placed attempt, then cancels the call at
/// once if its campaign was cancelled while the request was out: the cancel sweep skips a
/// dial whose placing it does not know of yet.
pub(crate) async fn placed<S: DispatchStore, D: Dialer>(
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
pub(crate) async fn send_cancel<S: DispatchStore, D: Dialer>(
    shared: &Shared<S, D>,
    call_id: &CallId,
    transaction: &TransactionId,
) {
    let cancel = messages::encode_end(EndRequest::Cancel);
    match shared.dialer.update(transaction, cancel).await {
        Ok(()) => bump(&shared.totals.hung_up),
        Err(DialError::NotFound) => {}
        Err(e) => {
            warn!(%call_id, error = %e, "cancel not delivered; the watchdog ends the call");
        }
    }
}

/// One dial: the do-not-call list checked again, the contact caps decided on the number's
/// ledger, the claim (with its concurrency slot and the ledger's new count), the wait for
/// its pacing slot, the request, and what its answer means for the call. `slot_claim` is the
/// concurrency slot the tick took for it in this process: given back unless the claim lands.
pub(crate) async fn dial<S: DispatchStore, D: Dialer>(
    shared: &Shared<S, D>,
    call: CallRecord,
    campaign: Arc<Campaign>,
    slot: Slot,
    slot_claim: SlotClaim,
) {
    let store = &shared.store;
    match store.do_not_call(&call.to).await {
        Ok(false) => {}
        Ok(true) => {
            let now = shared.clock.now();
            let cancelled = store
                .cancel_waiting(&call.id, call.attempt, Reason::DoNotCall, now)
                .await;
            ended_without_dial(&call, cancelled, &shared.totals.do_not_call);
            return;
        }
        Err(e) => {
            warn!(call_id = %call.id, error = %e, "do-not-call list unreadable; dial left for the next tick");
            return;
        }
    }
    let Some(claimed) = claim(shared, &call, &campaign, slot).await else {
        return;
    };
    slot_claim.landed();
    let mut arguments = DialArguments {
        call_id: claimed.id.clone(),
        campaign_id: claimed.campaign_id.clone(),
        attempt: claimed.attempt,
        vars: claimed.vars.clone(),
    }
    .encode();
    arguments.insert(
        keys::PURPOSE.to_owned(),
        campaign.purpose.as_str().to_owned(),
    );
    let clock = &shared.clock;
    clock.sleep(slot.at.saturating_sub(clock.elapsed())).await;
    let mut held = Duration::ZERO;
    let sending = loop {
        match shared.send_now(slot.shard, &campaign) {
            Ok(sending) => break sending,
            Err(wait) => {
                held += wait;
                clock.sleep(wait).await;
            }
        }
    };
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
    if !dispatch::still_dial(status) {
        shared.landed(&campaign.id, sending, false);
        let now = shared.clock.now();
        if let Err(e) = store.release(&claimed.id, claimed.attempt, now, now).await {
            warn!(call_id = %claimed.id, error = %e, "held dial not given back; the watchdog does it");
        }
        return;
    }
    let answer = shared
        .dialer
        .place(&claimed.from, &claimed.to, arguments)
        .await;
    // A round trip the API answered (an unknown answer is a timeout, not the way's speed).
    shared.landed(
        &campaign.id,
        sending,
        !matches!(answer, Err(DialError::Unknown(_))),
    );
    let now = shared.clock.now();
    let (transaction, answer) = match answer {
        Ok(transaction) => (Some(transaction), DialAnswer::Placed),
        Err(DialError::Throttled) => (None, DialAnswer::Throttled),
        Err(DialError::Rejected { code, message }) => {
            warn!(call_id = %claimed.id, %code, "dial refused");
            (None, DialAnswer::Rejected { code, message })
        }
        Err(DialError::NotFound) => (None, DialAnswer::NoSma),
        Err(DialError::Unknown(e)) => {
            warn!(call_id = %claimed.id, error = %e, "dial answer unknown; the watchdog decides");
            (None, DialAnswer::Unknown)
        }
    };
    let outcome = match (dispatch::after_dial(answer), transaction) {
        (AfterDial::RecordPlaced, Some(transaction)) => {
            bump(&shared.totals.dialed);
            placed(shared, &claimed, &campaign, &transaction, now).await;
            Ok(())
        }
        (AfterDial::Release { after }, _) => {
            bump(&shared.totals.throttled);
            {
                let mut pacing = lock(&shared.pacing);
                let share = pacing.shard(slot.shard, shared.settings.account_cps, now);
                share.rate.throttled(now);
                let rate = share.rate.current();
                share.pacer.set_rate(rate);
                share.sends.set_rate(rate);
            }
            info!(call_id = %claimed.id, "dial throttled; back to waiting");
            store
                .release(&claimed.id, claimed.attempt, now.plus(after), now)
                .await
        }
        (AfterDial::Refuse { status, reason }, _) => {
            bump(&shared.totals.refused);
            store
                .refuse(&claimed.id, claimed.attempt, status, &reason, now)
                .await
        }
        // It may have been placed: the watchdog decides, never a second dial now.
        (AfterDial::LeaveToWatchdog | AfterDial::RecordPlaced, _) => {
            bump(&shared.totals.unknown);
            Ok(())
        }
    };
    if let Err(e) = outcome {
        // The claim stands: the call's watchdog finds it DIALING without an event and queues
        // it again.
        warn!(call_id = %claimed.id, error = %e, "dial outcome not recorded; the watchdog decides");
    }
}
