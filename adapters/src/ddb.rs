//! The DynamoDB plumbing every store of this crate shares, written once: SDK errors in the
//! ports' terms ([`map_err`], and what a write refused on its condition means), the retry
//! loops of `BatchWriteItem` and `BatchGetItem` (unprocessed items and keys) and of
//! `TransactWriteItems` (collisions with another transaction), and consistent single reads.
//! The stores decide what to write; this module only sends it.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_dynamodb::types::{
    CancellationReason, KeysAndAttributes, PutRequest, TransactWriteItem, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use outdial_core::ports::StoreError;

use crate::item::Item;

/// The cancellation reason code of a transaction item refused on its condition.
pub(crate) const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// `BatchWriteItem` takes at most 25 items.
const WRITE_BATCH: usize = 25;
/// `BatchGetItem` takes at most 100 keys.
const GET_BATCH: usize = 100;
/// Attempts at a batch's unprocessed items or keys before giving up.
const BATCH_TRIES: u32 = 8;
/// Attempts at a transaction that collided with another on the same item.
const TRANSACTION_TRIES: u32 = 4;

/// Turns an SDK error into the store's terms, keeping the cause.
pub(crate) fn map_err<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let throttled = matches!(
        err.as_service_error().and_then(ProvideErrorMetadata::code),
        Some(
            "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "ThrottlingException"
                // Another transaction held the item at that moment: try again shortly.
                | "TransactionConflictException"
        )
    );
    if throttled {
        StoreError::Throttled(Box::new(err))
    } else if matches!(err, SdkError::TimeoutError(_)) {
        StoreError::Timeout(Box::new(err))
    } else {
        StoreError::Other(Box::new(err))
    }
}

/// A request the SDK could not build (a required field missing).
pub(crate) fn build_err(e: BuildError) -> StoreError {
    StoreError::Other(Box::new(e))
}

/// The error of a single-item write that can be refused on its condition.
pub(crate) trait Refusable:
    ProvideErrorMetadata + std::error::Error + Send + Sync + 'static
{
    /// The refusal, when the write was refused on its condition.
    fn refusal(&self) -> Option<&ConditionalCheckFailedException>;
}

impl Refusable for UpdateItemError {
    fn refusal(&self) -> Option<&ConditionalCheckFailedException> {
        match self {
            Self::ConditionalCheckFailedException(c) => Some(c),
            _ => None,
        }
    }
}

impl Refusable for PutItemError {
    fn refusal(&self) -> Option<&ConditionalCheckFailedException> {
        match self {
            Self::ConditionalCheckFailedException(c) => Some(c),
            _ => None,
        }
    }
}

impl Refusable for DeleteItemError {
    fn refusal(&self) -> Option<&ConditionalCheckFailedException> {
        match self {
            Self::ConditionalCheckFailedException(c) => Some(c),
            _ => None,
        }
    }
}

/// Whether a single-item write was refused on its condition.
pub(crate) fn condition_failed<E: Refusable, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(Refusable::refusal)
        .is_some()
}

/// Whether a conditional single-item write was made: `false` when it was refused on its
/// condition, which the caller expects. Any other failure is mapped as usual.
pub(crate) fn written<T, E, R>(out: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: Refusable,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match out {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => Ok(false),
        Err(e) => Err(map_err(e)),
    }
}

/// The item a write refused on its condition handed back (with
/// `ReturnValuesOnConditionCheckFailure = ALL_OLD`): `None` when there is no item. Any other
/// failure is mapped as usual.
pub(crate) fn refused_item<E, R>(err: SdkError<E, R>) -> Result<Option<Item>, StoreError>
where
    E: Refusable,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.as_service_error().and_then(Refusable::refusal) {
        Some(refused) => Ok(refused.item().cloned()),
        None => Err(map_err(err)),
    }
}

/// A write refused on its condition (with `ALL_OLD`), as the ports say it:
/// [`StoreError::Conflict`] when the item exists, [`StoreError::NotFound`] when it does not.
/// Any other failure is mapped as usual.
pub(crate) fn refusal<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: Refusable,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match refused_item(err) {
        Ok(item) => conflict_or_not_found(item.is_some()),
        Err(e) => e,
    }
}

fn conflict_or_not_found(found: bool) -> StoreError {
    if found {
        StoreError::Conflict
    } else {
        StoreError::NotFound
    }
}

/// Whether a transaction's item was refused on its condition.
pub(crate) fn failed_on_condition(reason: &CancellationReason) -> bool {
    reason.code() == Some(CONDITION_FAILED)
}

/// A transaction's item refused on its condition (with `ALL_OLD`), as the ports say it (see
/// [`refusal`]); `None` when it was not.
pub(crate) fn refused_on_condition(reason: &CancellationReason) -> Option<StoreError> {
    failed_on_condition(reason).then(|| conflict_or_not_found(reason.item().is_some()))
}

/// The reasons a transaction was cancelled, in the order of its items.
fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<&[CancellationReason]> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(c.cancellation_reasons()),
        _ => None,
    }
}

/// What a cancelled transaction means to the store that sent it.
#[derive(Debug)]
pub(crate) enum Cancelled<T> {
    /// The operation's answer.
    Answer(Result<T, StoreError>),
    /// Another transaction held one of the items at that moment: send it again.
    Retry,
}

