//! What is wrong with a request's content, before any HTTP is concerned: a field at fault, a
//! rejected contact row, a contact list that cannot be read at all.
//!
//! A leaf: it imports nothing of the crate. The modules that find faults (`spec`, `contacts`,
//! `endpoints`) and `problem`, which turns them into RFC 9457 problem details, all depend on
//! it rather than on each other.

use serde::Serialize;

/// One field at fault, as a problem's `errors` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where the fault is: `spec.pacing.calls_per_second`, `to`, `Idempotency-Key`, ...
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A rejected row, as the answer lists it: its CSV `line` (the row's record number, the
/// header being 1) or its JSON `index`, and the field at fault. `contacts` builds them from a
/// row's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    pub field: String,
    pub reason: String,
}

/// Why a contact list cannot be read at all (a bad row is a [`Rejected`], not this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The body or header cannot work: the fields at fault.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// A CSV with a header and not a single contact (no rows, or only blank ones).
    #[error("the list holds no contact")]
    Empty,
    /// More contacts than one request may carry.
    #[error("{0}")]
    TooLarge(String),
}

impl ListError {
    /// A single field at fault.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, reason)])
    }
}
