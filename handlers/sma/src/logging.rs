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
//! is, since the span's fields were written as a JSON object already. The fields themselves
//! are written by [`JsonObject`] as they are visited, where tracing-subscriber's `JsonFields`
//! gathers them into a map of JSON values first: three times per event (two spans and the
//! line), which was another few per cent.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
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
        logs.fmt_fields(JsonObject).event_format(JsonLine).init();
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

/// An event's or a span's fields as one JSON object, written as they are visited: strings
/// (and anything shown with `Debug` or `Display`) escaped, integers and booleans as they are,
/// a float as a number when it is finite.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonObject;

impl<'w> FormatFields<'w> for JsonObject {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut members = Members::default();
        fields.record(&mut members);
        writer.write_char('{')?;
        writer.write_str(&members.0)?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut added = Members::default();
        fields.record(&mut added);
        if added.0.is_empty() {
            return Ok(());
        }
        // A field recorded after its span was made (rare: the call's id found from the
        // transaction): merged, so a key recorded again replaces its value.
        let mut merged: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&current.fields).unwrap_or_default();
        let added: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!("{{{}}}", added.0)).map_err(|_| fmt::Error)?;
        merged.extend(added);
        current.fields = serde_json::Value::Object(merged).to_string();
        Ok(())
    }
}

/// The members of a JSON object (between its braces), written by visiting fields.
#[derive(Default)]
struct Members(String);

impl Members {
    fn key(&mut self, field: &Field) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        let name = field.name();
        quoted(&mut self.0, name.strip_prefix("r#").unwrap_or(name));
        self.0.push(':');
    }

    /// `value`, shown with `Display` or `Debug`, as a JSON string.
    fn shown(&mut self, value: fmt::Arguments<'_>) {
        self.0.push('"');
        // Writing to a `String` cannot fail.
        let _ = Escaped(&mut self.0).write_fmt(value);
        self.0.push('"');
    }
}

impl Visit for Members {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        quoted(&mut self.0, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.shown(format_args!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        self.shown(format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.0, "{value}");
        } else {
            self.shown(format_args!("{value}"));
        }
    }
}

/// `text` as a JSON string.
fn quoted(out: &mut String, text: &str) {
    out.push('"');
    let _ = Escaped(out).write_str(text);
    out.push('"');
}

/// Writes text into a JSON string's body: quotes, backslashes and control characters escaped.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            self.0.push_str(&rest[..at]);
            let c = rest[at..].chars().next().unwrap_or(' ');
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                other => write!(self.0, "\\u{:04x}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.push_str(rest);
        Ok(())
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

    /// What `log` writes through the function's JSON format.
    fn logged(log: impl FnOnce()) -> String {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .fmt_fields(JsonObject)
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_line_is_json_with_its_fields_and_its_spans_from_the_outermost() {
        let text = logged(|| {
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
    fn every_kind_of_value_is_written_as_json_and_a_field_recorded_later_joins_its_span() {
        let error = io::Error::other("disk \"full\"\n");
        let text = logged(|| {
            let span = info_span!(
                "sma_event",
                seq = 2_u64,
                call_id = tracing::field::Empty,
                r#type = "RINGING"
            );
            let _entered = span.enter();
            span.record("call_id", "c-1");
            span.record("seq", 3_u64);
            tracing::warn!(
                text = "tab\there \u{1} \\ end ünï",
                shown = ?vec!["a\"b"],
                error = &error as &(dyn std::error::Error + 'static),
                negative = -4_i64,
                flag = true,
                ratio = 0.25_f64,
                infinite = f64::INFINITY,
                "a \"quoted\" message"
            );
        });
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "level": "WARN",
                "fields": {
                    "message": "a \"quoted\" message",
                    "text": "tab\there \u{1} \\ end ünï",
                    "shown": "[\"a\\\"b\"]",
                    "error": "disk \"full\"\n",
                    "negative": -4,
                    "flag": true,
                    "ratio": 0.25,
                    "infinite": "inf",
                },
                "spans": [{"name": "sma_event", "seq": 3, "call_id": "c-1", "type": "RINGING"}],
            })
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
