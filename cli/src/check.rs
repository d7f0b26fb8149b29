//! `outdial check FILE...`: validates SMA invocation events and action-list responses against
//! the PSTN audio contract, one line per file.

use std::fmt;
use std::path::{Path, PathBuf};

use outdial_core::contract::{ContractError, Payload, Valid, classify, parse_event, validate};

/// The line `outdial check` prints for one file, and whether it was valid.
#[must_use]
pub fn check_file(path: &Path) -> (String, bool) {
    let name = path.display();
    match read_and_validate(path) {
        Ok(Valid::Event(e)) => (
            format!("{name}: ok event {} seq={}", e.event_type, e.sequence),
            true,
        ),
        Ok(Valid::Response(r)) => (
            format!("{name}: ok response actions={}", r.actions().len()),
            true,
        ),
        Ok(Valid::Action(a)) => (format!("{name}: ok action {}", a.type_name()), true),
        Err(reason) => (format!("{name}: invalid: {reason}"), false),
    }
}

/// Why a file is invalid.
#[derive(Debug)]
enum Invalid {
    Unreadable(std::io::Error),
    Contract(ContractError),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "cannot read: {e}"),
            Self::Contract(e) => write!(f, "{e}"),
        }
    }
}

fn read_and_validate(path: &Path) -> Result<Valid, Invalid> {
    let bytes = std::fs::read(path).map_err(Invalid::Unreadable)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Invalid::Contract(ContractError::NotJson(e)))?;
    let valid = match classify(&value) {
        // Read from the text, so that a value of the wrong type is reported with its line and
        // column.
        Payload::Event => parse_event(&bytes).map(|e| Valid::Event(Box::new(e))),
        _ => validate(&value),
    };
    valid.map_err(Invalid::Contract)
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
