//! A request that runs out of time is answered, not cut off: the API answers 503 at its work
//! budget, inside the function's timeout, and releases the request's `Idempotency-Key`, so a
//! retry with the key completes the work at once. Virtual time: nothing waits for real.

use outdial_api::WORK_BUDGET;
use serde_json::{Value, json};

use crate::memory::{Memory, spec};

fn body(n: usize) -> String {
    let contacts: Vec<Value> = (0..n)
        .map(|i| json!({"to": format!("+1202555{i:04}"), "vars": {"name": "Ada"}}))
        .collect();
    json!({"spec": spec(), "contacts": contacts}).to_string()
}

#[tokio::test(start_paused = true)]
async fn a_campaign_whose_writes_hang_is_answered_503_at_the_budget_and_a_retry_completes_it() {
    let m = Memory::new();
    let body = body(3);
    let key = [("idempotency-key", "budget-1")];
    m.store.hang_writes(true);
    let started = tokio::time::Instant::now();
    let (status, problem) = m
        .send_with(
            "POST",
            "/campaigns",
            Some("application/json"),
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(started.elapsed(), WORK_BUDGET, "answered at the budget");

    m.store.hang_writes(false);
    let (status, created) = m
        .send_with(
            "POST",
            "/campaigns",
            Some("application/json"),
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(status, 202, "the key was released for the retry: {created}");
    let id = created["campaign_id"].as_str().unwrap();
    assert_eq!(m.calls_written(id).await, 3);
    assert_eq!(created["accepted"], 3);
}

#[tokio::test(start_paused = true)]
async fn without_a_key_a_hanging_request_is_answered_503_at_the_budget() {
    let m = Memory::new();
    m.store.hang_writes(true);
    let started = tokio::time::Instant::now();
    let (status, _) = m
        .send(
            "POST",
            "/campaigns",
            Some("application/json"),
            Some(&body(2)),
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(started.elapsed(), WORK_BUDGET);
}
