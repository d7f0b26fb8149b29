//! The domain of outdial, a durable outbound-call orchestration service for the Amazon Chime
//! SDK PSTN audio service (SIP media applications, "SMA").
//!
//! This crate knows nothing of AWS SDKs, performs no I/O and never reads a clock: every
//! handler, the local stack and the tests share it, and the crate graph keeps it that way.
//!
//! A map of the modules:
//!
//! - [`ids`]: values parsed once at the edge: [`ids::E164`] phone numbers, call, campaign and
//!   transaction ids, the SMA's [`ids::Sequence`] and the attempt number.
//! - [`contract`]: the PSTN audio contract as types: invocation events (lenient on the way in),
//!   actions and the action-list response (strict on the way out), and its validator.
//! - [`sip`]: `SipResponseCode` values and the outcome they mean for an unanswered call.
//! - [`lifecycle`]: the call's status, the events that move it, and the pure transition
//!   function with its `Sequence` guard.
//! - [`messages`]: what the functions pass each other through AWS (dial arguments, end
//!   commands, what started a timers run, the functions' names), one type each.
//! - [`script`]: the call script a campaign runs once the callee answers.
//! - [`machine`]: answering-machine detection: a person's hello from a mailbox's greeting,
//!   and the message left after its beep.
//! - [`retry`]: when a busy, unanswered or failed attempt is tried again.
//! - [`time`]: instants, durations and the [`time::Clock`] port.
//! - [`pacing`]: how fast calls are started: an even pacer and a rate that backs off on
//!   throttling.
//! - [`record`]: campaigns and calls as the store keeps them.
//! - [`ports`]: the traits the adapters implement (the call store), with what an
//!   implementation must return.
//! - [`admin`]: the API's port: campaigns' lifecycle, contacts appended, the do-not-call list
//!   and idempotency records.
//! - [`counters`]: a campaign's counters and how a call's change moves them (the stream
//!   handler keeps them, the API shows them, the dispatcher's concurrency cap reads them).
//! - [`dispatch`]: the dispatcher's rules: what becomes of a waiting call, a watchdog and a
//!   dial's answer, and the guard each conditional change carries.
//! - [`window`]: calling windows in the contact's time zone.
//! - [`policy`]: the account's compliance policy: purposes, contact caps and the per-number
//!   ledger they are counted in, and the reasons a call is held or skipped.
//! - [`legal`]: the hours the law allows calling a number, by the jurisdiction its digits
//!   say (rules and sources as data in `core/data/calling-hours.tsv`).

pub mod admin;
pub mod contract;
pub mod counters;
pub mod dispatch;
pub mod ids;
pub mod legal;
pub mod lifecycle;
pub mod machine;
pub mod messages;
pub mod numbers;
pub mod outcomes;
pub mod pacing;
pub mod policy;
pub mod ports;
pub mod record;
pub mod retry;
pub mod script;
pub mod sip;
pub mod speech;
pub mod time;
pub mod window;
