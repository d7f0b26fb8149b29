//! `GET /campaigns/{id}/results`: every contact once, a page at a time, as one CSV file.

use aws_sdk_dynamodb::types::AttributeValue;
use outdial_core::lifecycle::CallStatus;
use serde_json::json;

use crate::support::Harness;

/// Every page of the campaign's results, followed through `Link`, and the rows of the
/// pages put end to end, header first.
async fn export(h: &Harness, campaign: &str, limit: u32) -> (usize, Vec<csv::StringRecord>) {
    let mut path = format!("/campaigns/{campaign}/results?limit={limit}");
    let mut text = String::new();
    let mut pages = 0;
    loop {
        let resp = h.req("GET", &path).send().await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert_eq!(resp.header("content-type"), Some("text/csv; charset=utf-8"));
        pages += 1;
        text.push_str(&resp.body);
        let Some(link) = resp.header("link") else {
            assert!(resp.header("outdial-next-cursor").is_none());
            break;
        };
        let cursor = resp.header("outdial-next-cursor").unwrap();
        let next = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(url, _)| url.to_owned())
            .unwrap_or_else(|| panic!("Link {link:?}"));
        assert!(next.ends_with(&format!("cursor={cursor}")), "{next}");
        path = next;
    }
    let rows = csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    (pages, rows)
}

#[tokio::test]
async fn every_contact_is_one_row_across_pages_with_what_became_of_it() {
    let h = Harness::new().await;
    let contacts: Vec<_> = (0..10)
        .map(|i| {
            json!({"to": format!("+1202555010{i}"), "vars": {"name": "Ada"},
                   "ref": format!("patient \"{i}\", ward B")})
        })
        .collect();
    let campaign = h.campaign(json!(contacts)).await;
    let calls = h.calls(&campaign).await;
    // One call answered on its second attempt: the keys it gave, its opt-out, its verdict.
    let answered = calls
        .iter()
        .find(|c| c.to.as_str() == "+12025550100")
        .unwrap();
    h.set_call(&answered.id, CallStatus::Completed, None).await;
    h.store
        .client()
        .update_item()
        .table_name(h.store.table())
        .key("PK", AttributeValue::S(format!("CALL#{}", answered.id)))
        .key("SK", AttributeValue::S("CALL".into()))
        .update_expression(
            "SET attempt = :two, dialed_at = :dialed, ended_at = :ended, digits = :digits, \
             script_outcome = :opted, verdict = :person",
        )
        .expression_attribute_values(":two", AttributeValue::N("2".into()))
        .expression_attribute_values(":dialed", AttributeValue::N("1780000000000".into()))
        .expression_attribute_values(":ended", AttributeValue::N("1780000030000".into()))
        .expression_attribute_values(
            ":digits",
            AttributeValue::L(vec![
                AttributeValue::S("1".into()),
                AttributeValue::S("9".into()),
            ]),
        )
        .expression_attribute_values(":opted", AttributeValue::S("opted_out".into()))
        .expression_attribute_values(":person", AttributeValue::S("person".into()))
        .send()
        .await
        .unwrap();

    // One listed after intake, which the dispatcher skipped.
    let listed = calls
        .iter()
        .find(|c| c.to.as_str() == "+12025550109")
        .unwrap();
    h.set_call(&listed.id, CallStatus::Cancelled, None).await;
    h.store
        .client()
        .update_item()
        .table_name(h.store.table())
        .key("PK", AttributeValue::S(format!("CALL#{}", listed.id)))
        .key("SK", AttributeValue::S("CALL".into()))
        .update_expression("SET reason = :dnc")
        .expression_attribute_values(":dnc", AttributeValue::S("do-not-call".into()))
        .send()
        .await
        .unwrap();

    let (pages, rows) = export(&h, campaign.as_str(), 3).await;
    assert_eq!(rows.len(), 10, "one row per contact");
    assert!(pages >= 4, "{pages} pages of at most 3 rows");
    let header = csv::Reader::from_reader(
        h.req("GET", &format!("/campaigns/{campaign}/results"))
            .send()
            .await
            .body
            .as_bytes(),
    )
    .headers()
    .unwrap()
    .clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        outdial_api::results::COLUMNS
    );
    let column = |name: &str| header.iter().position(|c| c == name).unwrap();
    let row = |to: &str| {
        rows.iter()
            .find(|r| &r[column("to")] == to)
            .unwrap_or_else(|| panic!("no row for {to}"))
    };
    let done = row("+12025550100");
    assert_eq!(&done[column("ref")], "patient \"0\", ward B");
    assert_eq!(&done[column("status")], "COMPLETED");
    assert_eq!(&done[column("attempts")], "2");
    assert_eq!(&done[column("last_attempt_at")], "2026-05-28T20:26:40Z");
    assert_eq!(&done[column("digits")], "1 9");
    assert_eq!(&done[column("verdict")], "person");
    assert_eq!(&done[column("opted_out")], "true");
    let skipped = row("+12025550109");
    assert_eq!(&skipped[column("status")], "CANCELLED");
    assert_eq!(&skipped[column("reason")], "do-not-call");
    assert_eq!(&skipped[column("attempts")], "0");
    let waiting = row("+12025550105");
    assert_eq!(
        (&waiting[column("status")], &waiting[column("opted_out")]),
        ("QUEUED", "false")
    );
    let mut ids: Vec<&str> = rows.iter().map(|r| &r[column("call_id")]).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10, "no contact twice");
}

#[tokio::test]
async fn bad_paging_and_unknown_campaigns_are_refused() {
    let h = Harness::new().await;
    let campaign = h
        .campaign(json!([{"to": "+12025550100", "vars": {"name": "Ada"}}]))
        .await;
    for bad in ["limit=0", "limit=1001", "limit=x"] {
        let resp = h
            .req("GET", &format!("/campaigns/{campaign}/results?{bad}"))
            .send()
            .await;
        assert_eq!(
            (resp.status, resp.fields()),
            (400, vec!["limit".to_owned()]),
            "{bad}"
        );
    }
    let resp = h
        .req("GET", &format!("/campaigns/{campaign}/results?cursor=nope"))
        .send()
        .await;
    assert_eq!(
        (resp.status, resp.fields()),
        (400, vec!["cursor".to_owned()])
    );
    let resp = h
        .req("GET", "/campaigns/cmp_doesnotexist/results")
        .send()
        .await;
    assert_eq!(resp.status, 404);
    // A page past the end is empty, not an error.
    let resp = h
        .req(
            "GET",
            &format!("/campaigns/{campaign}/results?cursor=QUEUED.zzzzzzzz"),
        )
        .send()
        .await;
    assert_eq!((resp.status, resp.body.as_str()), (200, ""));
}
