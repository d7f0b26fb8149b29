//! `outdial bench cost --calls N [--json]`: what one call costs in the AWS services outdial
//! pays for, counted on the whole local stack rather than estimated.
//!
//! The demo's campaign (the demo's mix of callees, its script with a question, two attempts)
//! of N contacts is posted through the API and run to the end on a DynamoDB Local of its own,
//! every function's DynamoDB client metered. Counted, per function:
//! - DynamoDB requests, and the read and write units DynamoDB Local reports for them
//!   (`ReturnConsumedCapacity: TOTAL`). DynamoDB Local answers a flat figure for a transaction,
//!   so each item a `TransactWriteItems` wrote is charged as DynamoDB does, two units per
//!   started kilobyte, at its size at the end of the run (read back; a put's size from its
//!   request). Items only grow over a call's life, so this is the most it can have cost.
//! - Lambda invocations and their billed duration (each rounded up to the millisecond), timed
//!   by the local Invoke API, with each function's memory from `infra/functions.json`. The
//!   durations are this machine's: a function given a small share of a vCPU in Lambda takes
//!   longer on its CPU work (docs/scale.md).
//! - Stream records the stream function took, outcome events put on the bus (`PutEvents`
//!   entries and requests), and the Chime SDK's side: SMA events (each one invocation of the
//!   SMA function) and `CreateSipMediaApplicationCall` requests.
//!
//! The API function's figures are taken when the campaign's upload has been answered: the
//! bench then watches the campaign through the API as an operator would, which is not the
//! campaign's cost. Everything is divided by the calls that reached a final status (per call)
//! and scaled to 1,000 contacts.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use outdial_core::messages::Function;
use outdial_local::meter::{Metered, TransactWrite, item_bytes, transactional_write_units};
use outdial_local::tables::client;
use outdial_stack::stack::Stack;
use serde::Serialize;
use serde_json::Value;

use crate::campaign;
use crate::client::Client;
use crate::dev::DevOptions;

/// How a call item's key starts in [`key_id`]'s form.
const CALL_KEY: &str = "PK=CALL#";

/// One function's share of a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionCost {
    /// The memory it is deployed with (`infra/functions.json`).
    pub memory_mb: u32,
    pub invocations: f64,
    pub billed_ms: f64,
    /// One invocation's duration here, median and 99th percentile.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Billed duration times memory: what Lambda charges by.
    pub gb_s: f64,
    pub ddb_requests: f64,
    pub ddb_read_units: f64,
    pub ddb_write_units: f64,
}

/// What `outdial bench cost` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostBench {
    pub contacts: u32,
    /// The campaign's pace (`--cps`).
    pub target_cps: f64,
    /// Calls that reached a final status; the figures below are per one of them.
    pub completed: u64,
    /// Dials placed (first attempts and retries).
    pub dials_per_call: f64,
    pub ddb_requests_per_call: f64,
    pub ddb_read_units_per_call: f64,
    pub ddb_write_units_per_call: f64,
    /// Of the write units, those of items written in transactions (charged from their size).
    pub ddb_transaction_write_units_per_call: f64,
    /// Of the units of single-item and batch requests, each global secondary index's read and
    /// write units (its partitions have the table's per-partition limits).
    pub ddb_index_read_units_per_call: BTreeMap<String, f64>,
    pub ddb_index_write_units_per_call: BTreeMap<String, f64>,
    pub stream_records_per_call: f64,
    pub lambda_invocations_per_call: f64,
    pub lambda_billed_ms_per_call: f64,
    pub lambda_gb_s_per_call: f64,
    pub put_events_entries_per_call: f64,
    pub put_events_requests_per_call: f64,
    /// SMA events: each is one invocation of the SMA function, sent by the PSTN audio service.
    pub chime_events_per_call: f64,
    pub create_call_requests_per_call: f64,
    /// Per function (`api`, `sma`, `timers`, `stream`), per call.
    pub functions: BTreeMap<String, FunctionCost>,
    /// The totals above for 1,000 contacts.
    pub per_1000_contacts: BTreeMap<String, f64>,
    /// Call items' sizes at the end, as DynamoDB counts them (median, largest): every
    /// write to a call item is charged a unit per started kilobyte of it.
    pub call_item_bytes_p50: usize,
    pub call_item_bytes_max: usize,
    pub seconds: f64,
    pub double_dials: u32,
}

