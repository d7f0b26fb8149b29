//! The HTTP client of outdial's API, as the `campaign` commands use it.
//!
//! A deployed API uses IAM authorization, so requests are signed with SigV4 for
//! `execute-api` with the caller's AWS credentials (the SDK's default chain: environment,
//! profile, SSO, instance role). The local API takes a bearer token instead: the one given
//! (`--token` or `OUTDIAL_API_TOKEN`), else the one `outdial dev` wrote to
//! `.outdial/dev.json` beside the API's address.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_credential_types::provider::ProvideCredentials;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where `outdial dev` writes the running stack's endpoints, for the other commands.
pub const DEV_STATE: &str = ".outdial/dev.json";

/// The running local stack, as `outdial dev` describes it in [`DEV_STATE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevState {
    pub api: String,
    pub lambda: String,
    pub chime: String,
    pub dynamodb: String,
    pub token: String,
    pub table: String,
}

impl DevState {
    /// Reads the state `outdial dev` wrote, if a stack is (or was) running here.
    #[must_use]
    pub fn read() -> Option<Self> {
        let raw = std::fs::read(DEV_STATE).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    /// Writes it.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    #[must_use]
    pub fn path() -> PathBuf {
        PathBuf::from(DEV_STATE)
    }
}

enum Auth {
    Bearer(String),
    SigV4 {
        credentials: aws_credential_types::provider::SharedCredentialsProvider,
        region: String,
    },
}

/// An answer of the API: its status and its JSON body (`Null` when it had none).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The body, or an error built from the problem details the API answered.
    ///
    /// # Errors
    /// When the status is not a success: the problem's title, detail and fields.
    pub fn ok(self) -> anyhow::Result<Value> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let b = &self.body;
        let mut message = format!(
            "{} {}",
            self.status,
            b["title"].as_str().unwrap_or("request failed")
        );
        if let Some(detail) = b["detail"].as_str() {
            message.push_str(": ");
            message.push_str(detail);
        }
        if let Some(errors) = b["errors"].as_array() {
            for e in errors.iter().take(10) {
                message.push_str(&format!(
                    "\n  {}: {}",
                    e["field"].as_str().unwrap_or("?"),
                    e["reason"].as_str().unwrap_or("?")
                ));
            }
        }
        bail!("{message}")
    }
}

/// An answer read as JSON (a problem, for a failure).
fn json_answer(
    method: &reqwest::Method,
    url: &str,
    status: u16,
    bytes: &[u8],
) -> anyhow::Result<Answer> {
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).with_context(|| {
            format!(
                "{method} {url} answered {status} with something that is not JSON: {}",
                String::from_utf8_lossy(bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )
        })?
    };
    Ok(Answer { status, body })
}

/// The HTTP client every [`Client`] sends with.
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")
}

/// A client of one API.
pub struct Client {
    base: String,
    http: reqwest::Client,
    auth: Auth,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// The region of an API Gateway URL (`https://<id>.execute-api.<region>.amazonaws.com`).
fn region_of(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    parts.next()?;
    if parts.next()? != "execute-api" {
        return None;
    }
    parts.next().map(str::to_owned)
}

impl Client {
    /// A client for `api` (or the local stack's, from [`DEV_STATE`]), authenticated with
    /// `token` when given (or `OUTDIAL_API_TOKEN`, or the local stack's), else with SigV4.
    ///
    /// # Errors
    /// When no API is given and no local stack runs here, or no credentials can be found for
    /// a deployed API.
    pub async fn connect(api: Option<&str>, token: Option<&str>) -> anyhow::Result<Self> {
        let dev = DevState::read();
        let base = match (api, &dev) {
            (Some(api), _) => api.trim_end_matches('/').to_owned(),
            (None, Some(dev)) => dev.api.clone(),
            (None, None) => bail!(
                "no API given: pass --api <url> (the stack's ApiUrl output), or start a local \
                 stack with `outdial dev` in this folder"
            ),
        };
        let token = token
            .map(str::to_owned)
            .or_else(|| std::env::var("OUTDIAL_API_TOKEN").ok())
            .or_else(|| dev.filter(|d| d.api == base).map(|d| d.token));
        let auth = match token {
            Some(token) => Auth::Bearer(token),
            None => {
                let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await;
                let region = region_of(&base)
                    .or_else(|| config.region().map(ToString::to_string))
                    .context(
                        "no region for SigV4: set AWS_REGION or use the API's execute-api URL",
                    )?;
                let credentials = config.credentials_provider().context(
                    "no AWS credentials to sign requests to the API (configure a profile or \
                     set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or pass --token for a local API",
                )?;
                Auth::SigV4 {
                    credentials,
                    region,
                }
            }
        };
        Ok(Self {
            base,
            http: http_client()?,
            auth,
        })
    }

