//! What the condition suites share: writing their records, and asking DynamoDB Local whether
//! it applies a conditional update to one of them.

use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use outdial_adapters::condition::{Condition, Guarded};
use outdial_adapters::item::{Item, n};

/// Requests in flight at once.
pub const IN_FLIGHT: usize = 32;

/// Writes `items` as they are.
pub async fn put_all(ddb: &Client, table: &str, items: &[Item]) {
    futures::stream::iter(items)
        .for_each_concurrent(IN_FLIGHT, |item| async move {
            ddb.put_item()
                .table_name(table)
                .set_item(Some(item.clone()))
                .send()
                .await
                .expect("put");
        })
        .await;
}

/// Whether DynamoDB applies an update guarded by `condition` to `item`. The update touches no
/// attribute a condition reads, so every condition meets the record as it was written.
/// `what` names the condition when the update fails otherwise than on it.
pub async fn applies(
    ddb: &Client,
    table: &str,
    item: &Item,
    condition: Condition,
    what: &str,
) -> bool {
    let out = ddb
        .update_item()
        .table_name(table)
        .key("PK", item["PK"].clone())
        .key("SK", item["SK"].clone())
        .guarded(condition.guarding(&[], [(":probe", n(1))]))
        .update_expression("SET probe = :probe")
        .send()
        .await;
    match out {
        Ok(_) => true,
        Err(e) => {
            let refused = e
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception());
            assert!(
                refused,
                "{what} failed otherwise than on its condition: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            );
            false
        }
    }
}
