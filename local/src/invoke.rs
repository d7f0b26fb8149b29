//! The Lambda Invoke API, served locally: `POST /2015-03-31/functions/{name}/invocations`
//! in front of the same handler functions the Lambda binaries run, so that the real
//! `aws-sdk-lambda` client (the API starting a dispatcher, the PSTN simulator invoking the
//! SMA handler) reaches them through `endpoint_url` exactly as it reaches Lambda.
//!
//! What Lambda does and the local API does too: `X-Amz-Invocation-Type` `RequestResponse`
//! (the default: 200 with the function's answer), `Event` (202 at once, the function runs in
//! the background) and `DryRun` (204); a function that fails answers 200 with
//! `X-Amz-Function-Error: Unhandled` and `{"errorType", "errorMessage"}`; an unknown function
//! is `404 ResourceNotFoundException`. Every invocation's duration is kept per function, so
//! the demo can report the handlers' latency percentiles.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// A hosted function: one event in, one answer or an error message out.
pub type Function = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// Wraps an async closure as a [`Function`].
pub fn function<F, Fut>(f: F) -> Function
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Value, String>> + Send + 'static,
{
    Arc::new(move |event| Box::pin(f(event)))
}

/// Invocation latencies of one function.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub invocations: u64,
    pub errors: u64,
    /// Milliseconds at the 50th and 99th percentiles, and the most.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The invocations' durations as Lambda bills them: each rounded up to the millisecond,
    /// added up.
    pub billed_ms: u64,
}

#[derive(Default)]
struct Record {
    durations_us: Vec<u64>,
    errors: u64,
}

/// The functions a local stack hosts, by name, with their latencies.
#[derive(Clone, Default)]
pub struct Functions {
    functions: Arc<Mutex<HashMap<String, Function>>>,
    records: Arc<Mutex<HashMap<String, Record>>>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("Functions").field("names", &names).finish()
    }
}

impl Functions {
    /// Hosts `function` as `name` (replacing one of that name).
    pub fn add(&self, name: &str, function: Function) {
        self.functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), function);
    }

    fn get(&self, name: &str) -> Option<Function> {
        self.functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Invokes `name` in process, timing it as the Invoke API does.
    ///
    /// # Errors
    /// When there is no such function, or the function failed (its message).
    pub async fn call(&self, name: &str, event: Value) -> Result<Value, String> {
        let f = self
            .get(name)
            .ok_or_else(|| format!("Function not found: {name}"))?;
        let started = Instant::now();
        let answer = f(event).await;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let record = records.entry(name.to_owned()).or_default();
        record.durations_us.push(took);
        if answer.is_err() {
            record.errors += 1;
        }
        answer
    }

    /// Each invocation's duration of `name` so far, in microseconds, in the order they ended.
    #[must_use]
    pub fn durations_us(&self, name: &str) -> Vec<u64> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|r| r.durations_us.clone())
            .unwrap_or_default()
    }

    /// The latencies of `name` so far.
    #[must_use]
    pub fn latency(&self, name: &str) -> Latency {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(record) = records.get(name) else {
            return Latency::default();
        };
        let mut d = record.durations_us.clone();
        d.sort_unstable();
        #[allow(clippy::cast_precision_loss)]
        let at = |q: f64| -> f64 {
            if d.is_empty() {
                return 0.0;
            }
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1;
            d[i] as f64 / 1000.0
        };
        Latency {
            billed_ms: d.iter().map(|us| us.div_ceil(1000)).sum(),
            invocations: d.len() as u64,
            errors: record.errors,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// The largest payload Lambda takes in a synchronous invocation (`RequestResponse`).
pub const SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// The largest payload Lambda takes in an asynchronous invocation (`Event`).
pub const ASYNC_PAYLOAD: usize = 1024 * 1024;

/// A running local Invoke API; dropping it stops the server.
#[derive(Debug)]
pub struct InvokeApi {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl InvokeApi {
    /// Serves `functions` on a free loopback port.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(functions: Functions) -> anyhow::Result<Self> {
        // The payload quotas are Lambda's, checked in `invoke`: the web framework's own body
        // limit would drop the connection instead of answering as Lambda does.
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .layer(DefaultBodyLimit::disable())
            .with_state(functions);
        let (addr, server) = crate::serve(app, "local Lambda Invoke API").await?;
        Ok(Self { addr, server })
    }

    /// The endpoint for `AWS_ENDPOINT_URL_LAMBDA`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for InvokeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-ErrorType", v);
    }
    (
        status,
        headers,
        axum::Json(json!({"Type": "User", "message": message})),
    )
        .into_response()
}

async fn invoke(
    State(functions): State<Functions>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The SDK may send a full ARN or a `name:qualifier`; the function's own name is what counts.
    let name = name
        .rsplit(':')
        .find(|part| functions.get(part).is_some())
        .unwrap_or(&name)
        .to_owned();
    if functions.get(&name).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    }
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    let quota = if kind == "Event" {
        ASYNC_PAYLOAD
    } else {
        SYNC_PAYLOAD
    };
    if body.len() > quota {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!(
                "Request must be smaller than {quota} bytes for the {kind} invocation type, got {}",
                body.len()
            ),
        );
    }
    let event: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                );
            }
        }
    };
    match kind {
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        "Event" => {
            tokio::spawn(async move {
                if let Err(e) = functions.call(&name, event).await {
                    tracing::warn!(function = %name, error = %e, "asynchronous invocation failed");
                }
            });
            StatusCode::ACCEPTED.into_response()
        }
        "RequestResponse" => match functions.call(&name, event).await {
            Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
            Err(message) => {
                let mut headers = HeaderMap::new();
                headers.insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
                (
                    StatusCode::OK,
                    headers,
                    axum::Json(json!({"errorType": "Error", "errorMessage": message})),
                )
                    .into_response()
            }
        },
        other => error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!("unknown invocation type {other:?}"),
        ),
    }
}