    /// A client of a local API that takes `token` as its bearer token (the console of
    /// `outdial dev`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn local(base: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client()?,
            auth: Auth::Bearer(token.to_owned()),
        })
    }

    /// The API's base URL.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request and reads the JSON answer.
    ///
    /// # Errors
    /// When the API cannot be reached or answers something that is not JSON.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let answer = self.request(method.clone(), path, headers, body).await?;
        let status = answer.status().as_u16();
        let bytes = answer.bytes().await.context("reading the answer")?;
        json_answer(&method, &url, status, &bytes)
    }

    /// `GET path` of a text page (`GET /campaigns/{id}/results`): its body and the next
    /// page's cursor (`Outdial-Next-Cursor`), if any.
    ///
    /// # Errors
    /// As [`Client::send`], and the API's problem for an unsuccessful answer.
    pub async fn get_page(&self, path: &str) -> anyhow::Result<(String, Option<String>)> {
        let url = format!("{}{path}", self.base);
        let answer = self
            .request(reqwest::Method::GET, path, &[], Vec::new())
            .await?;
        let status = answer.status().as_u16();
        let next = answer
            .headers()
            .get("outdial-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = answer.bytes().await.context("reading the answer")?;
        if status != 200 {
            json_answer(&reqwest::Method::GET, &url, status, &bytes)?.ok()?;
            bail!("GET {url} answered {status}");
        }
        let text = String::from_utf8(bytes.to_vec())
            .with_context(|| format!("GET {url} answered text that is not UTF-8"))?;
        Ok((text, next))
    }

    /// Builds, signs and sends one request (`path` with its query); the answer as it came.
    ///
    /// # Errors
    /// When the request cannot be signed or the API cannot be reached.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match &self.auth {
            Auth::Bearer(token) => request = request.bearer_auth(token),
            Auth::SigV4 {
                credentials,
                region,
            } => {
                let creds = credentials
                    .provide_credentials()
                    .await
                    .context("loading AWS credentials")?;
                let identity = creds.into();
                let params = aws_sigv4::sign::v4::SigningParams::builder()
                    .identity(&identity)
                    .region(region)
                    .name("execute-api")
                    .time(SystemTime::now())
                    .settings(aws_sigv4::http_request::SigningSettings::default())
                    .build()
                    .context("signing parameters")?
                    .into();
                let signable = aws_sigv4::http_request::SignableRequest::new(
                    method.as_str(),
                    url.as_str(),
                    headers.iter().map(|(k, v)| (*k, v.as_str())),
                    aws_sigv4::http_request::SignableBody::Bytes(&body),
                )
                .context("preparing the request for signing")?;
                let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
                    .context("signing the request")?
                    .into_parts();
                for (name, value) in instructions.headers() {
                    request = request.header(name, value);
                }
            }
        }
        request
            .body(body)
            .send()
            .await
            .with_context(|| format!("{method} {url}"))
    }

    /// `GET path`, the body of a successful answer.
    ///
    /// # Errors
    /// As [`Client::send`], and the API's problem for an unsuccessful answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, path, &[], Vec::new())
            .await?
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_an_execute_api_url() {
        assert_eq!(
            region_of("https://abc123.execute-api.eu-west-1.amazonaws.com/"),
            Some("eu-west-1".to_owned())
        );
        assert_eq!(region_of("http://127.0.0.1:8080"), None);
    }

    #[test]
    fn a_problem_answer_becomes_an_error_naming_its_fields() {
        let answer = Answer {
            status: 422,
            body: serde_json::json!({"title": "Invalid campaign", "detail": "2 problems",
                "errors": [{"field": "spec.from", "reason": "not a phone number"}]}),
        };
        let err = answer.ok().unwrap_err().to_string();
        assert!(err.contains("422 Invalid campaign: 2 problems"), "{err}");
        assert!(err.contains("spec.from: not a phone number"), "{err}");
    }
}
