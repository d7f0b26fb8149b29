//! `outdial console`: a web page on this machine where an operator starts, watches and steers
//! campaigns, served by the CLI itself (docs/console.md).
//!
//! The page is three files embedded in this binary (`cli/console/`: the HTML, one script,
//! one style sheet) and the uPlot charting library's two, vendored from npm, plus the API's
//! OpenAPI document, which the page reads its enumerations from. It never talks to the API
//! itself: it calls this server under `/api/...`, which forwards each request with the
//! [`Client`] every `outdial campaign` command uses. A deployed API's requests are signed
//! with SigV4 here, from the user's AWS credentials, so no credential reaches the browser.
//!
//! Because the server acts with those credentials, it answers only whoever holds the address
//! it printed:
//! - it listens on 127.0.0.1 only, and refuses a request whose `Host` is not this server's
//!   loopback address (a DNS-rebinding page names its own host);
//! - the address carries a token drawn at start (`/?token=...`, 244 random bits), which the
//!   page keeps for its tab and sends as the header `X-Outdial-Console` with every `/api/...`
//!   and `/console/...` request; without it they are refused. Another user of the machine
//!   does not know it, and a page of another origin could not send a custom header without a
//!   CORS preflight, which the server never answers; so neither can start or cancel a
//!   campaign with your credentials. The static files need no token: they hold no secret.
//!
//! `POST /console/preview` checks a spec and a CSV contact list with the API's own checks
//! (`outdial_api::spec` and `outdial_api::contacts`), row by row, without sending anything:
//! the start page shows it before the operator starts the campaign. The do-not-call list and
//! the account's caller IDs are checked by the API when the campaign is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use outdial_api::contacts::{self, ListError};
use outdial_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Client;

/// The header every `/api` and `/console` request of the page carries: the server's token.
pub const GUARD_HEADER: &str = "x-outdial-console";

/// The largest request the page may send: a contact list of 100,000 rows is about 5 MB.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Rows the preview lists at most (every row is counted; the first rejected rows and the
/// first accepted rows are listed up to this many in all).
const PREVIEW_ROWS: usize = 500;

/// The request headers the page may send on to the API.
const FORWARDED: [&str; 3] = ["content-type", "idempotency-key", "x-outdial-spec"];

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page's files, as built into the binary.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../console/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/app.css"),
    },
    Asset {
        path: "/vendor/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/vendor/uPlot.iife.min.js"),
    },
    Asset {
        path: "/vendor/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/vendor/uPlot.min.css"),
    },
    Asset {
        path: "/openapi.json",
        content_type: "application/json",
        body: include_bytes!("../../docs/openapi.json"),
    },
];

/// The enumerations of the OpenAPI document the page uses, by the name the page knows them
/// by: the page's filters and labels come from the same document the API is described by.
const SHARED_TYPES: [(&str, &str); 3] = [
    ("campaign_status", "CampaignStatus"),
    ("call_status", "CallStatus"),
    ("reason", "Reason"),
];

/// `GET /console/types.json`: each of [`SHARED_TYPES`] as its list of values, read from the
/// embedded OpenAPI document.
///
/// # Errors
/// When the document lacks one of them (a test reads it, so a build that ships is whole).
fn shared_types() -> anyhow::Result<Value> {
    let document: Value = serde_json::from_slice(include_bytes!("../../docs/openapi.json"))
        .context("docs/openapi.json is not JSON")?;
    let mut out = serde_json::Map::new();
    for (name, schema) in SHARED_TYPES {
        let values = document["components"]["schemas"][schema]["enum"].clone();
        anyhow::ensure!(values.is_array(), "docs/openapi.json has no enum {schema}");
        out.insert(name.to_owned(), values);
    }
    Ok(Value::Object(out))
}

/// What the page may load and where it may connect: this server only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct Console {
    client: Arc<Client>,
    /// What [`GUARD_HEADER`] must hold.
    token: Arc<str>,
    /// The `Host` values this server answers: `127.0.0.1:<port>` and `localhost:<port>`.
    hosts: Arc<[String; 2]>,
}

/// A problem details answer (RFC 9457), as the API answers its own.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"title": title, "status": status.as_u16(), "detail": detail}).to_string(),
    )
        .into_response()
}

