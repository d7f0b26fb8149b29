//! `outdial demo`: the whole system on a sample campaign, from a POST to a report.
//!
//! It starts the local stack, posts a campaign of `--contacts` numbers through the HTTP API
//! (as CSV, as a user would), shows its progress live, and ends with the report. Everything
//! it reports is measured, not taken from the mix it was given: `by_status` is recounted from
//! the call records, `counters` is what `GET /campaigns/{id}` shows (kept by the stream
//! handler from the table's stream), double dials and violations are the simulator's, the
//! dial rate is what the simulated Voice API saw, `ddb_requests_per_event` divides the SMA
//! handler's DynamoDB requests by the events it answered, and the handler latencies are the
//! SMA function's invocations through the local Invoke API.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};

use crate::campaign;
use crate::client::Client;
use crate::dev::DevOptions;
use outdial_stack::stack::{SMA, Stack};

/// What `outdial demo --json` prints as its last line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoReport {
    pub campaign_id: String,
    pub contacts: u64,
    pub accepted: u64,
    pub terminal: u64,
    /// Calls per final status, recounted from the call records.
    pub by_status: BTreeMap<String, u64>,
    /// Calls per status as `GET /campaigns/{id}` reports them (the stream handler's counters).
    pub counters: BTreeMap<String, i64>,
    pub counters_match: bool,
    pub script_outcomes: BTreeMap<String, u64>,
    pub double_dials: u32,
    pub lost: u64,
    pub violations: usize,
    pub ddb_requests_per_event: f64,
    pub sma_events: u64,
    /// The campaign's pace, calls per second.
    pub target_cps: f64,
    /// Dials per second the simulator accepted while first attempts were still waiting for
    /// their slot (from the first dial to the last first attempt): the pace itself. The
    /// retries left after that go out as their backoff ends, not at the pace.
    pub dial_rate_per_s: f64,
    /// Dials after the last first attempt (retries whose backoff ended late).
    pub tail_dials: u32,
    pub max_dials_in_one_second: u32,
    pub handler_p50_ms: f64,
    pub handler_p99_ms: f64,
    pub stack_start_s: f64,
    pub elapsed_s: f64,
    /// Outcome events the stream function published (docs/events.md), per accepted contact,
    /// and how many the bus took twice (none: a re-delivered batch publishes nothing again).
    pub outcome_events: u64,
    pub outcome_events_per_call: f64,
    pub outcome_duplicates: u64,
}

impl DemoReport {
    /// Whether the run is what outdial promises: every contact terminal, no double dial, no
    /// contract violation, and the streamed counters equal to a recount.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.terminal == self.accepted
            && self.double_dials == 0
            && self.violations == 0
            && self.counters_match
            && self.outcome_duplicates == 0
    }
}

/// The sample campaign's pace: a twentieth of its contacts a second, 2 to 20.
fn cps(contacts: u32) -> f64 {
    (f64::from(contacts) / 20.0).clamp(2.0, 20.0)
}

/// The streamed counters (`GET /campaigns/{id}`'s, by status) and whether they equal the
/// counts of the call records.
pub(crate) fn counters_against_records(report: &campaign::Report) -> (BTreeMap<String, i64>, bool) {
    let counters: BTreeMap<String, i64> = report.counters["by_status"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                .filter(|(_, v)| *v != 0)
                .collect()
        })
        .unwrap_or_default();
    let matching = counters.len() == report.by_status.len()
        && report
            .by_status
            .iter()
            .all(|(k, v)| counters.get(k).copied() == i64::try_from(*v).ok());
    (counters, matching)
}

/// The dial rate while the pacer had calls waiting, and the dials after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Paced {
    pub(crate) per_s: f64,
    pub(crate) tail: u32,
}

impl Paced {
    /// From the Create requests the simulator saw: the placed ones from the first to the last
    /// first attempt, over the time between those two.
    pub(crate) fn of(creates: &[outdial_local::sim::CreateRequest]) -> Self {
        let mut placed: Vec<(u64, bool)> = creates
            .iter()
            .filter(|c| c.transaction_id.is_some())
            .map(|c| (c.at_ms, c.attempt == Some(1)))
            .collect();
        placed.sort_unstable();
        let (Some(&(first, _)), Some(last)) = (
            placed.first(),
            placed.iter().rposition(|(_, first_attempt)| *first_attempt),
        ) else {
            return Self {
                per_s: 0.0,
                tail: 0,
            };
        };
        let span_ms = placed[last].0.saturating_sub(first);
        #[allow(clippy::cast_precision_loss)]
        let per_s = if span_ms == 0 {
            0.0
        } else {
            last as f64 / (span_ms as f64 / 1000.0)
        };
        Self {
            per_s,
            tail: u32::try_from(placed.len() - last - 1).unwrap_or(u32::MAX),
        }
    }
}

