//! A live call's watchdog: the record read again, then [`outdial_core::dispatch::for_watchdog`]
//! decides between nothing, giving up on an attempt whose placing is unknown, and asking the
//! SMA to end the call. A call the SMA no longer knows ends as its orphaned `HANGUP` says
//! ([`outdial_core::dispatch::ended_by_orphan`]), or is given up on
//! ([`outdial_core::dispatch::give_up`]): never dialed again as the same attempt.

use outdial_core::contract::validate_event;
use outdial_core::dispatch::{self, AfterHangUp, ForWatchdog, GiveUp, Guard, HangUpAnswer};
use outdial_core::ids::TransactionId;
use outdial_core::messages;
use outdial_core::ports::{Applied, DialError, Dialer, DispatchStore, StoreError};
use outdial_core::record::CallRecord;
use outdial_core::retry::RetryPolicy;
use outdial_core::time::Timestamp;
use tracing::{info, warn};

use crate::dispatcher::{Dispatcher, lock, settled};
use crate::settings::bump;

impl<S, D> Dispatcher<S, D>
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    /// A live call's watchdog fired.
    pub(crate) async fn watch(&self, due: &CallRecord) -> Result<(), StoreError> {
        let shared = &self.shared;
        if lock(&shared.in_flight).contains(&due.id) {
            // Its dial task is still running here: the dial has not been sent, or its answer
            // is on its way.
            return Ok(());
        }
        let now = shared.clock.now();
        let record = shared.store.call(&due.id).await?;
        let reason = match dispatch::for_watchdog(&record, due.attempt) {
            ForWatchdog::Nothing => return Ok(()),
            ForWatchdog::PlacingUnknown => {
                info!(call_id = %record.id, "placing unknown at the first-event deadline; given up on");
                let guard = Guard::unplaced(record.attempt);
                return self
                    .give_up(&record, guard, dispatch::PLACING_UNKNOWN, now)
                    .await;
            }
            ForWatchdog::HangUp(reason) => reason,
        };
        // `for_watchdog` asks for a hang-up only of a call whose transaction is known.
        let Some(transaction) = record.current_transaction() else {
            return Ok(());
        };
        let answer = match shared
            .dialer
            .update(transaction, messages::encode_end(reason))
            .await
        {
            Ok(()) => {
                bump(&shared.totals.hung_up);
                HangUpAnswer::Delivered
            }
            Err(DialError::NotFound) => HangUpAnswer::NotFound,
            Err(_) => HangUpAnswer::Failed,
        };
        match dispatch::after_hang_up(answer) {
            AfterHangUp::Over => self.over(&record, transaction, now).await,
            AfterHangUp::Rearm => {
                let again = now.plus(shared.settings.recheck_after);
                let rearmed = shared
                    .store
                    .rearm(&record.id, record.attempt, again, now)
                    .await;
                match rearmed {
                    Err(StoreError::Conflict) => Ok(()),
                    other => other,
                }
            }
        }
    }

    /// A call the SMA no longer knows, whose end was never recorded. If the SMA handler
    /// received its `HANGUP` but could not match it to the call then (the store did not
    /// answer in time, or the first events never reached it), it kept the event as an
    /// orphan of the transaction: that decides the end. Otherwise the end cannot be known.
    async fn over(
        &self,
        record: &CallRecord,
        transaction: &TransactionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let shared = &self.shared;
        let policy = self.policy(record).await?;
        for raw in shared.store.orphans(transaction).await? {
            let Some(event) = serde_json::from_str(&raw)
                .ok()
                .and_then(|v| validate_event(&v).ok())
            else {
                continue;
            };
            let Some(write) = dispatch::ended_by_orphan(record, &event, &policy, now) else {
                continue;
            };
            return match shared.store.apply_event(&write).await {
                Ok(Applied::Written(after)) => {
                    info!(call_id = %record.id, status = after.status.as_str(), "end read from the call's orphaned HANGUP");
                    bump(&shared.totals.recovered);
                    Ok(())
                }
                // The record moved on meanwhile: its own events decided.
                Ok(_) | Err(StoreError::Conflict | StoreError::NotFound) => Ok(()),
                Err(e) => Err(e),
            };
        }
        warn!(call_id = %record.id, "the SMA no longer knows the call and no HANGUP of it was kept; given up on");
        self.give_up(
            record,
            Guard::live(record.attempt),
            dispatch::END_UNKNOWN,
            now,
        )
        .await
    }

    /// Gives up on `record`'s attempt, whose end cannot be known, under `guard`: the next
    /// attempt when the retry policy allows one and the callee was not reached, else `LOST`.
    async fn give_up(
        &self,
        record: &CallRecord,
        guard: Guard,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let shared = &self.shared;
        let policy = self.policy(record).await?;
        let (retry, total) = match dispatch::give_up(record, &policy) {
            GiveUp::Retry { attempt, after } => {
                (Some((attempt, now.plus(after))), &shared.totals.retried)
            }
            GiveUp::Lose => (None, &shared.totals.lost),
        };
        let given = shared
            .store
            .give_up(&record.id, guard, retry, reason, now)
            .await;
        settled(given, total)
    }

    /// The retry policy of `record`'s campaign; the default one should the campaign be gone.
    async fn policy(&self, record: &CallRecord) -> Result<RetryPolicy, StoreError> {
        Ok(self
            .campaign(&record.campaign_id)
            .await?
            .map(|c| c.retry.clone())
            .unwrap_or_default())
    }
}
