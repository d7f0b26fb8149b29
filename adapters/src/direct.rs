//! The SMA function's one hot write, `UpdateItem`, signed and sent without the SDK's request
//! pipeline.
//!
//! Every SMA event is one conditional `UpdateItem` (see [`crate::store`]). Through the SDK,
//! that request's own work (its interceptors, configuration layers, endpoint resolution,
//! retry bookkeeping and generated (de)serialisers) took about a third of the function's
//! CPU per event in a profile of the release binary (`outdial bench cpu`, docs/scale.md).
//! [`DirectWrites`] does only what the request needs:
//!
//! - the body is written straight from the store's attribute values (the DynamoDB JSON
//!   protocol, `x-amz-json-1.0`), and the answer is read straight into them;
//! - the request is signed with SigV4 by `aws-sigv4`, the SDK's own signer, with credentials
//!   from the SDK configuration's provider, kept until five minutes before they expire;
//! - it goes over the [`LeanHttp`] client the SDK client uses, on the same kept-alive
//!   connection, to the origin the SDK's endpoint resolution chose for that client (its FIPS,
//!   dual-stack and endpoint-override settings included): until the SDK client has made a
//!   request, [`DirectWrites::ready`] is false and the store sends through the SDK;
//! - it keeps the deadline of the SDK client it stands beside ([`Deadline`]): the same
//!   number of attempts, each bounded by the connection's timeouts, and no retry that would
//!   start after the operation's deadline. Throttling, a 5xx answer and an I/O failure are
//!   retried after a short jittered pause; a refusal on the condition is an answer, handed
//!   back with the item as it was (`ALL_OLD`).
//!
//! What it does not do: the SDK's clock-skew correction; request compression, which
//! `UpdateItem` does not use; and the check of the answer's `x-amz-crc32`, which TLS's own
//! integrity check makes redundant on the wire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use outdial_core::ports::StoreError;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::condition::Expressions;
use crate::config::Deadline;
use crate::item::Item;
use crate::wire::{LeanHttp, Origin, Response};

/// The JSON protocol's content type and the operation's target.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const TARGET: &str = "DynamoDB_20120810.UpdateItem";
/// The service name credentials are scoped to.
const SERVICE: &str = "dynamodb";
/// Credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// Error codes that mean "too much right now": worth another attempt after a pause.
const THROTTLED: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "TransactionConflictException",
];

/// One conditional `UpdateItem` that returns the new item (or nothing), or the old one when
/// refused.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    pub table: &'a str,
    pub key: &'a Item,
    /// The `UpdateExpression`.
    pub expression: &'a str,
    /// The condition and the placeholders of both expressions.
    pub guard: &'a Expressions,
    /// Whether a write hands back the item as it is now (`ALL_NEW`) or nothing (`NONE`).
    pub new_image: bool,
}

/// What an [`Update`] came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Updated {
    /// Written: the item as it is now (`ALL_NEW`), or an empty item when the update asked
    /// for none.
    Written(Item),
    /// Refused on its condition: the item as it was (`ALL_OLD`), `None` when there is none.
    Refused(Option<Item>),
}

/// A DynamoDB error answer: its code (the part of `__type` after `#`), message and status.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB answered {status} {code}: {message}")]
pub struct ServiceError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// Hand-signed `UpdateItem` requests beside an SDK client (see the module's documentation).
#[derive(Debug)]
pub struct DirectWrites {
    http: LeanHttp,
    region: String,
    provider: SharedCredentialsProvider,
    credentials: Mutex<Option<Arc<Credentials>>>,
    /// The SigV4 signing key of the day, kept until the date or the key id changes.
    signing_key: Mutex<Option<SigningKey>>,
    connect: Duration,
    operation: Duration,
    attempts: u32,
    /// Requests put on the wire so far, retries included.
    sent: AtomicU64,
}

/// One attempt's failure: worth another attempt, or final.
enum Failure {
    Retry(StoreError),
    Final(StoreError),
}