/// The sample campaign: a reminder that asks to confirm, with an agent on 0.
pub(crate) fn spec(contacts: u32) -> Value {
    let cps = cps(contacts);
    json!({
        "name": "Appointment reminders (demo)",
        "from": "+15555550199",
        "default_region": "US",
        "pacing": {"calls_per_second": cps, "max_concurrent": 60},
        "retry": {"max_attempts": 2, "busy_after_s": 5, "no_answer_after_s": 5, "failed_after_s": 5},
        "limits": {"ring_timeout_s": 40, "max_call_s": 600},
        "script": {
            "caller_name": "Riverside Clinic",
            "start": "greet",
            "steps": {
                "greet": {"say": "Hello {{name}}, this is Riverside Clinic with a reminder of your appointment on {{date}}.", "next": "menu"},
                "menu": {"gather": {"say": "Press 1 to confirm, 2 to cancel, or 0 to speak to someone.", "timeout_ms": 5000},
                         "branches": {"1": "confirm", "2": "decline", "0": "agent"}, "no_input": "goodbye"},
                "confirm": {"say": "Thank you, we will see you then.", "outcome": "confirmed"},
                "decline": {"say": "We have cancelled it. Goodbye.", "outcome": "declined"},
                "agent": {"transfer": {"to": "+15555550142"}, "outcome": "transferred", "on_fail": "goodbye"},
                "goodbye": {"say": "We will try again another time. Goodbye.", "outcome": "no_input"}
            }
        }
    })
}

/// `contacts` rows: national-format US numbers (the API turns them into E.164), a name and a
/// date for the script.
pub(crate) fn csv(contacts: u32) -> String {
    let mut out = String::from("phone,name,date\n");
    for i in 0..contacts {
        out.push_str(&format!(
            "(555) {:03}-{:04},Contact {i},Tuesday\n",
            200 + i / 10_000,
            i % 10_000
        ));
    }
    out
}

