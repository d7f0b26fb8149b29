//! Configuration from the environment, and AWS clients built once from it.
//!
//! Lambda functions get these variables from the CDK stack; the local stack sets them for the
//! handlers it hosts. DynamoDB Local and the PSTN simulator are reached through the SDK's own
//! endpoint settings (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_CHIME_SDK_VOICE`), so no
//! code path knows whether it runs locally.

use std::time::Duration;

use anyhow::Context;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use outdial_core::messages::Function;

/// Everything the handlers read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `OUTDIAL_TABLE_NAME`: the table.
    pub table: String,
    /// `OUTDIAL_DISPATCH_SHARDS`: how many dispatch shards due work is spread over (default 4).
    pub shards: u32,
}

impl Config {
    /// Reads the configuration.
    ///
    /// # Errors
    /// When `OUTDIAL_TABLE_NAME` is missing or a number does not parse; the message names the
    /// variable.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            table: required(&lookup, "OUTDIAL_TABLE_NAME", "it names the DynamoDB table")?,
            shards: number(
                &lookup,
                "OUTDIAL_DISPATCH_SHARDS",
                4,
                "1 to 64",
                |n: &u32| (1..=64).contains(n),
            )?,
        })
    }
}

/// A variable that must be set and not empty; the error names it and says `why` it matters.
///
/// # Errors
/// When `name` is missing or empty.
pub fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    why: &str,
) -> anyhow::Result<String> {
    lookup(name)
        .filter(|v| !v.is_empty())
        .with_context(|| format!("{name} is not set: {why}"))
}

/// A number read from `name`, `default` when it is not set; a value that does not parse or
/// that `valid` refuses is an error naming the variable and the `allowed` range.
///
/// # Errors
/// When the value is not a number `valid` accepts.
pub fn number<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    allowed: &str,
    valid: impl Fn(&T) -> bool,
) -> anyhow::Result<T> {
    match lookup(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<T>()
            .ok()
            .filter(|n| valid(n))
            .with_context(|| format!("{name} must be {allowed}, got {v:?}")),
    }
}

/// How long a function's AWS requests may take: its clients' timeouts and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The SMA handler: the SMA re-sends an event after 5 s and hangs up after 20 s, so the
    /// whole request (one retry included) must end well inside 5 s.
    HotPath,
    /// The API, timers and stream handlers, which can wait longer.
    Background,
}

impl Deadline {
    /// The deadline of `function`'s clients, in Lambda and in the local stack alike.
    #[must_use]
    pub const fn of(function: Function) -> Self {
        match function {
            Function::Sma => Self::HotPath,
            Function::Api | Function::Timers | Function::Stream => Self::Background,
        }
    }

    /// The longest one request may take, its retries included.
    #[must_use]
    pub fn operation(self) -> Duration {
        self.timeouts()
            .0
            .operation_timeout()
            .unwrap_or(Duration::MAX)
    }

    /// The longest one attempt of a request may take.
    #[must_use]
    pub fn attempt(self) -> Duration {
        self.timeouts()
            .0
            .operation_attempt_timeout()
            .unwrap_or(Duration::MAX)
    }

    /// The timeouts a client of this deadline is built with.
    #[must_use]
    pub fn timeout_config(self) -> TimeoutConfig {
        self.timeouts().0
    }

    /// The retries a client of this deadline is built with.
    #[must_use]
    pub fn retry_config(self) -> RetryConfig {
        self.timeouts().1
    }

    fn timeouts(self) -> (TimeoutConfig, RetryConfig) {
        let (connect, attempt, operation, attempts) = match self {
            Self::HotPath => (
                Duration::from_millis(500),
                Duration::from_millis(1000),
                Duration::from_millis(2500),
                2,
            ),
            Self::Background => (
                Duration::from_secs(2),
                Duration::from_secs(5),
                Duration::from_secs(20),
                4,
            ),
        };
        (
            TimeoutConfig::builder()
                .connect_timeout(connect)
                .operation_attempt_timeout(attempt)
                .operation_timeout(operation)
                .build(),
            RetryConfig::standard().with_max_attempts(attempts),
        )
    }
}

/// Loads the shared AWS configuration (region, credentials, endpoint overrides) with the
/// timeouts of `deadline`.
pub async fn aws_config(deadline: Deadline) -> aws_config::SdkConfig {
    let (timeouts, retry) = deadline.timeouts();
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retry);
    match deadline {
        // The hot path's attempt timeout already bounds reading a response body (a small
        // JSON document, read inside the attempt); the stalled-stream guard would add timers
        // to every request for nothing.
        Deadline::HotPath => loader.stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        ),
        Deadline::Background => loader,
    }
    .load()
    .await
}

#[cfg(test)]
mod tests {
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
    fn the_table_name_is_required_and_named_when_missing() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err().to_string();
        assert!(err.contains("OUTDIAL_TABLE_NAME"), "{err}");
    }

    #[test]
    fn shards_default_to_four_and_reject_nonsense() {
        let c = Config::from_lookup(lookup(&[("OUTDIAL_TABLE_NAME", "t")])).unwrap();
        assert_eq!(c.shards, 4);
        let err = Config::from_lookup(lookup(&[
            ("OUTDIAL_TABLE_NAME", "t"),
            ("OUTDIAL_DISPATCH_SHARDS", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("OUTDIAL_DISPATCH_SHARDS"), "{err}");
    }
}
