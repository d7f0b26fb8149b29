//! Stream records and invocation events in the JSON shape Lambda builds for a DynamoDB
//! event source mapping.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// The region DynamoDB Local's records claim, as `awsRegion` and in the stream's ARN.
pub const REGION: &str = crate::LOCAL_REGION;
/// The tumbling window the events claim to be in.
const WINDOW: Duration = Duration::from_secs(900);
/// The event Lambda invokes a function with for `records` of one shard, with the fields a
/// tumbling window adds.
#[must_use]
pub fn lambda_event(stream_arn: &str, shard_id: &str, records: &[Value]) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let start = now - now % WINDOW.as_secs();
    let rfc3339 = |secs: u64| {
        DateTime::from_secs(i64::try_from(secs).unwrap_or(0))
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_default()
    };
    json!({
        "Records": records,
        "shardId": shard_id,
        "eventSourceARN": stream_arn,
        "window": {"start": rfc3339(start), "end": rfc3339(start + WINDOW.as_secs())},
        "state": {},
        "isFinalInvokeForWindow": false,
        "isWindowTerminatedEarly": false,
    })
}

/// One stream record in the shape of a Lambda `DynamodbEvent` record.
#[must_use]
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let mut change = Map::new();
    if let Some(d) = &record.dynamodb {
        if let Some(t) = &d.approximate_creation_date_time {
            change.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        for (name, image) in [
            ("Keys", &d.keys),
            ("NewImage", &d.new_image),
            ("OldImage", &d.old_image),
        ] {
            if let Some(image) = image {
                change.insert(name.into(), item_json(image));
            }
        }
        if let Some(seq) = &d.sequence_number {
            change.insert("SequenceNumber".into(), json!(seq));
        }
        change.insert("SizeBytes".into(), json!(d.size_bytes.unwrap_or(0)));
        if let Some(view) = &d.stream_view_type {
            change.insert("StreamViewType".into(), json!(view.as_str()));
        }
    }
    let mut out = json!({
        "eventID": record.event_id.clone().unwrap_or_default(),
        "eventName": record.event_name.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default(),
        "eventVersion": record.event_version.clone().unwrap_or_else(|| "1.1".to_owned()),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region.clone().unwrap_or_else(|| REGION.to_owned()),
        "eventSourceARN": stream_arn,
        "dynamodb": Value::Object(change),
    });
    if let (Some(identity), Some(obj)) = (&record.user_identity, out.as_object_mut()) {
        obj.insert(
            "userIdentity".into(),
            json!({"type": identity.r#type(), "principalId": identity.principal_id()}),
        );
    }
    out
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attr_json(v)))
            .collect(),
    )
}

/// An attribute value in DynamoDB's JSON form (`{"S": "..."}`, `{"N": "1"}`, ...).
fn attr_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(b) => json!({"NULL": b}),
        AttributeValue::B(b) => json!({"B": base64(b.as_ref())}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => {
            json!({"BS": v.iter().map(|b| base64(b.as_ref())).collect::<Vec<_>>()})
        }
        AttributeValue::L(l) => json!({"L": l.iter().map(attr_json).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": item_json(m)}),
        // A type newer than this SDK: keep the record readable and say what it was.
        _ => json!({"NULL": true}),
    }
}

/// Standard base64 with padding, as Lambda encodes binary attributes.
pub(super) fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The sequence number of a record in Lambda's shape.
pub(super) fn seq_of(record: Option<&Value>) -> Option<String> {
    record?
        .pointer("/dynamodb/SequenceNumber")?
        .as_str()
        .map(str::to_owned)
}
