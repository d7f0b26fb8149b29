//! The API Lambda's entry point: logging, configuration, clients built once, then the runtime
//! loop. Everything else is in the library, which the local HTTP API hosts the same way.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Error, Request, service_fn};
use outdial_adapters::clock::SystemClock;
use outdial_adapters::config::{Config, Deadline, aws_config, required};
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_adapters::trigger::LambdaTrigger;
use outdial_api::destinations::AllowedCountries;
use outdial_api::{Api, Settings};
use outdial_core::messages::Function;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let settings = Settings::from_env()?;
    let allowed = AllowedCountries::from_env()?;
    let env = |name: &str| std::env::var(name).ok();
    let sma_id = required(&env, "OUTDIAL_SMA_ID", "it names the SIP media application")?;
    let timers = required(
        &env,
        "OUTDIAL_TIMERS_FUNCTION",
        "it names the timers function",
    )?;
    let sdk = aws_config(Deadline::of(Function::Api)).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.table,
        config.shards,
    );
    store.warm().await;
    let dialer = ChimeDialer::new(aws_sdk_chimesdkvoice::Client::new(&sdk), sma_id);
    let trigger = LambdaTrigger::new(aws_sdk_lambda::Client::new(&sdk), timers);
    let api = Arc::new(
        Api::new(store, dialer, trigger, Arc::new(SystemClock), settings)
            .with_allowed_countries(allowed),
    );
    lambda_http::run(service_fn(move |req: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(req).await) }
    }))
    .await
}
