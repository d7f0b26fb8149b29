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

/// The `charset` parameter of the body's media type, unquoted and lower case, if it has one.
#[must_use]
pub fn charset(req: &Request) -> Option<String> {
    let value = req
        .headers()
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    value.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case("charset").then(|| {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            value.trim().to_ascii_lowercase()
        })
    })
}

/// Whether a body in `charset` reads as UTF-8 (US-ASCII is a part of it).
fn reads_as_utf8(charset: &str) -> bool {
    matches!(charset, "utf-8" | "utf8" | "us-ascii" | "ascii")
}

/// What a body says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Csv,
}

/// The body's kind among those `accept`ed, in UTF-8: a `charset` other than UTF-8 or
/// US-ASCII (in any case, quoted or not) is refused rather than read as something it is not.
///
/// # Errors
/// [`ApiError::UnsupportedMediaType`] for any other media type or charset.
pub fn kind(req: &Request, csv: bool) -> Result<Kind, ApiError> {
    let accept = if csv {
        "application/json, text/csv"
    } else {
        "application/json"
    };
    let kind = match media_type(req).as_deref() {
        Some("application/json") => Kind::Json,
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Kind::Json,
        Some("text/csv" | "application/csv") if csv => Kind::Csv,
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accept,
                charset: None,
            });
        }
    };
    match charset(req) {
        Some(charset) if !reads_as_utf8(&charset) => Err(ApiError::UnsupportedMediaType {
            accept,
            charset: Some(charset),
        }),
        _ => Ok(kind),
    }
}

/// The body as text (UTF-8; [`kind`] refused other charsets).
///
/// # Errors
/// [`ApiError::Invalid`] when it is not UTF-8, saying so when it is UTF-16.
pub fn text(req: &Request) -> Result<&str, ApiError> {
    let body = req.body().as_ref();
    if body.starts_with(&[0xFF, 0xFE]) || body.starts_with(&[0xFE, 0xFF]) {
        return Err(ApiError::field(
            "body",
            "is UTF-16 (it starts with a UTF-16 byte order mark); send UTF-8",
        ));
    }
    std::str::from_utf8(body).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use lambda_http::Body;

    use super::*;

    fn req(content_type: &str, body: &[u8]) -> Request {
        http::Request::builder()
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Body::Binary(body.to_vec()))
            .unwrap_or_default()
    }

    #[test]
    fn a_charset_other_than_utf8_is_refused_in_any_spelling() {
        for ct in [
            "text/csv; charset=utf-16",
            "text/csv;CHARSET=\"UTF-16BE\"",
            "text/csv; header=present; charset=latin1",
            "application/json; charset=utf-32",
            "text/csv; charset=",
        ] {
            match kind(&req(ct, b""), true) {
                Err(ApiError::UnsupportedMediaType {
                    charset: Some(_), ..
                }) => {}
                other => panic!("{ct}: {other:?}"),
            }
        }
        for ct in [
            "text/csv",
            "text/csv; charset=utf-8",
            "text/csv; Charset=\"UTF-8\"",
            "text/csv; charset=us-ascii",
            "text/csv;header=absent",
        ] {
            assert_eq!(kind(&req(ct, b""), true).ok(), Some(Kind::Csv), "{ct}");
        }
        assert_eq!(
            charset(&req("text/csv; q=1; charset = \" UTF-16 \"", b"")).as_deref(),
            Some("utf-16")
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_is_a_field_error() {
        for body in [
            &b"to\n\xff\xfe"[..],
            b"\xff\xfet\0o\0",
            b"\xfe\xff\0t\0o",
            b"to\n\xc3(",
        ] {
            match text(&req("text/csv", body)) {
                Err(ApiError::Invalid(errors)) => {
                    assert_eq!(errors[0].field, "body", "{body:?}");
                    assert!(errors[0].reason.contains("UTF-"), "{body:?}");
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
        assert_eq!(
            text(&req("text/csv", "\u{feff}to\n".as_bytes())).ok(),
            Some("\u{feff}to\n")
        );
    }
}
