//! The Lambda Runtime API loop of a function that answers one event at a time, on one
//! kept-alive connection ([`crate::wire::Connection`]) and one single-threaded tokio runtime:
//! take the next event (`GET .../invocation/next`, which blocks while Lambda has none), run the
//! handler to its answer, post it (`.../response`), or post why not (`.../error`).
//!
//! It does for the SMA function what `lambda_runtime::run` does, without the tower stack, the
//! pooled hyper client and the threads between them: about 0.1 ms of CPU per event less on
//! this loop alone, which a 128 MB function (a fourteenth of a vCPU) feels as over a
//! millisecond. Each invocation runs in the same `Lambda runtime invoke` span (`requestId`,
//! `xrayTraceId`) as there, so every log line names its invocation.
//!
//! The protocol: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.

use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::wire::{Connection, Origin, Response};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
/// The Runtime API answers on the same host at once, but `next` waits for an event: reads on
/// the connection have no timeout; connecting and writing have this one.
const CONNECT: Duration = Duration::from_secs(2);

/// One event handed out by the Runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    pub trace_id: Option<String>,
    /// When Lambda stops the invocation, in ms since the Unix epoch.
    pub deadline_ms: Option<u64>,
    pub body: Vec<u8>,
}

/// A client of the Lambda Runtime API.
#[derive(Debug)]
pub struct RuntimeApi {
    origin: Origin,
    connection: Option<Connection>,
}

impl RuntimeApi {
    /// The Runtime API at `AWS_LAMBDA_RUNTIME_API` (`host:port`), as Lambda sets it.
    ///
    /// # Errors
    /// When the variable is missing or not `host:port`.
    pub fn from_env() -> anyhow::Result<Self> {
        let address = std::env::var("AWS_LAMBDA_RUNTIME_API")
            .context("AWS_LAMBDA_RUNTIME_API is not set: this binary runs inside Lambda (or beside a local Runtime API)")?;
        Self::at(&address)
    }

    /// The Runtime API at `address` (`host:port`).
    ///
    /// # Errors
    /// When `address` is not `host:port`.
    pub fn at(address: &str) -> anyhow::Result<Self> {
        let (origin, _) = Origin::split(&format!("http://{address}"))
            .with_context(|| format!("AWS_LAMBDA_RUNTIME_API is not host:port: {address}"))?;
        Ok(Self {
            origin,
            connection: None,
        })
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        json_body: bool,
    ) -> io::Result<Response> {
        let kept = self
            .connection
            .take()
            .and_then(|mut c| c.reusable().then_some(c));
        let mut connection = match kept {
            Some(c) => c,
            None => Connection::open(&self.origin, None, CONNECT, None)?,
        };
        let headers: &[(&str, &[u8])] = if json_body {
            &[("content-type", b"application/json")]
        } else {
            &[]
        };
        let response = connection.exchange(method, path, headers, body)?;
        if connection.keeps_alive() {
            self.connection = Some(connection);
        }
        Ok(response)
    }

