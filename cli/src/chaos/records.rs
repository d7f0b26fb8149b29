//! Reading a case's outcome: the call records as the API returns them, the simulator's
//! report, and what they say about lost and doubly dialed calls.

use std::collections::BTreeMap;

use outdial_core::lifecycle::CallStatus;
use outdial_local::sim::Report;
use outdial_local::sim::knowable::{self, Outage, Verdict};
use serde_json::{Value, json};

use super::Row;

fn status(call: &Value) -> Option<CallStatus> {
    call["status"].as_str()?.parse().ok()
}

pub(super) fn is_terminal(call: &Value) -> bool {
    status(call).is_some_and(CallStatus::is_terminal)
}

pub(super) fn terminal(calls: &[Value]) -> Vec<&Value> {
    calls.iter().filter(|c| is_terminal(c)).collect()
}

pub(super) fn recount(calls: &[Value]) -> BTreeMap<String, u64> {
    let mut by_status = BTreeMap::new();
    for call in calls {
        *by_status
            .entry(call["status"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    by_status
}

/// The stream handler's counters by status, as `GET /campaigns/{id}` shows them (zeros
/// left out, as a recount has none).
pub(super) fn streamed(campaign: &Value) -> BTreeMap<String, i64> {
    campaign["counts"]["by_status"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                .filter(|(_, v)| *v != 0)
                .collect()
        })
        .unwrap_or_default()
}

/// What the report says about a call record, briefly.
pub(super) fn brief(call: &Value) -> Value {
    json!({
        "call_id": call["call_id"],
        "status": call["status"],
        "attempt": call["attempt"],
        "answered": call["answered"],
        "last_error": call["last_error"],
        "transaction_id": call["transaction_id"],
    })
}

/// The simulator's transcripts and invocations of every placed attempt of a call.
pub(super) fn transcripts(sim: &Report, call: &Value) -> Vec<Value> {
    let id = call["call_id"].as_str().unwrap_or_default();
    let mut out: Vec<Value> = sim
        .creates
        .iter()
        .filter(|r| r.call_id.as_deref() == Some(id))
        .map(|r| json!({"create": r}))
        .collect();
    out.extend(
        sim.calls
            .iter()
            .filter(|c| c.arguments.get("call_id").map(String::as_str) == Some(id))
            .map(|c| {
                json!({
                    "transaction_id": c.transaction_id,
                    "attempt": c.arguments.get("attempt"),
                    "callee": c.callee,
                    "create_answered": c.create_answered,
                    "placed_ms": c.placed_ms,
                    "transcript": c.transcript,
                    "invocations": c.invocation_log,
                })
            }),
    );
    out
}

/// Sorts the `LOST` records: by `last_error`, and by whether the simulator confirms that
/// outdial could not have known what became of their last attempt.
pub(super) fn judge_losses(row: &mut Row, calls: &[Value], sim: &Report, outages: &[Outage]) {
    for call in calls.iter().filter(|c| status(c) == Some(CallStatus::Lost)) {
        row.lost += 1;
        let reason = call["last_error"].as_str().unwrap_or("(none)").to_owned();
        *row.lost_reasons.entry(reason).or_insert(0) += 1;
        let id = call["call_id"].as_str().unwrap_or_default();
        let attempt = call["attempt"]
            .as_u64()
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0);
        match knowable::judge(sim, id, attempt, outages, outdial_sma::EVENT_BUDGET) {
            Verdict::Unknowable { why } => {
                *row.lost_confirmed
                    .entry(why.as_str().to_owned())
                    .or_insert(0) += 1;
            }
            Verdict::Knowable { evidence } => {
                row.lost_unconfirmed += 1;
                row.evidence.push(json!({
                    "lost_unconfirmed": brief(call),
                    "simulator": evidence,
                    "transcripts": transcripts(sim, call),
                }));
            }
        }
    }
}

/// The attempts the simulator saw placed more than once.
pub(super) fn double_dials(sim: &Report) -> Vec<Value> {
    let mut per_attempt: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for c in &sim.calls {
        let key = (
            c.arguments.get("call_id").cloned().unwrap_or_default(),
            c.arguments.get("attempt").cloned().unwrap_or_default(),
        );
        per_attempt.entry(key).or_default().push(&c.transaction_id);
    }
    per_attempt
        .into_iter()
        .filter(|(_, txs)| txs.len() > 1)
        .map(|((call_id, attempt), txs)| {
            json!({"double_dial": {"call_id": call_id, "attempt": attempt, "transactions": txs}})
        })
        .collect()
}
