//! The SMA Lambda's entry point: logging, configuration, clients built once, then the runtime
//! loop. Everything else is in the library, which the local stack hosts the same way.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use outdial_adapters::clock::SystemClock;
use outdial_adapters::config::{Config, Deadline, aws_config};
use outdial_adapters::store::DynamoStore;
use outdial_core::messages::Function;
use outdial_sma::{Settings, SmaHandler};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let settings = Settings::from_env()?;
    let sdk = aws_config(Deadline::of(Function::Sma)).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.table,
        config.shards,
    );
    store.warm().await;
    let handler = Arc::new(SmaHandler::new(store, Arc::new(SystemClock), settings));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = Arc::clone(&handler);
        async move { Ok::<Value, Error>(handler.handle(event.payload).await) }
    }))
    .await
}
