//! The `outdial-sma` binary as Lambda runs it: a process polling a Lambda Runtime API (served
//! here) and writing to DynamoDB Local through its lean HTTP client. Its answers, its errors,
//! and its report when it cannot start.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outdial_local::dynamodb::shared_endpoint;
use outdial_local::runtime_api::{Answer, RuntimeApi};
use outdial_local::tables::{client, fresh_table};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(api: &RuntimeApi, endpoint: &str, table: Option<&str>) -> Killed {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outdial-sma"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "outdial-sma")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(table) = table {
        command.env("OUTDIAL_TABLE_NAME", table);
    }
    Killed(command.spawn().unwrap())
}

fn ringing(transaction: &str) -> String {
    json!({
        "SchemaVersion": "1.0", "Sequence": 2, "InvocationEventType": "RINGING",
        "CallDetails": {"TransactionId": transaction,
            "TransactionAttributes": {"call_id": "call_none", "campaign_id": "cmp_none", "attempt": "1"},
            "Participants": [{"CallId": "leg-a", "ParticipantTag": "LEG-A", "To": "+15555550100",
                "From": "+15555550199", "Direction": "Outbound"}]}
    })
    .to_string()
}

fn answer(a: Answer) -> Value {
    match a {
        Answer::Response(body) => serde_json::from_slice(&body).unwrap(),
        Answer::Error(body) => panic!("an error: {}", String::from_utf8_lossy(&body)),
    }
}

#[tokio::test]
async fn the_binary_answers_events_in_a_row_and_keeps_the_orphans() {
    let endpoint = shared_endpoint().unwrap();
    let ddb = client(&endpoint);
    let table = fresh_table(&ddb, "sma-binary").await.unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let _sma = spawn(&api, &endpoint, Some(&table));

    // Events for calls it does not know: each answered safely and kept as an orphan, on one
    // kept-alive connection to DynamoDB and one to the Runtime API.
    for i in 0..5 {
        let transaction = format!("5b1c2a0e-1111-2222-3333-44445555000{i}");
        let a = answer(api.invoke(ringing(&transaction), WAIT).await.unwrap());
        assert_eq!(a["SchemaVersion"], "1.0");
        assert_eq!(a["Actions"], json!([]));
    }
    let kept = ddb
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(kept.len(), 5, "one orphan item per event: {kept:?}");

    // An event that is not JSON is reported as an error, and the next one is answered.
    let Answer::Error(body) = api.invoke("{not json", WAIT).await.unwrap() else {
        panic!("not JSON must be an error")
    };
    assert!(String::from_utf8_lossy(&body).contains("Runtime.UnmarshalError"));
    let a = answer(
        api.invoke(ringing("5b1c2a0e-1111-2222-3333-444455559999"), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["SchemaVersion"], "1.0");
}

#[tokio::test]
async fn a_missing_table_is_answered_safely() {
    let endpoint = shared_endpoint().unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let _sma = spawn(&api, &endpoint, Some("no-such-table"));
    // DynamoDB refuses every request: the event is still answered, with no actions.
    let a = answer(
        api.invoke(ringing("5b1c2a0e-1111-2222-3333-444455550000"), WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(a["Actions"], json!([]));
}

#[tokio::test]
async fn without_its_table_name_the_binary_reports_an_init_error() {
    let endpoint = shared_endpoint().unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let _sma = spawn(&api, &endpoint, None);
    // The local Runtime API names the init error once the invocation's deadline passes.
    let err = api
        .invoke(
            ringing("5b1c2a0e-1111-2222-3333-444455550000"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("OUTDIAL_TABLE_NAME"), "{err}");
}
