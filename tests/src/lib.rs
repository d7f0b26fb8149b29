//! End-to-end and reliability suites over the local stack live in this crate's `tests/`
//! folder; the library holds what they share.
