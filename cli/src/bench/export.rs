//! `outdial bench export --contacts N [--json]`: what exporting a campaign's results costs.
//!
//! The API function is served over a local HTTP API on DynamoDB Local (a table without a
//! stream: no counters, nothing dials), and two campaigns are sent to it as `outdial campaign
//! start` sends them: one of `N / 10` contacts and one of `N`, each contact with its own
//! `ref`. Each is then exported by `outdial campaign export` in a process of its own, whose
//! peak resident memory (`VmHWM`) is read from `/proc` while it runs: memory that does not
//! grow with the campaign is what a page-at-a-time export promises. The export's time is its
//! process's wall time, start-up included.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use outdial_adapters::clock::SystemClock;
use outdial_adapters::store::DynamoStore;
use outdial_api::{Api, Auth, Settings};
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::http_api::HttpApi;
use outdial_local::invoke::{Functions, function};
use outdial_local::tables::client;
use serde::Serialize;
use serde_json::json;

use crate::campaign;
use crate::client::Client;
use crate::ingest::{MAX_CONTACTS, NoDialer, NoDispatcher, TOKEN, streamless_table};

/// One export, measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRun {
    pub contacts: u32,
    /// Rows written, the header left out.
    pub rows: u64,
    pub bytes: u64,
    /// The export process's wall time.
    pub export_s: f64,
    pub rows_per_s: f64,
    /// The export process's peak resident memory.
    pub peak_rss_mib: f64,
}

/// What `bench export` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportBench {
    pub small: ExportRun,
    pub large: ExportRun,
    /// The large export's peak memory over the small one's: 1 when memory does not grow with
    /// the campaign.
    pub peak_ratio: f64,
}

const FUNCTION: &str = "outdial-api";

