//! `outdial bench cpu --calls N [--json]`: the CPU time the shipped SMA binary spends per
//! event, and its latency and cost per event at the memory sizes Lambda offers.
//!
//! The release `outdial-sma` runs as Lambda runs it: one process polling a Lambda Runtime API
//! (served here) for one event at a time, with the log format and level the stack gives it,
//! against a DynamoDB Local of its own. The PSTN simulator places the calls (a pause, a
//! message, a one-digit menu the callee answers, a goodbye: about six events a call), ten in
//! flight, and hands their events to the process strictly one after another, so the process
//! waits on `.../next` between events as a warm Lambda does.
//!
//! Measured per run, over the calls after an unmeasured warm-up: the process's user and
//! system CPU time (from `/proc/<pid>/stat`, every thread) per event; the latency from the
//! process taking an event to its answer (what Lambda bills); its peak resident memory.
//!
//! Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB. Where this
//! machine lets the bench create a CPU cgroup (root, cgroup v1 or v2), it runs the binary once
//! more at each of 128, 256 and 512 MB under a CFS quota of that share of one CPU, and reports
//! the latency and the billed duration and cost per million events there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::store::DynamoStore;
use outdial_local::dynamodb::{DynamoDbLocal, Storage};
use outdial_local::runtime_api::{Answer, RuntimeApi};
use outdial_local::sim::{Callee, Callees, Invoke, SimConfig, Simulator, voice_client};
use outdial_local::tables::{client, fresh_table};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use crate::bench::{bench_campaign, claim_and_place, new_calls};

/// The memory sizes compared.
pub const MEMORY_SIZES_MB: [u32; 3] = [128, 256, 512];
/// Lambda's memory for one full vCPU
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>).
pub const ONE_VCPU_MB: f64 = 1769.0;
/// The CFS period of the emulated share: Linux's default. Lambda does not publish its own.
const CFS_PERIOD_US: u64 = 100_000;
/// Lambda (x86, us-east-1) as docs/scale.md cites it: per GB-second and per request.
const USD_PER_GB_S: f64 = 0.000_016_666_7;
const USD_PER_REQUEST: f64 = 0.000_000_2;
/// Calls in flight at once (their events still reach the process one at a time).
const IN_FLIGHT: usize = 10;
/// Unmeasured calls before each run's measurement.
const WARM_UP_CALLS: u32 = 30;
/// Measured calls of the run whose log is read.
const LOG_CALLS: u32 = 100;

/// A pause, a message, a menu whose digit 1 leads to a goodbye: the events a reminder call
/// brings (new call, ringing, answered, the menu's result, the goodbye's, the hang-up).
const SCRIPT: &str = r#"{"caller_name": "Riverside Clinic", "start": "wait", "steps": {
    "wait": {"pause_ms": 500, "next": "hello"},
    "hello": {"say": "This is Riverside Clinic.", "next": "menu"},
    "menu": {"gather": {"say": "Press 1 to confirm."}, "branches": {"1": "bye"}, "no_input": "bye"},
    "bye": {"say": "Thank you. Goodbye.", "outcome": "confirmed"}}}"#;

/// One process's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The emulated Lambda memory size; `None` for the run with the whole machine.
    pub memory_mb: Option<u32>,
    /// The share of one CPU the run had (`memory_mb / 1769`), when emulated.
    pub cpu_share: Option<f64>,
    pub events: u64,
    /// User plus system CPU time of the process per event.
    pub cpu_ms_per_event: f64,
    pub user_ms_per_event: f64,
    pub sys_ms_per_event: f64,
    /// From the process taking the event from the Runtime API to its answer.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    /// Lambda's billed duration per event: each invocation rounded up to the ms.
    pub billed_ms_per_event: f64,
    /// Lambda's price per million events at this memory size (requests and duration), when
    /// emulated.
    pub usd_per_million_events: Option<f64>,
    pub events_per_s: f64,
    /// The process's peak resident memory (`VmHWM`).
    pub peak_rss_mib: f64,
}

/// What the function writes to its log (stdout, which Lambda sends to CloudWatch Logs) per
/// event, over one process's whole life: its start-up lines, a warm-up and a run of calls.
/// Lambda's own lines (`START`, `END`, `REPORT`) are not in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogVolume {
    pub events: u64,
    pub lines_per_event: f64,
    pub bytes_per_event: f64,
}

