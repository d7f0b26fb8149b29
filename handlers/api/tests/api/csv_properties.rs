//! Properties of CSV contact lists, over generated and mutated files: reading never panics,
//! a body is either read or refused with a problem, and every accepted contact has a call id
//! of its own.
//!
//! The first two are pure (no store, no handler), so 256 cases run in about a second; the
//! third sends mutated files through the handler over the in-memory store, with the charsets
//! a client may name, and checks that an accepted count is the calls written.

use std::collections::{BTreeSet, HashSet};

use lambda_http::Body;
use outdial_api::contacts;
use outdial_api::idempotency::Seed;
use outdial_api::phone::Region;
use outdial_api::problem::ApiError;
use outdial_api::request;
use outdial_core::admin::IdempotencyKey;
use proptest::prelude::*;

use crate::memory::{Memory, spec};

/// How a generated file writes its rows.
#[derive(Debug, Clone)]
struct Layout {
    bom: bool,
    /// One line end per row (the header's first), from `\n`, `\r\n` and `\r`.
    ends: Vec<&'static str>,
    /// Blank rows before each row: empty lines, or rows of empty fields.
    blanks: Vec<&'static str>,
    trailing_end: bool,
}

/// A value a name may hold: plain, or needing quotes (commas, quotes, any line end).
fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z').prop_map(String::from),
            1 => Just(",".to_owned()),
            1 => Just("\"".to_owned()),
            1 => Just("\n".to_owned()),
            1 => Just("\r".to_owned()),
            1 => Just("\r\n".to_owned()),
            1 => Just(" ".to_owned()),
            1 => Just("é".to_owned()),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn line_end() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
}

fn blank() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just(""),
        1 => Just("\n"),
        1 => Just("\r\n"),
        1 => Just("\r"),
        1 => Just(",\n"),
        1 => Just("  ,  \r"),
        1 => Just("\r\n\r\n"),
    ]
}

/// A CSV of `names.len()` contacts with distinct numbers, and that count.
fn file() -> impl Strategy<Value = (String, usize)> {
    proptest::collection::vec(name(), 0..40).prop_flat_map(|names| {
        let n = names.len();
        (
            Just(names),
            any::<bool>(),
            proptest::collection::vec(line_end(), n + 1),
            proptest::collection::vec(blank(), n + 1),
            any::<bool>(),
        )
            .prop_map(move |(names, bom, ends, blanks, trailing_end)| {
                let layout = Layout {
                    bom,
                    ends,
                    blanks,
                    trailing_end,
                };
                (write(&names, &layout), n)
            })
    })
}

fn write(names: &[String], layout: &Layout) -> String {
    let mut out = String::new();
    if layout.bom {
        out.push('\u{feff}');
    }
    out.push_str("to,name");
    for (i, name) in names.iter().enumerate() {
        out.push_str(layout.ends[i]);
        out.push_str(layout.blanks[i]);
        let quoted = if name.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", name.replace('"', "\"\""))
        } else {
            name.clone()
        };
        out.push_str(&format!("+1202555{i:04},{quoted}"));
    }
    if layout.trailing_end {
        out.push_str(layout.ends[names.len()]);
        out.push_str(layout.blanks[names.len()]);
    }
    out
}

/// One change to a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Replace(prop::sample::Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        Just(b'\r'),
        Just(b'\n'),
        Just(b'"'),
        Just(b','),
        Just(b' '),
        Just(b'+'),
        Just(b'1'),
        Just(0xEF),
        Just(0xBB),
        Just(0xBF),
        Just(0xFF),
        Just(0x00),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
        (any::<prop::sample::Index>(), byte).prop_map(|(i, b)| Mutation::Replace(i, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match *m {
            Mutation::Insert(i, b) => {
                let at = i.index(bytes.len() + 1);
                bytes.insert(at, b);
            }
            Mutation::Delete(i) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes.remove(at);
            }
            Mutation::Replace(i, b) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            Mutation::Delete(_) | Mutation::Replace(..) => {}
        }
    }
    bytes
}

/// The records of a body with at least one non-empty field, as a plain CSV reader (the
/// same dialect: flexible widths, fields trimmed) counts them.
fn non_blank_records(body: &str) -> usize {
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes())
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.iter().any(|f| !f.is_empty()))
        .count()
}