/// The memory each function is deployed with.
fn memory_mb(function: Function) -> anyhow::Result<u32> {
    let sizing: Value = serde_json::from_str(include_str!("../../../infra/functions.json"))?;
    sizing[function.key()]["memoryMb"]
        .as_u64()
        .and_then(|m| u32::try_from(m).ok())
        .with_context(|| {
            format!(
                "infra/functions.json has no memoryMb for {}",
                function.key()
            )
        })
}

/// Runs the campaign and counts.
///
/// # Errors
/// When the stack cannot start, the API refuses the campaign, or the campaign does not end
/// within ten minutes.
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
pub async fn cost(contacts: u32, cps: u32) -> anyhow::Result<CostBench> {
    anyhow::ensure!(
        (10..=20_000).contains(&contacts),
        "--calls must be 10 to 20000"
    );
    anyhow::ensure!((1..=100).contains(&cps), "--cps must be 1 to 100");
    let cps = f64::from(cps);
    // The demo's stack: its callees' mix and call speed, on a DynamoDB Local of its own.
    let opts = DevOptions::bench(cps);
    let mut config = crate::dev::config(&opts);
    config.report_path = None;
    config.metered = true;
    let stack = Stack::start(config).await?;
    let client = Client::connect(Some(&stack.endpoints().api), Some(stack.api_token())).await?;
    let mut spec = crate::demo::spec(contacts);
    spec["pacing"] = serde_json::json!({"calls_per_second": cps, "max_concurrent": 500});
    let started_at = Instant::now();
    let started = crate::bench::start_campaign(&client, &spec, contacts).await?;
    // The upload is the API function's whole part in the campaign.
    let api_spent = stack.spent().remove(Function::Api.key());
    let api_latency = stack.functions().latency(Function::Api.binary());

    let limit = Duration::from_secs(600);
    let mut sink = std::io::sink();
    campaign::watch(
        &client,
        &started.campaign_id,
        Duration::from_millis(500),
        Some(limit),
        &mut sink,
    )
    .await?;
    let mut report = campaign::report(&client, &started.campaign_id).await?;
    let waiting = Instant::now();
    while report.terminal() < started.accepted && waiting.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        report = campaign::report(&client, &started.campaign_id).await?;
    }
    anyhow::ensure!(
        report.terminal() == started.accepted,
        "{} of {} calls ended within ten minutes",
        report.terminal(),
        started.accepted
    );
    stack.stream_caught_up(Duration::from_secs(60)).await?;
    let seconds = started_at.elapsed().as_secs_f64();
    // What the stream function and the dispatcher do after the last call ended (the
    // counters, the completion event) settles within a stream round or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.stream_caught_up(Duration::from_secs(60)).await?;

    let mut spent = stack.spent();
    if let Some(api) = api_spent {
        spent.insert(Function::Api.key(), api);
    }
    let ddb = client_for_reads(&stack);
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let completed = report.terminal();
    let per_call = |x: f64| round(x / completed.max(1) as f64);
    let mut functions = BTreeMap::new();
    let (mut requests, mut reads, mut writes, mut transaction_writes) = (0.0, 0.0, 0.0, 0.0);
    let (mut index_reads, mut index_writes): (BTreeMap<String, f64>, BTreeMap<String, f64>) =
        (BTreeMap::new(), BTreeMap::new());
    let (mut invocations, mut billed_ms, mut gb_s) = (0.0, 0.0, 0.0);
    for function in Function::ALL {
        let (metered, transactions) = spent
            .remove(function.key())
            .unwrap_or_else(|| (Metered::default(), Vec::new()));
        let tx_units = transaction_units(&ddb, stack.table(), &transactions, &mut sizes).await?;
        let latency = if function == Function::Api {
            api_latency.clone()
        } else {
            stack.functions().latency(function.binary())
        };
        let memory = memory_mb(function)?;
        let function_gb_s = latency.billed_ms as f64 / 1000.0 * f64::from(memory) / 1024.0;
        for (index, units) in &metered.index_read_units {
            *index_reads.entry(index.clone()).or_insert(0.0) += units;
        }
        for (index, units) in &metered.index_write_units {
            *index_writes.entry(index.clone()).or_insert(0.0) += units;
        }
        let fn_requests = metered.total_requests() as f64;
        let fn_writes = metered.write_units + tx_units;
        requests += fn_requests;
        reads += metered.read_units;
        writes += fn_writes;
        transaction_writes += tx_units;
        invocations += latency.invocations as f64;
        billed_ms += latency.billed_ms as f64;
        gb_s += function_gb_s;
        functions.insert(
            function.key().to_owned(),
            FunctionCost {
                memory_mb: memory,
                invocations: per_call(latency.invocations as f64),
                billed_ms: per_call(latency.billed_ms as f64),
                p50_ms: round(latency.p50_ms),
                p99_ms: round(latency.p99_ms),
                gb_s: round_to(function_gb_s / completed.max(1) as f64, 8),
                ddb_requests: per_call(fn_requests),
                ddb_read_units: per_call(metered.read_units),
                ddb_write_units: per_call(fn_writes),
            },
        );
    }
    let mut call_items: Vec<usize> = sizes
        .iter()
        .filter(|(key, _)| key.starts_with(CALL_KEY))
        .map(|(_, bytes)| *bytes)
        .collect();
    call_items.sort_unstable();
    let bus = stack.bus().stats();
    let stream = stack.stream_stats().unwrap_or_default();
    let sim = stack.simulator().report();
    let sma_events = stack
        .functions()
        .latency(Function::Sma.binary())
        .invocations as f64;
    let dials = sim
        .creates
        .iter()
        .filter(|c| c.transaction_id.is_some())
        .count() as f64;
    stack.stop().await?;

    let totals = [
        ("dials", dials),
        ("ddb_requests", requests),
        ("ddb_read_units", reads),
        ("ddb_write_units", writes),
        ("stream_records", stream.delivered as f64),
        ("lambda_invocations", invocations),
        ("lambda_billed_ms", billed_ms),
        ("lambda_gb_s", gb_s),
        ("put_events_entries", bus.accepted as f64),
        ("put_events_requests", bus.requests as f64),
        ("chime_events", sma_events),
        ("create_call_requests", sim.create_requests as f64),
    ];
    let per_1000_contacts = totals
        .iter()
        .map(|(name, total)| {
            (
                (*name).to_owned(),
                round(total * 1000.0 / f64::from(contacts)),
            )
        })
        .collect();
    Ok(CostBench {
        contacts,
        target_cps: cps,
        completed,
        dials_per_call: per_call(dials),
        ddb_requests_per_call: per_call(requests),
        ddb_read_units_per_call: per_call(reads),
        ddb_write_units_per_call: per_call(writes),
        ddb_transaction_write_units_per_call: per_call(transaction_writes),
        ddb_index_read_units_per_call: index_reads
            .into_iter()
            .map(|(index, units)| (index, per_call(units)))
            .collect(),
        ddb_index_write_units_per_call: index_writes
            .into_iter()
            .map(|(index, units)| (index, per_call(units)))
            .collect(),
        stream_records_per_call: per_call(stream.delivered as f64),
        lambda_invocations_per_call: per_call(invocations),
        lambda_billed_ms_per_call: per_call(billed_ms),
        lambda_gb_s_per_call: round_to(gb_s / completed.max(1) as f64, 8),
        put_events_entries_per_call: per_call(bus.accepted as f64),
        put_events_requests_per_call: per_call(bus.requests as f64),
        chime_events_per_call: per_call(sma_events),
        create_call_requests_per_call: per_call(sim.create_requests as f64),
        functions,
        per_1000_contacts,
        call_item_bytes_p50: call_items.get(call_items.len() / 2).copied().unwrap_or(0),
        call_item_bytes_max: call_items.last().copied().unwrap_or(0),
        seconds: round(seconds),
        double_dials: sim.double_dials,
    })
}

