//! The API's port: campaigns' lifecycle, contacts appended, the do-not-call list and
//! idempotency records.
