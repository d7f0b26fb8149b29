//! What each route does. Each endpoint reads what it needs from the request, works through
//! the ports, and returns a [`Reply`] or an [`ApiError`]; turning either into HTTP is
//! [`crate::problem`]'s job.

use std::collections::{BTreeSet, HashMap};

use http::StatusCode;
use lambda_http::Request;
use outdial_core::admin::{ApiStore, AppendId, DispatchTrigger};
use outdial_core::ids::{CallId, CampaignId, E164};
use outdial_core::lifecycle::{CallStatus, EndRequest};
use outdial_core::messages;
use outdial_core::pacing::due_offset;
use outdial_core::policy::Purpose;
use outdial_core::ports::{DialError, Dialer, StoreError};
use outdial_core::record::{Campaign, CampaignStatus, NewCall};
use outdial_core::time::Timestamp;
use outdial_core::window::{CallingWindow, zone_for};
use serde_json::Value;

use crate::contacts::{self, Checked, Contact};
use crate::destinations::Destinations;
use crate::idempotency::Seed;
use crate::phone::{self, Region};
use crate::problem::{ApiError, FieldError, Reply};
use crate::request::{self, Kind, SPEC_HEADER};
use crate::routes::Endpoint;
use crate::service::Api;
use crate::spec::{self, Caller};
use crate::views;

/// The default and largest page of `GET /campaigns/{id}/calls`.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;
/// How often a write that lost a race with another writer is decided again.
const RACE_TRIES: usize = 3;

/// A campaign id from the path; one that cannot be an id names no campaign.
///
/// # Errors
/// [`ApiError::NotFound`].
pub fn campaign_id(raw: &str) -> Result<CampaignId, ApiError> {
    CampaignId::parse(raw).map_err(|_| ApiError::NotFound("no such campaign".into()))
}

/// A call id from the path.
///
/// # Errors
/// [`ApiError::NotFound`].
pub fn call_id(raw: &str) -> Result<CallId, ApiError> {
    CallId::parse(raw).map_err(|_| ApiError::NotFound("no such call".into()))
}

/// A number in a `/dnc/{e164}` or `/numbers/{e164}` path: E.164 only, since no region
/// applies. Taking a number off the list, or retiring a caller ID, checks no more than that:
/// an entry must always be removable.
fn path_number(raw: &str) -> Result<E164, ApiError> {
    let field = "e164";
    if !raw.starts_with('+') {
        return Err(ApiError::field(
            field,
            "must be an E.164 number: + and the country code (URL-encode + as %2B)",
        ));
    }
    phone::parse(raw, Region::US).map_err(|e| ApiError::field(field, e.to_string()))
}

/// A JSON body's object, its unknown fields refused.
fn object(value: Value, allowed: &[&str]) -> Result<serde_json::Map<String, Value>, ApiError> {
    let Value::Object(fields) = value else {
        return Err(ApiError::field("body", "must be a JSON object"));
    };
    let unknown: Vec<FieldError> = fields
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.as_str(),
                format!("unknown field; expected {}", allowed.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(fields)
    } else {
        Err(ApiError::Invalid(unknown))
    }
}

/// The `default_region` query parameter of an append, when it names one.
fn query_region(req: &Request) -> Result<Option<Region>, ApiError> {
    request::query(req)
        .first("default_region")
        .map(|raw| Region::parse(raw).map_err(|reason| ApiError::field("default_region", reason)))
        .transpose()
}

/// The region a campaign reads national numbers in. It was checked when the campaign was
/// created; a stored code the phone metadata no longer knows falls back to `US`.
fn campaign_region(campaign: &Campaign) -> Region {
    Region::parse(&campaign.default_region).unwrap_or(Region::US)
}

/// When a contact's first attempt is due: now, or the first opening of the campaign's
/// calling window in the contact's zone (given, derived from the number, or the window's).
fn first_due(window: Option<&CallingWindow>, contact: &Contact, now: Timestamp) -> Timestamp {
    let Some(window) = window else {
        return now;
    };
    // The contact's zone was checked when its row was; a failure here falls back to the
    // window's own zone rather than calling at an unchecked hour.
    let zone = zone_for(contact.tz.as_deref(), &contact.to, window.zone())
        .map_or_else(|_| window.zone().clone(), |(zone, _)| zone);
    window.next_opening(now, &zone)
}