impl DirectWrites {
    /// Writes beside an SDK client that sends over `http`, signed for `region` with
    /// credentials from `provider`, with `deadline`'s timeouts and attempts.
    #[must_use]
    pub fn new(
        http: LeanHttp,
        region: impl Into<String>,
        provider: SharedCredentialsProvider,
        deadline: Deadline,
    ) -> Self {
        let timeouts = deadline.timeout_config();
        Self {
            http,
            region: region.into(),
            provider,
            credentials: Mutex::new(None),
            signing_key: Mutex::new(None),
            connect: timeouts.connect_timeout().unwrap_or(deadline.attempt()),
            operation: deadline.operation(),
            attempts: deadline.retry_config().max_attempts().max(1),
            sent: AtomicU64::new(0),
        }
    }

    /// [`Self::new`] with the region and credentials of `sdk`, the configuration the SDK
    /// client was built from; `None` when it has no region or no credentials provider (the
    /// SDK client would fail the same way, and the store keeps to it).
    #[must_use]
    pub fn from_sdk(
        http: LeanHttp,
        sdk: &aws_config::SdkConfig,
        deadline: Deadline,
    ) -> Option<Self> {
        Some(Self::new(
            http,
            sdk.region()?.to_string(),
            sdk.credentials_provider()?,
            deadline,
        ))
    }

    /// The requests put on the wire so far, retries included.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether the SDK client has shown where its requests go (see the module's
    /// documentation); until then the store sends through the SDK.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.http.endpoint().is_some()
    }

    /// Sends `update`, retrying what is worth retrying within the deadline.
    ///
    /// # Errors
    /// [`StoreError::Throttled`] and [`StoreError::Timeout`] when the last attempt was
    /// throttled or timed out, [`StoreError::Other`] for any other failure (a
    /// [`ServiceError`] when DynamoDB answered with one) or when the SDK client has not made a
    /// request yet.
    pub async fn update_item(&self, update: &Update<'_>) -> Result<Updated, StoreError> {
        let Some((origin, path)) = self.http.endpoint() else {
            return Err(StoreError::Other(
                "the DynamoDB endpoint is not known before the SDK client's first request".into(),
            ));
        };
        let body = update_body(update)?;
        let url = format!(
            "{}://{}{path}",
            if origin.tls { "https" } else { "http" },
            origin.authority()
        );
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let credentials = self.credentials().await?;
            let failure = match self.attempt(&origin, &path, &url, &credentials, &body) {
                Ok(updated) => return Ok(updated),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(e)) => e,
            };
            let pause = pause_before(attempt + 1, &failure);
            if attempt >= self.attempts || started.elapsed() + pause >= self.operation {
                return Err(failure);
            }
            tracing::debug!(attempt, error = %failure, "DynamoDB UpdateItem retried");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn attempt(
        &self,
        origin: &Origin,
        path: &str,
        url: &str,
        credentials: &Credentials,
        body: &[u8],
    ) -> Result<Updated, Failure> {
        let at = SystemTime::now();
        let signed = if path == "/" {
            self.sign(&origin.authority(), credentials, body, at)
        } else {
            // A path to encode: the SDK's signer does it.
            signature_headers(&self.region, credentials, url, body, at).map_err(Failure::Final)?
        };
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("content-type", CONTENT_TYPE.as_bytes()),
            ("x-amz-target", TARGET.as_bytes()),
        ];
        headers.extend(signed.iter().map(|(n, v)| (*n, v.as_bytes())));
        self.sent.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .exchange(origin, self.connect, "POST", path, &headers, body)
            .map_err(|e| {
                Failure::Retry(
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) {
                        StoreError::Timeout(Box::new(e))
                    } else {
                        StoreError::Other(Box::new(e))
                    },
                )
            })?;
        answer(&response)
    }

    /// The credentials to sign with: the kept ones while they are good for five more
    /// minutes, else new ones from the provider.
    async fn credentials(&self) -> Result<Arc<Credentials>, StoreError> {
        let good = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| SystemTime::now() + RENEW_BEFORE < at)
        };
        {
            let kept = self
                .credentials
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = kept.as_ref().filter(|c| good(c)) {
                return Ok(Arc::clone(c));
            }
        }
        let fresh = Arc::new(
            self.provider
                .provide_credentials()
                .await
                .map_err(|e| StoreError::Other(Box::new(e)))?,
        );
        *self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&fresh));
        Ok(fresh)
    }
}

