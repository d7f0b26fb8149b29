//! Errors become HTTP responses here, and only here.
//!
//! Every failure a request can meet is an [`ApiError`]; expected ones (a bad field, an unknown
//! id, a transition that is not allowed) are answered with RFC 9457 problem details naming
//! what is wrong, unexpected ones are logged with their cause chain and answered with an
//! opaque 500. Nothing is ever returned to API Gateway as an `Err`, which it would turn into
//! a 502.

use std::fmt::Write as _;

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use outdial_core::ids::mask_raw;
use outdial_core::ports::{BoxError, StoreError};
use serde::Serialize;

pub use crate::errors::FieldError;
use crate::errors::{ListError, Rejected};

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the problem types are explained.
const TYPE_BASE: &str = "https://github.com/outdial/outdial/blob/main/docs/api.md#";

/// The rule a campaign's script must keep to identify the caller.
const IDENTIFICATION_RULE: &str = "47 CFR 64.1200(b)(1)";

/// Every problem type (the part of `type` after `#`); `docs/api.md` explains each under a
/// heading of that name.
pub const TYPES: [&str; 18] = [
    "unauthorized",
    "not-found",
    "method-not-allowed",
    "unsupported-media-type",
    "payload-too-large",
    "invalid-request",
    "no-contact-accepted",
    "do-not-call",
    "destination-refused",
    "caller-identification",
    "no-consent",
    "empty-pool",
    "conflict",
    "pool-full",
    "request-in-progress",
    "idempotency-key-reused",
    "unavailable",
    "internal-error",
];

