//! `outdial campaign export ID [-o FILE]`: a campaign's results as one CSV file, one row per
//! contact, fetched a page at a time from `GET /campaigns/{id}/results` and written as each
//! page arrives, so memory holds one page whatever the campaign's size. A progress line on
//! stderr counts the rows against the campaign's contacts.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::client::Client;

/// Rows per page asked for: the API's most.
pub const PAGE_ROWS: u32 = 1000;

/// Where pages come from: the API over HTTP, or (in the benchmark) the API handler itself.
pub trait Pages {
    /// `GET path`: the page's text and the next page's cursor.
    fn page(&self, path: &str) -> impl Future<Output = anyhow::Result<(String, Option<String>)>>;
}

impl Pages for Client {
    async fn page(&self, path: &str) -> anyhow::Result<(String, Option<String>)> {
        self.get_page(path).await
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Exported {
    /// Rows, the header left out.
    pub rows: u64,
    pub pages: u64,
    pub bytes: u64,
}

/// Writes every page of campaign `id`'s results to `out`; `contacts` (when known) sizes the
/// progress line written to `progress` (nothing when `None`).
///
/// # Errors
/// When a page cannot be fetched or `out` cannot be written.
pub async fn export(
    pages: &impl Pages,
    id: &str,
    contacts: Option<u64>,
    out: &mut dyn Write,
    mut progress: Option<&mut dyn Write>,
) -> anyhow::Result<Exported> {
    let mut done = Exported::default();
    let mut cursor: Option<String> = None;
    let mut drawn = Instant::now();
    loop {
        let mut path = format!("/campaigns/{id}/results?limit={PAGE_ROWS}");
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let (text, next) = pages.page(&path).await?;
        out.write_all(text.as_bytes())
            .context("writing the results")?;
        // No field holds a line break (references refuse control characters), so a row is a
        // line.
        let lines = text.lines().count() as u64;
        done.rows += if cursor.is_none() {
            lines.saturating_sub(1)
        } else {
            lines
        };
        done.pages += 1;
        done.bytes += text.len() as u64;
        if let Some(p) = progress.as_deref_mut() {
            if next.is_none() || drawn.elapsed() >= Duration::from_millis(200) {
                write!(p, "\r\x1b[2K{}", line(done.rows, contacts))?;
                p.flush()?;
                drawn = Instant::now();
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    out.flush().context("writing the results")?;
    if let Some(p) = progress {
        writeln!(p)?;
    }
    Ok(done)
}

/// The progress line: a bar when the total is known, and the rows so far.
#[must_use]
pub fn line(rows: u64, contacts: Option<u64>) -> String {
    const WIDTH: u64 = 30;
    match contacts.filter(|c| *c > 0) {
        Some(total) => {
            let filled = (rows.min(total) * WIDTH / total) as usize;
            format!(
                "[{}{}] {rows}/{total} rows",
                "#".repeat(filled),
                ".".repeat(WIDTH as usize - filled)
            )
        }
        None => format!("{rows} rows"),
    }
}

/// `outdial campaign export`: to `output` (stdout when `None`), the progress line on stderr
/// when it is a terminal.
///
/// # Errors
/// When the campaign is unknown, a page cannot be fetched or the file cannot be written.
pub async fn run(
    client: &Client,
    id: &str,
    output: Option<&std::path::Path>,
) -> anyhow::Result<Exported> {
    let campaign = client.get(&format!("/campaigns/{id}")).await?;
    let contacts = campaign["contacts"].as_u64();
    let mut stderr = std::io::stderr();
    let progress: Option<&mut dyn Write> = if stderr.is_terminal() {
        Some(&mut stderr)
    } else {
        None
    };
    match output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            export(client, id, contacts, &mut out, progress).await
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            export(client, id, contacts, &mut out, progress).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Three pages, as the API serves them.
    struct Served(BTreeMap<String, (String, Option<String>)>);

    impl Pages for Served {
        async fn page(&self, path: &str) -> anyhow::Result<(String, Option<String>)> {
            self.0
                .get(path)
                .cloned()
                .with_context(|| format!("unexpected {path}"))
        }
    }

    #[tokio::test]
    async fn pages_are_written_end_to_end_and_counted_without_the_header() {
        let base = "/campaigns/cmp_1/results?limit=1000";
        let served = Served(BTreeMap::from([
            (
                base.to_owned(),
                (
                    "call_id,ref\nc1,a\nc2,b\n".to_owned(),
                    Some("Q.c2".to_owned()),
                ),
            ),
            (
                format!("{base}&cursor=Q.c2"),
                ("c3,\"x, y\"\n".to_owned(), Some("Q.c3".to_owned())),
            ),
            (format!("{base}&cursor=Q.c3"), (String::new(), None)),
        ]));
        let mut out = Vec::new();
        let mut progress = Vec::new();
        let done = export(&served, "cmp_1", Some(3), &mut out, Some(&mut progress))
            .await
            .unwrap();
        assert_eq!(
            done,
            Exported {
                rows: 3,
                pages: 3,
                bytes: 32
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "call_id,ref\nc1,a\nc2,b\nc3,\"x, y\"\n"
        );
        assert!(
            String::from_utf8(progress)
                .unwrap()
                .contains("[##############################] 3/3 rows")
        );
    }

    #[test]
    fn the_progress_line_works_without_a_total() {
        assert_eq!(line(5, None), "5 rows");
        assert_eq!(
            line(5, Some(10)),
            format!("[{}{}] 5/10 rows", "#".repeat(15), ".".repeat(15))
        );
    }
}
