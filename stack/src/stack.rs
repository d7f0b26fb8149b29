//! The whole of outdial on one machine, composed: DynamoDB Local and its stream, the four
//! handler functions behind a local Lambda Invoke API, the API function behind a local HTTP
//! API, the timers function on a local schedule, and the PSTN simulator placing calls with
//! the SMA handler. `outdial dev`, `outdial demo` and the end-to-end suites run this.
//!
//! Everything goes through the paths it takes in AWS: the API starts a dispatcher with an
//! asynchronous `Invoke` of the timers function, the simulator invokes the SMA function
//! with `Invoke`, the dispatcher dials through the Chime SDK Voice client, and the campaign
//! counters come from the table's stream, read as Lambda's event source mapping reads it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outdial_adapters::clock::SystemClock;
use outdial_adapters::counters::DynamoCounters;
use outdial_adapters::dialer::ChimeDialer;
use outdial_adapters::events::EventBridgePublisher;
use outdial_adapters::store::DynamoStore;
use outdial_adapters::trigger::LambdaTrigger;
use outdial_api::{Api, Auth};
use outdial_core::messages::{Function, RunSource};
use outdial_core::time::{Clock, Timestamp};
use outdial_local::bus::{LocalBus, RetrySettings, Webhook, WebhookStats, function_events_client};
use outdial_local::dynamodb::{DynamoDbLocal, Storage, shared_endpoint};
use outdial_local::http_api::HttpApi;
use outdial_local::invoke::{
    Functions, InvokeApi, LambdaInvoker, function, function_lambda_client, lambda_client,
};
use outdial_local::meter::{Meter, Metered, TransactWrite};
use outdial_local::record::{OperationLog, Record};
use outdial_local::sim::{Report, SimConfig, Simulator, function_voice_client};
use outdial_local::streams::{PollerSettings, PollerStats, StreamPoller};
use outdial_local::tables::{RequestCounter, client, fresh_table, function_client};
use outdial_sma::SmaHandler;
use outdial_stream::StreamHandler;
use outdial_timers::{Dispatcher, MARGIN, Settings as TimersSettings};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The function names, as the CDK stack names the binaries.
pub const SMA: &str = Function::Sma.binary();
pub const TIMERS: &str = Function::Timers.binary();
pub const STREAM: &str = Function::Stream.binary();
pub const API: &str = Function::Api.binary();

/// The greetings bucket the local SMA function names.
pub const LOCAL_GREETINGS: &str = "outdial-greetings-local";
/// The EventBridge bus the local stream function publishes outcome events to.
pub const LOCAL_BUS: &str = "outdial-local";

/// Where the local bus delivers outcome events, as the deployed rule's API destination does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    /// Sent as `x-outdial-key`, as the deployed connection sends its API key.
    pub key: Option<String>,
    pub retry: RetrySettings,
}

/// Where the stack's DynamoDB comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The one of this process: `AWS_ENDPOINT_URL_DYNAMODB`, or a DynamoDB Local started once
    /// per process (tests).
    Shared,
    /// A DynamoDB Local of the stack's own, in memory or in a folder (`outdial dev --data`).
    Own(Storage),
}

