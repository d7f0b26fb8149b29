//! `docs/openapi.json` states exactly the values the API takes where a schema can: the
//! E.164 numbers in a country's numbering plan (a pattern built from the same libphonenumber
//! metadata the API parses with), the ISO 3166 regions with a numbering plan and the IANA
//! time zones of the bundled database (enums), and a listing's cursor. These tests rebuild
//! each from its source and compare, so an update of the metadata or of the time-zone
//! database that changes them fails here until the document follows
//! (`OUTDIAL_OPENAPI_DUMP=<file> cargo test -p outdial-api --test api agreement` writes what
//! the document should hold).

use std::collections::{BTreeMap, BTreeSet};

use outdial_api::phone::{self, Region};
use phonenumber::metadata::DATABASE;
use serde_json::{Value, json};

use crate::memory::{Memory, fields, spec};

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A metadata pattern as the document writes it: no free spacing, and ASCII digits only
/// (`\d` matches every Unicode digit in some regex dialects, and the API reads ASCII).
fn plain(pattern: &str) -> String {
    pattern
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace("\\d", "[0-9]")
}

/// The national numbers of a country code the API takes: for each region sharing it, a
/// length its kinds of numbers have and its general pattern in full (`phone::check_plan`).
fn national(code: u16) -> String {
    let mut regions = DATABASE.by_code(&code).unwrap_or_default();
    regions.sort_by_key(|r| (!r.is_main_country_for_code(), r.id().to_owned()));
    let mut alternatives: Vec<String> = Vec::new();
    for region in regions {
        let d = region.descriptors();
        let lengths: BTreeSet<u16> = [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .flat_map(|desc| desc.possible_length().iter().copied())
        .collect();
        if lengths.is_empty() {
            continue;
        }
        let lengths: Vec<String> = lengths.iter().map(|l| format!("[0-9]{{{l}}}$")).collect();
        let alternative = format!(
            "(?=(?:{}))(?:{})$",
            lengths.join("|"),
            plain(d.general().national_number().as_str())
        );
        if !alternatives.contains(&alternative) {
            alternatives.push(alternative);
        }
    }
    alternatives.join("|")
}

/// Every E.164 number the API takes, as a pattern.
fn e164_pattern() -> String {
    // Every country code, those of no country (`001`: +800, +882, ...) included, as
    // `phone::parse` finds them; and 2 to 15 digits in all, as E.164 allows.
    let by_code: Vec<String> = (1..1000_u16)
        .filter(|code| DATABASE.by_code(code).is_some())
        .map(|code| format!("{code}(?:{})", national(code)))
        .collect();
    format!("^\\+(?=[0-9]{{2,15}}$)(?:{})$", by_code.join("|"))
}

/// The regions a campaign's `default_region` may name.
fn regions() -> Vec<String> {
    let codes: BTreeSet<String> = DATABASE
        .iter()
        .map(|m| m.id().to_owned())
        .filter(|id| Region::parse(id).is_ok())
        .collect();
    codes.into_iter().collect()
}

/// The IANA names of the bundled time-zone database.
fn zones() -> Vec<String> {
    let names: BTreeSet<String> = jiff::tz::db()
        .available()
        .map(|name| name.as_str().to_owned())
        .filter(|name| outdial_core::window::Zone::get(name).is_ok())
        .collect();
    names.into_iter().collect()
}

fn generated() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("DialableE164", json!(e164_pattern())),
        ("Region", json!(regions())),
        ("TimeZone", json!(zones())),
    ])
}

#[test]
fn the_document_holds_the_numbers_regions_and_zones_the_api_takes() {
    let generated = generated();
    if let Ok(path) = std::env::var("OUTDIAL_OPENAPI_DUMP") {
        std::fs::write(path, serde_json::to_string_pretty(&generated).unwrap()).unwrap();
    }
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["DialableE164"]["pattern"],
        generated["DialableE164"]
    );
    assert_eq!(schemas["Region"]["enum"], generated["Region"]);
    assert_eq!(schemas["TimeZone"]["enum"], generated["TimeZone"]);
}

#[test]
fn every_example_number_of_the_metadata_is_one_the_api_parses() {
    for region in DATABASE.iter() {
        let d = region.descriptors();
        for desc in [d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate()]
            .into_iter()
            .flatten()
        {
            let Some(example) = desc.example() else {
                continue;
            };
            let number = format!("+{}{example}", region.country_code());
            assert!(
                phone::parse(&number, Region::US).is_ok(),
                "{} example {number} is refused",
                region.id()
            );
        }
    }
}

