//! DynamoDB Local's stream, delivered to the stream handler as Lambda delivers it.