/// Everything that can keep a request from its normal answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    /// A media type the route does not take, or a charset other than UTF-8 (`charset`, as
    /// the request named it).
    #[error("unsupported media type")]
    UnsupportedMediaType {
        accept: &'static str,
        charset: Option<String>,
    },
    #[error("{0}")]
    TooLarge(String),
    /// A request that cannot be read as it is: the fields at fault.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// Contacts were given and none could be accepted.
    #[error("no contact was accepted")]
    NoneAccepted {
        rejected: Vec<Rejected>,
        truncated: bool,
        count: usize,
    },
    /// A single call's number is on the do-not-call list.
    #[error("the number is on the do-not-call list")]
    DoNotCall,
    /// A well-formed number the account never calls or may not call
    /// (`crate::destinations`): its field and why.
    #[error("the destination is refused")]
    Refused(FieldError),
    /// A campaign's script does not say who is calling as its first spoken words
    /// (`Script::check_identification`): the field and the script's reason.
    #[error("the script does not identify the caller")]
    CallerIdentification(FieldError),
    /// A telemarketing call for a contact without recorded consent: the field and why.
    #[error("the contact's consent is missing")]
    NoConsent(FieldError),
    /// A campaign's caller-ID pool has no healthy number to dial from: the field naming the
    /// pool and why.
    #[error("the caller-ID pool has no healthy number")]
    EmptyPool(FieldError),
    /// The resource is not in a state that allows the request.
    #[error("{detail}")]
    Conflict {
        detail: String,
        retry_after: Option<u64>,
    },
    /// A caller-ID pool holds as many numbers as it may; the detail says which.
    #[error("{0}")]
    PoolFull(String),
    /// Another request with this idempotency key is being processed.
    #[error("a request with this Idempotency-Key is in progress")]
    InProgress { retry_after: u64 },
    /// The idempotency key was used for a different request.
    #[error("the Idempotency-Key was used for a different request")]
    KeyReused,
    /// The store or a downstream service is overloaded or slow; worth retrying.
    #[error("temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything unexpected; logged, never shown.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    /// A single field at fault.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, reason)])
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The store's error where the request's own resource is concerned: `NotFound` names
    /// `what`, a failed condition is a conflict described by `conflict`.
    pub fn from_store(err: StoreError, what: &str) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound(format!("no such {what}")),
            StoreError::Conflict => {
                Self::conflict(format!("the {what} changed meanwhile; try again"))
            }
            other => other.into(),
        }
    }

    /// Whether this answer is the request's final word, to be replayed to its retries: not
    /// when the same request may succeed later (a 5xx, a call still being dialed, a key
    /// still held by another attempt).
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            Self::Unavailable(_)
                | Self::Internal(_)
                | Self::InProgress { .. }
                | Self::Conflict {
                    retry_after: Some(_),
                    ..
                }
        )
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::NoneAccepted { .. }
            | Self::DoNotCall
            | Self::Refused(_)
            | Self::CallerIdentification(_)
            | Self::NoConsent(_)
            | Self::EmptyPool(_)
            | Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } | Self::PoolFull(_) | Self::InProgress { .. } => {
                StatusCode::CONFLICT
            }
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed { .. } => "method-not-allowed",
            Self::UnsupportedMediaType { .. } => "unsupported-media-type",
            Self::TooLarge(_) => "payload-too-large",
            Self::Invalid(_) => "invalid-request",
            Self::NoneAccepted { .. } => "no-contact-accepted",
            Self::DoNotCall => "do-not-call",
            Self::Refused(_) => "destination-refused",
            Self::CallerIdentification(_) => "caller-identification",
            Self::NoConsent(_) => "no-consent",
            Self::EmptyPool(_) => "empty-pool",
            Self::Conflict { .. } => "conflict",
            Self::PoolFull(_) => "pool-full",
            Self::InProgress { .. } => "request-in-progress",
            Self::KeyReused => "idempotency-key-reused",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal-error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Unauthorized => "Authentication required",
            Self::NotFound(_) => "Not found",
            Self::MethodNotAllowed { .. } => "Method not allowed",
            Self::UnsupportedMediaType { .. } => "Unsupported media type",
            Self::TooLarge(_) => "Request too large",
            Self::Invalid(_) => "Invalid request",
            Self::NoneAccepted { .. } => "No contact was accepted",
            Self::DoNotCall => "Number on the do-not-call list",
            Self::Refused(_) => "Destination refused",
            Self::CallerIdentification(_) => "Caller identification required",
            Self::NoConsent(_) => "No consent recorded",
            Self::EmptyPool(_) => "No healthy caller ID in the pool",
            Self::Conflict { .. } => "Conflict",
            Self::PoolFull(_) => "Caller-ID pool full",
            Self::InProgress { .. } => "Request in progress",
            Self::KeyReused => "Idempotency-Key reused",
            Self::Unavailable(_) => "Temporarily unavailable",
            Self::Internal(_) => "Internal error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Unauthorized => {
                "this request needs valid credentials (IAM in AWS, a bearer token locally)".into()
            }
            Self::MethodNotAllowed { allow } => format!("this path accepts {allow}"),
            Self::UnsupportedMediaType {
                accept,
                charset: None,
            } => format!("send {accept}"),
            Self::UnsupportedMediaType {
                accept,
                charset: Some(charset),
            } => format!(
                "the body is declared charset={charset}, which is not read: send it as UTF-8 \
                 (charset=utf-8, or no charset), as {accept}"
            ),
            Self::Invalid(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.reason),
                many => format!("{} fields are invalid; see errors", many.len()),
            },
            Self::NoneAccepted { count: 0, .. } => {
                "the list holds no contact (a CSV header and no rows); send at least one".into()
            }
            Self::NoneAccepted { count, .. } => {
                format!("all {count} contacts were rejected; see rejected")
            }
            Self::DoNotCall => {
                "the number is on the do-not-call list; it will not be called".into()
            }
            Self::Refused(fault) | Self::NoConsent(fault) | Self::EmptyPool(fault) => {
                format!("{}: {}", fault.field, fault.reason)
            }
            Self::CallerIdentification(fault) if fault.reason.contains(IDENTIFICATION_RULE) => {
                format!("{}: {}", fault.field, fault.reason)
            }
            Self::CallerIdentification(fault) => format!(
                "{}: {} (a prerecorded call must say who is calling at its start: {IDENTIFICATION_RULE})",
                fault.field, fault.reason
            ),
            Self::InProgress { .. } => {
                "a request with this Idempotency-Key is being processed; retry to get its answer"
                    .into()
            }
            Self::KeyReused => {
                "this Idempotency-Key was used for a request with another method, path or body; \
                 use a new key for a new request"
                    .into()
            }
            Self::Unavailable(_) => "the service is busy; retry shortly".into(),
            Self::Internal(_) => "the request failed; it is safe to retry it with the same \
                                  Idempotency-Key"
                .into(),
            Self::NotFound(d)
            | Self::TooLarge(d)
            | Self::PoolFull(d)
            | Self::Conflict { detail: d, .. } => d.clone(),
        }
    }

    /// The response for this error. 5xx causes are logged here with their chain.
    pub fn into_response(self) -> Response<Body> {
        match &self {
            Self::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "request failed");
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = %chain(cause.as_ref()), "request refused for load");
            }
            _ => {}
        }
        let status = self.status();
        let problem = Problem {
            r#type: format!("{TYPE_BASE}{}", self.slug()),
            title: self.title(),
            status: status.as_u16(),
            detail: self.detail(),
            errors: match &self {
                Self::Invalid(errors) => Some(errors.clone()),
                Self::Refused(fault)
                | Self::CallerIdentification(fault)
                | Self::NoConsent(fault)
                | Self::EmptyPool(fault) => Some(vec![fault.clone()]),
                _ => None,
            },
            rejected_count: match &self {
                Self::NoneAccepted { count, .. } => Some(*count),
                _ => None,
            },
            rejected: match &self {
                Self::NoneAccepted { rejected, .. } => Some(rejected),
                _ => None,
            },
            rejected_truncated: match &self {
                Self::NoneAccepted {
                    truncated: true, ..
                } => Some(true),
                _ => None,
            },
        };
        let body = serde_json::to_string(&problem).unwrap_or_else(|_| {
            format!(
                r#"{{"title":"{}","status":{}}}"#,
                problem.title, problem.status
            )
        });
        let mut response = Reply::new(status, PROBLEM_JSON, body).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed { allow } => {
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    headers.insert(header::ALLOW, v);
                }
            }
            Self::UnsupportedMediaType { accept, .. } => {
                headers.insert("accept-post", HeaderValue::from_static(accept));
            }
            Self::InProgress { retry_after }
            | Self::Conflict {
                retry_after: Some(retry_after),
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1_u64));
            }
            _ => {}
        }
        response
    }
}

