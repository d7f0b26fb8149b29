//! `outdial bench soak --contacts N --cps R [--shards S] [--json]`: one large campaign through
//! the whole local stack to its end, to see whether anything grows with it.
//!
//! The demo's campaign (its callees' mix, its script, two attempts) of N contacts, paced at R
//! calls a second, on a DynamoDB Local of its own started for the run (a long run on a shared
//! one would also measure every earlier run's items and stream records), after a campaign of a
//! tenth of its size (100 to 1,000 contacts, unmeasured) has warmed DynamoDB Local's JVM up.
//! Reported, of the measured campaign: the
//! sustained dial rate (while first attempts waited) and the SMA events a second; the SMA
//! handler's latency in the first, middle and last tenth of its invocations, which stays flat
//! if nothing the handler touches grows with the campaign; the resident memory of this
//! process (the four functions, the simulator, the servers) and of DynamoDB Local's JVM, at
//! the start and the end; and the promises: every contact terminal, no double dial, the
//! streamed counters equal to the records. The dispatcher's own counts over the campaign
//! (throttled dials, claims refused at the concurrency cap, dials the send window held) say
//! what held the rate back when it falls short.

use std::time::{Duration, Instant};

use anyhow::Context;
use outdial_core::messages::Function;
use outdial_stack::stack::Stack;
use outdial_timers::Stats;
use serde::Serialize;

use crate::bench::cpu::cpu_seconds;
use crate::bench::export::rss_mib;
use crate::campaign;
use crate::client::Client;
use crate::demo::{Paced, counters_against_records};
use crate::dev::DevOptions;

/// DynamoDB Local's heap for the run: it keeps every item and stream record in memory (a
/// 20,000-contact campaign leaves about 300,000 stream records with both images).
const HEAP_MIB: u32 = 4096;

/// The campaign's concurrency cap at `cps`: two seconds of dials. A call of the local stack
/// lasts a fraction of a second (the simulator runs at a hundredth of real time), so the cap
/// does not bind while the machine keeps up; when it does not (on two cores, DynamoDB Local's
/// JVM and the functions share them), calls last longer, the cap holds the calls in flight
/// and so the load, and the dial rate reads what the machine sustains instead of a queue
/// growing behind the pacer.
fn max_concurrent(cps: u32) -> u32 {
    cps * 2
}

/// One tenth of the handler's invocations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tenth {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A process's resident memory at the start of the campaign and at its end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Memory {
    pub start_mib: f64,
    pub end_mib: f64,
}

/// What the dispatcher counted over the measured campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DispatcherCounts {
    /// Dials the Voice API accepted.
    pub dialed: u32,
    /// Dials it answered 429.
    pub throttled: u32,
    /// Claims refused because the campaign held `max_concurrent` calls.
    pub at_capacity: u32,
    /// Times a tick found every concurrency slot taken and passed the campaign's calls over:
    /// the cap, not the pacer, set the rate then.
    pub cap_reached: u32,
    /// Dials the send window held back so that no second at the API exceeds the rate.
    pub held: u32,
    /// Claims tried again after another counted a call to the same number first.
    pub contended: u32,
    /// Dials whose answer never came (left to the watchdog).
    pub unknown: u32,
}

impl From<Stats> for DispatcherCounts {
    fn from(done: Stats) -> Self {
        Self {
            dialed: done.dialed,
            throttled: done.throttled,
            at_capacity: done.at_capacity,
            cap_reached: done.cap_reached,
            held: done.held,
            contended: done.contended,
            unknown: done.unknown,
        }
    }
}

/// What `outdial bench soak` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakBench {
    pub contacts: u32,
    pub target_cps: f64,
    /// The dispatch shards the account's rate was split over.
    pub shards: u32,
    pub terminal: u64,
    pub dials: u64,
    /// Dials a second while first attempts waited for their slot.
    pub dials_per_s: f64,
    pub max_dials_in_one_second: u32,
    pub sma_events: u64,
    /// SMA events a second, from the upload to the last call's end.
    pub events_per_s: f64,
    /// The SMA handler's latency (each invocation through the local Invoke API and one
    /// DynamoDB request) in the first, middle and last tenth of its invocations.
    pub handler_first_tenth: Tenth,
    pub handler_middle_tenth: Tenth,
    pub handler_last_tenth: Tenth,
    /// The last tenth's p50 over the first's: 1.0 when nothing grows.
    pub handler_p50_growth: f64,
    /// This process: the four functions, the simulator, the local servers.
    pub outdial_rss: Memory,
    /// DynamoDB Local's JVM.
    pub dynamodb_local_rss: Memory,
    /// The cores this process kept busy on average over the campaign (CPU seconds over wall
    /// seconds), and DynamoDB Local's JVM; beside `machine_cores`, they say whether the
    /// machine, rather than outdial, set the dial rate.
    pub outdial_cpu_cores: f64,
    pub dynamodb_local_cpu_cores: f64,
    pub machine_cores: usize,
    pub dispatcher: DispatcherCounts,
    pub double_dials: u32,
    pub violations: usize,
    pub counters_match: bool,
    pub seconds: f64,
}

