//! One dial, from its claim to what the Voice API's answer means for the call
//! ([`outdial_core::dispatch::after_dial`]), and the cancel sent to a call whose campaign
//! was cancelled meanwhile.

use std::sync::Arc;
use std::time::Duration;

use outdial_core::dispatch::{self, AfterDial, DialAnswer};
use outdial_core::ids::{CallId, TransactionId};
use outdial_core::lifecycle::EndRequest;
use outdial_core::messages::{self, DialArguments};
use outdial_core::ports::{DialError, Dialer, DispatchStore, StoreError};
use outdial_core::record::{CallRecord, Campaign, CampaignStatus};
use outdial_core::time::Timestamp;
use tracing::{info, warn};

use crate::dispatcher::{Shared, Slot, lock};
use crate::settings::bump;

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

/// One dial: the do-not-call list checked again, the claim (with its concurrency slot), the
/// wait for its pacing slot, the request, and what its answer means for the call.
pub(crate) async fn dial<S: DispatchStore, D: Dialer>(
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
                .cancel_waiting(&call.id, call.attempt, dispatch::ON_DO_NOT_CALL, now)
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
    let arguments = DialArguments {
        call_id: claimed.id.clone(),
        campaign_id: claimed.campaign_id.clone(),
        attempt: claimed.attempt,
        vars: claimed.vars.clone(),
    }
    .encode();
    let clock = &shared.clock;
    clock.sleep(slot.at.saturating_sub(clock.elapsed())).await;
    let mut held = Duration::ZERO;
    loop {
        let wait = shared.send_now(&campaign);
        if wait.is_zero() {
            break;
        }
        held += wait;
        clock.sleep(wait).await;
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
    if !dispatch::still_dial(status) {
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
                pacing.account_rate.throttled(now);
                let rate = pacing.account_rate.current();
                pacing.account.set_rate(rate);
                pacing.account_sends.set_rate(rate);
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
