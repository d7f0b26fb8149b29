//! Which AWS operations each function makes, recorded as it makes them.
//!
//! DynamoDB Local, the simulator and the local Invoke API check no IAM, so a function that
//! calls something its role does not allow passes every local test and fails in AWS. An
//! [`OperationLog`] closes that gap: the local stack gives each function's clients a
//! [`Recorder`] (an SDK interceptor) that writes every distinct operation the function puts
//! on the wire as the IAM action and resource AWS would authorize, one JSON line each:
//!
//! ```json
//! {"function":"sma","action":"dynamodb:Query","resource":{"kind":"index","table":"t","index":"byTransaction"}}
//! ```
//!
//! The CDK app's permission test (`infra/test/permissions.test.ts`) reads these lines and
//! checks each against the function's role in the synthesized template, and the other way
//! round. Recording reads the request as it goes out, so it sees exactly what AWS would:
//! a `TransactWriteItems` is authorized per item, as `ConditionCheckItem`, `PutItem`,
//! `UpdateItem` or `DeleteItem`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use outdial_core::messages::Function;
use serde_json::{Value, json};

/// Where the end-to-end suites write their records unless `OUTDIAL_AWS_OPERATIONS` names
/// another folder: `target/aws-operations` of this workspace, where the permission test looks.
#[must_use]
pub fn default_dir() -> PathBuf {
    std::env::var_os("OUTDIAL_AWS_OPERATIONS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/aws-operations"),
        PathBuf::from,
    )
}

/// This process's log in [`default_dir`], opened on first use: what the test suites record
/// into. `None` (with a warning) when it cannot be opened; the permission test then finds
/// the operations missing.
#[must_use]
pub fn shared() -> Option<OperationLog> {
    static SHARED: std::sync::OnceLock<Option<OperationLog>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let dir = default_dir();
            OperationLog::open(&dir)
                .inspect_err(|e| {
                    tracing::warn!(dir = %dir.display(), error = %e, "operations not recorded");
                })
                .ok()
        })
        .clone()
}

/// One file of operation records, shared by the recorders of a process's functions; each
/// distinct line is written once.
#[derive(Debug, Clone)]
pub struct OperationLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: Mutex<File>,
    seen: Mutex<HashSet<String>>,
}

impl OperationLog {
    /// Opens a file of this process's own in `dir` (created if need be), named for the test
    /// binary or program and the process id.
    ///
    /// # Errors
    /// When the folder or the file cannot be created.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "outdial".to_owned());
        let path = dir.join(format!("{program}-{}.jsonl", std::process::id()));
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                file: Mutex::new(file),
                seen: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The interceptor for the clients of `function`.
    #[must_use]
    pub fn recorder(&self, function: Function) -> Recorder {
        Recorder {
            function,
            log: self.clone(),
        }
    }

    fn write(&self, function: Function, operations: Vec<(String, Value)>) {
        for (action, resource) in operations {
            let line = json!({"function": function.key(), "action": action, "resource": resource})
                .to_string();
            let fresh = match self.inner.seen.lock() {
                Ok(mut seen) => seen.insert(line.clone()),
                Err(_) => return,
            };
            if fresh {
                if let Ok(mut file) = self.inner.file.lock() {
                    // A line lost here shows as a permission the test cannot see used; the
                    // recording never fails the request it watches.
                    let _ = writeln!(file, "{line}");
                }
            }
        }
    }
}

/// The SDK interceptor that records one function's operations. It works for every AWS SDK
/// client: the interceptor trait is the Smithy runtime's, shared by all of them.
#[derive(Debug, Clone)]
pub struct Recorder {
    function: Function,
    log: OperationLog,
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "OperationRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target");
        let body = request.body().bytes().unwrap_or_default();
        self.log
            .write(self.function, operations(target, request.uri(), body));
        Ok(())
    }
}

/// An SDK client that can be rebuilt with a [`Recorder`] among its interceptors.
pub trait Record: Sized {
    /// This client, recording its operations as `recorder`'s when one is given.
    #[must_use]
    fn recorded(self, recorder: Option<&Recorder>) -> Self;
}