/// The calls for accepted contacts (taken out of `accepted`), with ids derived from the
/// seed and each row's position.
///
/// Each call is due about when the campaign's rate lets it go: the k-th contact that may
/// first be called at the same moment (now, or its window's opening) is due
/// [`due_offset`]`(k)` after it, so that campaigns running at once interleave, but never
/// more than [`spec::MAX_DUE_SPREAD`] after it: a due time is the earliest a call may go, the
/// pacer holds the rest back, and a slow rate over a long list must not put calls past the
/// time their items live.
fn new_calls(
    campaign: &Campaign,
    accepted: &mut Vec<Contact>,
    seed: &Seed,
    now: Timestamp,
) -> Result<Vec<NewCall>, ApiError> {
    let mut behind: HashMap<i64, u32> = HashMap::new();
    std::mem::take(accepted)
        .into_iter()
        .map(|c| {
            let first = first_due(campaign.window.as_ref(), &c, now);
            let k = behind.entry(first.as_millis()).or_insert(0);
            let offset = due_offset(*k, campaign.pacing.calls_per_second).min(spec::MAX_DUE_SPREAD);
            *k += 1;
            Ok(NewCall {
                id: seed.call_id(c.at.ordinal())?,
                due_at: first.plus(offset),
                to: c.to,
                vars: c.vars,
                tz: c.tz,
                consent: c.consent,
                reference: c.reference,
            })
        })
        .collect()
}

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// `POST /campaigns`.
    pub(crate) async fn create_campaign(
        &self,
        req: &Request,
        kind: Kind,
        seed: Seed,
    ) -> Result<Reply, ApiError> {
        let (spec_value, spec_field, json_contacts) = match kind {
            Kind::Json => {
                let mut body = object(request::json(req)?, &["spec", "contacts"])?;
                let spec = body
                    .remove("spec")
                    .ok_or_else(|| ApiError::field("spec", "is required"))?;
                let contacts = body.remove("contacts").unwrap_or(Value::Array(Vec::new()));
                (spec, "spec", Some(contacts))
            }
            Kind::Csv => {
                let (raw, field) = match req.headers().get(SPEC_HEADER) {
                    Some(v) => (
                        String::from_utf8(v.as_bytes().to_vec())
                            .map_err(|_| ApiError::field("X-Outdial-Spec", "is not UTF-8"))?,
                        "X-Outdial-Spec",
                    ),
                    None => (
                        request::query(req)
                            .first("spec")
                            .map(str::to_owned)
                            .ok_or_else(|| {
                                ApiError::field(
                                    "X-Outdial-Spec",
                                    "is required with a CSV body: the campaign's spec as JSON \
                                     (or in the spec query parameter)",
                                )
                            })?,
                        "spec",
                    ),
                };
                let value = serde_json::from_str(&raw)
                    .map_err(|e| ApiError::field(field, format!("is not JSON: {e}")))?;
                (value, field, None)
            }
        };
        let spec = spec::parse(spec_value, spec_field).map_err(ApiError::Invalid)?;
        spec::check_identification(&spec.script, spec_field)
            .map_err(ApiError::CallerIdentification)?;
        let now = self.clock.now();
        spec::check_opening(spec.window.as_ref(), now)
            .map_err(|reason| ApiError::field(format!("{spec_field}.window"), reason))?;
        let (from, caller_pool) = match spec.from {
            Caller::Number(number) => (number, None),
            Caller::Pool(pool) => (
                self.pool_number(&pool, &format!("{spec_field}.from.pool"))
                    .await?,
                Some(pool),
            ),
        };
        let script_vars = spec.script.variables();
        let rows = match json_contacts {
            Some(contacts) => contacts::from_json(contacts)?,
            None => contacts::from_csv(request::text(req)?, &script_vars)?,
        };
        let destinations = self
            .allowed
            .for_request(spec.default_region, spec.default_region);
        let mut checked = self
            .checked(
                rows,
                (spec.default_region, &destinations),
                &script_vars,
                spec.purpose,
                now,
            )
            .await?;
        let accepted = checked.accepted.len();
        let campaign = Campaign {
            id: seed.campaign_id()?,
            name: spec.name,
            from,
            status: CampaignStatus::Active,
            retry: spec.retry,
            pacing: spec.pacing,
            script: spec.script,
            limits: spec.limits,
            window: spec.window,
            default_region: spec.default_region.as_str().to_owned(),
            created_at: now,
            contacts: accepted as u64,
            purpose: spec.purpose,
            on_cap: spec.on_cap,
            caller_pool,
        };
        let calls = new_calls(&campaign, &mut checked.accepted, &seed, now)?;
        self.store.create_campaign(&campaign, &calls).await?;
        drop(calls);
        tracing::info!(
            campaign_id = %campaign.id,
            accepted,
            rejected = checked.rejected.len(),
            "campaign created"
        );
        self.dispatch_now().await;
        Reply::json(
            StatusCode::ACCEPTED,
            &views::Accepted::new(campaign.id.as_str(), accepted, &checked),
        )
    }

    /// Checks rows, drops those without the consent `purpose` needs and numbers on the
    /// do-not-call list, and refuses a list of which no row survived.
    async fn checked(
        &self,
        rows: Vec<contacts::Row>,
        (region, destinations): (Region, &Destinations),
        script_vars: &BTreeSet<String>,
        purpose: Purpose,
        now: Timestamp,
    ) -> Result<Checked, ApiError> {
        let given = rows.len();
        let mut checked = contacts::check_for(rows, region, script_vars, Some(destinations));
        checked.check_consent(now, purpose.needs_consent());
        let numbers: Vec<E164> = checked.accepted.iter().map(|c| c.to.clone()).collect();
        let blocked = self.store.on_do_not_call(&numbers).await?;
        checked.drop_do_not_call(&blocked);
        if given > 0 && checked.accepted.is_empty() {
            let (listed, truncated) = checked.listed();
            return Err(ApiError::NoneAccepted {
                rejected: listed.to_vec(),
                truncated,
                count: checked.rejected.len(),
            });
        }
        Ok(checked)
    }

    /// A campaign that may take new calls, read again when a write found it changed: not
    /// cancelled, and with a calling window that opens soon enough for calls added now
    /// ([`spec::check_opening`]; skipped dates can push it out after the campaign began).
    async fn open_campaign(&self, id: &CampaignId) -> Result<Campaign, ApiError> {
        let campaign = self
            .store
            .campaign(id)
            .await
            .map_err(|e| ApiError::from_store(e, "campaign"))?;
        if campaign.status == CampaignStatus::Cancelled {
            return Err(ApiError::conflict(
                "the campaign is cancelled; it takes no new calls",
            ));
        }
        spec::check_opening(campaign.window.as_ref(), self.clock.now()).map_err(|reason| {
            ApiError::conflict(format!("the campaign's calling window {reason}"))
        })?;
        Ok(campaign)
    }

    /// Writes `calls` as one append to the campaign, deciding again when its status changed
    /// meanwhile.
    async fn append(
        &self,
        mut campaign: Campaign,
        append: &AppendId,
        calls: &[NewCall],
        now: Timestamp,
    ) -> Result<(), ApiError> {
        for _ in 0..RACE_TRIES {
            match self.store.append_calls(&campaign, append, calls, now).await {
                Ok(_) => {
                    self.dispatch_now().await;
                    return Ok(());
                }
                Err(StoreError::Conflict) => campaign = self.open_campaign(&campaign.id).await?,
                Err(e) => return Err(ApiError::from_store(e, "campaign")),
            }
        }
        Err(ApiError::Conflict {
            detail: "the campaign's status kept changing; try again".into(),
            retry_after: Some(1),
        })
    }

    /// `POST /campaigns/{id}/contacts`.
    pub(crate) async fn append_contacts(
        &self,
        req: &Request,
        id: &CampaignId,
        kind: Kind,
        seed: Seed,
    ) -> Result<Reply, ApiError> {
        let region = query_region(req)?;
        let campaign = self.open_campaign(id).await?;
        let region = region.unwrap_or_else(|| campaign_region(&campaign));
        let script_vars = campaign.script.variables();
        let rows = match kind {
            Kind::Json => {
                let mut body = object(request::json(req)?, &["contacts"])?;
                let contacts = body
                    .remove("contacts")
                    .ok_or_else(|| ApiError::field("contacts", "is required"))?;
                contacts::from_json(contacts)?
            }
            Kind::Csv => contacts::from_csv(request::text(req)?, &script_vars)?,
        };
        if rows.is_empty() {
            return Err(ApiError::field(
                "contacts",
                "is empty; send at least one contact",
            ));
        }
        let destinations = self.allowed.for_request(campaign_region(&campaign), region);
        let now = self.clock.now();
        let mut checked = self
            .checked(
                rows,
                (region, &destinations),
                &script_vars,
                campaign.purpose,
                now,
            )
            .await?;
        let accepted = checked.accepted.len();
        let calls = new_calls(&campaign, &mut checked.accepted, &seed, now)?;
        self.append(campaign, &seed.append_id()?, &calls, now)
            .await?;
        drop(calls);
        tracing::info!(
            campaign_id = %id,
            accepted,
            rejected = checked.rejected.len(),
            "contacts appended"
        );
        Reply::json(
            StatusCode::ACCEPTED,
            &views::Accepted::new(id.as_str(), accepted, &checked),
        )
    }

    /// `POST /calls`: one call for an existing campaign, due now (or at its window's opening).
    pub(crate) async fn create_call(&self, req: &Request, seed: Seed) -> Result<Reply, ApiError> {
        let mut body = object(
            request::json(req)?,
            &[
                "campaign_id",
                "to",
                "vars",
                "tz",
                "default_region",
                "consent_at",
                "consent_source",
                "ref",
            ],
        )?;
        let mut errors = Vec::new();
        let campaign_id = match body.remove("campaign_id") {
            Some(Value::String(raw)) => CampaignId::parse(&raw)
                .map_err(|e| errors.push(FieldError::new("campaign_id", e.to_string())))
                .ok(),
            _ => {
                errors.push(FieldError::new("campaign_id", "is required"));
                None
            }
        };
        // `Some(None)`: not given, so the campaign's.
        let region = match body.remove("default_region") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(raw)) => Region::parse(&raw)
                .map_err(|reason| errors.push(FieldError::new("default_region", reason)))
                .ok()
                .map(Some),
            Some(_) => {
                errors.push(FieldError::new("default_region", "must be a country code"));
                None
            }
        };
        let (Some(campaign_id), Some(region), true) = (campaign_id, region, errors.is_empty())
        else {
            return Err(ApiError::Invalid(errors));
        };
        if !body.contains_key("to") {
            return Err(ApiError::field("to", "is required"));
        }
        let campaign = self.open_campaign(&campaign_id).await?;
        let region = region.unwrap_or_else(|| campaign_region(&campaign));
        let script_vars = campaign.script.variables();
        let rows = contacts::from_json(Value::Array(vec![Value::Object(body)]))?;
        // A number that cannot be read is a bad request; one read well that the account
        // never or may not call is refused on its own terms, as the do-not-call list is.
        let mut checked = contacts::check_for(rows, region, &script_vars, None);
        if let Some(rejected) = checked.rejected.pop() {
            return Err(ApiError::field(rejected.field, rejected.reason));
        }
        let destinations = self.allowed.for_request(campaign_region(&campaign), region);
        let now = self.clock.now();
        for contact in &checked.accepted {
            destinations
                .admit(&contact.to)
                .map_err(|e| ApiError::Refused(FieldError::new("to", e.to_string())))?;
            contact
                .check_consent(now, campaign.purpose.needs_consent())
                .map_err(|(fault, missing)| {
                    if missing {
                        ApiError::NoConsent(fault)
                    } else {
                        ApiError::Invalid(vec![fault])
                    }
                })?;
        }
        let numbers: Vec<E164> = checked.accepted.iter().map(|c| c.to.clone()).collect();
        if !self.store.on_do_not_call(&numbers).await?.is_empty() {
            return Err(ApiError::DoNotCall);
        }
        let calls = new_calls(&campaign, &mut checked.accepted, &seed, now)?;
        let [call] = calls.as_slice() else {
            return Err(ApiError::Internal("one contact made no single call".into()));
        };
        self.append(campaign, &seed.append_id()?, &calls, now)
            .await?;
        tracing::info!(call_id = %call.id, campaign_id = %campaign_id, to = %call.to.masked(), "call added");
        Reply::json(
            StatusCode::ACCEPTED,
            &views::CallAccepted {
                call_id: call.id.as_str(),
                campaign_id: campaign_id.as_str(),
                status: CallStatus::Queued.as_str(),
                due_at: views::time(call.due_at),
            },
        )
    }

    /// `POST /campaigns/{id}/pause|resume|cancel`.
    pub(crate) async fn change_status(
        &self,
        id: &CampaignId,
        endpoint: Endpoint,
    ) -> Result<Reply, ApiError> {
        use CampaignStatus::{Active, Cancelled, Paused};
        let (from, to, verb): (&[CampaignStatus], CampaignStatus, &str) = match endpoint {
            Endpoint::PauseCampaign => (&[Active], Paused, "paused"),
            Endpoint::ResumeCampaign => (&[Paused], Active, "resumed"),
            _ => (&[Active, Paused], Cancelled, "cancelled"),
        };
        match self.store.set_status(id, from, to, self.clock.now()).await {
            Ok(campaign) => {
                tracing::info!(campaign_id = %id, status = campaign.status.as_str(), "campaign {verb}");
                self.dispatch_now().await;
                Reply::json(
                    StatusCode::ACCEPTED,
                    &views::StatusChanged {
                        campaign_id: id.as_str(),
                        status: campaign.status.as_str(),
                    },
                )
            }
            Err(StoreError::Conflict) => {
                let now = self
                    .store
                    .campaign(id)
                    .await
                    .map_err(|e| ApiError::from_store(e, "campaign"))?;
                let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
                Err(ApiError::conflict(format!(
                    "the campaign is {}; only a campaign that is {} can be {verb}",
                    now.status.as_str(),
                    allowed.join(" or ")
                )))
            }
            Err(e) => Err(ApiError::from_store(e, "campaign")),
        }
    }

    /// `POST /calls/{id}/hangup`.
    pub(crate) async fn hang_up(&self, id: &CallId) -> Result<Reply, ApiError> {
        for _ in 0..RACE_TRIES {
            let call = self
                .store
                .call(id)
                .await
                .map_err(|e| ApiError::from_store(e, "call"))?;
            let accepted = |status: CallStatus| {
                Reply::json(
                    StatusCode::ACCEPTED,
                    &views::HangupAccepted {
                        call_id: id.as_str(),
                        status: status.as_str(),
                    },
                )
            };
            match call.status {
                CallStatus::Queued | CallStatus::RetryWait => {
                    match self
                        .store
                        .cancel_waiting_call(
                            id,
                            call.attempt,
                            outdial_core::policy::Reason::HungUp,
                            self.clock.now(),
                        )
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(call_id = %id, "waiting call cancelled");
                            return accepted(CallStatus::Cancelled);
                        }
                        // Claimed meanwhile: decide again from what it is now.
                        Err(StoreError::Conflict) => {}
                        Err(e) => return Err(ApiError::from_store(e, "call")),
                    }
                }
                status if status.is_live() => {
                    let Some(transaction) = call.current_transaction() else {
                        return Err(ApiError::Conflict {
                            detail: "the call is being dialed; try again in a moment".into(),
                            retry_after: Some(1),
                        });
                    };
                    let arguments = messages::encode_end(EndRequest::Hangup);
                    return match self.dialer.update(transaction, arguments).await {
                        Ok(()) => {
                            tracing::info!(call_id = %id, "hang-up requested");
                            accepted(status)
                        }
                        Err(DialError::NotFound) => {
                            Err(ApiError::conflict("the call has already ended"))
                        }
                        Err(e @ (DialError::Throttled | DialError::Unknown(_))) => {
                            Err(ApiError::Unavailable(Box::new(e)))
                        }
                        Err(e @ DialError::Rejected { .. }) => Err(ApiError::Internal(Box::new(e))),
                    };
                }
                status => {
                    return Err(ApiError::conflict(format!(
                        "the call has ended ({})",
                        status.as_str()
                    )));
                }
            }
        }
        Err(ApiError::Conflict {
            detail: "the call kept changing; try again".into(),
            retry_after: Some(1),
        })
    }

    /// `PUT /dnc/{e164}`: any number that could be a destination one day, whatever the
    /// allow-list says today (`crate::destinations`); never one that is never called.
    pub(crate) async fn add_do_not_call(&self, raw: &str) -> Result<Reply, ApiError> {
        let number = path_number(raw)?;
        phone::dialable(&number)
            .map_err(|e| ApiError::Refused(FieldError::new("e164", e.to_string())))?;
        self.store
            .add_do_not_call(&number, self.clock.now())
            .await?;
        tracing::info!(number = %number.masked(), "added to the do-not-call list");
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    }

    /// `DELETE /dnc/{e164}`.
    pub(crate) async fn remove_do_not_call(&self, raw: &str) -> Result<Reply, ApiError> {
        let number = path_number(raw)?;
        match self.store.remove_do_not_call(&number).await {
            Ok(()) => {
                tracing::info!(number = %number.masked(), "removed from the do-not-call list");
                Ok(Reply::empty(StatusCode::NO_CONTENT))
            }
            Err(StoreError::NotFound) => Err(ApiError::NotFound(
                "the number is not on the do-not-call list".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

mod numbers;
mod policy;
pub(crate) mod reads;
#[cfg(test)]
use reads::{Resume, decode_cursor, encode_cursor};

#[cfg(test)]
mod tests;
