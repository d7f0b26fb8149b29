//! `outdial bench chaos [--contacts N] [--seeds 1,2,3] [--cases a,b] [--json]`: a fault
//! matrix through the whole local stack.
//!
//! Each case runs a small campaign (posted through the local HTTP API, as the demo posts it)
//! on a stack of its own, with one fault: each of the simulator's six at 30% (duplicated
//! events, delayed events, failed invocations, 429 throttles, Create 500 before placing,
//! Create 500 after placing), all six together, or DynamoDB Local stopped (`SIGSTOP`) for
//! 10 s or 30 s mid-campaign, or killed (`SIGKILL`) mid-campaign and restarted on the same
//! port and folder. Each case runs once per seed, until every contact is terminal (or a cap
//! passes), and yields a row: contacts, terminal, double dials (the simulator's count),
//! `LOST` records by `last_error`, those the simulator cannot confirm were unknowable to
//! outdial (`lost_unconfirmed`, judged by `outdial_local::sim::knowable` against the
//! database's outages), contract violations, whether the streamed counters equal a recount
//! of the records, and the time it took.
//!
//! A row passes when every contact is terminal, no attempt was dialed twice, the counters
//! equal the records, and every `LOST` record is confirmed unknowable. The command exits
//! non-zero when a row fails.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use outdial_local::dynamodb::{DynamoDbLocal, Storage};
use outdial_local::sim::knowable::Outage;
use outdial_local::sim::{Callees, Faults, SimConfig};
use outdial_local::streams::PollerSettings;
use outdial_stack::stack::{Database, Stack, StackConfig, Watchdogs};
use serde::Serialize;
use serde_json::{Value, json};

use crate::campaign;
use crate::client::Client;

mod records;
use records::{
    brief, double_dials, is_terminal, judge_losses, recount, streamed, terminal, transcripts,
};

/// One fault of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Case {
    /// SMA events delivered a second time, later.
    Duplicate,
    /// SMA events held back before delivery.
    Delay,
    /// Failed invocations of the SMA function (half before the handler ran, half after).
    InvokeError,
    /// `429 ThrottledClientException` from the Create API.
    Throttle,
    /// `500` from the Create API without placing the call.
    #[value(name = "create-500")]
    Create500,
    /// `500` from the Create API for a call it placed.
    #[value(name = "create-500-placed")]
    Create500Placed,
    /// The six faults above, all at once.
    AllFaults,
    /// DynamoDB Local stopped for 10 s mid-campaign, then continued.
    #[value(name = "db-pause-10s")]
    DbPause10s,
    /// DynamoDB Local stopped for 30 s mid-campaign, then continued.
    #[value(name = "db-pause-30s")]
    DbPause30s,
    /// DynamoDB Local killed mid-campaign, and restarted on its port and folder.
    DbKillRestart,
}

