//! The API end to end: each endpoint's answers, its errors, idempotent retries and the
//! protocol around them (auth, routes, media types, sizes), against DynamoDB Local.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

mod calls;
mod campaigns;
mod dnc;
mod idempotency;
mod protocol;
mod support;