impl LogVolume {
    #[allow(clippy::cast_precision_loss)]
    fn of(events: u64, lines: u64, bytes: u64) -> Self {
        let per_event = |n: u64| {
            if events == 0 {
                0.0
            } else {
                round(n as f64 / events as f64)
            }
        };
        Self {
            events,
            lines_per_event: per_event(lines),
            bytes_per_event: per_event(bytes),
        }
    }
}

/// What `outdial bench cpu` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuBench {
    pub binary: String,
    /// The function's log level in the runs (`AWS_LAMBDA_LOG_LEVEL`).
    pub log_level: String,
    pub binary_bytes: u64,
    /// Measured calls per run.
    pub calls: u32,
    /// The run with all of the machine's CPU.
    pub unlimited: Run,
    /// The runs at 128, 256 and 512 MB's share of a CPU (empty when no cgroup could be made).
    pub at_memory: Vec<Run>,
    /// Why `at_memory` is empty.
    pub at_memory_skipped: Option<String>,
    /// The log the function writes, from a separate run whose output is read (the measured
    /// runs write to `/dev/null`, so reading it costs them nothing).
    pub logs: LogVolume,
}

/// Runs the benchmark on the binary `bin` (default: `outdial-sma` beside this executable).
///
/// # Errors
/// When the binary is missing, DynamoDB Local cannot start, or the process fails or stops
/// answering.
pub async fn cpu(calls: u32, bin: Option<PathBuf>, log_level: &str) -> anyhow::Result<CpuBench> {
    anyhow::ensure!(
        (50..=20_000).contains(&calls),
        "--calls must be 50 to 20000"
    );
    let log_level = log_level.to_ascii_uppercase();
    anyhow::ensure!(
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&log_level.as_str()),
        "--log-level must be one of TRACE, DEBUG, INFO, WARN, ERROR"
    );
    let bin = match bin {
        Some(bin) => bin,
        None => std::env::current_exe()?
            .parent()
            .context("this executable has no folder")?
            .join("outdial-sma"),
    };
    let binary_bytes = std::fs::metadata(&bin)
        .with_context(|| {
            format!(
                "no SMA binary at {} (build it: cargo build --release -p outdial-sma, or pass --sma-bin)",
                bin.display()
            )
        })?
        .len();
    let db = DynamoDbLocal::start(&Storage::InMemory)?;
    let ddb = client(db.endpoint());
    let table = fresh_table(&ddb, "bench-cpu").await?;
    let store = DynamoStore::new(ddb, &table, 4);
    let bench = Bench {
        bin,
        endpoint: db.endpoint().to_owned(),
        table,
        store,
        log_level,
    };

    let (unlimited, _) = bench.run(calls, None, false).await?;
    let (mut at_memory, mut at_memory_skipped) = (Vec::new(), None);
    for mb in MEMORY_SIZES_MB {
        let group = match CpuGroup::create(mb) {
            Ok(group) => group,
            Err(e) => {
                at_memory.clear();
                at_memory_skipped = Some(format!("no CPU cgroup to emulate Lambda's share: {e}"));
                break;
            }
        };
        at_memory.push(bench.run(calls, Some(&group), false).await?.0);
    }
    let (_, logs) = bench.run(LOG_CALLS, None, true).await?;
    Ok(CpuBench {
        binary: bench.bin.display().to_string(),
        log_level: bench.log_level.clone(),
        binary_bytes,
        calls,
        unlimited,
        at_memory,
        at_memory_skipped,
        logs: logs.context("the log run read no output")?,
    })
}

struct Bench {
    bin: PathBuf,
    endpoint: String,
    table: String,
    store: DynamoStore,
    log_level: String,
}