impl Case {
    /// Every case, in the order the matrix runs them.
    pub const ALL: [Self; 10] = [
        Self::Duplicate,
        Self::Delay,
        Self::InvokeError,
        Self::Throttle,
        Self::Create500,
        Self::Create500Placed,
        Self::AllFaults,
        Self::DbPause10s,
        Self::DbPause30s,
        Self::DbKillRestart,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Delay => "delay",
            Self::InvokeError => "invoke-error",
            Self::Throttle => "throttle",
            Self::Create500 => "create-500",
            Self::Create500Placed => "create-500-placed",
            Self::AllFaults => "all-faults",
            Self::DbPause10s => "db-pause-10s",
            Self::DbPause30s => "db-pause-30s",
            Self::DbKillRestart => "db-kill-restart",
        }
    }

    /// The simulator's faults in this case.
    #[must_use]
    pub fn faults(self) -> Faults {
        let none = Faults {
            delay_ms: DELAY_MS,
            ..Faults::default()
        };
        match self {
            Self::Duplicate => Faults {
                duplicate: RATE,
                ..none
            },
            Self::Delay => Faults {
                delay: RATE,
                ..none
            },
            Self::InvokeError => Faults {
                invoke_error: RATE,
                ..none
            },
            Self::Throttle => Faults {
                throttle: RATE,
                ..none
            },
            Self::Create500 => Faults {
                create_error: RATE,
                ..none
            },
            Self::Create500Placed => Faults {
                create_error_after_placed: RATE,
                ..none
            },
            Self::AllFaults => Faults {
                duplicate: RATE,
                delay: RATE,
                delay_ms: DELAY_MS,
                invoke_error: RATE,
                throttle: RATE,
                create_error: RATE,
                create_error_after_placed: RATE,
            },
            Self::DbPause10s | Self::DbPause30s | Self::DbKillRestart => none,
        }
    }

    /// What is done to the database mid-campaign.
    const fn database(self) -> Option<DbFault> {
        match self {
            Self::DbPause10s => Some(DbFault::Pause(Duration::from_secs(10))),
            Self::DbPause30s => Some(DbFault::Pause(Duration::from_secs(30))),
            Self::DbKillRestart => Some(DbFault::KillRestart(KILLED_FOR)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum DbFault {
    /// `SIGSTOP` for this long, then `SIGCONT`.
    Pause(Duration),
    /// `SIGKILL`, down for this long, then started again on the same port and folder.
    KillRestart(Duration),
}

/// Each simulator fault's rate.
const RATE: f64 = 0.3;
/// How long a delayed or duplicated event is held back, in simulated milliseconds (half a
/// second at the simulator's speed: later than the rest of a short call).
const DELAY_MS: u64 = 50_000;
/// Real seconds per simulated second of a call.
const SPEED: f64 = 0.01;
/// How long a killed DynamoDB Local stays down before it is started again.
const KILLED_FOR: Duration = Duration::from_secs(5);
/// The longest a run may take from its POST to every contact terminal.
const CAP: Duration = Duration::from_secs(600);
/// A database fault starts once this share of the contacts has been dialed (or after
/// [`MID_AT_LATEST`]).
const MID_SHARE: f64 = 1.0 / 3.0;
const MID_AT_LATEST: Duration = Duration::from_secs(20);

/// How `outdial bench chaos` runs.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub contacts: u32,
    pub seeds: Vec<u64>,
    /// The cases to run; empty runs them all.
    pub cases: Vec<Case>,
}

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub case: &'static str,
    pub seed: u64,
    /// Contacts the API accepted.
    pub contacts: u64,
    pub terminal: u64,
    /// The simulator's count of attempts placed more than once.
    pub double_dials: u32,
    /// Records with status `LOST`.
    pub lost: u64,
    /// `LOST` records by their `last_error`.
    pub lost_reasons: BTreeMap<String, u64>,
    /// `LOST` records the simulator confirms were unknowable, by why.
    pub lost_confirmed: BTreeMap<String, u64>,
    /// `LOST` records the simulator says outdial could have known: must be 0.
    pub lost_unconfirmed: u64,
    /// The simulator's contract violations.
    pub violations: usize,
    /// The streamed campaign counters equal a recount of the records.
    pub counters_equal: bool,
    /// Calls per status, recounted from the records.
    pub by_status: BTreeMap<String, u64>,
    /// Calls per status as the stream handler counted them.
    pub counters: BTreeMap<String, i64>,
    /// Stream records the local event source mapping gave up on.
    pub stream_discarded: u64,
    /// The database's outages, on the simulator's time line (ms from its start).
    pub outages: Vec<Outage>,
    /// Seconds from the POST to every contact terminal (or the cap).
    pub elapsed_s: f64,
    /// Seconds for the whole run: the stack's start, the campaign, the checks, the stop.
    pub wall_s: f64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Evidence for what failed: unconfirmed losses with their transcripts, double dials,
    /// calls left non-terminal, violations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Value>,
}

impl Row {
    fn failed(case: Case, seed: u64, error: &anyhow::Error, wall_s: f64) -> Self {
        Self {
            case: case.as_str(),
            seed,
            contacts: 0,
            terminal: 0,
            double_dials: 0,
            lost: 0,
            lost_reasons: BTreeMap::new(),
            lost_confirmed: BTreeMap::new(),
            lost_unconfirmed: 0,
            violations: 0,
            counters_equal: false,
            by_status: BTreeMap::new(),
            counters: BTreeMap::new(),
            stream_discarded: 0,
            outages: Vec::new(),
            elapsed_s: 0.0,
            wall_s,
            ok: false,
            error: Some(format!("{error:#}")),
            evidence: Vec::new(),
        }
    }

    /// Whether the row holds what outdial promises under this fault.
    #[must_use]
    pub fn passes(&self) -> bool {
        self.error.is_none()
            && self.contacts > 0
            && self.terminal == self.contacts
            && self.double_dials == 0
            && self.counters_equal
            && self.lost_unconfirmed == 0
    }
}

/// The last line of `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub failed: usize,
    pub ok: bool,
    /// Seconds per case, summed over its seeds (whole runs).
    pub seconds_per_case: BTreeMap<&'static str, f64>,
    pub wall_s: f64,
}

