//! The SMA's hand-signed `UpdateItem` (`outdial_adapters::direct`): signed so that a SigV4
//! check accepts it as it accepts the SDK's own requests, sent where the SDK client sends,
//! every kind of attribute value written and read back exactly by DynamoDB Local, and the
//! answers a server may give (refusals, throttling, failures, errors) taken as the store
//! expects. The store's event writes through it are tested beside the SDK's in `store.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod scripted;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::date_time::{DateTime, Format};
use outdial_adapters::condition::Expressions;
use outdial_adapters::direct::{DirectWrites, ServiceError, Update, Updated};
use outdial_adapters::item::Item;
use outdial_core::ports::StoreError;
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{fresh_table, sma_clients};
use scripted::{Seen, server};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn key(pk: &str) -> Item {
    outdial_adapters::item::key(pk.to_owned(), "CALL")
}

/// `SET` of every placeholder in `values` to the attribute of the same name.
fn set_all(values: &Item) -> (String, Expressions) {
    let names: Vec<(String, String)> = values
        .keys()
        .map(|p| {
            let name = p.trim_start_matches(':');
            (format!("#{name}"), name.to_owned())
        })
        .collect();
    let sets: Vec<String> = names
        .iter()
        .map(|(n, _)| format!("{n} = :{}", &n[1..]))
        .collect();
    (
        format!("SET {}", sets.join(", ")),
        Expressions {
            condition: None,
            names,
            values: values.clone().into_iter().collect(),
        },
    )
}

/// A DynamoDB client and direct writes beside it, the SDK client's endpoint shown to them by
/// one `GetItem`.
async fn warmed(endpoint: &str) -> (Client, Arc<DirectWrites>) {
    let (client, _, direct) = sma_clients(endpoint);
    assert!(
        !direct.ready(),
        "nothing is known before the SDK's first request"
    );
    let _ = client
        .get_item()
        .table_name("warm")
        .set_key(Some(key("WARM")))
        .send()
        .await;
    assert!(direct.ready());
    (client, direct)
}

#[tokio::test]
async fn every_kind_of_value_is_written_and_read_back_exactly() {
    let endpoint = shared_endpoint().expect("DynamoDB Local");
    let (client, direct) = warmed(&endpoint).await;
    let table = fresh_table(&client, "direct").await.unwrap();
    let values: Item = HashMap::from([
        (
            ":text".to_owned(),
            s("a \"quoted\" line\nwith é, 日本 and \u{1}"),
        ),
        (":number".to_owned(), AttributeValue::N("-12.5".into())),
        (
            ":bytes".to_owned(),
            AttributeValue::B(Blob::new(vec![0, 255, 7, 10])),
        ),
        (":yes".to_owned(), AttributeValue::Bool(true)),
        (":no".to_owned(), AttributeValue::Bool(false)),
        (":nothing".to_owned(), AttributeValue::Null(true)),
        (
            ":list".to_owned(),
            AttributeValue::L(vec![s("x"), AttributeValue::L(Vec::new())]),
        ),
        (
            ":map".to_owned(),
            AttributeValue::M(HashMap::from([(
                "inner".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "n".to_owned(),
                    AttributeValue::N("1".into()),
                )])),
            )])),
        ),
        (
            ":strings".to_owned(),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
        ),
        (
            ":numbers".to_owned(),
            AttributeValue::Ns(vec!["1".into(), "2.5".into()]),
        ),
        (
            ":blobs".to_owned(),
            AttributeValue::Bs(vec![Blob::new(vec![1u8]), Blob::new(vec![2u8, 3])]),
        ),
    ]);
    let (expression, guard) = set_all(&values);
    let k = key("KINDS");
    let Updated::Written(returned) = direct
        .update_item(&Update {
            table: &table,
            key: &k,
            expression: &expression,
            guard: &guard,
            new_image: true,
        })
        .await
        .unwrap()
    else {
        panic!("an unconditional update is written");
    };
    let stored = client
        .get_item()
        .table_name(&table)
        .set_key(Some(k.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(returned, stored, "ALL_NEW is the item as stored");
    for (placeholder, value) in &values {
        let name = placeholder.trim_start_matches(':');
        let got = &stored[name];
        match (value, got) {
            // Sets come back in the store's order.
            (AttributeValue::Ss(a), AttributeValue::Ss(b))
            | (AttributeValue::Ns(a), AttributeValue::Ns(b)) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort();
                b.sort();
                assert_eq!(a, b, "{name}");
            }
            (AttributeValue::Bs(a), AttributeValue::Bs(b)) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort_by(|x, y| x.as_ref().cmp(y.as_ref()));
                b.sort_by(|x, y| x.as_ref().cmp(y.as_ref()));
                assert_eq!(a, b, "{name}");
            }
            _ => assert_eq!(value, got, "{name}"),
        }
    }
}

