//! `outdial bench caps --calls N [--json]`: what the contact caps cost. The same campaign of
//! `N` calls to `N` numbers is dispatched three times, each on a fresh table of DynamoDB
//! Local, through the dispatcher, the PSTN simulator and the SMA handler:
//!
//! - without an account policy (no ledger is read or written);
//! - under a policy whose cap counts the campaign's purpose, each number never called
//!   before (its ledger is created by the claim);
//! - under the same policy, a second campaign over the same numbers (each ledger is read
//!   with one call in it and replaced, guarded by its version).
//!
//! The dispatcher's DynamoDB client is metered ([`outdial_local::meter`]): its requests by
//! operation and the read and write units DynamoDB Local reports, divided by the calls the
//! simulator saw placed. DynamoDB Local reports a flat figure for a transaction, so the write
//! units the caps add to the claim's transaction (the ledger's update) are DynamoDB's rule
//! applied to the ledger items as they stand after the second call. The SMA handler's work is
//! the same in every run and is not counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outdial_adapters::clock::SystemClock;
use outdial_adapters::item;
use outdial_adapters::store::DynamoStore;
use outdial_core::admin::ApiStore;
use outdial_core::ids::{CallId, E164};
use outdial_core::policy::{OnCap, Policy, Purpose};
use outdial_core::record::{Campaign, NewCall};
use outdial_core::time::Clock;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::meter::{Meter, Metered, item_bytes, transactional_write_units};
use outdial_local::sim::{Callee, Callees, SimConfig, Simulator};
use outdial_local::tables::{client, fresh_table};
use outdial_sma::{Settings as SmaSettings, SmaHandler};
use outdial_stack::InProcess;
use serde::Serialize;

/// The policy of the runs with caps: the FCC's limit on informational calls.
const POLICY: &str =
    r#"{"caps": [{"max_calls": 3, "per_hours": 720, "purposes": ["informational"]}]}"#;

/// Calls per second the runs dial at: the cost per call does not depend on it.
const CPS: u32 = 100;

/// What `outdial bench caps` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapsBench {
    pub calls: u32,
    pub without_policy: Cost,
    /// Under the policy, each number's first call (its ledger created).
    pub with_policy: Cost,
    /// Under the policy, each number's second call (its ledger read and replaced).
    pub with_policy_again: Cost,
    /// `with_policy` less `without_policy`, per placed call.
    pub extra_requests_per_call: f64,
    pub extra_read_units_per_call: f64,
    /// What the ledger's update adds to the claim's transaction, by DynamoDB's rule (two
    /// units per started kilobyte of a transactional write), from the ledger items' sizes
    /// after the second call: the only write the caps add.
    pub extra_write_units_per_call: f64,
    /// The largest ledger item after the second call, in bytes as DynamoDB counts them.
    pub ledger_item_bytes_max: usize,
    pub double_dials: u32,
}

/// The dispatcher's DynamoDB cost of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// Calls the simulator saw placed.
    pub placed: u32,
    pub requests_per_call: f64,
    /// Write units of the single-item writes (the dial's answer recorded), as DynamoDB
    /// Local reports them; the claim's transaction is counted in [`CapsBench`].
    pub write_units_per_call: f64,
    /// Read units, as DynamoDB Local reports them (the ledger read is a strongly
    /// consistent `GetItem`).
    pub read_units_per_call: f64,
    /// Requests per placed call, by operation.
    pub requests_by_operation: BTreeMap<String, f64>,
}

