//! DynamoDB Local's stream, delivered to the stream handler as Lambda delivers it.
//!
//! Lambda's event source mapping reads a table's stream shard by shard (a parent before its
//! children), hands the function batches of at most 100 records of one shard in order, and
//! reacts to the answer: `batchItemFailures` make it deliver again from the earliest reported
//! record; a failed invocation makes it split the batch in halves and retry each
//! (`BisectBatchOnFunctionError`), up to a bound of retries after which the records are
//! discarded. [`StreamPoller`] does the same against DynamoDB Local's Streams API
//! (`DescribeStream`, `GetShardIterator`, `GetRecords`), so the local stack's counters come
//! from the real path: the table's own change records, in the JSON shape Lambda builds.
//!
//! Each event also carries what Lambda adds when the mapping has a tumbling window (`shardId`,
//! `window`, `state`, `isFinalInvokeForWindow`), because the stream handler's watermarks are
//! per shard and Lambda names the shard only there. The window itself is not modelled: every
//! batch is in the current one and no final invocation is made.
//!
//! [`read_stream`] reads everything a table's stream holds at once, for tests that want to
//! deliver the same records in their own order.

mod event;
mod poller;
mod shards;

pub use event::{REGION, lambda_event, lambda_record};
pub use poller::{Consumer, PollerSettings, PollerStats, StreamPoller};
pub use shards::{ShardRecords, read_stream, stream_arn, streams_client};

#[cfg(test)]
mod tests;
