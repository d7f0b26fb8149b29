//! `outdial bench dial --cps N --seconds S [--pool P] [--json]`: dials a campaign of `N × S`
//! calls through the dispatcher, the PSTN simulator, the SMA handler and DynamoDB Local, and
//! reports the dial rate the simulator measured: achieved against the target, the most calls
//! in any one-second window, and double dials; and the requests the dispatcher's DynamoDB
//! client made per placed call. With `--pool P`, the campaign dials from a caller-ID pool of
//! `P` numbers without caps, so each dial also reads the pool and writes the chosen number's
//! usage in its claim.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outdial_adapters::clock::SystemClock;
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_core::admin::ApiStore;
use outdial_core::ids::{CallId, CampaignId, E164};
use outdial_core::numbers::{CallerNumber, Health, NumberCaps};
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing, PoolRef};
use outdial_core::retry::{RetryPolicy, RetrySpec};
use outdial_core::time::Clock;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::meter::Meter;
use outdial_local::sim::{Callee, Callees, SimConfig, Simulator, voice_client};
use outdial_local::tables::{client, fresh_table};
use outdial_sma::{Settings as SmaSettings, SmaHandler};
use outdial_stack::InProcess;
use outdial_timers::{Dispatcher, Settings};
use serde::Serialize;

pub mod amd;
pub mod caps;
pub mod cost;
pub mod cpu;
pub mod export;
pub mod soak;
pub use amd::amd;
pub use caps::caps;
pub use cost::cost;
pub use cpu::cpu;
pub use export::export;
pub use soak::soak;

/// What `outdial bench dial` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialBench {
    pub target_cps: f64,
    pub achieved_cps: f64,
    pub max_in_one_second: u32,
    pub calls: u32,
    pub double_dials: u32,
    /// Dials that went out late (the machine was too busy to send them on their slot) and
    /// were held back so that no second at the API held more than the rate.
    pub held: u32,
    /// Requests the dispatcher's DynamoDB client made (retries included), per placed call.
    pub ddb_requests_per_call: f64,
    /// The caller-ID pool's size (`--pool`), when the campaign dialed from one.
    pub pool: Option<u32>,
}

/// The pool `--pool` registers its numbers in.
const BENCH_POOL: &str = "bench";

const SCRIPT: &str = r#"{"caller_name": "Riverside Clinic", "start": "bye",
    "steps": {"bye": {"say": "This is Riverside Clinic. Goodbye."}}}"#;

/// Runs the dial benchmark; with `pool`, from a caller-ID pool of that many numbers.
///
/// # Errors
/// When DynamoDB Local or the simulator cannot start, or the store refuses the campaign or a
/// number.
pub async fn dial(cps: u32, seconds: u32, pool: Option<u32>) -> anyhow::Result<DialBench> {
    anyhow::ensure!((1..=1000).contains(&cps), "--cps must be 1 to 1000");
    anyhow::ensure!((1..=600).contains(&seconds), "--seconds must be 1 to 600");
    anyhow::ensure!(
        pool.is_none_or(|n| (1..=100).contains(&n)),
        "--pool must be 1 to 100"
    );
    let endpoint = shared_endpoint()?;
    let ddb = client(&endpoint);
    let table = fresh_table(&ddb, "bench-dial").await?;
    let store = DynamoStore::new(ddb.clone(), &table, 1);
    // Only the dispatcher's requests are counted: the SMA handler's are the same whatever the
    // campaign dials from.
    let meter = Meter::new();
    let dispatcher_store = DynamoStore::new(meter.client(&ddb), &table, 1);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let total = cps * seconds;
    // Numbers without caps: the pool costs its reads and usage writes, and holds no call.
    for i in 0..pool.unwrap_or(0) {
        let number = CallerNumber {
            e164: E164::parse(&format!("+1212555{i:04}"))?,
            pool: BENCH_POOL.into(),
            caps: NumberCaps::default(),
            display_region: None,
            health: Health::Healthy,
        };
        ApiStore::put_number(&store, &number).await?;
    }
    // No stream handler runs here to give slots back, so the cap must not bind: the
    // benchmark measures pacing.
    let campaign = Campaign {
        caller_pool: pool.map(|_| PoolRef {
            pool: BENCH_POOL.into(),
            local_presence: false,
        }),
        ..bench_campaign("bench dial", SCRIPT, f64::from(cps), total)?
    };
    let calls = new_calls(0, total)?;
    store.create_campaign(&campaign, &calls).await?;

    // Busy lines keep each call to two events, so the benchmark measures dialing.
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
    let limit = Duration::from_secs(u64::from(seconds) * 3 + 30);
    let stats =
        dispatch_until_dialed(dispatcher_store, &sim, clock, f64::from(cps), total, limit).await?;
    sim.wait_idle(Duration::from_secs(30)).await;
    let report = sim.report();
    let placed: u32 = report.placed_per_number.values().sum();
    #[allow(clippy::cast_precision_loss)]
    let achieved = if report.placing_span_s > 0.0 {
        f64::from(placed.saturating_sub(1)) / report.placing_span_s
    } else {
        0.0
    };
    #[allow(clippy::cast_precision_loss)]
    let requests = meter.spent().total_requests() as f64;
    let ddb_requests_per_call = if placed == 0 {
        0.0
    } else {
        (requests / f64::from(placed) * 1000.0).round() / 1000.0
    };
    Ok(DialBench {
        target_cps: f64::from(cps),
        achieved_cps: (achieved * 100.0).round() / 100.0,
        max_in_one_second: report.max_in_any_second,
        calls: placed,
        double_dials: report.double_dials,
        held: stats.held,
        ddb_requests_per_call,
        pool,
    })
}

