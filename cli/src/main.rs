//! `outdial`: the one tool a user of outdial holds.

mod bench;
mod campaign;
mod chaos;
mod check;
mod client;
mod console;
mod demo;
mod dev;
mod export;
mod ingest;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "outdial",
    version,
    about = "Durable outbound calling on the Amazon Chime SDK PSTN audio service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate SMA invocation events and action-list responses against the PSTN audio
    /// contract: one line per file, exit 0 when all are valid and 1 otherwise.
    Check {
        /// Files, or folders of `*.json` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a JSON array of SMA events, in file order, through the SMA handler and DynamoDB
    /// Local (started unless AWS_ENDPOINT_URL_DYNAMODB is set); print each answer, then the
    /// final call record, one JSON line each.
    Replay {
        /// A JSON array of SMA invocation events.
        events: PathBuf,
        /// The callee's number for the call record the events name.
        #[arg(long)]
        to: Option<String>,
    },
    /// Run the whole system locally in the foreground (DynamoDB Local, the four functions,
    /// the HTTP API, the schedule, the PSTN simulator) until Ctrl-C or SIGTERM.
    Dev {
        /// The HTTP API's port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Print every outcome event the stream function publishes, one JSON line each.
        #[arg(long)]
        events: bool,
        /// The console's port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8090)]
        console_port: u16,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Start the local stack, post a sample campaign, show its progress and its report.
    /// Exits non-zero if a contact is not terminal, a call was dialed twice, the simulator
    /// counted a violation, or the streamed counters differ from the records.
    Demo {
        /// Contacts in the sample campaign.
        #[arg(long, default_value_t = 200)]
        contacts: u32,
        /// Print only one JSON object (the report) as the last line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// The PSTN simulator's report: transcripts per callee, violations, calls placed per
    /// number (double dials) and the dial rate.
    Sim {
        #[command(subcommand)]
        kind: Sim,
    },
    /// Start, watch and report on campaigns through the API (a deployed one with `--api`,
    /// signed with SigV4; else the local stack `outdial dev` runs here).
    Campaign {
        #[command(subcommand)]
        kind: CampaignCommand,
    },
    /// Serve the operator's console on 127.0.0.1 and print its URL: campaigns, live progress,
    /// calls and their event timelines, starting campaigns, the do-not-call list
    /// (docs/console.md). It talks to the API given with `--api` (requests signed with SigV4
    /// from your AWS credentials, here, never in the browser), else the local stack's.
    Console {
        /// The console's port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8090)]
        port: u16,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Benchmarks over the local stack.
    Bench {
        #[command(subcommand)]
        kind: Bench,
    },
}

#[derive(Debug, Args)]
struct StackArgs {
    /// Keep DynamoDB Local's data in this folder (in memory otherwise).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Real seconds per simulated second of a call.
    #[arg(long, default_value_t = 0.01)]
    speed: f64,
    /// The simulator's seed (faults and the callees' mix repeat exactly).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Calls per second for the whole account.
    #[arg(long, default_value_t = 50.0)]
    account_cps: f64,
    /// Seconds between two scheduled timers runs (a minute in AWS).
    #[arg(long, default_value_t = 10)]
    schedule_every: u64,
    /// Share of SMA events the simulated network delivers twice (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Share of SMA events held back before delivery (0 to 1), by up to `--delay-ms`.
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    /// The longest hold of a delayed or duplicated event, in simulated milliseconds.
    #[arg(long, default_value_t = 2_000)]
    delay_ms: u64,
    /// Share of SMA handler invocations that fail (the service retries once).
    #[arg(long, default_value_t = 0.0)]
    invoke_error: f64,
    /// Share of CreateSipMediaApplicationCall requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Share answered 500 without placing the call.
    #[arg(long, default_value_t = 0.0)]
    create_error: f64,
    /// Share answered 500 after the call was in fact placed.
    #[arg(long, default_value_t = 0.0)]
    create_error_after_placed: f64,
    /// A JSON object of E.164 numbers to callee personas (confirms, declines, opts-out,
    /// silent, busy, no-answer, fails, hangs-up, voicemail; docs/simulator.md); other
    /// numbers take the usual mix.
    #[arg(long, value_name = "FILE")]
    callees: Option<PathBuf>,
    /// Hold calls outside the law's calling hours at this machine's time, as the deployed
    /// dispatcher does (left out by default: the simulated callees live nowhere).
    #[arg(long)]
    legal_hours: bool,
    /// POST every outcome event (Call Placed, Call Answered, Call Ended, Campaign
    /// Completed) to this URL, as the deployed API destination does: the whole event as the
    /// body, in order, retried with backoff until the receiver takes it (docs/events.md).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Sent with each webhook POST as `x-outdial-key`, as the deployed connection sends its
    /// API key.
    #[arg(long, value_name = "KEY", requires = "webhook")]
    webhook_key: Option<String>,
}

impl StackArgs {
    /// The options of `dev` and `demo`, with the callees file read.
    fn options(&self, port: u16) -> anyhow::Result<dev::DevOptions> {
        let callees = match &self.callees {
            Some(path) => dev::read_callees(path)?,
            None => std::collections::BTreeMap::new(),
        };
        Ok(dev::DevOptions {
            port,
            data: self.data.clone(),
            speed: self.speed,
            seed: self.seed,
            account_cps: self.account_cps,
            schedule_every: Duration::from_secs(self.schedule_every.max(1)),
            faults: outdial_local::sim::Faults {
                duplicate: self.duplicate,
                delay: self.delay,
                delay_ms: self.delay_ms,
                invoke_error: self.invoke_error,
                throttle: self.throttle,
                create_error: self.create_error,
                create_error_after_placed: self.create_error_after_placed,
            },
            callees,
            legal_hours: self.legal_hours,
            webhook: match &self.webhook {
                None => None,
                Some(url) => Some(dev::webhook(url, self.webhook_key.as_deref())?),
            },
            print_events: false,
            console: None,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Sim {
    /// Print the report of the running local stack's simulator, or of the last run.
    Report {
        /// The simulator's endpoint (default: the running `outdial dev`'s).
        #[arg(long)]
        url: Option<String>,
        /// A report file (default: `.outdial/sim-report.json` when no stack runs).
        #[arg(long)]
        file: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ApiArgs {
    /// The API's URL (the stack's ApiUrl output); default: the local stack's.
    #[arg(long)]
    api: Option<String>,
    /// A bearer token for a local API (default: OUTDIAL_API_TOKEN, or the local stack's).
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CampaignCommand {
    /// Create a campaign from a spec and a CSV contact list (sent in chunks when large).
    Start {
        #[arg(long)]
        spec: PathBuf,
        #[arg(long)]
        csv: PathBuf,
        /// The upload's idempotency key: run the command again with it to finish an upload
        /// that failed part-way, without duplicating anything.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a campaign's progress live until it is finished.
    Watch {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A campaign's outcomes, attempts and script results.
    Report {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Write a campaign's results as CSV, one row per contact (ref, number, final status,
    /// attempts, script outcome, digits, verdict, opt-out), page by page with a progress line.
    Export {
        id: String,
        /// The file to write (stdout when not given).
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Run the release SMA binary behind a local Lambda Runtime API on N calls (about six
    /// events each, one event at a time) and report its CPU time per event, its latency and
    /// peak memory; and, where a CPU cgroup can be made, its latency and cost per event at
    /// the CPU share Lambda gives 128, 256 and 512 MB.
    Cpu {
        #[arg(long, default_value_t = 500)]
        calls: u32,
        /// The SMA binary (default: `outdial-sma` beside this executable).
        #[arg(long)]
        sma_bin: Option<std::path::PathBuf>,
        /// The function's log level (`AWS_LAMBDA_LOG_LEVEL`); the stack's is INFO.
        #[arg(long, default_value = "INFO")]
        log_level: String,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Dial N calls per second for S seconds through the dispatcher and the PSTN simulator,
    /// and report the rate the simulator saw and the dispatcher's DynamoDB requests per call.
    Dial {
        #[arg(long)]
        cps: u32,
        #[arg(long)]
        seconds: u32,
        /// Dial from a caller-ID pool of this many numbers (1 to 100, no caps) instead of
        /// the campaign's one number.
        #[arg(long)]
        pool: Option<u32>,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Start the local stack and place N calls at once, to measure the SMA events a second
    /// it sustains (each through the local Lambda Invoke API and DynamoDB Local).
    Events {
        #[arg(long, default_value_t = 500)]
        calls: u32,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Dispatch the same campaign of N calls without an account policy, under a contact cap
    /// (each number's ledger created), and under it again (each ledger read and replaced), and
    /// report the dispatcher's DynamoDB requests and capacity units per placed call.
    Caps {
        #[arg(long, default_value_t = 1000)]
        calls: u32,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Run a campaign of N contacts that listens for answering machines through the whole
    /// local stack in real time, against the simulator's mix of people and mailboxes, and
    /// score the verdicts against the truth: the confusion matrix, the share of mailboxes
    /// left the whole message after their beep, and people's dead air (p50, p95).
    Amd {
        #[arg(long, default_value_t = 2000)]
        calls: u32,
        /// The simulator's seed (the population and its timings).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Thresholds to try instead of the defaults, as the script's `machine` block takes
        /// them: `--thresholds '{"person_max_ms": 2000}'`.
        #[arg(long)]
        thresholds: Option<String>,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Export the results of a campaign of N contacts and of one of N/10 (`outdial campaign
    /// export` against the API function on DynamoDB Local), each in a process of its own:
    /// time, rows and peak memory.
    Export {
        #[arg(long, default_value_t = 100_000)]
        contacts: u32,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Run the demo's campaign of N contacts through the whole local stack with every
    /// function's DynamoDB client metered, and report per completed call and per 1,000
    /// contacts: DynamoDB requests and capacity units, stream records, Lambda invocations and
    /// billed duration per function, outcome events put on the bus, and the SMA events.
    Cost {
        #[arg(long, default_value_t = 1000)]
        calls: u32,
        /// The campaign's pace, calls a second: slow enough by default that a 2-core machine
        /// running the whole stack is not saturated, so durations measure the functions.
        #[arg(long, default_value_t = 20)]
        cps: u32,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Run one campaign of N contacts at R calls a second through the whole local stack, on a
    /// DynamoDB Local of its own, to its end: the sustained dial and event rates, the SMA
    /// handler's latency in the first, middle and last tenth, each process's resident memory
    /// at the start and the end, and whether every promise held. Exits non-zero when one did
    /// not.
    Soak {
        #[arg(long, default_value_t = 20_000)]
        contacts: u32,
        #[arg(long, default_value_t = 100)]
        cps: u32,
        /// The dispatch shards the account's rate is split over (the stack's default: 2).
        #[arg(long, default_value_t = 2)]
        shards: u32,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Post a campaign of N contacts through the API handler to DynamoDB Local, and write the
    /// same items with a raw parallel BatchWriteItem loop, in the same run.
    Ingest {
        #[arg(long)]
        contacts: u32,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Run a fault matrix through the whole local stack: each of the simulator's faults at
    /// 30%, all of them at once, DynamoDB Local stopped for 10 s and 30 s and killed and
    /// restarted mid-campaign, each over several seeds. One row per run: terminal contacts,
    /// double dials, LOST records by reason and whether the simulator confirms they were
    /// unknowable, violations, counters against the records. Exits non-zero if a row fails.
    Chaos {
        /// Contacts per campaign.
        #[arg(long, default_value_t = 80)]
        contacts: u32,
        /// Seeds, comma-separated: each case runs once per seed.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3])]
        seeds: Vec<u64>,
        /// Cases, comma-separated (default: all).
        #[arg(long, value_delimiter = ',', value_enum)]
        cases: Vec<chaos::Case>,
        /// One JSON line per row, then a summary line.
        #[arg(long)]
        json: bool,
    },
}

fn runtime(command: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Runtime::new() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("outdial {command}: {e}");
            None
        }
    }
}

/// Logs to stderr, warnings and worse unless `RUST_LOG` says otherwise.
fn logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `work` on a runtime and turns its error into a message and exit code 1.
fn run<T>(
    command: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
    done: impl FnOnce(T) -> ExitCode,
) -> ExitCode {
    let Some(runtime) = runtime(command) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(work) {
        Ok(value) => done(value),
        Err(e) => {
            eprintln!("outdial {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn json_line(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => {
            let files = match check::expand(&files) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("outdial check: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut all_ok = true;
            for file in &files {
                let (line, ok) = check::check_file(file);
                println!("{line}");
                all_ok &= ok;
            }
            if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Replay { events, to } => run(
            "replay",
            async {
                let mut stdout = std::io::stdout().lock();
                replay::replay(&events, to.as_deref(), &mut stdout).await
            },
            |()| ExitCode::SUCCESS,
        ),
        Command::Dev {
            port,
            events,
            console_port,
            stack,
        } => {
            logging();
            run(
                "dev",
                async move {
                    let opts = dev::DevOptions {
                        print_events: events,
                        console: Some(console_port),
                        ..stack.options(port)?
                    };
                    let mut stdout = std::io::stdout();
                    dev::dev(&opts, &mut stdout).await
                },
                |_| ExitCode::SUCCESS,
            )
        }
        Command::Demo {
            contacts,
            json,
            stack,
        } => {
            logging();
            run(
                "demo",
                async move {
                    let opts = stack.options(0)?;
                    let mut stdout = std::io::stdout();
                    demo::demo(contacts, &opts, json, &mut stdout).await
                },
                |report| {
                    println!("{}", json_line(&report));
                    if report.ok() {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!(
                            "outdial demo: not every promise held (terminal, double dials, violations, counters)"
                        );
                        ExitCode::FAILURE
                    }
                },
            )
        }
        Command::Sim {
            kind: Sim::Report { url, file, json },
        } => run(
            "sim report",
            async move { dev::sim_report(url.as_deref(), file.as_deref()).await },
            |report| {
                if json {
                    println!("{}", json_line(&report));
                } else {
                    print!("{}", dev::describe(&report));
                }
                ExitCode::SUCCESS
            },
        ),
        Command::Campaign { kind } => campaign_command(kind),
        Command::Console { port, api } => {
            logging();
            run(
                "console",
                async move {
                    let client =
                        client::Client::connect(api.api.as_deref(), api.token.as_deref()).await?;
                    let base = client.base().to_owned();
                    let served = console::serve(client, port).await?;
                    println!("console: {}", served.url());
                    eprintln!("outdial console: talking to {base}; Ctrl-C stops it");
                    dev::stopped().await?;
                    served.task.abort();
                    Ok(())
                },
                |()| ExitCode::SUCCESS,
            )
        }
        Command::Bench {
            kind:
                Bench::Dial {
                    cps,
                    seconds,
                    pool,
                    json,
                },
        } => run("bench dial", bench::dial(cps, seconds, pool), |result| {
            if json {
                println!("{}", json_line(&result));
            } else {
                println!(
                    "dialed {} calls at {} per second (target {}){}; at most {} in any second; {} double dials; {} DynamoDB requests per call from the dispatcher",
                    result.calls,
                    result.achieved_cps,
                    result.target_cps,
                    result
                        .pool
                        .map_or_else(String::new, |n| format!(" from a pool of {n} caller IDs")),
                    result.max_in_one_second,
                    result.double_dials,
                    result.ddb_requests_per_call
                );
            }
            ExitCode::SUCCESS
        }),
        Command::Bench {
            kind:
                Bench::Amd {
                    calls,
                    seed,
                    thresholds,
                    json,
                },
        } => {
            logging();
            run(
                "bench amd",
                bench::amd(calls, seed, thresholds.as_deref()),
                |result| {
                    if json {
                        println!("{}", json_line(&result));
                    } else {
                        println!("{}", bench::amd::text(&result));
                    }
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Bench {
            kind: Bench::Caps { calls, json },
        } => {
            logging();
            run("bench caps", bench::caps(calls), |result| {
                if json {
                    println!("{}", json_line(&result));
                } else {
                    for (name, cost) in [
                        ("without a policy", &result.without_policy),
                        ("under a cap, first call", &result.with_policy),
                        ("under a cap, second call", &result.with_policy_again),
                    ] {
                        println!(
                            "{name}: {} calls; per call {} DynamoDB requests {:?}, {} read units",
                            cost.placed,
                            cost.requests_per_call,
                            cost.requests_by_operation,
                            cost.read_units_per_call,
                        );
                    }
                    println!(
                        "the cap check adds {} requests, {} read units and {} write units per call (ledger items up to {} bytes); {} double dials",
                        result.extra_requests_per_call,
                        result.extra_read_units_per_call,
                        result.extra_write_units_per_call,
                        result.ledger_item_bytes_max,
                        result.double_dials
                    );
                }
                ExitCode::SUCCESS
            })
        }
        Command::Bench {
            kind: Bench::Events { calls, json },
        } => {
            logging();
            run("bench events", bench::events(calls), |result| {
                if json {
                    println!("{}", json_line(&result));
                } else {
                    println!(
                        "{} calls, {} SMA events in {:.1} s: {:.0} events/s (handler p50 {:.2} ms, p99 {:.2} ms); stack started in {:.1} s; {} violations, {} double dials",
                        result.calls,
                        result.events,
                        result.seconds,
                        result.events_per_s,
                        result.handler_p50_ms,
                        result.handler_p99_ms,
                        result.stack_start_s,
                        result.violations,
                        result.double_dials
                    );
                }
                ExitCode::SUCCESS
            })
        }
        Command::Bench {
            kind:
                Bench::Chaos {
                    contacts,
                    seeds,
                    cases,
                    json,
                },
        } => {
            // The faults make every part of the stack warn; RUST_LOG shows them.
            if std::env::var_os("RUST_LOG").is_some() {
                logging();
            }
            let opts = chaos::ChaosOptions {
                contacts,
                seeds,
                cases,
            };
            run(
                "bench chaos",
                async move {
                    let mut stdout = std::io::stdout();
                    chaos::chaos(&opts, json, &mut stdout).await
                },
                |summary| {
                    if summary.ok {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!(
                            "outdial bench chaos: {} of {} rows failed",
                            summary.failed, summary.rows
                        );
                        ExitCode::FAILURE
                    }
                },
            )
        }
        Command::Bench {
            kind: Bench::Ingest { contacts, json },
        } => run("bench ingest", ingest::ingest(contacts), |result| {
            if json {
                println!("{}", json_line(&result));
            } else {
                println!(
                    "{} contacts: {:.2} s through the API, {:.2} s for a raw parallel BatchWriteItem loop (ratio {:.2})",
                    result.contacts, result.api_s, result.raw_s, result.ratio
                );
            }
            ExitCode::SUCCESS
        }),
        Command::Bench {
            kind:
                Bench::Cpu {
                    calls,
                    sma_bin,
                    log_level,
                    json,
                },
        } => {
            logging();
            run(
                "bench cpu",
                bench::cpu(calls, sma_bin, &log_level),
                |result| {
                    if json {
                        println!("{}", json_line(&result));
                    } else {
                        print!("{}", bench::cpu::text(&result));
                    }
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Bench {
            kind: Bench::Cost { calls, cps, json },
        } => {
            logging();
            run("bench cost", bench::cost(calls, cps), |result| {
                if json {
                    println!("{}", json_line(&result));
                } else {
                    print!("{}", bench::cost::text(&result));
                }
                ExitCode::SUCCESS
            })
        }
        Command::Bench {
            kind:
                Bench::Soak {
                    contacts,
                    cps,
                    shards,
                    json,
                },
        } => {
            logging();
            run("bench soak", bench::soak(contacts, cps, shards), |result| {
                if json {
                    println!("{}", json_line(&result));
                } else {
                    print!("{}", bench::soak::text(&result));
                }
                if result.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
        Command::Bench {
            kind: Bench::Export { contacts, json },
        } => run("bench export", bench::export(contacts), |result| {
            if json {
                println!("{}", json_line(&result));
            } else {
                print!("{}", bench::export::text(&result));
            }
            ExitCode::SUCCESS
        }),
    }
}

fn campaign_command(kind: CampaignCommand) -> ExitCode {
    match kind {
        CampaignCommand::Start {
            spec,
            csv,
            idempotency_key,
            json,
            api,
        } => run(
            "campaign start",
            async move {
                let client =
                    client::Client::connect(api.api.as_deref(), api.token.as_deref()).await?;
                campaign::start(&client, &spec, &csv, idempotency_key).await
            },
            |started| {
                if json {
                    println!("{}", json_line(&started));
                } else {
                    println!(
                        "campaign {}: {} contacts accepted, {} rejected ({} requests)",
                        started.campaign_id,
                        started.accepted,
                        started.rejected_count,
                        started.requests
                    );
                    for r in started.rejected.iter().take(50) {
                        println!(
                            "  line {}: {} {}",
                            r["line"],
                            r["field"].as_str().unwrap_or(""),
                            r["reason"].as_str().unwrap_or("")
                        );
                    }
                    if started.rejected.len() > 50 {
                        println!("  ... {} more (see --json)", started.rejected.len() - 50);
                    }
                    println!("watch it: outdial campaign watch {}", started.campaign_id);
                }
                ExitCode::SUCCESS
            },
        ),
        CampaignCommand::Watch { id, api } => run(
            "campaign watch",
            async move {
                let client =
                    client::Client::connect(api.api.as_deref(), api.token.as_deref()).await?;
                let mut stdout = std::io::stdout();
                campaign::watch(&client, &id, Duration::from_secs(1), None, &mut stdout).await
            },
            |_| ExitCode::SUCCESS,
        ),
        CampaignCommand::Export { id, output, api } => run(
            "campaign export",
            async move {
                let client =
                    client::Client::connect(api.api.as_deref(), api.token.as_deref()).await?;
                export::run(&client, &id, output.as_deref()).await
            },
            |done| {
                eprintln!(
                    "outdial campaign export: {} rows in {} pages ({} bytes)",
                    done.rows, done.pages, done.bytes
                );
                ExitCode::SUCCESS
            },
        ),
        CampaignCommand::Report { id, json, api } => run(
            "campaign report",
            async move {
                let client =
                    client::Client::connect(api.api.as_deref(), api.token.as_deref()).await?;
                campaign::report(&client, &id).await
            },
            |report| {
                if json {
                    println!("{}", json_line(&report));
                } else {
                    print!("{}", campaign::table(&report));
                }
                ExitCode::SUCCESS
            },
        ),
    }
}
