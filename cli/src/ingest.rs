//! `outdial bench ingest --contacts N [--json]`: how long the API takes to accept an
//! N-contact campaign in one request, beside the floor DynamoDB sets for writing the same
//! call items.
//!
//! Both run in one process against the same DynamoDB Local, each on a fresh table. The API's
//! table first gets a do-not-call list of 1,000 numbers through the store's own writer (as
//! `PUT /dnc` writes them), about 100 of them in the contact list and the rest not, after its
//! do-not-call digest is built (on a new table it is empty and complete: `outdial_adapters::dnc`).
//! The same call items are written once, untimed, to a scratch table, so that DynamoDB Local's
//! JVM has compiled its write path before either timed run. Then, timed, one `POST /campaigns` of N CSV contacts (a spec header and an
//! `Idempotency-Key`, built as API Gateway hands it over) through the API's own handler,
//! which parses and checks every row, checks every number against the do-not-call list (the
//! digest, then a lookup of the numbers whose bucket is set), writes the calls with parallel
//! `BatchWriteItem`s and the campaign last. The benchmark fails unless the API rejected
//! exactly the listed contacts, each as `is on the do-not-call list`, and accepted every
//! other. Then a bare loop of parallel `BatchWriteItem`s (25 items each, 8 in flight as the
//! store has them, unprocessed items sent again) writes the same call items the API wrote.
//! `ratio` is `raw_s / api_s`: the share of the API's time that the writes alone would take.
//!
//! Both tables run without their stream. DynamoDB Local keeps every stream record and its
//! writes slow down with each one it holds, across tables and after they are deleted: on this
//! machine 20,000 calls took 4 s on a fresh instance, 40 s after the next 20,000 and 4 min
//! after 20,000 more, which would measure DynamoDB Local's stream store rather than the API
//! (in AWS a stream record costs the write nothing). Without the stream the same writes take
//! 2 to 3 s every time. The API's table is dropped before the bare loop runs, so the second
//! run does not pay for the first one's items.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::{PutRequest, StreamSpecification, WriteRequest};
use futures::{StreamExt, TryStreamExt};
use outdial_adapters::clock::SystemClock;
use outdial_adapters::item::new_call_item;
use outdial_adapters::store::DynamoStore;
use outdial_api::idempotency::{Seed, fingerprint};
use outdial_api::{Api, Auth, Settings};
use outdial_core::admin::{ApiStore, DispatchTrigger, IdempotencyKey};
use outdial_core::ids::{E164, TransactionId};
use outdial_core::ports::{BoxError, DialError, Dialer};
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::time::{Clock, Timestamp};
use outdial_local::dynamodb::shared_endpoint;
use outdial_local::tables::{client, fresh_table};
use serde::Serialize;
use serde_json::{Value, json};

/// What `outdial bench ingest` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestBench {
    pub contacts: u32,
    /// Seconds the API took to answer the request.
    pub api_s: f64,
    /// Seconds the bare `BatchWriteItem` loop took to write the same call items.
    pub raw_s: f64,
    /// `raw_s / api_s`.
    pub ratio: f64,
    /// Numbers on the do-not-call list during the API's run.
    pub do_not_call: u32,
    /// Contacts the API rejected as on the do-not-call list (exactly the listed ones).
    pub rejected: u32,
}

/// The most contacts one request may carry.
pub const MAX_CONTACTS: u32 = 200_000;

pub(crate) const TOKEN: &str = "bench-ingest-token-0123456789";
const KEY: &str = "bench-ingest";
const FROM: &str = "+15555550199";
const BATCH: usize = 25;
const IN_FLIGHT: usize = 8;
/// Numbers on the do-not-call list.
const DNC_LISTED: u32 = 1_000;
/// The most of them in the contact list.
const DNC_CONTACTS: u32 = 100;

/// The benchmark never hangs up a call.
#[derive(Debug)]
pub(crate) struct NoDialer;

