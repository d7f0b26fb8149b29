//! Each function's worst path against its Lambda timeout, read from `infra/functions.json`,
//! the file the CDK stack takes its timeouts from. Every function bounds an invocation
//! with a budget of its own (the SMA handler per event, the dispatcher per run, the stream
//! handler per batch, the API per request), so its worst path is that budget and the moment
//! it takes to answer; a timeout shorter than that would cut a function off mid-write, where
//! it can no longer say what it did.

use std::time::Duration;

use outdial_adapters::config::Deadline;
use outdial_core::messages::Function;
use serde_json::Value;

/// What a function needs after its budget to hand its answer to the Lambda runtime.
const ANSWER: Duration = Duration::from_millis(500);
/// API Gateway's HTTP API gives up on an integration after 30 s.
const HTTP_API_LIMIT: Duration = Duration::from_secs(30);
/// The SMA sends an event again when it has no answer within 5 s.
const SMA_RESEND: Duration = Duration::from_secs(5);
/// The schedule starts the dispatcher every minute.
const SCHEDULE_PERIOD: Duration = Duration::from_secs(60);

fn timeout(function: &str) -> Duration {
    let functions: Value = serde_json::from_str(include_str!("../../infra/functions.json"))
        .expect("infra/functions.json is JSON");
    let seconds = functions[function]["timeoutSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("infra/functions.json gives {function} no timeoutSeconds"));
    Duration::from_secs(seconds)
}

#[test]
fn the_sma_handler_answers_every_event_inside_its_timeout_and_before_the_sma_sends_it_again() {
    let budget = outdial_sma::EVENT_BUDGET;
    assert!(
        Deadline::of(Function::Sma).operation() <= budget,
        "one request fits in the event's budget"
    );
    assert!(budget + ANSWER <= timeout("sma"), "{budget:?} + {ANSWER:?}");
    assert!(
        timeout("sma") < SMA_RESEND,
        "an invocation ends before the event comes again"
    );
}

#[test]
fn the_dispatcher_settles_its_run_inside_its_timeout_and_hands_its_shards_to_the_next_run() {
    use outdial_timers::{MARGIN, OVERLAP, RUN_FOR, SCHEDULED_LEASE_WAIT, TAIL};
    let limit = timeout("timers");
    // A run ends at its deadline less MARGIN or after RUN_FOR, whichever is first, and
    // settles its last dials and leases within TAIL.
    let worst = RUN_FOR.min(limit.saturating_sub(MARGIN)) + TAIL;
    assert!(
        worst + ANSWER <= limit,
        "{worst:?} + {ANSWER:?} > {limit:?}"
    );
    assert_eq!(
        RUN_FOR.min(limit.saturating_sub(MARGIN)),
        RUN_FOR,
        "the timeout lets a run last its whole RUN_FOR"
    );
    assert!(
        RUN_FOR + TAIL <= SCHEDULE_PERIOD + SCHEDULED_LEASE_WAIT,
        "the next scheduled run finds the shards given back within its wait"
    );
    assert_eq!(RUN_FOR, SCHEDULE_PERIOD + OVERLAP);
    assert!(
        OVERLAP > outdial_timers::Settings::default().horizon,
        "the next scheduled run is waiting when a run hands its shards over, a horizon before its end"
    );
}

#[test]
fn the_stream_handler_reports_a_slow_batch_inside_its_timeout() {
    let budget = outdial_stream::BATCH_BUDGET;
    assert!(Deadline::of(Function::Stream).operation() <= budget);
    assert!(budget + ANSWER <= timeout("stream"), "{budget:?}");
}

#[test]
fn the_api_answers_every_request_before_its_timeout_and_api_gateway_give_up() {
    let (work, request) = (outdial_api::WORK_BUDGET, outdial_api::REQUEST_BUDGET);
    assert!(
        Deadline::of(Function::Api).operation() <= work,
        "one request fits in the work"
    );
    assert!(
        work < request,
        "time is left to release the idempotency key"
    );
    assert!(request + ANSWER <= timeout("api"), "{request:?}");
    assert!(
        timeout("api") < HTTP_API_LIMIT,
        "the function answers before the gateway gives up"
    );
}
