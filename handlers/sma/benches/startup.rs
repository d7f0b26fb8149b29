//! The SMA binary's start-up: from spawning the process to its first answered event, through
//! the Lambda Runtime API (served locally) and against DynamoDB Local, as a cold start in
//! Lambda runs it: init (configuration, clients, warming the connection), then one event.
//!
//! The binary measured is `OUTDIAL_SMA_BIN` when set (e.g. the stripped release build),
//! else the one Cargo built for this benchmark.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::runtime_api::{Answer, RuntimeApi};
use outdial_local::tables::{client, fresh_table};
use serde_json::json;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn startup(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let endpoint = shared_endpoint().unwrap_or_else(|e| panic!("{e}"));
    let table = runtime
        .block_on(fresh_table(&client(&endpoint), "startup"))
        .unwrap_or_else(|e| panic!("{e}"));
    let bin = std::env::var("OUTDIAL_SMA_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_outdial-sma").to_owned());
    let ringing = json!({
        "SchemaVersion": "1.0", "Sequence": 2, "InvocationEventType": "RINGING",
        "CallDetails": {"TransactionId": "5b1c2a0e-1111-2222-3333-444455556666",
            "TransactionAttributes": {"call_id": "call_none", "campaign_id": "cmp_none", "attempt": "1"},
            "Participants": [{"CallId": "leg-a", "ParticipantTag": "LEG-A", "To": "+15555550100",
                "From": "+15555550199", "Direction": "Outbound"}]}
    })
    .to_string();

    let mut group = c.benchmark_group("sma_binary");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("start_to_first_answer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += runtime.block_on(async {
                    let api = RuntimeApi::start().await.unwrap_or_else(|e| panic!("{e}"));
                    let started = Instant::now();
                    let _child = Killed(
                        Command::new(&bin)
                            .env("AWS_LAMBDA_RUNTIME_API", api.address())
                            .env("AWS_LAMBDA_FUNCTION_NAME", "outdial-sma")
                            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                            .env("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)
                            .env("AWS_REGION", "us-east-1")
                            .env("AWS_ACCESS_KEY_ID", "local")
                            .env("AWS_SECRET_ACCESS_KEY", "local")
                            .env("OUTDIAL_TABLE_NAME", &table)
                            .env("RUST_LOG", "warn")
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap_or_else(|e| panic!("{bin}: {e}")),
                    );
                    // An orphan RINGING: the handler parses it, writes the orphan and answers.
                    match api.invoke(ringing.clone(), Duration::from_secs(10)).await {
                        Ok(Answer::Response(_)) => started.elapsed(),
                        other => panic!("no answer from {bin}: {other:?}"),
                    }
                });
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, startup);
criterion_main!(benches);
