//! The API as a value: its ports, its clock and the settings it reads from the environment.
//! Its methods are added where they belong: the router in the crate root, each route's work
//! in `endpoints`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outdial_core::admin::{ApiStore, DispatchTrigger};
use outdial_core::ports::Dialer;
use outdial_core::time::Clock;

use crate::auth::Auth;
use crate::destinations::AllowedCountries;
use crate::problem;

/// Lambda's limit on a synchronous request's payload.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6_000_000;
/// How long a request holds its idempotency key before another attempt may take it over:
/// longer than the function's timeout (API Gateway gives up after 30 s), so a holder that
/// has not finished by then is dead.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
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

/// The API: the store, the Voice API (for hang-ups), the dispatcher trigger, a clock, and
/// the countries the account calls.
#[derive(Debug)]
pub struct Api<S, D, T> {
    pub(crate) store: S,
    pub(crate) dialer: D,
    pub(crate) trigger: T,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) allowed: AllowedCountries,
}

impl<S, D, T> Api<S, D, T>
where
    S: ApiStore,
    D: Dialer,
    T: DispatchTrigger,
{
    /// The API calling each campaign's own region ([`AllowedCountries::CampaignRegion`]).
    pub fn new(store: S, dialer: D, trigger: T, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            store,
            dialer,
            trigger,
            clock,
            settings,
            allowed: AllowedCountries::default(),
        }
    }

    /// The API calling the countries `allowed` lets it (`OUTDIAL_ALLOWED_COUNTRIES`, read by
    /// [`AllowedCountries::from_env`]). Kept apart from [`Settings`], whose fields callers
    /// build by name, so that adding the list changed none of them.
    #[must_use]
    pub fn with_allowed_countries(mut self, allowed: AllowedCountries) -> Self {
        self.allowed = allowed;
        self
    }

    /// Starts a dispatcher now. A failure only delays dialing until the next scheduled run,
    /// so it is logged, not answered.
    pub(crate) async fn dispatch_now(&self) {
        if let Err(e) = self.trigger.dispatch_now().await {
            tracing::warn!(error = %problem::chain(e.as_ref()), "starting a dispatcher failed; the schedule will");
        }
    }
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
