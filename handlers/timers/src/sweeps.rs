//! Carrying a campaign's status change to its calls: a cancelled campaign's waiting calls are
//! cancelled and its live calls asked to end; a resumed campaign's parked calls go back into
//! the `due` index at its pace.

use futures::StreamExt;
use outdial_core::ids::CampaignId;
use outdial_core::lifecycle::CallStatus;
use outdial_core::pacing::due_offset;
use outdial_core::ports::{Dialer, DispatchStore, StoreError};
use outdial_core::record::{CallRecord, CampaignStatus};
use tracing::info;

use crate::dial::send_cancel;
use crate::dispatcher::{Dispatcher, counted, lock};

impl<S, D> Dispatcher<S, D>
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    /// Carries a campaign's status change to its calls: a cancelled campaign's waiting calls
    /// are cancelled and its live calls asked to hang up; a resumed campaign's parked calls
    /// go back into the `due` index. The request is cleared once everything is done; a
    /// sweep cut short by an error is done again (each change is conditional, so repeating
    /// one is harmless).
    pub(crate) async fn sweep(&self, id: &CampaignId, due_key: &str) -> Result<(), StoreError> {
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
                            .cancel_waiting(
                                &call.id,
                                call.attempt,
                                outdial_core::policy::Reason::CampaignCancelled,
                                now,
                            )
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
                    several_at_once(
                        page.items.into_iter().zip(base..),
                        shared.settings.sweep_concurrency,
                        |(call, k)| async move {
                            let not_before = start.plus(due_offset(k, rate));
                            let now = shared.clock.now();
                            let unparked = shared.store.unpark(&call, not_before, now).await;
                            counted(unparked, &shared.totals.unparked)
                        },
                    )
                    .await?;
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
    pub(crate) async fn for_each_call<'a, F, Fut>(
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
            several_at_once(page.items, shared.settings.sweep_concurrency, &each).await?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// Runs `each` over `items`, `concurrency` at once, to the end; the first error, if any.
async fn several_at_once<I, F, Fut>(items: I, concurrency: usize, each: F) -> Result<(), StoreError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    futures::stream::iter(items)
        .map(each)
        .buffer_unordered(concurrency)
        .collect::<Vec<Result<(), StoreError>>>()
        .await
        .into_iter()
        .collect()
}