/// What reading a body as a CSV upload gives: the number of rows read, of contacts
/// accepted, and of distinct call ids those contacts get; or the HTTP status it is
/// refused with.
fn read(body: Vec<u8>) -> Result<(usize, usize, usize), u16> {
    let req = http::Request::builder()
        .header("content-type", "text/csv")
        .body(Body::Binary(body))
        .unwrap();
    let text = request::text(&req).map_err(|e| e.into_response().status().as_u16())?;
    let no_vars = BTreeSet::new();
    let rows = contacts::from_csv(text, &no_vars)
        .map_err(|e| ApiError::from(e).into_response().status().as_u16())?;
    let ordinals: HashSet<u64> = rows.iter().map(|r| r.at.ordinal()).collect();
    assert_eq!(ordinals.len(), rows.len(), "two rows share an ordinal");
    let read = rows.len();
    let checked = contacts::check(rows, Region::US, &no_vars);
    assert_eq!(checked.accepted.len() + checked.rejected.len(), read);
    let seed = Seed::keyed(&IdempotencyKey::parse("prop").unwrap(), "fingerprint");
    let ids: HashSet<String> = checked
        .accepted
        .iter()
        .map(|c| seed.call_id(c.at.ordinal()).unwrap().as_str().to_owned())
        .collect();
    Ok((read, checked.accepted.len(), ids.len()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever its line ends, quotes, BOM, blank rows and last line, a file of n good
    /// contacts gives n contacts with n call ids (and a file of none is refused with 422).
    #[test]
    fn every_contact_of_a_generated_file_is_accepted_with_an_id_of_its_own((body, n) in file()) {
        match read(body.clone().into_bytes()) {
            Ok((read, accepted, ids)) => {
                prop_assert_eq!(read, n, "{:?}", body);
                prop_assert_eq!(accepted, n, "{:?}", body);
                prop_assert_eq!(ids, n, "{:?}", body);
            }
            Err(status) => {
                prop_assert_eq!(n, 0, "{:?} refused with {}", body, status);
                prop_assert_eq!(status, 422, "{:?}", body);
            }
        }
    }

    /// Any bytes changed: never a panic, a problem of 4xx or rows read, one per non-blank
    /// record, and as many call ids as accepted contacts.
    #[test]
    fn a_mutated_file_is_read_or_refused_and_never_shares_an_id(
        (body, _) in file(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let bytes = mutate(body.into_bytes(), &mutations);
        match read(bytes.clone()) {
            Ok((read, accepted, ids)) => {
                let text = std::str::from_utf8(&bytes).unwrap();
                prop_assert_eq!(read, non_blank_records(text), "{:?}", text);
                prop_assert_eq!(accepted, ids, "{:?}", text);
            }
            Err(status) => prop_assert!((400..500).contains(&status), "{} for {:?}", status, bytes),
        }
    }

    /// Any bytes changed, sent as a campaign's contact list through the handler: a 2xx or a
    /// 4xx problem detail, never a 5xx, and an accepted campaign holds exactly the calls it
    /// says it accepted.
    #[test]
    fn a_mutated_file_posted_is_answered_and_accepted_equals_written(
        (body, _) in file(),
        mutations in proptest::collection::vec(mutation(), 0..8),
        content_type in prop::sample::select(vec![
            "text/csv",
            "text/csv; charset=utf-8",
            "text/csv;charset=\"UTF-8\"",
            "text/csv; charset=utf-16",
            "text/csv; charset=iso-8859-1",
            "application/csv",
        ]),
    ) {
        let bytes = mutate(body.into_bytes(), &mutations);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let m = Memory::new();
            let spec = spec().to_string();
            let (status, answer) = m
                .send_bytes("/campaigns", content_type, &bytes, &[(request::SPEC_HEADER, &spec)])
                .await;
            prop_assert!(
                (200..300).contains(&status) || (400..500).contains(&status),
                "{} for {:?} as {}: {}", status, bytes, content_type, answer
            );
            if status == 202 {
                let campaign = answer["campaign_id"].as_str().unwrap();
                let accepted = usize::try_from(answer["accepted"].as_u64().unwrap()).unwrap();
                prop_assert_eq!(accepted, m.calls_written(campaign).await, "{:?}", bytes);
            }
            Ok(())
        })?;
    }
}