/// Runs the demo; prints the progress and the report to `out`.
///
/// # Errors
/// When the stack cannot start or the API refuses the campaign.
pub async fn demo(
    contacts: u32,
    opts: &DevOptions,
    json_only: bool,
    out: &mut dyn Write,
) -> anyhow::Result<DemoReport> {
    anyhow::ensure!(
        (1..=100_000).contains(&contacts),
        "--contacts must be 1 to 100000"
    );
    let begun = Instant::now();
    let mut config = crate::dev::config(opts);
    config.report_path = None;
    let stack = Stack::start(config).await?;
    let stack_start_s = begun.elapsed().as_secs_f64();
    let client = Client::connect(Some(&stack.endpoints().api), Some(stack.api_token())).await?;

    let dir = std::env::temp_dir().join(format!("outdial-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (spec_path, csv_path) = (dir.join("campaign.json"), dir.join("contacts.csv"));
    std::fs::write(&spec_path, spec(contacts).to_string())?;
    std::fs::write(&csv_path, csv(contacts))?;
    let posted = Instant::now();
    let started = campaign::start(&client, &spec_path, &csv_path, None).await;
    let _ = std::fs::remove_dir_all(&dir);
    let started = started?;
    if !json_only {
        writeln!(
            out,
            "campaign {}: {} contacts accepted, {} rejected",
            started.campaign_id, started.accepted, started.rejected_count
        )?;
    }
    // Watch until every call is terminal; the counters lag the records by the stream's
    // delay, so the end is confirmed from the records below.
    let limit = Duration::from_secs(600);
    let mut sink = std::io::sink();
    let progress_out: &mut dyn Write = if json_only { &mut sink } else { out };
    campaign::watch(
        &client,
        &started.campaign_id,
        Duration::from_millis(500),
        Some(limit),
        progress_out,
    )
    .await?;
    let mut report = campaign::report(&client, &started.campaign_id).await?;
    let waiting_since = Instant::now();
    while report.terminal() < started.accepted && waiting_since.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        report = campaign::report(&client, &started.campaign_id).await?;
    }
    let elapsed_s = posted.elapsed().as_secs_f64();
    stack.stream_caught_up(Duration::from_secs(30)).await?;
    let report = campaign::report(&client, &started.campaign_id).await?;
    let (counters, counters_match) = counters_against_records(&report);
    let bus = stack.bus().stats();
    let sim = stack.simulator().report();
    let paced = Paced::of(&sim.creates);
    let latency = stack.functions().latency(SMA);
    #[allow(clippy::cast_precision_loss)]
    let ddb_requests_per_event = if latency.invocations > 0 {
        stack.sma_requests() as f64 / latency.invocations as f64
    } else {
        0.0
    };
    let round = |x: f64, places: i32| {
        let f = 10f64.powi(places);
        (x * f).round() / f
    };
    let demo = DemoReport {
        campaign_id: started.campaign_id.clone(),
        contacts: u64::from(contacts),
        accepted: started.accepted,
        terminal: report.terminal(),
        lost: report.by_status.get("LOST").copied().unwrap_or(0),
        by_status: report.by_status.clone(),
        counters,
        counters_match,
        script_outcomes: report.script_outcomes.clone(),
        double_dials: sim.double_dials,
        violations: sim.violations.len(),
        ddb_requests_per_event: round(ddb_requests_per_event, 3),
        sma_events: latency.invocations,
        target_cps: cps(contacts),
        dial_rate_per_s: round(paced.per_s, 2),
        tail_dials: paced.tail,
        max_dials_in_one_second: sim.max_in_any_second,
        handler_p50_ms: round(latency.p50_ms, 2),
        handler_p99_ms: round(latency.p99_ms, 2),
        stack_start_s: round(stack_start_s, 2),
        elapsed_s: round(elapsed_s, 1),
        outcome_events: bus.accepted,
        #[allow(clippy::cast_precision_loss)]
        outcome_events_per_call: round(bus.accepted as f64 / started.accepted.max(1) as f64, 2),
        outcome_duplicates: bus.duplicates,
    };
    stack.stop().await?;
    if !json_only {
        writeln!(out, "\n{}", campaign::table(&report))?;
        if opts.speed > 0.0 && (opts.speed - 1.0).abs() > f64::EPSILON {
            writeln!(
                out,
                "(the simulator plays each call at {:.0}x speed: talk times are real seconds of sped-up calls)",
                1.0 / opts.speed
            )?;
        }
        writeln!(
            out,
            "{} SMA events, {:.3} DynamoDB requests each; handler p50 {:.2} ms, p99 {:.2} ms; {:.1} dials/s at a pace of {} (at most {} in any second); {} double dials, {} violations; counters {} the records",
            demo.sma_events,
            demo.ddb_requests_per_event,
            demo.handler_p50_ms,
            demo.handler_p99_ms,
            demo.dial_rate_per_s,
            demo.target_cps,
            demo.max_dials_in_one_second,
            demo.double_dials,
            demo.violations,
            if demo.counters_match {
                "match"
            } else {
                "DO NOT match"
            }
        )?;
        writeln!(
            out,
            "{} outcome events published ({:.2} per call), {} twice",
            demo.outcome_events, demo.outcome_events_per_call, demo.outcome_duplicates
        )?;
    }
    Ok(demo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(at_ms: u64, attempt: u32, placed: bool) -> outdial_local::sim::CreateRequest {
        outdial_local::sim::CreateRequest {
            at_ms,
            to: "+15552000000".into(),
            call_id: Some("call_1".into()),
            attempt: Some(attempt),
            status: if placed { 201 } else { 429 },
            transaction_id: placed.then(|| "t".to_owned()),
        }
    }

    #[test]
    fn the_pace_is_measured_up_to_the_last_first_attempt_and_the_retries_after_are_the_tail() {
        let creates = [
            create(1_000, 1, true),
            create(1_100, 2, true),
            create(1_150, 1, false),
            create(1_200, 1, true),
            create(1_300, 1, true),
            create(2_500, 2, true),
            create(2_900, 2, true),
        ];
        let paced = Paced::of(&creates);
        assert!((paced.per_s - 10.0).abs() < 1e-9, "{paced:?}");
        assert_eq!(paced.tail, 2);
        assert_eq!(Paced::of(&[]).per_s, 0.0);
    }

    #[test]
    fn the_sample_list_has_one_row_per_contact_in_national_format() {
        let csv = csv(3);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "phone,name,date");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], "(555) 200-0000,Contact 0,Tuesday");
    }
}
