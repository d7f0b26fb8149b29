//! `outdial demo --json` keeps its interface: one JSON object as the last line, with the
//! figures scripts read, and an exit code that says whether every promise held.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::process::Command;

#[test]
fn the_demo_ends_every_contact_and_prints_its_report_as_one_json_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["demo", "--contacts", "30", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for key in [
        "contacts",
        "terminal",
        "by_status",
        "counters",
        "double_dials",
        "lost",
        "violations",
        "ddb_requests_per_event",
        "target_cps",
        "dial_rate_per_s",
        "tail_dials",
        "max_dials_in_one_second",
        "handler_p50_ms",
        "handler_p99_ms",
        "elapsed_s",
    ] {
        assert!(last.get(key).is_some(), "{key} missing: {last}");
    }
    assert_eq!(last["contacts"], 30);
    assert_eq!(last["terminal"], 30);
    assert_eq!(last["double_dials"], 0);
    assert_eq!(last["violations"], 0);
    let by_status = last["by_status"].as_object().unwrap();
    let counters = last["counters"].as_object().unwrap();
    assert_eq!(by_status.len(), counters.len(), "{last}");
    for (status, n) in by_status {
        assert_eq!(counters[status], *n, "{status}: {last}");
    }
    let per_event = last["ddb_requests_per_event"].as_f64().unwrap();
    assert!((1.0..1.1).contains(&per_event), "{per_event}");
    // Every call ends once (Call Ended), most are placed first, and the campaign completes.
    let events = last["outcome_events"].as_u64().unwrap();
    assert!(events > 30, "{last}");
    assert!(
        last["outcome_events_per_call"].as_f64().unwrap() > 1.0,
        "{last}"
    );
    assert_eq!(last["outcome_duplicates"], 0, "{last}");
}
