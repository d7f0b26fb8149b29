//! The do-not-call digest: a small, exact pre-filter that lets the API check a large contact
//! list against the do-not-call list without looking every number up.
//!
//! Every number hashes to one of [`BUCKETS`] buckets ([`bucket`]: FNV-1a of its E.164 text,
//! stable across versions and platforms). [`DIGEST_ITEMS`] summary items hold the buckets in
//! use, item `k` those from `k × 1024` to `k × 1024 + 1023`, as a number set:
//!
//! | item | `PK` | `SK` | attributes |
//! |---|---|---|---|
//! | digest part | `DNCSUM#<k, 2 digits>` | `DNCSUM` | `type` (`dnc_digest`), `buckets` (NS): the buckets of listed numbers |
//! | digest marker | `DNCSUM#COMPLETE` | `DNCSUM` | `type` (`dnc_digest_complete`), `built_at` (N, epoch ms): every entry older than the digest has its bucket in it |
//!
//! **The invariant**: a number on the list has its bucket in the digest. Every writer of a
//! do-not-call entry adds the bucket first (`PUT /dnc`, [`crate::admin`]) or in the entry's
//! own transaction (the opt-out key, `apply_with_opt_out`). Removing a number leaves its
//! bucket (other numbers may share it): the digest only ever over-approximates the list.
//!
//! **Upgrade**: entries written before the digest existed have no bucket. Until the marker
//! exists, [`DynamoStore::on_do_not_call`](outdial_core::admin::ApiStore::on_do_not_call)
//! looks every number up, as before. [`DynamoStore::build_dnc_digest`] scans the table for
//! entries, adds each one's bucket and then writes the marker; run it once after every
//! function runs a version that keeps the digest (an entry written by an older version while
//! it scans could be missed), with credentials that may `Scan` the table. On a new, empty
//! table it reads almost nothing.
//!
//! **Size and cost**: a bucket is at most 5 digits, so a full part (1,024 buckets) is about
//! 4 KB; reading all 64 parts and the marker is one `BatchGetItem` of at most ~260 KB (about
//! 65 strongly consistent read units when full, a few when the list is small). Adding a
//! number costs one extra `UpdateItem` on its part (1 to 4 write units by the part's size;
//! twice that inside the opt-out's transaction).

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select, Update};
use outdial_core::ids::E164;
use outdial_core::ports::StoreError;
use outdial_core::time::Timestamp;

use crate::ddb::{build_err, map_err};
use crate::item::{self, Item, Reader, n, s};
use crate::store::DynamoStore;

/// Buckets a number can fall in.
pub const BUCKETS: u32 = 65_536;
/// Summary items the buckets are spread over.
pub const DIGEST_ITEMS: u32 = 64;
const PER_ITEM: u32 = BUCKETS / DIGEST_ITEMS;
/// The sort key of every digest item.
pub const DIGEST_SK: &str = "DNCSUM";
/// The partition key of the marker that says the digest is complete.
pub const COMPLETE_PK: &str = "DNCSUM#COMPLETE";
/// The attribute holding a part's buckets.
pub const BUCKETS_ATTR: &str = "buckets";

/// The bucket of `number`: FNV-1a (64 bits) of its E.164 text, modulo [`BUCKETS`].
#[must_use]
pub fn bucket(number: &E164) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in number.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(BUCKETS)).unwrap_or(0)
}

/// The partition key of the digest part holding `bucket`.
#[must_use]
pub fn part_pk(bucket: u32) -> String {
    format!("DNCSUM#{:02}", bucket / PER_ITEM)
}

/// The key of the digest part holding `bucket`.
#[must_use]
pub fn part_key(bucket: u32) -> Item {
    item::key(part_pk(bucket), DIGEST_SK)
}

/// The key of the digest's marker.
#[must_use]
pub fn complete_key() -> Item {
    item::key(COMPLETE_PK.to_owned(), DIGEST_SK)
}

