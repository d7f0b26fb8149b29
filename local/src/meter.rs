//! What a DynamoDB client costs: its requests by operation, and the read and write capacity
//! units DynamoDB reports for them.
//!
//! A [`Meter`] is an SDK interceptor. It asks for `ReturnConsumedCapacity: INDEXES` on every
//! data-plane request the client makes and adds up the `ConsumedCapacity` of each answer (the
//! total, and each global secondary index's share), so
//! the units are DynamoDB's own count (a transaction's writes count twice, an item over 1 KB
//! counts per started kilobyte), not an estimate. DynamoDB Local computes them as DynamoDB
//! does for an on-demand table. The benchmarks use it (`outdial bench caps`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item, batch_write_item, delete_item, get_item, put_item, query, scan,
    transact_get_items, transact_write_items, update_item,
};
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use serde::Serialize;

/// What a metered client has spent so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metered {
    /// Requests put on the wire (retries included), by operation (`UpdateItem`, ...).
    pub requests: BTreeMap<String, u64>,
    /// Read capacity units consumed.
    pub read_units: f64,
    /// Write capacity units consumed by single-item and batch writes.
    pub write_units: f64,
    /// Write capacity units `TransactWriteItems` answers reported. DynamoDB charges two
    /// units per started kilobyte of each item a transaction writes; DynamoDB Local answers
    /// a flat figure whatever the items (24 for each of outdial's claims, with two items or
    /// three), so against it this is no measure: [`item_bytes`] and
    /// [`transactional_write_units`] give DynamoDB's count for items read back.
    pub transaction_write_units_reported: f64,
    /// Of the units above (transactions' left out), the read and the write units each
    /// global secondary index consumed, by index name: an index's partitions have the same
    /// limits as the table's, so these say which index keys run hot.
    pub index_read_units: BTreeMap<String, f64>,
    pub index_write_units: BTreeMap<String, f64>,
}

impl Metered {
    /// Every request, whatever its operation.
    #[must_use]
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// One item a `TransactWriteItems` wrote (or checked): DynamoDB charges two write units per
/// started kilobyte of it, which DynamoDB Local does not report (see
/// [`Metered::transaction_write_units_reported`]). A put's size is known from the request;
/// for an update, a delete or a condition check, the item's key, to be read back.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactWrite {
    pub table: String,
    pub key: std::collections::HashMap<String, AttributeValue>,
    /// The item's size as DynamoDB counts it, for a put.
    pub put_bytes: Option<usize>,
}

/// The interceptor; clones share one count.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    spent: Arc<Mutex<Metered>>,
    transaction_writes: Arc<Mutex<Vec<TransactWrite>>>,
}

impl Meter {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// What the metered clients have spent so far.
    #[must_use]
    pub fn spent(&self) -> Metered {
        self.spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The items the metered clients' transactions wrote, in order (one entry per item per
    /// transaction sent, retries included).
    #[must_use]
    pub fn transaction_writes(&self) -> Vec<TransactWrite> {
        self.transaction_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notes the items of a transaction about to be sent.
    fn note_transaction(&self, input: &transact_write_items::TransactWriteItemsInput) {
        let mut noted = self
            .transaction_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for item in input.transact_items() {
            let write = if let Some(put) = item.put() {
                TransactWrite {
                    table: put.table_name().to_owned(),
                    key: std::collections::HashMap::new(),
                    put_bytes: Some(item_bytes(put.item())),
                }
            } else if let Some(update) = item.update() {
                TransactWrite {
                    table: update.table_name().to_owned(),
                    key: update.key().clone(),
                    put_bytes: None,
                }
            } else if let Some(delete) = item.delete() {
                TransactWrite {
                    table: delete.table_name().to_owned(),
                    key: delete.key().clone(),
                    put_bytes: None,
                }
            } else if let Some(check) = item.condition_check() {
                TransactWrite {
                    table: check.table_name().to_owned(),
                    key: check.key().clone(),
                    put_bytes: None,
                }
            } else {
                continue;
            };
            noted.push(write);
        }
    }

    /// `client`, metered by this meter.
    #[must_use]
    pub fn client(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(self.clone())
                .build(),
        )
    }

    fn add(&self, operation: &str, capacity: &[&ConsumedCapacity], writes: bool) {
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        if operation == "TransactWriteItems" {
            spent.transaction_write_units_reported += capacity
                .iter()
                .map(|c| c.capacity_units().unwrap_or(0.0))
                .sum::<f64>();
            return;
        }
        for c in capacity {
            for (index, units) in c.global_secondary_indexes().into_iter().flatten() {
                let (read, write) =
                    match (units.read_capacity_units(), units.write_capacity_units()) {
                        (None, None) if writes => (0.0, units.capacity_units().unwrap_or(0.0)),
                        (None, None) => (units.capacity_units().unwrap_or(0.0), 0.0),
                        (read, write) => (read.unwrap_or(0.0), write.unwrap_or(0.0)),
                    };
                *spent.index_read_units.entry(index.clone()).or_insert(0.0) += read;
                *spent.index_write_units.entry(index.clone()).or_insert(0.0) += write;
            }
            // On-demand tables report the split; where only the total is there, the
            // operation says which kind it is.
            match (c.read_capacity_units(), c.write_capacity_units()) {
                (None, None) => {
                    let units = c.capacity_units().unwrap_or(0.0);
                    if writes {
                        spent.write_units += units;
                    } else {
                        spent.read_units += units;
                    }
                }
                (read, write) => {
                    spent.read_units += read.unwrap_or(0.0);
                    spent.write_units += write.unwrap_or(0.0);
                }
            }
        }
    }
}

/// Sets `return_consumed_capacity` on the input when it is one of these operations'.
macro_rules! ask_capacity {
    ($input:expr, $($op:ident :: $ty:ident),+) => {
        $(if let Some(i) = $input.downcast_mut::<$op::$ty>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
            return;
        })+
    };
}

