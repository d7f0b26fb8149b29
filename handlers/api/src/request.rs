//! Reading a request as API Gateway (HTTP API, payload 2.0) hands it over through
//! `lambda_http`, or as a test builds it.

use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Request, RequestExt};

use crate::problem::ApiError;

/// The header that carries a campaign's spec next to a CSV body.
pub const SPEC_HEADER: &str = "x-outdial-spec";

/// The path without the stage: API Gateway's raw path, or the URI's when there is none.
#[must_use]
pub fn path(req: &Request) -> &str {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    }
}

/// The query parameters: as API Gateway parsed them, or from the URI.
#[must_use]
pub fn query(req: &Request) -> QueryMap {
    match req.query_string_parameters_ref() {
        Some(map) => map.clone(),
        None => req
            .uri()
            .query()
            .map(|q| q.parse::<QueryMap>().unwrap_or_default())
            .unwrap_or_default(),
    }
}

/// The body's media type, lower case, without parameters (`text/csv`).
#[must_use]
pub fn media_type(req: &Request) -> Option<String> {
    let value = req
        .headers()
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// What a body says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Csv,
}

/// The body's kind among those `accept`ed.
///
/// # Errors
/// [`ApiError::UnsupportedMediaType`] for any other.
pub fn kind(req: &Request, csv: bool) -> Result<Kind, ApiError> {
    let accept = if csv {
        "application/json, text/csv"
    } else {
        "application/json"
    };
    match media_type(req).as_deref() {
        Some("application/json") => Ok(Kind::Json),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Ok(Kind::Json),
        Some("text/csv" | "application/csv") if csv => Ok(Kind::Csv),
        _ => Err(ApiError::UnsupportedMediaType { accept }),
    }
}

/// The body as text.
///
/// # Errors
/// [`ApiError::Invalid`] when it is not UTF-8.
pub fn text(req: &Request) -> Result<&str, ApiError> {
    std::str::from_utf8(req.body().as_ref()).map_err(|e| {
        ApiError::field(
            "body",
            format!("is not UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// The body as JSON.
///
/// # Errors
/// [`ApiError::Invalid`] naming where the JSON breaks.
pub fn json(req: &Request) -> Result<serde_json::Value, ApiError> {
    let body = req.body().as_ref();
    if body.is_empty() {
        return Err(ApiError::field("body", "is empty; send a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::field("body", format!("is not JSON: {e}")))
}