/// An update of one item: its key, expression, attribute names and values.
pub type ItemUpdate = (
    Item,
    &'static str,
    [(&'static str, &'static str); 2],
    [(&'static str, AttributeValue); 2],
);

/// The update that adds `number`'s bucket to its part.
#[must_use]
pub fn add_bucket(number: &E164) -> ItemUpdate {
    let bucket = bucket(number);
    (
        part_key(bucket),
        "SET #type = :digest_type ADD #buckets :digest_bucket",
        [("#type", "type"), ("#buckets", BUCKETS_ATTR)],
        [
            (":digest_type", s("dnc_digest")),
            (
                ":digest_bucket",
                AttributeValue::Ns(vec![bucket.to_string()]),
            ),
        ],
    )
}

/// [`add_bucket`] as an item of a transaction on `table`.
///
/// # Errors
/// When the request cannot be built.
pub fn add_bucket_in(table: &str, number: &E164) -> Result<Update, StoreError> {
    let (key, expression, names, values) = add_bucket(number);
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression);
    for (name, attribute) in names {
        update = update.expression_attribute_names(name, attribute);
    }
    for (name, value) in values {
        update = update.expression_attribute_values(name, value);
    }
    update.build().map_err(build_err)
}

/// The buckets a digest part holds.
///
/// # Errors
/// [`StoreError::Corrupt`] when a bucket is not a number.
pub fn buckets_of(item: &Item) -> Result<Vec<u32>, StoreError> {
    match item.get(BUCKETS_ATTR) {
        Some(AttributeValue::Ns(values)) => values
            .iter()
            .map(|v| {
                v.parse().map_err(|_| StoreError::Corrupt {
                    key: Reader::new(item).s(item::PK).unwrap_or("?").to_owned(),
                    reason: format!("bucket {v:?}"),
                })
            })
            .collect(),
        _ => Ok(Vec::new()),
    }
}

impl DynamoStore {
    /// Adds `number`'s bucket to the digest (before its entry is written).
    pub(crate) async fn add_to_digest(&self, number: &E164) -> Result<(), StoreError> {
        let (key, expression, names, values) = add_bucket(number);
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key))
            .update_expression(expression)
            .return_values(ReturnValue::None);
        for (name, attribute) in names {
            request = request.expression_attribute_names(name, attribute);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        request.send().await.map_err(map_err)?;
        Ok(())
    }

    /// Builds the digest of a table whose entries may predate it: scans for every do-not-call
    /// entry, adds its bucket, then writes the marker. Returns the entries seen. Safe to run
    /// again, and while writers run (they add their own buckets); see the module documentation
    /// for when to run it.
    ///
    /// # Errors
    /// As the scan or a write fails; the marker is then not written.
    pub async fn build_dnc_digest(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut pages = self
            .client()
            .scan()
            .table_name(self.table())
            .filter_expression("begins_with(PK, :dnc) AND SK = :dnc_sk")
            .expression_attribute_values(":dnc", s("DNC#"))
            .expression_attribute_values(":dnc_sk", s(item::DNC_SK))
            .projection_expression("PK")
            .select(Select::SpecificAttributes)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut seen = 0;
        while let Some(entry) = pages.try_next().await.map_err(map_err)? {
            let pk = Reader::new(&entry).s(item::PK)?;
            let number =
                E164::parse(pk.trim_start_matches("DNC#")).map_err(|e| StoreError::Corrupt {
                    key: pk.to_owned(),
                    reason: e.to_string(),
                })?;
            self.add_to_digest(&number).await?;
            seen += 1;
        }
        let mut marker = complete_key();
        marker.extend([
            ("type".to_owned(), s("dnc_digest_complete")),
            ("built_at".to_owned(), n(now.as_millis())),
        ]);
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(marker))
            .send()
            .await
            .map_err(map_err)?;
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread_over_every_part() {
        let a = E164::parse("+12025550100").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bucket(&a), bucket(&a));
        // FNV-1a is fixed: a change here would strand every bucket already written.
        assert_eq!(bucket(&a), FNV_OF_A);
        let parts: std::collections::HashSet<String> = (0..20_000)
            .map(|i| {
                let number = E164::parse(&format!("+1202{i:07}")).unwrap_or_else(|e| panic!("{e}"));
                part_pk(bucket(&number))
            })
            .collect();
        assert_eq!(parts.len(), DIGEST_ITEMS as usize);
        assert_eq!(part_pk(0), "DNCSUM#00");
        assert_eq!(part_pk(BUCKETS - 1), "DNCSUM#63");
    }

    const FNV_OF_A: u32 = 56_931;
}