/// Asks for the consumed capacity in `context`'s input, when it is a data-plane request.
fn ask_for_capacity(context: &mut BeforeSerializationInterceptorContextMut<'_>) {
    let input = context.input_mut();
    ask_capacity!(
        input,
        get_item::GetItemInput,
        put_item::PutItemInput,
        update_item::UpdateItemInput,
        delete_item::DeleteItemInput,
        query::QueryInput,
        scan::ScanInput,
        batch_get_item::BatchGetItemInput,
        batch_write_item::BatchWriteItemInput,
        transact_get_items::TransactGetItemsInput,
        transact_write_items::TransactWriteItemsInput
    );
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context
            .input()
            .downcast_ref::<transact_write_items::TransactWriteItemsInput>()
        {
            self.note_transaction(input);
        }
        ask_for_capacity(context);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split_once('.'))
            .map_or("unknown", |(_, op)| op)
            .to_owned();
        *self
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests
            .entry(operation)
            .or_insert(0) += 1;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        macro_rules! one {
            ($($op:ident :: $ty:ident => $writes:expr),+) => {
                $(if let Some(o) = output.downcast_ref::<$op::$ty>() {
                    self.add(stringify!($ty).trim_end_matches("Output"), &o.consumed_capacity().into_iter().collect::<Vec<_>>(), $writes);
                    return Ok(());
                })+
            };
        }
        macro_rules! many {
            ($($op:ident :: $ty:ident => $writes:expr),+) => {
                $(if let Some(o) = output.downcast_ref::<$op::$ty>() {
                    self.add(stringify!($ty).trim_end_matches("Output"), &o.consumed_capacity().iter().collect::<Vec<_>>(), $writes);
                    return Ok(());
                })+
            };
        }
        one!(
            get_item::GetItemOutput => false,
            put_item::PutItemOutput => true,
            update_item::UpdateItemOutput => true,
            delete_item::DeleteItemOutput => true,
            query::QueryOutput => false,
            scan::ScanOutput => false
        );
        many!(
            batch_get_item::BatchGetItemOutput => false,
            batch_write_item::BatchWriteItemOutput => true,
            transact_get_items::TransactGetItemsOutput => false,
            transact_write_items::TransactWriteItemsOutput => true
        );
        Ok(())
    }
}

/// An item's size as DynamoDB counts it for capacity: each attribute's name in UTF-8 bytes
/// plus its value (a string's UTF-8 bytes, a binary's bytes, a number's about one byte per
/// two significant digits plus one, one byte for a boolean or a null, and a list's or map's
/// elements plus three bytes and one per element).
#[must_use]
pub fn item_bytes(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_bytes(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|e| 1 + value_bytes(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_bytes(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_bytes(n: &str) -> usize {
    let digits = n
        .trim_start_matches('-')
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// What DynamoDB charges to write an item of `bytes` in a transaction: two units per started
/// kilobyte (at least one kilobyte).
#[must_use]
pub fn transactional_write_units(bytes: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let kilobytes = bytes.div_ceil(1024).max(1) as f64;
    2.0 * kilobytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_follow_dynamodbs_rules() {
        let item = std::collections::HashMap::from([
            (
                "PK".to_owned(),
                AttributeValue::S("LEDGER#+15550000000".into()),
            ),
            ("version".to_owned(), AttributeValue::N("12".into())),
            ("ok".to_owned(), AttributeValue::Bool(true)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![AttributeValue::S("ab".into())]),
            ),
        ]);
        // "PK" and 19 characters; "version" and two digits (one byte a pair, plus one);
        // "ok" and a boolean; "l" and a list (3) of one element (1) of two characters.
        assert_eq!(item_bytes(&item), 21 + 9 + 3 + 7);
        assert_eq!(number_bytes("1900000000000"), 2);
        assert!((transactional_write_units(1) - 2.0).abs() < f64::EPSILON);
        assert!((transactional_write_units(1025) - 4.0).abs() < f64::EPSILON);
    }
}
