//! Every example in `shared/fixtures/sma/` (AWS's own documentation examples, listed with
//! their kind and whether they are JSON at all in `SOURCES.md`) against the contract types.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::path::PathBuf;

use outdial_core::contract::{ContractError, EventType, Payload, classify, parse_event};
use serde_json::Value;

fn fixtures() -> PathBuf {
    std::env::var_os("OUTDIAL_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sma"),
        PathBuf::from,
    )
}

struct Row {
    file: String,
    kind: String,
    event: String,
    actions: Vec<String>,
    strict: bool,
}

/// The table in `SOURCES.md`: file | kind | event | action types | strict JSON | origin | commit.
fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("SOURCES.md")).expect("SOURCES.md");
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            Row {
                file: cells[0].trim_matches('`').to_owned(),
                kind: cells[1].to_owned(),
                event: cells[2].to_owned(),
                actions: cells[3].split(',').map(|s| s.trim().to_owned()).collect(),
                strict: cells[4].starts_with("yes"),
            }
        })
        .collect()
}

/// A value tree with numeric strings read as numbers, nulls dropped and the
/// `SipApplicationId` alias under its canonical name: the contract writes numbers where AWS's
/// examples sometimes wrote strings, leaves absent what was null, and writes
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

#[test]
fn every_fixture_is_parsed_into_its_type_or_rejected_by_name() {
    let rows = rows();
    let files = std::fs::read_dir(fixtures())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert_eq!(rows.len(), files, "SOURCES.md lists every fixture file");
    let (mut events, mut responses, mut actions, mut rejected) = (0, 0, 0, 0);
    for row in &rows {
        let text = std::fs::read_to_string(fixtures().join(&row.file)).expect(&row.file);
        if !row.strict {
            // Not JSON at all (Markdown escapes, elisions, placeholders): rejected with the
            // parser's line and column, never a panic.
            match parse_event(text.as_bytes()) {
                Err(ContractError::NotJson(e)) => assert!(e.line() > 0, "{}: {e}", row.file),
                other => panic!("{}: expected a JSON error, got {other:?}", row.file),
            }
            rejected += 1;
            continue;
        }
        let original: Value = serde_json::from_str(&text).unwrap();
        if row.file.contains("attribute-trans-invalid_b0") {
            // AWS's example of a response the service rejects (eleven TransactionAttributes),
            // shown next to the INVALID_LAMBDA_RESPONSE it causes. Valid JSON, invalid contract.
            assert!(matches!(
                classify(&original),
                Err(ContractError::TooManyAttributes(11))
            ));
            rejected += 1;
            continue;
        }
        let payload = classify(&original).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let (written, compared) = match (&payload, row.kind.as_str()) {
            (Payload::Event(e), "event") => {
                events += 1;
                let want = EventType::from(row.event.clone());
                assert_eq!(e.event_type, want, "{}", row.file);
                (serde_json::to_value(e).unwrap(), original.clone())
            }
            (Payload::Response(r), "action-list response") => {
                responses += 1;
                for a in r.actions() {
                    assert!(
                        row.actions.iter().any(|t| t == a.type_name()),
                        "{}: {}",
                        row.file,
                        a.type_name()
                    );
                }
                (serde_json::to_value(r).unwrap(), original.clone())
            }
            (Payload::Action(a), "single action") => {
                actions += 1;
                assert_eq!(a.type_name(), row.actions[0], "{}", row.file);
                let inner = original
                    .get("Statement")
                    .and_then(|s| s.get(0))
                    .cloned()
                    .unwrap_or_else(|| original.clone());
                (serde_json::to_value(a).unwrap(), inner)
            }
            (other, kind) => panic!("{}: listed as {kind}, read as {other:?}", row.file),
        };
        // Round trip: what we write back says everything the example said.
        assert_eq!(
            normalize(&written),
            normalize(&compared),
            "{} does not round-trip",
            row.file
        );
        // And reads back into the same value.
        assert_eq!(classify(&written).unwrap(), payload, "{}", row.file);
    }
    println!(
        "{events} events, {responses} responses, {actions} single actions parsed; {rejected} non-JSON examples rejected"
    );
    assert_eq!(events + responses + actions + rejected, rows.len());
    assert!(events >= 8 && responses >= 10 && actions >= 6 && rejected >= 40);
}

#[test]
fn the_event_type_placeholder_and_direction_placeholder_are_kept_as_unknown_values() {
    let text = std::fs::read_to_string(
        fixtures().join("awsdocs-chime-sdk-dg__pstn-invocations_b0_event-type.json"),
    )
    .unwrap();
    let event = parse_event(text.as_bytes()).unwrap();
    assert_eq!(event.event_type, EventType::Unknown("event-type".into()));
    let leg = &event.call_details.participants[0];
    assert_eq!(
        leg.direction,
        Some(outdial_core::contract::Direction::Other(
            "Inbound/Outbound".into()
        ))
    );
}
