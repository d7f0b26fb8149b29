//! `GET /campaigns`: the account's campaigns, newest first, a page at a time, each with a
//! summary of its counters (`docs/api.md`, "Listing campaigns").
//!
//! Each campaign is shown as `GET /campaigns/{id}` shows it ([`views::Campaign`]), cut down to
//! what a list needs, so the two never disagree. A page's campaigns come from one read of the
//! `campaigns` index (more while a `status` filter skips campaigns) and their counters from
//! one `BatchGetItem`.

use std::collections::BTreeMap;

use http::StatusCode;
use lambda_http::Request;
use outdial_core::admin::{ApiStore, DispatchTrigger, ListedCampaign};
use outdial_core::ids::CampaignId;
use outdial_core::ports::{Dialer, StoreError};
use outdial_core::record::{CampaignStatus, PoolRef};
use serde::Serialize;

use crate::endpoints::reads::{encode_cursor, limit_within};
use crate::problem::{ApiError, FieldError, Reply};
use crate::request;
use crate::service::Api;
use crate::views;

/// Campaigns per page unless `limit` says otherwise.
pub const DEFAULT_CAMPAIGNS: u32 = 25;
/// The most campaigns a page holds: their counters are one `BatchGetItem` (100 keys at most).
pub const MAX_CAMPAIGNS: u32 = 100;

/// The refusal of a cursor this listing could not have returned.
fn bad_cursor() -> FieldError {
    FieldError::new("cursor", "is not a cursor this listing returned")
}

/// The store's position from a cursor: the cursor is the campaign's `listed_key`
/// (`<created_at ms, 14 digits>#<campaign id>`) with a `.` for its `#`, as
/// [`encode_cursor`] writes it. Any campaign's position is a place to continue from, whether
/// the campaign exists or not, and whatever `status` the next page asks for.
pub(crate) fn decode_cursor(cursor: &str) -> Option<String> {
    let (ms, id) = cursor.split_once('.')?;
    let digits = (14..=19).contains(&ms.len()) && ms.bytes().all(|b| b.is_ascii_digit());
    let id = CampaignId::parse(id).ok().filter(|_| digits)?;
    Some(format!("{ms}#{id}"))
}

/// The `status` filter: a campaign status, in any letter case.
fn status_param(raw: &str) -> Result<CampaignStatus, FieldError> {
    let upper = raw.to_ascii_uppercase();
    CampaignStatus::ALL
        .into_iter()
        .find(|st| st.as_str() == upper)
        .ok_or_else(|| {
            FieldError::new(
                "status",
                format!(
                    "is one of {}",
                    CampaignStatus::ALL.map(CampaignStatus::as_str).join(", ")
                ),
            )
        })
}

/// A campaign's counters as the list shows them.
#[derive(Debug, Serialize)]
pub struct SummaryCounts {
    /// Calls holding a concurrency slot.
    pub live: i64,
    /// Attempts that reached the SMA.
    pub placed: i64,
    /// Attempts answered.
    pub answered: i64,
    /// Calls in a terminal status.
    pub terminal: i64,
    /// Calls in each status now, every status present.
    pub by_status: BTreeMap<&'static str, i64>,
}

/// One campaign in `GET /campaigns`.
#[derive(Debug, Serialize)]
pub struct CampaignSummary<'a> {
    pub campaign_id: &'a str,
    pub name: &'a str,
    pub from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_pool: Option<&'a PoolRef>,
    pub status: &'static str,
    pub created_at: String,
    /// When it completed; only while it is `COMPLETED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub contacts: i64,
    pub progress: f64,
    pub counts: SummaryCounts,
}

impl<'a> CampaignSummary<'a> {
    pub fn new(listed: &'a ListedCampaign) -> Self {
        let o = &listed.overview;
        let views::Campaign {
            campaign_id,
            name,
            from,
            caller_pool,
            status,
            created_at,
            contacts,
            progress,
            counts,
            ..
        } = views::Campaign::new(o);
        let completed = o.campaign.status == CampaignStatus::Completed;
        Self {
            campaign_id,
            name,
            from,
            caller_pool,
            status,
            created_at,
            completed_at: listed.completed_at.filter(|_| completed).map(views::time),
            contacts,
            progress,
            counts: SummaryCounts {
                live: counts.live,
                placed: counts.placed,
                answered: counts.answered,
                terminal: o.counters.terminal(),
                by_status: counts.by_status,
            },
        }
    }
}

/// A page of `GET /campaigns`.
#[derive(Debug, Serialize)]
pub struct CampaignList<'a> {
    pub campaigns: Vec<CampaignSummary<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// `GET /campaigns?status=&limit=&cursor=`.
    pub(crate) async fn list_campaigns(&self, req: &Request) -> Result<Reply, ApiError> {
        let query = request::query(req);
        let mut errors = Vec::new();
        let status = query
            .first("status")
            .map(status_param)
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let limit = limit_within(&query, DEFAULT_CAMPAIGNS, MAX_CAMPAIGNS, &mut errors);
        let cursor = match query.first("cursor") {
            None => None,
            Some(raw) => {
                let decoded = decode_cursor(raw);
                if decoded.is_none() {
                    errors.push(bad_cursor());
                }
                decoded
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let page = match self
            .store
            .list_campaigns(status, limit, cursor.as_deref())
            .await
        {
            Ok(page) => page,
            Err(StoreError::Corrupt { key, .. }) if key == "cursor" => {
                return Err(ApiError::Invalid(vec![bad_cursor()]));
            }
            Err(e) => return Err(e.into()),
        };
        Reply::json(
            StatusCode::OK,
            &CampaignList {
                campaigns: page.items.iter().map(CampaignSummary::new).collect(),
                next_cursor: page.next.as_deref().map(encode_cursor),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_the_position_a_listing_stopped_at() {
        let position = "01900000000000#cmp_1";
        let cursor = encode_cursor(position);
        assert_eq!(cursor, "01900000000000.cmp_1");
        assert_eq!(decode_cursor(&cursor).as_deref(), Some(position));
    }

    #[test]
    fn a_cursor_that_names_no_position_is_refused() {
        for bad in [
            "",
            ".",
            "01900000000000",
            "01900000000000.",
            ".cmp_1",
            "1900000000000.cmp_1",
            "0190000000000x.cmp_1",
            "01900000000000#cmp_1",
            "01900000000000.cmp.1",
            "01900000000000.cmp#1",
            "QUEUED.call_1",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
        assert_eq!(
            decode_cursor(&format!("01900000000000.{}", "a".repeat(65))),
            None
        );
    }

    #[test]
    fn the_status_filter_is_a_campaign_status_in_any_case() {
        assert_eq!(status_param("PAUSED").unwrap(), CampaignStatus::Paused);
        assert_eq!(
            status_param("completed").unwrap(),
            CampaignStatus::Completed
        );
        for bad in ["", "QUEUED", "ACTIVE ", "live"] {
            let e = status_param(bad).unwrap_err();
            assert_eq!(e.field, "status", "{bad:?}");
        }
    }
}
