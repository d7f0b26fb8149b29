//! The account's caller IDs: numbers registered in pools, each with its caps, its health and
//! its usage; and the number a pool campaign is shown with.
//!
//! The registrations are few (at most [`MAX_POOL_NUMBERS`] a pool) and live in one
//! partition, so every endpoint reads them all and works on what it read.

use http::StatusCode;
use lambda_http::Request;
use outdial_core::admin::{ApiStore, DispatchTrigger};
use outdial_core::ids::E164;
use outdial_core::numbers::{
    Health, MAX_PER_DAY, MAX_PER_HOUR, MAX_PER_MINUTE, MAX_POOL_NUMBERS, Member, NumberCaps,
    NumberSpec, valid_pool,
};
use outdial_core::ports::{Dialer, StoreError};
use outdial_core::record::PoolRef;
use serde_json::{Map, Value};

use super::{object, path_number};
use crate::problem::{ApiError, FieldError, Reply};
use crate::request;
use crate::service::Api;
use crate::views;

const POOL_RULE: &str = "must be a pool's name: 1 to 64 letters, digits, '-' or '_'";

/// Reads one cap: absent or null is no cap; a whole number is left for
/// [`NumberSpec::registration`] to bound (one too large for a `u32` is as far out of bounds).
fn cap(
    caps: &mut Map<String, Value>,
    name: &str,
    ceiling: u32,
    errors: &mut Vec<FieldError>,
) -> Option<u32> {
    match caps.remove(name) {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => {
                errors.push(FieldError::new(
                    format!("caps.{name}"),
                    format!("must be a whole number from 1 to {ceiling}"),
                ));
                None
            }
        },
    }
}

