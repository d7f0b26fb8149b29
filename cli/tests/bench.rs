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