/// How the stack runs.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub database: Database,
    /// The table; `None` creates a fresh one. An existing table of this name is reused.
    pub table: Option<String>,
    pub sim: SimConfig,
    /// The SIP media application id the simulator answers for.
    pub sma_id: String,
    pub shards: u32,
    /// Calls per second for the whole account.
    pub account_cps: f64,
    /// How often the schedule starts the timers function (EventBridge Scheduler: a minute).
    pub schedule_every: Duration,
    /// The HTTP API's port on 127.0.0.1 (0: any free port).
    pub api_port: u16,
    /// The bearer token the local API requires.
    pub api_token: String,
    pub stream: PollerSettings,
    /// The dispatcher's watchdogs.
    pub watchdogs: Watchdogs,
    /// Whether the law's calling hours hold calls, at the machine's real time. Off by
    /// default: the simulated callees live nowhere, and a demo run at night would wait for
    /// morning. The deployed dispatcher always applies them.
    pub legal_hours: bool,
    /// The bucket the SMA function names for greetings recorded while answering-machine
    /// detection listens (`OUTDIAL_GREETINGS_BUCKET`); the simulator writes nothing, so any
    /// name does. `None` turns detection off, as a deployment without the bucket.
    pub greetings_bucket: Option<String>,
    /// Where the simulator's report is written when the stack stops.
    pub report_path: Option<PathBuf>,
    /// A webhook the bus delivers every outcome event to.
    pub webhook: Option<WebhookConfig>,
    /// Where each function's AWS operations are recorded, for the permission test (the
    /// end-to-end suites set it; see [`outdial_local::record`]).
    pub record: Option<OperationLog>,
    /// The JVM heap of the stack's own DynamoDB Local ([`Database::Own`]), in MiB: a long run
    /// needs more than the default, since DynamoDB Local keeps every item and stream record
    /// in memory.
    pub database_heap_mib: u32,
    /// Whether each function's DynamoDB client is metered (requests, and the capacity units
    /// DynamoDB reports for them; [`Stack::spent`]). Off by default: metering asks every
    /// request for its consumed capacity.
    pub metered: bool,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            database: Database::Shared,
            table: None,
            sim: SimConfig::default(),
            sma_id: "sma-local".to_owned(),
            shards: 2,
            account_cps: 50.0,
            schedule_every: Duration::from_secs(10),
            api_port: 0,
            api_token: format!("local-{}", uuid::Uuid::new_v4().simple()),
            stream: PollerSettings::default(),
            watchdogs: Watchdogs::default(),
            legal_hours: false,
            greetings_bucket: Some(LOCAL_GREETINGS.to_owned()),
            report_path: None,
            webhook: None,
            record: None,
            database_heap_mib: outdial_local::dynamodb::DEFAULT_HEAP_MIB,
            metered: false,
        }
    }
}

/// The dispatcher's watchdogs (`outdial_timers::Settings`), which a quick local run may
/// shorten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdogs {
    /// How long after a dial its `NEW_OUTBOUND_CALL` must have arrived.
    pub first_event_within: Duration,
    /// How long after asking the SMA to end a call the watchdog looks again.
    pub recheck_after: Duration,
}

impl Default for Watchdogs {
    fn default() -> Self {
        let settings = TimersSettings::default();
        Self {
            first_event_within: settings.first_event_within,
            recheck_after: settings.recheck_after,
        }
    }
}

type Store = DynamoStore;
type Voice = ChimeDialer;

/// The running stack. [`Stack::stop`] ends it cleanly; dropping it stops the servers.
pub struct Stack {
    db: Option<Arc<DynamoDbLocal>>,
    dynamodb: String,
    table: String,
    store: Store,
    functions: Functions,
    invoke_api: InvokeApi,
    http_api: HttpApi,
    sim: Simulator,
    poller: Option<StreamPoller>,
    bus: LocalBus,
    webhook: Option<Webhook>,
    schedule: JoinHandle<()>,
    dispatcher: Arc<Dispatcher<Store, Voice>>,
    sma: Arc<SmaHandler<Store>>,
    sma_requests: RequestCounter,
    meters: BTreeMap<Function, Meter>,
    api_token: String,
    report_path: Option<PathBuf>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("api", &self.http_api.url())
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The stack's endpoints, as `outdial dev` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub api: String,
    pub lambda: String,
    pub chime: String,
    pub dynamodb: String,
    pub events: String,
}

