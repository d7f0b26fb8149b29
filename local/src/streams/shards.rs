//! Reading DynamoDB Local's Streams API: the stream of a table, its shards in lineage order,
//! iterators, and everything a stream holds at once.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::Value;

use super::event::{lambda_event, lambda_record};

/// Records one `GetRecords` returns at most.
pub(super) const GET_LIMIT: i32 = 1000;

/// A client for DynamoDB Local's Streams API. DynamoDB Local serves it on its DynamoDB
/// endpoint and accepts any credentials. Its requests time out, so a database that stalls
/// (or dies with a connection open) costs a poller a round, never its progress.
#[must_use]
pub fn streams_client(endpoint: &str) -> StreamsClient {
    use aws_sdk_dynamodbstreams::config::timeout::TimeoutConfig;
    StreamsClient::from_conf(
        crate::local_config!(aws_sdk_dynamodbstreams, endpoint)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(2))
                    .operation_attempt_timeout(std::time::Duration::from_secs(10))
                    .build(),
            )
            .build(),
    )
}

/// The latest stream of `table`.
///
/// # Errors
/// When the table cannot be described or has no stream.
pub async fn stream_arn(endpoint: &str, table: &str) -> anyhow::Result<String> {
    let out = crate::tables::client(endpoint)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("describing table {table}"))?;
    out.table
        .and_then(|t| t.latest_stream_arn)
        .with_context(|| format!("table {table} has no stream"))
}

/// Every record one shard of a stream holds, oldest first, in Lambda's shape.
#[derive(Debug, Clone)]
pub struct ShardRecords {
    pub stream_arn: String,
    pub shard_id: String,
    pub records: Vec<Value>,
}

impl ShardRecords {
    /// The event Lambda would invoke the handler with for `records` of this shard.
    #[must_use]
    pub fn event(&self, records: &[Value]) -> Value {
        lambda_event(&self.stream_arn, &self.shard_id, records)
    }
}

/// Reads everything the stream of `table` holds now, shard by shard, parents first.
///
/// # Errors
/// When the stream cannot be described or read.
pub async fn read_stream(endpoint: &str, table: &str) -> anyhow::Result<Vec<ShardRecords>> {
    let arn = stream_arn(endpoint, table).await?;
    let client = streams_client(endpoint);
    let mut shards = Vec::new();
    for shard in lineage_order(describe(&client, &arn).await?) {
        let mut iterator = Some(iterator(&client, &arn, &shard.id, None).await?);
        let mut records = Vec::new();
        while let Some(it) = iterator.take() {
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(GET_LIMIT)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .with_context(|| format!("reading shard {}", shard.id))?;
            let got = out.records.unwrap_or_default();
            let empty = got.is_empty();
            records.extend(got.iter().map(|r| lambda_record(r, &arn)));
            // An open shard always has a next iterator: stop once it has nothing more. (DynamoDB
            // Local answers with every record it holds, never an empty page before more.)
            if !empty {
                iterator = out.next_shard_iterator;
            }
        }
        shards.push(ShardRecords {
            stream_arn: arn.clone(),
            shard_id: shard.id,
            records,
        });
    }
    Ok(shards)
}

#[derive(Debug, Clone)]
pub(super) struct ShardInfo {
    pub(super) id: String,
    pub(super) parent: Option<String>,
}

pub(super) async fn describe(client: &StreamsClient, arn: &str) -> anyhow::Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = client
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| format!("describing stream {arn}"))?;
        let Some(desc) = out.stream_description else {
            bail!("stream {arn} has no description");
        };
        shards.extend(desc.shards.unwrap_or_default().into_iter().filter_map(|s| {
            Some(ShardInfo {
                id: s.shard_id?,
                parent: s.parent_shard_id,
            })
        }));
        match desc.last_evaluated_shard_id {
            Some(last) => start = Some(last),
            None => return Ok(shards),
        }
    }
}

/// Shards ordered so that a parent comes before its children.
pub(super) fn lineage_order(shards: Vec<ShardInfo>) -> Vec<ShardInfo> {
    let known: BTreeMap<String, ShardInfo> =
        shards.into_iter().map(|s| (s.id.clone(), s)).collect();
    fn depth<'a>(mut s: &'a ShardInfo, known: &'a BTreeMap<String, ShardInfo>) -> usize {
        let mut d = 0;
        while let Some(parent) = s.parent.as_ref().and_then(|p| known.get(p)) {
            d += 1;
            s = parent;
            if d > known.len() {
                break;
            }
        }
        d
    }
    let mut ordered: Vec<(usize, ShardInfo)> = known
        .values()
        .map(|s| (depth(s, &known), s.clone()))
        .collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    ordered.into_iter().map(|(_, s)| s).collect()
}

/// An iterator at the start of the shard, or just after `after`.
pub(super) async fn iterator(
    client: &StreamsClient,
    arn: &str,
    shard: &str,
    after: Option<&str>,
) -> anyhow::Result<String> {
    let mut request = client.get_shard_iterator().stream_arn(arn).shard_id(shard);
    request = match after {
        Some(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("getting an iterator for shard {shard}"))?
        .shard_iterator
        .with_context(|| format!("no iterator for shard {shard}"))
}
