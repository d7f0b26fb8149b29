//! Conditions of conditional writes, built from typed clauses instead of written as strings.
//!
//! A [`Condition`] is a conjunction of clauses, each naming its attributes and values through
//! placeholders the condition keeps itself: `#<attribute>` for names and `:if_<name>` for
//! values, so they never collide with the placeholders of the update they guard (which never
//! start with `:if_`). [`Condition::from`] turns one of the dispatcher's [`Guard`]s
//! (`outdial_core::dispatch`) into the condition the store writes; [`Condition::event`] is
//! the guard of an SMA event's write. [`Condition::guarding`] joins the condition with its
//! update's own names and values, since DynamoDB takes one map of each per request and
//! refuses names and values that no expression uses; [`Guarded::guarded`] sets the three on
//! a request.
//!
//! Every SMA event builds one of these for its write, so they are kept cheap: the expression
//! is written as the clauses come, and the placeholders are short lists searched in order
//! (a condition has a dozen at most), not maps.

use std::collections::HashMap;
use std::fmt::Write as _;

use aws_sdk_dynamodb::types::AttributeValue;
use outdial_core::dispatch::{Guard, InIndex};
use outdial_core::ids::{Attempt, Sequence, TransactionId};
use outdial_core::lifecycle::CallStatus;
use outdial_core::ports::EventWrite;

use crate::item::{end_req, n, s};

/// A condition expression with the attribute names and values it uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    /// The clauses so far, joined by `AND`.
    expression: String,
    /// Placeholder to attribute name, each placeholder once.
    names: Vec<(String, String)>,
    /// Placeholder to value, each placeholder once.
    values: Vec<(String, AttributeValue)>,
    /// A clause no item can meet (an empty `IN` list, which DynamoDB cannot express).
    unsatisfiable: bool,
}

/// A condition joined with the update it guards: what a request's `ConditionExpression`,
/// `ExpressionAttributeNames` and `ExpressionAttributeValues` take. The condition is `None`
/// and a list empty where there is nothing (a request leaves them out: DynamoDB refuses an
/// empty expression or map). Each placeholder appears once in its list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expressions {
    pub condition: Option<String>,
    /// Placeholder to attribute name.
    pub names: Vec<(String, String)>,
    /// Placeholder to value.
    pub values: Vec<(String, AttributeValue)>,
}

impl Expressions {
    /// The attribute name placeholder `placeholder` stands for.
    #[must_use]
    pub fn name(&self, placeholder: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|(p, _)| p == placeholder)
            .map(|(_, n)| n.as_str())
    }

    /// The value placeholder `placeholder` stands for.
    #[must_use]
    pub fn value(&self, placeholder: &str) -> Option<&AttributeValue> {
        self.values
            .iter()
            .find(|(p, _)| p == placeholder)
            .map(|(_, v)| v)
    }
}

impl Condition {
    /// A condition with no clause yet: it holds for every item.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The call is in attempt `attempt`: `#attempt = :if_attempt`.
    #[must_use]
    pub fn attempt(self, attempt: Attempt) -> Self {
        self.equals("attempt", n(attempt))
    }

    /// The call is in one of `statuses`: `#status IN (...)` (`=` for a single status).
    #[must_use]
    pub fn status_in(self, statuses: &[CallStatus]) -> Self {
        self.one_of(
            "status",
            statuses
                .iter()
                .map(|st| (st.as_str().to_lowercase(), s(st.as_str()))),
        )
    }

    /// The call stands so in the `due` index: listed is `attribute_exists(due_shard)`,
    /// parked is `attribute_not_exists(due_shard)`.
    #[must_use]
    pub fn in_index(self, index: InIndex) -> Self {
        match index {
            InIndex::Any => self,
            InIndex::Listed => self.exists("due_shard"),
            InIndex::Parked => self.absent("due_shard"),
        }
    }

    /// Attempt `attempt` is not known to have been placed: no SMA event was applied in it
    /// (`seq_attempt`) and the Voice API's placing of it was not recorded (`placed_attempt`).
    #[must_use]
    pub fn unplaced(self, attempt: Attempt) -> Self {
        self.below("seq_attempt", "attempt", n(attempt)).below(
            "placed_attempt",
            "attempt",
            n(attempt),
        )
    }