impl Stack {
    /// Starts everything and returns once the API answers.
    ///
    /// # Errors
    /// When DynamoDB Local cannot start (Java or the jar missing: the message says how to
    /// install it), a port cannot be bound, or the table cannot be created.
    pub async fn start(config: StackConfig) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (db, dynamodb) = match &config.database {
            Database::Shared => (None, shared_endpoint()?),
            Database::Own(storage) => {
                let storage = storage.clone();
                let heap = config.database_heap_mib;
                let db = tokio::task::spawn_blocking(move || {
                    DynamoDbLocal::start_with_heap(&storage, heap)
                })
                .await??;
                let endpoint = db.endpoint().to_owned();
                (Some(Arc::new(db)), endpoint)
            }
        };
        let ddb = client(&dynamodb);
        let table = match &config.table {
            None => fresh_table(&ddb, "outdial").await?,
            Some(name) => {
                let def = outdial_adapters::table::TableDef::load()?;
                let exists = ddb.describe_table().table_name(name).send().await.is_ok();
                if exists {
                    // A table kept from an older schema (`outdial dev --data`) gains the
                    // indexes added since, built from the items it holds.
                    let added = def
                        .add_missing_indexes(&ddb, name)
                        .await
                        .with_context(|| format!("adding indexes to table {name}"))?;
                    if !added.is_empty() {
                        tracing::info!(table = %name, indexes = ?added, "indexes added to a kept table");
                    }
                } else {
                    def.create(&ddb, name)
                        .await
                        .with_context(|| format!("creating table {name}"))?;
                }
                name.clone()
            }
        };
        // Each function has clients of its own, as it has a role of its own in AWS, so the
        // operations it makes are recorded as its own; and each has its production timeouts
        // and retries, so a slow or stalled table fails here as it would in Lambda.
        let recorder = |f: Function| config.record.as_ref().map(|log| log.recorder(f));
        let (api_rec, sma_rec, timers_rec, stream_rec) = (
            recorder(Function::Api),
            recorder(Function::Sma),
            recorder(Function::Timers),
            recorder(Function::Stream),
        );
        let meters: BTreeMap<Function, Meter> = if config.metered {
            Function::ALL.iter().map(|f| (*f, Meter::new())).collect()
        } else {
            BTreeMap::new()
        };
        // A function's own DynamoDB client: its production timeouts, its recorder, its meter.
        let ddb_of = |f: Function, r: Option<&outdial_local::record::Recorder>| {
            let (client, requests) = function_client(&dynamodb, f);
            let client = client.recorded(r);
            let client = match meters.get(&f) {
                Some(meter) => meter.client(&client),
                None => client,
            };
            (client, requests)
        };
        let store_of = |f: Function, r: Option<&outdial_local::record::Recorder>| {
            DynamoStore::new(ddb_of(f, r).0, &table, config.shards)
        };
        let store = DynamoStore::new(ddb.clone(), &table, config.shards);
        let functions = Functions::default();
        let invoke_api = InvokeApi::start(functions.clone()).await?;
        let lambda = lambda_client(&invoke_api.endpoint());

        // The simulator, and the SMA function it invokes through the Invoke API (registered
        // before any call can be placed). The function's client counts its DynamoDB requests,
        // which the demo reports per event; answering-machine detection times what callees
        // play on the simulator's clock, the time their sound plays in.
        let sim = Simulator::start(
            config.sim.clone(),
            &config.sma_id,
            Arc::new(LambdaInvoker::new(lambda.clone(), SMA)),
        )
        .await?;
        let (sma_client, sma_requests) = ddb_of(Function::Sma, sma_rec.as_ref());
        let sma = Arc::new(
            SmaHandler::new(
                DynamoStore::new(sma_client, &table, config.shards),
                Arc::clone(&clock),
                outdial_sma::Settings {
                    greetings_bucket: config.greetings_bucket.clone(),
                    ..outdial_sma::Settings::default()
                },
            )
            .with_audio_clock(sim.clock()),
        );
        {
            let sma = Arc::clone(&sma);
            functions.add(
                SMA,
                function(move |event| {
                    let sma = Arc::clone(&sma);
                    async move { Ok(sma.handle(event).await) }
                }),
            );
        }
        let voice = |f: Function, r: Option<&outdial_local::record::Recorder>| {
            let client = function_voice_client(&sim.endpoint(), f);
            ChimeDialer::new(client.recorded(r), &config.sma_id)
        };