impl DirectWrites {
    /// The SigV4 headers of an `UpdateItem` POST of `body` to `/` on `host` at `at`, as
    /// [`signature_headers`] makes them, with the day's signing key derived once instead of
    /// four HMACs per request.
    fn sign(
        &self,
        host: &str,
        credentials: &Credentials,
        body: &[u8],
        at: SystemTime,
    ) -> Vec<(&'static str, String)> {
        let stamp = amz_date(at);
        let day = &stamp[..8];
        let token = credentials.session_token();
        let mut canonical = String::with_capacity(512);
        canonical.push_str("POST\n/\n\ncontent-type:");
        canonical.push_str(CONTENT_TYPE);
        canonical.push_str("\nhost:");
        canonical.push_str(host);
        canonical.push_str("\nx-amz-date:");
        canonical.push_str(&stamp);
        if let Some(token) = token {
            canonical.push_str("\nx-amz-security-token:");
            canonical.push_str(token);
        }
        canonical.push_str("\nx-amz-target:");
        canonical.push_str(TARGET);
        let signed_headers = if token.is_some() {
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        } else {
            "content-type;host;x-amz-date;x-amz-target"
        };
        canonical.push_str("\n\n");
        canonical.push_str(signed_headers);
        canonical.push('\n');
        canonical.push_str(&hex(&Sha256::digest(body)));
        let scope = format!("{day}/{}/{SERVICE}/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = {
            let mut kept = self
                .signing_key
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match kept.as_ref() {
                Some(k) if k.day == day && k.key_id == credentials.access_key_id() => k.key,
                _ => {
                    let k = SigningKey::derive(day, &self.region, credentials);
                    let key = k.key;
                    *kept = Some(k);
                    key
                }
            }
        };
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        let mut headers = vec![
            (
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                    credentials.access_key_id()
                ),
            ),
            ("x-amz-date", stamp),
        ];
        if let Some(token) = token {
            headers.push(("x-amz-security-token", token.to_owned()));
        }
        headers
    }
}

/// A day's SigV4 signing key for one access key.
#[derive(Debug)]
struct SigningKey {
    day: String,
    key_id: String,
    key: [u8; 32],
}