#[tokio::test]
async fn a_refusal_hands_back_the_old_item_or_none_and_a_missing_table_is_not_retried() {
    let endpoint = shared_endpoint().expect("DynamoDB Local");
    let (client, direct) = warmed(&endpoint).await;
    let table = fresh_table(&client, "direct").await.unwrap();
    let (guarded, absent) = (key("GUARDED"), key("ABSENT"));
    // Written while `v` is absent or "first"; it sets "second".
    let unless_second = Expressions {
        condition: Some("attribute_not_exists(PK) OR #v = :first".into()),
        names: vec![("#v".to_owned(), "v".to_owned())],
        values: vec![
            (":first".to_owned(), s("first")),
            (":next".to_owned(), s("second")),
        ],
    };
    let must_exist = Expressions {
        condition: Some("attribute_exists(PK)".into()),
        names: unless_second.names.clone(),
        values: vec![(":next".to_owned(), s("second"))],
    };
    let update = |table, key, guard| Update {
        table,
        key,
        expression: "SET #v = :next",
        guard,
        new_image: true,
    };
    assert!(matches!(
        direct.update_item(&update(&table, &guarded, &unless_second)).await.unwrap(),
        Updated::Written(item) if item["v"] == s("second")
    ));
    // Asked for no new image, a write hands back nothing; a refusal still the old item.
    let quiet = |key| Update {
        new_image: false,
        ..update(&table, key, &unless_second)
    };
    let other = key("QUIET");
    assert_eq!(
        direct.update_item(&quiet(&other)).await.unwrap(),
        Updated::Written(HashMap::new())
    );
    assert!(matches!(
        direct.update_item(&quiet(&other)).await.unwrap(),
        Updated::Refused(Some(item)) if item["v"] == s("second")
    ));
    let before = direct.requests();
    // Now `v` is "second", so the same condition fails: the item as it is comes back.
    assert_eq!(
        direct
            .update_item(&update(&table, &guarded, &unless_second))
            .await
            .unwrap(),
        Updated::Refused(Some(HashMap::from([
            ("PK".to_owned(), s("GUARDED")),
            ("SK".to_owned(), s("CALL")),
            ("v".to_owned(), s("second")),
        ])))
    );
    // A condition that needs the item, where there is none.
    assert_eq!(
        direct
            .update_item(&update(&table, &absent, &must_exist))
            .await
            .unwrap(),
        Updated::Refused(None)
    );
    assert_eq!(direct.requests() - before, 2, "one request each");

    let before = direct.requests();
    let missing = direct
        .update_item(&update("no-such-table", &guarded, &unless_second))
        .await
        .unwrap_err();
    let StoreError::Other(e) = &missing else {
        panic!("a missing table is a final error: {missing:?}");
    };
    let service = e.downcast_ref::<ServiceError>().expect("DynamoDB's answer");
    assert_eq!(
        (service.status, service.code.as_str()),
        (400, "ResourceNotFoundException")
    );
    assert_eq!(direct.requests() - before, 1, "not retried");
}

fn answer(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const EMPTY: &str = "{}";
const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#;
const INVALID: &str = r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"Invalid UpdateExpression"}"#;
const WRITTEN: &str = r#"{"Attributes":{"PK":{"S":"P"},"v":{"N":"2"}}}"#;

/// Direct writes to a scripted server: the first answer goes to the SDK's warming request,
/// the rest to the direct writes; what the server read comes back with them.
async fn scripted(answers: Vec<Vec<u8>>) -> (Arc<DirectWrites>, std::sync::mpsc::Receiver<Seen>) {
    let mut all = vec![answer("200 OK", EMPTY)];
    all.extend(answers);
    let (origin, seen) = server(all);
    let (_, direct) = warmed(&format!("http://127.0.0.1:{}", origin.port)).await;
    (direct, seen)
}

async fn send(direct: &DirectWrites) -> Result<Updated, StoreError> {
    let k = key("P");
    let guard = Expressions {
        condition: Some("#v < :v".into()),
        names: vec![("#v".to_owned(), "v".to_owned())],
        values: vec![(":v".to_owned(), AttributeValue::N("2".into()))],
    };
    direct
        .update_item(&Update {
            table: "t",
            key: &k,
            expression: "SET #v = :v",
            guard: &guard,
            new_image: true,
        })
        .await
}