macro_rules! record_client {
    ($($sdk:ident),+) => {$(
        impl Record for $sdk::Client {
            fn recorded(self, recorder: Option<&Recorder>) -> Self {
                match recorder {
                    None => self,
                    Some(r) => $sdk::Client::from_conf(
                        self.config().to_builder().interceptor(r.clone()).build(),
                    ),
                }
            }
        }
    )+};
}
record_client!(
    aws_sdk_dynamodb,
    aws_sdk_dynamodbstreams,
    aws_sdk_chimesdkvoice,
    aws_sdk_lambda,
    aws_sdk_eventbridge
);

/// The IAM actions and resources of one request: from its `X-Amz-Target` (the JSON protocols
/// of DynamoDB and DynamoDB Streams) or its path (the REST protocols of the Chime SDK Voice
/// API and Lambda). A request this does not know is recorded as `unknown:<path>`, which no
/// role allows, so the permission test names it.
fn operations(target: Option<&str>, uri: &str, body: &[u8]) -> Vec<(String, Value)> {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(target) = target {
        let (service, operation) = target.split_once('.').unwrap_or((target, ""));
        return if service.starts_with("DynamoDBStreams") {
            vec![(format!("dynamodb:{operation}"), stream_resource(&body))]
        } else if service == "AWSEvents" {
            // PutEvents names its bus per entry.
            let mut buses: Vec<&str> = items(&body, "Entries")
                .map(|e| e["EventBusName"].as_str().unwrap_or("default"))
                .collect();
            buses.sort_unstable();
            buses.dedup();
            buses
                .into_iter()
                .map(|bus| {
                    (
                        format!("events:{operation}"),
                        json!({"kind": "bus", "name": bus}),
                    )
                })
                .collect()
        } else {
            dynamodb(operation, &body)
        };
    }
    let path = uri
        .split_once("://")
        .map_or(uri, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["sip-media-applications", _, "calls"] => vec![(
            "chime:CreateSipMediaApplicationCall".to_owned(),
            json!({"kind": "sma"}),
        )],
        ["sip-media-applications", _, "calls", _] => vec![(
            "chime:UpdateSipMediaApplicationCall".to_owned(),
            json!({"kind": "sma"}),
        )],
        [_, "functions", name, "invocations"] => {
            let name = Function::from_binary(name)
                .map_or_else(|| (*name).to_owned(), |f| f.key().to_owned());
            vec![(
                "lambda:InvokeFunction".to_owned(),
                json!({"kind": "function", "name": name}),
            )]
        }
        _ => vec![(format!("unknown:{path}"), json!({"kind": "any"}))],
    }
}

fn dynamodb(operation: &str, body: &Value) -> Vec<(String, Value)> {
    let table = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_owned();
    let on_table = |t: String| json!({"kind": "table", "table": t});
    match operation {
        "TransactWriteItems" | "TransactGetItems" => items(body, "TransactItems")
            .filter_map(|item| {
                let (kind, part) = item.as_object()?.iter().next()?;
                let action = match kind.as_str() {
                    "ConditionCheck" => "ConditionCheckItem",
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "Get" => "GetItem",
                    _ => return None,
                };
                Some((format!("dynamodb:{action}"), on_table(table(part))))
            })
            .collect(),
        "BatchWriteItem" | "BatchGetItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.keys())
            .map(|t| (format!("dynamodb:{operation}"), on_table(t.clone())))
            .collect(),
        _ => {
            let resource = match body["IndexName"].as_str() {
                Some(index) => json!({"kind": "index", "table": table(body), "index": index}),
                None => on_table(table(body)),
            };
            vec![(format!("dynamodb:{operation}"), resource)]
        }
    }
}

fn items<'a>(body: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    body[key].as_array().into_iter().flatten()
}

