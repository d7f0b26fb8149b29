//! outdial's adapters: the implementations of `outdial-core`'s ports on AWS.
//!
//! - [`store`]: the DynamoDB store ([`store::DynamoStore`]), one conditional write per SMA
//!   event; [`admin`]: the API's part of it;
//! - [`dnc`]: the do-not-call digest, which narrows a large list's do-not-call check to a
//!   few lookups;
//! - [`counters`]: the stream handler's store of campaign counters and call history;
//! - [`condition`]: conditional writes' conditions, built from typed clauses and from the
//!   dispatcher's guards;
//! - [`dialer`]: the Chime SDK Voice dialer ([`dialer::ChimeDialer`]);
//! - [`trigger`]: the Lambda trigger that starts a dispatcher at once
//!   ([`trigger::LambdaTrigger`]);
//! - [`memory`]: every port in memory ([`memory::MemoryStore`], [`memory::MemoryDialer`],
//!   [`memory::MemoryTrigger`]), answering as the DynamoDB store does, for unit tests,
//!   benchmarks and the CLI's stand-ins;
//! - [`item`]: how records are laid out as items (the analytics contract, `docs/table.md`);
//! - [`table`]: the table's definition from `schema/table.json`;
//! - [`direct`]: the SMA's one hot write, `UpdateItem`, signed and sent without the SDK's
//!   request pipeline, on the SDK client's own connection ([`wire`]);
//! - [`config`]: configuration from the environment, and SDK clients with the right deadlines;
//! - [`clock`]: the system clock.
//!
//! What every store shares (SDK errors in the ports' terms, the retry loops of batches and
//! transactions) is written once, in the private `ddb` module.

pub mod admin;
pub mod clock;
pub mod condition;
pub mod config;
pub mod counters;
mod ddb;
pub mod dialer;
pub mod direct;
pub mod dnc;
pub mod events;
pub mod item;
pub mod lambda;
pub mod memory;
pub mod store;
pub mod table;
pub mod trigger;
pub mod wire;