/// Whether `given` is `token`, in time that does not depend on where they differ.
fn same_token(given: &[u8], token: &[u8]) -> bool {
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// A token no one can guess: two version-4 UUIDs, 244 random bits.
fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Refuses a request for another host, and an `/api` or `/console` request without the
/// server's token.
async fn guard(State(console): State<Console>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !console.hosts.iter().any(|h| h == host) {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the console answers only requests for its own loopback address",
        );
    }
    let path = request.uri().path();
    let needs_token = path.starts_with("/api/") || path.starts_with("/console/");
    if !needs_token {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(GUARD_HEADER)
        .map_or(&b""[..], HeaderValue::as_bytes);
    let mut answer = if same_token(given, console.token.as_bytes()) {
        next.run(request).await
    } else {
        problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "open the console with the address `outdial console` printed: it carries the token \
             its requests need",
        )
    };
    // Answers to the page's requests are data, never a page or a script.
    let headers = answer.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    answer
}

fn asset(path: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return problem(StatusCode::NOT_FOUND, "Not found", "no such page");
    };
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        a.body,
    )
        .into_response()
}

/// `/api/<path>`: the same request to the API, signed there; its answer as it came.
async fn forward(
    State(console): State<Console>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let uri = request.uri().clone();
    let path_and_query = uri.path_and_query().map_or("", |p| p.as_str());
    let api_path = path_and_query
        .strip_prefix("/api")
        .unwrap_or(path_and_query);
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "the console forwards requests of at most 32 MiB",
            );
        }
    };
    let sent: Vec<(&str, String)> = FORWARDED
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some((*name, value.to_owned()))
        })
        .collect();
    let Ok(method) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "unknown method",
        );
    };
    let answer = match console
        .client
        .request(method, api_path, &sent, body.to_vec())
        .await
    {
        Ok(a) => a,
        Err(e) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "The API did not answer",
                &format!("{e:#}"),
            );
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HeaderMap::new();
    for name in [
        "content-type",
        "outdial-next-cursor",
        "allow",
        "retry-after",
    ] {
        if let Some(value) = answer.headers().get(name)
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            out.insert(name, value);
        }
    }
    match answer.bytes().await {
        Ok(bytes) => (status, out, bytes).into_response(),
        Err(e) => problem(
            StatusCode::BAD_GATEWAY,
            "The API's answer was cut short",
            &format!("{e:#}"),
        ),
    }
}

/// What `POST /console/preview` takes: the spec as JSON and the contact list as CSV text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    spec: Value,
    csv: String,
}

/// One row of the preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PreviewRow {
    /// The row number a spreadsheet shows (the header is 1).
    line: u64,
    /// The number as written.
    to: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The preview: the spec's faults, or the rows' verdicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Preview {
    /// Faults of the spec (`spec.pacing.calls_per_second`: ...); rows are checked only once
    /// the spec holds, as the API does.
    spec_errors: Vec<Value>,
    /// Faults of the list as a whole (no number column, no rows, too many rows).
    list_errors: Vec<Value>,
    rows_total: usize,
    accepted: usize,
    rejected: usize,
    /// Rejected rows first, then accepted ones, [`PREVIEW_ROWS`] at most, each in line
    /// order.
    rows: Vec<PreviewRow>,
    rows_truncated: bool,
}

fn field_errors(errors: impl Serialize) -> Vec<Value> {
    match serde_json::to_value(errors) {
        Ok(Value::Array(v)) => v,
        Ok(other) => vec![other],
        Err(e) => vec![json!({"field": "", "reason": e.to_string()})],
    }
}