impl SigningKey {
    fn derive(day: &str, region: &str, credentials: &Credentials) -> Self {
        let secret = format!("AWS4{}", credentials.secret_access_key());
        let k = hmac(secret.as_bytes(), day.as_bytes());
        let k = hmac(&k, region.as_bytes());
        let k = hmac(&k, SERVICE.as_bytes());
        Self {
            day: day.to_owned(),
            key_id: credentials.access_key_id().to_owned(),
            key: hmac(&k, b"aws4_request"),
        }
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// `at` as SigV4 writes it: `20231114T221320Z`.
fn amz_date(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rfc3339 = aws_smithy_types::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// The pause before attempt `attempt` after `failure`: longer after throttling, jittered
/// so that functions throttled together do not come back together.
fn pause_before(attempt: u32, failure: &StoreError) -> Duration {
    let base_ms: u64 = match failure {
        StoreError::Throttled(_) => 50,
        _ => 10,
    };
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    ) % base_ms;
    Duration::from_millis(base_ms * u64::from(attempt.saturating_sub(1)).max(1) + jitter)
}

/// The SigV4 headers (`x-amz-date`, `authorization` and, with a session token,
/// `x-amz-security-token`) of a JSON-protocol `UpdateItem` POST of `body` to `url` at `at`.
///
/// # Errors
/// When `url` is not a valid URI or the signer refuses the request.
pub fn signature_headers(
    region: &str,
    credentials: &Credentials,
    url: &str,
    body: &[u8],
    at: SystemTime,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    let other = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Other(e);
    let identity = Identity::from(credentials.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| other(Box::new(e)))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)].into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| other(Box::new(e)))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| other(Box::new(e)))?
        .into_parts();
    Ok(instructions
        .into_parts()
        .0
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

/// The JSON body of `update`.
///
/// # Errors
/// When an attribute value is of a kind this SDK version does not know.
pub fn update_body(update: &Update<'_>) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"TableName\":");
    string(&mut out, update.table)?;
    out.extend_from_slice(b",\"Key\":");
    item(&mut out, update.key)?;
    out.extend_from_slice(b",\"UpdateExpression\":");
    string(&mut out, update.expression)?;
    if let Some(condition) = &update.guard.condition {
        out.extend_from_slice(b",\"ConditionExpression\":");
        string(&mut out, condition)?;
    }
    let names = &update.guard.names;
    if !names.is_empty() {
        out.extend_from_slice(b",\"ExpressionAttributeNames\":{");
        for (i, (placeholder, name)) in names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(&mut out, placeholder)?;
            out.push(b':');
            string(&mut out, name)?;
        }
        out.push(b'}');
    }
    let values = &update.guard.values;
    if !values.is_empty() {
        out.extend_from_slice(b",\"ExpressionAttributeValues\":");
        item(&mut out, values.iter().map(|(k, v)| (k, v)))?;
    }
    out.extend_from_slice(if update.new_image {
        b",\"ReturnValues\":\"ALL_NEW\",\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"}"
    } else {
        b",\"ReturnValues\":\"NONE\",\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"}"
    });
    Ok(out)
}

fn string(out: &mut Vec<u8>, s: &str) -> Result<(), StoreError> {
    serde_json::to_writer(out, s).map_err(|e| StoreError::Other(Box::new(e)))
}

fn item<'a>(
    out: &mut Vec<u8>,
    item: impl IntoIterator<Item = (&'a String, &'a AttributeValue)>,
) -> Result<(), StoreError> {
    out.push(b'{');
    for (i, (name, value)) in item.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name)?;
        out.push(b':');
        attribute(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

fn strings<'a>(
    out: &mut Vec<u8>,
    all: impl IntoIterator<Item = &'a str>,
) -> Result<(), StoreError> {
    out.push(b'[');
    for (i, s) in all.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s)?;
    }
    out.push(b']');
    Ok(())
}

fn attribute(out: &mut Vec<u8>, value: &AttributeValue) -> Result<(), StoreError> {
    match value {
        AttributeValue::S(s) => {
            out.extend_from_slice(b"{\"S\":");
            string(out, s)?;
        }
        AttributeValue::N(n) => {
            out.extend_from_slice(b"{\"N\":");
            string(out, n)?;
        }
        AttributeValue::B(b) => {
            out.extend_from_slice(b"{\"B\":");
            string(out, &aws_smithy_types::base64::encode(b.as_ref()))?;
        }
        AttributeValue::Bool(b) => {
            out.extend_from_slice(if *b {
                b"{\"BOOL\":true"
            } else {
                b"{\"BOOL\":false"
            });
        }
        AttributeValue::Null(b) => {
            out.extend_from_slice(if *b {
                b"{\"NULL\":true"
            } else {
                b"{\"NULL\":false"
            });
        }
        AttributeValue::L(all) => {
            out.extend_from_slice(b"{\"L\":[");
            for (i, v) in all.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                attribute(out, v)?;
            }
            out.push(b']');
        }
        AttributeValue::M(m) => {
            out.extend_from_slice(b"{\"M\":");
            item(out, m)?;
        }
        AttributeValue::Ss(all) => {
            out.extend_from_slice(b"{\"SS\":");
            strings(out, all.iter().map(String::as_str))?;
        }
        AttributeValue::Ns(all) => {
            out.extend_from_slice(b"{\"NS\":");
            strings(out, all.iter().map(String::as_str))?;
        }
        AttributeValue::Bs(all) => {
            out.extend_from_slice(b"{\"BS\":");
            let encoded: Vec<String> = all
                .iter()
                .map(|b| aws_smithy_types::base64::encode(b.as_ref()))
                .collect();
            strings(out, encoded.iter().map(String::as_str))?;
        }
        other => {
            return Err(StoreError::Other(
                format!("an attribute value this client cannot write: {other:?}").into(),
            ));
        }
    }
    out.push(b'}');
    Ok(())
}

