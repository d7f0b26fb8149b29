//! `outdial`: the one tool a user of outdial holds.

mod bench;
mod check;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Benchmarks over the local stack.
    Bench {
        #[command(subcommand)]
        kind: Bench,
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
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Dial N calls per second for S seconds through the dispatcher and the PSTN simulator,
    /// and report the rate the simulator saw.
    Dial {
        #[arg(long)]
        cps: u32,
        #[arg(long)]
        seconds: u32,
        /// Print one JSON object as the last line.
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
        Command::Bench {
            kind: Bench::Dial { cps, seconds, json },
        } => {
            let Some(runtime) = runtime("bench dial") else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(bench::dial(cps, seconds)) {
                Ok(result) => {
                    if json {
                        println!("{}", serde_json::to_string(&result).unwrap_or_default());
                    } else {
                        println!(
                            "dialed {} calls at {} per second (target {}); at most {} in any second; {} double dials",
                            result.calls,
                            result.achieved_cps,
                            result.target_cps,
                            result.max_in_one_second,
                            result.double_dials
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("outdial bench dial: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay { events, to } => {
            let Some(runtime) = runtime("replay") else {
                return ExitCode::FAILURE;
            };
            let mut stdout = std::io::stdout().lock();
            match runtime.block_on(replay::replay(&events, to.as_deref(), &mut stdout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("outdial replay: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