    /// The SMA event `seq` of `attempt` is newer than the last one applied (the `Sequence`
    /// guard): `(attribute_not_exists(seq_attempt) OR seq_attempt < :attempt OR last_seq <
    /// :seq)`.
    #[must_use]
    pub fn event_after_last(mut self, attempt: Attempt, seq: Sequence) -> Self {
        let seq_attempt = self.name("seq_attempt");
        let last_seq = self.name("last_seq");
        let attempt = self.value("attempt", n(attempt));
        let seq = self.value("seq", n(seq));
        self.clause(format_args!(
            "(attribute_not_exists({seq_attempt}) OR {seq_attempt} < {attempt} OR {last_seq} < {seq})"
        ));
        self
    }

    /// The record knows no transaction for `attempt` (it holds none, or no placing was
    /// recorded for the attempt and no SMA event of it applied), or knows `transaction`:
    /// `(attribute_not_exists(#transaction_id) OR #transaction_id = :if_transaction_id OR
    /// ((attribute_not_exists(#placed_attempt) OR NOT #placed_attempt = :if_attempt) AND
    /// (attribute_not_exists(#seq_attempt) OR NOT #seq_attempt = :if_attempt)))`, as
    /// `CallRecord::transaction_of` reads it.
    #[must_use]
    pub fn transaction_of(mut self, attempt: Attempt, transaction: &TransactionId) -> Self {
        let txn = self.name("transaction_id");
        let placed = self.name("placed_attempt");
        let seq_attempt = self.name("seq_attempt");
        let txn_value = self.value("transaction_id", s(transaction.as_str()));
        let attempt = self.value("attempt", n(attempt));
        self.clause(format_args!(
            "(attribute_not_exists({txn}) OR {txn} = {txn_value} OR \
             ((attribute_not_exists({placed}) OR NOT {placed} = {attempt}) \
             AND (attribute_not_exists({seq_attempt}) OR NOT {seq_attempt} = {attempt})))"
        ));
        self
    }

    /// The condition of an SMA event's write, as `EventWrite::admits` says it: the event
    /// belongs to the call (its campaign, and its transaction once the record knows the
    /// attempt's), is newer than the last one applied, and the call is in the attempt, the
    /// statuses, the end request and the answered state the handler decided from.
    #[must_use]
    pub fn event(w: &EventWrite) -> Self {
        Self::new()
            .equals("campaign_id", s(w.campaign_id.as_str()))
            .transaction_of(w.attempt, &w.transaction_id)
            .attempt(w.attempt)
            .status_in(&w.statuses())
            .equals("end_req", s(end_req(w.expected.end_request)))
            .equals("answered", AttributeValue::Bool(w.expected.answered))
            .event_after_last(w.attempt, w.seq)
    }

    /// `attribute` equals `value`.
    #[must_use]
    pub fn equals(mut self, attribute: &str, value: AttributeValue) -> Self {
        let name = self.name(attribute);
        let value = self.value(attribute, value);
        self.clause(format_args!("{name} = {value}"));
        self
    }

    /// `attribute` equals one of `values` (none: no item meets the condition).
    #[must_use]
    pub fn one_of(
        mut self,
        attribute: &str,
        values: impl IntoIterator<Item = (String, AttributeValue)>,
    ) -> Self {
        let name = self.name(attribute);
        let placeholders: Vec<String> = values
            .into_iter()
            .map(|(label, value)| self.value(&label, value))
            .collect();
        match placeholders.as_slice() {
            [] => self.unsatisfiable = true,
            [one] => self.clause(format_args!("{name} = {one}")),
            many => self.clause(format_args!("{name} IN ({})", many.join(", "))),
        }
        self
    }

    /// The item has `attribute`.
    #[must_use]
    pub fn exists(mut self, attribute: &str) -> Self {
        let name = self.name(attribute);
        self.clause(format_args!("attribute_exists({name})"));
        self
    }

    /// The item lacks `attribute`.
    #[must_use]
    pub fn absent(mut self, attribute: &str) -> Self {
        let name = self.name(attribute);
        self.clause(format_args!("attribute_not_exists({name})"));
        self
    }