/// Runs the matrix, printing each row as it finishes (a JSON line each with `json`, else a
/// table), then the summary.
///
/// # Errors
/// When the options are out of range or the output cannot be written; a run that fails is
/// a failed row, not an error.
pub async fn chaos(
    opts: &ChaosOptions,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        (1..=10_000).contains(&opts.contacts),
        "--contacts must be 1 to 10000"
    );
    anyhow::ensure!(
        !opts.seeds.is_empty(),
        "--seeds must name at least one seed"
    );
    let cases: Vec<Case> = if opts.cases.is_empty() {
        Case::ALL.to_vec()
    } else {
        opts.cases.clone()
    };
    let begun = Instant::now();
    if !json {
        writeln!(out, "{}", header())?;
        out.flush()?;
    }
    let mut rows = Vec::new();
    let mut seconds_per_case: BTreeMap<&'static str, f64> = BTreeMap::new();
    for case in &cases {
        for seed in &opts.seeds {
            let started = Instant::now();
            let row = match run(*case, *seed, opts.contacts).await {
                Ok(row) => row,
                Err(e) => Row::failed(*case, *seed, &e, started.elapsed().as_secs_f64()),
            };
            *seconds_per_case.entry(case.as_str()).or_insert(0.0) += row.wall_s;
            if json {
                writeln!(out, "{}", serde_json::to_string(&row)?)?;
            } else {
                writeln!(out, "{}", line(&row))?;
            }
            out.flush()?;
            rows.push(row);
        }
    }
    let failed = rows.iter().filter(|r| !r.passes()).count();
    let summary = Summary {
        rows: rows.len(),
        failed,
        ok: failed == 0,
        seconds_per_case: seconds_per_case
            .into_iter()
            .map(|(k, v)| (k, round(v, 1)))
            .collect(),
        wall_s: round(begun.elapsed().as_secs_f64(), 1),
    };
    if json {
        writeln!(out, "{}", json!({"summary": summary}))?;
    } else {
        for row in rows.iter().filter(|r| !r.passes()) {
            writeln!(out, "\n{} seed {}: FAILED", row.case, row.seed)?;
            if let Some(e) = &row.error {
                writeln!(out, "  error: {e}")?;
            }
            for e in &row.evidence {
                writeln!(out, "  {e}")?;
            }
        }
        writeln!(
            out,
            "\n{} rows, {} failed, {:.0} s",
            summary.rows, summary.failed, summary.wall_s
        )?;
    }
    Ok(summary)
}

fn header() -> String {
    format!(
        "{:<18} {:>4} {:>8} {:>8} {:>6} {:>5} {:>11} {:>5} {:>8} {:>9} {:>7}  lost by reason",
        "case",
        "seed",
        "contacts",
        "terminal",
        "double",
        "lost",
        "unconfirmed",
        "viol",
        "counters",
        "elapsed_s",
        "ok"
    )
}

