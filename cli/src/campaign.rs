//! `outdial campaign start | watch | report`: a campaign from a spec and a contact list, its
//! progress live, and its outcome.
//!
//! A contact list larger than one request is sent in chunks: the first creates the campaign,
//! the rest are appended to it (`POST /campaigns/{id}/contacts`). Every request carries an
//! `Idempotency-Key` derived from one key per upload, so a command that is run again after a
//! failure resends what failed and duplicates nothing. The lines of rejected rows are the
//! lines of the original file.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::Client;

/// Rows per request at most; the bytes bound below usually binds first.
const CHUNK_ROWS: usize = 50_000;
/// Bytes per request at most: under Lambda's 6 MB synchronous payload.
const CHUNK_BYTES: usize = 4_500_000;

/// What `campaign start` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Started {
    pub campaign_id: String,
    pub accepted: u64,
    pub rejected_count: u64,
    /// `{line, field, reason}` per rejected row, with the original file's line numbers.
    pub rejected: Vec<Value>,
    pub requests: u32,
}

/// Splits a CSV file into chunks of whole lines, each starting with the header; returns
/// each chunk and the file line its first data row is on.
fn chunks(csv: &str) -> anyhow::Result<Vec<(String, usize)>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .context("the contact list is empty: no header row")?;
    let mut out = Vec::new();
    let mut current = String::new();
    let mut rows = 0;
    let mut first_line = 2;
    for (i, line) in lines.enumerate() {
        if rows == CHUNK_ROWS || current.len() + line.len() + 1 > CHUNK_BYTES {
            out.push((std::mem::take(&mut current), first_line));
            rows = 0;
        }
        if rows == 0 {
            current.push_str(header);
            current.push('\n');
            first_line = i + 2;
        }
        current.push_str(line);
        current.push('\n');
        rows += 1;
    }
    if rows > 0 {
        out.push((current, first_line));
    }
    if out.is_empty() {
        bail!("the contact list has a header but no contacts");
    }
    Ok(out)
}

/// Rejected rows of one chunk, renumbered to the file's lines.
fn renumber(rejected: &Value, first_line: usize) -> Vec<Value> {
    rejected
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let mut r = r.clone();
                    if let Some(line) = r["line"].as_u64() {
                        // Line 2 of a chunk is its first data row.
                        r["line"] = json!(line + first_line as u64 - 2);
                    }
                    r
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `outdial campaign start --spec campaign.json --csv contacts.csv`.
///
/// # Errors
/// When a file cannot be read, the API refuses the campaign, or cannot be reached.
pub async fn start(
    client: &Client,
    spec_path: &Path,
    csv_path: &Path,
    key: Option<String>,
) -> anyhow::Result<Started> {
    let spec = std::fs::read_to_string(spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))?;
    let spec: Value = serde_json::from_str(&spec)
        .with_context(|| format!("{} is not JSON", spec_path.display()))?;
    // A file that holds `{"spec": ...}` (the JSON form of POST /campaigns) works too.
    let spec = spec.get("spec").cloned().unwrap_or(spec);
    let csv = std::fs::read_to_string(csv_path)
        .with_context(|| format!("reading {}", csv_path.display()))?;
    let key = key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut started: Option<Started> = None;
    for (i, (chunk, first_line)) in chunks(&csv)?.into_iter().enumerate() {
        let headers = [
            ("content-type", "text/csv".to_owned()),
            ("idempotency-key", format!("{key}-{i}")),
            ("x-outdial-spec", spec.to_string()),
        ];
        let path = match &started {
            None => "/campaigns".to_owned(),
            Some(s) => format!("/campaigns/{}/contacts", s.campaign_id),
        };
        let body = client
            .send(reqwest::Method::POST, &path, &headers, chunk.into_bytes())
            .await?
            .ok()
            .with_context(|| format!("request {} of the upload (key {key})", i + 1))?;
        let accepted = body["accepted"].as_u64().unwrap_or(0);
        let rejected_count = body["rejected_count"].as_u64().unwrap_or(0);
        let rejected = renumber(&body["rejected"], first_line);
        match &mut started {
            None => {
                started = Some(Started {
                    campaign_id: body["campaign_id"]
                        .as_str()
                        .context("the API's answer has no campaign_id")?
                        .to_owned(),
                    accepted,
                    rejected_count,
                    rejected,
                    requests: 1,
                });
            }
            Some(s) => {
                s.accepted += accepted;
                s.rejected_count += rejected_count;
                s.rejected.extend(rejected);
                s.requests += 1;
            }
        }
    }
    started.context("nothing was sent")
}

/// A campaign's state as `GET /campaigns/{id}` gives it, reduced to what the progress line
/// shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub status: String,
    pub contacts: i64,
    pub terminal: i64,
    pub by_status: BTreeMap<String, i64>,
    pub placed: i64,
}