        // The timers function: every shard, for one schedule period per invocation.
        let dispatcher = Arc::new(Dispatcher::new(
            store_of(Function::Timers, timers_rec.as_ref()),
            voice(Function::Timers, timers_rec.as_ref()),
            Arc::clone(&clock),
            TimersSettings {
                account_cps: config.account_cps / f64::from(config.shards),
                first_event_within: config.watchdogs.first_event_within,
                recheck_after: config.watchdogs.recheck_after,
                legal_hours: config.legal_hours,
                ..TimersSettings::default()
            },
        ));
        {
            let (dispatcher, clock) = (Arc::clone(&dispatcher), Arc::clone(&clock));
            let (shards, period) = (config.shards, config.schedule_every);
            functions.add(
                TIMERS,
                function(move |event: Value| {
                    let (dispatcher, clock) = (Arc::clone(&dispatcher), Arc::clone(&clock));
                    async move {
                        // As if the function's timeout let a run last one period and the
                        // overlap, so runs follow each other as they do in Lambda.
                        let deadline: Timestamp =
                            clock.now().plus(period + outdial_timers::OVERLAP + MARGIN);
                        let owner = uuid::Uuid::new_v4().to_string();
                        let run = outdial_timers::invoke(
                            &dispatcher,
                            shards,
                            &owner,
                            deadline,
                            outdial_timers::is_scheduled(&event),
                        )
                        .await;
                        if run.errors.is_empty() {
                            Ok(run.answer)
                        } else {
                            Err(run.errors.join("; "))
                        }
                    }
                }),
            );
        }

        // The bus outcome events go to, and the webhook it delivers them to.
        let bus = LocalBus::start(LOCAL_BUS).await?;
        let webhook = match &config.webhook {
            None => None,
            Some(w) => Some(Webhook::start(
                &w.url,
                w.key.as_deref(),
                w.retry,
                bus.subscribe(),
            )?),
        };

        // The stream function, fed by the table's stream, publishing to the bus.
        let stream = Arc::new(
            StreamHandler::new(
                DynamoCounters::new(ddb_of(Function::Stream, stream_rec.as_ref()).0, &table),
                Arc::clone(&clock),
            )
            .with_publisher(Arc::new(EventBridgePublisher::new(
                function_events_client(&bus.endpoint(), Function::Stream)
                    .recorded(stream_rec.as_ref()),
                bus.name(),
            ))),
        );
        functions.add(
            STREAM,
            function(move |event| {
                let stream = Arc::clone(&stream);
                async move {
                    stream
                        .handle(event)
                        .await
                        .map(|handled| handled.response_json())
                        .map_err(|e| e.to_string())
                }
            }),
        );
        let consumer: outdial_local::streams::Consumer = {
            let functions = functions.clone();
            Arc::new(move |event| {
                let functions = functions.clone();
                Box::pin(async move { functions.call(STREAM, event).await })
            })
        };
        let poller = StreamPoller::start_recorded(
            &dynamodb,
            &table,
            consumer,
            config.stream.clone(),
            stream_rec.as_ref(),
        )
        .await?;

        // The API function, behind the HTTP API, starting dispatchers through the Invoke API.
        let api = Arc::new(Api::new(
            store_of(Function::Api, api_rec.as_ref()),
            voice(Function::Api, api_rec.as_ref()),
            LambdaTrigger::new(
                function_lambda_client(&invoke_api.endpoint(), Function::Api)
                    .recorded(api_rec.as_ref()),
                TIMERS,
            ),
            Arc::clone(&clock),
            outdial_api::Settings {
                auth: Auth::bearer(&config.api_token),
                ..outdial_api::Settings::from_lookup(|_| None)?
            },
        ));
        functions.add(
            API,
            function(move |event: Value| {
                let api = Arc::clone(&api);
                async move { api_invoke(&api, &event).await }
            }),
        );
        let http_api = HttpApi::start(functions.clone(), API, config.api_port).await?;

