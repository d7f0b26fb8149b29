//! `GET /campaigns/{id}/results`: one CSV row per contact, a page at a time.
//!
//! A page is one query of the campaign's index (at most `limit` calls, at most 1 MB of items),
//! so a response stays far below Lambda's 6 MB whatever the campaign's size, and nothing holds
//! the whole campaign. The first page starts with the header row; the others are rows only,
//! so the pages put end to end are one CSV file. A page that has more after it says where in
//! `Link` (`rel="next"`) and in `Outdial-Next-Cursor`.

use http::StatusCode;
use http::header::{HeaderName, LINK};
use lambda_http::Request;
use outdial_core::admin::{ApiStore, DispatchTrigger};
use outdial_core::ids::CampaignId;
use outdial_core::outcomes::OPTED_OUT;
use outdial_core::ports::Dialer;
use outdial_core::record::CallRecord;

use crate::endpoints::reads::{encode_cursor, limit_param};
use crate::problem::{ApiError, FieldError, Reply};
use crate::request;
use crate::service::Api;
use crate::views;

/// The media type of a results page.
pub const CSV: &str = "text/csv; charset=utf-8";
/// The header that carries the next page's cursor.
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("outdial-next-cursor");
/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_ROWS: u32 = 1000;

/// The columns, in order (docs/api.md describes each).
pub const COLUMNS: [&str; 12] = [
    "call_id",
    "ref",
    "to",
    "status",
    "attempts",
    "last_attempt_at",
    "ended_at",
    "script_outcome",
    "digits",
    "verdict",
    "opted_out",
    "reason",
];

/// A call's row, in [`COLUMNS`] order.
#[must_use]
pub fn row(call: &CallRecord) -> [String; COLUMNS.len()] {
    let dialed = call.dialed_at.is_some();
    let time = |t: Option<outdial_core::time::Timestamp>| t.map(views::time).unwrap_or_default();
    [
        call.id.as_str().to_owned(),
        call.reference.clone().unwrap_or_default(),
        call.to.as_str().to_owned(),
        call.status.as_str().to_owned(),
        if dialed { call.attempt.get() } else { 0 }.to_string(),
        time(call.dialed_at),
        time(call.ended_at),
        call.script_outcome.clone().unwrap_or_default(),
        call.digits.join(" "),
        call.verdict
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        (call.script_outcome.as_deref() == Some(OPTED_OUT)).to_string(),
        call.reason.map(|r| r.code().to_owned()).unwrap_or_default(),
    ]
}

/// The CSV text of `calls`, after the header row when `header`.
///
/// # Errors
/// Only if the CSV writer fails, which writing to memory does not.
pub fn page(calls: &[CallRecord], header: bool) -> Result<String, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(calls.len() * 128 + 256));
    let internal = |e: csv::Error| ApiError::Internal(Box::new(e));
    if header {
        out.write_record(COLUMNS).map_err(internal)?;
    }
    for call in calls {
        out.write_record(row(call)).map_err(internal)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| ApiError::Internal(Box::new(e.into_error())))?;
    String::from_utf8(bytes).map_err(|e| ApiError::Internal(Box::new(e)))
}

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// `GET /campaigns/{id}/results?limit=&cursor=`.
    pub(crate) async fn export_results(
        &self,
        req: &Request,
        id: &CampaignId,
    ) -> Result<Reply, ApiError> {
        let query = request::query(req);
        let mut errors: Vec<FieldError> = Vec::new();
        let limit = limit_param(&query, DEFAULT_ROWS, &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let cursor = query.first("cursor");
        // Without a status filter every position lies inside the listing: `None` only for a
        // cursor past the last call.
        let Some(calls) = self.calls_page(id, None, limit, cursor).await? else {
            return Ok(Reply::new(StatusCode::OK, CSV, String::new()));
        };
        let body = page(&calls.items, cursor.is_none())?;
        let mut reply = Reply::new(StatusCode::OK, CSV, body);
        if let Some(next) = calls.next.as_deref().map(encode_cursor) {
            reply = reply
                .with_header(
                    LINK,
                    format!("</campaigns/{id}/results?limit={limit}&cursor={next}>; rel=\"next\""),
                )
                .with_header(NEXT_CURSOR, next);
        }
        Ok(reply)
    }
}
