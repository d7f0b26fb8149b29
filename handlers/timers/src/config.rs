//! What the timers function reads from its environment beyond the shared
//! [`Config`](outdial_adapters::config::Config).

use outdial_adapters::config::{number, required};

/// What the timers function reads from its environment beyond the shared [`Config`](outdial_adapters::config::Config).
#[derive(Debug, Clone, PartialEq)]
pub struct TimersConfig {
    /// `OUTDIAL_SMA_ID`: the SIP media application calls are placed through.
    pub sma_id: String,
    /// `OUTDIAL_ACCOUNT_CPS`: calls per second for the whole account (default 5, the
    /// documented PSTN action rate; raise it with the account's quota).
    pub account_cps: f64,
}

impl TimersConfig {
    /// # Errors
    /// When `OUTDIAL_SMA_ID` is missing or `OUTDIAL_ACCOUNT_CPS` is not a positive number;
    /// the message names the variable.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// # Errors
    /// As [`TimersConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            sma_id: required(
                &lookup,
                "OUTDIAL_SMA_ID",
                "it names the SIP media application",
            )?,
            account_cps: number(
                &lookup,
                "OUTDIAL_ACCOUNT_CPS",
                5.0,
                "a number above 0 and at most 10000",
                |r: &f64| r.is_finite() && *r > 0.0 && *r <= 10_000.0,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_sma_is_required_and_the_account_rate_defaults_to_five() {
        let err = TimersConfig::from_lookup(lookup(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("OUTDIAL_SMA_ID"), "{err}");
        let c = TimersConfig::from_lookup(lookup(&[("OUTDIAL_SMA_ID", "sma")])).unwrap();
        assert!((c.account_cps - 5.0).abs() < f64::EPSILON);
        for bad in ["0", "-1", "fast", "NaN"] {
            let err = TimersConfig::from_lookup(lookup(&[
                ("OUTDIAL_SMA_ID", "sma"),
                ("OUTDIAL_ACCOUNT_CPS", bad),
            ]))
            .unwrap_err()
            .to_string();
            assert!(err.contains("OUTDIAL_ACCOUNT_CPS"), "{bad}: {err}");
        }
    }
}
