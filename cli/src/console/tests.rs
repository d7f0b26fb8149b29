use super::*;

use axum::extract::Request as AxumRequest;

/// An API stand-in that answers every request with what it received.
async fn echo_api() -> String {
    async fn echo(request: AxumRequest) -> Response {
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let headers: BTreeMap<String, String> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (
            StatusCode::ACCEPTED,
            [
                ("content-type", "application/json"),
                ("outdial-next-cursor", "next-1"),
                ("x-secret-upstream", "not forwarded"),
            ],
            json!({"method": method, "uri": uri, "headers": headers,
                   "body": String::from_utf8_lossy(&body)})
            .to_string(),
        )
            .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(echo))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

async fn console() -> (Served, reqwest::Client) {
    let api = echo_api().await;
    let client = Client::local(&api, "local-token-0123456789").unwrap();
    (
        serve(client, 0).await.unwrap(),
        reqwest::Client::builder().build().unwrap(),
    )
}

#[tokio::test]
async fn the_page_and_its_files_are_served_from_the_binary() {
    let (served, http) = console().await;
    let page = http.get(served.url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    for file in [
        "/app.js",
        "/app.css",
        "/vendor/uPlot.iife.min.js",
        "/vendor/uPlot.min.css",
    ] {
        assert!(html.contains(file), "the page loads {file}");
        let got = http
            .get(format!("http://{}{file}", served.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{file}");
        assert!(!got.bytes().await.unwrap().is_empty(), "{file}");
    }
    let missing = http
        .get(format!("http://{}/vendor/nothing.js", served.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_first_load_is_under_200_kb() {
    let first_load: usize = ASSETS
        .iter()
        .filter(|a| a.path != "/openapi.json")
        .map(|a| a.body.len())
        .sum::<usize>()
        + shared_types().unwrap().to_string().len();
    assert!(first_load < 200_000, "{first_load} bytes");
}

#[tokio::test]
async fn api_requests_are_forwarded_with_the_consoles_credentials() {
    let (served, http) = console().await;
    let answer = http
        .post(format!(
            "http://{}/api/campaigns/cmp_1/pause?x=1",
            served.addr
        ))
        .header(GUARD_HEADER, &served.token)
        .header("idempotency-key", "k-1")
        .header("content-type", "text/csv")
        .header("x-outdial-spec", "{}")
        .header("cookie", "session=browser")
        .body("to\n+15555550100\n")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["outdial-next-cursor"], "next-1");
    assert!(answer.headers().get("x-secret-upstream").is_none());
    let echoed: Value = answer.json().await.unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["uri"], "/campaigns/cmp_1/pause?x=1");
    assert_eq!(echoed["body"], "to\n+15555550100\n");
    let headers = &echoed["headers"];
    assert_eq!(headers["authorization"], "Bearer local-token-0123456789");
    assert_eq!(headers["idempotency-key"], "k-1");
    assert_eq!(headers["content-type"], "text/csv");
    assert_eq!(headers["x-outdial-spec"], "{}");
    assert!(headers.get("cookie").is_none(), "{headers}");
    assert!(headers.get(GUARD_HEADER).is_none(), "{headers}");
}

#[tokio::test]
async fn requests_another_page_could_make_are_refused() {
    let (served, http) = console().await;
    // A form or an image of another site sends no custom header.
    let no_header = http
        .post(format!("http://{}/api/campaigns/cmp_1/cancel", served.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), 403);
    assert_eq!(
        no_header.headers()["content-type"],
        "application/problem+json"
    );
    let preview = http
        .post(format!("http://{}/console/preview", served.addr))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status(), 403);
    // A DNS-rebinding page names its own host.
    let rebound = http
        .get(format!("http://{}/api/campaigns", served.addr))
        .header(GUARD_HEADER, &served.token)
        .header("host", "evil.example:8090")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let page = http
        .get(served.url())
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    // Another user of the machine does not hold the token: any other value is refused.
    for wrong in ["1", "", &served.token[..served.token.len() - 1]] {
        let refused = http
            .get(format!("http://{}/api/campaigns", served.addr))
            .header(GUARD_HEADER, wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{wrong:?}");
    }
    // A CORS preflight is never answered with a permission.
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/api/campaigns", served.addr),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", GUARD_HEADER)
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 403);
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn the_page_is_answered_by_either_loopback_name_and_its_data_is_never_a_page() {
    let (served, http) = console().await;
    let by_name = http
        .get(format!(
            "http://localhost:{}/api/campaigns",
            served.addr.port()
        ))
        .header("host", format!("localhost:{}", served.addr.port()))
        .header(GUARD_HEADER, &served.token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.status(), 202);
    assert_eq!(by_name.headers()["x-content-type-options"], "nosniff");
    assert_eq!(by_name.headers()["cache-control"], "no-store");
    assert!(served.url().ends_with(&format!("/?token={}", served.token)));
    assert!(served.token.len() >= 64, "{}", served.token);
}

#[tokio::test]
async fn an_api_that_does_not_answer_is_a_502_problem() {
    let client = Client::local("http://127.0.0.1:9", "local-token-0123456789").unwrap();
    let served = serve(client, 0).await.unwrap();
    let answer = reqwest::Client::new()
        .get(format!("http://{}/api/campaigns", served.addr))
        .header(GUARD_HEADER, &served.token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["title"], "The API did not answer");
}

#[test]
fn the_page_reads_the_apis_enumerations_from_its_openapi_document() {
    let types = shared_types().unwrap();
    assert_eq!(
        types["campaign_status"],
        json!(["ACTIVE", "PAUSED", "CANCELLED", "COMPLETED"])
    );
    assert!(
        types["call_status"]
            .as_array()
            .unwrap()
            .contains(&json!("RETRY_WAIT"))
    );
    assert!(
        types["reason"]
            .as_array()
            .unwrap()
            .contains(&json!("do-not-call"))
    );
}

fn spec() -> Value {
    json!({
        "name": "Reminders",
        "from": "+15555550199",
        "script": {"caller_name": "Riverside Clinic", "start": "hi",
                   "steps": {"hi": {"say": "Hello {{name}}, this is Riverside Clinic.", "outcome": "done"}}}
    })
}

#[test]
fn the_preview_gives_each_row_its_verdict_in_the_apis_words() {
    let csv =
        "to,name\n+15555550100,Ada\nnot a number,Bob\n+15555550100,Ada again\n(555) 010-0102,Cy\n";
    let p = preview(spec(), csv, Timestamp::from_millis(1_800_000_000_000));
    assert!(
        p.spec_errors.is_empty() && p.list_errors.is_empty(),
        "{p:?}"
    );
    assert_eq!((p.rows_total, p.accepted, p.rejected), (4, 2, 2));
    // Rejected rows first, each with the line a spreadsheet shows.
    let lines: Vec<(u64, bool)> = p.rows.iter().map(|r| (r.line, r.ok)).collect();
    assert_eq!(lines, vec![(3, false), (4, false), (2, true), (5, true)]);
    assert_eq!(p.rows[0].to, "not a number");
    assert_eq!(p.rows[0].field.as_deref(), Some("to"));
    assert!(
        p.rows[1].reason.as_deref().unwrap().contains("line 2"),
        "{:?}",
        p.rows[1]
    );
    assert_eq!(p.rows[3].to, "(555) 010-0102");
}

#[test]
fn the_preview_names_the_specs_faults_before_any_row() {
    let mut bad = spec();
    bad["pacing"] = json!({"calls_per_second": -1});
    let p = preview(bad, "to\n+15555550100\n", Timestamp::from_millis(0));
    assert!(p.rows.is_empty());
    assert!(
        p.spec_errors
            .iter()
            .any(|e| e["field"] == "spec.pacing.calls_per_second"),
        "{:?}",
        p.spec_errors
    );
    let mut anonymous = spec();
    anonymous["script"]
        .as_object_mut()
        .unwrap()
        .remove("caller_name");
    let p = preview(
        anonymous,
        "to,name\n+15555550100,Ada\n",
        Timestamp::from_millis(0),
    );
    assert_eq!(p.spec_errors[0]["field"], "spec.script.caller_name");
    let p = preview(spec(), "name\nAda\n", Timestamp::from_millis(0));
    assert!(!p.list_errors.is_empty(), "a list without a number column");
    let p = preview(spec(), "to,name\n", Timestamp::from_millis(0));
    assert_eq!(p.list_errors[0]["field"], "contacts");
    let p = preview(spec(), "to\n+15555550100\n", Timestamp::from_millis(0));
    assert!(
        p.list_errors.iter().any(|e| e.to_string().contains("name")),
        "a script variable no column provides: {:?}",
        p.list_errors
    );
}

#[test]
fn a_large_preview_lists_a_bounded_number_of_rows() {
    let mut csv = String::from("to,name\n");
    for i in 0..2_000 {
        csv.push_str(&format!("+1555555{i:04},N\n"));
    }
    let p = preview(spec(), &csv, Timestamp::from_millis(0));
    assert_eq!(p.rows_total, 2_000);
    assert_eq!(p.rows.len(), PREVIEW_ROWS);
    assert!(p.rows_truncated);
}

#[tokio::test]
async fn a_preview_that_is_not_json_is_a_400_problem() {
    let (served, http) = console().await;
    let answer = http
        .post(format!("http://{}/console/preview", served.addr))
        .header(GUARD_HEADER, &served.token)
        .body("{\"spec\": 1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let ok = http
        .post(format!("http://{}/console/preview", served.addr))
        .header(GUARD_HEADER, &served.token)
        .json(&json!({"spec": spec(), "csv": "to,name\n+15555550100,Ada\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["accepted"], 1);
}
