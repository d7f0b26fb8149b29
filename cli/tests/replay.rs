//! `outdial replay` as a user runs it: the built binary over a file of logged events.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::process::Command;

use serde_json::{Value, json};

fn attrs(status: &str, answered: &str, step: Option<&str>) -> Value {
    let mut a = json!({"call_id": "call_replay1", "campaign_id": "cmp_replay1", "attempt": "1",
        "status": status, "answered": answered});
    if let Some(s) = step {
        a["step"] = json!(s);
    }
    a
}

fn event(seq: u64, kind: &str, attributes: Option<Value>, data: Option<Value>) -> Value {
    let mut details = json!({"TransactionId": "5b1c2a0e-1111-2222-3333-444455556666",
        "Participants": [{"CallId": "leg-a", "ParticipantTag": "LEG-A", "To": "+15555550100",
            "From": "+15555550199", "Direction": "Outbound", "Status": "Connected"}]});
    if let Some(a) = attributes {
        details["TransactionAttributes"] = a;
    }
    let mut e = json!({"SchemaVersion": "1.0", "Sequence": seq, "InvocationEventType": kind, "CallDetails": details});
    if let Some(d) = data {
        e["ActionData"] = d;
    }
    e
}

#[test]
fn a_logged_call_replays_to_its_final_record_duplicates_included() {
    let pressed = event(
        3,
        "ACTION_SUCCESSFUL",
        Some(attrs("ANSWERED", "1", Some("menu"))),
        Some(
            json!({"Type": "SpeakAndGetDigits", "ReceivedDigits": "1", "Parameters": {"CallId": "leg-a"}}),
        ),
    );
    let events = json!([
        event(
            1,
            "NEW_OUTBOUND_CALL",
            None,
            Some(json!({"Type": "CallCreateRequest",
            "Parameters": {"Arguments": {"call_id": "call_replay1", "campaign_id": "cmp_replay1", "attempt": "1"}}}))
        ),
        event(2, "CALL_ANSWERED", Some(attrs("DIALING", "0", None)), None),
        pressed.clone(),
        pressed,
        event(
            4,
            "HANGUP",
            Some(attrs("ANSWERED", "1", None)),
            Some(json!({"Type": "Hangup",
            "Parameters": {"CallId": "leg-a", "ParticipantTag": "LEG-A", "SipResponseCode": "0"}}))
        ),
    ]);
    let path = std::env::temp_dir().join(format!("outdial-replay-{}.json", std::process::id()));
    std::fs::write(&path, events.to_string()).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["replay", path.to_str().unwrap(), "--to", "+15555550100"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "one answer per event, then the record");
    let types = |v: &Value| -> Vec<String> {
        v["Actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["Type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(types(&lines[1]), ["Speak", "SpeakAndGetDigits"]);
    assert_eq!(types(&lines[2]), ["Speak", "Hangup"]);
    assert_eq!(lines[3], lines[2], "the duplicate gets the stored answer");
    let record = &lines[5];
    assert_eq!(record["status"], "COMPLETED");
    assert_eq!(record["script_outcome"], "confirmed");
    assert_eq!(record["to"], "+15555550100");
}

#[test]
fn a_file_that_names_no_call_is_refused_with_the_reason() {
    let path =
        std::env::temp_dir().join(format!("outdial-replay-none-{}.json", std::process::id()));
    std::fs::write(&path, json!([event(2, "RINGING", None, None)]).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["replay", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event names a call"));
}
