//! The table's definition, read from `schema/table.json`: the one description of the table
//! that the store, its tests and the CDK stack all build from.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use serde::Deserialize;

/// The definition as committed in `schema/table.json`.
pub const TABLE_JSON: &str = include_str!("../../schema/table.json");

/// A key attribute: its name and scalar type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KeyDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A global secondary index.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IndexDef {
    pub name: String,
    pub partition_key: KeyDef,
    #[serde(default)]
    pub sort_key: Option<KeyDef>,
    pub projection: String,
}

/// The table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableDef {
    pub partition_key: KeyDef,
    pub sort_key: KeyDef,
    pub stream: String,
    pub time_to_live_attribute: String,
    pub global_secondary_indexes: Vec<IndexDef>,
}

impl TableDef {
    /// The committed definition.
    ///
    /// # Errors
    /// Only if `schema/table.json` does not describe a table (a test keeps it readable).
    pub fn load() -> anyhow::Result<Self> {
        Ok(serde_json::from_str(TABLE_JSON)?)
    }

    /// Creates the table with its indexes and stream, and turns on TTL; for DynamoDB Local
    /// and tests (the stack creates the real one).
    ///
    /// # Errors
    /// Whatever `CreateTable` or `UpdateTimeToLive` answers.
    pub async fn create(&self, client: &Client, name: &str) -> anyhow::Result<()> {
        let mut attributes = vec![self.partition_key.clone(), self.sort_key.clone()];
        for index in &self.global_secondary_indexes {
            attributes.push(index.partition_key.clone());
            attributes.extend(index.sort_key.clone());
        }
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        attributes.dedup_by(|a, b| a.name == b.name);

        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&self.partition_key, Some(&self.sort_key))?))
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(self.stream.as_str()))
                    .build()?,
            );
        for a in &attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&a.name)
                    .attribute_type(ScalarAttributeType::from(a.kind.as_str()))
                    .build()?,
            );
        }
        for index in &self.global_secondary_indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(
                        &index.partition_key,
                        index.sort_key.as_ref(),
                    )?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection.as_str()))
                            .build(),
                    )
                    .build()?,
            );
        }
        request.send().await?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(&self.time_to_live_attribute)
                    .build()?,
            )
            .send()
            .await?;
        Ok(())
    }
}

fn key_schema(pk: &KeyDef, sk: Option<&KeyDef>) -> anyhow::Result<Vec<KeySchemaElement>> {
    let mut keys = vec![
        KeySchemaElement::builder()
            .attribute_name(&pk.name)
            .key_type(KeyType::Hash)
            .build()?,
    ];
    if let Some(sk) = sk {
        keys.push(
            KeySchemaElement::builder()
                .attribute_name(&sk.name)
                .key_type(KeyType::Range)
                .build()?,
        );
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_definition_has_the_keys_the_store_writes() {
        let def = TableDef::load().unwrap();
        assert_eq!(def.partition_key.name, crate::item::PK);
        assert_eq!(def.sort_key.name, crate::item::SK);
        assert_eq!(def.time_to_live_attribute, crate::item::EXPIRES_AT);
        let index = |name: &str| {
            def.global_secondary_indexes
                .iter()
                .find(|i| i.name == name)
                .unwrap_or_else(|| panic!("index {name} missing"))
        };
        assert_eq!(
            index(crate::item::BY_CAMPAIGN).partition_key.name,
            "campaign_id"
        );
        assert_eq!(
            index(crate::item::DUE).sort_key.as_ref().unwrap().name,
            "due_key"
        );
        assert_eq!(
            index(crate::item::BY_TRANSACTION).partition_key.name,
            "transaction_id"
        );
        assert_eq!(def.stream, "NEW_AND_OLD_IMAGES");
    }
}