    /// The item lacks `attribute`, or has it below `value`.
    #[must_use]
    pub fn absent_or_below(self, attribute: &str, value: AttributeValue) -> Self {
        self.below(attribute, attribute, value)
    }

    /// [`Self::absent_or_below`], with the value's placeholder named after `label`.
    fn below(mut self, attribute: &str, label: &str, value: AttributeValue) -> Self {
        let name = self.name(attribute);
        let value = self.value(label, value);
        self.clause(format_args!(
            "(attribute_not_exists({name}) OR {name} < {value})"
        ));
        self
    }

    /// Whether no item can meet the condition: a write guarded by it is refused without being
    /// sent.
    #[must_use]
    pub const fn is_unsatisfiable(&self) -> bool {
        self.unsatisfiable
    }

    /// The condition expression: its clauses joined by `AND`.
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Adds a clause.
    fn clause(&mut self, clause: std::fmt::Arguments<'_>) {
        if !self.expression.is_empty() {
            self.expression.push_str(" AND ");
        }
        // Writing to a `String` cannot fail.
        let _ = self.expression.write_fmt(clause);
    }

    /// The condition with the names and values of the update it guards.
    #[must_use]
    pub fn guarding<'a>(
        self,
        names: &[(&str, &str)],
        values: impl IntoIterator<Item = (&'a str, AttributeValue)>,
    ) -> Expressions {
        let condition = Some(self.expression).filter(|c| !c.is_empty());
        let mut all_names = Vec::with_capacity(names.len() + self.names.len());
        all_names.extend(
            names
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        for (placeholder, attribute) in self.names {
            match all_names.iter().find(|(p, _)| *p == placeholder) {
                None => all_names.push((placeholder, attribute)),
                Some((_, held)) => debug_assert!(*held == attribute, "a name used twice"),
            }
        }
        let values = values.into_iter();
        let mut all_values = Vec::with_capacity(values.size_hint().0 + self.values.len());
        all_values.extend(values.map(|(k, v)| (k.to_owned(), v)));
        for (placeholder, value) in self.values {
            let taken = all_values.iter().any(|(p, _)| *p == placeholder);
            debug_assert!(!taken, "an update's value named like a condition's");
            if !taken {
                all_values.push((placeholder, value));
            }
        }
        Expressions {
            condition,
            names: all_names,
            values: all_values,
        }
    }

    /// The placeholder of attribute `attribute`: `#` and its name, with any character a
    /// placeholder cannot hold as `_` (and a number added if another attribute has that).
    fn name(&mut self, attribute: &str) -> String {
        placeholder(&mut self.names, "#", attribute, attribute.to_owned())
    }

    /// The placeholder of `value`, named after `label`: the same label with an equal value
    /// shares one.
    fn value(&mut self, label: &str, value: AttributeValue) -> String {
        placeholder(&mut self.values, ":if_", label, value)
    }
}

/// A request builder that takes a condition with its update's names and values.
pub trait Guarded {
    /// Sets the request's condition expression, attribute names and attribute values.
    #[must_use]
    fn guarded(self, expressions: Expressions) -> Self;
}

macro_rules! guarded {
    ($($builder:ty),+) => {$(
        impl Guarded for $builder {
            fn guarded(self, e: Expressions) -> Self {
                self.set_condition_expression(e.condition)
                    .set_expression_attribute_names(map(e.names))
                    .set_expression_attribute_values(map(e.values))
            }
        }
    )+};
}

guarded!(
    aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    aws_sdk_dynamodb::types::builders::UpdateBuilder,
    aws_sdk_dynamodb::types::builders::ConditionCheckBuilder
);

impl From<Guard> for Condition {
    /// The guard as a condition: `attempt`, `statuses`, `index` and `unplaced`, each a clause.
    fn from(guard: Guard) -> Self {
        let condition = Self::new()
            .attempt(guard.attempt)
            .status_in(guard.statuses)
            .in_index(guard.index);
        if guard.unplaced {
            condition.unplaced(guard.attempt)
        } else {
            condition
        }
    }
}

/// `entries` as a request's map, `None` when there are none.
fn map<V>(entries: Vec<(String, V)>) -> Option<HashMap<String, V>> {
    (!entries.is_empty()).then(|| entries.into_iter().collect())
}

/// `prefix` and `label` (any character a placeholder cannot hold as `_`) if `taken` does not
/// hold that yet or holds `value` under it; otherwise the first of `<that>_1`, `<that>_2`, ...
/// that is free or holds `value`. The placeholder then holds it.
fn placeholder<V: PartialEq>(
    taken: &mut Vec<(String, V)>,
    prefix: &str,
    label: &str,
    value: V,
) -> String {
    let mut wanted = String::with_capacity(prefix.len() + label.len());
    wanted.push_str(prefix);
    wanted.extend(
        label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    let mut candidate = wanted.clone();
    let mut i = 1;
    loop {
        match taken.iter().find(|(p, _)| *p == candidate) {
            None => {
                taken.push((candidate.clone(), value));
                return candidate;
            }
            Some((_, held)) if *held == value => return candidate,
            Some(_) => {
                candidate = format!("{wanted}_{i}");
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outdial_core::dispatch::{LIVE, WAITING};

    fn second() -> Attempt {
        Attempt::FIRST.next()
    }

    #[test]
    fn a_waiting_guard_names_its_attempt_and_statuses() {
        let c = Condition::from(Guard::waiting(second()).in_index(InIndex::Listed));
        assert_eq!(
            c.expression(),
            "#attempt = :if_attempt AND #status IN (:if_queued, :if_retry_wait) \
             AND attribute_exists(#due_shard)"
        );
        let e = c.guarding(&[], []);
        assert_eq!(e.value(":if_attempt"), Some(&n(2)));
        assert_eq!(e.value(":if_queued"), Some(&s("QUEUED")));
        assert_eq!(e.value(":if_retry_wait"), Some(&s("RETRY_WAIT")));
        assert_eq!(e.name("#due_shard"), Some("due_shard"));
        assert_eq!(WAITING.len(), 2);
    }

    #[test]
    fn an_unplaced_guard_compares_both_placings_with_its_attempt() {
        let c = Condition::from(Guard::unplaced(second()));
        assert_eq!(
            c.expression(),
            "#attempt = :if_attempt AND #status = :if_dialing \
             AND (attribute_not_exists(#seq_attempt) OR #seq_attempt < :if_attempt) \
             AND (attribute_not_exists(#placed_attempt) OR #placed_attempt < :if_attempt)"
        );
    }

    #[test]
    fn a_live_guard_in_the_parked_state_says_so() {
        let c = Condition::from(Guard::live(second()).in_index(InIndex::Parked));
        assert_eq!(
            c.expression(),
            "#attempt = :if_attempt AND #status IN (:if_dialing, :if_ringing, :if_answered) \
             AND attribute_not_exists(#due_shard)"
        );
        assert_eq!(LIVE.len(), 3);
    }

    #[test]
    fn the_update_keeps_its_own_names_and_values_beside_the_conditions() {
        let e = Condition::new()
            .equals("due_key", s("k"))
            .guarding(&[("#status", "status")], [(":status", s("QUEUED"))]);
        assert_eq!(e.condition.as_deref(), Some("#due_key = :if_due_key"));
        assert_eq!(e.names.len(), 2);
        assert_eq!(e.values.len(), 2);
    }

    #[test]
    fn attributes_a_placeholder_cannot_hold_and_equal_labels_get_their_own() {
        let c = Condition::new()
            .equals("wm_shardId-1", s("a"))
            .equals("wm_shardId_1", s("b"));
        assert_eq!(
            c.expression(),
            "#wm_shardId_1 = :if_wm_shardId_1 AND #wm_shardId_1_1 = :if_wm_shardId_1_1"
        );
    }

    #[test]
    fn no_status_at_all_is_a_condition_no_item_meets() {
        let c = Condition::new().attempt(Attempt::FIRST).status_in(&[]);
        assert!(c.is_unsatisfiable());
        assert!(!Condition::from(Guard::waiting(Attempt::FIRST)).is_unsatisfiable());
        let e = Condition::new().guarding(&[], []);
        assert_eq!(e, Expressions::default());
        assert_eq!((map(e.names), map(e.values)), (None, None));
    }
}
