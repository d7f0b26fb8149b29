//! The SMA Lambda: answers every PSTN audio event with an action list and keeps the call
//! record exact.
