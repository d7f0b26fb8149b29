//! [`SmaStore`] on [`MemoryStore`]: the one write per SMA event, as `DynamoStore::apply_event`
//! makes it, and the two recovery paths (a call found by its transaction, an orphan kept).

use outdial_core::ids::{CampaignId, Sequence, TransactionId};
use outdial_core::ports::{Applied, DueChange, EventWrite, Lane, SmaStore, StoreError};
use outdial_core::record::{AppliedEvent, CallRecord, Campaign};
use outdial_core::time::Timestamp;

use super::{CallRow, MemoryStore, Orphan};

impl MemoryStore {
    /// Applies `w` to `row`, setting and removing what `DynamoStore::apply_event`'s update
    /// sets and removes.
    fn write_event(&self, row: &mut CallRow, w: &EventWrite) {
        let next = &w.next;
        let r = &mut row.record;
        r.status = next.status;
        r.attempt = next.attempt;
        r.last_event = Some(AppliedEvent {
            attempt: w.attempt,
            seq: w.seq,
            event_type: w.event_type.clone(),
            response: w.response.clone(),
        });
        r.answered = next.answered;
        r.end_request = next.end_request;
        r.transaction_id = Some(w.transaction_id.clone());
        r.updated_at = w.at;
        if next.answered && !w.expected.answered && r.answered_at.is_none() {
            r.answered_at = Some(w.at);
        }
        if next.status.is_terminal() {
            r.ended_at = Some(w.at);
        }
        if let Some(outcome) = w.outcome {
            r.outcome = Some(outcome);
        }
        if let Some(code) = &w.sip_code {
            r.sip_code = Some(code.clone());
        }
        if let Some(error) = &w.error {
            r.last_error = Some(error.clone());
        }
        if let Some(script) = &w.script_outcome {
            r.script_outcome = Some(script.clone());
        }
        if let Some(keys) = &w.digits {
            r.digits.push(keys.clone());
        }
        if let Some(detection) = &w.detection {
            r.verdict = Some(detection.verdict);
            if detection.greeting_ms.is_some() {
                r.greeting_ms = detection.greeting_ms;
            }
        }
        if !next.status.is_live() {
            row.slot = None;
        }
        match w.due {
            DueChange::Keep => {}
            DueChange::At(at) => {
                // A live call's next deadline is a watchdog; anything else waits for a dial.
                let lane = if next.status.is_live() {
                    Lane::Watch
                } else {
                    Lane::Dial
                };
                row.listing = Some(self.listing(lane, &w.call_id, at));
                row.record.due_at = Some(at);
            }
            DueChange::Clear => {
                row.listing = None;
                row.record.due_at = None;
            }
        }
    }

    /// [`SmaStore::apply_event`].
    ///
    /// # Errors
    /// As that port's contract says; [`StoreError::Conflict`] for a write no status admits
    /// (no claimed status among the expected ones), which `DynamoStore` refuses without
    /// sending.
    pub async fn apply_event(&self, w: &EventWrite) -> Result<Applied, StoreError> {
        let mut t = self.request();
        if w.statuses().is_empty() {
            return Err(StoreError::Conflict);
        }
        let row = t.calls.get_mut(&w.call_id).ok_or(StoreError::NotFound)?;
        // The condition `DynamoStore` writes for `w` (`Condition::event`), as core says it.
        if w.admits(&row.record) {
            self.write_event(row, w);
            let written = row.record.clone();
            // In the same write: the opted-out number joins the list, keeping an entry it had.
            if let Some(entry) = &w.opt_out {
                t.do_not_call
                    .entry(entry.e164.clone())
                    .or_insert_with(|| entry.clone());
            }
            return Ok(Applied::Written(Box::new(written)));
        }
        Ok(w.refused_over(row.record.clone()))
    }
}

impl SmaStore for MemoryStore {
    async fn campaign(&self, id: &CampaignId) -> Result<Campaign, StoreError> {
        Self::campaign(self, id).await
    }

    async fn apply_event(&self, write: &EventWrite) -> Result<Applied<()>, StoreError> {
        Ok(Self::apply_event(self, write).await?.map_written(drop))
    }

    async fn call_by_transaction(
        &self,
        transaction: &TransactionId,
    ) -> Result<Option<CallRecord>, StoreError> {
        let t = self.request();
        // The first by id, should two calls ever hold one transaction (none does).
        Ok(t.calls
            .values()
            .filter(|row| row.record.transaction_id.as_ref() == Some(transaction))
            .map(|row| &row.record)
            .min_by(|a, b| a.id.cmp(&b.id))
            .cloned())
    }

    async fn record_orphan(
        &self,
        transaction_id: &str,
        seq: Sequence,
        event_type: &str,
        raw: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut t = self.request();
        t.orphans.insert(
            (transaction_id.to_owned(), seq),
            Orphan {
                transaction_id: transaction_id.to_owned(),
                seq,
                event_type: event_type.to_owned(),
                raw: raw.to_owned(),
                at,
            },
        );
        Ok(())
    }
}