impl Dialer for NoDialer {
    async fn place(
        &self,
        _from: &E164,
        _to: &E164,
        _arguments: BTreeMap<String, String>,
    ) -> Result<TransactionId, DialError> {
        Err(DialError::Rejected {
            code: "Bench".into(),
            message: "the ingest benchmark places no calls".into(),
        })
    }

    async fn update(
        &self,
        _transaction: &TransactionId,
        _arguments: BTreeMap<String, String>,
    ) -> Result<(), DialError> {
        Err(DialError::NotFound)
    }
}

/// No dispatcher runs during the benchmark.
#[derive(Debug)]
pub(crate) struct NoDispatcher;

impl DispatchTrigger for NoDispatcher {
    async fn dispatch_now(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

fn spec() -> Value {
    json!({
        "name": "bench ingest",
        "from": FROM,
        "script": {"caller_name": "Riverside Clinic", "start": "hi",
                   "steps": {"hi": {"say": "Hello {{name}}, this is a reminder from Riverside Clinic."}}},
        "pacing": {"calls_per_second": 10, "max_concurrent": 100}
    })
}

/// The number of contact `i`.
fn contact_number(i: u32) -> String {
    format!("+1202{i:07}")
}

/// The contacts (by index) on the do-not-call list: up to [`DNC_CONTACTS`], spread over the
/// list, never the first (so at least one contact of a list of two or more is accepted).
fn listed_contacts(contacts: u32) -> BTreeSet<u32> {
    let stride = (contacts / DNC_CONTACTS).max(2) as usize;
    (0..contacts)
        .step_by(stride)
        .skip(1)
        .take(DNC_CONTACTS as usize)
        .collect()
}

/// The do-not-call list: the listed contacts' numbers, and numbers in no contact list (area
/// code 312) up to [`DNC_LISTED`].
fn dnc_list(listed: &BTreeSet<u32>) -> anyhow::Result<Vec<E164>> {
    let others = DNC_LISTED - u32::try_from(listed.len())?;
    listed
        .iter()
        .map(|&i| contact_number(i))
        .chain((0..others).map(|k| format!("+1312{k:07}")))
        .map(|n| E164::parse(&n).map_err(anyhow::Error::from))
        .collect()
}

/// The CSV body: distinct valid numbers, a name for the script, a time zone on some rows.
fn csv(contacts: u32) -> String {
    let mut body = String::with_capacity(contacts as usize * 40 + 16);
    body.push_str("to,name,tz\n");
    for i in 0..contacts {
        let tz = if i % 4 == 0 { "America/Chicago" } else { "" };
        body.push_str(&format!("{},Contact {i},{tz}\n", contact_number(i)));
    }
    body
}

/// Checks that the API rejected exactly the `listed` contacts, as on the do-not-call list,
/// and accepted all others.
fn check_answer(answer: &Value, contacts: u32, listed: &BTreeSet<u32>) -> anyhow::Result<()> {
    let expected = u64::from(contacts) - listed.len() as u64;
    ensure!(
        answer["accepted"].as_u64() == Some(expected)
            && answer["rejected_count"].as_u64() == Some(listed.len() as u64),
        "the API should accept {expected} contacts and reject the {} listed: {answer}",
        listed.len()
    );
    let rejected: BTreeSet<u64> = answer["rejected"]
        .as_array()
        .context("no rejected rows in the answer")?
        .iter()
        .map(|row| {
            ensure!(
                row["reason"] == "is on the do-not-call list",
                "a row rejected for another reason: {row}"
            );
            row["line"]
                .as_u64()
                .context("a rejected row without its line")
        })
        .collect::<anyhow::Result<_>>()?;
    // The header is line 1: contact i is on line i + 2.
    let lines: BTreeSet<u64> = listed.iter().map(|&i| u64::from(i) + 2).collect();
    ensure!(
        rejected == lines,
        "the API rejected other lines than the listed contacts'"
    );
    Ok(())
}

/// The request as API Gateway's payload-2.0 event hands it to the function.
fn request(body: &str) -> anyhow::Result<lambda_http::Request> {
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/campaigns",
        "rawQueryString": "",
        "headers": {
            "authorization": format!("Bearer {TOKEN}"),
            "content-type": "text/csv",
            "idempotency-key": KEY,
            "x-outdial-spec": spec().to_string(),
        },
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": "localhost",
            "domainPrefix": "localhost", "requestId": "bench", "routeKey": "$default",
            "stage": "$default", "time": "", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/campaigns", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "outdial-bench"}
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).context("building the request")
}

/// Runs the ingest benchmark.
///
/// # Errors
/// When DynamoDB Local cannot start, or the API does not accept every contact.
pub async fn ingest(contacts: u32) -> anyhow::Result<IngestBench> {
    ensure!(
        (1..=MAX_CONTACTS).contains(&contacts),
        "--contacts must be 1 to {MAX_CONTACTS}"
    );
    let endpoint = shared_endpoint()?;
    let ddb = client(&endpoint);
    let api_table = streamless_table(&ddb, "bench-ingest-api").await?;
    let clock = Arc::new(SystemClock);
    let store = DynamoStore::new(ddb.clone(), &api_table, 4);
    // A new table: its digest is empty and complete. Then the list, through the API's writer.
    store.build_dnc_digest(clock.now()).await?;
    let listed = listed_contacts(contacts);
    let dnc = dnc_list(&listed)?;
    futures::stream::iter(&dnc)
        .map(|number| store.add_do_not_call(number, clock.now()))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .context("listing numbers as do-not-call")?;
    let settings = Settings {
        auth: Auth::bearer(TOKEN),
        max_body_bytes: outdial_api::DEFAULT_MAX_BODY_BYTES,
        lease: outdial_api::DEFAULT_LEASE,
    };
    let api = Api::new(store, NoDialer, NoDispatcher, clock.clone(), settings);
    let body = csv(contacts);

    // DynamoDB Local's JVM compiles its hot paths as it goes: the same writes once, untimed,
    // so that neither timed run pays for its warm-up (the API's would otherwise, being first).
    let warm_table = streamless_table(&ddb, "bench-ingest-warm").await?;
    let warm_items = same_items(contacts, &listed, &request(&body)?, clock.now())?;
    raw_writes(&ddb, &warm_table, warm_items).await?;
    ddb.delete_table().table_name(&warm_table).send().await?;

    let req = request(&body)?;
    let started = Instant::now();
    let response = api.handle(req).await;
    let api_time = started.elapsed();
    let answer: Value =
        serde_json::from_slice(response.body().as_ref()).context("the API's answer is not JSON")?;
    ensure!(
        response.status() == 202,
        "the API did not accept the campaign: {} {answer}",
        response.status()
    );
    check_answer(&answer, contacts, &listed)?;

    drop(api);
    ddb.delete_table().table_name(&api_table).send().await?;
    let raw_table = streamless_table(&ddb, "bench-ingest-raw").await?;
    let items = same_items(contacts, &listed, &request(&body)?, clock.now())?;
    let raw_time = raw_writes(&ddb, &raw_table, items).await?;
    ddb.delete_table().table_name(&raw_table).send().await?;
    let (api_s, raw_s) = (api_time.as_secs_f64(), raw_time.as_secs_f64());
    Ok(IngestBench {
        contacts,
        api_s: round(api_s),
        raw_s: round(raw_s),
        ratio: round(raw_s / api_s),
        do_not_call: DNC_LISTED,
        rejected: u32::try_from(listed.len())?,
    })
}

/// A fresh table from the committed definition, its stream turned off (see the module
/// documentation).
pub(crate) async fn streamless_table(
    ddb: &aws_sdk_dynamodb::Client,
    prefix: &str,
) -> anyhow::Result<String> {
    let table = fresh_table(ddb, prefix).await?;
    ddb.update_table()
        .table_name(&table)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(false)
                .build()?,
        )
        .send()
        .await
        .context("turning the benchmark table's stream off")?;
    Ok(table)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The call items the API wrote: the same ids (derived from the key and the request), the
/// same numbers, variables and zones, and none for the `listed` contacts.
fn same_items(
    contacts: u32,
    listed: &BTreeSet<u32>,
    req: &lambda_http::Request,
    now: Timestamp,
) -> anyhow::Result<Vec<outdial_adapters::item::Item>> {
    let seed = Seed::keyed(&IdempotencyKey::parse(KEY)?, &fingerprint(req));
    let campaign = Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: seed.campaign_id()?,
        name: "bench ingest".into(),
        from: E164::parse(FROM)?,
        status: CampaignStatus::Active,
        retry: RetryPolicy::default(),
        pacing: Pacing {
            calls_per_second: 10.0,
            max_concurrent: 100,
        },
        script: serde_json::from_value(spec()["script"].clone())?,
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: now,
        contacts: u64::from(contacts),
    };
    (0..contacts)
        .filter(|i| !listed.contains(i))
        .map(|i| {
            // The header is line 1: contact i is on line i + 2.
            let call = NewCall {
                consent: None,
                reference: None,
                id: seed.call_id(u64::from(i) + 2)?,
                to: E164::parse(&contact_number(i))?,
                vars: BTreeMap::from([("name".to_owned(), format!("Contact {i}"))]),
                due_at: now,
                tz: (i % 4 == 0).then(|| "America/Chicago".to_owned()),
            };
            Ok(new_call_item(&campaign, &call, 4))
        })
        .collect()
}

