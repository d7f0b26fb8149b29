//! CSV contact lists end to end: every line-end style, a header alone, charsets and the BOM.

use std::collections::HashSet;

use outdial_core::ids::CampaignId;

use crate::support::{Harness, spec};

/// `n` contacts with distinct numbers, each row ended by `end`.
fn csv(n: usize, end: &str) -> String {
    let mut out = format!("to,name{end}");
    for i in 0..n {
        out.push_str(&format!("+1202555{i:04},c{i}{end}"));
    }
    out
}

/// Posts a CSV campaign with `content_type` and returns the answer.
async fn post(h: &Harness, content_type: &str, body: &str) -> crate::support::Resp {
    h.req("POST", "/campaigns")
        .raw(content_type, body)
        .header("X-Outdial-Spec", &spec().to_string())
        .send()
        .await
}

/// Asserts a 202 that accepted `n` contacts and wrote `n` calls with `n` distinct ids, and
/// that the campaign counts `n` contacts.
async fn assert_all_written(h: &Harness, resp: &crate::support::Resp, n: usize) {
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["accepted"], n, "{}", resp.body);
    assert_eq!(body["rejected_count"], 0, "{}", resp.body);
    let id = CampaignId::parse(body["campaign_id"].as_str().unwrap()).unwrap();
    let calls = h.calls(&id).await;
    assert_eq!(calls.len(), n, "every accepted contact has its call");
    let ids: HashSet<&str> = calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), n, "no two contacts share a call id");
    let campaign = h.req("GET", &format!("/campaigns/{id}")).send().await;
    assert_eq!(campaign.json()["contacts"], n);
}

#[tokio::test]
async fn a_csv_with_lone_carriage_returns_writes_every_contact_across_a_batch_boundary() {
    let h = Harness::new().await;
    // 60 rows: more than two 25-item batches.
    let resp = post(&h, "text/csv", &csv(60, "\r")).await;
    assert_all_written(&h, &resp, 60).await;
}

#[tokio::test]
async fn a_csv_with_lone_carriage_returns_in_one_batch_is_accepted() {
    let h = Harness::new().await;
    let resp = post(
        &h,
        "text/csv",
        "to,name,date\r+12025553000,A,B\r+12025553001,C,D\r",
    )
    .await;
    assert_all_written(&h, &resp, 2).await;
}

#[tokio::test]
async fn every_line_end_style_gives_the_same_contacts_and_row_numbers() {
    let h = Harness::new().await;
    for end in ["\n", "\r\n", "\r"] {
        let body = format!("to,name{end}+12025550100,Ada{end}bad,Bob{end}+12025550101,Cy");
        let resp = post(&h, "text/csv", &body).await;
        assert_eq!(resp.status, 202, "{end:?}: {}", resp.body);
        let body = resp.json();
        assert_eq!(body["accepted"], 2, "{end:?}");
        assert_eq!(body["rejected"][0]["line"], 3, "{end:?}");
    }
    // Mixed, with a blank line and a quoted value over two lines: rows are counted as
    // records, so the bad row is row 4 whatever its line.
    let body = "to,name\r\n+12025550102,\"Ada\nLovelace\"\r\r\n+12025550103,Bob\rbad,Cy\n";
    let resp = post(&h, "text/csv", body).await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.json()["accepted"], 2);
    assert_eq!(resp.json()["rejected"][0]["line"], 4, "{}", resp.body);
}

#[tokio::test]
async fn a_csv_of_a_header_alone_is_422_for_a_campaign_and_an_append() {
    let h = Harness::new().await;
    for body in [
        "to,name\n",
        "to,name",
        "to,name\r\r\n\n",
        "to,name\n,\n , \n",
    ] {
        let resp = post(&h, "text/csv", body).await;
        assert_eq!(resp.status, 422, "{body:?}: {}", resp.body);
        let problem = resp.json();
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("#no-contact-accepted"),
            "{}",
            resp.body
        );
        assert_eq!(problem["rejected_count"], 0);
        assert!(
            problem["detail"].as_str().unwrap().contains("no contact"),
            "{}",
            resp.body
        );
    }
    let id = h
        .campaign(serde_json::json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    let resp = h
        .req("POST", &format!("/campaigns/{id}/contacts"))
        .csv("to,name\r\n")
        .send()
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(h.calls(&id).await.len(), 1);
}

#[tokio::test]
async fn a_csv_in_a_charset_other_than_utf8_is_415() {
    let h = Harness::new().await;
    for content_type in [
        "text/csv; charset=utf-16",
        "text/csv;charset=UTF-16LE",
        "text/csv; charset=\"utf-16\"",
        "text/csv; header=present; charset=windows-1252",
        "application/csv; Charset=ISO-8859-1",
    ] {
        let resp = post(&h, content_type, &csv(1, "\n")).await;
        assert_eq!(resp.status, 415, "{content_type}: {}", resp.body);
        let detail = resp.json()["detail"].as_str().unwrap().to_owned();
        assert!(
            detail.contains("charset") && detail.contains("UTF-8"),
            "{content_type}: {detail}"
        );
        assert!(resp.header("accept-post").unwrap().contains("text/csv"));
    }
    for content_type in [
        "text/csv; charset=utf-8",
        "text/csv; charset=\"UTF-8\"",
        "text/csv; charset=US-ASCII",
        "text/csv;charset=utf8",
    ] {
        let resp = post(&h, content_type, &csv(1, "\n")).await;
        assert_all_written(&h, &resp, 1).await;
    }
}

#[tokio::test]
async fn a_utf8_bom_is_stripped() {
    let h = Harness::new().await;
    let resp = post(&h, "text/csv", &format!("\u{feff}{}", csv(3, "\r\n"))).await;
    assert_all_written(&h, &resp, 3).await;
}
