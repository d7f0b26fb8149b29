//! The API Lambda behind API Gateway (HTTP API): campaigns and their contacts, single calls,
//! hang-ups and the do-not-call list (DESIGN.md section 6, `docs/api.md`,
//! `docs/openapi.json`).
//!
//! [`Api::handle`] takes a `lambda_http::Request` and always answers: every failure becomes
//! a response in [`problem`], a panic included, so API Gateway never sees an error (which it
//! would turn into a 502). The handler is generic over its ports, so Lambda, the local HTTP
//! API and the tests run the same code.
//!
//! A map of the modules:
//!
//! - [`routes`]: the routes as data, matched on the request's own path;
//! - [`auth`]: IAM in AWS, a bearer token locally;
//! - [`request`]: reading a request (path, query, content type, body);
//! - [`spec`]: a campaign's spec, checked field by field;
//! - [`phone`]: numbers as people write them, to E.164;
//! - [`contacts`]: contact lists (CSV or JSON), checked row by row;
//! - [`idempotency`]: request fingerprints and the ids a retry derives again;
//! - [`endpoints`]: what each route does;
//! - [`views`]: the JSON the API answers with;
//! - [`problem`]: errors as RFC 9457 problem details, the one place they become HTTP.

pub mod auth;
pub mod contacts;
pub mod endpoints;
pub mod idempotency;
pub mod phone;
pub mod problem;
pub mod request;
pub mod routes;
pub mod spec;
pub mod views;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::FutureExt;
use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use outdial_core::admin::{AdminStore, Begun, DispatchTrigger, StoredReply};
use outdial_core::ports::{CallStore, Dialer, StoreError};
use outdial_core::time::Clock;
use tracing::Instrument;

pub use crate::auth::Auth;
use crate::idempotency::Seed;
use crate::problem::{ApiError, JSON, PROBLEM_JSON, Reply};
use crate::routes::Endpoint;

/// Lambda's limit on a synchronous request's payload.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6_000_000;
/// How long a request holds its idempotency key before another attempt may take it over:
/// longer than the function's timeout (API Gateway gives up after 30 s), so a holder that
/// has not finished by then is dead.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// The header a replayed answer carries.
pub const REPLAYED: &str = "idempotent-replayed";

/// What the API reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub auth: Auth,
    /// Bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// The idempotency lease ([`DEFAULT_LEASE`]).
    pub lease: Duration,
}

impl Settings {
    /// `OUTDIAL_API_TOKEN` (local only: bearer authentication instead of IAM) and
    /// `OUTDIAL_MAX_BODY_BYTES`.
    ///
    /// # Errors
    /// When a variable is set to something unusable; the message names it.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Settings::from_env`], reading through `lookup`.
    ///
    /// # Errors
    /// As [`Settings::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let auth = match lookup("OUTDIAL_API_TOKEN") {
            None => Auth::Iam,
            Some(token) if token.len() >= 16 => Auth::bearer(&token),
            Some(_) => anyhow::bail!("OUTDIAL_API_TOKEN must be at least 16 characters"),
        };
        let max_body_bytes = match lookup("OUTDIAL_MAX_BODY_BYTES") {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1024)
                .with_context(|| {
                    format!("OUTDIAL_MAX_BODY_BYTES must be a number of bytes >= 1024, got {v:?}")
                })?,
        };
        Ok(Self {
            auth,
            max_body_bytes,
            lease: DEFAULT_LEASE,
        })
    }
}

/// The API: the store, the Voice API (for hang-ups), the dispatcher trigger and a clock.
#[derive(Debug)]
pub struct Api<S, D, T> {
    pub(crate) store: S,
    pub(crate) dialer: D,
    pub(crate) trigger: T,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
}