/// What one answer means.
fn answer(response: &Response) -> Result<Updated, Failure> {
    let parsed = serde_json::from_slice::<Answer>(&response.body);
    if response.status == 200 {
        return parsed
            .map(|a| Updated::Written(a.attributes.map(|m| m.0).unwrap_or_default()))
            .map_err(|e| Failure::Final(StoreError::Other(Box::new(e))));
    }
    let (kind, message, item) = match parsed {
        Ok(a) => (a.kind, a.message, a.item),
        Err(_) => (None, None, None),
    };
    let code = kind
        .as_deref()
        .or_else(|| response.header("x-amzn-errortype"))
        .map(|t| {
            let t = t.rsplit('#').next().unwrap_or(t);
            t.split(':').next().unwrap_or(t).to_owned()
        })
        .unwrap_or_default();
    if code == "ConditionalCheckFailedException" {
        return Ok(Updated::Refused(item.map(|m| m.0)));
    }
    let error = ServiceError {
        status: response.status,
        message: message.unwrap_or_else(|| String::from_utf8_lossy(&response.body).into_owned()),
        code,
    };
    Err(if THROTTLED.contains(&error.code.as_str()) {
        Failure::Retry(StoreError::Throttled(Box::new(error)))
    } else if response.status >= 500 {
        Failure::Retry(StoreError::Other(Box::new(error)))
    } else {
        Failure::Final(StoreError::Other(Box::new(error)))
    })
}

/// The parts of an `UpdateItem` answer read: the new item, or the error and the old item.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Attributes", default)]
    attributes: Option<Map>,
    #[serde(rename = "Item", default)]
    item: Option<Map>,
    #[serde(rename = "__type", default)]
    kind: Option<String>,
    #[serde(rename = "message", alias = "Message", default)]
    message: Option<String>,
}

/// An item read straight from its JSON.
struct Map(Item);

/// An attribute value read straight from its JSON (`{"S": "…"}` and the like).
struct Value(AttributeValue);

#[derive(Deserialize)]
enum Kind {
    S,
    N,
    B,
    #[serde(rename = "BOOL")]
    Bool,
    #[serde(rename = "NULL")]
    Null,
    L,
    M,
    #[serde(rename = "SS")]
    Ss,
    #[serde(rename = "NS")]
    Ns,
    #[serde(rename = "BS")]
    Bs,
}

impl<'de> Deserialize<'de> for Map {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> Visitor<'de> for Items {
            type Value = Map;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a DynamoDB item")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Map, A::Error> {
                let mut item = Item::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    item.insert(name, value.0);
                }
                Ok(Map(item))
            }
        }
        d.deserialize_map(Items)
    }
}