impl Bench {
    /// One process: a warm-up, then `calls` measured calls.
    /// With `read_logs`, the process's output is read and counted instead of discarded.
    async fn run(
        &self,
        calls: u32,
        group: Option<&CpuGroup>,
        read_logs: bool,
    ) -> anyhow::Result<(Run, Option<LogVolume>)> {
        let api = Arc::new(RuntimeApi::start().await?);
        let mut child = tokio::process::Command::new(&self.bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "outdial-sma")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                group.map_or(128, |g| g.memory_mb).to_string(),
            )
            // As the stack configures the function: JSON logs, at INFO unless asked otherwise.
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", &self.log_level)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.endpoint)
            .env("OUTDIAL_TABLE_NAME", &self.table)
            .stdin(Stdio::null())
            .stdout(if read_logs {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("{} did not start", self.bin.display()))?;
        let pid = child.id().context("the SMA process ended at once")?;
        let reader = child
            .stdout
            .take()
            .map(|out| tokio::spawn(count_lines(out)));
        if let Some(group) = group {
            group.admit(pid)?;
        }
        let invoker = Arc::new(Serial::new(Arc::clone(&api)));
        let sim = Simulator::start(
            SimConfig {
                speed: 0.002,
                callees: Callees {
                    by_number: BTreeMap::new(),
                    mix: vec![(
                        1,
                        Callee::Answer {
                            after_ms: 2_000,
                            digits: Some("1".to_owned()),
                        },
                    )],
                },
                ..SimConfig::default()
            },
            "sma-cpu",
            Arc::new(Feed(Arc::clone(&invoker))),
        )
        .await?;
        let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-cpu");

        self.calls(&sim, &dialer, &invoker, WARM_UP_CALLS).await?;
        let before = cpu_ticks(pid)?;
        let warm_up_events = std::mem::take(&mut *invoker.durations.lock().await).len() as u64;
        let began = Instant::now();
        self.calls(&sim, &dialer, &invoker, calls).await?;
        let seconds = began.elapsed().as_secs_f64();
        let after = cpu_ticks(pid)?;
        let peak_rss_mib = peak_rss_mib(pid)?;
        let durations = std::mem::take(&mut *invoker.durations.lock().await);
        child.start_kill()?;
        let _ = child.wait().await;
        if let Some(error) = invoker.failure.lock().await.take() {
            bail!("the SMA process failed an event: {error}");
        }
        // The process has ended, so its output is read to the end.
        let logs = match reader {
            Some(reader) => {
                let (lines, bytes) = reader.await??;
                let events = warm_up_events + durations.len() as u64;
                Some(LogVolume::of(events, lines, bytes))
            }
            None => None,
        };
        let run = summarize(
            group.map(|g| g.memory_mb),
            &durations,
            after.since(before),
            seconds,
            peak_rss_mib,
        );
        Ok((run, logs))
    }

    /// Places `calls` new calls, at most [`IN_FLIGHT`] at a time, and waits for them to end.
    async fn calls(
        &self,
        sim: &Simulator,
        dialer: &ChimeDialer,
        invoker: &Serial,
        calls: u32,
    ) -> anyhow::Result<()> {
        let campaign = bench_campaign("bench cpu", SCRIPT, 1.0, 100_000)?;
        let first = invoker
            .numbers
            .fetch_add(u64::from(calls), Ordering::Relaxed);
        let new = new_calls(first, calls)?;
        self.store.create_campaign(&campaign, &new).await?;
        let limit = Duration::from_secs(60 + u64::from(calls) / 5);
        let placing = async {
            for call in &new {
                invoker.slots.acquire().await?.forget();
                claim_and_place(&self.store, dialer, &campaign.from, &call.id).await?;
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(limit, placing)
            .await
            .context("the calls were not placed in time")??;
        anyhow::ensure!(
            sim.wait_idle(limit).await,
            "the calls did not end within {limit:?}"
        );
        Ok(())
    }
}

/// Hands the simulator's events to the process one at a time, as one Lambda execution
/// environment takes them, and keeps each invocation's duration. A hang-up frees a call's
/// slot for the next one.
struct Serial {
    api: Arc<RuntimeApi>,
    turn: Mutex<()>,
    durations: Mutex<Vec<Duration>>,
    failure: Mutex<Option<String>>,
    slots: Semaphore,
    numbers: AtomicU64,
}

impl Serial {
    fn new(api: Arc<RuntimeApi>) -> Self {
        Self {
            api,
            turn: Mutex::new(()),
            durations: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            slots: Semaphore::new(IN_FLIGHT),
            numbers: AtomicU64::new(0),
        }
    }
}

/// What the simulator holds: the shared [`Serial`].
struct Feed(Arc<Serial>);

impl Invoke for Feed {
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
        let serial = Arc::clone(&self.0);
        async move {
            let _turn = serial.turn.lock().await;
            let hangup = event["InvocationEventType"] == "HANGUP";
            let answer = serial
                .api
                .invoke_timed(event.to_string(), Duration::from_secs(10))
                .await;
            let failed = match answer {
                Ok((Answer::Response(body), held)) => {
                    serial.durations.lock().await.push(held);
                    if hangup {
                        serial.slots.add_permits(1);
                    }
                    match serde_json::from_slice(&body) {
                        Ok(value) => return Ok(value),
                        Err(e) => format!("unreadable answer: {e}"),
                    }
                }
                Ok((Answer::Error(body), _)) => String::from_utf8_lossy(&body).into_owned(),
                Err(e) => e.to_string(),
            };
            serial
                .failure
                .lock()
                .await
                .get_or_insert_with(|| failed.clone());
            Err(failed)
        }
        .boxed()
    }
}

/// The kernel's CPU time of a process, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    user: u64,
    system: u64,
}