/// Checks `spec` and `csv` as `POST /campaigns` would, before the do-not-call list.
fn preview(spec: Value, csv: &str, now: Timestamp) -> Preview {
    let mut out = Preview {
        spec_errors: Vec::new(),
        list_errors: Vec::new(),
        rows_total: 0,
        accepted: 0,
        rejected: 0,
        rows: Vec::new(),
        rows_truncated: false,
    };
    let spec = match outdial_api::spec::parse(spec, "spec") {
        Ok(spec) => spec,
        Err(errors) => {
            out.spec_errors = field_errors(errors);
            return out;
        }
    };
    // The API's further checks of a spec that parsed: the caller identifies itself, and the
    // calling window opens soon enough.
    if let Err(e) = outdial_api::spec::check_identification(&spec.script, "spec") {
        out.spec_errors.extend(field_errors([e]));
    }
    if let Err(reason) = outdial_api::spec::check_opening(spec.window.as_ref(), now) {
        out.spec_errors
            .push(json!({"field": "spec.window", "reason": reason}));
    }
    if !out.spec_errors.is_empty() {
        return out;
    }
    let script_vars: BTreeSet<String> = spec.script.variables();
    let rows = match contacts::from_csv(csv, &script_vars) {
        Ok(rows) => rows,
        Err(ListError::Invalid(errors)) => {
            out.list_errors = field_errors(errors);
            return out;
        }
        Err(e) => {
            out.list_errors = vec![json!({"field": "contacts", "reason": e.to_string()})];
            return out;
        }
    };
    out.rows_total = rows.len();
    let written: BTreeMap<u64, String> = rows
        .iter()
        .map(|r| (r.at.ordinal(), r.to.clone()))
        .collect();
    let mut checked = contacts::check(rows, spec.default_region, &script_vars);
    checked.check_consent(now, spec.purpose.needs_consent());
    out.accepted = checked.accepted.len();
    out.rejected = checked.rejected.len();
    let as_written = |line: u64| written.get(&line).cloned().unwrap_or_default();
    for r in &checked.rejected {
        let line = r.line.unwrap_or(0);
        out.rows.push(PreviewRow {
            line,
            to: as_written(line),
            ok: false,
            field: Some(r.field.clone()),
            reason: Some(r.reason.clone()),
        });
    }
    for c in &checked.accepted {
        let line = c.at.ordinal();
        out.rows.push(PreviewRow {
            line,
            to: as_written(line),
            ok: true,
            field: None,
            reason: None,
        });
    }
    if out.rows.len() > PREVIEW_ROWS {
        out.rows.truncate(PREVIEW_ROWS);
        out.rows_truncated = true;
    }
    out
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_millis(ms)
}

async fn preview_handler(body: Bytes) -> Response {
    let request: PreviewRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                &format!("the preview takes {{\"spec\": {{...}}, \"csv\": \"...\"}}: {e}"),
            );
        }
    };
    // A list of 100,000 rows takes a while to check: off the runtime's threads, which
    // `outdial dev` shares with the whole local stack.
    let checked =
        tokio::task::spawn_blocking(move || preview(request.spec, &request.csv, now())).await;
    match checked {
        Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The check failed",
            &e.to_string(),
        ),
    }
}

/// The console's routes over `client`, answering only for `port` on loopback and, under
/// `/api` and `/console`, only requests that carry `token`.
fn router(client: Client, port: u16, token: &str) -> anyhow::Result<Router> {
    let types = shared_types()?.to_string();
    let info = json!({"api": client.base()}).to_string();
    let console = Console {
        client: Arc::new(client),
        token: Arc::from(token),
        hosts: Arc::new([format!("127.0.0.1:{port}"), format!("localhost:{port}")]),
    };
    let json_of = |body: String| {
        move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }
    };
    Ok(Router::new()
        .route("/", get(|| async { asset("/") }))
        .route("/console/types.json", get(json_of(types)))
        .route("/console/info", get(json_of(info)))
        .route("/app.js", get(|| async { asset("/app.js") }))
        .route("/app.css", get(|| async { asset("/app.css") }))
        .route("/openapi.json", get(|| async { asset("/openapi.json") }))
        .route(
            "/vendor/{file}",
            get(
                |axum::extract::Path(file): axum::extract::Path<String>| async move {
                    asset(&format!("/vendor/{file}"))
                },
            ),
        )
        .route("/console/preview", post(preview_handler))
        .route("/api/{*path}", any(forward))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console))
}

/// A running console.
#[derive(Debug)]
pub struct Served {
    pub addr: SocketAddr,
    /// What the page's requests carry; in [`Served::url`].
    pub token: String,
    pub task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// The page's address, with the token the page keeps for its requests.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }
}

/// Serves the console on 127.0.0.1:`port` (any free port for 0) until the task is aborted.
///
/// # Errors
/// When the port cannot be bound.
pub async fn serve(client: Client, port: u16) -> anyhow::Result<Served> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding the console to 127.0.0.1:{port}"))?;
    let addr = listener.local_addr().context("the console's address")?;
    let token = new_token();
    let app = router(client, addr.port(), &token)?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the console stopped");
        }
    });
    Ok(Served { addr, token, task })
}

#[cfg(test)]
mod tests;