impl Cost {
    fn of(spent: &Metered, placed: u32) -> Self {
        let per = |x: f64| {
            if placed == 0 {
                0.0
            } else {
                round(x / f64::from(placed))
            }
        };
        #[allow(clippy::cast_precision_loss)]
        Self {
            placed,
            requests_per_call: per(spent.total_requests() as f64),
            write_units_per_call: per(spent.write_units),
            read_units_per_call: per(spent.read_units),
            requests_by_operation: spent
                .requests
                .iter()
                .map(|(op, n)| (op.clone(), per(*n as f64)))
                .collect(),
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

const SCRIPT: &str = r#"{"caller_name": "Riverside Clinic", "start": "bye",
    "steps": {"bye": {"say": "This is Riverside Clinic. Goodbye."}}}"#;

/// Runs the benchmark.
///
/// # Errors
/// When DynamoDB Local or the simulator cannot start, a store request fails, or a run does
/// not place every call.
pub async fn caps(calls: u32) -> anyhow::Result<CapsBench> {
    anyhow::ensure!((1..=20_000).contains(&calls), "--calls must be 1 to 20000");
    let endpoint = shared_endpoint()?;
    let ddb = client(&endpoint);
    let numbers: Vec<E164> = (0..calls)
        .map(|i| E164::parse(&format!("+1555{i:07}")))
        .collect::<Result<_, _>>()?;

    let (without, placed_0, _) = run(&ddb, &numbers, None, 1).await?;
    let policy: Policy = serde_json::from_str(POLICY)?;
    let (with, placed_1, _) = run(&ddb, &numbers, Some(&policy), 1).await?;
    let (again, placed_2, table) = run(&ddb, &numbers, Some(&policy), 2).await?;
    let mut ledger_units = 0.0;
    let mut ledger_item_bytes_max = 0;
    for number in &numbers {
        let item = ddb
            .get_item()
            .table_name(&table)
            .set_key(Some(item::key(item::ledger_pk(number), item::LEDGER_SK)))
            .consistent_read(true)
            .send()
            .await?
            .item
            .ok_or_else(|| anyhow::anyhow!("no ledger for {number} after two calls"))?;
        let bytes = item_bytes(&item);
        ledger_item_bytes_max = ledger_item_bytes_max.max(bytes);
        ledger_units += transactional_write_units(bytes);
    }
    let (without, with, again) = (
        Cost::of(&without, placed_0.placed),
        Cost::of(&with, placed_1.placed),
        Cost::of(&again, placed_2.placed),
    );
    Ok(CapsBench {
        calls,
        extra_requests_per_call: round(with.requests_per_call - without.requests_per_call),
        extra_write_units_per_call: round(ledger_units / f64::from(calls)),
        ledger_item_bytes_max,
        extra_read_units_per_call: round(with.read_units_per_call - without.read_units_per_call),
        double_dials: placed_0.double_dials + placed_1.double_dials + placed_2.double_dials,
        without_policy: without,
        with_policy: with,
        with_policy_again: again,
    })
}

struct Placed {
    placed: u32,
    double_dials: u32,
}

/// One run on a fresh table: `campaigns` campaigns over `numbers`, one after the other, under
/// `policy`; the dispatcher's cost of the last one, and the table.
async fn run(
    ddb: &aws_sdk_dynamodb::Client,
    numbers: &[E164],
    policy: Option<&Policy>,
    campaigns: u32,
) -> anyhow::Result<(Metered, Placed, String)> {
    let table = fresh_table(ddb, "bench-caps").await?;
    let store = DynamoStore::new(ddb.clone(), &table, 1);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if let Some(policy) = policy {
        ApiStore::put_policy(&store, policy, clock.now()).await?;
    }
    // Busy lines keep each call to two events: the runs measure dialing.
    let config = SimConfig {
        speed: 0.001,
        callees: Callees {
            by_number: BTreeMap::new(),
            mix: vec![(1, Callee::Busy)],
        },
        ..SimConfig::default()
    };
    let handler = Arc::new(SmaHandler::new(
        store.clone(),
        Arc::clone(&clock),
        SmaSettings::default(),
    ));
    let sim = Simulator::start(config, "sma-bench", Arc::new(InProcess(handler))).await?;
    let mut spent = Metered::default();
    for _ in 0..campaigns {
        sim.wait_idle(Duration::from_secs(30)).await;
        let calls = campaign(&store, numbers, clock.now()).await?;
        // A meter of its own for each campaign: the last one's is the run's.
        let meter = Meter::new();
        let metered = DynamoStore::new(meter.client(ddb), &table, 1);
        dispatch(metered, &sim, Arc::clone(&clock), calls).await?;
        spent = meter.spent();
    }
    sim.wait_idle(Duration::from_secs(30)).await;
    let report = sim.report();
    let placed = u32::try_from(numbers.len())? * campaigns;
    let seen: u32 = report.placed_per_number.values().sum();
    anyhow::ensure!(
        seen == placed,
        "{seen} calls placed of {placed}: the run is not comparable"
    );
    Ok((
        spent,
        Placed {
            placed: u32::try_from(numbers.len())?,
            double_dials: report.double_dials,
        },
        table,
    ))
}

/// Writes a campaign of one call to each of `numbers`, all due now; its call count.
async fn campaign(
    store: &DynamoStore,
    numbers: &[E164],
    now: outdial_core::time::Timestamp,
) -> anyhow::Result<u32> {
    let total = u32::try_from(numbers.len())?;
    // No stream handler gives slots back here, so the concurrency cap must not bind.
    let campaign = Campaign {
        purpose: Purpose::Informational,
        on_cap: OnCap::Cancel,
        created_at: now,
        contacts: u64::from(total),
        ..crate::bench::bench_campaign("bench caps", SCRIPT, f64::from(CPS), total)?
    };
    let calls: Vec<NewCall> = numbers
        .iter()
        .map(|to| NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: CallId::random(),
            to: to.clone(),
            vars: BTreeMap::new(),
            due_at: now,
        })
        .collect();
    outdial_core::admin::ApiStore::create_campaign(store, &campaign, &calls).await?;
    Ok(total)
}

/// Dispatches until `total` calls are dialed, as `bench dial` does.
async fn dispatch(
    store: DynamoStore,
    sim: &Simulator,
    clock: Arc<dyn Clock>,
    total: u32,
) -> anyhow::Result<()> {
    let limit = Duration::from_secs(u64::from(total / CPS) * 3 + 60);
    let stats =
        super::dispatch_until_dialed(store, sim, clock, f64::from(CPS), total, limit).await?;
    anyhow::ensure!(
        stats.dialed == total,
        "{} of {total} calls dialed",
        stats.dialed
    );
    Ok(())
}
