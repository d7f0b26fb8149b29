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