impl Progress {
    fn from(body: &Value) -> Self {
        let by_status: BTreeMap<String, i64> = body["counts"]["by_status"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let terminal = by_status
            .iter()
            .filter(|(k, _)| {
                k.parse::<outdial_core::lifecycle::CallStatus>()
                    .is_ok_and(outdial_core::lifecycle::CallStatus::is_terminal)
            })
            .map(|(_, v)| *v)
            .sum();
        Self {
            status: body["status"].as_str().unwrap_or("?").to_owned(),
            contacts: body["contacts"].as_i64().unwrap_or(0),
            terminal,
            by_status,
            placed: body["counts"]["placed"].as_i64().unwrap_or(0),
        }
    }

    /// Whether nothing more will happen to the campaign's calls.
    #[must_use]
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED")
            || (self.contacts > 0 && self.terminal >= self.contacts)
    }

    /// One line: a bar, the counts by status, the dial rate and the time left.
    #[must_use]
    pub fn line(&self, rate: f64) -> String {
        const WIDTH: usize = 30;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let filled = if self.contacts > 0 {
            ((self.terminal as f64 / self.contacts as f64) * WIDTH as f64).round() as usize
        } else {
            0
        }
        .min(WIDTH);
        let counts: Vec<String> = self
            .by_status
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let left = self.contacts - self.terminal;
        #[allow(clippy::cast_precision_loss)]
        let eta = if self.finished() {
            "done".to_owned()
        } else if rate > 0.0 {
            format!("ETA {:.0}s", left as f64 / rate)
        } else {
            "ETA -".to_owned()
        };
        format!(
            "[{}{}] {}/{} {} | {} | {:.1} dials/s | {}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            self.terminal,
            self.contacts,
            self.status,
            counts.join(" "),
            rate,
            eta
        )
    }
}

/// `outdial campaign watch ID`: redraws the progress line every `every` until the campaign
/// is finished (or `limit` passes), and returns the last state.
///
/// # Errors
/// When the API cannot be reached or does not know the campaign.
pub async fn watch(
    client: &Client,
    id: &str,
    every: Duration,
    limit: Option<Duration>,
    out: &mut dyn Write,
) -> anyhow::Result<Progress> {
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut last_line = Instant::now() - Duration::from_secs(60);
    let mut samples: Vec<(Instant, i64)> = Vec::new();
    loop {
        let body = client.get(&format!("/campaigns/{id}")).await?;
        let progress = Progress::from(&body);
        let now = Instant::now();
        samples.push((now, progress.placed));
        samples.retain(|(at, _)| now.duration_since(*at) <= Duration::from_secs(10));
        let rate = match (samples.first(), samples.last()) {
            (Some((a, pa)), Some((b, pb))) if b > a => {
                #[allow(clippy::cast_precision_loss)]
                let r = (pb - pa) as f64 / b.duration_since(*a).as_secs_f64();
                r
            }
            _ => 0.0,
        };
        let line = progress.line(rate);
        let finished = progress.finished();
        let out_of_time = limit.is_some_and(|l| started.elapsed() >= l);
        if tty {
            write!(out, "\r\x1b[2K{line}")?;
        } else if finished || out_of_time || now.duration_since(last_line) >= Duration::from_secs(5)
        {
            writeln!(out, "{line}")?;
            last_line = now;
        }
        out.flush()?;
        if finished || out_of_time {
            if tty {
                writeln!(out)?;
            }
            return Ok(progress);
        }
        tokio::time::sleep(every).await;
    }
}

/// Every call of a campaign, page by page.
///
/// # Errors
/// When the API cannot be reached.
pub async fn all_calls(client: &Client, id: &str) -> anyhow::Result<Vec<Value>> {
    let mut calls = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/campaigns/{id}/calls?limit=1000");
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let page = client.get(&path).await?;
        calls.extend(page["calls"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(calls),
        }
    }
}

/// What `campaign report` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub campaign_id: String,
    pub name: String,
    pub status: String,
    pub contacts: i64,
    /// Calls per status, counted from the call records.
    pub by_status: BTreeMap<String, u64>,
    /// Calls per number of attempts made.
    pub attempts: BTreeMap<u32, u64>,
    /// Calls per script outcome (`none` for calls the script never concluded).
    pub script_outcomes: BTreeMap<String, u64>,
    /// Calls ended without a dial, by reason (`cap`, `do-not-call`, ...), from the records.
    pub skipped: BTreeMap<String, u64>,
    /// Calls waiting with a reason (`legal-hours`, `window`, ...), from the records.
    pub held: BTreeMap<String, u64>,
    /// Calls by who answered, as answering-machine detection judged (`person`, `machine`,
    /// `undecided`), from the records; empty when the script never listened.
    pub verdicts: BTreeMap<String, u64>,
    /// The campaign's counters, as the stream handler keeps them.
    pub counters: Value,
}

