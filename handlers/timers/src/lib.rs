//! The timers Lambda's dispatcher: turns due calls into placed calls and makes sure every
//! live call ends. See `docs/dispatcher.md` and `docs/design.md` sections 4 and 5; the Voice
//! API it calls is `docs/pstn-audio.md` sections 7 and 8. The rules it follows are pure functions in [`outdial_core::dispatch`];
//! this crate does the I/O they decide.
//!
//! One [`Dispatcher::tick`] reads a dispatch shard's due entries, earliest first, and for each:
//!
//! - a waiting call (`QUEUED`, `RETRY_WAIT`) of an active campaign, inside its calling window
//!   and under its campaign's concurrency cap, gets a pacing slot (per campaign and for the
//!   account) and a dial task: the do-not-call list is checked again, the call is claimed with
//!   a conditional write that also takes a concurrency slot, and it is dialed on its slot with
//!   its `{call_id, campaign_id, attempt, vars}` as `ArgumentsMap`. Dials are prepared ahead
//!   and sent without waiting for the previous answer, so the rate holds whatever the API's
//!   latency. A throttled dial was not placed and goes back to waiting (and the account's rate
//!   halves); a refused one ends with the API's reason; an unknown answer (a 5xx, a timeout)
//!   leaves the attempt `DIALING` for its watchdog to decide, so no attempt is dialed twice;
//! - a waiting call of a paused campaign is parked (taken out of the index until the campaign
//!   resumes), one of a cancelled campaign is cancelled, one outside its window is moved to
//!   the next opening;
//! - a live call whose watchdog fired is looked at: `DIALING` without a first event was never
//!   placed and is queued again as the same attempt; otherwise the SMA is asked to hang it up
//!   (`UpdateSipMediaApplicationCall`), and a call the SMA no longer knows becomes `LOST`;
//! - a campaign whose status changed is swept: a cancelled one's waiting calls are cancelled
//!   and its live calls hung up, a resumed one's parked calls are put back.
//!
//! The modules, in the order a run goes through them:
//!
//! - [`invoke`](crate::invoke()): one Lambda invocation: every shard side by side, and the
//!   run's metrics line;
//! - `lease`: one shard's run under its lease, ticking until the run's time is up;
//! - `tick`: one pass over a shard's due entries, deciding each waiting call;
//! - `dial`: one dial, from its claim to what the Voice API's answer means;
//! - `watchdogs` and `sweeps`: live calls whose deadline passed, campaigns whose status
//!   changed;
//! - `dispatcher`: the state they share (pacers, campaign cache, calls in flight);
//! - `settings` and `config`: what the dispatcher is told, and what it reports.

mod config;
mod dial;
mod dispatcher;
mod invoke;
mod lease;
mod settings;
mod sweeps;
mod tick;
mod watchdogs;

pub use config::TimersConfig;
pub use dispatcher::Dispatcher;
pub use invoke::{
    Invocation, MARGIN, OVERLAP, RUN_FOR, SCHEDULED_LEASE_WAIT, TAIL, invoke, is_scheduled,
    metrics_line,
};
pub use lease::{LEASE, Run};
pub use settings::{Settings, Stats, Tick};
