//! The SMA Lambda's entry point: logging, configuration, clients built once, then the runtime
//! loop. Everything else is in the library, which the local stack hosts the same way.
//!
//! The function answers one event at a time, so it runs on one thread: a single-threaded tokio
//! runtime, the lean Runtime API loop of `outdial_adapters::lambda`, and a DynamoDB client
//! whose HTTP is one kept-alive blocking connection (`outdial_adapters::wire`). Against the
//! SDK's pooled client, the Rust Lambda runtime and a multi-threaded tokio, that cut the CPU
//! time per event by about two thirds (`outdial bench cpu`, docs/scale.md), which a 128 MB
//! function, with a fourteenth of a vCPU, feels directly in its latency. The event's one
//! write then skips the SDK's request pipeline too (`outdial_adapters::direct`).
//!
//! Its memory comes from mimalloc rather than glibc's allocator: an event makes a few hundred
//! small allocations (the event's strings, the write's attribute values, the request and its
//! signature, the log line), and glibc's took about a tenth of the CPU per event; mimalloc
//! takes about 10% less CPU per event in all (`outdial bench cpu`, docs/scale.md). It is built
//! without transparent huge pages (`no_thp`), which otherwise nearly double the function's
//! resident memory (16 MiB against 9) for no gain at this size.

mod logging;

use std::sync::Arc;

use anyhow::Context;
use outdial_adapters::clock::SystemClock;
use outdial_adapters::config::{Config, Deadline, aws_config};
use outdial_adapters::direct::DirectWrites;
use outdial_adapters::lambda::{RuntimeApi, serve_json};
use outdial_adapters::store::DynamoStore;
use outdial_adapters::wire::{LeanHttp, tls_config};
use outdial_core::messages::Function;
use outdial_sma::{Settings, SmaHandler};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    logging::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("the tokio runtime")?;
    let mut api = RuntimeApi::from_env()?;
    let handler = match runtime.block_on(init()) {
        Ok(handler) => handler,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the function could not start");
            // Lambda logs the report and retries the start; the error is returned either way.
            let _ = api.init_failed("Runtime.InitError", &format!("{e:#}"));
            return Err(e);
        }
    };
    serve_json(&runtime, &mut api, |event| {
        let handler = Arc::clone(&handler);
        async move { handler.handle_json(&event).await }
    })
}

async fn init() -> anyhow::Result<Arc<SmaHandler<DynamoStore>>> {
    let config = Config::from_env()?;
    let settings = Settings::from_env()?;
    let deadline = Deadline::of(Function::Sma);
    let sdk = aws_config(deadline).await;
    let http = LeanHttp::new(
        Some(tls_config().context("TLS for DynamoDB")?),
        deadline.attempt(),
    );
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .http_client(http.clone())
            .build(),
    );
    let mut store = DynamoStore::new(client, &config.table, config.shards);
    // Each event's write is signed and sent directly, on the SDK client's connection, once
    // the warming request below has shown where that client's requests go.
    if let Some(direct) = DirectWrites::from_sdk(http, &sdk, deadline) {
        store = store.with_direct_writes(Arc::new(direct));
    }
    store.warm().await;
    Ok(Arc::new(SmaHandler::new(
        store,
        Arc::new(SystemClock),
        settings,
    )))
}
