//! The timers Lambda's entry point. EventBridge Scheduler invokes it every minute (and the
//! API invokes it at once when a campaign starts or resumes); each invocation dispatches every
//! shard it can lease until five seconds before its deadline, at most 50 s, so consecutive
//! runs hand over cleanly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use outdial_adapters::clock::SystemClock;
use outdial_adapters::config::{Config, Deadline, aws_config};
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_core::time::{Clock, Timestamp};
use outdial_timers::{Dispatcher, Settings};
use serde_json::{Value, json};

/// The longest one invocation dispatches.
const RUN_FOR: Duration = Duration::from_secs(50);
/// What it leaves before its deadline to give the leases back.
const MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sma_id = std::env::var("OUTDIAL_SMA_ID")
        .context("OUTDIAL_SMA_ID is not set: it names the SIP media application")?;
    let account_cps: f64 =
        match std::env::var("OUTDIAL_ACCOUNT_CPS") {
            Err(_) => 5.0,
            Ok(v) => v.parse().ok().filter(|r: &f64| *r > 0.0).with_context(|| {
                format!("OUTDIAL_ACCOUNT_CPS must be a positive number, got {v:?}")
            })?,
        };
    let sdk = aws_config(Deadline::Background).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.table,
        config.shards,
    );
    let dialer = ChimeDialer::new(aws_sdk_chimesdkvoice::Client::new(&sdk), sma_id);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shards = config.shards;
    // The account's rate is shared by the shards' dispatchers running side by side.
    let settings = Settings {
        account_cps: account_cps / f64::from(shards),
        ..Settings::default()
    };
    let dispatcher = Arc::new(Dispatcher::new(store, dialer, Arc::clone(&clock), settings));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (dispatcher, clock) = (Arc::clone(&dispatcher), Arc::clone(&clock));
        async move {
            let now = clock.now();
            let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            let margin_ms = i64::try_from(MARGIN.as_millis()).unwrap_or(0);
            let until = Timestamp::from_millis(
                deadline_ms
                    .saturating_sub(margin_ms)
                    .min(now.plus(RUN_FOR).as_millis()),
            );
            let owner = event.context.request_id.clone();
            let runs = (0..shards).map(|shard| {
                let (dispatcher, owner) = (Arc::clone(&dispatcher), owner.clone());
                async move { (shard, dispatcher.run(shard, &owner, until).await) }
            });
            let mut dialed = 0;
            let mut errors = Vec::new();
            for (shard, result) in futures::future::join_all(runs).await {
                match result {
                    Ok(Some(tick)) => dialed += tick.dialed,
                    Ok(None) => {}
                    Err(e) => errors.push(format!("shard {shard}: {e}")),
                }
            }
            if errors.is_empty() {
                Ok::<Value, Error>(json!({"dialed": dialed}))
            } else {
                // Retryable: the schedule invokes again within a minute, and leases run out.
                Err(errors.join("; ").into())
            }
        }
    }))
    .await
}
