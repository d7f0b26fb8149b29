//! Campaign counters on DynamoDB: the `COUNTERS` item the stream handler keeps.