/// Runs a dispatcher over `store` and the simulator at `cps` until it has dialed `total`
/// calls (or `limit` passes), with its dials settled; its stats. The dispatcher gets a runtime
/// and a thread of its own, as it has a Lambda of its own in AWS: here the simulator and the
/// SMA handler would otherwise share its runtime's threads and make its dials late.
pub(crate) async fn dispatch_until_dialed(
    store: DynamoStore,
    sim: &Simulator,
    clock: Arc<dyn Clock>,
    cps: f64,
    total: u32,
    limit: Duration,
) -> anyhow::Result<outdial_timers::Stats> {
    let settings = Settings {
        account_cps: cps,
        batch: 500,
        // The fictional 555 numbers have no zone for the law's hours to be read in.
        legal_hours: false,
        ..Settings::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dispatcher")
        .enable_all()
        .build()?;
    let endpoint = sim.endpoint();
    let run = runtime.spawn(async move {
        let dialer = ChimeDialer::new(voice_client(&endpoint), "sma-bench");
        let dispatcher = Dispatcher::new(store, dialer, clock, settings);
        let started = Instant::now();
        while dispatcher.stats().dialed < total && started.elapsed() < limit {
            let tick = dispatcher.tick(0).await?;
            let pause = tick.paced_for.unwrap_or(if tick.did_work() {
                Duration::ZERO
            } else {
                Duration::from_millis(5)
            });
            tokio::time::sleep(pause).await;
        }
        dispatcher.settle().await;
        Ok::<_, outdial_core::ports::StoreError>(dispatcher.stats())
    });
    let stats = run.await??;
    runtime.shutdown_background();
    Ok(stats)
}

/// What `outdial bench events` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsBench {
    /// Seconds from the start of the local stack to its API answering.
    pub stack_start_s: f64,
    pub calls: u32,
    /// SMA events the handler answered (each through the local Lambda Invoke API and one
    /// DynamoDB request).
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub handler_p50_ms: f64,
    pub handler_p99_ms: f64,
    pub violations: usize,
    pub double_dials: u32,
}

/// A script of three prompts and a gather: about a dozen events per answered call.
const EVENTS_SCRIPT: &str = r#"{"caller_name": "Riverside Clinic", "start": "a", "steps": {
    "a": {"say": "This is Riverside Clinic.", "next": "b"},
    "b": {"pause_ms": 200, "next": "c"},
    "c": {"gather": {"say": "Press 1."}, "branches": {"1": "d"}, "no_input": "d"},
    "d": {"say": "Goodbye.", "outcome": "done"}}}"#;

