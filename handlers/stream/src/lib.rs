//! The stream Lambda: DynamoDB Streams records of call items become campaign counters and
//! the analytics contract. See DESIGN.md section 7; it lands with the stream issue.
