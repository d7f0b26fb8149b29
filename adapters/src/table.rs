//! The table's definition, read from `schema/table.json`: the one description of the table
//! that the store, its tests and the CDK stack all build from.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
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
            request = request.attribute_definitions(attribute_definition(a)?);
        }
        for index in &self.global_secondary_indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(
                        &index.partition_key,
                        index.sort_key.as_ref(),
                    )?))
                    .projection(projection(index))
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

impl TableDef {
    /// Adds to table `name` the indexes of the definition it lacks (a local table kept from
    /// before an index was added to the schema), one `UpdateTable` each, waiting up to a
    /// minute for each to become active; DynamoDB builds a new index from the items already
    /// there. Returns the names of the indexes added. An index the table has is left as it is,
    /// whatever its keys.
    ///
    /// # Errors
    /// Whatever `DescribeTable` or `UpdateTable` answers, or an index still not active after
    /// a minute.
    pub async fn add_missing_indexes(
        &self,
        client: &Client,
        name: &str,
    ) -> anyhow::Result<Vec<String>> {
        let existing = index_states(client, name).await?;
        let mut added = Vec::new();
        for index in &self.global_secondary_indexes {
            if existing.iter().any(|(n, _)| n == &index.name) {
                continue;
            }
            let mut keys = vec![index.partition_key.clone()];
            keys.extend(index.sort_key.clone());
            let mut request = client.update_table().table_name(name);
            for k in &keys {
                request = request.attribute_definitions(attribute_definition(k)?);
            }
            let create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(
                    &index.partition_key,
                    index.sort_key.as_ref(),
                )?))
                .projection(projection(index))
                .build()?;
            request
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(create).build(),
                )
                .send()
                .await?;
            wait_until_active(client, name, &index.name).await?;
            added.push(index.name.clone());
        }
        Ok(added)
    }
}

/// Each index of table `name` with its status.
async fn index_states(
    client: &Client,
    name: &str,
) -> anyhow::Result<Vec<(String, Option<IndexStatus>)>> {
    let described = client.describe_table().table_name(name).send().await?;
    Ok(described
        .table
        .and_then(|t| t.global_secondary_indexes)
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.index_name.unwrap_or_default(), i.index_status))
        .collect())
}

/// Waits until index `index` of table `name` is active, for a minute at most.
async fn wait_until_active(client: &Client, name: &str, index: &str) -> anyhow::Result<()> {
    for _ in 0..120 {
        let states = index_states(client, name).await?;
        if states
            .iter()
            .any(|(n, status)| n == index && status.as_ref() == Some(&IndexStatus::Active))
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    anyhow::bail!("index {index} of table {name} is still not active after a minute")
}

/// A key attribute's definition, as CreateTable and UpdateTable take it.
fn attribute_definition(key: &KeyDef) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(&key.name)
        .attribute_type(ScalarAttributeType::from(key.kind.as_str()))
        .build()?)
}

fn projection(index: &IndexDef) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(index.projection.as_str()))
        .build()
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
        let campaigns = index(crate::item::CAMPAIGNS);
        assert_eq!(campaigns.partition_key.name, crate::item::LISTED);
        assert_eq!(
            campaigns.sort_key.as_ref().unwrap().name,
            crate::item::LISTED_KEY
        );
        assert_eq!(def.stream, "NEW_AND_OLD_IMAGES");
    }
}
