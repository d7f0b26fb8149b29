//! Every payload in the repository's own fixture corpus, `fixtures/sma/`, against the contract
//! types. `fixtures/sma/INDEX.md` says what each file is and whether it is JSON at all; the
//! tests read that table rather than naming files, so a new fixture is checked as soon as it is
//! listed.
//!
//! Strict JSON fixtures must parse into the type their row names and write back everything
//! they said; the others (elisions, Markdown escapes, comments, ...) must be rejected with the
//! parser's line and column. One strict fixture is rejected on purpose: a response with eleven
//! `TransactionAttributes`, which the service answers with `INVALID_LAMBDA_RESPONSE`. A file's
//! name says which of these it is (`valid_...`, `invalid_...`), and the corpus covers every
//! documented event type and every action type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::path::PathBuf;

use outdial_core::contract::{
    Action, ContractError, EventType, MAX_ACTIONS, MAX_ATTRIBUTES, Valid, parse_event, validate,
    validate_event, validate_response,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    std::env::var_os("OUTDIAL_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sma"),
        PathBuf::from,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Event,
    Response,
    Action,
}

#[derive(Debug)]
struct Row {
    file: String,
    kind: Kind,
    event: String,
    action_types: Vec<String>,
    strict: bool,
}

impl Row {
    fn text(&self) -> String {
        std::fs::read_to_string(fixtures().join(&self.file)).expect(&self.file)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text()).expect(&self.file)
    }
}

/// The table in `INDEX.md`, read by its header names.
fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("INDEX.md")).expect("INDEX.md");
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let mut lines = text.lines().skip_while(|l| !l.starts_with("| file |"));
    let header = cells(lines.next().expect("a table whose first column is `file`"));
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (file, kind, event, types, strict) = (
        column("file"),
        column("kind"),
        column("event"),
        column("action types"),
        column("strict JSON"),
    );
    let rows: Vec<Row> = lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c = cells(l);
            Row {
                file: c[file].trim_matches('`').to_owned(),
                kind: match c[kind].as_str() {
                    "event" => Kind::Event,
                    "action-list response" => Kind::Response,
                    "single action" => Kind::Action,
                    other => panic!("{}: unknown kind {other:?}", c[file]),
                },
                event: c[event].clone(),
                action_types: c[types].split(',').map(|t| t.trim().to_owned()).collect(),
                strict: c[strict] == "yes",
            }
        })
        .collect();
    let files = std::fs::read_dir(fixtures())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(rows.len(), files, "INDEX.md lists every fixture file");
    rows
}

