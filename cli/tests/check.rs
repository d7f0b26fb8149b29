//! `outdial check` as a user runs it: the built binary over files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    std::env::var_os("OUTDIAL_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sma"),
        PathBuf::from,
    )
}

fn outdial(args: &[&Path]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty() || out.status.code() == Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code().unwrap(),
    )
}

/// Writes `body` to a fresh file named `name` and returns its path.
fn file(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outdial-check-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[test]
fn the_fixture_folder_gives_ok_for_json_examples_and_invalid_for_the_rest() {
    let (stdout, code) = outdial(&[&fixtures()]);
    assert_eq!(
        code, 1,
        "some AWS examples are not JSON, so the run as a whole is invalid"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 78);
    let ok = lines.iter().filter(|l| l.contains(": ok ")).count();
    let invalid = lines.iter().filter(|l| l.contains(": invalid: ")).count();
    assert_eq!((ok, invalid), (28, 50), "{stdout}");
    assert!(stdout.contains(
        "awsdocs-chime-sdk-dg__use-create-call-api_b1_RINGING.json: ok event RINGING seq=1"
    ));
    assert!(stdout.contains(
        "awsdocs-chime-sdk-dg__pstn-invocations_b0_event-type.json: ok event event-type seq=3"
    ));
    assert!(stdout.contains("awsdocs-chime-sdk-dg__use-cases_b1_action-list-response_PlayAudio-PlayAudioAndGetDigits.json: ok response actions=2"));
    assert!(
        stdout.contains(
            "awsdocs-chime-sdk-dg__hangup_b0_single-action_Hangup.json: ok action Hangup"
        )
    );
    assert!(stdout.contains("awsdocs-chime-sdk-dg__start-call-recording_b0_single-action_StartCallRecording.json: ok action StartCallRecording"));
    assert!(stdout.contains("awsdocs-chime-sdk-dg__attribute-trans-invalid_b0_action-list-response_PlayAudio.json: invalid: TransactionAttributes has 11 keys; the SMA accepts at most 10"));
    assert!(stdout.contains("awsdocs-chime-sdk-dg__case-1_b0_NEW_INBOUND_CALL.json: invalid: not JSON: expected `,` or `}` at line"));
}

#[test]
fn each_common_mistake_is_named() {
    let speak = r#"{"Type": "Speak", "Parameters": {"CallId": "leg-a", "Text": "hello"}}"#;
    let eleven = [speak; 11].join(",");
    let cases = [
        ("proxy.json", r#"{"statusCode": 200, "body": "{\"SchemaVersion\":\"1.0\"}"}"#.to_owned(), "invalid: looks like an API Gateway proxy response"),
        ("eleven.json", format!(r#"{{"SchemaVersion": "1.0", "Actions": [{eleven}]}}"#), "invalid: 11 actions; the SMA accepts at most 10"),
        ("version.json", r#"{"SchemaVersion": "2.0", "Actions": []}"#.to_owned(), "invalid: SchemaVersion \"2.0\" does not match the event's \"1.0\""),
        ("unknown.json", r#"{"SchemaVersion": "1.0", "Actions": [{"Type": "PlayMusic", "Parameters": {}}]}"#.to_owned(), "invalid: action 1: unknown action type \"PlayMusic\""),
        ("missing.json", r#"{"SchemaVersion": "1.0", "Actions": [{"Type": "Pause", "Parameters": {"CallId": "leg-a"}}]}"#.to_owned(), "invalid: action 1 (Pause): missing required parameter DurationInMilliseconds"),
        ("notxn.json", r#"{"SchemaVersion": "1.0", "Sequence": 1, "InvocationEventType": "RINGING", "CallDetails": {"Participants": []}}"#.to_owned(), "invalid: CallDetails.TransactionId is missing or empty"),
    ];
    for (name, body, want) in cases {
        let path = file(name, &body);
        let (stdout, code) = outdial(&[&path]);
        assert_eq!(code, 1, "{name}");
        let line = stdout.trim();
        assert!(
            line.starts_with(&format!("{}: {want}", path.display())),
            "{name}: {line}"
        );
        assert_eq!(stdout.lines().count(), 1, "{name}: one line per file");
    }
}

#[test]
fn valid_files_exit_zero_and_unreadable_ones_say_so() {
    let ok = file(
        "ok.json",
        r#"{"SchemaVersion": "1.0", "Actions": [{"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}}]}"#,
    );
    let (stdout, code) = outdial(&[&ok]);
    assert_eq!(
        (stdout.trim(), code),
        (
            format!("{}: ok response actions=1", ok.display()).as_str(),
            0
        )
    );
    let missing = PathBuf::from("/nonexistent/outdial/event.json");
    let (stdout, code) = outdial(&[&missing]);
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with("/nonexistent/outdial/event.json: invalid: cannot read:"),
        "{stdout}"
    );
}
