//! The whole of outdial on one machine.
//!
//! - [`bus`]: the EventBridge bus outcome events go to (`PutEvents`), and their delivery to a
//!   webhook as an API destination makes it;
//! - [`dynamodb`]: DynamoDB Local as a managed process, started on a free loopback port and
//!   stopped with its owner, or an endpoint given in the environment;
//! - [`invoke`]: the Lambda Invoke API in front of the hosted handler functions, with their
//!   latencies;
//! - [`http_api`]: the API Gateway HTTP API in front of the API function, turning requests
//!   into payload-v2.0 events as API Gateway does;
//! - [`runtime_api`]: the Lambda Runtime API, so the real Lambda binaries run locally as
//!   they run in Lambda;
//! - [`sim`]: the PSTN simulator: the Chime SDK Voice API and the calls it places, played
//!   against the real SMA handler;
//! - [`record`]: which AWS operations each function makes, recorded for the permission test;
//! - [`tables`]: clients for it and fresh tables built from the committed definition, one per
//!   test.

/// The configuration builder of an AWS SDK client for a local endpoint: the local stack's
/// services accept any credentials and one region, so every local client is built alike.
/// Given a function's `Deadline` (`outdial_adapters::config`), the client also has that
/// function's production timeouts and retries, so the local stack fails as Lambda would.
macro_rules! local_config {
    ($sdk:ident, $endpoint:expr, $deadline:expr) => {
        $crate::local_config!($sdk, $endpoint)
            .timeout_config($deadline.timeout_config())
            .retry_config($deadline.retry_config())
    };
    ($sdk:ident, $endpoint:expr) => {
        $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .endpoint_url($endpoint)
            .region($sdk::config::Region::new($crate::LOCAL_REGION))
            .credentials_provider($sdk::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "outdial-local",
            ))
    };
}
pub(crate) use local_config;

/// Serves `app` on a free loopback port until the returned task is aborted; `what` names the
/// server in errors and logs.
///
/// # Errors
/// When no port can be bound.
pub(crate) async fn serve(
    app: axum::Router,
    what: &'static str,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("binding the {what}"))?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    Ok((addr, server))
}

/// The region every local client and record claims.
pub const LOCAL_REGION: &str = "us-east-1";

pub mod bus;
pub mod dynamodb;
pub mod http_api;
pub mod invoke;
pub mod meter;
pub mod record;
pub mod runtime_api;
pub mod sim;
pub mod streams;
pub mod tables;