impl SoakBench {
    /// Whether the run kept outdial's promises.
    #[must_use]
    pub fn ok(&self) -> bool {
        u64::from(self.contacts) == self.terminal
            && self.double_dials == 0
            && self.violations == 0
            && self.counters_match
    }
}

/// Runs the soak.
///
/// # Errors
/// When the stack cannot start, the API refuses the campaign, or the campaign does not end
/// within its time (ten minutes more than its pace needs).
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
pub async fn soak(contacts: u32, cps: u32, shards: u32) -> anyhow::Result<SoakBench> {
    anyhow::ensure!(
        (100..=100_000).contains(&contacts),
        "--contacts must be 100 to 100000"
    );
    anyhow::ensure!((1..=200).contains(&cps), "--cps must be 1 to 200");
    anyhow::ensure!((1..=16).contains(&shards), "--shards must be 1 to 16");
    let opts = DevOptions::bench(f64::from(cps));
    let mut config = crate::dev::config(&opts);
    config.report_path = None;
    config.database_heap_mib = HEAP_MIB;
    config.shards = shards;
    let stack = Stack::start(config).await?;
    let jvm = stack
        .database()
        .and_then(|db| db.pid())
        .context("the soak's DynamoDB Local has no process to measure")?
        .to_string();
    let client = Client::connect(Some(&stack.endpoints().api), Some(stack.api_token())).await?;
    // A short campaign first, unmeasured: DynamoDB Local's JVM compiles its hot paths as it
    // goes, and its first seconds would otherwise read as the campaign's first tenth.
    let warm_up = (contacts / 10).clamp(100, 1000);
    run_campaign(&client, &stack, warm_up, cps).await?;
    let warm_events = stack.functions().durations_us(Function::Sma.binary()).len();
    let warm_dials = stack.simulator().report().creates.len();

    let start_rss = (rss_mib("self"), rss_mib(&jvm));
    let start_cpu = (cpu_seconds("self"), cpu_seconds(&jvm));
    let start_stats = stack.dispatcher().stats();
    let began = Instant::now();
    let report = run_campaign(&client, &stack, contacts, cps).await?;
    let seconds = began.elapsed().as_secs_f64();
    let end_rss = (rss_mib("self"), rss_mib(&jvm));
    let end_cpu = (cpu_seconds("self"), cpu_seconds(&jvm));
    let dispatcher = DispatcherCounts::from(stack.dispatcher().stats().since(&start_stats));
    let cores = |start: Option<f64>, end: Option<f64>| -> anyhow::Result<f64> {
        let used = end.zip(start).map(|(e, s)| e - s);
        Ok(round(used.context("CPU time unreadable")? / seconds))
    };
    let outdial_cpu_cores = cores(start_cpu.0, end_cpu.0)?;
    let dynamodb_local_cpu_cores = cores(start_cpu.1, end_cpu.1)?;
    let (_, counters_match) = counters_against_records(&report);

    let sim = stack.simulator().report();
    let creates = sim.creates.get(warm_dials..).unwrap_or_default();
    let durations = stack.functions().durations_us(Function::Sma.binary());
    let durations = durations.get(warm_events..).unwrap_or_default();
    let events = durations.len() as u64;
    let dials = creates
        .iter()
        .filter(|c| c.transaction_id.is_some())
        .count() as u64;
    let double_dials = sim.double_dials;
    let violations = sim.violations.len();
    stack.stop().await?;

    let tenth = |which: Which| tenth_of(durations, which);
    let (first, middle, last) = (
        tenth(Which::First),
        tenth(Which::Middle),
        tenth(Which::Last),
    );
    let memory = |(start, end): (Option<f64>, Option<f64>)| -> anyhow::Result<Memory> {
        Ok(Memory {
            start_mib: round(start.context("resident memory unreadable at the start")?),
            end_mib: round(end.context("resident memory unreadable at the end")?),
        })
    };
    Ok(SoakBench {
        contacts,
        target_cps: f64::from(cps),
        shards,
        terminal: report.terminal(),
        dials,
        dials_per_s: round(Paced::of(creates).per_s),
        max_dials_in_one_second: sim.max_in_any_second,
        sma_events: events,
        events_per_s: round(events as f64 / seconds),
        handler_first_tenth: first,
        handler_middle_tenth: middle,
        handler_last_tenth: last,
        handler_p50_growth: round(if first.p50_ms > 0.0 {
            last.p50_ms / first.p50_ms
        } else {
            0.0
        }),
        outdial_rss: memory((start_rss.0, end_rss.0))?,
        dynamodb_local_rss: memory((start_rss.1, end_rss.1))?,
        outdial_cpu_cores,
        dynamodb_local_cpu_cores,
        machine_cores: std::thread::available_parallelism().map_or(1, usize::from),
        dispatcher,
        double_dials,
        violations,
        counters_match,
        seconds: round(seconds),
    })
}