impl Report {
    /// Calls in a final status.
    #[must_use]
    pub fn terminal(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| {
                s.parse::<outdial_core::lifecycle::CallStatus>()
                    .is_ok_and(outdial_core::lifecycle::CallStatus::is_terminal)
            })
            .map(|(_, n)| *n)
            .sum()
    }
}

/// Builds the report from the campaign and every call record.
///
/// # Errors
/// When the API cannot be reached or does not know the campaign.
pub async fn report(client: &Client, id: &str) -> anyhow::Result<Report> {
    let campaign = client.get(&format!("/campaigns/{id}")).await?;
    let calls = all_calls(client, id).await?;
    let mut by_status = BTreeMap::new();
    let mut attempts = BTreeMap::new();
    let mut script_outcomes = BTreeMap::new();
    let (mut skipped, mut held) = (BTreeMap::new(), BTreeMap::new());
    let mut verdicts = BTreeMap::new();
    for call in &calls {
        let status = call["status"].as_str().unwrap_or("?").to_owned();
        if let Some(reason) = call["reason"].as_str() {
            let by = if status == "CANCELLED" {
                &mut skipped
            } else {
                &mut held
            };
            *by.entry(reason.to_owned()).or_insert(0) += 1;
        }
        // In RETRY_WAIT, `attempt` is the one that comes next.
        let made = call["attempt"].as_u64().unwrap_or(1);
        let made = if status == "RETRY_WAIT" || status == "QUEUED" {
            made.saturating_sub(1)
        } else {
            made
        };
        *by_status.entry(status).or_insert(0) += 1;
        *attempts
            .entry(u32::try_from(made).unwrap_or(u32::MAX))
            .or_insert(0) += 1;
        let outcome = call["script_outcome"].as_str().unwrap_or("none").to_owned();
        *script_outcomes.entry(outcome).or_insert(0) += 1;
        if let Some(verdict) = call["verdict"].as_str() {
            *verdicts.entry(verdict.to_owned()).or_insert(0) += 1;
        }
    }
    Ok(Report {
        campaign_id: id.to_owned(),
        name: campaign["name"].as_str().unwrap_or_default().to_owned(),
        status: campaign["status"].as_str().unwrap_or("?").to_owned(),
        contacts: campaign["contacts"].as_i64().unwrap_or(0),
        by_status,
        attempts,
        script_outcomes,
        skipped,
        held,
        verdicts,
        counters: campaign["counts"].clone(),
    })
}

/// The report as a table.
#[must_use]
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "campaign {} \"{}\": {}, {} contacts\n",
        r.campaign_id, r.name, r.status, r.contacts
    );
    let calls: u64 = r.by_status.values().sum();
    // Each section's shares are of `total`: every call, or the calls listened to.
    let section = |out: &mut String, title: &str, rows: Vec<(String, u64)>, total: u64| {
        out.push_str(&format!("\n{title:<24} {:>8} {:>7}\n", "calls", "share"));
        for (k, n) in rows {
            #[allow(clippy::cast_precision_loss)]
            let share = if total > 0 {
                100.0 * n as f64 / total as f64
            } else {
                0.0
            };
            out.push_str(&format!("{k:<24} {n:>8} {share:>6.1}%\n"));
        }
    };
    section(
        &mut out,
        "outcome",
        r.by_status.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        calls,
    );
    section(
        &mut out,
        "attempts made",
        r.attempts
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        calls,
    );
    section(
        &mut out,
        "script outcome",
        r.script_outcomes
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        calls,
    );
    if !r.verdicts.is_empty() {
        section(
            &mut out,
            "answered by",
            verdict_rows(&r.verdicts),
            r.verdicts.values().sum(),
        );
    }
    for (title, by_reason) in [
        ("ended without a dial", &r.skipped),
        ("held now, because", &r.held),
    ] {
        if !by_reason.is_empty() {
            section(
                &mut out,
                title,
                by_reason.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                calls,
            );
        }
    }
    if let (Some(answered), Some(talk)) = (
        r.counters["answered"].as_i64(),
        r.counters["talk_ms"].as_i64(),
    ) {
        if answered > 0 {
            #[allow(clippy::cast_precision_loss)]
            let avg = talk as f64 / answered as f64 / 1000.0;
            out.push_str(&format!(
                "\n{answered} attempts answered, {avg:.1} s of talk on average\n"
            ));
        }
    }
    out
}