/// Writes `items` with parallel `BatchWriteItem`s, retrying unprocessed items.
async fn raw_writes(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<outdial_adapters::item::Item>,
) -> anyhow::Result<Duration> {
    let batches: Vec<Vec<WriteRequest>> = items
        .chunks(BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(item.clone())).build()?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    futures::stream::iter(batches)
        .map(|mut batch| async move {
            while !batch.is_empty() {
                let out = ddb
                    .batch_write_item()
                    .request_items(table, batch)
                    .send()
                    .await?;
                batch = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
            }
            Ok::<(), anyhow::Error>(())
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_small_ingest_accepts_every_contact_and_reports_both_timings() {
        let bench = ingest(300).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(bench.contacts, 300);
        assert!(bench.api_s > 0.0 && bench.raw_s > 0.0, "{bench:?}");
        assert!(bench.ratio > 0.0, "{bench:?}");
        let json = serde_json::to_value(&bench).unwrap_or_default();
        assert_eq!(bench.do_not_call, DNC_LISTED);
        assert_eq!(bench.rejected, 99, "{bench:?}");
        for key in [
            "contacts",
            "api_s",
            "raw_s",
            "ratio",
            "do_not_call",
            "rejected",
        ] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
    }

    #[test]
    fn the_csv_has_a_header_and_one_line_per_contact() {
        let body = csv(3);
        assert_eq!(body.lines().count(), 4);
        assert!(body.starts_with("to,name,tz\n+12020000000,Contact 0,America/Chicago\n"));
    }

    #[test]
    fn about_a_hundred_contacts_are_listed_never_the_first_and_the_list_has_a_thousand() {
        let listed = listed_contacts(100_000);
        assert_eq!(listed.len(), 99);
        assert!(!listed.contains(&0) && listed.iter().all(|&i| i < 100_000));
        assert_eq!(listed_contacts(1).len(), 0);
        assert_eq!(listed_contacts(2).len(), 0);
        assert_eq!(listed_contacts(3), BTreeSet::from([2]));
        let dnc = dnc_list(&listed).unwrap_or_default();
        assert_eq!(dnc.len(), DNC_LISTED as usize);
        assert_eq!(
            dnc.iter().collect::<std::collections::HashSet<_>>().len(),
            dnc.len()
        );
    }

    #[tokio::test]
    async fn a_contact_count_out_of_bounds_is_refused() {
        assert!(ingest(0).await.is_err());
        assert!(ingest(MAX_CONTACTS + 1).await.is_err());
    }
}