/// The Lambda client `function` has in production (its timeouts and retries), for the local
/// Invoke API at `endpoint`.
#[must_use]
pub fn function_lambda_client(
    endpoint: &str,
    function: outdial_core::messages::Function,
) -> aws_sdk_lambda::Client {
    let deadline = outdial_adapters::config::Deadline::of(function);
    aws_sdk_lambda::Client::from_conf(
        crate::local_config!(aws_sdk_lambda, endpoint, deadline).build(),
    )
}

/// A Lambda client for the local Invoke API at `endpoint` (any credentials will do): the
/// simulated PSTN audio service invokes the SMA function with it.
#[must_use]
pub fn lambda_client(endpoint: &str) -> aws_sdk_lambda::Client {
    let config = crate::local_config!(aws_sdk_lambda, endpoint)
        .timeout_config(
            aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// The simulator's way into the SMA handler: a synchronous invocation through an Invoke API
/// (the local one, or Lambda's), as the PSTN audio service invokes the function.
#[derive(Debug, Clone)]
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaInvoker {
    #[must_use]
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }
}

impl crate::sim::Invoke for LambdaInvoker {
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
        let (client, function) = (self.client.clone(), self.function.clone());
        Box::pin(async move {
            let out = client
                .invoke()
                .function_name(&function)
                .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
                .send()
                .await
                .map_err(|e| format!("{}", aws_sdk_lambda::error::DisplayErrorContext(&e)))?;
            let payload = out.payload.map(|b| b.into_inner()).unwrap_or_default();
            if let Some(kind) = out.function_error {
                return Err(format!(
                    "{kind}: {}",
                    String::from_utf8_lossy(&payload)
                        .chars()
                        .take(500)
                        .collect::<String>()
                ));
            }
            serde_json::from_slice(&payload).map_err(|e| format!("unreadable answer: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn functions_answer_through_the_sdk_and_failures_are_reported_as_lambda_does() {
        let functions = Functions::default();
        functions.add(
            "echo",
            function(|event| async move { Ok(json!({"got": event})) }),
        );
        functions.add(
            "broken",
            function(|_| async move { Err("it broke".to_owned()) }),
        );
        let api = InvokeApi::start(functions.clone()).await.unwrap();
        let client = lambda_client(&api.endpoint());
        let echo = LambdaInvoker::new(client.clone(), "echo");
        let answer = crate::sim::Invoke::invoke(&echo, json!({"a": 1})).await;
        assert_eq!(answer, Ok(json!({"got": {"a": 1}})));
        let broken = LambdaInvoker::new(client.clone(), "broken");
        let failed = crate::sim::Invoke::invoke(&broken, json!({})).await;
        assert!(failed.unwrap_err().contains("it broke"));
        let missing = client.invoke().function_name("nope").send().await;
        assert!(
            missing
                .unwrap_err()
                .into_service_error()
                .is_resource_not_found_exception()
        );
        let queued = client
            .invoke()
            .function_name("echo")
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new("{}"))
            .send()
            .await
            .unwrap();
        assert_eq!(queued.status_code, 202);
        let latency = functions.latency("echo");
        assert!(latency.invocations >= 1 && latency.p99_ms >= latency.p50_ms);
        assert_eq!(functions.latency("broken").errors, 1);
    }

    #[tokio::test]
    async fn a_payload_over_lambdas_quota_is_refused_with_413_as_lambda_refuses_it() {
        let functions = Functions::default();
        functions.add("echo", function(|event| async move { Ok(event) }));
        let api = InvokeApi::start(functions).await.unwrap();
        let client = lambda_client(&api.endpoint());
        let payload = |bytes: usize| {
            let text = format!("\"{}\"", "x".repeat(bytes - 2));
            aws_sdk_lambda::primitives::Blob::new(text)
        };
        let too_large = |kind, bytes| {
            let client = client.clone();
            async move {
                let out = client
                    .invoke()
                    .function_name("echo")
                    .invocation_type(kind)
                    .payload(payload(bytes))
                    .send()
                    .await;
                match out {
                    Ok(_) => false,
                    Err(e) => {
                        let e = e.into_service_error();
                        assert!(e.is_request_too_large_exception(), "{e:?}");
                        true
                    }
                }
            }
        };
        use aws_sdk_lambda::types::InvocationType::{Event, RequestResponse};
        assert!(!too_large(RequestResponse, SYNC_PAYLOAD).await);
        assert!(too_large(RequestResponse, SYNC_PAYLOAD + 1).await);
        assert!(!too_large(Event, ASYNC_PAYLOAD).await);
        assert!(too_large(Event, ASYNC_PAYLOAD + 1).await);
    }
}