/// Reads a `PUT /numbers/{e164}` body field by field, so that every fault names its field
/// (`caps.per_hour`); the rules on the values are [`NumberSpec::registration`]'s.
fn number_spec(body: Value) -> Result<NumberSpec, ApiError> {
    let mut fields = object(body, &["pool", "caps", "display_region"])?;
    let mut errors = Vec::new();
    let pool = match fields.remove("pool") {
        Some(Value::String(name)) => Some(name),
        None | Some(Value::Null) => {
            errors.push(FieldError::new("pool", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("pool", POOL_RULE));
            None
        }
    };
    let caps = match fields.remove("caps") {
        None | Some(Value::Null) => NumberCaps::default(),
        Some(Value::Object(mut caps)) => {
            let known = ["per_minute", "per_hour", "per_day"];
            for unknown in caps.keys().filter(|k| !known.contains(&k.as_str())) {
                errors.push(FieldError::new(
                    format!("caps.{unknown}"),
                    format!("unknown field; expected {}", known.join(", ")),
                ));
            }
            NumberCaps {
                per_minute: cap(&mut caps, "per_minute", MAX_PER_MINUTE, &mut errors),
                per_hour: cap(&mut caps, "per_hour", MAX_PER_HOUR, &mut errors),
                per_day: cap(&mut caps, "per_day", MAX_PER_DAY, &mut errors),
            }
        }
        Some(_) => {
            errors.push(FieldError::new(
                "caps",
                "must be an object of per_minute, per_hour and per_day",
            ));
            NumberCaps::default()
        }
    };
    let display_region = match fields.remove("display_region") {
        None | Some(Value::Null) => None,
        Some(Value::String(region)) => Some(region),
        Some(_) => {
            errors.push(FieldError::new(
                "display_region",
                "must be a North American area code (\"305\") or a country calling code \
                 (\"+33\"), as text",
            ));
            None
        }
    };
    match pool {
        Some(pool) if errors.is_empty() => Ok(NumberSpec {
            pool,
            caps,
            display_region,
        }),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// The `pool` filter of `GET /numbers`, when given.
fn pool_filter(req: &Request) -> Result<Option<String>, ApiError> {
    match request::query(req).first("pool") {
        None => Ok(None),
        Some(name) if valid_pool(name) => Ok(Some(name.to_owned())),
        Some(_) => Err(ApiError::field("pool", POOL_RULE)),
    }
}

fn not_registered() -> ApiError {
    ApiError::NotFound("the number is not a registered caller ID".into())
}

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// `GET /numbers?pool=`: every caller ID (of the pool), by number, with its usage now.
    pub(crate) async fn list_numbers(&self, req: &Request) -> Result<Reply, ApiError> {
        let pool = pool_filter(req)?;
        let mut members = self.store.numbers().await?;
        if let Some(pool) = &pool {
            members.retain(|m| &m.number.pool == pool);
        }
        members.sort_by(|a, b| a.number.e164.as_str().cmp(b.number.e164.as_str()));
        let now = self.clock.now();
        Reply::json(
            StatusCode::OK,
            &views::NumberList {
                numbers: members
                    .iter()
                    .map(|m| views::NumberView::new(m, now))
                    .collect(),
            },
        )
    }

    /// `PUT /numbers/{e164}`: registers a caller ID, or changes its pool, caps or display
    /// region. Its health and usage are kept: a quarantined number stays quarantined until
    /// restored. A pool takes at most [`MAX_POOL_NUMBERS`] numbers. A `PUT` of the same body
    /// leaves the same registration, so, like `PUT /policy`, it needs no `Idempotency-Key`.
    pub(crate) async fn put_number(&self, req: &Request, raw: &str) -> Result<Reply, ApiError> {
        let e164 = path_number(raw)?;
        request::kind(req, false)?;
        let mut number = number_spec(request::json(req)?)?
            .registration(e164)
            .map_err(|e| ApiError::field(e.field, e.reason))?;
        let members = self.store.numbers().await?;
        let current = members.iter().find(|m| m.number.e164 == number.e164);
        if let Some(current) = current {
            number.health = current.number.health.clone();
        }
        let joins = current.is_none_or(|m| m.number.pool != number.pool);
        let held = members
            .iter()
            .filter(|m| m.number.pool == number.pool)
            .count();
        if joins && held >= MAX_POOL_NUMBERS {
            return Err(ApiError::PoolFull(format!(
                "pool \"{}\" holds {held} numbers, the most a pool may hold \
                 ({MAX_POOL_NUMBERS}): retire one (DELETE /numbers/{{e164}}) or use another pool",
                number.pool
            )));
        }
        self.store.put_number(&number).await?;
        tracing::info!(
            number = %number.e164.masked(),
            pool = %number.pool,
            new = current.is_none(),
            "caller ID registered"
        );
        let member = Member {
            usage: current.map(|m| m.usage.clone()).unwrap_or_default(),
            number,
        };
        Reply::json(
            StatusCode::OK,
            &views::NumberView::new(&member, self.clock.now()),
        )
    }

    /// `DELETE /numbers/{e164}`: retires a caller ID; it is chosen no more.
    pub(crate) async fn delete_number(&self, raw: &str) -> Result<Reply, ApiError> {
        let number = path_number(raw)?;
        match self.store.delete_number(&number).await {
            Ok(()) => {
                tracing::info!(number = %number.masked(), "caller ID retired");
                Ok(Reply::empty(StatusCode::NO_CONTENT))
            }
            Err(StoreError::NotFound) => Err(not_registered()),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /numbers/{e164}/restore`: puts a quarantined caller ID back in rotation. A
    /// healthy one is left as it is and answered the same.
    pub(crate) async fn restore_number(&self, raw: &str) -> Result<Reply, ApiError> {
        let number = path_number(raw)?;
        let mut member = self
            .store
            .numbers()
            .await?
            .into_iter()
            .find(|m| m.number.e164 == number)
            .ok_or_else(not_registered)?;
        if !member.number.health.is_healthy() {
            member.number.health = Health::Healthy;
            match self.store.restore_number(&number).await {
                Ok(()) => {}
                Err(StoreError::NotFound) => return Err(not_registered()),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(number = %number.masked(), "caller ID restored");
        }
        Reply::json(
            StatusCode::OK,
            &views::NumberView::new(&member, self.clock.now()),
        )
    }

    /// The number a campaign dialing from `pool` is shown with: the pool's lowest healthy
    /// number. `field` names where the pool was given.
    ///
    /// # Errors
    /// [`ApiError::EmptyPool`] when the pool has no number, or none that is healthy.
    pub(crate) async fn pool_number(&self, pool: &PoolRef, field: &str) -> Result<E164, ApiError> {
        let members = self.store.numbers().await?;
        let in_pool: Vec<&Member> = members
            .iter()
            .filter(|m| m.number.pool == pool.pool)
            .collect();
        in_pool
            .iter()
            .filter(|m| m.number.health.is_healthy())
            .map(|m| &m.number.e164)
            .min_by(|a, b| a.as_str().cmp(b.as_str()))
            .cloned()
            .ok_or_else(|| {
                let reason = if in_pool.is_empty() {
                    format!(
                        "pool \"{}\" has no caller ID: register one with PUT /numbers/{{e164}}",
                        pool.pool
                    )
                } else {
                    format!(
                        "every number of pool \"{}\" ({}) is quarantined: restore one with \
                         POST /numbers/{{e164}}/restore",
                        pool.pool,
                        in_pool.len()
                    )
                };
                ApiError::EmptyPool(FieldError::new(field, reason))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_number_spec_is_read_with_every_fault_named() {
        let spec = number_spec(
            json!({"pool": "east", "caps": {"per_minute": 2, "per_day": 9},
                                      "display_region": "305"}),
        )
        .unwrap();
        assert_eq!(spec.pool, "east");
        assert_eq!(
            spec.caps,
            NumberCaps {
                per_minute: Some(2),
                per_hour: None,
                per_day: Some(9)
            }
        );
        assert_eq!(spec.display_region.as_deref(), Some("305"));
        let spec = number_spec(json!({"pool": "east", "caps": null})).unwrap();
        assert_eq!(spec.caps, NumberCaps::default());

        assert_eq!(fields(number_spec(json!({})).unwrap_err()), ["pool"]);
        assert_eq!(
            fields(number_spec(json!({"pool": 3})).unwrap_err()),
            ["pool"]
        );
        assert_eq!(fields(number_spec(json!([])).unwrap_err()), ["body"]);
        assert_eq!(
            fields(number_spec(json!({"pool": "e", "colour": 1})).unwrap_err()),
            ["colour"]
        );
        assert_eq!(
            fields(
                number_spec(
                    json!({"pool": "e", "caps": {"per_minute": 1.5, "per_week": 1,
                                                         "per_day": -1},
                                   "display_region": 305})
                )
                .unwrap_err()
            ),
            [
                "caps.per_week",
                "caps.per_minute",
                "caps.per_day",
                "display_region"
            ]
        );
        assert_eq!(
            fields(number_spec(json!({"pool": "e", "caps": [1]})).unwrap_err()),
            ["caps"]
        );
        // Too large for a u32: still read, and refused by the registration's bounds.
        let spec =
            number_spec(json!({"pool": "e", "caps": {"per_hour": 5_000_000_000_u64}})).unwrap();
        assert_eq!(spec.caps.per_hour, Some(u32::MAX));
        let e164 = E164::parse("+12025550100").unwrap();
        assert_eq!(spec.registration(e164).unwrap_err().field, "caps.per_hour");
    }
}
