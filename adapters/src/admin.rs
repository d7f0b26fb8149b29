//! The API's store on DynamoDB: campaigns' lifecycle, contacts appended, the do-not-call
//! list and idempotency records.
