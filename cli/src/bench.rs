//! `outdial bench dial --cps N --seconds S [--json]`: dials a campaign of `N × S` calls
//! through the dispatcher, the PSTN simulator, the SMA handler and DynamoDB Local, and reports
//! the dial rate the simulator measured: achieved against the target, the most calls in any
//! one-second window, and double dials.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outdial_adapters::clock::SystemClock;
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_core::ids::{CallId, CampaignId, E164};
use outdial_core::ports::CallStore;
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::{RetryPolicy, RetrySpec};
use outdial_core::time::Clock;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::sim::{Callee, Callees, SimConfig, Simulator, voice_client};
use outdial_local::tables::{client, fresh_table};
use outdial_sma::{Settings as SmaSettings, SmaHandler};
use outdial_tests::InProcess;
use outdial_timers::{Dispatcher, Settings};
use serde::Serialize;

/// What `outdial bench dial` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialBench {
    pub target_cps: f64,
    pub achieved_cps: f64,
    pub max_in_one_second: u32,
    pub calls: u32,
    pub double_dials: u32,
}

const SCRIPT: &str = r#"{"start": "bye", "steps": {"bye": {"say": "Goodbye."}}}"#;

/// Runs the dial benchmark.
///
/// # Errors
/// When DynamoDB Local or the simulator cannot start, or the store refuses the campaign.
pub async fn dial(cps: u32, seconds: u32) -> anyhow::Result<DialBench> {
    anyhow::ensure!((1..=1000).contains(&cps), "--cps must be 1 to 1000");
    anyhow::ensure!((1..=600).contains(&seconds), "--seconds must be 1 to 600");
    let endpoint = shared_endpoint()?;
    let ddb = client(&endpoint);
    let store = DynamoStore::new(ddb.clone(), fresh_table(&ddb, "bench-dial").await?, 1);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let campaign = Campaign {
        id: CampaignId::random(),
        name: "bench dial".into(),
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
            calls_per_second: f64::from(cps),
            max_concurrent: cps * 10,
        },
        script: serde_json::from_str(SCRIPT)?,
        limits: Limits::default(),
        window: None,
        created_at: clock.now(),
        contacts: 0,
    };
    let total = cps * seconds;
    let calls: Vec<NewCall> = (0..total)
        .map(|i| {
            Ok(NewCall {
                tz: None,
                id: CallId::random(),
                to: E164::parse(&format!("+1555{i:07}"))?,
                vars: BTreeMap::new(),
                due_at: clock.now(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
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
    let settings = Settings {
        account_cps: f64::from(cps),
        batch: 500,
        ..Settings::default()
    };
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-bench");
    let dispatcher = Dispatcher::new(store, dialer, clock, settings);

    let started = Instant::now();
    let limit = Duration::from_secs(u64::from(seconds) * 3 + 30);
    let mut dialed = 0;
    while dialed < total && started.elapsed() < limit {
        let tick = dispatcher.tick(0).await?;
        dialed += tick.dialed;
        let pause = tick.paced_for.unwrap_or(if tick.did_work() {
            Duration::ZERO
        } else {
            Duration::from_millis(5)
        });
        tokio::time::sleep(pause).await;
    }
    sim.wait_idle(Duration::from_secs(30)).await;
    let report = sim.report();
    let placed: u32 = report.placed_per_number.values().sum();
    #[allow(clippy::cast_precision_loss)]
    let achieved = if report.placing_span_s > 0.0 {
        f64::from(placed.saturating_sub(1)) / report.placing_span_s
    } else {
        0.0
    };
    Ok(DialBench {
        target_cps: f64::from(cps),
        achieved_cps: (achieved * 100.0).round() / 100.0,
        max_in_one_second: report.max_in_any_second,
        calls: placed,
        double_dials: report.double_dials,
    })
}
