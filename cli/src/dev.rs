//! `outdial dev`: the whole system in the foreground, until Ctrl-C or SIGTERM.
//!
//! It prints each endpoint on a line of its own (`api`, `lambda`, `chime`, `dynamodb`,
//! `events`: the local EventBridge bus, `console`: the operator's web page) and a
//! `curl` line that starts a campaign, writes them to `.outdial/dev.json` so that the other
//! commands find the stack, and at exit writes the simulator's report to
//! `.outdial/sim-report.json` (`outdial sim report` reads it, or asks the running stack).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use outdial_local::bus::RetrySettings;
use outdial_local::dynamodb::Storage;
use outdial_local::sim::{Callee, Callees, Faults, Report, SimConfig, parse_callees_file};
use outdial_stack::stack::{Database, Stack, StackConfig, WebhookConfig};

use crate::client::{DEV_STATE, DevState};

/// Where the simulator's report is written when the stack stops.
pub const REPORT: &str = ".outdial/sim-report.json";

/// How `outdial dev` runs the stack.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub port: u16,
    /// Keep DynamoDB Local's tables in this folder across runs (in memory otherwise).
    pub data: Option<PathBuf>,
    pub speed: f64,
    pub seed: u64,
    pub account_cps: f64,
    pub schedule_every: Duration,
    /// The simulator's faults (duplicated and delayed events, failed invocations, 429 and
    /// 5xx answers of the Create API), seeded by `seed`.
    pub faults: Faults,
    /// Callees chosen per number (`--callees FILE`); other numbers take the demo's mix.
    pub callees: BTreeMap<String, Callee>,
    /// Whether the law's calling hours hold calls (`--legal-hours`; docs/calling-hours.md).
    pub legal_hours: bool,
    /// Where outcome events are posted (`--webhook`, `--webhook-key`).
    pub webhook: Option<WebhookConfig>,
    /// Print each outcome event on stdout (`--events`).
    pub print_events: bool,
    /// Serve the console on this port of 127.0.0.1 (`--console-port`; 0: any free port).
    pub console: Option<u16>,
}

impl DevOptions {
    /// The demo's stack for a benchmark: its callees' mix at a hundredth of real time, the
    /// schedule every 10 s, dialing at `account_cps`; no faults, no calling hours, no webhook,
    /// a free port and DynamoDB Local in memory.
    #[must_use]
    pub fn bench(account_cps: f64) -> Self {
        Self {
            port: 0,
            data: None,
            speed: 0.01,
            seed: 1,
            account_cps,
            schedule_every: Duration::from_secs(10),
            faults: Faults::default(),
            callees: BTreeMap::new(),
            legal_hours: false,
            webhook: None,
            print_events: false,
            console: None,
        }
    }
}

/// The webhook of `--webhook URL` (and `--webhook-key KEY`), with an API destination's
/// retries.
///
/// # Errors
/// When the URL is not an absolute `http` or `https` URL.
pub fn webhook(url: &str, key: Option<&str>) -> anyhow::Result<WebhookConfig> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--webhook {url:?}"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.has_host(),
        "--webhook {url:?}: an http:// or https:// URL is needed"
    );
    Ok(WebhookConfig {
        url: url.to_owned(),
        key: key.map(str::to_owned),
        retry: RetrySettings::default(),
    })
}

/// Reads a callees file (`--callees`): E.164 numbers to personas (docs/simulator.md).
///
/// # Errors
/// When the file cannot be read or an entry cannot be used; the message names the file, the
/// number and the personas there are.
pub fn read_callees(path: &Path) -> anyhow::Result<BTreeMap<String, Callee>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the callees file {}", path.display()))?;
    parse_callees_file(&text).with_context(|| format!("the callees file {}", path.display()))
}

