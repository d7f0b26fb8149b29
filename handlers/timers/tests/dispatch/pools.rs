//! Caller-ID pools end to end, over the simulator and DynamoDB Local, on virtual time: the
//! caps of every number hold while the pool carries a campaign at its full rate, and local
//! presence dials from the callee's own area code.

use outdial_core::numbers::{CallerNumber, NumberSpec};
use outdial_core::record::PoolRef;

use super::*;

/// A number of pool `pool`, registered from its JSON spec.
fn number(e164: &str, spec: &str) -> CallerNumber {
    serde_json::from_str::<NumberSpec>(spec)
        .unwrap()
        .registration(E164::parse(e164).unwrap())
        .unwrap()
}

fn pool(local_presence: bool) -> Option<PoolRef> {
    Some(PoolRef {
        pool: "main".into(),
        local_presence,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_carries_a_campaign_at_its_full_rate_and_no_number_passes_its_cap() {
    // Three numbers of 5 calls a minute each: 15 a minute for a campaign that asks for 10 a
    // second. 60 calls take four minutes.
    let mut setup = Setup::default().numbered(60, |_| answers());
    setup.numbers = (0..3)
        .map(|i| {
            number(
                &format!("+1212555010{i}"),
                r#"{"pool": "main", "caps": {"per_minute": 5}}"#,
            )
        })
        .collect();
    setup.caller_pool = pool(false);
    setup.pacing.calls_per_second = 10.0;
    let clock = setup.on_virtual_time();
    let start = clock.now();
    let h = setup.start().await;
    let records =
        super::compliance::until_terminal(&h, &clock, &h.calls, Duration::from_millis(250)).await;

    assert!(
        records.iter().all(|r| r.status == CallStatus::Completed),
        "{:?}",
        records.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let report = h.sim.report();
    assert_clean(&report);
    assert_eq!(
        report.placed_per_from.len(),
        3,
        "{:?}",
        report.placed_per_from
    );
    for (from, usage) in &report.placed_per_from {
        assert!(usage.max_per_minute <= 5, "{from}: {usage:?}");
        assert_eq!(usage.total, 20, "{from}: {usage:?}");
    }
    // At its full rate: the sixty calls went out within four minutes and a few seconds of
    // pacing, every number at its cap in some minute, and the calls beyond the pool's room
    // waited with their reason rather than failing.
    let span = clock.now().since(start);
    assert!(span < Duration::from_secs(5 * 60), "{span:?}");
    assert!(
        report
            .placed_per_from
            .values()
            .all(|u| u.max_per_minute == 5)
    );
    assert!(h.dispatcher.stats().caller_ids_held > 0);
    // Each call records the number it was dialed from.
    for r in &records {
        assert!(
            report.placed_per_from.contains_key(r.from.as_str()),
            "{}",
            r.from
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_presence_dials_from_the_callees_area_code_when_the_pool_has_it() {
    let callees = [
        "+13055550111",
        "+14155550112",
        "+16175550113",
        "+13055550114",
    ];
    let mut setup = Setup {
        callees: callees
            .iter()
            .map(|n| ((*n).to_owned(), answers(), None))
            .collect(),
        ..Setup::default()
    };
    setup.numbers = vec![
        number("+13055550100", r#"{"pool": "main"}"#),
        number("+14155550100", r#"{"pool": "main"}"#),
        // Presents Boston's 617 though it is a New York number.
        number(
            "+12125550100",
            r#"{"pool": "main", "display_region": "617"}"#,
        ),
    ];
    setup.caller_pool = pool(true);
    let clock = setup.on_virtual_time();
    let h = setup.start().await;
    let records =
        super::compliance::until_terminal(&h, &clock, &h.calls, Duration::from_millis(100)).await;
    let from_of = |to: &str| {
        records
            .iter()
            .find(|r| r.to.as_str() == to)
            .map(|r| r.from.as_str().to_owned())
            .unwrap()
    };
    assert_eq!(from_of("+13055550111"), "+13055550100");
    assert_eq!(from_of("+13055550114"), "+13055550100");
    assert_eq!(from_of("+14155550112"), "+14155550100");
    assert_eq!(from_of("+16175550113"), "+12125550100");
    assert_clean(&h.sim.report());
}