fn line(r: &Row) -> String {
    let reasons: Vec<String> = r
        .lost_reasons
        .iter()
        .map(|(k, n)| format!("{} {n}", k.split(':').next().unwrap_or(k)))
        .collect();
    format!(
        "{:<18} {:>4} {:>8} {:>8} {:>6} {:>5} {:>11} {:>5} {:>8} {:>9.1} {:>7}  {}",
        r.case,
        r.seed,
        r.contacts,
        r.terminal,
        r.double_dials,
        r.lost,
        r.lost_unconfirmed,
        r.violations,
        if r.counters_equal { "equal" } else { "DIFFER" },
        r.elapsed_s,
        if r.passes() { "ok" } else { "FAILED" },
        if r.error.is_some() {
            "error (see below)".to_owned()
        } else {
            reasons.join(", ")
        }
    )
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The campaign: quick to place, short to talk, retried within seconds.
fn spec(contacts: u32) -> Value {
    let cps = (f64::from(contacts) / 4.0).clamp(2.0, 20.0);
    json!({
        "name": "chaos",
        "from": "+15555550199",
        "default_region": "US",
        "pacing": {"calls_per_second": cps, "max_concurrent": 60},
        "retry": {"max_attempts": 3, "busy_after_s": 2, "no_answer_after_s": 2, "failed_after_s": 2},
        "limits": {"ring_timeout_s": 10, "max_call_s": 20},
        "script": {
            "caller_name": "Riverside Clinic",
            "start": "menu",
            "steps": {
                "menu": {"gather": {"say": "This is Riverside Clinic about your appointment. Press 1 to confirm, 2 to cancel.", "timeout_ms": 3000},
                         "branches": {"1": "confirm", "2": "decline"}, "no_input": "bye"},
                "confirm": {"say": "Thanks.", "outcome": "confirmed"},
                "decline": {"say": "Cancelled.", "outcome": "declined"},
                "bye": {"say": "Goodbye.", "outcome": "no_input"}
            }
        }
    })
}

fn csv(contacts: u32) -> String {
    let mut out = String::from("phone,name\n");
    for i in 0..contacts {
        out.push_str(&format!(
            "(555) {:03}-{:04},Contact {i}\n",
            300 + i / 10_000,
            i % 10_000
        ));
    }
    out
}

/// The stack of one run: its own DynamoDB Local (in a fresh folder when it is to be killed
/// and restarted), the simulator with the case's faults, and watchdogs that fit calls played
/// at a hundred times their speed.
fn stack_config(case: Case, seed: u64, dir: Option<&std::path::Path>) -> StackConfig {
    StackConfig {
        database: Database::Own(dir.map_or(Storage::InMemory, |d| Storage::Dir(d.to_owned()))),
        sim: SimConfig {
            speed: SPEED,
            seed,
            faults: case.faults(),
            callees: Callees::demo_mix(),
            ..SimConfig::default()
        },
        account_cps: 50.0,
        schedule_every: Duration::from_secs(10),
        watchdogs: Watchdogs {
            first_event_within: Duration::from_secs(10),
            recheck_after: Duration::from_secs(5),
        },
        // The deployed event source mapping's retries (infra: `retryAttempts: 10`).
        stream: PollerSettings {
            max_retries: 10,
            ..PollerSettings::default()
        },
        ..StackConfig::default()
    }
}

/// One case with one seed.
async fn run(case: Case, seed: u64, contacts: u32) -> anyhow::Result<Row> {
    let begun = Instant::now();
    let dir = matches!(case.database(), Some(DbFault::KillRestart(_))).then(|| {
        std::env::temp_dir().join(format!("outdial-chaos-{}", uuid::Uuid::new_v4().simple()))
    });
    let stack = Stack::start(stack_config(case, seed, dir.as_deref())).await?;
    let result = campaign_run(&stack, case, seed, contacts).await;
    let stopped = stack.stop().await;
    if let Some(dir) = &dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut row = result?;
    stopped?;
    row.wall_s = round(begun.elapsed().as_secs_f64(), 1);
    Ok(row)
}

async fn campaign_run(stack: &Stack, case: Case, seed: u64, contacts: u32) -> anyhow::Result<Row> {
    let client = Client::connect(Some(&stack.endpoints().api), Some(stack.api_token())).await?;
    let dir = std::env::temp_dir().join(format!("outdial-chaos-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (spec_path, csv_path) = (dir.join("campaign.json"), dir.join("contacts.csv"));
    std::fs::write(&spec_path, spec(contacts).to_string())?;
    std::fs::write(&csv_path, csv(contacts))?;
    let posted = Instant::now();
    let started = campaign::start(&client, &spec_path, &csv_path, None).await;
    let _ = std::fs::remove_dir_all(&dir);
    let started = started?;
    let id = started.campaign_id.clone();

    let mut outages = Vec::new();
    if let Some(fault) = case.database() {
        let db = stack
            .database()
            .context("the stack has no DynamoDB Local of its own")?;
        mid_campaign(stack, contacts, posted).await;
        outages.push(inject(stack, &db, fault).await?);
    }

    // Until every contact is terminal. The API fails while the database is down (and for a
    // moment after): a failed look is only a look missed.
    let mut calls = Vec::new();
    while posted.elapsed() < CAP {
        if let Ok(now) = campaign::all_calls(&client, &id).await {
            calls = now;
            if u64::try_from(terminal(&calls).len()).unwrap_or(0) >= started.accepted {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed_s = round(posted.elapsed().as_secs_f64(), 1);

    // The counters lag the records by the stream's delay: compare once it has caught up,
    // and again for a few seconds if they differ.
    let mut counters = BTreeMap::new();
    let mut by_status = BTreeMap::new();
    let mut counters_equal = false;
    for _ in 0..10 {
        let _ = stack.stream_caught_up(Duration::from_secs(60)).await;
        let (Ok(campaign), Ok(now)) = (
            client.get(&format!("/campaigns/{id}")).await,
            campaign::all_calls(&client, &id).await,
        ) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        calls = now;
        by_status = recount(&calls);
        counters = streamed(&campaign);
        counters_equal = counters.len() == by_status.len()
            && by_status
                .iter()
                .all(|(k, v)| counters.get(k).copied() == i64::try_from(*v).ok());
        if counters_equal {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    stack.simulator().wait_idle(Duration::from_secs(30)).await;
    let sim = stack.simulator().report();
    let mut row = Row {
        case: case.as_str(),
        seed,
        contacts: started.accepted,
        terminal: u64::try_from(terminal(&calls).len()).unwrap_or(0),
        double_dials: sim.double_dials,
        lost: 0,
        lost_reasons: BTreeMap::new(),
        lost_confirmed: BTreeMap::new(),
        lost_unconfirmed: 0,
        violations: sim.violations.len(),
        counters_equal,
        by_status,
        counters,
        stream_discarded: stack.stream_stats().map_or(0, |s| s.discarded),
        outages: outages.clone(),
        elapsed_s,
        wall_s: 0.0,
        ok: false,
        error: None,
        evidence: Vec::new(),
    };
    judge_losses(&mut row, &calls, &sim, &outages);
    row.evidence.extend(double_dials(&sim));
    row.evidence.extend(
        calls
            .iter()
            .filter(|c| !is_terminal(c))
            .take(10)
            .map(|c| json!({"non_terminal": brief(c), "transcripts": transcripts(&sim, c)})),
    );
    row.evidence.extend(
        sim.violations
            .iter()
            .take(10)
            .map(|v| json!({"violation": v})),
    );
    row.ok = row.passes();
    Ok(row)
}

/// Waits until a share of the contacts has been dialed (or a while has passed).
async fn mid_campaign(stack: &Stack, contacts: u32, posted: Instant) {
    let target = (f64::from(contacts) * MID_SHARE).ceil();
    while posted.elapsed() < MID_AT_LATEST {
        let placed: u32 = stack.simulator().report().placed_per_number.values().sum();
        if f64::from(placed) >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Does `fault` to the database; returns the outage on the simulator's time line.
async fn inject(stack: &Stack, db: &Arc<DynamoDbLocal>, fault: DbFault) -> anyhow::Result<Outage> {
    let blocking = |f: fn(&DynamoDbLocal) -> anyhow::Result<()>| {
        let db = Arc::clone(db);
        async move { tokio::task::spawn_blocking(move || f(&db)).await? }
    };
    let from_ms = stack.simulator().now_ms();
    match fault {
        DbFault::Pause(how_long) => {
            blocking(DynamoDbLocal::pause).await?;
            tokio::time::sleep(how_long).await;
            blocking(DynamoDbLocal::resume).await?;
        }
        DbFault::KillRestart(down) => {
            blocking(DynamoDbLocal::kill).await?;
            tokio::time::sleep(down).await;
            blocking(DynamoDbLocal::restart).await?;
        }
    }
    Ok(Outage {
        from_ms,
        to_ms: stack.simulator().now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_a_name_and_only_the_simulator_cases_have_faults() {
        for case in Case::ALL {
            let faults = case.faults();
            let any = faults.duplicate
                + faults.delay
                + faults.invoke_error
                + faults.throttle
                + faults.create_error
                + faults.create_error_after_placed;
            assert_eq!(case.database().is_some(), any == 0.0, "{case:?}");
            assert_eq!(
                <Case as clap::ValueEnum>::from_str(case.as_str(), false).ok(),
                Some(case)
            );
        }
        let all = Case::AllFaults.faults();
        assert!((all.create_error_after_placed - RATE).abs() < f64::EPSILON);
    }

    #[test]
    fn a_row_passes_only_when_every_promise_held() {
        let mut row = Row::failed(Case::Delay, 1, &anyhow::anyhow!("x"), 1.0);
        assert!(!row.passes());
        row.error = None;
        row.contacts = 10;
        row.terminal = 10;
        row.counters_equal = true;
        assert!(row.passes());
        row.lost_unconfirmed = 1;
        assert!(!row.passes());
        row.lost_unconfirmed = 0;
        row.double_dials = 1;
        assert!(!row.passes());
        row.double_dials = 0;
        row.terminal = 9;
        assert!(!row.passes());
    }

    #[test]
    fn the_contact_list_has_one_row_per_contact() {
        let csv = csv(3);
        assert_eq!(csv.lines().count(), 4);
        assert_eq!(csv.lines().nth(1), Some("(555) 300-0000,Contact 0"));
    }
}
