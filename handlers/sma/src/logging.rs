//! The SMA function's logging: `lambda_runtime::tracing::init_default_subscriber`'s setup
//! (the level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; JSON lines when
//! Lambda's `AWS_LAMBDA_LOG_FORMAT` is `JSON`, text otherwise) with a leaner JSON line.
//!
//! A JSON line is `{"level":…,"fields":{…},"spans":[{"name":…,…},…]}`: the event's fields,
//! then its spans from the outermost (the invocation's `requestId` and `xrayTraceId`) to the
//! innermost (the SMA event's type, sequence, transaction and call). That is the shape of
//! tracing-subscriber's JSON format without its `span` key, which repeats the innermost span.
//! Its formatter also reads each span's fields back from their JSON text for every line, and
//! that was about a tenth of the function's CPU per event; here the text is spliced in as it
//! is, since the span's fields were written as a JSON object already.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the function's logging (see the module's documentation).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let logs = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        logs.fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .init();
    } else {
        logs.init();
    }
}

/// One log line as JSON (see the module's documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(
            writer,
            "{{\"level\":\"{}\",\"fields\":",
            event.metadata().level()
        )?;
        let mut fields = String::new();
        ctx.format_fields(Writer::new(&mut fields), event)?;
        writer.write_str(object_or_empty(&fields))?;
        writer.write_str(",\"spans\":[")?;
        if let Some(scope) = ctx.event_scope() {
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    writer.write_char(',')?;
                }
                writer.write_str("{\"name\":")?;
                writer.write_str(&serde_json::to_string(span.name()).map_err(|_| fmt::Error)?)?;
                let extensions = span.extensions();
                let inner = extensions
                    .get::<FormattedFields<N>>()
                    .map(|f| members(&f.fields))
                    .unwrap_or_default();
                if !inner.is_empty() {
                    writer.write_char(',')?;
                    writer.write_str(inner)?;
                }
                writer.write_char('}')?;
            }
        }
        writer.write_str("]}\n")
    }
}

/// `fields` when it is a JSON object, else `{}`.
fn object_or_empty(fields: &str) -> &str {
    let trimmed = fields.trim();
    if trimmed.starts_with('{') && trimmed.ends_with('}') {
        trimmed
    } else {
        "{}"
    }
}

/// The members of the JSON object `fields` (what is between its braces), or nothing.
fn members(fields: &str) -> &str {
    object_or_empty(fields)
        .strip_prefix('{')
        .and_then(|f| f.strip_suffix('}'))
        .map_or("", str::trim)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing::{info, info_span};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_json_with_its_fields_and_its_spans_from_the_outermost() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let outer = info_span!("Lambda runtime invoke", requestId = "r-1");
            let _outer = outer.enter();
            let inner = info_span!("sma_event", seq = 3_u64, call_id = tracing::field::Empty);
            let _inner = inner.enter();
            inner.record("call_id", "c \"quoted\"");
            info!(status = "ANSWERED", "event applied");
            drop(_inner);
            drop(_outer);
            info!("outside any span");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            parsed,
            vec![
                serde_json::json!({
                    "level": "INFO",
                    "fields": {"message": "event applied", "status": "ANSWERED"},
                    "spans": [
                        {"name": "Lambda runtime invoke", "requestId": "r-1"},
                        {"name": "sma_event", "seq": 3, "call_id": "c \"quoted\""},
                    ],
                }),
                serde_json::json!({
                    "level": "INFO",
                    "fields": {"message": "outside any span"},
                    "spans": [],
                }),
            ]
        );
    }

    #[test]
    fn anything_but_an_object_is_left_out() {
        assert_eq!(members("{\"a\":1}"), "\"a\":1");
        assert_eq!(members("{}"), "");
        assert_eq!(members("a=1"), "");
        assert_eq!(object_or_empty("a=1"), "{}");
    }
}