#[tokio::test]
async fn values_the_document_allowed_and_the_api_refused_are_settled() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    // `from: ""`: the document now asks for a number (or a caller-ID pool).
    assert_eq!(
        schemas["CampaignSpec"]["properties"]["from"]["oneOf"],
        json!([{"$ref": "#/components/schemas/DialableE164"},
               {"$ref": "#/components/schemas/CallerPool"}])
    );
    // `/dnc/+10`: too short for +1; the path takes the numbers in a plan only.
    assert_eq!(
        doc["components"]["parameters"]["E164Path"]["schema"]["$ref"],
        "#/components/schemas/DialableE164"
    );
    // A script whose start names no step: the document says start must name a step.
    let start = &schemas["Script"]["properties"]["start"];
    assert!(
        start["description"]
            .as_str()
            .unwrap()
            .contains("names one of `steps`"),
        "{start}"
    );

    // The API answers the values the document now allows.
    let m = Memory::new();
    let (status, body) = m
        .json(
            "POST",
            "/campaigns",
            &json!({"spec": spec(), "contacts": [{"to": "+12025550100", "vars": {"name": "A"}}]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let campaign = body["campaign_id"].as_str().unwrap().to_owned();
    for query in ["status=QUEUED&cursor=COMPLETED.call_x", "cursor=LOST.x"] {
        let (status, page) = m
            .send(
                "GET",
                &format!("/campaigns/{campaign}/calls?{query}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{query}: {page}");
    }
    let (_, page) = m
        .send(
            "GET",
            &format!("/campaigns/{campaign}/calls?status=QUEUED&cursor=COMPLETED.call_x"),
            None,
            None,
        )
        .await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 1, "{page}");
    // An empty filter or cursor is no value the document allows: refused, not ignored.
    for query in ["status=", "cursor="] {
        let (status, problem) = m
            .send(
                "GET",
                &format!("/campaigns/{campaign}/calls?{query}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(fields(&problem).len(), 1, "{problem}");
    }
}

#[tokio::test]
async fn the_campaign_list_takes_and_hands_out_exactly_the_statuses_and_cursors_documented() {
    use outdial_core::record::CampaignStatus;

    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let statuses: Vec<&str> = CampaignStatus::ALL.map(CampaignStatus::as_str).to_vec();
    assert_eq!(schemas["CampaignStatus"]["enum"], json!(statuses));
    let params = doc["paths"]["/campaigns"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| params.iter().find(|p| p["name"] == name).unwrap();
    assert_eq!(
        param("status")["schema"]["$ref"],
        "#/components/schemas/CampaignStatus"
    );
    assert_eq!(
        schemas["CampaignSummary"]["properties"]["status"]["$ref"],
        "#/components/schemas/CampaignStatus"
    );
    let limit = &param("limit")["schema"];
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (&json!(1), &json!(100), &json!(25))
    );
    let pattern =
        regex::Regex::new(param("cursor")["schema"]["pattern"].as_str().unwrap()).unwrap();

    // Every cursor the API hands out fits the pattern, and the API takes whatever fits it.
    let m = Memory::new();
    for _ in 0..3 {
        let (status, body) = m
            .json(
                "POST",
                "/campaigns",
                &json!({"spec": spec(), "contacts": [{"to": "+12025550100", "vars": {"name": "A"}}]}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, page) = m.send("GET", "/campaigns?limit=1", None, None).await;
    assert_eq!(status, 200, "{page}");
    let cursor = page["next_cursor"].as_str().unwrap();
    assert!(pattern.is_match(cursor), "{cursor}");
    for fits in [
        cursor,
        "00000000000000.a",
        "9223372036854775807.cmp_x",
        "19000000000000.cmp_0123456789abcdef0123456789abcdef",
    ] {
        assert!(pattern.is_match(fits), "{fits}");
        let (status, page) = m
            .send("GET", &format!("/campaigns?cursor={fits}"), None, None)
            .await;
        assert_eq!(status, 200, "{fits}: {page}");
    }
    for status in statuses.iter().chain(&["paused"]) {
        let (code, page) = m
            .send("GET", &format!("/campaigns?status={status}"), None, None)
            .await;
        assert_eq!(code, 200, "{status}: {page}");
    }
    // What the document does not allow is refused, not ignored.
    for query in ["status=", "cursor=", "limit=", "cursor=1900000000000.cmp_x"] {
        if let Some(raw) = query.strip_prefix("cursor=") {
            assert!(!pattern.is_match(raw), "{raw}");
        }
        let (status, problem) = m
            .send("GET", &format!("/campaigns?{query}"), None, None)
            .await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(fields(&problem).len(), 1, "{problem}");
    }
}