fn blob<E: de::Error>(encoded: &str) -> Result<Blob, E> {
    aws_smithy_types::base64::decode(encoded)
        .map(Blob::new)
        .map_err(|e| E::custom(format!("a binary attribute that is not base64: {e}")))
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Values;
        impl<'de> Visitor<'de> for Values {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a DynamoDB attribute value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let Some(kind) = map.next_key::<Kind>()? else {
                    return Err(de::Error::custom("an attribute value with no type"));
                };
                let value = match kind {
                    Kind::S => AttributeValue::S(map.next_value()?),
                    Kind::N => AttributeValue::N(map.next_value()?),
                    Kind::B => AttributeValue::B(blob(&map.next_value::<String>()?)?),
                    Kind::Bool => AttributeValue::Bool(map.next_value()?),
                    Kind::Null => AttributeValue::Null(map.next_value()?),
                    Kind::L => AttributeValue::L(
                        map.next_value::<Vec<Value>>()?
                            .into_iter()
                            .map(|v| v.0)
                            .collect(),
                    ),
                    Kind::M => AttributeValue::M(map.next_value::<Map>()?.0),
                    Kind::Ss => AttributeValue::Ss(map.next_value()?),
                    Kind::Ns => AttributeValue::Ns(map.next_value()?),
                    Kind::Bs => AttributeValue::Bs(
                        map.next_value::<Vec<String>>()?
                            .iter()
                            .map(|s| blob(s))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an attribute value with two types"));
                }
                Ok(Value(value))
            }
        }
        d.deserialize_map(Values)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn every_kind() -> Item {
        HashMap::from([
            ("s".to_owned(), AttributeValue::S("a \"quoted\" é\n".into())),
            ("n".to_owned(), AttributeValue::N("-12.5".into())),
            (
                "b".to_owned(),
                AttributeValue::B(Blob::new(vec![0, 255, 7])),
            ),
            ("t".to_owned(), AttributeValue::Bool(true)),
            ("f".to_owned(), AttributeValue::Bool(false)),
            ("z".to_owned(), AttributeValue::Null(true)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::S("x".into()),
                    AttributeValue::L(Vec::new()),
                ]),
            ),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "in".to_owned(),
                    AttributeValue::N("1".into()),
                )])),
            ),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(vec!["1".into(), "2".into()]),
            ),
            (
                "bs".to_owned(),
                AttributeValue::Bs(vec![Blob::new(vec![1u8]), Blob::new(Vec::new())]),
            ),
        ])
    }

    #[test]
    fn an_item_written_reads_back_the_same() {
        let original = every_kind();
        let mut json = Vec::new();
        item(&mut json, &original).unwrap();
        let read: Map = serde_json::from_slice(&json).unwrap();
        assert_eq!(read.0, original);
    }

    #[test]
    fn the_body_carries_every_part_of_the_update() {
        let key = HashMap::from([("pk".to_owned(), AttributeValue::S("CALL#1".into()))]);
        let guard = Expressions {
            condition: Some("last_seq < :seq".into()),
            names: vec![("#status".to_owned(), "status".to_owned())],
            values: vec![(":seq".to_owned(), AttributeValue::N("3".into()))],
        };
        let body = update_body(&Update {
            table: "t",
            key: &key,
            expression: "SET #status = :seq",
            guard: &guard,
            new_image: true,
        })
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "TableName": "t",
                "Key": {"pk": {"S": "CALL#1"}},
                "UpdateExpression": "SET #status = :seq",
                "ConditionExpression": "last_seq < :seq",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":seq": {"N": "3"}},
                "ReturnValues": "ALL_NEW",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            })
        );
        let bare = update_body(&Update {
            table: "t",
            key: &key,
            expression: "SET a = b",
            guard: &Expressions::default(),
            new_image: false,
        })
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bare).unwrap();
        assert!(v.get("ConditionExpression").is_none());
        assert!(v.get("ExpressionAttributeValues").is_none());
        assert_eq!(v["ReturnValues"], "NONE");
        assert_eq!(v["ReturnValuesOnConditionCheckFailure"], "ALL_OLD");
    }

    fn response(status: u16, body: &str) -> Response {
        Response::new(status, [], body.as_bytes().to_vec())
    }

    #[test]
    fn answers_are_told_apart() {
        let written = answer(&response(
            200,
            r#"{"Attributes":{"a":{"N":"1"}},"ConsumedCapacity":{"TableName":"t","CapacityUnits":1}}"#,
        ));
        assert!(
            matches!(written, Ok(Updated::Written(m)) if m["a"] == AttributeValue::N("1".into()))
        );
        let refused = answer(&response(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed","Item":{"a":{"S":"x"}}}"#,
        ));
        assert!(
            matches!(refused, Ok(Updated::Refused(Some(m))) if m["a"] == AttributeValue::S("x".into()))
        );
        let missing = answer(&response(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","Message":"The conditional request failed"}"#,
        ));
        assert!(matches!(missing, Ok(Updated::Refused(None))));
        let throttled = answer(&response(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#,
        ));
        assert!(matches!(
            throttled,
            Err(Failure::Retry(StoreError::Throttled(_)))
        ));
        let busy = answer(&response(500, "<html>oops</html>"));
        assert!(matches!(busy, Err(Failure::Retry(StoreError::Other(_)))));
        let Err(Failure::Final(StoreError::Other(e))) = answer(&response(
            400,
            r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad expression"}"#,
        )) else {
            panic!("a validation error is final");
        };
        assert_eq!(
            e.to_string(),
            "DynamoDB answered 400 ValidationException: bad expression"
        );
        assert!(matches!(
            answer(&response(200, "{not json")),
            Err(Failure::Final(StoreError::Other(_)))
        ));
    }

    #[test]
    fn malformed_attribute_values_are_refused() {
        for bad in [
            r#"{"a":{}}"#,
            r#"{"a":{"S":"x","N":"1"}}"#,
            r#"{"a":{"X":"1"}}"#,
            r#"{"a":{"B":"not base64!"}}"#,
            r#"{"a":{"S":1}}"#,
        ] {
            assert!(serde_json::from_str::<Map>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pauses_grow_with_attempts_and_throttling() {
        let other = StoreError::Other("x".into());
        let throttled = StoreError::Throttled("x".into());
        assert!(pause_before(2, &other) < Duration::from_millis(20));
        assert!(pause_before(2, &throttled) >= Duration::from_millis(50));
        assert!(pause_before(3, &throttled) >= Duration::from_millis(100));
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 and 6: a short key, and a key longer than a block.
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_kept_signing_key_signs_as_the_sdks_signer_across_days_and_keys() {
        let http = LeanHttp::new(None, Duration::from_secs(1));
        let direct = DirectWrites::new(
            http,
            "eu-west-1",
            SharedCredentialsProvider::new(Credentials::new("A", "a", None, None, "test")),
            Deadline::HotPath,
        );
        let day = Duration::from_secs(86_400);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let body = br#"{"TableName":"t"}"#;
        for (credentials, at) in [
            (Credentials::new("A", "a", None, None, "test"), t0),
            (
                Credentials::new("A", "a", None, None, "test"),
                t0 + Duration::from_secs(5),
            ),
            (Credentials::new("A", "a", None, None, "test"), t0 + day),
            (
                Credentials::new("B", "b", Some("tok".into()), None, "test"),
                t0 + day,
            ),
            (
                Credentials::new("B", "b", Some("tok".into()), None, "test"),
                t0 + day * 400,
            ),
        ] {
            let mut ours = direct.sign("dynamodb.eu-west-1.amazonaws.com", &credentials, body, at);
            let mut sdks = signature_headers(
                "eu-west-1",
                &credentials,
                "https://dynamodb.eu-west-1.amazonaws.com/",
                body,
                at,
            )
            .unwrap();
            ours.sort();
            sdks.sort();
            assert_eq!(ours, sdks);
        }
    }

    #[test]
    fn a_session_token_is_signed_and_sent() {
        let credentials = Credentials::new("AKID", "secret", Some("token".into()), None, "test");
        let headers = signature_headers(
            "eu-west-1",
            &credentials,
            "https://dynamodb.eu-west-1.amazonaws.com/",
            b"{}",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(name, _)| *name == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("x-amz-date"), "20231114T221320Z");
        assert_eq!(get("x-amz-security-token"), "token");
        let auth = get("authorization");
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKID/20231114/eu-west-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="
        ), "{auth}");
    }
}
