//! Clients for a local DynamoDB, fresh tables built from `schema/table.json`, and a request
//! counter that proves how many round trips an operation costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use outdial_adapters::config::Deadline;
use outdial_adapters::direct::DirectWrites;
use outdial_adapters::table::TableDef;
use outdial_adapters::wire::LeanHttp;
use outdial_core::messages::Function;

/// A DynamoDB client for a local endpoint. DynamoDB Local accepts any credentials; with
/// `-sharedDb` every key and region see the same tables.
#[must_use]
pub fn client(endpoint: &str) -> Client {
    Client::from_conf(config(endpoint).build())
}

/// A client for a local endpoint that counts every HTTP request it sends (retries included),
/// and the counter.
#[must_use]
pub fn counting_client(endpoint: &str) -> (Client, RequestCounter) {
    let counter = RequestCounter::default();
    let client = Client::from_conf(config(endpoint).interceptor(counter.clone()).build());
    (client, counter)
}

/// The DynamoDB client `function` has in production (its timeouts and retries), for a local
/// endpoint, with a counter of the requests it sends.
#[must_use]
pub fn function_client(endpoint: &str, function: Function) -> (Client, RequestCounter) {
    let counter = RequestCounter::default();
    let deadline = Deadline::of(function);
    let config = crate::local_config!(aws_sdk_dynamodb, endpoint, deadline);
    let client = Client::from_conf(config.interceptor(counter.clone()).build());
    (client, counter)
}

/// The SMA function's DynamoDB client as its binary builds it, for a local endpoint: the SDK
/// over one kept-alive connection ([`LeanHttp`]) with the hot path's deadline and a counter
/// of the requests the SDK sends, and the hand-signed event writes beside it
/// ([`DirectWrites`], which count their own).
#[must_use]
pub fn sma_clients(endpoint: &str) -> (Client, RequestCounter, Arc<DirectWrites>) {
    let deadline = Deadline::HotPath;
    let counter = RequestCounter::default();
    let http = LeanHttp::new(None, deadline.attempt());
    let config = crate::local_config!(aws_sdk_dynamodb, endpoint, deadline)
        .http_client(http.clone())
        .interceptor(counter.clone())
        .build();
    // The credentials `local_config!` gives the SDK client.
    let provider = SharedCredentialsProvider::new(Credentials::new(
        "local",
        "local",
        None,
        None,
        "outdial-local",
    ));
    let direct = DirectWrites::new(http, crate::LOCAL_REGION, provider, deadline);
    (Client::from_conf(config), counter, Arc::new(direct))
}

fn config(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    crate::local_config!(aws_sdk_dynamodb, endpoint)
}

/// Counts the requests a client puts on the wire, by operation.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    sent: Arc<AtomicUsize>,
}

impl RequestCounter {
    /// Requests sent so far.
    #[must_use]
    pub fn get(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Requests sent since the last `take` or `reset`.
    #[must_use]
    pub fn take(&self) -> usize {
        self.sent.swap(0, Ordering::SeqCst)
    }

    /// Starts counting from zero.
    pub fn reset(&self) {
        self.sent.store(0, Ordering::SeqCst);
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Creates a table named `<prefix>-<random>` from the committed definition and returns its
/// name.
///
/// # Errors
/// When the definition does not load or `CreateTable` fails.
pub async fn fresh_table(client: &Client, prefix: &str) -> anyhow::Result<String> {
    let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    TableDef::load()?.create(client, &name).await?;
    Ok(name)
}
