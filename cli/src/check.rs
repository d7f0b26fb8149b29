//! `outdial check FILE...`: validates SMA invocation events and action-list responses against
//! the PSTN audio contract, one line per file.

use std::path::{Path, PathBuf};

use outdial_core::contract::{ContractError, Payload, classify};

/// The line `outdial check` prints for one file, and whether it was valid.
#[must_use]
pub fn check_file(path: &Path) -> (String, bool) {
    let name = path.display();
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => return (format!("{name}: invalid: cannot read: {e}"), false),
    };
    let value: serde_json::Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            return (
                format!("{name}: invalid: {}", ContractError::NotJson(e)),
                false,
            );
        }
    };
    match classify(&value) {
        Ok(Payload::Event(e)) => (
            format!("{name}: ok event {} seq={}", e.event_type, e.sequence),
            true,
        ),
        Ok(Payload::Response(r)) => (
            format!("{name}: ok response actions={}", r.actions().len()),
            true,
        ),
        Ok(Payload::Action(a)) => (format!("{name}: ok action {}", a.type_name()), true),
        Err(e) => (format!("{name}: invalid: {e}"), false),
    }
}

/// The files to check: each argument, with a folder standing for its `*.json` files in name
/// order.
///
/// # Errors
/// When a folder cannot be listed.
pub fn expand(args: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(arg)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(arg.clone());
        }
    }
    Ok(files)
}