/// An unmetered client of the stack's DynamoDB Local, to read items back.
fn client_for_reads(stack: &Stack) -> aws_sdk_dynamodb::Client {
    client(&stack.endpoints().dynamodb)
}

/// What DynamoDB charges for `writes`: two units per started kilobyte of each item, a put's
/// from its request, the others' from the item as it is now (one kilobyte if it is gone).
async fn transaction_units(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    writes: &[TransactWrite],
    sizes: &mut HashMap<String, usize>,
) -> anyhow::Result<f64> {
    let mut units = 0.0;
    for write in writes {
        let bytes = match write.put_bytes {
            Some(bytes) => bytes,
            None => {
                let id = key_id(&write.key);
                match sizes.get(&id) {
                    Some(bytes) => *bytes,
                    None => {
                        let item = ddb
                            .get_item()
                            .table_name(if write.table.is_empty() {
                                table
                            } else {
                                &write.table
                            })
                            .set_key(Some(write.key.clone()))
                            .consistent_read(true)
                            .send()
                            .await?
                            .item;
                        let bytes = item.as_ref().map_or(0, item_bytes);
                        sizes.insert(id, bytes);
                        bytes
                    }
                }
            }
        };
        units += transactional_write_units(bytes);
    }
    Ok(units)
}

/// A key as one string, to remember item sizes by.
fn key_id(key: &HashMap<String, AttributeValue>) -> String {
    let mut parts: Vec<String> = key
        .iter()
        .map(|(name, value)| match value {
            AttributeValue::S(s) | AttributeValue::N(s) => format!("{name}={s}"),
            other => format!("{name}={other:?}"),
        })
        .collect();
    parts.sort_unstable();
    parts.join("|")
}

