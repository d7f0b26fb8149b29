//! The API Lambda behind API Gateway (HTTP API): campaigns and their contacts, single calls,
//! hang-ups, the do-not-call list, the account's compliance policy and its caller IDs
//! (`docs/design.md` section 6, `docs/api.md`, `docs/openapi.json`).
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
//! - [`destinations`]: the countries the account calls, and the numbers it never calls;
//! - [`contacts`]: contact lists (CSV or JSON), checked row by row;
//! - [`idempotency`]: request fingerprints and the ids a retry derives again;
//! - [`endpoints`]: what each route does;
//! - [`campaigns`]: the account's list of campaigns (`GET /campaigns`);
//! - [`views`]: the JSON the API answers with;
//! - [`problem`]: errors as RFC 9457 problem details, the one place they become HTTP.

pub mod auth;
pub mod campaigns;
pub mod contacts;
pub mod destinations;
pub mod endpoints;
pub mod idempotency;
pub mod phone;
pub mod problem;
pub mod request;
pub mod results;
pub mod routes;
pub mod spec;
pub mod views;

mod errors;
mod service;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use outdial_core::admin::{ApiStore, Begun, DispatchTrigger, StoredReply};
use outdial_core::ports::{Dialer, StoreError};
use tracing::Instrument;

pub use crate::auth::Auth;
use crate::idempotency::Seed;
use crate::problem::{ApiError, JSON, PROBLEM_JSON, Reply};
use crate::routes::Endpoint;
pub use crate::service::{Api, DEFAULT_LEASE, DEFAULT_MAX_BODY_BYTES, Settings};

/// The header a replayed answer carries.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long one request may take before it is answered 503: API Gateway's HTTP API gives up
/// after 30 s and the function's timeout is 29 s (`infra/functions.json`), so the API answers
/// first, with a problem detail rather than a gateway timeout.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(26);
/// How much of [`REQUEST_BUDGET`] a request's work may use: the rest releases its
/// `Idempotency-Key`, so a retry with the same key takes the work over at once (its ids derive
/// from the key, so it completes what this attempt began) instead of after the key's lease.
pub const WORK_BUDGET: Duration = Duration::from_secs(20);

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// Answers one request. Never fails and never panics out: every error is a response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // The route's template, never the path: a path may hold a phone number.
        let span = tracing::info_span!("api", %method, route = tracing::field::Empty);
        let work_until = tokio::time::Instant::now() + WORK_BUDGET;
        let serving =
            AssertUnwindSafe(self.serve(req, work_until).instrument(span.clone())).catch_unwind();
        let response = match tokio::time::timeout(REQUEST_BUDGET, serving).await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => ApiError::Internal("the handler panicked".into()).into_response(),
            Err(_) => {
                let _entered = span.enter();
                out_of_time(REQUEST_BUDGET).into_response()
            }
        };
        tracing::info!(
            parent: &span,
            status = response.status().as_u16(),
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "answered"
        );
        response
    }

    async fn serve(&self, req: Request, work_until: tokio::time::Instant) -> Response<Body> {
        match self.route(req, work_until).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn route(
        &self,
        req: Request,
        work_until: tokio::time::Instant,
    ) -> Result<Response<Body>, ApiError> {
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
                    .idempotent(&req, work_until, |seed| {
                        self.create_campaign(&req, kind, seed)
                    })
                    .await;
            }
            Endpoint::AppendContacts => {
                let id = endpoints::campaign_id(param)?;
                let kind = request::kind(&req, true)?;
                return self
                    .idempotent(&req, work_until, |seed| {
                        self.append_contacts(&req, &id, kind, seed)
                    })
                    .await;
            }
            Endpoint::CreateCall => {
                request::kind(&req, false)?;
                return self
                    .idempotent(&req, work_until, |seed| self.create_call(&req, seed))
                    .await;
            }
            Endpoint::PauseCampaign | Endpoint::ResumeCampaign | Endpoint::CancelCampaign => {
                let id = endpoints::campaign_id(param)?;
                let endpoint = matched.endpoint;
                return self
                    .idempotent(&req, work_until, |_| self.change_status(&id, endpoint))
                    .await;
            }
            Endpoint::HangUp => {
                let id = endpoints::call_id(param)?;
                return self
                    .idempotent(&req, work_until, |_| self.hang_up(&id))
                    .await;
            }
            Endpoint::RestoreNumber => {
                return self
                    .idempotent(&req, work_until, |_| self.restore_number(param))
                    .await;
            }
            Endpoint::ListCampaigns => self.list_campaigns(&req).await,
            Endpoint::GetCampaign => self.get_campaign(&endpoints::campaign_id(param)?).await,
            Endpoint::ListCalls => self.list_calls(&req, &endpoints::campaign_id(param)?).await,
            Endpoint::ExportResults => {
                self.export_results(&req, &endpoints::campaign_id(param)?)
                    .await
            }
            Endpoint::GetCall => self.get_call(&endpoints::call_id(param)?).await,
            Endpoint::GetDoNotCall => self.get_do_not_call(param).await,
            Endpoint::AddDoNotCall => self.add_do_not_call(param).await,
            Endpoint::RemoveDoNotCall => self.remove_do_not_call(param).await,
            Endpoint::GetPolicy => self.get_policy().await,
            Endpoint::PutPolicy => self.put_policy(&req).await,
            Endpoint::ListNumbers => self.list_numbers(&req).await,
            Endpoint::PutNumber => self.put_number(&req, param).await,
            Endpoint::DeleteNumber => self.delete_number(param).await,
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
        work_until: tokio::time::Instant,
        work: F,
    ) -> Result<Response<Body>, ApiError>
    where
        F: FnOnce(Seed) -> Fut,
        Fut: Future<Output = Result<Reply, ApiError>> + 'a,
    {
        let Some(key) = idempotency::key(req)? else {
            return Ok(within(work_until, work(Seed::random()))
                .await?
                .into_response());
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
        let outcome = within(work_until, work(Seed::keyed(&key, &fingerprint))).await;
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
}

/// `work`, or a 503 when it has not finished by `until`: a retry completes it, as after a
/// crash (with an `Idempotency-Key`, whose key is then released for it).
async fn within<F>(until: tokio::time::Instant, work: F) -> Result<Reply, ApiError>
where
    F: Future<Output = Result<Reply, ApiError>>,
{
    tokio::time::timeout_at(until, work)
        .await
        .unwrap_or_else(|_| Err(out_of_time(WORK_BUDGET)))
}

/// The answer to a request that ran out of `budget`: retryable, so its key is released.
fn out_of_time(budget: Duration) -> ApiError {
    ApiError::Unavailable(
        format!(
            "the request did not finish within its {} s budget; a retry with the same \
             Idempotency-Key completes it",
            budget.as_secs()
        )
        .into(),
    )
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
