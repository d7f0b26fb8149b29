//! `outdial bench dial` keeps its interface: one JSON object as the last line, with the
//! figures scripts read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::process::Command;

#[test]
fn bench_dial_prints_its_figures_as_one_json_line_and_never_exceeds_the_rate() {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["bench", "dial", "--cps", "20", "--seconds", "1", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for key in [
        "target_cps",
        "achieved_cps",
        "max_in_one_second",
        "calls",
        "double_dials",
    ] {
        assert!(last.get(key).is_some(), "{key} missing: {last}");
    }
    assert_eq!(last["calls"], 20);
    assert_eq!(last["double_dials"], 0);
    assert!(last["max_in_one_second"].as_u64().unwrap() <= 20, "{last}");
    // Without --pool the campaign dials from its one number.
    assert!(last["pool"].is_null(), "{last}");
    assert!(
        last["ddb_requests_per_call"].as_f64().unwrap() > 0.0,
        "{last}"
    );
}

#[test]
fn bench_dial_from_a_pool_places_every_call_once_within_the_rate_and_counts_its_requests() {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args([
            "bench",
            "dial",
            "--pool",
            "3",
            "--cps",
            "20",
            "--seconds",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["calls"], 20, "{last}");
    assert_eq!(last["double_dials"], 0, "{last}");
    assert_eq!(last["pool"], 3, "{last}");
    assert!(last["max_in_one_second"].as_u64().unwrap() <= 20, "{last}");
    assert!(
        last["ddb_requests_per_call"].as_f64().unwrap() > 0.0,
        "{last}"
    );
}

#[test]
fn bench_caps_prints_the_cap_checks_cost_beside_none_as_one_json_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["bench", "caps", "--calls", "20", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for run in ["without_policy", "with_policy", "with_policy_again"] {
        assert_eq!(last[run]["placed"], 20, "{last}");
        assert!(
            last[run]["requests_per_call"].as_f64().unwrap() > 0.0,
            "{last}"
        );
    }
    // The cap check is the ledger's read, once a call at least, and the ledger's update in
    // the claim's transaction: one small item, two write units.
    let get_items = |run: &str| {
        last[run]["requests_by_operation"]["GetItem"]
            .as_f64()
            .unwrap()
    };
    assert!(
        get_items("with_policy") - get_items("without_policy") >= 0.95,
        "{last}"
    );
    assert_eq!(
        last["with_policy"]["requests_by_operation"]["TransactWriteItems"],
        1.0
    );
    assert_eq!(last["extra_write_units_per_call"], 2.0);
    assert_eq!(last["double_dials"], 0);
}

#[test]
fn bench_export_writes_one_row_per_contact_and_reads_each_exports_peak_memory() {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["bench", "export", "--contacts", "1500", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            last["small"]["rows"].as_u64(),
            last["large"]["rows"].as_u64()
        ),
        (Some(150), Some(1500)),
        "{last}"
    );
    for run in ["small", "large"] {
        assert!(last[run]["peak_rss_mib"].as_f64().unwrap() > 1.0, "{last}");
        // Every row carries its contact's reference, not only the number and status.
        assert!(
            last[run]["bytes"].as_u64().unwrap() > 60 * last[run]["rows"].as_u64().unwrap(),
            "{last}"
        );
    }
    assert!(last["peak_ratio"].as_f64().unwrap() > 0.0, "{last}");
}

#[test]
fn bench_cost_counts_each_functions_share_of_a_call_and_scales_it_to_a_thousand_contacts() {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["bench", "cost", "--calls", "40", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let f = |key: &str| {
        last[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {last}"))
    };
    assert_eq!(last["completed"], 40, "{last}");
    assert_eq!(last["double_dials"], 0, "{last}");
    // Every call is dialed, and its events each cost the SMA function about one request (an
    // opt-out two; on a loaded machine a slow test build's timeouts and retries more: a
    // second request for every event would still fail).
    assert!(f("dials_per_call") >= 1.0, "{last}");
    let sma = &last["functions"]["sma"];
    assert_eq!(sma["invocations"], last["chime_events_per_call"], "{last}");
    let per_event = sma["ddb_requests"].as_f64().unwrap() / sma["invocations"].as_f64().unwrap();
    assert!((1.0..1.5).contains(&per_event), "{per_event}: {last}");
    // Each function's share adds up to the totals.
    for (total, part) in [
        ("ddb_requests_per_call", "ddb_requests"),
        ("lambda_invocations_per_call", "invocations"),
    ] {
        let sum: f64 = ["api", "sma", "timers", "stream"]
            .iter()
            .map(|name| last["functions"][name][part].as_f64().unwrap())
            .sum();
        assert!((sum - f(total)).abs() < 0.01, "{total}: {last}");
    }
    for key in [
        "ddb_write_units_per_call",
        "ddb_read_units_per_call",
        "lambda_billed_ms_per_call",
        "stream_records_per_call",
        "put_events_entries_per_call",
    ] {
        assert!(f(key) > 0.0, "{key}: {last}");
    }
    // Transactions are charged from their items' sizes, at least two units each.
    assert!(f("ddb_transaction_write_units_per_call") >= 2.0, "{last}");
    assert!(
        last["call_item_bytes_p50"].as_u64().unwrap() > 200,
        "{last}"
    );
    let per_1000 = last["per_1000_contacts"]["ddb_requests"].as_f64().unwrap();
    assert!(
        (per_1000 - f("ddb_requests_per_call") * 1000.0).abs() < 10.0,
        "{last}"
    );
}
