//! The PSTN audio contract as types (being written).