/// Runs the benchmark.
///
/// # Errors
/// When DynamoDB Local cannot start, the API refuses a campaign, or an export fails or does
/// not write one row per contact.
pub async fn export(contacts: u32) -> anyhow::Result<ExportBench> {
    ensure!(
        (10..=MAX_CONTACTS).contains(&contacts),
        "--contacts must be 10 to {MAX_CONTACTS}"
    );
    let endpoint = shared_endpoint()?;
    let ddb = client(&endpoint);
    let table = streamless_table(&ddb, "bench-export").await?;
    let api = Arc::new(Api::new(
        DynamoStore::new(ddb.clone(), &table, 4),
        NoDialer,
        NoDispatcher,
        Arc::new(SystemClock),
        Settings {
            auth: Auth::bearer(TOKEN),
            max_body_bytes: outdial_api::DEFAULT_MAX_BODY_BYTES,
            lease: outdial_api::DEFAULT_LEASE,
        },
    ));
    let functions = Functions::default();
    functions.add(
        FUNCTION,
        function(move |event| {
            let api = Arc::clone(&api);
            async move { outdial_stack::stack::api_invoke(&api, &event).await }
        }),
    );
    let http = HttpApi::start(functions, FUNCTION, 0).await?;
    let url = http.url();
    let client = Client::connect(Some(&url), Some(TOKEN)).await?;
    let dir = std::env::temp_dir().join(format!("outdial-bench-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let runs = async {
        let small = run(&client, &url, &dir, contacts / 10).await?;
        let large = run(&client, &url, &dir, contacts).await?;
        anyhow::Ok((small, large))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    ddb.delete_table().table_name(&table).send().await?;
    let (small, large) = runs?;
    Ok(ExportBench {
        peak_ratio: round(large.peak_rss_mib / small.peak_rss_mib),
        small,
        large,
    })
}

/// A campaign of `contacts`, started and exported.
async fn run(client: &Client, url: &str, dir: &Path, contacts: u32) -> anyhow::Result<ExportRun> {
    let spec = dir.join("spec.json");
    let list = dir.join(format!("contacts-{contacts}.csv"));
    std::fs::write(
        &spec,
        json!({
            "name": "bench export",
            "from": "+15555550199",
            "script": {"caller_name": "Riverside Clinic", "start": "hi",
                       "steps": {"hi": {"say": "Hello {{name}}, this is a reminder from Riverside Clinic."}}},
            "pacing": {"calls_per_second": 10, "max_concurrent": 100}
        })
        .to_string(),
    )?;
    let mut body = String::with_capacity(contacts as usize * 48 + 16);
    body.push_str("to,name,ref\n");
    for i in 0..contacts {
        body.push_str(&format!("+1202{i:07},Contact {i},patient-{i:07}\n"));
    }
    std::fs::write(&list, body)?;
    let started = campaign::start(client, &spec, &list, None).await?;
    ensure!(
        started.accepted == u64::from(contacts),
        "the API accepted {} of {contacts} contacts",
        started.accepted
    );
    let output = dir.join(format!("results-{contacts}.csv"));
    let (elapsed, peak_kib) = exported(url, &started.campaign_id, &output).await?;
    let text = std::fs::read_to_string(&output)?;
    let rows = text.lines().count().saturating_sub(1) as u64;
    ensure!(
        rows == u64::from(contacts),
        "the export has {rows} rows for {contacts} contacts"
    );
    #[allow(clippy::cast_precision_loss)]
    Ok(ExportRun {
        contacts,
        rows,
        bytes: text.len() as u64,
        export_s: round(elapsed.as_secs_f64()),
        rows_per_s: round(rows as f64 / elapsed.as_secs_f64()),
        peak_rss_mib: round(peak_kib as f64 / 1024.0),
    })
}

/// Runs `outdial campaign export ID -o FILE` against `url` and watches its peak memory.
async fn exported(url: &str, id: &str, output: &Path) -> anyhow::Result<(Duration, u64)> {
    let exe = std::env::current_exe().context("finding the outdial binary")?;
    let args: Vec<String> = ["campaign", "export", id, "-o"]
        .into_iter()
        .map(str::to_owned)
        .chain([
            output.display().to_string(),
            "--api".to_owned(),
            url.to_owned(),
            "--token".to_owned(),
            TOKEN.to_owned(),
        ])
        .collect();
    tokio::task::spawn_blocking(move || watch(&exe, &args))
        .await
        .context("the export's watcher")?
}

fn watch(exe: &PathBuf, args: &[String]) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = std::process::Command::new(exe)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting outdial campaign export")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        // The high-water mark only grows: its last reading is the peak, to within one poll.
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .as_deref()
            .and_then(vm_hwm_kib)
        {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait()? {
            let elapsed = started.elapsed();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            ensure!(status.success(), "outdial campaign export failed: {stderr}");
            ensure!(
                peak > 0,
                "the export's memory could not be read from {status_file}"
            );
            return Ok((elapsed, peak));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `VmHWM` (kB) of a `/proc/<pid>/status` text.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status_kib(status, "VmHWM")
}

/// A memory field (kB) of a `/proc/<pid>/status` text: `VmHWM`, `VmRSS`.
pub(crate) fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The resident memory of process `pid` (`self` for this one) now, in MiB.
pub(crate) fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    #[allow(clippy::cast_precision_loss)]
    status_kib(&status, "VmRSS").map(|kib| kib as f64 / 1024.0)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The report as text.
#[must_use]
pub fn text(b: &ExportBench) -> String {
    let line = |r: &ExportRun| {
        format!(
            "{} contacts: {} rows, {} bytes in {:.2} s ({:.0} rows/s), peak memory {:.1} MiB\n",
            r.contacts, r.rows, r.bytes, r.export_s, r.rows_per_s, r.peak_rss_mib
        )
    };
    format!(
        "{}{}peak memory ratio (large / small): {:.2}\n",
        line(&b.small),
        line(&b.large),
        b.peak_ratio
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_is_read_from_proc_status() {
        let status = "Name:\toutdial\nVmPeak:\t  200000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(12_345));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
    }
}
