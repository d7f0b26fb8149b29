//! The timers Lambda's entry point. EventBridge Scheduler invokes it every minute (and the
//! API invokes it at once when a campaign starts, resumes or is cancelled); each invocation
//! dispatches every shard it can lease (see [`outdial_timers::invoke`]) and ends by logging
//! its figures as CloudWatch embedded metrics (namespace `Outdial`), which the stack's alarms
//! watch.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use outdial_adapters::clock::SystemClock;
use outdial_adapters::config::{Config, Deadline, aws_config};
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_core::messages::Function;
use outdial_core::time::{Clock, Timestamp};
use outdial_timers::{Dispatcher, Settings, TimersConfig, invoke, is_scheduled};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let timers = TimersConfig::from_env()?;
    let sdk = aws_config(Deadline::of(Function::Timers)).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.table,
        config.shards,
    );
    let dialer = ChimeDialer::new(aws_sdk_chimesdkvoice::Client::new(&sdk), timers.sma_id);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shards = config.shards;
    // The account's rate is shared by the shards' dispatchers running side by side.
    let settings = Settings {
        account_cps: timers.account_cps / f64::from(shards),
        ..Settings::default()
    };
    let dispatcher = Arc::new(Dispatcher::new(store, dialer, clock, settings));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let dispatcher = Arc::clone(&dispatcher);
        async move {
            let deadline =
                Timestamp::from_millis(i64::try_from(event.context.deadline).unwrap_or(i64::MAX));
            let run = invoke(
                &dispatcher,
                shards,
                &event.context.request_id,
                deadline,
                is_scheduled(&event.payload),
            )
            .await;
            // Embedded metric format: CloudWatch reads the figures from this log line.
            println!("{}", run.metrics);
            if run.errors.is_empty() {
                Ok(run.answer)
            } else {
                // Retryable: the next scheduled run (within a minute) takes the shards over
                // once their leases run out; the function itself is not retried.
                tracing::warn!(errors = ?run.errors, retryable = true, "shards not dispatched");
                Err(Error::from(run.errors.join("; ")))
            }
        }
    }))
    .await
}
