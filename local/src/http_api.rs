//! The API Gateway HTTP API, served locally in front of the API function.
//!
//! Each HTTP request becomes the payload-format-2.0 event API Gateway v2 sends a Lambda
//! integration (`version`, `routeKey` `$default`, `rawPath`, `rawQueryString`, `cookies`,
//! lower-cased `headers` with repeated values joined by commas, decoded
//! `queryStringParameters`, `requestContext.http`, a `body` that is base64 only when it is not
//! UTF-8 text), and the function's payload-2.0 answer (`statusCode`, `headers`, `cookies`,
//! `body`, `isBase64Encoded`) becomes the HTTP response. Like API Gateway, a request body over
//! 10 MB is refused with 413 before the function sees it, and a function that fails or
//! answers something unreadable is a 502.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::invoke::Functions;

/// API Gateway's limit on a request payload.
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

#[derive(Clone)]
struct Target {
    functions: Functions,
    function: String,
}

/// A running local HTTP API; dropping it stops the server.
#[derive(Debug)]
pub struct HttpApi {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl HttpApi {
    /// Serves the HTTP API on `port` of the loopback interface (0: any free port), invoking
    /// function `function` of `functions` for every request.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(functions: Functions, function: &str, port: u16) -> anyhow::Result<Self> {
        let target = Target {
            functions,
            function: function.to_owned(),
        };
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(target);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding the local HTTP API on 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "local HTTP API stopped");
            }
        });
        Ok(Self { addr, server })
    }

    /// The API's base URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HttpApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

async fn handle(
    State(target): State<Target>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let event = event(&method, &uri, &headers, &body, peer);
    match target.functions.call(&target.function, event).await {
        Ok(answer) => response(&answer)
            .unwrap_or_else(|| gateway_error(StatusCode::BAD_GATEWAY, "Internal Server Error")),
        Err(e) => {
            tracing::warn!(error = %e, "the API function failed");
            gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// The payload-format-2.0 event for one request.
#[must_use]
pub fn event(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    peer: SocketAddr,
) -> Value {
    let mut joined: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        joined
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value.to_owned());
    }
    let header_map: Map<String, Value> = joined
        .into_iter()
        .map(|(k, v)| (k, Value::String(v.join(","))))
        .collect();
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        params
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (body, is_base64) = if body.is_empty() {
        (Value::Null, false)
    } else {
        match std::str::from_utf8(body) {
            Ok(text) => (Value::String(text.to_owned()), false),
            Err(_) => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
                true,
            ),
        }
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(host),
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": user_agent,
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
        },
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !params.is_empty() {
        let params: Map<String, Value> = params
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.join(","))))
            .collect();
        event["queryStringParameters"] = Value::Object(params);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// The HTTP response for a payload-format-2.0 answer; `None` when it is not one.
fn response(answer: &Value) -> Option<Response> {
    let status =
        StatusCode::from_u16(u16::try_from(answer.get("statusCode")?.as_u64()?).ok()?).ok()?;
    let mut headers = HeaderMap::new();
    if let Some(Value::Object(h)) = answer.get("headers") {
        for (k, v) in h {
            let (Ok(name), Some(value)) = (HeaderName::from_bytes(k.as_bytes()), v.as_str()) else {
                continue;
            };
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(name, value);
            }
        }
    }
    if let Some(Value::Array(cookies)) = answer.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            if let Ok(value) = HeaderValue::from_str(c) {
                headers.append("set-cookie", value);
            }
        }
    }
    let body = match answer.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) => {
            if answer.get("isBase64Encoded") == Some(&Value::Bool(true)) {
                Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .ok()?,
                )
            } else {
                Bytes::from(text.clone())
            }
        }
        Some(_) => return None,
    };
    Some((status, headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoke::function;

    #[tokio::test]
    async fn requests_arrive_as_payload_v2_events_and_answers_become_responses() {
        let functions = Functions::default();
        functions.add(
            "api",
            function(|event: Value| async move {
                Ok(json!({
                    "statusCode": 201,
                    "headers": {"content-type": "application/json", "x-echo": event["headers"]["x-test"]},
                    "body": json!({
                        "path": event["rawPath"],
                        "query": event["queryStringParameters"],
                        "method": event["requestContext"]["http"]["method"],
                        "body": event["body"],
                    }).to_string(),
                    "isBase64Encoded": false,
                }))
            }),
        );
        functions.add(
            "broken",
            function(|_| async move { Ok(json!({"nonsense": true})) }),
        );
        let api = HttpApi::start(functions.clone(), "api", 0).await.unwrap();
        let client = reqwest::Client::new();
        let answer = client
            .post(format!(
                "{}/campaigns/c1?status=QUEUED&limit=5&a=x%2By",
                api.url()
            ))
            .header("x-test", "one")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        assert_eq!(answer.headers()["x-echo"], "one");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["path"], "/campaigns/c1");
        assert_eq!(body["method"], "POST");
        assert_eq!(body["body"], "hello");
        assert_eq!(body["query"]["a"], "x+y");
        assert_eq!(body["query"]["limit"], "5");

        let broken = HttpApi::start(functions, "broken", 0).await.unwrap();
        let answer = client.get(broken.url()).send().await.unwrap();
        assert_eq!(answer.status(), 502);
    }
}
