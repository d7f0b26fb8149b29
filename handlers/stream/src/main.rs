//! The stream Lambda's entry point: logging, configuration, clients built once, then the
//! runtime loop. Everything else is in the library, which the local stack hosts the same way.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use outdial_adapters::clock::SystemClock;
use outdial_adapters::config::{Config, Deadline, aws_config};
use outdial_adapters::counters::DynamoCounters;
use outdial_adapters::events::EventBridgePublisher;
use outdial_core::messages::Function;
use outdial_core::time::Clock;
use outdial_stream::{EVENT_BUS_VAR, StreamHandler};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = aws_config(Deadline::of(Function::Stream)).await;
    let store = DynamoCounters::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut handler = StreamHandler::new(store, Arc::clone(&clock));
    // Outcome events go to the bus the stack names; without one, none are published.
    if let Some(bus) = std::env::var(EVENT_BUS_VAR).ok().filter(|b| !b.is_empty()) {
        let events = aws_sdk_eventbridge::Client::new(&sdk);
        handler = handler.with_publisher(Arc::new(EventBridgePublisher::new(events, &bus)));
    }
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (handler, clock) = (Arc::clone(&handler), Arc::clone(&clock));
        async move {
            let handled = handler.handle(event.payload).await.inspect_err(|e| {
                tracing::error!(error = %e, retryable = e.is_retryable(), "batch refused");
            })?;
            // Embedded metric format: CloudWatch reads metrics from these log lines.
            for line in handled.metric_lines(clock.now()) {
                println!("{line}");
            }
            Ok::<Value, Error>(handled.response_json())
        }
    }))
    .await
}