/// The stack configuration for `outdial dev` (and the demo).
#[must_use]
pub fn config(opts: &DevOptions) -> StackConfig {
    let storage = opts
        .data
        .as_ref()
        .map_or(Storage::InMemory, |d| Storage::Dir(d.clone()));
    StackConfig {
        database: Database::Own(storage),
        table: Some("outdial".to_owned()),
        sim: SimConfig {
            speed: opts.speed,
            seed: opts.seed,
            callees: Callees {
                by_number: opts.callees.clone(),
                ..Callees::demo_mix()
            },
            faults: opts.faults,
            ..SimConfig::default()
        },
        account_cps: opts.account_cps,
        schedule_every: opts.schedule_every,
        api_port: opts.port,
        api_token: std::env::var("OUTDIAL_API_TOKEN")
            .ok()
            .filter(|t| t.len() >= 16)
            .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4().simple())),
        report_path: Some(PathBuf::from(REPORT)),
        legal_hours: opts.legal_hours,
        webhook: opts.webhook.clone(),
        ..StackConfig::default()
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn stopped() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("listening for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Runs the stack until stopped; returns the simulator's report.
///
/// # Errors
/// When the stack cannot start.
pub async fn dev(opts: &DevOptions, out: &mut dyn Write) -> anyhow::Result<Report> {
    let started = Instant::now();
    let stack = Stack::start(config(opts)).await?;
    let e = stack.endpoints();
    writeln!(out, "api: {}", e.api)?;
    writeln!(out, "lambda: {}", e.lambda)?;
    writeln!(out, "chime: {}", e.chime)?;
    writeln!(out, "dynamodb: {}", e.dynamodb)?;
    writeln!(out, "events: {}", e.events)?;
    let console = match opts.console {
        Some(port) => {
            let client = crate::client::Client::local(&e.api, stack.api_token())?;
            let served = crate::console::serve(client, port).await?;
            writeln!(out, "console: {}", served.url())?;
            Some(served)
        }
        None => None,
    };
    writeln!(
        out,
        "curl -sS -X POST {}/campaigns -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -H 'Idempotency-Key: example-1' --data @examples/campaign.json",
        e.api,
        stack.api_token()
    )?;
    out.flush()?;
    let state = DevState {
        api: e.api.clone(),
        lambda: e.lambda,
        chime: e.chime,
        dynamodb: e.dynamodb,
        token: stack.api_token().to_owned(),
        table: stack.table().to_owned(),
    };
    state.write(&DevState::path())?;
    eprintln!(
        "outdial dev: started in {} ms; Ctrl-C stops it ({DEV_STATE} tells other commands where it is)",
        started.elapsed().as_millis()
    );
    let printer = opts.print_events.then(|| {
        let mut events = stack.bus().subscribe();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                println!("{event}");
            }
        })
    });
    stopped().await?;
    eprintln!("outdial dev: stopping");
    if let Some(printer) = printer {
        printer.abort();
    }
    if let Some(console) = console {
        console.task.abort();
    }
    if let Some(stats) = stack.webhook_stats() {
        eprintln!(
            "outdial dev: webhook took {} events in {} tries; {} given up",
            stats.delivered, stats.attempts, stats.dead
        );
    }
    let report = stack.stop().await?;
    let _ = std::fs::remove_file(DevState::path());
    eprintln!(
        "outdial dev: stopped; {} calls placed, {} double dials, {} violations; report in {REPORT}",
        report.placed_per_number.values().sum::<u32>(),
        report.double_dials,
        report.violations.len()
    );
    Ok(report)
}

/// `outdial sim report`: the running stack's simulator report, or the one the last run wrote.
///
/// # Errors
/// When neither a running stack nor a written report is found.
pub async fn sim_report(url: Option<&str>, file: Option<&str>) -> anyhow::Result<Report> {
    if let Some(path) = file {
        let raw = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        return serde_json::from_slice(&raw).with_context(|| format!("{path} is not a report"));
    }
    let live = url
        .map(str::to_owned)
        .or_else(|| DevState::read().map(|d| d.chime));
    if let Some(base) = live {
        let got = reqwest::get(format!("{}/_outdial/report", base.trim_end_matches('/'))).await;
        match got {
            Ok(answer) if answer.status().is_success() => {
                return answer
                    .json()
                    .await
                    .context("reading the simulator's report");
            }
            _ if url.is_some() => anyhow::bail!("no simulator answers at {base}"),
            _ => {}
        }
    }
    let raw = std::fs::read(REPORT).with_context(|| {
        format!("no running stack here and no {REPORT}: start one with `outdial dev`")
    })?;
    serde_json::from_slice(&raw).with_context(|| format!("{REPORT} is not a report"))
}

/// The report for a person: per-callee transcripts, violations, double dials, dial rate.
#[must_use]
pub fn describe(report: &Report) -> String {
    let placed: u32 = report.placed_per_number.values().sum();
    #[allow(clippy::cast_precision_loss)]
    let rate = if report.placing_span_s > 0.0 {
        f64::from(placed.saturating_sub(1)) / report.placing_span_s
    } else {
        0.0
    };
    let mut out = format!(
        "{placed} calls placed to {} numbers; {} double dials; {} violations; {:.1} calls/s (at most {} in any second); {} Create requests, {} throttled\n",
        report.placed_per_number.len(),
        report.double_dials,
        report.violations.len(),
        rate,
        report.max_in_any_second,
        report.create_requests,
        report.throttled
    );
    out.push_str(&format!(
        "placed per second: {:?}\n",
        report.placed_per_second
    ));
    let mut per_purpose: BTreeMap<&str, u32> = BTreeMap::new();
    for (purpose, n) in report.placed_per_number_purpose.values().flatten() {
        *per_purpose.entry(purpose.as_str()).or_insert(0) += n;
    }
    if !per_purpose.is_empty() {
        out.push_str(&format!("placed per purpose: {per_purpose:?}\n"));
    }
    if report.digits_received > 0 {
        out.push_str(&format!(
            "{} DIGITS_RECEIVED events (keys that matched a ReceiveDigits)\n",
            report.digits_received
        ));
    }
    for v in &report.violations {
        out.push_str(&format!(
            "violation: {} seq={}: {}\n",
            v.transaction_id, v.sequence, v.rule
        ));
    }
    for (number, n) in report.placed_per_number.iter().filter(|(_, n)| **n > 1) {
        out.push_str(&format!(
            "dialed {n} times: {}\n",
            outdial_core::ids::mask_raw(number)
        ));
    }
    for call in &report.calls {
        out.push_str(&format!(
            "\n{} {} ({:?}), {} invocations{}\n",
            call.transaction_id,
            outdial_core::ids::mask_raw(&call.to),
            call.callee,
            call.invocations,
            if call.ended { "" } else { ", still live" }
        ));
        for line in &call.transcript {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
