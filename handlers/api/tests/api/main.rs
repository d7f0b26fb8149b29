//! The API end to end: each endpoint's answers, its errors, idempotent retries and the
//! protocol around them (auth, routes, media types, sizes), against DynamoDB Local.
// A test fails loudly on what it did not expect.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The API handler's futures nest deeply (router, idempotency, store, conditional writes);
// clippy's layout queries on the test bodies need more than the default depth.
#![recursion_limit = "256"]

mod agreement;
mod bounds;
mod budget;
mod calls;
mod campaign_list;
mod campaigns;
mod compliance;
mod csv_lists;
mod csv_properties;
mod destinations;
mod dnc;
mod idempotency;
mod memory;
mod mutations;
mod numbers;
mod protocol;
mod results;
mod support;