/// Posts the demo's campaign of `contacts` at `cps` and waits until every contact is terminal
/// and the stream has caught up (at most the pace's time for every contact and its retries,
/// and ten minutes more); its report.
async fn run_campaign(
    client: &Client,
    stack: &Stack,
    contacts: u32,
    cps: u32,
) -> anyhow::Result<campaign::Report> {
    let mut spec = crate::demo::spec(contacts);
    spec["pacing"] =
        serde_json::json!({"calls_per_second": cps, "max_concurrent": max_concurrent(cps)});
    let began = Instant::now();
    let started = crate::bench::start_campaign(client, &spec, contacts).await?;
    let limit = Duration::from_secs(u64::from(contacts * 2 / cps) + 600);
    let mut sink = std::io::sink();
    campaign::watch(
        client,
        &started.campaign_id,
        Duration::from_secs(2),
        Some(limit),
        &mut sink,
    )
    .await?;
    let mut report = campaign::report(client, &started.campaign_id).await?;
    while report.terminal() < started.accepted && began.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        report = campaign::report(client, &started.campaign_id).await?;
    }
    stack.stream_caught_up(Duration::from_secs(60)).await?;
    campaign::report(client, &started.campaign_id).await
}

/// Which tenth of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    First,
    Middle,
    Last,
}

/// The p50 and p99 of one tenth of `durations_us` (in the order the invocations ended).
fn tenth_of(durations_us: &[u64], which: Which) -> Tenth {
    let n = durations_us.len();
    let size = (n / 10).max(1).min(n);
    let start = match which {
        Which::First => 0,
        Which::Middle => (n.saturating_sub(size)) / 2,
        Which::Last => n.saturating_sub(size),
    };
    let mut part: Vec<u64> = durations_us
        .iter()
        .skip(start)
        .take(size)
        .copied()
        .collect();
    part.sort_unstable();
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let at = |q: f64| -> f64 {
        if part.is_empty() {
            return 0.0;
        }
        let i = ((part.len() as f64 * q).ceil() as usize).clamp(1, part.len()) - 1;
        part[i] as f64 / 1000.0
    };
    Tenth {
        p50_ms: round(at(0.5)),
        p99_ms: round(at(0.99)),
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The human-readable summary.
#[must_use]
pub fn text(r: &SoakBench) -> String {
    let t = |x: &Tenth| format!("p50 {:.2} ms, p99 {:.2} ms", x.p50_ms, x.p99_ms);
    format!(
        "{} contacts at {} calls/s over {} shards: {} terminal in {:.0} s; {} dials at {:.1}/s (at most {} in any second), {} SMA events at {:.0}/s\n\
         SMA handler: first tenth {}, middle {}, last {} (p50 x{:.2})\n\
         resident memory: outdial {:.1} -> {:.1} MiB, DynamoDB Local {:.1} -> {:.1} MiB\n\
         cores kept busy: outdial {:.2}, DynamoDB Local {:.2}, of {} on this machine\n\
         dispatcher: {} throttled, {} ticks found the concurrency cap reached, {} claims refused at it, {} dials held by the send window, {} claims contended, {} answers unknown\n\
         {} double dials, {} violations, counters {} the records\n",
        r.contacts,
        r.target_cps,
        r.shards,
        r.terminal,
        r.seconds,
        r.dials,
        r.dials_per_s,
        r.max_dials_in_one_second,
        r.sma_events,
        r.events_per_s,
        t(&r.handler_first_tenth),
        t(&r.handler_middle_tenth),
        t(&r.handler_last_tenth),
        r.handler_p50_growth,
        r.outdial_rss.start_mib,
        r.outdial_rss.end_mib,
        r.dynamodb_local_rss.start_mib,
        r.dynamodb_local_rss.end_mib,
        r.outdial_cpu_cores,
        r.dynamodb_local_cpu_cores,
        r.machine_cores,
        r.dispatcher.throttled,
        r.dispatcher.cap_reached,
        r.dispatcher.at_capacity,
        r.dispatcher.held,
        r.dispatcher.contended,
        r.dispatcher.unknown,
        r.double_dials,
        r.violations,
        if r.counters_match {
            "match"
        } else {
            "DO NOT match"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_are_taken_in_the_order_the_invocations_ended() {
        // 100 invocations: 1 ms for the first 10, 5 ms in the middle, 9 ms for the last 10.
        let durations: Vec<u64> = (0..100u64)
            .map(|i| match i {
                0..10 => 1_000,
                90..100 => 9_000,
                _ => 5_000,
            })
            .collect();
        assert_eq!(tenth_of(&durations, Which::First).p50_ms, 1.0);
        assert_eq!(tenth_of(&durations, Which::Middle).p99_ms, 5.0);
        assert_eq!(tenth_of(&durations, Which::Last).p50_ms, 9.0);
        assert_eq!(tenth_of(&[], Which::Last).p50_ms, 0.0);
        assert_eq!(tenth_of(&[2_000], Which::Middle).p50_ms, 2.0);
    }
}