impl Ticks {
    fn since(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

fn cpu_ticks(pid: u32) -> anyhow::Result<Ticks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("the SMA process {pid} is gone"))?;
    parse_stat(&stat)
}

/// The CPU time process `pid` (or `self`) has used, user and system, in seconds.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat(&stat).ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((ticks.user + ticks.system) as f64 / CLOCK_TICKS_PER_S)
}

fn parse_stat(stat: &str) -> anyhow::Result<Ticks> {
    // The command name may hold spaces: the fields start after its closing parenthesis;
    // utime and stime are the 14th and 15th fields of the whole line.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc stat")?
            .parse()
            .context("unreadable /proc stat")
    };
    Ok(Ticks {
        user: field(11)?,
        system: field(12)?,
    })
}

fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = crate::bench::export::status_kib(&status, "VmHWM").context("no VmHWM")?;
    #[allow(clippy::cast_precision_loss)]
    Ok(round(kib as f64 / 1024.0))
}

/// Reads `out` to its end: the lines and bytes in it.
async fn count_lines(mut out: impl tokio::io::AsyncRead + Unpin) -> std::io::Result<(u64, u64)> {
    use tokio::io::AsyncReadExt;
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = out.read(&mut chunk).await?;
        if n == 0 {
            return Ok((lines, bytes));
        }
        bytes += n as u64;
        lines += chunk[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

/// The kernel's clock ticks a second (`CLK_TCK`): 100 on every Linux that Lambda runs.
const CLOCK_TICKS_PER_S: f64 = 100.0;

#[allow(clippy::cast_precision_loss)]
fn summarize(
    memory_mb: Option<u32>,
    durations: &[Duration],
    cpu: Ticks,
    seconds: f64,
    peak_rss_mib: f64,
) -> Run {
    let events = durations.len() as u64;
    let per_event_ms = |ticks: u64| {
        if events == 0 {
            0.0
        } else {
            round(ticks as f64 / CLOCK_TICKS_PER_S * 1000.0 / events as f64)
        }
    };
    let mut ms: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if ms.is_empty() {
            0.0
        } else {
            let i = ((ms.len() - 1) as f64 * p).round() as usize;
            round(ms[i.min(ms.len() - 1)])
        }
    };
    let mean = |xs: &[f64]| {
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    let billed: Vec<f64> = ms.iter().map(|x| x.ceil().max(1.0)).collect();
    let billed_ms = mean(&billed);
    Run {
        memory_mb,
        cpu_share: memory_mb.map(|mb| round(f64::from(mb) / ONE_VCPU_MB)),
        events,
        cpu_ms_per_event: per_event_ms(cpu.user + cpu.system),
        user_ms_per_event: per_event_ms(cpu.user),
        sys_ms_per_event: per_event_ms(cpu.system),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        mean_ms: round(mean(&ms)),
        billed_ms_per_event: round(billed_ms),
        usd_per_million_events: memory_mb.map(|mb| {
            let gb_s = f64::from(mb) / 1024.0 * billed_ms / 1000.0;
            round((gb_s * USD_PER_GB_S + USD_PER_REQUEST) * 1e6)
        }),
        events_per_s: round(if seconds > 0.0 {
            events as f64 / seconds
        } else {
            0.0
        }),
        peak_rss_mib,
    }
}

/// A CPU cgroup with a CFS quota of `memory_mb / 1769` of one CPU, removed when dropped.
struct CpuGroup {
    memory_mb: u32,
    dir: PathBuf,
    /// The file a process id is written to, to move the process in.
    procs: PathBuf,
}

impl CpuGroup {
    fn create(memory_mb: u32) -> anyhow::Result<Self> {
        let quota_us = (CFS_PERIOD_US as f64 * f64::from(memory_mb) / ONE_VCPU_MB).round() as u64;
        let name = format!("outdial-bench-cpu-{}-{memory_mb}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let v2 = Path::new("/sys/fs/cgroup");
        // The quota's files: v1 has the period and the quota apart, v2 both in `cpu.max`.
        let (root, limits) = if v1.join("cpu.cfs_quota_us").exists() {
            (
                v1,
                vec![
                    ("cpu.cfs_period_us", CFS_PERIOD_US.to_string()),
                    ("cpu.cfs_quota_us", quota_us.to_string()),
                ],
            )
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"))
        {
            // The cpu controller must be enabled for the root's children first.
            write(&v2.join("cgroup.subtree_control"), "+cpu")?;
            (v2, vec![("cpu.max", format!("{quota_us} {CFS_PERIOD_US}"))])
        } else {
            bail!("neither /sys/fs/cgroup/cpu (v1) nor a cgroup v2 cpu controller is available")
        };
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let group = Self {
            memory_mb,
            procs: dir.join("cgroup.procs"),
            dir,
        };
        for (file, value) in limits {
            write(&group.dir.join(file), &value)?;
        }
        Ok(group)
    }

    /// Moves the process (all of its threads) into the group.
    fn admit(&self, pid: u32) -> anyhow::Result<()> {
        write(&self.procs, &pid.to_string())
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        // Its process has ended; an empty cgroup is removed with rmdir.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value} to {}", path.display()))
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The report as text.
#[must_use]
pub fn text(b: &CpuBench) -> String {
    let line = |r: &Run| {
        let label = r
            .memory_mb
            .map_or_else(|| "whole CPU".to_owned(), |mb| format!("{mb} MB"));
        let cost = r
            .usd_per_million_events
            .map(|usd| format!(", ${usd:.3} per million events"))
            .unwrap_or_default();
        format!(
            "{label:>9}: {:.3} ms CPU/event (user {:.3}, sys {:.3}), latency p50 {:.2} ms p99 {:.2} ms, billed {:.2} ms/event{cost}, peak RSS {:.1} MiB\n",
            r.cpu_ms_per_event,
            r.user_ms_per_event,
            r.sys_ms_per_event,
            r.p50_ms,
            r.p99_ms,
            r.billed_ms_per_event,
            r.peak_rss_mib
        )
    };
    let mut out = format!(
        "{} ({} bytes), {} calls per run\n",
        b.binary, b.binary_bytes, b.calls
    );
    out.push_str(&line(&b.unlimited));
    for r in &b.at_memory {
        out.push_str(&line(r));
    }
    if let Some(why) = &b.at_memory_skipped {
        out.push_str(&format!("memory sizes not emulated: {why}\n"));
    }
    out.push_str(&format!(
        "log: {:.2} lines, {:.0} bytes per event ({} events)\n",
        b.logs.lines_per_event, b.logs.bytes_per_event, b.logs.events
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_log_is_counted_to_its_end_in_lines_and_bytes() {
        let text: &[u8] = b"{\"level\":\"INFO\"}\n{\"level\":\"WARN\"}\nno end";
        assert_eq!(count_lines(text).await.unwrap(), (2, 40));
        assert_eq!(
            LogVolume::of(4, 2, 40),
            LogVolume {
                events: 4,
                lines_per_event: 0.5,
                bytes_per_event: 10.0
            }
        );
        assert_eq!(LogVolume::of(0, 3, 9).bytes_per_event, 0.0);
    }

    #[test]
    fn cpu_times_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (outdial (sma) x) S 1 2 3 0 -1 4194304 100 0 0 0 1234 567 0 0 20 0 1 0";
        let t = parse_stat(stat).unwrap();
        assert_eq!((t.user, t.system), (1234, 567));
        assert!(parse_stat("4242 (x) S 1 2").is_err());
    }

    #[test]
    fn a_run_is_summarised_per_event_with_lambda_billing() {
        let durations: Vec<Duration> = [0.4, 1.2, 2.0, 2.0, 9.5]
            .iter()
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .collect();
        let ticks = Ticks { user: 3, system: 2 };
        let run = summarize(None, &durations, ticks, 2.0, 9.5);
        assert_eq!(run.events, 5);
        // 5 ticks of 10 ms over 5 events.
        assert!((run.cpu_ms_per_event - 10.0).abs() < 1e-9);
        assert!((run.user_ms_per_event - 6.0).abs() < 1e-9);
        assert!((run.p50_ms - 2.0).abs() < 1e-9);
        // Each invocation rounded up to the ms: 1 + 2 + 2 + 2 + 10.
        assert!((run.billed_ms_per_event - 3.4).abs() < 1e-9);
        assert!((run.events_per_s - 2.5).abs() < 1e-9);
        assert_eq!(run.usd_per_million_events, None);
        // At 128 MB: 0.125 GB × 3.4 ms at $0.0000166667 per GB-s, plus $0.20 per million.
        let run = summarize(Some(128), &durations, ticks, 2.0, 9.5);
        assert_eq!(run.usd_per_million_events, Some(0.207));
        assert_eq!(run.cpu_share, Some(0.072));
    }
}