/// Writes `items` in one `TransactWriteItems` and answers `written`. When DynamoDB cancels
/// it, `judge` reads the cancellation reasons (in the order of the items): an answer, a
/// collision to retry (a few times, pausing `pause` and twice as long each time), or `None`
/// for a failure mapped as usual. Every transaction of the stores holds a campaign's
/// counters item, which is what stays busy when the retries run out.
pub(crate) async fn transact<T>(
    client: &Client,
    items: Vec<TransactWriteItem>,
    mut pause: Duration,
    written: T,
    judge: impl Fn(&[CancellationReason]) -> Option<Cancelled<T>>,
) -> Result<T, StoreError> {
    for _ in 0..TRANSACTION_TRIES {
        let out = client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await;
        let err = match out {
            Ok(_) => return Ok(written),
            Err(e) => e,
        };
        let verdict = cancellation_reasons(&err).and_then(&judge);
        match verdict {
            Some(Cancelled::Answer(answer)) => return answer,
            Some(Cancelled::Retry) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            None => return Err(map_err(err)),
        }
    }
    Err(StoreError::Throttled(
        "the campaign's counters stayed busy with other transactions".into(),
    ))
}

/// One item, read consistently; `None` when there is none.
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(map_err)?;
    Ok(out.item)
}

/// Writes the items `items` yields with `BatchWriteItem`s, `in_flight` at once, retrying what
/// DynamoDB left unprocessed. Items are built as their batch is sent, so a list of 100,000
/// calls never sits in memory as items all at once.
pub(crate) async fn put_all(
    client: &Client,
    table: &str,
    items: impl Iterator<Item = Item>,
    in_flight: usize,
) -> Result<(), StoreError> {
    in_batches(items, WRITE_BATCH, in_flight, |batch| {
        put_batch(client, table, batch)
    })
    .await?;
    Ok(())
}

/// Reads the items with `keys` (only the attributes in `projection`, every attribute when it
/// is empty) with `BatchGetItem`s, `in_flight` at once, retrying unprocessed keys; strongly
/// consistent reads if `consistent`. Items that do not exist are simply not in the answer.
pub(crate) async fn get_all(
    client: &Client,
    table: &str,
    keys: impl Iterator<Item = Item>,
    projection: &str,
    in_flight: usize,
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    let found = in_batches(keys, GET_BATCH, in_flight, |batch| {
        get_batch(client, table, batch, projection, consistent)
    })
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Runs `send` on the items `items` yields, `size` at a time and `in_flight` batches at once,
/// building each batch as it is sent; the answers come in any order.
async fn in_batches<X, T, F>(
    items: impl Iterator<Item = X>,
    size: usize,
    in_flight: usize,
    send: impl FnMut(Vec<X>) -> F,
) -> Result<Vec<T>, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let mut items = items.peekable();
    let batches = std::iter::from_fn(move || {
        items.peek()?;
        Some(items.by_ref().take(size).collect::<Vec<X>>())
    });
    futures::stream::iter(batches)
        .map(send)
        .buffer_unordered(in_flight)
        .try_collect()
        .await
}

/// Writes one batch of at most 25 items.
async fn put_batch(client: &Client, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
    let requests = items
        .into_iter()
        .map(|item| {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(build_err)?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    until_processed(requests, "items", move |requests| async move {
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(map_err)?;
        let unprocessed = out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default();
        Ok((Vec::<()>::new(), unprocessed))
    })
    .await?;
    Ok(())
}

/// Reads one batch of at most 100 keys.
async fn get_batch(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    projection: &str,
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    until_processed(keys, "keys", move |keys| async move {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .set_projection_expression((!projection.is_empty()).then(|| projection.to_owned()))
            .consistent_read(consistent)
            .build()
            .map_err(build_err)?;
        let out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(map_err)?;
        let found = out
            .responses
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default();
        let unprocessed = out
            .unprocessed_keys
            .and_then(|mut m| m.remove(table))
            .map(|k| k.keys)
            .unwrap_or_default();
        Ok((found, unprocessed))
    })
    .await
}

/// Sends `pending` with `send`, which answers what it got and what DynamoDB left
/// unprocessed, and sends what is left again after a growing pause.
///
/// # Errors
/// [`StoreError::Throttled`] when `what` (items, keys) is still unprocessed after a few tries;
/// otherwise as `send` fails.
async fn until_processed<X, T, F>(
    mut pending: Vec<X>,
    what: &str,
    mut send: impl FnMut(Vec<X>) -> F,
) -> Result<Vec<T>, StoreError>
where
    F: Future<Output = Result<(Vec<T>, Vec<X>), StoreError>>,
{
    let mut done = Vec::new();
    let mut pause = Duration::from_millis(25);
    for _ in 0..BATCH_TRIES {
        let (got, unprocessed) = send(pending).await?;
        done.extend(got);
        pending = unprocessed;
        if pending.is_empty() {
            return Ok(done);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    Err(StoreError::Throttled(
        format!(
            "{} {what} still unprocessed after {BATCH_TRIES} tries",
            pending.len()
        )
        .into(),
    ))
}
