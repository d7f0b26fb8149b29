//! `outdial check` as a user runs it: the built binary over the repository's fixture corpus
//! (`fixtures/sma/`) and over small files holding the mistakes people make with SMA handlers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixtures() -> PathBuf {
    std::env::var_os("OUTDIAL_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sma"),
        PathBuf::from,
    )
}

/// Runs `outdial check` with `args`; returns stdout, stderr and the exit code.
fn outdial_check(args: &[&Path]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().expect("an exit code, not a signal"),
    )
}

/// Writes `body` to a file called `name` in a folder of its own under the temp dir.
fn temp_file(name: &str, body: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "outdial-check-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// The line `outdial check` must print for each fixture listed in `INDEX.md` (file, kind,
/// event, action types, strict JSON, ...), worked out from the table and the fixture itself.
fn expected_lines() -> Vec<String> {
    let sources = std::fs::read_to_string(fixtures().join("INDEX.md")).unwrap();
    let mut rows: Vec<Vec<String>> = sources
        .lines()
        .skip_while(|l| !l.starts_with("| file |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect();
    rows.sort();
    rows.iter()
        .map(|row| {
            let path = fixtures().join(&row[0]);
            let text = std::fs::read_to_string(&path).unwrap();
            let verdict = match serde_json::from_str::<Value>(&text) {
                Err(e) => {
                    assert_ne!(row[4], "yes", "{}", row[0]);
                    format!("invalid: not JSON: {e}")
                }
                Ok(v) => {
                    assert_eq!(row[4], "yes", "{}", row[0]);
                    verdict(&row[1], &row[2], &v)
                }
            };
            format!("{}: {verdict}", path.display())
        })
        .collect()
}

fn verdict(kind: &str, event: &str, v: &Value) -> String {
    match kind {
        "event" => {
            let seq = &v["Sequence"];
            format!(
                "ok event {event} seq={}",
                seq.as_str().map_or(seq.to_string(), str::to_owned)
            )
        }
        "action-list response" => match v["TransactionAttributes"].as_object() {
            // The response the service rejects with INVALID_LAMBDA_RESPONSE.
            Some(m) if m.len() > 10 => format!(
                "invalid: TransactionAttributes has {} keys; the SMA accepts at most 10",
                m.len()
            ),
            _ => format!(
                "ok response actions={}",
                v["Actions"].as_array().unwrap().len()
            ),
        },
        "single action" => {
            let action = v.get("Statement").and_then(|s| s.get(0)).unwrap_or(v);
            format!("ok action {}", action["Type"].as_str().unwrap())
        }
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn the_fixture_folder_gives_one_line_per_example_in_name_order() {
    let (stdout, stderr, code) = outdial_check(&[&fixtures()]);
    assert_eq!(stderr, "");
    let want = expected_lines();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got, want);
    let ok = got.iter().filter(|l| l.contains(": ok ")).count();
    let invalid = got.iter().filter(|l| l.contains(": invalid: ")).count();
    assert_eq!((ok, invalid), (72, 15), "{stdout}");
    for line in &got {
        let (path, _) = line.split_once(": ").unwrap();
        let name = Path::new(path).file_name().unwrap().to_str().unwrap();
        assert_eq!(
            name.starts_with("valid_"),
            line.contains(": ok "),
            "the name says whether it is valid: {line}"
        );
    }
    assert_eq!(code, 1, "some fixtures are not JSON, so the run is invalid");
}

#[test]
fn each_common_mistake_gets_its_own_message() {
    let speak = r#"{"Type": "Speak", "Parameters": {"CallId": "leg-a", "Text": "hello"}}"#;
    let eleven = [speak; 11].join(",");
    let cases = [
        (
            "proxy.json",
            r#"{"statusCode": 200, "body": "{\"SchemaVersion\":\"1.0\",\"Actions\":[]}"}"#
                .to_owned(),
            r#"invalid: looks like an API Gateway proxy response or request (statusCode/body): an SMA handler returns the action list itself, {"SchemaVersion": "1.0", "Actions": [...]}"#,
        ),
        (
            "eleven.json",
            format!(r#"{{"SchemaVersion": "1.0", "Actions": [{eleven}]}}"#),
            "invalid: 11 actions; the SMA accepts at most 10",
        ),
        (
            "version.json",
            r#"{"SchemaVersion": "2.0", "Actions": []}"#.to_owned(),
            r#"invalid: SchemaVersion "2.0" does not match the event's "1.0""#,
        ),
        (
            "unknown.json",
            format!(
                r#"{{"SchemaVersion": "1.0", "Actions": [{speak}, {{"Type": "PlayMusic", "Parameters": {{}}}}]}}"#
            ),
            r#"invalid: action 2: unknown action type "PlayMusic""#,
        ),
        (
            "missing.json",
            r#"{"SchemaVersion": "1.0", "Actions": [{"Type": "Pause", "Parameters": {"CallId": "leg-a"}}]}"#
                .to_owned(),
            "invalid: action 1 (Pause): missing required parameter DurationInMilliseconds",
        ),
        (
            "null.json",
            r#"{"SchemaVersion": "1.0", "Actions": null}"#.to_owned(),
            "invalid: Actions is missing or null, which tells the SMA to keep running its current actions; send [] to run nothing",
        ),
        (
            "notxn.json",
            r#"{"SchemaVersion": "1.0", "Sequence": 1, "InvocationEventType": "RINGING", "CallDetails": {"Participants": []}}"#
                .to_owned(),
            "invalid: CallDetails.TransactionId is missing or empty",
        ),
        (
            "seq.json",
            r#"{"SchemaVersion": "1.0", "Sequence": "three", "InvocationEventType": "RINGING", "CallDetails": {"TransactionId": "t"}}"#
                .to_owned(),
            r#"invalid: not an SMA event: "three" is not a whole number at line 1 column 44"#,
        ),
    ];
    for (name, body, want) in cases {
        let path = temp_file(name, &body);
        let (stdout, stderr, code) = outdial_check(&[&path]);
        assert_eq!(stdout, format!("{}: {want}\n", path.display()), "{name}");
        assert_eq!((stderr.as_str(), code), ("", 1), "{name}");
    }
}

#[test]
fn valid_files_exit_zero() {
    let response = temp_file(
        "hangup.json",
        r#"{"SchemaVersion": "1.0", "Actions": [{"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}}]}"#,
    );
    let event = temp_file(
        "ringing.json",
        r#"{"SchemaVersion": "1.0", "Sequence": "2", "InvocationEventType": "RINGING", "CallDetails": {"TransactionId": "t"}}"#,
    );
    let (stdout, _, code) = outdial_check(&[&response, &event]);
    assert_eq!(
        stdout,
        format!(
            "{}: ok response actions=1\n{}: ok event RINGING seq=2\n",
            response.display(),
            event.display()
        )
    );
    assert_eq!(code, 0);
}

#[test]
fn an_unreadable_file_is_invalid_and_the_others_are_still_checked() {
    let missing = PathBuf::from("/nonexistent/outdial/event.json");
    let ok = temp_file("empty.json", r#"{"SchemaVersion": "1.0", "Actions": []}"#);
    let (stdout, _, code) = outdial_check(&[&missing, &ok]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "/nonexistent/outdial/event.json: invalid: cannot read: No such file or directory (os error 2)".to_owned(),
            format!("{}: ok response actions=0", ok.display()),
        ]
    );
    assert_eq!(code, 1);
}

#[test]
fn no_file_is_a_usage_error() {
    let (stdout, stderr, code) = outdial_check(&[]);
    assert_eq!((stdout.as_str(), code), ("", 2));
    assert!(stderr.contains("Usage"), "{stderr}");
}
