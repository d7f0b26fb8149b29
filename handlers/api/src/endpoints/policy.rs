//! The account's compliance settings: its policy (contact caps, destination caps, default
//! calling hours) and
//! the do-not-call list's entries, read one number at a time.

use http::StatusCode;
use lambda_http::Request;
use outdial_core::admin::{ApiStore, DispatchTrigger};
use outdial_core::policy::{Cap, DestinationCap, Policy, PolicySpec};
use outdial_core::ports::Dialer;
use serde_json::Value;

use super::{object, path_number};
use crate::problem::{ApiError, FieldError, Reply};
use crate::request;
use crate::service::Api;
use crate::views;

/// Reads a policy body field by field, so that a fault names its field (`caps[1].purposes`)
/// rather than a position in the JSON; the rules themselves are `Policy::try_from`'s.
fn policy_spec(body: Value) -> Result<PolicySpec, ApiError> {
    let mut fields = object(body, &["caps", "destination_caps", "default_hours"])?;
    let caps = match fields.remove("caps") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                serde_json::from_value::<Cap>(item)
                    .map_err(|e| FieldError::new(format!("caps[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::Invalid(vec![e]))?,
        Some(_) => return Err(ApiError::field("caps", "must be an array of caps")),
    };
    let destination_caps = match fields.remove("destination_caps") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                serde_json::from_value::<DestinationCap>(item)
                    .map_err(|e| FieldError::new(format!("destination_caps[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::Invalid(vec![e]))?,
        Some(_) => {
            return Err(ApiError::field(
                "destination_caps",
                "must be an array of destination caps",
            ));
        }
    };
    let default_hours = match fields.remove("default_hours") {
        None | Some(Value::Null) => None,
        Some(hours) => Some(serde_json::from_value(hours).map_err(|_| {
            ApiError::field(
                "default_hours",
                "must map days (mon to sun) to lists of \"HH:MM-HH:MM\" ranges",
            )
        })?),
    };
    Ok(PolicySpec {
        caps,
        destination_caps,
        default_hours,
    })
}

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// `GET /policy`: the empty policy until one is set.
    pub(crate) async fn get_policy(&self) -> Result<Reply, ApiError> {
        let (policy, updated_at) = self.store.policy().await?;
        Reply::json(StatusCode::OK, &views::PolicyView::new(&policy, updated_at))
    }

    /// `PUT /policy`: replaces the policy. A `PUT` of the same body leaves the same policy,
    /// so, like `PUT /dnc/{e164}`, it needs no `Idempotency-Key`.
    pub(crate) async fn put_policy(&self, req: &Request) -> Result<Reply, ApiError> {
        request::kind(req, false)?;
        let spec = policy_spec(request::json(req)?)?;
        let policy = Policy::try_from(spec).map_err(|e| ApiError::field(e.field, e.reason))?;
        let now = self.clock.now();
        self.store.put_policy(&policy, now).await?;
        tracing::info!(caps = policy.caps().len(), "policy set");
        Reply::json(StatusCode::OK, &views::PolicyView::new(&policy, Some(now)))
    }

    /// `GET /dnc/{e164}`.
    pub(crate) async fn get_do_not_call(&self, raw: &str) -> Result<Reply, ApiError> {
        let number = path_number(raw)?;
        let entry = self
            .store
            .do_not_call_entry(&number)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound("the number is not on the do-not-call list".into())
            })?;
        Reply::json(StatusCode::OK, &views::DoNotCall::new(&entry))
    }
}