impl From<ListError> for ApiError {
    fn from(err: ListError) -> Self {
        match err {
            ListError::Invalid(errors) => Self::Invalid(errors),
            ListError::Empty => Self::NoneAccepted {
                rejected: Vec::new(),
                truncated: false,
                count: 0,
            },
            ListError::TooLarge(detail) => Self::TooLarge(detail),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Throttled(_) | StoreError::Timeout(_) | StoreError::AtCapacity => {
                Self::Unavailable(Box::new(err))
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

/// RFC 9457 problem details, with outdial's extension members.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    r#type: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldError>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a Vec<Rejected>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_truncated: Option<bool>,
}

/// An error and its sources, one line, for logs: anything that looks like a phone number
/// (a stored key such as `DNC#+12025550100` can end up in a message) is masked.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    redact(&out)
}

/// Masks every run of seven or more digits (with a leading `+` if it has one).
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        if digits >= 7 {
            out.push_str(&mask_raw(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A normal answer: status, content type and body, which is all an idempotent replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
    /// Headers besides `Content-Type` (a next page's `Link`, say).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// This answer with header `name` set to `value` too.
    #[must_use]
    pub fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A JSON answer.
    pub fn json(status: StatusCode, value: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_string(value).map_err(|e| ApiError::Internal(Box::new(e)))?;
        Ok(Self::new(status, JSON, body))
    }

    /// An answer without a body.
    pub fn empty(status: StatusCode) -> Self {
        Self::new(status, "", String::new())
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(if self.body.is_empty() {
            Body::Empty
        } else {
            Body::Text(self.body)
        });
        *response.status_mut() = self.status;
        if !self.content_type.is_empty() {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
        }
        for (name, value) in self.headers {
            // Values are built from ids and numbers; one that is not a header value is left out.
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_listed_problem_type() {
        let errors = [
            ApiError::Unauthorized,
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed {
                allow: String::new(),
            },
            ApiError::UnsupportedMediaType {
                accept: JSON,
                charset: None,
            },
            ApiError::TooLarge(String::new()),
            ApiError::Invalid(Vec::new()),
            ApiError::NoneAccepted {
                rejected: Vec::new(),
                truncated: false,
                count: 0,
            },
            ApiError::DoNotCall,
            ApiError::Refused(FieldError::new("to", "")),
            ApiError::CallerIdentification(FieldError::new("spec.script.caller_name", "")),
            ApiError::NoConsent(FieldError::new("consent_at", "")),
            ApiError::EmptyPool(FieldError::new("spec.from.pool", "")),
            ApiError::conflict(""),
            ApiError::PoolFull(String::new()),
            ApiError::InProgress { retry_after: 1 },
            ApiError::KeyReused,
            ApiError::Unavailable("x".into()),
            ApiError::Internal("x".into()),
        ];
        let slugs: Vec<&str> = errors.iter().map(ApiError::slug).collect();
        assert_eq!(slugs, TYPES);
    }

    #[test]
    fn logged_errors_never_show_a_phone_number() {
        let err = StoreError::Corrupt {
            key: "DNC#+12025550100/DNC".into(),
            reason: "e164 is missing".into(),
        };
        let line = chain(&err);
        assert!(!line.contains("2025550100"), "{line}");
        assert!(line.contains("+1202***0100"), "{line}");
        assert_eq!(redact("took 1500 ms, 3 tries"), "took 1500 ms, 3 tries");
    }

    #[test]
    fn transient_answers_are_not_kept_for_replays() {
        assert!(ApiError::conflict("x").is_final());
        assert!(ApiError::KeyReused.is_final());
        assert!(!ApiError::Internal("x".into()).is_final());
        assert!(!ApiError::InProgress { retry_after: 1 }.is_final());
        assert!(
            !ApiError::Conflict {
                detail: String::new(),
                retry_after: Some(1)
            }
            .is_final()
        );
    }
}
