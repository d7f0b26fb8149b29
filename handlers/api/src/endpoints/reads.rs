//! The read endpoints: a campaign, a page of its calls, a call with its history.

use http::StatusCode;
use lambda_http::Request;
use outdial_core::admin::{ApiStore, DispatchTrigger};
use outdial_core::ids::{CallId, CampaignId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::ports::{Dialer, Page, StoreError};
use outdial_core::record::CallRecord;

use super::{DEFAULT_PAGE, MAX_PAGE};
use crate::problem::{ApiError, FieldError, Reply};
use crate::request;
use crate::service::Api;
use crate::views;

/// The cursor of a listing: the position it stopped at, the store's `<status>#<call id>`
/// (for campaigns, `<created_at>#<campaign id>`, [`crate::campaigns`]) with a `.` for its
/// `#` (which a URL would need escaped). Opaque to callers, but a position rather than a
/// token: any position is a place to continue from, so the document can say exactly which
/// cursors are valid, and a cursor is valid with any `status` filter.
pub(crate) fn encode_cursor(store_cursor: &str) -> String {
    store_cursor.replacen('#', ".", 1)
}

/// Where a listing filtered by `status` continues after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resume {
    /// After this store cursor.
    After(String),
    /// At the start: the cursor lies before every call in the filter's status.
    Start,
    /// Nowhere: the cursor lies after every call in the filter's status.
    Done,
}

pub(crate) fn decode_cursor(status: Option<CallStatus>, cursor: &str) -> Result<Resume, ApiError> {
    let bad = || ApiError::field("cursor", "is not a cursor this listing returned");
    let (raw, id) = cursor.split_once('.').ok_or_else(bad)?;
    let at = raw.parse::<CallStatus>().map_err(|_| bad())?;
    let id = CallId::parse(id).map_err(|_| bad())?;
    let store_cursor = format!("{}#{id}", at.as_str());
    // The index orders calls by `<status>#<id>`, and no status is a prefix of another: a
    // position in another status lies wholly before or wholly after the filter's calls.
    Ok(match status {
        Some(filter) if filter != at && at.as_str() < filter.as_str() => Resume::Start,
        Some(filter) if filter != at => Resume::Done,
        _ => Resume::After(store_cursor),
    })
}

/// A listing's `limit`: 1 to [`MAX_PAGE`], `default` when not given; a bad one is added to
/// `errors`.
pub(crate) fn limit_param(
    query: &lambda_http::aws_lambda_events::query_map::QueryMap,
    default: u32,
    errors: &mut Vec<FieldError>,
) -> u32 {
    limit_within(query, default, MAX_PAGE, errors)
}

/// A listing's `limit`: 1 to `max`, `default` when not given; a bad one is added to `errors`.
pub(crate) fn limit_within(
    query: &lambda_http::aws_lambda_events::query_map::QueryMap,
    default: u32,
    max: u32,
    errors: &mut Vec<FieldError>,
) -> u32 {
    match query.first("limit") {
        None => default,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .unwrap_or_else(|| {
                errors.push(FieldError::new("limit", format!("is 1 to {max}")));
                default
            }),
    }
}

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// `GET /campaigns/{id}`.
    pub(crate) async fn get_campaign(&self, id: &CampaignId) -> Result<Reply, ApiError> {
        let overview = self
            .store
            .overview(id)
            .await
            .map_err(|e| ApiError::from_store(e, "campaign"))?;
        Reply::json(StatusCode::OK, &views::Campaign::new(&overview))
    }

    /// `GET /campaigns/{id}/calls?status=&limit=&cursor=`.
    pub(crate) async fn list_calls(
        &self,
        req: &Request,
        id: &CampaignId,
    ) -> Result<Reply, ApiError> {
        let query = request::query(req);
        let mut errors = Vec::new();
        let status = match query.first("status") {
            None => None,
            Some(raw) => raw
                .to_ascii_uppercase()
                .parse::<CallStatus>()
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "status",
                        format!(
                            "is one of {}",
                            CallStatus::ALL.map(CallStatus::as_str).join(", ")
                        ),
                    ));
                })
                .ok(),
        };
        let limit = limit_param(&query, DEFAULT_PAGE, &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let Some(page) = self
            .calls_page(id, status, limit, query.first("cursor"))
            .await?
        else {
            return Reply::json(
                StatusCode::OK,
                &views::CallPage {
                    calls: Vec::new(),
                    next_cursor: None,
                },
            );
        };
        Reply::json(
            StatusCode::OK,
            &views::CallPage {
                calls: page.items.iter().map(views::Call::new).collect(),
                next_cursor: page.next.as_deref().map(encode_cursor),
            },
        )
    }

    /// One page of campaign `id`'s calls in `status` (every call when `None`), from where
    /// `cursor` (a cursor a listing returned, as given) stopped; `None` when the cursor lies
    /// after every call in `status`. The campaign must exist.
    pub(crate) async fn calls_page(
        &self,
        id: &CampaignId,
        status: Option<CallStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Option<Page<CallRecord>>, ApiError> {
        let resume = cursor.map(|c| decode_cursor(status, c)).transpose()?;
        self.store
            .campaign(id)
            .await
            .map_err(|e| ApiError::from_store(e, "campaign"))?;
        let cursor = match resume {
            None | Some(Resume::Start) => None,
            Some(Resume::After(cursor)) => Some(cursor),
            Some(Resume::Done) => return Ok(None),
        };
        match self
            .store
            .list_calls(id, status, limit, cursor.as_deref())
            .await
        {
            Ok(page) => Ok(Some(page)),
            Err(StoreError::Corrupt { key, .. }) if key == "cursor" => Err(ApiError::field(
                "cursor",
                "is not a cursor this listing returned",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /calls/{id}`.
    pub(crate) async fn get_call(&self, id: &CallId) -> Result<Reply, ApiError> {
        let (call, history) = self
            .store
            .call_with_history(id)
            .await
            .map_err(|e| ApiError::from_store(e, "call"))?;
        Reply::json(
            StatusCode::OK,
            &views::CallWithHistory::new(&call, &history),
        )
    }
}