/// A value tree with numeric strings read as numbers, nulls dropped and the
/// `SipApplicationId` alias under its canonical name: the contract writes numbers where AWS's
/// examples sometimes wrote strings, leaves out what was null, and writes
/// `SipMediaApplicationId`.
fn normalize(v: &Value) -> Value {
    match v {
        Value::String(s) => s
            .parse::<u64>()
            .map_or_else(|_| v.clone(), |n| Value::Number(n.into())),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let k = if k == "SipApplicationId" {
                        "SipMediaApplicationId"
                    } else {
                        k
                    };
                    (k.to_owned(), normalize(v))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether a response sets more attributes than the service accepts.
fn over_attribute_limit(v: &Value) -> bool {
    v.get("TransactionAttributes")
        .and_then(Value::as_object)
        .is_some_and(|m| m.len() > MAX_ATTRIBUTES)
}

/// The action a single-action example shows, out of the `Statement` envelope the
/// StartCallRecording page puts around it.
fn bare_action(v: &Value) -> &Value {
    v.get("Statement").and_then(|s| s.get(0)).unwrap_or(v)
}

#[test]
fn every_strict_fixture_parses_into_its_type_and_round_trips() {
    let rows = rows();
    let mut parsed: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut over_limit = 0;
    for row in rows.iter().filter(|r| r.strict) {
        let original = row.json();
        if row.kind == Kind::Response && over_attribute_limit(&original) {
            let err = validate(&original).unwrap_err();
            assert!(
                matches!(err, ContractError::TooManyAttributes(n) if n > MAX_ATTRIBUTES),
                "{}: {err}",
                row.file
            );
            over_limit += 1;
            continue;
        }
        let valid = validate(&original).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let (written, said) = match (&valid, row.kind) {
            (Valid::Event(e), Kind::Event) => {
                assert_eq!(
                    e.event_type,
                    EventType::from(row.event.clone()),
                    "{}",
                    row.file
                );
                (serde_json::to_value(e).unwrap(), &original)
            }
            (Valid::Response(r), Kind::Response) => {
                for a in r.actions() {
                    assert!(
                        row.action_types.iter().any(|t| t == a.type_name()),
                        "{}: {} is not listed",
                        row.file,
                        a.type_name()
                    );
                }
                (serde_json::to_value(r).unwrap(), &original)
            }
            (Valid::Action(a), Kind::Action) => {
                assert_eq!(a.type_name(), row.action_types[0], "{}", row.file);
                (serde_json::to_value(a).unwrap(), bare_action(&original))
            }
            (other, kind) => panic!("{}: listed as {kind:?}, read as {other:?}", row.file),
        };
        assert_eq!(
            normalize(&written),
            normalize(said),
            "{}: what is written back differs from what the fixture said",
            row.file
        );
        assert_eq!(validate(&written).unwrap(), valid, "{}", row.file);
        *parsed.entry(row.kind).or_default() += 1;
    }
    let strict = rows.iter().filter(|r| r.strict).count();
    println!(
        "{parsed:?} parsed and round-tripped; {over_limit} rejected as the service rejects it"
    );
    assert_eq!(over_limit, 1, "the eleven-attribute response");
    assert_eq!(parsed.values().sum::<usize>() + over_limit, strict);
    for (kind, least) in [(Kind::Event, 30), (Kind::Response, 15), (Kind::Action, 18)] {
        assert!(
            parsed.get(&kind).is_some_and(|n| *n >= least),
            "{kind:?}: {parsed:?}"
        );
    }
}

#[test]
fn every_example_that_is_not_json_is_rejected_with_line_and_column() {
    let rows = rows();
    let mut rejected = 0;
    for row in rows.iter().filter(|r| !r.strict) {
        let err = parse_event(row.text().as_bytes()).unwrap_err();
        let ContractError::NotJson(json) = &err else {
            panic!("{}: expected a JSON error, got {err:?}", row.file);
        };
        assert!(json.line() > 0, "{}: {err}", row.file);
        assert!(
            err.to_string()
                .contains(&format!("at line {} column {}", json.line(), json.column())),
            "{}: {err}",
            row.file
        );
        rejected += 1;
    }
    println!("{rejected} fixtures that are not JSON rejected");
    assert!(rejected >= 14, "{rejected}");
    for kind in [Kind::Event, Kind::Response, Kind::Action] {
        assert!(
            rows.iter().any(|r| !r.strict && r.kind == kind),
            "no {kind:?} that is not JSON"
        );
    }
}

/// The documented `InvocationEventType` values.
const EVENT_TYPES: [&str; 11] = [
    "NEW_INBOUND_CALL",
    "NEW_OUTBOUND_CALL",
    "RINGING",
    "CALL_ANSWERED",
    "ACTION_SUCCESSFUL",
    "ACTION_FAILED",
    "ACTION_INTERRUPTED",
    "HANGUP",
    "CALL_UPDATE_REQUESTED",
    "DIGITS_RECEIVED",
    "INVALID_LAMBDA_RESPONSE",
];

#[test]
fn the_corpus_covers_every_event_type_and_every_action_type() {
    let rows = rows();
    let valid = |r: &&Row| r.strict && r.file.starts_with("valid_");
    for name in EVENT_TYPES {
        assert!(
            !matches!(EventType::from(name.to_owned()), EventType::Unknown(_)),
            "{name} is a known event type"
        );
        assert!(
            rows.iter()
                .filter(valid)
                .any(|r| r.kind == Kind::Event && r.event == name),
            "no valid {name} event"
        );
    }
    for name in Action::TYPES {
        for kind in [Kind::Response, Kind::Action] {
            assert!(
                rows.iter()
                    .filter(valid)
                    .any(|r| r.kind == kind && r.action_types.iter().any(|t| t == name)),
                "no valid {kind:?} with {name}"
            );
        }
    }
}

#[test]
fn a_fixture_name_says_what_is_expected_of_it() {
    for row in rows() {
        let prefix = match row.kind {
            Kind::Event => "event_",
            Kind::Response => "response_",
            Kind::Action => "action_",
        };
        let valid = row.strict && validate(&row.json()).is_ok();
        let want = if valid {
            format!("valid_{prefix}")
        } else if row.strict {
            format!("invalid_{prefix}")
        } else {
            format!("invalid_not-json_{prefix}")
        };
        assert!(
            row.file.starts_with(&want),
            "{}: should start with {want}",
            row.file
        );
        if valid && row.kind == Kind::Event {
            assert!(
                row.file[want.len()..].starts_with(&row.event)
                    || matches!(EventType::from(row.event.clone()), EventType::Unknown(_)),
                "{}: should name its event type {}",
                row.file,
                row.event
            );
        }
    }
}

#[test]
fn a_placeholder_event_type_is_kept_and_written_back() {
    let placeholders: Vec<Row> = rows()
        .into_iter()
        .filter(|r| r.strict && r.kind == Kind::Event)
        .filter(|r| matches!(EventType::from(r.event.clone()), EventType::Unknown(_)))
        .collect();
    assert!(!placeholders.is_empty(), "an undocumented event type");
    for row in placeholders {
        let event = parse_event(row.text().as_bytes()).unwrap();
        assert_eq!(event.event_type, EventType::Unknown(row.event.clone()));
        assert_eq!(event.event_type.as_str(), row.event);
    }
}

#[test]
fn an_event_without_a_transaction_id_is_rejected() {
    let mut checked = 0;
    for row in rows().iter().filter(|r| r.strict && r.kind == Kind::Event) {
        let mut event = row.json();
        let details = event["CallDetails"].as_object_mut().unwrap();
        details.remove("TransactionId");
        let err = validate_event(&event).unwrap_err();
        assert!(
            matches!(err, ContractError::MissingTransactionId),
            "{err:?}"
        );
        assert!(err.to_string().contains("CallDetails.TransactionId"));
        event["CallDetails"]["TransactionId"] = Value::from("");
        assert!(matches!(
            parse_event(event.to_string().as_bytes()),
            Err(ContractError::MissingTransactionId)
        ));
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
}

#[test]
fn a_response_with_eleven_actions_is_rejected() {
    let mut checked = 0;
    for row in rows()
        .iter()
        .filter(|r| r.strict && r.kind == Kind::Response)
    {
        let mut response = row.json();
        let actions = response["Actions"].as_array_mut().unwrap();
        let Some(first) = actions.first().cloned() else {
            continue;
        };
        actions.resize(MAX_ACTIONS + 1, first);
        let err = validate_response(&response).unwrap_err();
        assert!(matches!(err, ContractError::TooManyActions(11)), "{err:?}");
        assert_eq!(err.to_string(), "11 actions; the SMA accepts at most 10");
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
}
