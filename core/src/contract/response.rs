//! The action-list response, strict on the way out: built through [`ResponseBuilder`], which
//! cannot hold more than [`MAX_ACTIONS`] actions or [`MAX_ATTRIBUTES`] attributes, always
//! sends `Actions` as an array (`null` would tell the SMA to keep the actions it has), and
//! echoes the event's `SchemaVersion`. `Deserialize` is there to read back a response outdial
//! wrote itself; one from outside goes through [`super::validate_response`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Action, ContractError, Event, MAX_ACTIONS, MAX_ATTRIBUTES};

/// What an SMA handler answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub schema_version: String,
    actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transaction_attributes: Option<BTreeMap<String, String>>,
}

impl Response {
    /// No actions: "run nothing now". Right for events whose answer the SMA ignores.
    #[must_use]
    pub fn empty(schema_version: &str) -> Self {
        Self {
            schema_version: schema_version.to_owned(),
            actions: Vec::new(),
            transaction_attributes: None,
        }
    }

    /// A builder answering `event`, echoing its `SchemaVersion`.
    #[must_use]
    pub fn to(event: &Event) -> ResponseBuilder {
        ResponseBuilder(Self::empty(&event.schema_version))
    }

    /// A builder for a given `SchemaVersion`.
    #[must_use]
    pub fn builder(schema_version: &str) -> ResponseBuilder {
        ResponseBuilder(Self::empty(schema_version))
    }

    #[must_use]
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    #[must_use]
    pub fn transaction_attributes(&self) -> Option<&BTreeMap<String, String>> {
        self.transaction_attributes.as_ref()
    }

    /// Parts of a response read from outside, checked by the validator.
    pub(crate) fn from_parts(
        schema_version: String,
        actions: Vec<Action>,
        transaction_attributes: Option<BTreeMap<String, String>>,
    ) -> Self {
        Self {
            schema_version,
            actions,
            transaction_attributes,
        }
    }
}

/// Builds a [`Response`] that keeps the contract's limits.
#[derive(Debug, Clone)]
pub struct ResponseBuilder(Response);

impl ResponseBuilder {
    /// Adds an action.
    ///
    /// # Errors
    /// [`ContractError::TooManyActions`] at the eleventh.
    pub fn push(&mut self, action: Action) -> Result<&mut Self, ContractError> {
        if self.0.actions.len() >= MAX_ACTIONS {
            return Err(ContractError::TooManyActions(self.0.actions.len() + 1));
        }
        self.0.actions.push(action);
        Ok(self)
    }

    /// How many more actions fit.
    #[must_use]
    pub fn room(&self) -> usize {
        MAX_ACTIONS - self.0.actions.len()
    }

    /// Sets the full `TransactionAttributes` map (always the whole map: see
    /// `docs/pstn-audio.md` 5.3).
    ///
    /// # Errors
    /// [`ContractError::TooManyAttributes`] above ten keys.
    pub fn attributes(
        &mut self,
        map: BTreeMap<String, String>,
    ) -> Result<&mut Self, ContractError> {
        if map.len() > MAX_ATTRIBUTES {
            return Err(ContractError::TooManyAttributes(map.len()));
        }
        self.0.transaction_attributes = Some(map);
        Ok(self)
    }

    /// The response, within the limits by construction.
    #[must_use]
    pub fn build(self) -> Response {
        self.0
    }
}