/// `outdial bench events --calls N [--json]`: starts the local stack, places `N` calls at once
/// (bypassing the dispatcher's pacing) to callees who answer and press 1, and measures how
/// many SMA events a second the stack sustains until every call has ended.
///
/// # Errors
/// When the stack cannot start or a call cannot be written.
pub async fn events(calls: u32) -> anyhow::Result<EventsBench> {
    use futures::StreamExt;
    use outdial_stack::stack::{SMA, Stack, StackConfig};
    anyhow::ensure!((1..=20_000).contains(&calls), "--calls must be 1 to 20000");
    let begun = Instant::now();
    let stack = Stack::start(StackConfig {
        sim: SimConfig {
            speed: 0.002,
            callees: Callees {
                by_number: BTreeMap::new(),
                mix: vec![(
                    1,
                    Callee::Answer {
                        after_ms: 1_000,
                        digits: Some("1".to_owned()),
                    },
                )],
            },
            ..SimConfig::default()
        },
        // The schedule stays out of the way: the calls are placed here.
        schedule_every: Duration::from_secs(3600),
        ..StackConfig::default()
    })
    .await?;
    let stack_start_s = begun.elapsed().as_secs_f64();
    let campaign = Campaign {
        status: CampaignStatus::Paused,
        retry: RetryPolicy::default(),
        ..bench_campaign("bench events", EVENTS_SCRIPT, 1.0, calls)?
    };
    let new = new_calls(0, calls)?;
    let store = stack.store().clone();
    store.create_campaign(&campaign, &new).await?;
    let dialer = ChimeDialer::new(voice_client(&stack.endpoints().chime), "sma-local");
    let started = Instant::now();
    let placed: Vec<anyhow::Result<()>> = futures::stream::iter(new)
        .map(|call| {
            let (store, dialer, from) = (store.clone(), dialer.clone(), campaign.from.clone());
            async move { claim_and_place(&store, &dialer, &from, &call.id).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    placed.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    anyhow::ensure!(
        stack.simulator().wait_idle(Duration::from_secs(600)).await,
        "the calls did not end within ten minutes"
    );
    let seconds = started.elapsed().as_secs_f64();
    let latency = stack.functions().latency(SMA);
    let report = stack.simulator().report();
    stack.stop().await?;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    #[allow(clippy::cast_precision_loss)]
    let per_s = latency.invocations as f64 / seconds;
    Ok(EventsBench {
        stack_start_s: round(stack_start_s),
        calls,
        events: latency.invocations,
        seconds: round(seconds),
        events_per_s: round(per_s),
        handler_p50_ms: round(latency.p50_ms),
        handler_p99_ms: round(latency.p99_ms),
        violations: report.violations.len(),
        double_dials: report.double_dials,
    })
}

/// Claims the waiting call `id` as the dispatcher would (its attempt, a minute's lease) and
/// places it at once with `dialer`, bypassing the pacer.
pub(crate) async fn claim_and_place(
    store: &DynamoStore,
    dialer: &ChimeDialer,
    from: &E164,
    id: &CallId,
) -> anyhow::Result<()> {
    use outdial_core::ports::{Dialer, DispatchStore};
    let waiting = store.call(id).await?;
    let now = SystemClock.now();
    let claimed = store
        .claim(
            &waiting,
            now,
            now.plus(Duration::from_secs(60)),
            u32::MAX,
            &outdial_core::ports::ClaimWrites::default(),
        )
        .await?;
    let arguments = outdial_core::messages::DialArguments {
        call_id: claimed.id.clone(),
        campaign_id: claimed.campaign_id.clone(),
        attempt: claimed.attempt,
        vars: claimed.vars.clone(),
    }
    .encode();
    dialer
        .place(from, &claimed.to, arguments)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A benchmark's active campaign from the bench's number: one attempt a contact, `script`, paced
/// at `cps` under a concurrency cap of `max_concurrent` (set so it does not bind where no
/// stream handler gives slots back).
///
/// # Errors
/// When `script` is not a valid script.
pub(crate) fn bench_campaign(
    name: &str,
    script: &str,
    cps: f64,
    max_concurrent: u32,
) -> anyhow::Result<Campaign> {
    Ok(Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        name: name.into(),
        from: E164::parse("+15555550199")?,
        status: CampaignStatus::Active,
        retry: RetryPolicy::new(RetrySpec {
            max_attempts: 1,
            busy_after_s: 60,
            no_answer_after_s: 60,
            failed_after_s: 60,
            declined_after_s: None,
        })?,
        pacing: Pacing {
            calls_per_second: cps,
            max_concurrent,
        },
        script: serde_json::from_str(script)?,
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: SystemClock.now(),
        contacts: 0,
    })
}

/// `count` calls due now, to the fictional numbers `+1555` followed by `first`, `first + 1`, …
/// as seven digits.
///
/// # Errors
/// When a number would need more than seven digits.
pub(crate) fn new_calls(first: u64, count: u32) -> anyhow::Result<Vec<NewCall>> {
    let now = SystemClock.now();
    (first..first + u64::from(count))
        .map(|i| {
            anyhow::ensure!(i < 10_000_000, "bench numbers run out at +15559999999");
            Ok(NewCall {
                consent: None,
                reference: None,
                tz: None,
                id: CallId::random(),
                to: E164::parse(&format!("+1555{i:07}"))?,
                vars: BTreeMap::new(),
                due_at: now,
            })
        })
        .collect()
}

/// Starts `spec` with the demo's `contacts` through the API, as `outdial campaign start` does
/// from files (written to a temporary folder and removed after).
///
/// # Errors
/// When the files cannot be written or the API refuses the campaign.
pub(crate) async fn start_campaign(
    client: &crate::client::Client,
    spec: &serde_json::Value,
    contacts: u32,
) -> anyhow::Result<crate::campaign::Started> {
    use anyhow::Context;
    let dir = std::env::temp_dir().join(format!("outdial-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (spec_path, csv_path) = (dir.join("campaign.json"), dir.join("contacts.csv"));
    let written = std::fs::write(&spec_path, spec.to_string())
        .and_then(|()| std::fs::write(&csv_path, crate::demo::csv(contacts)));
    let started = match written {
        Ok(()) => crate::campaign::start(client, &spec_path, &csv_path, None).await,
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    started
}