    /// Waits for the next event.
    ///
    /// # Errors
    /// When the Runtime API cannot be reached or answers with anything but an event.
    pub fn next_event(&mut self) -> io::Result<Invocation> {
        let response = self.exchange("GET", NEXT, &[], false)?;
        if response.status != 200 {
            return Err(io::Error::other(format!(
                "the Runtime API answered {} to next: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            )));
        }
        let request_id = response
            .header("lambda-runtime-aws-request-id")
            .ok_or_else(|| io::Error::other("the Runtime API's event has no request id"))?
            .to_owned();
        Ok(Invocation {
            trace_id: response
                .header("lambda-runtime-trace-id")
                .map(str::to_owned),
            deadline_ms: response
                .header("lambda-runtime-deadline-ms")
                .and_then(|v| v.trim().parse().ok()),
            request_id,
            body: response.body,
        })
    }

    /// Posts the answer to invocation `request_id`.
    ///
    /// # Errors
    /// When the Runtime API cannot be reached or refuses the answer.
    pub fn respond(&mut self, request_id: &str, body: &[u8]) -> io::Result<()> {
        let path = format!("/2018-06-01/runtime/invocation/{request_id}/response");
        self.post(&path, body)
    }

    /// Posts why invocation `request_id` has no answer.
    ///
    /// # Errors
    /// When the Runtime API cannot be reached or refuses the report.
    pub fn fail(&mut self, request_id: &str, error_type: &str, message: &str) -> io::Result<()> {
        let path = format!("/2018-06-01/runtime/invocation/{request_id}/error");
        self.post(&path, &error_body(error_type, message))
    }

    /// Posts why the function could not start.
    ///
    /// # Errors
    /// When the Runtime API cannot be reached or refuses the report.
    pub fn init_failed(&mut self, error_type: &str, message: &str) -> io::Result<()> {
        self.post(
            "/2018-06-01/runtime/init/error",
            &error_body(error_type, message),
        )
    }

    fn post(&mut self, path: &str, body: &[u8]) -> io::Result<()> {
        let response = self.exchange("POST", path, body, true)?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "the Runtime API answered {} to {path}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            )))
        }
    }
}

fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    json!({"errorType": error_type, "errorMessage": message})
        .to_string()
        .into_bytes()
}

/// Serves events to `handler` until the Runtime API fails: each event's JSON to the handler,
/// its answer back. An event that is not JSON is reported as an error without calling the
/// handler; a handler that panics is reported as an error and the loop goes on.
///
/// # Errors
/// When the Runtime API cannot be reached (Lambda then starts a new execution environment).
pub fn serve<H, F>(
    runtime: &tokio::runtime::Runtime,
    api: &mut RuntimeApi,
    handler: H,
) -> anyhow::Result<()>
where
    H: Fn(Value) -> F,
    F: Future<Output = Value>,
{
    serve_json(runtime, api, |body| {
        let event = serde_json::from_slice::<Value>(&body);
        let handler = &handler;
        async move { serde_json::to_vec(&handler(event?).await) }
    })
}

/// [`serve`] for a handler that reads the event's JSON text itself and answers with JSON
/// text, which is posted as it is. The handler's error says the event is not JSON: it is
/// reported as the invocation's error (`Runtime.UnmarshalError`).
///
/// # Errors
/// As [`serve`].
pub fn serve_json<H, F>(
    runtime: &tokio::runtime::Runtime,
    api: &mut RuntimeApi,
    handler: H,
) -> anyhow::Result<()>
where
    H: Fn(Vec<u8>) -> F,
    F: Future<Output = Result<Vec<u8>, serde_json::Error>>,
{
    loop {
        let invocation = api.next_event().context("the Runtime API's next event")?;
        let span = tracing::info_span!(
            "Lambda runtime invoke",
            requestId = invocation.request_id.as_str(),
            xrayTraceId = invocation.trace_id.as_deref().unwrap_or_default(),
        );
        let body = invocation.body;
        // The handler's future is boxed once: it is large (the whole decision and the write
        // in one state machine), and unboxed it would be copied on its way into the runtime.
        let answered = catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(Box::pin(handler(body)).instrument(span.clone()))
        }));
        match answered {
            Ok(Ok(answer)) => {
                api.respond(&invocation.request_id, &answer)
                    .context("posting the answer")?;
            }
            Ok(Err(e)) => {
                span.in_scope(|| tracing::error!(error = %e, "the event is not JSON"));
                api.fail(
                    &invocation.request_id,
                    "Runtime.UnmarshalError",
                    &format!("the event is not JSON: {e}"),
                )
                .context("reporting an unreadable event")?;
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the handler panicked".to_owned());
                span.in_scope(|| tracing::error!(%message, "the handler panicked"));
                api.fail(&invocation.request_id, "Runtime.Panic", &message)
                    .context("reporting a panic")?;
            }
        }
    }
}
