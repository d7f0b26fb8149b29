//! A live call's watchdog: the record read again, then [`outdial_core::dispatch::for_watchdog`]
//! decides between nothing, giving an unplaced dial back, and asking the SMA to end the call.

use outdial_core::dispatch::{self, AfterHangUp, ForWatchdog, HangUpAnswer};
use outdial_core::messages;
use outdial_core::ports::{DialError, Dialer, DispatchStore, StoreError};
use outdial_core::record::CallRecord;
use tracing::info;

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
            ForWatchdog::Release => {
                // Neither the Voice API's answer nor a NEW_OUTBOUND_CALL within its
                // deadline: the dial was never placed.
                info!(call_id = %record.id, "no first event in time; queued again as the same attempt");
                let released = shared
                    .store
                    .release(&record.id, record.attempt, now, now)
                    .await;
                return settled(released, &shared.totals.requeued);
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
        match dispatch::after_hang_up(reason, answer) {
            AfterHangUp::Lose(why) => {
                let lost = shared
                    .store
                    .lose(&record.id, record.attempt, &why, now)
                    .await;
                settled(lost, &shared.totals.lost)
            }
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
}
