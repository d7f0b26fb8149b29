//! The Lambda Runtime API, served locally: a Lambda binary started with
//! `AWS_LAMBDA_RUNTIME_API=<this address>` polls it for events and posts its answers, exactly
//! as it does in Lambda. Used to measure a binary's start-up to its first answered event, and
//! to run the real binaries against the local stack.
//!
//! Only what `lambda_runtime` uses is served: `GET /2018-06-01/runtime/invocation/next`,
//! `POST .../invocation/{id}/response`, `POST .../invocation/{id}/error` and
//! `POST /2018-06-01/runtime/init/error`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc, oneshot};

/// What the function answered for one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `.../response`: the function's result.
    Response(Bytes),
    /// `.../error`: the error the runtime reported.
    Error(Bytes),
}

struct Pending {
    id: String,
    body: Bytes,
    deadline: Duration,
}

/// An invocation handed out, waiting for its answer.
#[derive(Debug)]
struct Waiting {
    answer: oneshot::Sender<(Answer, Duration)>,
    /// When the function took it from `.../next`.
    handed_out: Option<Instant>,
}

type WaitingMap = Arc<Mutex<HashMap<String, Waiting>>>;

#[derive(Clone)]
struct Shared {
    next: Arc<Mutex<mpsc::Receiver<Pending>>>,
    waiting: WaitingMap,
    init_error: Arc<Mutex<Option<Bytes>>>,
}

/// A running local Runtime API; dropping it stops the server.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::Sender<Pending>,
    waiting: WaitingMap,
    init_error: Arc<Mutex<Option<Bytes>>>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl RuntimeApi {
    /// Serves the Runtime API on a free loopback port.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> anyhow::Result<Self> {
        let (queue, rx) = mpsc::channel(64);
        let shared = Shared {
            next: Arc::new(Mutex::new(rx)),
            waiting: Arc::new(Mutex::new(HashMap::new())),
            init_error: Arc::new(Mutex::new(None)),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let (addr, server) = crate::serve(app, "local Runtime API").await?;
        Ok(Self {
            addr,
            queue,
            waiting: shared.waiting,
            init_error: shared.init_error,
            server,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    #[must_use]
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Hands `body` to the function and waits up to `deadline` for its answer.
    ///
    /// # Errors
    /// When the function reported an init error, or did not answer within `deadline`.
    pub async fn invoke(
        &self,
        body: impl Into<Bytes>,
        deadline: Duration,
    ) -> anyhow::Result<Answer> {
        Ok(self.invoke_timed(body, deadline).await?.0)
    }

    /// [`RuntimeApi::invoke`], with the time from the function taking the event from
    /// `.../next` to its answer arriving: the invocation's duration as Lambda bills it,
    /// without the time the event queued behind earlier ones.
    ///
    /// # Errors
    /// As [`RuntimeApi::invoke`].
    pub async fn invoke_timed(
        &self,
        body: impl Into<Bytes>,
        deadline: Duration,
    ) -> anyhow::Result<(Answer, Duration)> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().await.insert(
            id.clone(),
            Waiting {
                answer: tx,
                handed_out: None,
            },
        );
        self.queue
            .send(Pending {
                id: id.clone(),
                body: body.into(),
                deadline,
            })
            .await
            .context("the local Runtime API has stopped")?;
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => bail!("invocation {id} was dropped"),
            Err(_) => {
                self.waiting.lock().await.remove(&id);
                if let Some(err) = self.init_error.lock().await.clone() {
                    bail!(
                        "the function failed to start: {}",
                        String::from_utf8_lossy(&err)
                    );
                }
                bail!("no answer to invocation {id} within {deadline:?}")
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Shared>) -> Response {
    let Some(p) = shared.next.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    if let Some(w) = shared.waiting.lock().await.get_mut(&p.id) {
        w.handed_out = Some(Instant::now());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(p.deadline)
        .as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", p.id);
    set("lambda-runtime-deadline-ms", now.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:local".to_owned(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".to_owned(),
    );
    set("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, p.body).into_response()
}

async fn deliver(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    match shared.waiting.lock().await.remove(id) {
        Some(w) => {
            let held = w.handed_out.map(|t| t.elapsed()).unwrap_or_default();
            let _ = w.answer.send((answer, held));
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    deliver(&shared, &id, Answer::Response(body)).await
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    deliver(&shared, &id, Answer::Error(body)).await
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().await = Some(body);
    StatusCode::ACCEPTED
}