fn round(x: f64) -> f64 {
    round_to(x, 3)
}

fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The human-readable summary.
#[must_use]
pub fn text(r: &CostBench) -> String {
    let mut out = format!(
        "{} contacts at {} calls a second, {} calls completed in {:.0} s ({:.2} dials each)\n\
         per call: {:.2} DynamoDB requests ({:.2} read units, {:.2} write units), {:.2} stream records,\n\
         {:.2} Lambda invocations ({:.1} billed ms, {:.6} GB-s), {:.2} events put on the bus, {:.2} SMA events\n\
         call items: {} bytes (median), {} at most\n",
        r.contacts,
        r.target_cps,
        r.completed,
        r.seconds,
        r.dials_per_call,
        r.ddb_requests_per_call,
        r.ddb_read_units_per_call,
        r.ddb_write_units_per_call,
        r.stream_records_per_call,
        r.lambda_invocations_per_call,
        r.lambda_billed_ms_per_call,
        r.lambda_gb_s_per_call,
        r.put_events_entries_per_call,
        r.chime_events_per_call,
        r.call_item_bytes_p50,
        r.call_item_bytes_max,
    );
    for (name, f) in &r.functions {
        out.push_str(&format!(
            "  {name:<7} {:>4} MB: {:.3} invocations (p50 {:.1} ms, p99 {:.1} ms), {:.2} billed ms, {:.2} DynamoDB requests ({:.2} RRU, {:.2} WRU)\n",
            f.memory_mb, f.invocations, f.p50_ms, f.p99_ms, f.billed_ms, f.ddb_requests, f.ddb_read_units, f.ddb_write_units
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_its_memory_in_the_infra_sizing() {
        for f in Function::ALL {
            assert!(memory_mb(f).is_ok_and(|m| m >= 128), "{f:?}");
        }
    }

    #[test]
    fn a_key_reads_the_same_whatever_the_order_of_its_attributes() {
        let a = HashMap::from([
            ("PK".to_owned(), AttributeValue::S("CALL#1".into())),
            ("SK".to_owned(), AttributeValue::S("CALL".into())),
        ]);
        assert_eq!(key_id(&a), "PK=CALL#1|SK=CALL");
    }
}