        // EventBridge Scheduler, locally.
        let schedule = {
            let functions = functions.clone();
            let every = config.schedule_every;
            tokio::spawn(async move {
                // The first run comes one period after the start, as a new schedule's does.
                let mut ticker =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    ticker.tick().await;
                    let functions = functions.clone();
                    // Each invocation runs on its own, as Lambda runs overlapping ones.
                    tokio::spawn(async move {
                        let event = RunSource::Schedule.payload();
                        if let Err(e) = functions.call(TIMERS, event).await {
                            tracing::warn!(error = %e, "scheduled timers run failed");
                        }
                    });
                }
            })
        };

        Ok(Self {
            db,
            dynamodb,
            table,
            store,
            functions,
            invoke_api,
            http_api,
            sim,
            poller: Some(poller),
            bus,
            webhook,
            schedule,
            dispatcher,
            sma,
            sma_requests,
            meters,
            api_token: config.api_token,
            report_path: config.report_path,
        })
    }

    /// What each function's DynamoDB client spent so far, by function key (`api`, `sma`,
    /// `timers`, `stream`); empty unless the stack is [`StackConfig::metered`].
    #[must_use]
    pub fn spent(&self) -> BTreeMap<&'static str, (Metered, Vec<TransactWrite>)> {
        self.meters
            .iter()
            .map(|(f, m)| (f.key(), (m.spent(), m.transaction_writes())))
            .collect()
    }

    #[must_use]
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            api: self.http_api.url(),
            lambda: self.invoke_api.endpoint(),
            chime: self.sim.endpoint(),
            dynamodb: self.dynamodb.clone(),
            events: self.bus.endpoint(),
        }
    }

    /// The bearer token the local API requires.
    #[must_use]
    pub fn api_token(&self) -> &str {
        &self.api_token
    }

    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    #[must_use]
    pub fn functions(&self) -> &Functions {
        &self.functions
    }

    #[must_use]
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    #[must_use]
    pub fn dispatcher(&self) -> &Dispatcher<Store, Voice> {
        &self.dispatcher
    }

    #[must_use]
    pub fn sma(&self) -> &SmaHandler<Store> {
        &self.sma
    }

    /// The stack's own DynamoDB Local ([`Database::Own`]), to pause, kill and restart it;
    /// `None` for a shared one.
    #[must_use]
    pub fn database(&self) -> Option<Arc<DynamoDbLocal>> {
        self.db.clone()
    }

    /// The local EventBridge bus outcome events go to.
    #[must_use]
    pub fn bus(&self) -> &LocalBus {
        &self.bus
    }

    /// What the webhook has delivered so far, when one is set.
    #[must_use]
    pub fn webhook_stats(&self) -> Option<WebhookStats> {
        self.webhook.as_ref().map(Webhook::stats)
    }

    /// What the stream poller has done so far (deliveries, failures, records discarded).
    #[must_use]
    pub fn stream_stats(&self) -> Option<PollerStats> {
        self.poller.as_ref().map(StreamPoller::stats)
    }

    /// DynamoDB requests the SMA handler has made (retries included).
    #[must_use]
    pub fn sma_requests(&self) -> usize {
        self.sma_requests.get()
    }

    /// Waits until the stream handler has seen every change written so far.
    ///
    /// # Errors
    /// When the stream is not caught up within `timeout`.
    pub async fn stream_caught_up(&self, timeout: Duration) -> anyhow::Result<()> {
        match &self.poller {
            Some(p) => p.wait_caught_up(timeout).await,
            None => anyhow::bail!("the stream poller has stopped"),
        }
    }

    /// Stops the schedule, lets running dials finish, stops the stream poller and the
    /// servers, writes the simulator's report where configured, and returns it.
    ///
    /// # Errors
    /// When the report cannot be written.
    pub async fn stop(mut self) -> anyhow::Result<Report> {
        self.schedule.abort();
        self.dispatcher.settle().await;
        if let Some(poller) = self.poller.take() {
            poller.stop().await;
        }
        let report = self.sim.report();
        if let Some(path) = &self.report_path {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(db) = self.db.take() {
            // Stopped even if someone else still holds it (a fault injector).
            tokio::task::spawn_blocking(move || db.stop()).await?;
        }
        Ok(report)
    }
}

/// The API function as Lambda runs it behind an HTTP API: the payload-2.0 event becomes a
/// request as `lambda_http` builds it, and the response becomes the payload-2.0 answer.
pub async fn api_invoke<S, D, T>(api: &Api<S, D, T>, event: &Value) -> Result<Value, String>
where
    S: outdial_core::admin::ApiStore,
    D: outdial_core::ports::Dialer,
    T: outdial_core::admin::DispatchTrigger,
{
    let request = lambda_http::request::from_str(&event.to_string())
        .map_err(|e| format!("not an API Gateway v2 event: {e}"))?;
    let response = api.handle(request).await;
    let (parts, body) = response.into_parts();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let (body, is_base64) = match body {
        lambda_http::Body::Empty => (Value::Null, false),
        lambda_http::Body::Text(text) => (Value::String(text), false),
        lambda_http::Body::Binary(bytes) => {
            use base64::Engine;
            (
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                true,
            )
        }
        _ => (Value::Null, false),
    };
    Ok(json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "body": body,
        "isBase64Encoded": is_base64,
    }))
}
