//! Campaigns as the SMA handler needs them: read once per process and kept.
//!
//! A campaign's script, retry policy and from-number never change after it is created (pause,
//! resume and cancel change its status, which this handler does not read: a cancel reaches a
//! live call as `CALL_UPDATE_REQUESTED`). So a warm function answers every event of every call
//! of a campaign with exactly one DynamoDB request, the call's own write; only the first
//! event of a campaign in a fresh process reads the campaign first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use outdial_core::ids::CampaignId;
use outdial_core::ports::{SmaStore, StoreError};
use outdial_core::record::Campaign;

/// Campaigns kept per process. Bounded: past `capacity` campaigns it starts over, which costs
/// one read per campaign in use.
#[derive(Debug)]
pub struct Campaigns {
    kept: Mutex<HashMap<CampaignId, Arc<Campaign>>>,
    capacity: usize,
}

impl Default for Campaigns {
    fn default() -> Self {
        Self::with_capacity(256)
    }
}

impl Campaigns {
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The campaign, from memory or from the store.
    ///
    /// # Errors
    /// What the store answers; [`StoreError::NotFound`] for an unknown campaign.
    pub async fn get(
        &self,
        store: &impl SmaStore,
        id: &CampaignId,
    ) -> Result<Arc<Campaign>, StoreError> {
        if let Some(c) = self.lock().get(id) {
            return Ok(Arc::clone(c));
        }
        let campaign = Arc::new(store.campaign(id).await?);
        let mut kept = self.lock();
        if kept.len() >= self.capacity {
            kept.clear();
        }
        kept.insert(id.clone(), Arc::clone(&campaign));
        Ok(campaign)
    }

    /// Whether the campaign is in memory (its next event costs no extra read).
    #[must_use]
    pub fn contains(&self, id: &CampaignId) -> bool {
        self.lock().contains_key(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CampaignId, Arc<Campaign>>> {
        // The map is only ever inserted into or cleared whole; a panic elsewhere cannot leave
        // it half-updated, so a poisoned lock is still usable.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
