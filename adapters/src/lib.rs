//! outdial's adapters: the implementations of `outdial-core`'s ports on AWS.
//!
//! - [`store`]: the DynamoDB store ([`store::DynamoStore`]), one conditional write per SMA
//!   event;
//! - [`dialer`]: the Chime SDK Voice dialer ([`dialer::ChimeDialer`]);
//! - [`item`]: how records are laid out as items (the analytics contract, `docs/table.md`);
//! - [`table`]: the table's definition from `schema/table.json`;
//! - [`config`]: configuration from the environment, and SDK clients with the right deadlines;
//! - [`clock`]: the system clock.

pub mod admin;
pub mod clock;
pub mod config;
pub mod counters;
pub mod dialer;
pub mod item;
pub mod store;
pub mod table;