/// The verdicts in the order a reader looks for them (`person`, `machine`, `undecided`),
/// then any other the API may one day add.
fn verdict_rows(verdicts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    const ORDER: [&str; 3] = ["person", "machine", "undecided"];
    let known = ORDER
        .iter()
        .filter_map(|k| verdicts.get(*k).map(|n| ((*k).to_owned(), *n)));
    let others = verdicts
        .iter()
        .filter(|(k, _)| !ORDER.contains(&k.as_str()))
        .map(|(k, n)| (k.clone(), *n));
    known.chain(others).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_split_into_chunks_that_each_start_with_the_header() {
        let csv = "to,name\n+15555550100,a\n+15555550101,b\n";
        let chunks = chunks(csv).unwrap();
        assert_eq!(chunks, vec![(csv.to_owned(), 2)]);
        assert!(super::chunks("to,name\n").is_err());
        assert!(super::chunks("").is_err());
    }

    #[test]
    fn the_report_shows_the_reasons_of_calls_skipped_and_held() {
        let report = Report {
            campaign_id: "cmp_1".into(),
            name: "reminders".into(),
            status: "ACTIVE".into(),
            contacts: 4,
            by_status: BTreeMap::from([("CANCELLED".into(), 2), ("QUEUED".into(), 2)]),
            attempts: BTreeMap::from([(0, 4)]),
            script_outcomes: BTreeMap::from([("none".into(), 4)]),
            skipped: BTreeMap::from([("cap".into(), 1), ("do-not-call".into(), 1)]),
            held: BTreeMap::from([("legal-hours".into(), 2)]),
            verdicts: BTreeMap::new(),
            counters: json!({}),
        };
        let text = table(&report);
        let line = |title: &str, key: &str| {
            let section = text.split(title).nth(1).unwrap_or_default();
            section
                .lines()
                .find(|l| l.starts_with(key))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        };
        assert_eq!(
            line("ended without a dial", "cap"),
            Some("cap 1 25.0%".into())
        );
        assert_eq!(
            line("ended without a dial", "do-not-call"),
            Some("do-not-call 1 25.0%".into())
        );
        assert_eq!(
            line("held now, because", "legal-hours"),
            Some("legal-hours 2 50.0%".into())
        );
        let without = Report {
            skipped: BTreeMap::new(),
            held: BTreeMap::new(),
            ..report
        };
        assert!(!table(&without).contains("held now"));
        assert!(!table(&without).contains("answered by"));
    }

    #[test]
    fn the_report_shows_who_answered_and_the_voicemail_outcomes_with_the_others() {
        let report = Report {
            campaign_id: "cmp_1".into(),
            name: "reminders".into(),
            status: "COMPLETED".into(),
            contacts: 5,
            by_status: BTreeMap::from([("COMPLETED".into(), 4), ("NO_ANSWER".into(), 1)]),
            attempts: BTreeMap::from([(1, 5)]),
            script_outcomes: BTreeMap::from([
                ("confirmed".into(), 1),
                ("voicemail_left".into(), 2),
                ("none".into(), 2),
            ]),
            skipped: BTreeMap::new(),
            held: BTreeMap::new(),
            verdicts: BTreeMap::from([
                ("machine".into(), 2),
                ("person".into(), 1),
                ("undecided".into(), 1),
            ]),
            counters: json!({}),
        };
        let text = table(&report);
        let section = text.split("answered by").nth(1).unwrap_or_default();
        let rows: Vec<String> = section
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        // Shares of the four calls listened to, people first.
        assert_eq!(
            rows,
            ["person 1 25.0%", "machine 2 50.0%", "undecided 1 25.0%"],
            "{text}"
        );
        let outcomes = text.split("script outcome").nth(1).unwrap_or_default();
        assert!(
            outcomes
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["voicemail_left", "2", "40.0%"]),
            "{text}"
        );
    }

    #[test]
    fn rejected_lines_are_renumbered_to_the_file() {
        let rejected = json!([{"line": 2, "reason": "x"}, {"line": 5, "reason": "y"}]);
        let lines: Vec<u64> = renumber(&rejected, 50_002)
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, [50_002, 50_005]);
    }

    #[test]
    fn the_progress_line_shows_the_share_done_and_the_counts() {
        let body = json!({"status": "ACTIVE", "contacts": 10,
            "counts": {"placed": 6, "by_status": {"COMPLETED": 4, "BUSY": 1, "QUEUED": 5, "DIALING": 0}}});
        let p = Progress::from(&body);
        assert_eq!(p.terminal, 5);
        assert!(!p.finished());
        let line = p.line(2.0);
        assert!(
            line.starts_with("[###############..............."),
            "{line}"
        );
        assert!(line.contains("5/10 ACTIVE"), "{line}");
        assert!(line.contains("BUSY 1 COMPLETED 4 QUEUED 5"), "{line}");
        assert!(line.contains("ETA 2s") || line.contains("ETA 3s"), "{line}");
    }
}