/// A stream operation's resource: the stream of the table its ARN (or shard iterator) names
/// (`arn:...:table/<name>/stream/<label>`), or any for `ListStreams`.
fn stream_resource(body: &Value) -> Value {
    // `GetRecords` names its stream only through the shard iterator, which DynamoDB Local
    // makes of the stream's ARN and a position (`<arn>|001|...`).
    let table = body["StreamArn"]
        .as_str()
        .or_else(|| body["ShardIterator"].as_str())
        .and_then(|arn| arn.split_once(":table/"))
        .and_then(|(_, rest)| rest.split('/').next());
    match table {
        Some(table) => json!({"kind": "stream", "table": table}),
        None => json!({"kind": "any"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_is_recorded_as_the_actions_of_its_items() {
        let body = json!({"TransactItems": [
            {"ConditionCheck": {"TableName": "t", "Key": {}}},
            {"Update": {"TableName": "t", "Key": {}}},
            {"Put": {"TableName": "t", "Item": {}}}]});
        let got = operations(
            Some("DynamoDB_20120810.TransactWriteItems"),
            "http://127.0.0.1:8000/",
            body.to_string().as_bytes(),
        );
        let actions: Vec<&str> = got.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            actions,
            [
                "dynamodb:ConditionCheckItem",
                "dynamodb:UpdateItem",
                "dynamodb:PutItem"
            ]
        );
        assert!(
            got.iter()
                .all(|(_, r)| *r == json!({"kind": "table", "table": "t"}))
        );
    }

    #[test]
    fn put_events_is_recorded_once_per_bus_its_entries_name() {
        let body = json!({"Entries": [
            {"EventBusName": "outdial-local", "Source": "outdial"},
            {"EventBusName": "outdial-local", "Source": "outdial"},
            {"EventBusName": "other", "Source": "outdial"}]});
        assert_eq!(
            operations(
                Some("AWSEvents.PutEvents"),
                "http://h/",
                body.to_string().as_bytes()
            ),
            [
                (
                    "events:PutEvents".to_owned(),
                    json!({"kind": "bus", "name": "other"})
                ),
                (
                    "events:PutEvents".to_owned(),
                    json!({"kind": "bus", "name": "outdial-local"})
                ),
            ]
        );
    }

    #[test]
    fn a_query_on_an_index_names_the_index() {
        let body = json!({"TableName": "t", "IndexName": "byTransaction"});
        assert_eq!(
            operations(
                Some("DynamoDB_20120810.Query"),
                "http://h/",
                body.to_string().as_bytes()
            ),
            [(
                "dynamodb:Query".to_owned(),
                json!({"kind": "index", "table": "t", "index": "byTransaction"})
            )]
        );
    }

    #[test]
    fn stream_voice_and_lambda_requests_name_their_resources() {
        let arn = json!({"StreamArn": "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-12-03T00:00:00.000"});
        assert_eq!(
            operations(
                Some("DynamoDBStreams_20120810.GetRecords"),
                "http://h/",
                arn.to_string().as_bytes()
            )[0],
            (
                "dynamodb:GetRecords".to_owned(),
                json!({"kind": "stream", "table": "t"})
            )
        );
        let iterator = json!({"ShardIterator": "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-12-03T00:00:00.000|001|c2hhcmQ="});
        assert_eq!(
            operations(
                Some("DynamoDBStreams_20120810.GetRecords"),
                "http://h/",
                iterator.to_string().as_bytes()
            )[0]
            .1,
            json!({"kind": "stream", "table": "t"})
        );
        assert_eq!(
            operations(
                Some("DynamoDBStreams_20120810.ListStreams"),
                "http://h/",
                b"{}"
            )[0]
            .1,
            json!({"kind": "any"})
        );
        assert_eq!(
            operations(None, "http://h:1/sip-media-applications/sma-1/calls", b"{}")[0].0,
            "chime:CreateSipMediaApplicationCall"
        );
        assert_eq!(
            operations(
                None,
                "http://h:1/sip-media-applications/sma-1/calls/tx",
                b"{}"
            )[0]
            .0,
            "chime:UpdateSipMediaApplicationCall"
        );
        assert_eq!(
            operations(
                None,
                "http://h:1/2015-03-31/functions/outdial-timers/invocations",
                b"{}"
            )[0],
            (
                "lambda:InvokeFunction".to_owned(),
                json!({"kind": "function", "name": "timers"})
            )
        );
        assert_eq!(
            operations(None, "http://h:1/something/else", b"")[0].0,
            "unknown:/something/else"
        );
    }

    #[test]
    fn each_distinct_operation_is_written_once() {
        let dir = std::env::temp_dir().join(format!("outdial-ops-{}", uuid::Uuid::new_v4()));
        let log = OperationLog::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..3 {
            log.write(
                Function::Sma,
                vec![("dynamodb:GetItem".into(), json!({"kind": "any"}))],
            );
        }
        let text: String = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(r#""function":"sma""#));
        let _ = std::fs::remove_dir_all(dir);
    }
}