impl<S, D, T> Api<S, D, T>
where
    S: CallStore + AdminStore,
    D: Dialer,
    T: DispatchTrigger,
{
    pub fn new(store: S, dialer: D, trigger: T, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            store,
            dialer,
            trigger,
            clock,
            settings,
        }
    }

    /// Answers one request. Never fails and never panics out: every error is a response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // The route's template, never the path: a path may hold a phone number.
        let span = tracing::info_span!("api", %method, route = tracing::field::Empty);
        let response = AssertUnwindSafe(self.serve(req).instrument(span.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| ApiError::Internal("the handler panicked".into()).into_response());
        tracing::info!(
            parent: &span,
            status = response.status().as_u16(),
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "answered"
        );
        response
    }

    async fn serve(&self, req: Request) -> Response<Body> {
        match self.route(req).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn route(&self, req: Request) -> Result<Response<Body>, ApiError> {
        if !self.settings.auth.allows(&req) {
            return Err(ApiError::Unauthorized);
        }
        let matched = routes::route(req.method(), request::path(&req))?;
        tracing::Span::current().record("route", matched.template);
        if matched.endpoint.takes_body() && req.body().len() > self.settings.max_body_bytes {
            return Err(ApiError::TooLarge(format!(
                "the body is {} bytes; at most {} are accepted: split the contacts over \
                 several requests (POST /campaigns/{{id}}/contacts)",
                req.body().len(),
                self.settings.max_body_bytes
            )));
        }
        let param = matched.param.as_deref().unwrap_or_default();
        let reply = match matched.endpoint {
            Endpoint::CreateCampaign => {
                let kind = request::kind(&req, true)?;
                return self
                    .idempotent(&req, |seed| self.create_campaign(&req, kind, seed))
                    .await;
            }
            Endpoint::AppendContacts => {
                let id = endpoints::campaign_id(param)?;
                let kind = request::kind(&req, true)?;
                return self
                    .idempotent(&req, |seed| self.append_contacts(&req, &id, kind, seed))
                    .await;
            }
            Endpoint::CreateCall => {
                request::kind(&req, false)?;
                return self
                    .idempotent(&req, |seed| self.create_call(&req, seed))
                    .await;
            }
            Endpoint::PauseCampaign | Endpoint::ResumeCampaign | Endpoint::CancelCampaign => {
                let id = endpoints::campaign_id(param)?;
                let endpoint = matched.endpoint;
                return self
                    .idempotent(&req, |_| self.change_status(&id, endpoint))
                    .await;
            }
            Endpoint::HangUp => {
                let id = endpoints::call_id(param)?;
                return self.idempotent(&req, |_| self.hang_up(&id)).await;
            }
            Endpoint::GetCampaign => self.get_campaign(&endpoints::campaign_id(param)?).await,
            Endpoint::ListCalls => self.list_calls(&req, &endpoints::campaign_id(param)?).await,
            Endpoint::GetCall => self.get_call(&endpoints::call_id(param)?).await,
            Endpoint::AddDoNotCall => self.add_do_not_call(param).await,
            Endpoint::RemoveDoNotCall => self.remove_do_not_call(param).await,
        }?;
        Ok(reply.into_response())
    }

    /// Runs `work` once per `Idempotency-Key`: the first request with a key does the work and
    /// stores its answer; a retry gets that answer byte for byte, a concurrent duplicate a
    /// 409 with `Retry-After`, a different request with the same key a 422. A holder that
    /// died is taken over once its lease ends, and the work (whose ids derive from the key)
    /// is completed by the new holder. Without a key, `work` runs with random ids.
    async fn idempotent<'a, F, Fut>(
        &'a self,
        req: &'a Request,
        work: F,
    ) -> Result<Response<Body>, ApiError>
    where
        F: FnOnce(Seed) -> Fut,
        Fut: Future<Output = Result<Reply, ApiError>> + 'a,
    {
        let Some(key) = idempotency::key(req)? else {
            return Ok(work(Seed::random()).await?.into_response());
        };
        let fingerprint = idempotency::fingerprint(req);
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let now = self.clock.now();
        let begun = self
            .store
            .begin_request(
                &key,
                &fingerprint,
                &owner,
                now,
                now.plus(self.settings.lease),
            )
            .await?;
        match begun {
            Begun::Started | Begun::TakenOver => {}
            Begun::InProgress { lease_until } => {
                let left = lease_until.since(now).as_secs();
                return Err(ApiError::InProgress {
                    retry_after: left.clamp(1, 5),
                });
            }
            Begun::Mismatch => return Err(ApiError::KeyReused),
            Begun::Done(stored) => return Ok(replayed(stored)),
        }
        if matches!(begun, Begun::TakenOver) {
            tracing::info!("took over a request whose first attempt did not finish");
        }
        let outcome = work(Seed::keyed(&key, &fingerprint)).await;
        let keep = match &outcome {
            Ok(_) => true,
            Err(e) => e.is_final(),
        };
        let response = match outcome {
            Ok(reply) => reply.into_response(),
            Err(e) => e.into_response(),
        };
        if keep {
            let stored = StoredReply {
                status: response.status().as_u16(),
                content_type: response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: match response.body() {
                    Body::Text(text) => text.clone(),
                    _ => String::new(),
                },
            };
            match self
                .store
                .finish_request(&key, &owner, &stored, self.clock.now())
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    tracing::warn!("another attempt took this request over before it finished");
                }
                // The work is done and its ids derive from the key: a retry redoes nothing.
                Err(e) => tracing::warn!(error = %problem::chain(&e), "storing the answer failed"),
            }
        } else if let Err(e) = self.store.abandon_request(&key, &owner).await {
            tracing::warn!(error = %problem::chain(&e), "releasing the idempotency key failed");
        }
        Ok(response)
    }

    /// Starts a dispatcher now. A failure only delays dialing until the next scheduled run,
    /// so it is logged, not answered.
    pub(crate) async fn dispatch_now(&self) {
        if let Err(e) = self.trigger.dispatch_now().await {
            tracing::warn!(error = %problem::chain(e.as_ref()), "starting a dispatcher failed; the schedule will");
        }
    }
}

/// A stored answer, as it was sent the first time.
fn replayed(stored: StoredReply) -> Response<Body> {
    let content_type = match stored.content_type.as_str() {
        JSON => JSON,
        PROBLEM_JSON => PROBLEM_JSON,
        _ => "",
    };
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = Reply::new(status, content_type, stored.body).into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|k| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn without_a_token_the_api_wants_iam_and_the_lambda_payload_limit() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.auth, Auth::Iam);
        assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn a_token_turns_on_bearer_auth_and_must_be_long_enough() {
        let s = settings(&[
            ("OUTDIAL_API_TOKEN", "0123456789abcdef"),
            ("OUTDIAL_MAX_BODY_BYTES", "2048"),
        ])
        .unwrap();
        assert_eq!(s.auth, Auth::bearer("0123456789abcdef"));
        assert_eq!(s.max_body_bytes, 2048);
        let err = settings(&[("OUTDIAL_API_TOKEN", "short")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("OUTDIAL_API_TOKEN"), "{err}");
        let err = settings(&[("OUTDIAL_MAX_BODY_BYTES", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("OUTDIAL_MAX_BODY_BYTES"), "{err}");
    }
}
