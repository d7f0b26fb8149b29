//! One invocation of the timers function: every shard dispatched side by side until the
//! invocation's deadline, and its figures as one CloudWatch embedded-metric line.

use std::sync::Arc;
use std::time::Duration;

use outdial_core::messages::RunSource;
use outdial_core::ports::{Dialer, DispatchStore};
use outdial_core::time::Timestamp;

use crate::dispatcher::Dispatcher;
use crate::settings::Stats;

/// One CloudWatch embedded-metric-format line with what happened between two [`Stats`]
/// snapshots: `Dialed`, `DialThrottled` and `CallsLost` (counts) and `OverdueSeconds` (how
/// late the most overdue due entry was; calls stuck past their watchdog show here).
#[must_use]
pub fn metrics_line(before: &Stats, after: &Stats, overdue: Duration, at: Timestamp) -> String {
    let done = after.since(before);
    serde_json::json!({
        "_aws": {
            "Timestamp": at.as_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Outdial",
                "Dimensions": [[]],
                "Metrics": [
                    {"Name": "Dialed", "Unit": "Count"},
                    {"Name": "DialThrottled", "Unit": "Count"},
                    {"Name": "CallsLost", "Unit": "Count"},
                    {"Name": "OverdueSeconds", "Unit": "Seconds"},
                ],
            }],
        },
        "Dialed": done.dialed,
        "DialThrottled": done.throttled,
        "CallsLost": done.lost,
        "OverdueSeconds": overdue.as_secs_f64(),
    })
    .to_string()
}

/// How long a scheduled invocation waits for the previous one to give a shard back, when
/// the holder did not say when it hands it over (a holder that did is waited for until then).
pub const SCHEDULED_LEASE_WAIT: Duration = Duration::from_secs(10);
/// How much longer than the schedule's period (a minute) a run lasts: the next scheduled run
/// is already waiting when this one hands its shards over, a pacing horizon before its end,
/// so dialing goes on without a pause.
pub const OVERLAP: Duration = Duration::from_secs(2);
/// The longest one invocation dispatches: the schedule's minute and [`OVERLAP`].
pub const RUN_FOR: Duration = Duration::from_secs(62);
/// What an invocation leaves before its deadline to send its last dials and give the
/// leases back.
pub const MARGIN: Duration = Duration::from_secs(5);
/// The longest a run goes on past its end to settle its last dials and give its lease back:
/// inside [`MARGIN`], so that the invocation ends before its deadline whatever the Voice API
/// and the table do. The function's worst path is its run ([`RUN_FOR`]) and this tail.
pub const TAIL: Duration = Duration::from_secs(4);
const _: () = assert!(
    TAIL.as_millis() < MARGIN.as_millis(),
    "the tail ends inside the margin"
);

/// What one invocation of the timers function did.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The function's answer: shards held and calls dialed.
    pub answer: serde_json::Value,
    /// The run's figures as one embedded-metric-format line ([`metrics_line`]); the Lambda
    /// prints it for CloudWatch, the local stack has no use for it.
    pub metrics: String,
    /// The shards whose dispatch failed.
    pub errors: Vec<String>,
}

/// One invocation of the timers function, as Lambda and the local stack run it: every shard
/// is dispatched side by side until `deadline` less [`MARGIN`] (at most [`RUN_FOR`]).
/// `scheduled` says whether the schedule started it (it then waits for the previous run's
/// leases) or the API did (it leaves held shards to their holders). A shard whose dispatch
/// failed is retryable: the schedule runs again within a minute, and leases run out.
pub async fn invoke<S, D>(
    dispatcher: &Dispatcher<S, D>,
    shards: u32,
    owner: &str,
    deadline: Timestamp,
    scheduled: bool,
) -> Invocation
where
    S: DispatchStore + 'static,
    D: Dialer + 'static,
{
    let clock = Arc::clone(&dispatcher.shared.clock);
    let now = clock.now();
    let until = Timestamp::from_millis(
        deadline
            .as_millis()
            .saturating_sub(i64::try_from(MARGIN.as_millis()).unwrap_or(0))
            .min(now.plus(RUN_FOR).as_millis()),
    );
    let lease_wait = if scheduled {
        SCHEDULED_LEASE_WAIT
    } else {
        Duration::ZERO
    };
    let before = dispatcher.stats();
    let runs = (0..shards)
        .map(|shard| async move { (shard, dispatcher.run(shard, owner, until, lease_wait).await) });
    let mut overdue = Duration::ZERO;
    let mut held = 0;
    let mut errors = Vec::new();
    for (shard, result) in futures::future::join_all(runs).await {
        match result {
            Ok(Some(run)) => {
                held += 1;
                overdue = overdue.max(run.max_overdue);
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("shard {shard}: {e}")),
        }
    }
    let done = dispatcher.stats();
    Invocation {
        answer: serde_json::json!({
            "shards": held,
            "dialed": done.since(&before).dialed,
        }),
        metrics: metrics_line(&before, &done, overdue, clock.now()),
        errors,
    }
}

/// Whether an invocation's event comes from the schedule (EventBridge Scheduler sends the
/// payload the stack configures, `{"source": "outdial.schedule"}`) rather than from the API.
#[must_use]
pub fn is_scheduled(event: &serde_json::Value) -> bool {
    RunSource::of(event) == RunSource::Schedule
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_metrics_line_is_embedded_metric_format_with_the_run_s_differences() {
        let before = Stats {
            dialed: 10,
            throttled: 1,
            ..Stats::default()
        };
        let after = Stats {
            dialed: 25,
            throttled: 4,
            lost: 2,
            ..Stats::default()
        };
        let line = metrics_line(
            &before,
            &after,
            Duration::from_millis(1500),
            Timestamp::from_millis(1_900_000_000_000),
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Outdial");
        assert_eq!(v["Dialed"], 15);
        assert_eq!(v["DialThrottled"], 3);
        assert_eq!(v["CallsLost"], 2);
        assert_eq!(v["OverdueSeconds"], 1.5);
        assert!(!line.contains('\n'));
    }
}
