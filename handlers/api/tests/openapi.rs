//! `docs/openapi.json` and the handler agree: every documented operation is routed and every
//! route documented, each with exactly the statuses its route declares (which the API's own
//! tests check every answer against), its path parameters, and on POSTs the
//! `Idempotency-Key`; every `$ref` resolves; and `docs/api.md` explains every problem type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeSet;

use outdial_api::routes::ROUTES;
use serde_json::Value;

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Follows a local `$ref` (`#/components/parameters/CampaignId`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => value,
    }
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[test]
fn the_document_is_openapi_3_1() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert!(doc["info"]["title"].is_string());
}

#[test]
fn every_documented_operation_is_routed_and_every_route_documented() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.template.to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[test]
fn each_operation_documents_exactly_the_statuses_its_route_can_answer() {
    let doc = document();
    for route in ROUTES {
        let op = &doc["paths"][route.template][route.method.as_str().to_lowercase()];
        let documented: BTreeSet<u16> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect();
        let declared: BTreeSet<u16> = route.statuses.iter().copied().collect();
        assert_eq!(documented, declared, "{} {}", route.method, route.template);
        for (status, response) in op["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{} {status}",
                route.template
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{} {status} is problem details",
                    route.template
                );
            }
        }
    }
}

#[test]
fn path_parameters_and_idempotency_keys_are_documented() {
    let doc = document();
    for route in ROUTES {
        let op = &doc["paths"][route.template][route.method.as_str().to_lowercase()];
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|a| a.iter().map(|p| resolve(&doc, p)).collect())
            .unwrap_or_default();
        let named =
            |name: &str, place: &str| params.iter().any(|p| p["name"] == name && p["in"] == place);
        for segment in route.template.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    named(name, "path"),
                    "{} {}: {name}",
                    route.method,
                    route.template
                );
            }
        }
        if route.method == http::Method::POST {
            assert!(
                named("Idempotency-Key", "header"),
                "{} {}",
                route.method,
                route.template
            );
        }
    }
}

#[test]
fn every_reference_resolves() {
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(r.starts_with("#/"), "{r}");
        assert!(doc.pointer(&r[1..]).is_some(), "{r} does not resolve");
    }
}

#[test]
fn every_problem_type_is_explained_in_the_guide() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
    let guide = std::fs::read_to_string(path).unwrap();
    for slug in outdial_api::problem::TYPES {
        assert!(
            guide
                .lines()
                .any(|l| l.trim_start_matches('#').trim() == slug && l.starts_with('#')),
            "docs/api.md has no heading {slug}"
        );
    }
}