#[tokio::test]
async fn a_failed_or_throttled_attempt_is_tried_once_more_and_a_bad_request_is_not() {
    let (direct, _) = scripted(vec![
        answer("500 Internal Server Error", "<html>busy</html>"),
        answer("200 OK", WRITTEN),
    ])
    .await;
    assert!(
        matches!(send(&direct).await, Ok(Updated::Written(item)) if item["v"] == AttributeValue::N("2".into()))
    );
    assert_eq!(direct.requests(), 2);

    let (direct, _) = scripted(vec![
        answer("400 Bad Request", THROTTLED),
        answer("400 Bad Request", THROTTLED),
        answer("200 OK", WRITTEN),
    ])
    .await;
    let throttled = send(&direct).await;
    assert!(
        matches!(throttled, Err(StoreError::Throttled(_))),
        "{throttled:?}"
    );
    assert_eq!(direct.requests(), 2, "the hot path's two attempts");

    let (direct, _) = scripted(vec![
        answer("400 Bad Request", INVALID),
        answer("200 OK", WRITTEN),
    ])
    .await;
    let invalid = send(&direct).await;
    assert!(
        matches!(&invalid, Err(StoreError::Other(e)) if e.to_string() == "DynamoDB answered 400 ValidationException: Invalid UpdateExpression"),
        "{invalid:?}"
    );
    assert_eq!(direct.requests(), 1);

    // A connection the server ends mid-answer: the write is tried again on a new one.
    let (direct, seen) = scripted(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"Attri".to_vec(),
        answer("200 OK", WRITTEN),
    ])
    .await;
    assert!(matches!(send(&direct).await, Ok(Updated::Written(_))));
    let connections: Vec<usize> = seen.try_iter().map(|s| s.connection).collect();
    assert_eq!(
        connections,
        vec![1, 1, 2],
        "warming and the first try on one, the retry on a new one"
    );
}

/// The authorization a SigV4 check computes for `seen` with `secret`: from the request as
/// received (its method, path, the headers it says it signed, its body and date). A request
/// is genuine when this equals the authorization it carries.
fn expected_authorization(seen: &Seen, secret: &str) -> String {
    let header = |name: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} in {:?}", seen.headers))
    };
    let authorization = header("authorization");
    let credential = authorization
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split(',').next())
        .unwrap();
    let scope: Vec<&str> = credential.split('/').collect();
    let (key_id, region, service) = (scope[0], scope[2], scope[3]);
    let signed: Vec<String> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|h| h.split(',').next())
        .unwrap()
        .split(';')
        .map(str::to_owned)
        .collect();
    let date = header("x-amz-date");
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &date[9..11],
        &date[11..13],
        &date[13..15]
    );
    let at = SystemTime::try_from(DateTime::from_str(&rfc3339, Format::DateTime).unwrap()).unwrap();
    let token = seen
        .headers
        .iter()
        .find(|(n, _)| n == "x-amz-security-token")
        .map(|(_, v)| v.clone());
    let identity: Identity = Credentials::new(key_id, secret, token, None, "check").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    // The signer adds the date and the token itself, and takes the host from the URL.
    let headers: Vec<(&str, &str)> = seen
        .headers
        .iter()
        .filter(|(n, _)| {
            signed.contains(n)
                && !["host", "x-amz-date", "x-amz-security-token"].contains(&n.as_str())
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let path = seen.line.split(' ').nth(1).unwrap();
    let url = format!("http://{}{path}", header("host"));
    let request = SignableRequest::new(
        seen.line.split(' ').next().unwrap(),
        url,
        headers.into_iter(),
        SignableBody::Bytes(&seen.body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    instructions
        .headers()
        .find(|(n, _)| *n == "authorization")
        .map(|(_, v)| v.to_owned())
        .unwrap()
}

#[tokio::test]
async fn a_sigv4_check_accepts_the_direct_request_as_it_accepts_the_sdks() {
    let (direct, seen) = scripted(vec![answer("200 OK", WRITTEN)]).await;
    send(&direct).await.unwrap();
    let requests: Vec<Seen> = seen.try_iter().collect();
    assert_eq!(requests.len(), 2);
    let (sdk, ours) = (&requests[0], &requests[1]);
    // The control: the check as written accepts what the SDK signed.
    let carried = |r: &Seen| {
        r.headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(expected_authorization(sdk, "local"), carried(sdk));
    assert_eq!(expected_authorization(ours, "local"), carried(ours));
    assert_ne!(
        expected_authorization(ours, "another secret"),
        carried(ours)
    );
    // What DynamoDB's JSON protocol needs besides the signature.
    let header = |name: &str| {
        ours.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(ours.line, "POST / HTTP/1.1");
    assert_eq!(header("x-amz-target"), Some("DynamoDB_20120810.UpdateItem"));
    assert_eq!(header("content-type"), Some("application/x-amz-json-1.0"));
    assert_eq!(
        header("host"),
        sdk.headers
            .iter()
            .find(|(n, _)| n == "host")
            .map(|(_, v)| v.as_str())
    );
    let body: serde_json::Value = serde_json::from_slice(&ours.body).unwrap();
    assert_eq!(body["TableName"], "t");
    assert_eq!(body["ReturnValuesOnConditionCheckFailure"], "ALL_OLD");
    assert_eq!(body["UpdateExpression"], "SET #v = :v");
}
