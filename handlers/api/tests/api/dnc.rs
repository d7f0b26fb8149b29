//! `PUT /dnc/{e164}` and `DELETE /dnc/{e164}`.

use outdial_core::admin::ApiStore;
use outdial_core::ids::E164;

use crate::support::Harness;

#[tokio::test]
async fn numbers_are_added_to_and_removed_from_the_do_not_call_list() {
    let h = Harness::new().await;
    let number = E164::parse("+12025550100").unwrap();
    let on_list = || async {
        h.store
            .on_do_not_call(std::slice::from_ref(&number))
            .await
            .unwrap()
    };

    let resp = h.req("PUT", "/dnc/%2B12025550100").send().await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert!(resp.body.is_empty());
    assert!(on_list().await.contains(&number));
    assert_eq!(
        h.req("PUT", "/dnc/+12025550100").send().await.status,
        204,
        "adding twice is fine"
    );

    assert_eq!(
        h.req("DELETE", "/dnc/%2b12025550100").send().await.status,
        204
    );
    assert!(on_list().await.is_empty());
    let resp = h.req("DELETE", "/dnc/+12025550100").send().await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn a_do_not_call_path_must_hold_an_e164_number() {
    let h = Harness::new().await;
    for path in [
        "/dnc/2025550100",
        "/dnc/%2B1",
        "/dnc/%2Bphone",
        "/dnc/%2B1%20202%20555%200100%20x5",
    ] {
        let resp = h.req("PUT", path).send().await;
        assert_eq!(resp.status, 400, "{path}: {}", resp.body);
        assert_eq!(resp.fields(), ["e164"]);
    }
}

#[tokio::test]
async fn a_large_upload_rejects_exactly_the_listed_numbers_with_the_digest_built_or_not() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use outdial_core::ids::CampaignId;

    use crate::support::{T0, spec};

    let h = Harness::new().await;
    // An entry from before the digest (no bucket), then one through `PUT /dnc`.
    let mut old = outdial_adapters::item::key("DNC#+12025550007".into(), "DNC");
    old.insert("e164".into(), AttributeValue::S("+12025550007".into()));
    h.store
        .client()
        .put_item()
        .table_name(h.store.table())
        .set_item(Some(old))
        .send()
        .await
        .unwrap();
    let csv: String = std::iter::once("to,name\n".to_owned())
        .chain((0..300).map(|i| format!("+1202555{i:04},Contact {i}\n")))
        .collect();
    let upload = |key: &'static str| {
        let csv = csv.clone();
        let h = &h;
        async move {
            let resp = h
                .req("POST", "/campaigns")
                .csv(&csv)
                .header("X-Outdial-Spec", &spec().to_string())
                .header("Idempotency-Key", key)
                .send()
                .await;
            assert_eq!(resp.status, 202, "{}", resp.body);
            resp.json()
        }
    };
    let lines = |body: &serde_json::Value| -> Vec<u64> {
        body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["reason"], "is on the do-not-call list");
                r["line"].as_u64().unwrap()
            })
            .collect()
    };

    // No digest yet: every number looked up, the old entry found.
    let body = upload("dnc-before-digest").await;
    assert_eq!(lines(&body), [9]);

    // An operator builds the digest (with a `Scan` the API function is not granted: not
    // through the API's recorded client).
    let endpoint = outdial_local::dynamodb::shared_endpoint().unwrap();
    let operator = outdial_adapters::store::DynamoStore::new(
        outdial_local::tables::client(&endpoint),
        h.store.table(),
        4,
    );
    assert_eq!(operator.build_dnc_digest(T0).await.unwrap(), 1);
    let resp = h.req("PUT", "/dnc/%2B12025550250").send().await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let body = upload("dnc-after-digest").await;
    assert_eq!(body["accepted"], 298);
    assert_eq!(lines(&body), [9, 252]);
    let id = CampaignId::parse(body["campaign_id"].as_str().unwrap()).unwrap();
    let calls = h.calls(&id).await;
    assert_eq!(calls.len(), 298);
    assert!(
        calls
            .iter()
            .all(|c| !["+12025550007", "+12025550250"].contains(&c.to.as_str()))
    );
}
