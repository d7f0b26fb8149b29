//! [`CounterStore`] on [`MemoryStore`]: the stream's counters with one watermark per stream
//! shard, applied only past the watermark, as `DynamoCounters` applies them; campaign
//! completion; event history. The counters are the ones a claim adds `live` to, as the
//! `COUNTERS` item is shared in the table.

use outdial_core::counters::{
    CampaignCounters, Completion, CounterStore, CounterWrite, HealthWrite, HistoryItem, Span,
    StreamPosition, WATERMARK_RETENTION,
};
use outdial_core::ids::{CampaignId, E164};
use outdial_core::numbers::{Health, HealthCounts};
use outdial_core::ports::StoreError;
use outdial_core::record::CampaignStatus;
use outdial_core::time::Timestamp;

use super::MemoryStore;

impl CounterStore for MemoryStore {
    async fn apply(
        &self,
        campaign: &CampaignId,
        span: &Span,
        delta: &CampaignCounters,
    ) -> Result<CounterWrite, StoreError> {
        let mut t = self.request();
        let row = t.counters_of(campaign);
        if let Some((watermark, _)) = row.watermarks.get(&span.shard) {
            if *watermark >= span.first {
                return Ok(CounterWrite::Behind {
                    watermark: watermark.clone(),
                    counters: row.counters.clone(),
                });
            }
        }
        row.counters += delta;
        let written_at = match (span.written_at, row.watermarks.get(&span.shard)) {
            (Some(at), _) => Some(at),
            // Without a time the watermark moves and keeps the time it had.
            (None, Some((_, before))) => *before,
            (None, None) => None,
        };
        row.watermarks
            .insert(span.shard.clone(), (span.last.clone(), written_at));
        if let Some(at) = span.written_at {
            // The shards whose newest record is out of the stream: their watermarks go.
            let retention = i64::try_from(WATERMARK_RETENTION.as_millis()).unwrap_or(i64::MAX);
            let horizon = at.as_millis().saturating_sub(retention);
            row.watermarks.retain(|_, (_, written)| {
                written.is_none_or(|w: Timestamp| w.as_millis() >= horizon)
            });
        }
        Ok(CounterWrite::Applied(row.counters.clone()))
    }

    async fn apply_number(
        &self,
        number: &E164,
        span: &Span,
        delta: &HealthCounts,
    ) -> Result<HealthWrite, StoreError> {
        let mut t = self.request();
        let Some(healthy) = t.numbers.get(number).map(|m| m.number.health.is_healthy()) else {
            return Ok(HealthWrite::Unregistered);
        };
        let (counts, watermarks) = t.number_health.entry(number.clone()).or_default();
        if let Some(watermark) = watermarks.get(&span.shard) {
            if *watermark >= span.first {
                return Ok(HealthWrite::Behind {
                    watermark: watermark.clone(),
                });
            }
        }
        *counts += delta;
        watermarks.insert(span.shard.clone(), span.last.clone());
        Ok(HealthWrite::Applied {
            counts: *counts,
            healthy,
        })
    }

    async fn quarantine(
        &self,
        number: &E164,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut t = self.request();
        match t.numbers.get_mut(number) {
            Some(member) if member.number.health.is_healthy() => {
                member.number.health = Health::Quarantined {
                    reason: reason.to_owned(),
                    at: now,
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn complete_campaign(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut t = self.request();
        match t.campaigns.get_mut(campaign) {
            Some(row) if row.campaign.status == CampaignStatus::Active => {
                row.campaign.status = CampaignStatus::Completed;
                row.completed_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_history(&self, items: &[HistoryItem]) -> Result<(), StoreError> {
        let mut t = self.request();
        for item in items {
            t.history
                .entry(item.call_id.clone())
                .or_default()
                .insert((item.entry.attempt, item.entry.seq), item.clone());
        }
        Ok(())
    }

    async fn watermark(
        &self,
        campaign: &CampaignId,
        shard: &str,
    ) -> Result<Option<StreamPosition>, StoreError> {
        let mut t = self.request();
        Ok(t.counters_of(campaign)
            .watermarks
            .get(shard)
            .map(|(w, _)| w.clone()))
    }

    async fn completion(&self, campaign: &CampaignId) -> Result<Option<Completion>, StoreError> {
        let t = self.request();
        Ok(t.campaigns.get(campaign).and_then(|row| {
            (row.campaign.status == CampaignStatus::Completed).then(|| Completion {
                completed_at: row.completed_at.unwrap_or(Timestamp::EPOCH),
                announced: row.announced_at.is_some(),
            })
        }))
    }

    async fn mark_announced(
        &self,
        campaign: &CampaignId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut t = self.request();
        if let Some(row) = t.campaigns.get_mut(campaign) {
            row.announced_at.get_or_insert(now);
        }
        Ok(())
    }
}
