//! What every request meets before an endpoint: authentication, routing, media types, sizes,
//! and bodies that are not what they claim to be.

use serde_json::json;

use crate::support::{Harness, spec};

#[tokio::test]
async fn requests_without_valid_credentials_are_401() {
    let h = Harness::new().await;
    for req in [
        h.req("GET", "/campaigns/cmp_1").no_auth(),
        h.req("GET", "/campaigns/cmp_1")
            .header("authorization", "Bearer wrong"),
        h.req("GET", "/campaigns/cmp_1").iam(),
        h.req("GET", "/nowhere").no_auth(),
        h.req("POST", "/campaigns")
            .no_auth()
            .json(&json!({"spec": spec()})),
    ] {
        let resp = req.send().await;
        assert_eq!(resp.status, 401, "{}", resp.body);
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(h.dispatches(), 0);
}

#[tokio::test]
async fn with_iam_only_requests_api_gateway_authorized_pass() {
    let h = Harness::with(|mut s| {
        s.auth = outdial_api::Auth::Iam;
        s
    })
    .await;
    assert_eq!(
        h.req("GET", "/campaigns/cmp_1").iam().send().await.status,
        404
    );
    assert_eq!(
        h.req("GET", "/campaigns/cmp_1").send().await.status,
        401,
        "a token is no IAM"
    );
    assert_eq!(
        h.req("GET", "/campaigns/cmp_1")
            .no_auth()
            .send()
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let h = Harness::new().await;
    assert_eq!(h.req("GET", "/").send().await.status, 404);
    assert_eq!(
        h.req("GET", "/campaigns/cmp_1/everything")
            .send()
            .await
            .status,
        404
    );
    let resp = h.req("DELETE", "/campaigns/cmp_1").send().await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET"));
    let resp = h.req("DELETE", "/campaigns").send().await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, POST"));
}

#[tokio::test]
async fn a_body_of_another_media_type_is_415() {
    let h = Harness::new().await;
    for (path, content_type) in [
        ("/campaigns", "text/plain"),
        ("/campaigns", "application/x-www-form-urlencoded"),
        ("/calls", "text/csv"),
        ("/campaigns/cmp_1/contacts", "application/xml"),
    ] {
        let resp = h.req("POST", path).raw(content_type, "x").send().await;
        assert_eq!(resp.status, 415, "{path} {content_type}");
        assert!(
            resp.header("accept-post")
                .unwrap()
                .contains("application/json")
        );
    }
    let resp = h
        .req("POST", "/campaigns")
        .raw(
            "application/json; charset=utf-8",
            &json!({"spec": spec()}).to_string(),
        )
        .send()
        .await;
    assert_eq!(
        resp.status, 202,
        "parameters of the media type are fine: {}",
        resp.body
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let h = Harness::with(|mut s| {
        s.max_body_bytes = 4096;
        s
    })
    .await;
    let csv = format!("to,name\n{}", "+12025550100,Ada\n".repeat(300));
    let resp = h
        .req("POST", "/campaigns")
        .csv(&csv)
        .header("X-Outdial-Spec", &spec().to_string())
        .send()
        .await;
    assert_eq!(resp.status, 413);
    assert!(resp.json()["detail"].as_str().unwrap().contains("4096"));
}

#[tokio::test]
async fn more_contacts_than_one_request_may_carry_is_413() {
    let h = Harness::new().await;
    let csv = format!(
        "to\n{}",
        "1\n".repeat(outdial_api::contacts::MAX_CONTACTS + 1)
    );
    let mut spec = spec();
    spec["script"] = json!({"caller_name": "Riverside Clinic", "start": "hi",
                            "steps": {"hi": {"say": "Hello from Riverside Clinic."}}});
    let resp = h
        .req("POST", "/campaigns")
        .csv(&csv)
        .header("X-Outdial-Spec", &spec.to_string())
        .send()
        .await;
    assert_eq!(resp.status, 413, "{}", resp.body);
}

#[tokio::test]
async fn malformed_bodies_are_4xx_never_5xx() {
    let h = Harness::new().await;
    let campaign = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let spec = spec().to_string();
    let json_bodies = [
        "",
        "{",
        "[]",
        "null",
        "\"text\"",
        "{\"spec\": null}",
        "{\"spec\": [], \"contacts\": {}}",
        "{\"spec\": {}, \"contacts\": [1, null, {}]}",
        "{\"contacts\": [{\"to\": {\"nested\": true}}]}",
        "{\"campaign_id\": 7, \"to\": [\"+12025550100\"]}",
        "{\"spec\": {\"name\": \"n\", \"from\": \"+15555550199\", \"script\": {\"start\": \"a\", \"steps\": {\"a\": {\"say\": \"x\"}}}, \"pacing\": {\"calls_per_second\": 1e999}}}",
        deep.as_str(),
    ];
    let contacts_path = format!("/campaigns/{campaign}/contacts");
    for path in ["/campaigns", "/calls", contacts_path.as_str()] {
        for body in json_bodies {
            let resp = h
                .req("POST", path)
                .raw("application/json", body)
                .send()
                .await;
            assert!(
                (400..500).contains(&resp.status),
                "{path} {body:.60}: {} {}",
                resp.status,
                resp.body
            );
        }
    }
    for csv in [
        "",
        "\u{feff}",
        "to\n\"+12025550100",
        "to,name\n\0\0\0,\0\n",
        "to,to\n1,2\n",
        "\"unterminated\n",
    ] {
        let resp = h
            .req("POST", "/campaigns")
            .csv(csv)
            .header("X-Outdial-Spec", &spec)
            .send()
            .await;
        assert!(
            (400..500).contains(&resp.status),
            "{csv:?}: {} {}",
            resp.status,
            resp.body
        );
    }
}
