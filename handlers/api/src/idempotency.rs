//! Idempotent POSTs: a request's fingerprint, and ids that a retry derives again.
//!
//! With an `Idempotency-Key`, every id a request creates (the campaign, an append, each
//! call) is derived from the key and the request's fingerprint, so a retry after a crash
//! writes the very same items and completes what the first attempt began; a campaign that
//! exists is complete, and an append is counted once. The fingerprint is part of the seed,
//! so a key reused with another body (after its record expired) creates new ids instead of
//! colliding with the old ones. Without a key the seed is random.
//!
//! The flow around the key (take it, answer a duplicate, store the answer) is in
//! [`crate::Api`]; the record itself is the store's (`outdial_core::admin::ApiStore`).

use std::fmt::Write as _;

use lambda_http::Request;
use outdial_core::admin::{AppendId, IdempotencyKey};
use outdial_core::ids::{CallId, CampaignId};
use sha2::{Digest, Sha256};

use crate::problem::ApiError;
use crate::request;

pub const HEADER: &str = "idempotency-key";

/// The request's `Idempotency-Key`, if it has one.
///
/// # Errors
/// [`ApiError::Invalid`] for a key that is not 1 to 255 printable ASCII characters.
pub fn key(req: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let raw = value
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be printable ASCII"))?;
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(|e| ApiError::field("Idempotency-Key", e.to_string()))
}

/// What makes two requests the same request: method, path, query, content type, the spec
/// header and the body.
#[must_use]
pub fn fingerprint(req: &Request) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(req.method().as_str().as_bytes());
    field(request::path(req).as_bytes());
    let query = request::query(req);
    let mut pairs: Vec<(&str, &str)> = query.iter().collect();
    pairs.sort_unstable();
    for (k, v) in pairs {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    field(request::media_type(req).unwrap_or_default().as_bytes());
    field(
        req.headers()
            .get(request::SPEC_HEADER)
            .map(http::HeaderValue::as_bytes)
            .unwrap_or_default(),
    );
    field(req.body().as_ref());
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Where a request's ids come from.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed([u8; 32]);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Seed {
    /// The seed of a keyed request: the same key and fingerprint always give the same ids.
    #[must_use]
    pub fn keyed(key: &IdempotencyKey, fingerprint: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"outdial.idempotency\0");
        hash.update(key.as_str().as_bytes());
        hash.update(b"\0");
        hash.update(fingerprint.as_bytes());
        Self(hash.finalize().into())
    }

    /// A seed for a request without a key.
    #[must_use]
    pub fn random() -> Self {
        let mut hash = Sha256::new();
        hash.update(uuid::Uuid::new_v4().as_bytes());
        hash.update(uuid::Uuid::new_v4().as_bytes());
        Self(hash.finalize().into())
    }

    /// `<prefix>_<32 hex digits>` from the seed, a label and an ordinal.
    fn derive(&self, prefix: &str, label: &str, ordinal: u64) -> String {
        let mut hash = Sha256::new();
        hash.update(self.0);
        hash.update(label.as_bytes());
        hash.update(ordinal.to_be_bytes());
        let digest = hash.finalize();
        format!("{prefix}_{}", hex(&digest[..16]))
    }

    /// The campaign a `POST /campaigns` creates.
    ///
    /// # Errors
    /// Never in practice: the derived id is always valid.
    pub fn campaign_id(&self) -> Result<CampaignId, ApiError> {
        CampaignId::parse(&self.derive("cmp", "campaign", 0))
            .map_err(|e| ApiError::Internal(Box::new(e)))
    }

    /// The append a `POST /campaigns/{id}/contacts` or `POST /calls` makes.
    ///
    /// # Errors
    /// Never in practice: the derived id is always valid.
    pub fn append_id(&self) -> Result<AppendId, ApiError> {
        AppendId::parse(&self.derive("app", "append", 0))
            .map_err(|e| ApiError::Internal(Box::new(e)))
    }

    /// The call for the row at `ordinal` (its CSV line or JSON index).
    ///
    /// # Errors
    /// Never in practice: the derived id is always valid.
    pub fn call_id(&self, ordinal: u64) -> Result<CallId, ApiError> {
        CallId::parse(&self.derive("call", "call", ordinal))
            .map_err(|e| ApiError::Internal(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_seeds_derive_the_same_ids_and_other_requests_other_ones() {
        let key = IdempotencyKey::parse("k1").unwrap();
        let a = Seed::keyed(&key, "f1");
        let b = Seed::keyed(&key, "f1");
        let c = Seed::keyed(&key, "f2");
        assert_eq!(a.campaign_id().unwrap(), b.campaign_id().unwrap());
        assert_eq!(a.call_id(7).unwrap(), b.call_id(7).unwrap());
        assert_ne!(a.call_id(7).unwrap(), a.call_id(8).unwrap());
        assert_ne!(a.campaign_id().unwrap(), c.campaign_id().unwrap());
        assert_ne!(
            Seed::random().campaign_id().unwrap(),
            Seed::random().campaign_id().unwrap()
        );
        let id = a.campaign_id().unwrap();
        assert!(
            id.as_str().starts_with("cmp_") && id.as_str().len() == 36,
            "{id}"
        );
    }
}
