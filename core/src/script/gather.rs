//! The checks of a `gather` step, and the `InputDigitsRegex` it waits with.

use std::collections::BTreeMap;

use crate::speech::{MAX_REGEX, check_digits_regex};

use super::{Gather, ScriptError, check_prompt, digits_ok, invalid};

impl Gather {
    /// The `InputDigitsRegex` the prompt waits with: the gather's own `regex`, or without one
    /// exactly the digits `branches` names (`^(1|2|\#)$`), so that the SMA itself prompts again
    /// on anything else. `None` (no regex, no branches) takes any digits of the allowed length.
    #[must_use]
    pub fn input_digits_regex(&self, branches: &BTreeMap<String, String>) -> Option<String> {
        self.regex.clone().or_else(|| {
            (!branches.is_empty()).then(|| {
                let keys: Vec<String> = branches
                    .keys()
                    .map(|k| k.replace('*', "\\*").replace('#', "\\#"))
                    .collect();
                format!("^({})$", keys.join("|"))
            })
        })
    }
}

/// Checks the gather of step `name` and the digits it branches on.
pub(super) fn check(
    name: &str,
    g: &Gather,
    branches: &BTreeMap<String, String>,
) -> Result<(), ScriptError> {
    match (&g.say, &g.play) {
        (Some(p), None) => check_prompt(name, "gather.say", p, false)?,
        (None, Some(p)) => check_prompt(name, "gather.play", p, true)?,
        _ => return Err(invalid(name, "gather", "needs exactly one of say and play")),
    }
    if let Some(f) = &g.failure {
        check_prompt(name, "gather.failure", f, g.play.is_some())?;
    }
    if g.max_digits == 0 || g.max_digits > 128 || g.min_digits > g.max_digits {
        return Err(invalid(
            name,
            "gather.max_digits",
            "must be 1 to 128 and at least min_digits",
        ));
    }
    if !(500..=60_000).contains(&g.timeout_ms) {
        return Err(invalid(name, "gather.timeout_ms", "must be 500 to 60000"));
    }
    if !(1..=5).contains(&g.repeat) {
        return Err(invalid(name, "gather.repeat", "must be 1 to 5"));
    }
    if g.terminators.iter().any(|t| t.len() != 1 || !digits_ok(t)) {
        return Err(invalid(
            name,
            "gather.terminators",
            "each is one of 0-9, # and *",
        ));
    }
    if let Some(re) = &g.regex {
        check_digits_regex(re).map_err(|reason| invalid(name, "gather.regex", reason))?;
    }
    if let Some(bad) = branches.keys().find(|k| !digits_ok(k)) {
        return Err(invalid(
            name,
            &format!("branches.{bad}"),
            "a branch key is the digits pressed",
        ));
    }
    // Without a regex of its own the gather waits for exactly its branches' digits: that
    // regex, too, must be one the service takes.
    if g.regex.is_none() {
        if let Some(derived) = g.input_digits_regex(branches) {
            let length = derived.chars().count();
            if length > MAX_REGEX {
                return Err(invalid(
                    name,
                    "branches",
                    format!(
                        "the branches make an InputDigitsRegex of {length} characters, more than {MAX_REGEX}: give the gather a shorter regex of its own"
                    ),
                ));
            }
            check_digits_regex(&derived).map_err(|reason| {
                invalid(
                    name,
                    "branches",
                    format!("the branches make the InputDigitsRegex {derived:?}, which {reason}"),
                )
            })?;
        }
    }
    Ok(())
}
